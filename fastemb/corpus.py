"""Streaming corpus reader: paths -> normalised UTF-8 byte chunks, in bounded memory.

Every chunk handed to the tokenizer kernel is valid UTF-8 in which tokens are separated by ASCII
whitespace and sentences by b"\\n". Decoding (invalid bytes replaced and counted), lower-casing, Unicode
whitespace and the optional regex tokenizer all happen here, chunk by chunk, so a file without a single
newline streams like any other.
"""
from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Optional

from fastemb.errors import FastembError, FileError, param
from fastemb.options import Options, Spec, at_least, between, parse_memory, regex

CHUNK_BYTES = 1 << 20
# word2vec.c truncates words at 100 bytes; a longer cap keeps real tokens (URLs, hashes) whole while
# still bounding the memory one token can take when a file has no whitespace at all.
MAX_TOKEN_BYTES = 1000


def _phrase_table_check(v):
    """--phrases names a readable file (its contents are checked when the reader loads it)."""
    if not v:
        return "must be a file name"
    if not os.path.isfile(v):
        return f"{v!r} is not a file (a phrase table written by fastemb phrases)"
    return None


@dataclass(frozen=True)
class CorpusOptions(Options):
    """How text becomes a vocabulary and token ids: shared by vocab, cooc and train."""
    min_count: int = Spec(int, "Drop words rarer than this.", check=at_least(1))(5)
    max_vocab: Optional[int] = Spec(int, "Keep only the N most frequent words.", check=at_least(1),
                                    optional=True, none_means="no limit")(None)
    lowercase: bool = Spec(bool, "Lower-case the text before tokenizing.")(False)
    token_pattern: Optional[str] = Spec(str, "Tokens are the matches of REGEX (no capturing groups; default: "
                                             "split on whitespace).", check=regex, optional=True,
                                        metavar="REGEX", none_means="whitespace")(None)
    max_sentence_length: int = Spec(int, "Split longer lines into sentences of this many tokens.",
                                    check=between(2, 1 << 24))(10_000)
    memory: str = Spec("size", "Memory budget for counting (vocabulary pruning, co-occurrence spilling).",
                       on_resume="free", metavar="SIZE")("2GB")
    phrases: Optional[str] = Spec(str, "Join the phrases of this table (from `fastemb phrases`) while reading "
                                       "the corpus.", check=_phrase_table_check,
                                  optional=True, metavar="TABLE", none_means="no phrases")(None)
    glob: Optional[str] = Spec(str, "In a directory, read only the files whose name (or path below the directory) "
                                    "matches PATTERN ('*.txt'); hidden files and known non-text files (HDF5, "
                                    "NumPy, images, PDF, pickles) are always skipped, with a notice.",
                               optional=True, metavar="PATTERN", none_means="every file")(None)

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)

# str.split() separators outside ASCII: the byte-level kernel only knows ASCII whitespace, so these
# become spaces before a chunk is re-encoded.
_UNICODE_SPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


class _ReplacementCounter:
    """A codecs error handler that replaces invalid bytes with U+FFFD and counts them."""

    def __init__(self):
        self.count = 0

    def __call__(self, err):
        self.count += err.end - err.start
        return "\ufffd", err.end


_COUNTER = _ReplacementCounter()
codecs.register_error("fastemb-count", _COUNTER)

_OPENERS = {".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"), ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


class Sentences:
    """A corpus made of Python objects: an iterable of sentences, each a list of tokens (taken as they are)
    or a string of text (tokenized like a line of a file). It is read once, streamed into the id file,
    so a generator works and memory stays bounded."""

    name = "<python iterable>"

    def __init__(self, iterable):
        self.iterable = iterable

    def __repr__(self):
        return self.name


def is_sentences(corpus) -> bool:
    """Does `corpus` hold sentences (rather than file paths)? A str or a path, or a list of them, names files;
    a list with any non-string element, or any other iterable (generator, iterator...), holds sentences."""
    if isinstance(corpus, Sentences):
        return True
    if isinstance(corpus, (str, bytes, os.PathLike)):
        return False
    if isinstance(corpus, (list, tuple)):
        return any(not isinstance(x, (str, os.PathLike, Sentences)) for x in corpus)
    return hasattr(corpus, "__iter__")


# Files a directory may hold that are not text: skipped with a notice (by their first bytes, or their name).
_BINARY_MAGIC = ((b"\x89HDF\r\n\x1a\n", "HDF5"), (b"\x93NUMPY", "NumPy"), (b"PK\x03\x04", "zip/npz"),
                 (b"\x89PNG", "image"), (b"\xff\xd8\xff", "image"), (b"GIF8", "image"), (b"%PDF", "PDF"),
                 (b"\x80\x02", "pickle"), (b"\x80\x03", "pickle"), (b"\x80\x04", "pickle"),
                 (b"\x80\x05", "pickle"), (b"\x7fELF", "executable"))
_BINARY_SUFFIXES = {".h5": "HDF5", ".hdf5": "HDF5", ".npy": "NumPy", ".npz": "zip/npz", ".png": "image",
                    ".jpg": "image", ".jpeg": "image", ".gif": "image", ".webp": "image", ".pdf": "PDF",
                    ".pkl": "pickle", ".pickle": "pickle", ".so": "executable", ".nbi": "Numba cache",
                    ".nbc": "Numba cache", ".pyc": "Python bytecode", ".ckpt": "checkpoint"}


def non_text_kind(path) -> str | None:
    """What a file is when it is known not to be text ('HDF5', 'image', ...), else None."""
    kind = _BINARY_SUFFIXES.get(os.path.splitext(path)[1].lower())
    if kind:
        return kind
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None  # reported when the file is checked
    return next((k for magic, k in _BINARY_MAGIC if head.startswith(magic)), None)


def _directory_files(directory, pattern):
    """The text files below `directory`, sorted, hidden entries, non-text files and (with a glob `pattern`)
    names that do not match left out; one notice for what was skipped."""
    import fnmatch
    from fastemb.progress import log
    found, skipped = [], []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory)
            if name.startswith("."):
                continue
            if pattern is not None and not (fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(rel, pattern)):
                continue
            kind = non_text_kind(path)
            if kind is not None:
                skipped.append(f"{rel} ({kind})")
                continue
            found.append(path)
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        log.warning(f"{directory}: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} that "
                    f"{'are' if len(skipped) > 1 else 'is'} not text: {shown}")
    if not found:
        what = "no text files" if pattern is None else f"no text files matching {param('glob')} {pattern!r}"
        raise FileError(f"{directory}: directory contains {what}")
    return found


def resolve_sources(paths, glob=None) -> list:
    """Expand directories (recursively, sorted; hidden entries and known non-text files skipped, with a
    notice; only names matching `glob` when given) and check every file exists and can be read, before
    any work starts. A corpus of Python sentences becomes one `Sentences` source."""
    if is_sentences(paths):
        return [paths if isinstance(paths, Sentences) else Sentences(paths)]
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise FastembError("no corpus given")
    sources = []
    for p in paths:
        if isinstance(p, Sentences):
            sources.append(p)
            continue
        p = os.fspath(p)
        if p == "-":
            sources.append(p)
        elif os.path.isdir(p):
            sources.extend(_directory_files(p, glob))
        elif os.path.exists(p):
            sources.append(p)
        elif any(c.isspace() for c in p):
            raise FileError(f"{p[:60]!r}: no such file or directory (a list of strings names files: to train on "
                            f"sentences, give a list of token lists, or an iterator such as iter(texts))")
        else:
            raise FileError(f"{p}: no such file or directory")
    for s in sources:
        if isinstance(s, Sentences):
            continue
        if s != "-" and not os.path.exists(s):
            raise FileError(f"{s}: no such file (a broken symbolic link?)")
        if s != "-" and not os.access(s, os.R_OK):
            raise FileError(f"{s}: permission denied")
        if s != "-" and not os.path.isfile(s):
            raise FileError(f"{s}: not a regular file")
    return sources


def log_sources(sources, show=20):
    """One INFO line per file read, with its size (the first `show` files, then how many more)."""
    from fastemb.progress import human_bytes, log
    files = [s for s in sources if isinstance(s, str) and s != "-"]
    if not files:
        return
    sizes = [os.path.getsize(s) for s in files]
    log.info(f"reading {len(files)} file{'s' if len(files) > 1 else ''} ({human_bytes(sum(sizes))})")
    for s, n in list(zip(files, sizes))[:show]:
        log.info(f"  {s} ({human_bytes(n)})")
    if len(files) > show:
        log.info(f"  ... and {len(files) - show} more")


class CorpusReader:
    """Iterates over normalised byte chunks of all sources; `bytes_done`/`total_bytes` measure progress
    on the files as stored (compressed bytes for compressed files)."""

    def __init__(self, paths, lowercase: bool = False, token_pattern: str | None = None,
                 chunk_bytes: int = CHUNK_BYTES, phrases=None, max_sentence_length: int = 10_000,
                 glob: str | None = None):
        self.sources = resolve_sources(paths, glob)
        log_sources(self.sources)
        # A phrase table (a path, read and checked now, before any work; or a phrases.PhraseTable) joins
        # its phrases in every chunk this reader yields.
        self.phrases = None
        if phrases is not None:
            from fastemb.phrasing import PhraseTable, load_table
            self.phrases = phrases if isinstance(phrases, PhraseTable) else load_table(phrases)
        self.max_sentence_length = max_sentence_length
        self.lowercase = lowercase
        try:
            self.pattern = re.compile(token_pattern) if token_pattern else None
        except re.error as e:
            raise FastembError(f"{param('token_pattern')}: invalid regular expression: {e}") from None
        self.chunk_bytes = chunk_bytes
        self.invalid_bytes = 0
        self.invalid_sources = []   # the files that had invalid UTF-8, in reading order
        self._done_before = 0
        self._raw = None
        files = [s for s in self.sources if isinstance(s, str) and s != "-"]
        self.total_bytes = sum(os.path.getsize(s) for s in files) if len(files) == len(self.sources) else None

    @property
    def bytes_done(self) -> int:
        pos = 0
        if self._raw is not None:
            try:
                pos = self._raw.tell()
            except (OSError, ValueError):
                pos = 0
        return self._done_before + pos

    def _open(self, source):
        if source == "-":
            return None, sys.stdin.buffer
        raw = open(source, "rb")
        opener = _OPENERS.get(os.path.splitext(source)[1].lower())
        return raw, (opener(raw) if opener else raw)

    def __iter__(self):
        if self.phrases is not None:
            return iter(self.phrases.stream(self._chunks(), self.max_sentence_length))
        return self._chunks()

    def _chunks(self):
        for source in self.sources:
            if isinstance(source, Sentences):
                yield from self._sentence_chunks(source)
                yield b"\n"
                continue
            try:
                raw, stream = self._open(source)
            except OSError as e:
                raise FileError(f"{source}: cannot open: {e.strerror or e}") from None
            self._raw = raw
            name = "<stdin>" if source == "-" else source
            try:
                yield from self.normalised_chunks(stream, name)
            finally:
                if raw is not None:
                    self._done_before += os.path.getsize(source)
                    raw.close()
                self._raw = None
            # A file boundary ends a sentence and a token, whatever the file's last byte was.
            yield b"\n"

    def _sentence_chunks(self, source):
        """Byte chunks of about chunk_bytes from Python sentences: token lists joined by spaces (a token that
        is empty or holds whitespace is refused: it would not come back as one token), strings as text."""
        lines, size = [], 0
        for n, sentence in enumerate(source.iterable, 1):
            if isinstance(sentence, str):
                line = self._normalise_text(sentence)
            elif isinstance(sentence, (list, tuple)):
                line = " ".join(sentence) if all(isinstance(t, str) for t in sentence) else None
                if line is None:
                    bad = next(t for t in sentence if not isinstance(t, str))
                    raise FastembError(f"sentence {n} of the corpus: a token is a {type(bad).__name__}, not a string")
                if line.count(" ") != len(sentence) - 1 or _NOT_IN_TOKENS.search(line) or not line:
                    bad = next((t for t in sentence if not t or t.split() != [t] or "\x00" in t), "")
                    raise FastembError(f"sentence {n} of the corpus: the token {bad[:40]!r} is empty or holds "
                                       f"whitespace, so it would not come back as one token")
                if self.lowercase:
                    line = line.lower()
            else:
                raise FastembError(f"sentence {n} of the corpus is a {type(sentence).__name__}: give lists of "
                                   f"tokens or strings of text")
            lines.append(line)
            size += len(line) + 1
            if size >= self.chunk_bytes:
                yield ("\n".join(lines) + "\n").encode("utf-8", "replace")
                lines, size = [], 0
        if lines:
            yield ("\n".join(lines) + "\n").encode("utf-8", "replace")

    def _normalise_text(self, text):
        if self.lowercase:
            text = text.lower()
        if self.pattern is not None:
            return "\n".join(" ".join(self.pattern.findall(line)) for line in _LINE_END.split(text))
        return _UNICODE_SPACE.sub(" ", text) if not text.isascii() else text

    def _read(self, stream, name):
        try:
            return stream.read(self.chunk_bytes)
        except _DECOMPRESS_ERRORS as e:
            raise FileError(f"{name}: corrupt or truncated compressed data ({e})") from None

    def normalised_chunks(self, stream, name):
        """The normalised byte chunks of one binary stream (decoded, lower-cased, tokenized by the pattern) as
        this reader yields them for a file; the Dask shard reader uses it on a file's byte range."""
        first = self._read(stream, name)
        while first and len(first) < 4096:  # enough to see a byte-order mark, and what follows it
            more = self._read(stream, name)
            if not more:
                break
            first += more
        codec, skip = sniff_encoding(first, name)
        decoder = codecs.getincrementaldecoder(codec)(errors="fastemb-count")
        utf8 = codec == "utf-8"
        carry_text = ""  # regex mode: text after the last whitespace, so no token is split
        pending = first[skip:] if first else first
        while True:
            raw_chunk = pending if pending is not None else self._read(stream, name)
            pending = None
            final = not raw_chunk
            if utf8 and self.pattern is None and not final and raw_chunk.isascii() and not decoder.getstate()[0]:
                yield raw_chunk.lower() if self.lowercase else raw_chunk
                continue
            before = _COUNTER.count
            text = decoder.decode(raw_chunk, final=final)
            if _COUNTER.count != before:
                self.invalid_bytes += _COUNTER.count - before
                if not self.invalid_sources or self.invalid_sources[-1] != name:
                    self.invalid_sources.append(name)
            if self.lowercase:
                text = text.lower()
            if self.pattern is not None:
                text = carry_text + text
                cut = len(text) if final else max(text.rfind(c) for c in " \n\t\r") + 1
                text, carry_text = text[:cut], text[cut:]
                if len(carry_text) > 1 << 20:  # no whitespace for a megabyte: give up keeping it whole
                    text, carry_text = text + carry_text, ""
                text = "\n".join(" ".join(self.pattern.findall(line)) for line in _LINE_END.split(text))
            elif not text.isascii():
                text = _UNICODE_SPACE.sub(" ", text)
            if text:
                yield text.encode("utf-8", errors="surrogatepass")
            if final:
                return


_LINE_END = re.compile("\r\n?|\n")
# What str.split() and the tokenizer split on besides the space (and NUL): never inside a given token.
_NOT_IN_TOKENS = re.compile("[\x00\t\n\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def tokenize(text: str, lowercase: bool = False, token_pattern=None) -> list:
    """The tokens the corpus reader gives for `text`: lower-cased on request, the token pattern's matches
    (line by line) or whitespace-separated words (str.split's whitespace and NUL), each cut to MAX_TOKEN_BYTES
    on a character boundary. Models that take text at query time (classifier, language model) use this."""
    if lowercase:
        text = text.lower()
    if token_pattern:
        pattern = re.compile(token_pattern) if isinstance(token_pattern, str) else token_pattern
        text = "\n".join(" ".join(pattern.findall(line)) for line in _LINE_END.split(text))
    tokens = text.replace("\x00", " ").split()
    return [t if len(t) * 4 <= MAX_TOKEN_BYTES or len(t.encode("utf-8", "surrogatepass")) <= MAX_TOKEN_BYTES
            else t.encode("utf-8", "surrogatepass")[:MAX_TOKEN_BYTES].decode("utf-8", "ignore") for t in tokens]


def decompressor(path):
    """The opener that decompresses `path` by its extension (.gz, .bz2, .xz), or None for plain text."""
    return _OPENERS.get(os.path.splitext(str(path))[1].lower())


def has_wide_bom(head: bytes) -> bool:
    """True when `head` starts with a UTF-16 or UTF-32 byte-order mark (such a file cannot be cut at byte
    offsets into line-aligned ranges)."""
    return any(head.startswith(bom) for bom, codec in _BOMS if codec != "utf-8")


def sniff_encoding(head: bytes, name: str):
    """(codec, bytes to skip) from a byte-order mark: UTF-8 (mark dropped), UTF-16 or UTF-32 (decoded).
    Text full of NUL bytes without a mark is UTF-16/32 that cannot be read reliably: refused."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    sample = head[:4096]
    if len(sample) >= 16 and sample.count(0) > 0.3 * len(sample):
        zeros_odd = sum(1 for b in sample[1::2] if b == 0)
        zeros_even = sum(1 for b in sample[0::2] if b == 0)
        if max(zeros_odd, zeros_even) > 0.4 * (len(sample) // 2) and min(zeros_odd, zeros_even) < 0.1 * len(sample):
            raise FileError(f"{name}: looks like UTF-16 or UTF-32 text without a byte-order mark: convert it to "
                            f"UTF-8 (e.g. iconv -f UTF-16LE -t UTF-8)")
    return "utf-8", 0
