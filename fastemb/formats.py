"""Interchange formats: word2vec text and binary, GloVe text (byte-compatible with gensim's
KeyedVectors.save_word2vec_format; the readers also take word2vec.c's binary files, which end every vector
with a newline that gensim leaves out)."""
from __future__ import annotations

import numpy as np

from fastemb.errors import FastembError, FileError
from fastemb.store import atomic_output

FORMATS = ("word2vec", "word2vec-binary", "glove")


def _text_row(word, row):
    return f"{word} {' '.join(str(v) for v in row)}\n".encode("utf-8")


def write_vectors(path, words, vectors, fmt):
    """Write `vectors` (float32 rows) for `words` in format `fmt`, atomically."""
    if fmt not in FORMATS:
        raise FastembError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    vectors = np.asarray(vectors, dtype=np.float32)
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise FastembError(f"word {w!r} contains whitespace: it cannot be written in {fmt} format")
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        if fmt != "glove":
            f.write(f"{len(words)} {vectors.shape[1]}\n".encode("utf-8"))
        for w, row in zip(words, vectors):
            if fmt == "word2vec-binary":
                f.write(f"{w} ".encode("utf-8") + row.tobytes())
            else:
                f.write(_text_row(w, row))


MAX_WORD_BYTES = 4096
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _header(line):
    parts = line.split()
    if len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _check_word(path, where, raw: bytes) -> str:
    try:
        word = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(f"{path}: {where}: the word is not UTF-8 text: the file's header (count, dimension) "
                        f"does not match its contents") from None
    if not word or any(c.isspace() or (ord(c) < 32) for c in word):
        raise FileError(f"{path}: {where}: {word[:40]!r} is not a word: the file's header (count, dimension) "
                        f"does not match its contents")
    return word


class _Words:
    """Collects words, refusing duplicates with the places of both."""

    def __init__(self, path):
        self.path, self.words, self.first = path, [], {}

    def add(self, word, where):
        if word in self.first:
            raise FileError(f"{self.path}: {where}: the word {word!r} again (first at {self.first[word]})")
        self.first[word] = where
        self.words.append(word)


def _read_binary(f, path, n, dim, limit=None, dtype=np.float32):
    """word2vec.c's binary format: 'word ' then dim float32, an optional newline after each vector.
    limit: read the first `limit` vectors only (the rest of the file is not read)."""
    row_bytes = 4 * dim
    take = n if limit is None else min(n, limit)
    vectors = np.empty((take, dim), dtype)
    words = _Words(path)
    buf, pos = b"", 0
    for i in range(take):
        where = f"vector {i + 1} of {n}"
        while True:
            while pos < len(buf) and buf[pos:pos + 1] == b"\n":  # word2vec.c ends vectors with a newline
                pos += 1
            space = buf.find(b" ", pos)
            if space >= 0:
                break
            if len(buf) - pos > MAX_WORD_BYTES:
                raise FileError(f"{path}: {where}: no word found: the file's header (count, dimension) does not "
                                f"match its contents")
            more = f.read(1 << 20)
            if not more:
                raise FileError(f"{path}: truncated: {i} of the {n} vectors its header announces")
            buf, pos = buf[pos:] + more, 0
        words.add(_check_word(path, where, buf[pos:space]), where)
        pos = space + 1
        while len(buf) - pos < row_bytes:
            more = f.read(max(1 << 20, row_bytes))
            if not more:
                raise FileError(f"{path}: truncated in {where}")
            buf, pos = buf[pos:] + more, 0
        vectors[i] = np.frombuffer(buf, dtype=np.float32, count=dim, offset=pos)
        pos += row_bytes
    rest = buf[pos:] + f.read(1 << 16)
    if take == n and rest.strip(b"\n"):
        raise FileError(f"{path}: data after the {n} vectors its header announces: the header's count or "
                        f"dimension is wrong")
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise FileError(f"{path}: vector {row + 1} ({words.words[row]!r}) holds non-finite values"
                        + (" (or values beyond float16's range)" if vectors.dtype == np.float16 else ""))
    return words.words, vectors


def _read_text(f, path, n, dim, first_line=None, limit=None, dtype=np.float32):
    """word2vec text (n, dim from its header) or GloVe text (no header: dim from the first line); the first
    `limit` vectors only when given."""
    words = _Words(path)
    rows = []
    line_no = 1 if first_line is None else 0
    lines = f if first_line is None else _chain([first_line], f)
    for raw in lines:
        if limit is not None and len(rows) == limit:
            break
        line_no += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FileError(f"{path}:{line_no}: not UTF-8 text (byte {e.start + 1})") from None
        items = text.rstrip("\r\n").rstrip(" ").split(" ")
        if items == [""]:
            continue
        if dim is None:
            dim = len(items) - 1
            if dim < 1:
                raise FileError(f"{path}:{line_no}: a word without a vector")
        if len(items) - 1 != dim:
            raise FileError(f"{path}:{line_no}: {len(items) - 1} values, expected {dim}")
        if n is not None and len(rows) == n:
            raise FileError(f"{path}:{line_no}: more vectors than the {n} its header announces")
        words.add(_check_word(path, f"line {line_no}", items[0].encode("utf-8")), f"line {line_no}")
        values = text[len(items[0]) + 1:]
        try:  # numbers as C writes them: ASCII, no digit separators ('1_0') nor other scripts' digits
            if not values.isascii() or "_" in values:
                raise ValueError
            row = np.array(items[1:], dtype=np.float64)
        except ValueError:
            raise FileError(f"{path}:{line_no}: not a number in the vector of {items[0]!r}") from None
        if not np.isfinite(row).all():
            raise FileError(f"{path}:{line_no}: non-finite value in the vector of {items[0]!r}")
        if (np.abs(row) > FLOAT32_MAX).any():
            raise FileError(f"{path}:{line_no}: a value in the vector of {items[0]!r} is out of the float32 range")
        row = row.astype(dtype)
        if not np.isfinite(row).all():
            raise FileError(f"{path}:{line_no}: a value in the vector of {items[0]!r} is beyond float16's range")
        rows.append(row)
    if not rows:
        raise FileError(f"{path}: no vectors")
    if n is not None and len(rows) != (n if limit is None else min(n, limit)):
        raise FileError(f"{path}: truncated: {len(rows)} of the {n} vectors its header announces")
    return words.words, np.vstack(rows)


def _chain(first, rest):
    yield from first
    yield from rest


def read_vectors(path, fmt=None, limit=None, dtype=np.float32):
    """(words, vectors) from a word2vec (text or binary) or GloVe file; fmt=None guesses. The file
    is checked against its header (count, dimension), for ragged, truncated and non-finite lines, and for
    repeated words; errors name the file and the line or vector. limit: the first `limit` vectors only
    (as gensim's load_word2vec_format(limit=)); dtype: float32 or float16 (half the memory)."""
    from fastemb.files import check_readable
    from fastemb.files import available_memory
    limit, dtype = check_limit(limit), check_dtype(dtype)
    path = check_readable(path)
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 16)
            if first[:8] == b"\x89HDF\r\n\x1a\n":
                raise FileError(f"{path}: an HDF5 file, not word2vec or GloVe text")
            if first[:2] == b"\x80\x04" or first[:2] == b"\x80\x03" or first[:2] == b"\x80\x02":
                raise FileError(f"{path}: a Python pickle (a gensim model?), not word2vec or GloVe vectors: load "
                                f"it in gensim and save_word2vec_format, or use Embeddings.from_gensim")
            if first[:4] in (b"\xba\x16\x4f\x2f", b"\x2f\x4f\x16\xba"):
                raise FileError(f"{path}: a fastText .bin model, not vectors: use its .vec file")
            header = _header(first)
            if fmt is None:
                if header is None:
                    fmt = "glove"
                else:
                    pos = f.tell()
                    sample = f.read(4096)
                    f.seek(pos)
                    fmt = "word2vec" if _is_text(sample) else "word2vec-binary"
            if fmt not in FORMATS:
                raise FastembError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
            if fmt in ("word2vec", "word2vec-binary"):
                if header is None:
                    raise FileError(f"{path}: no 'count dimension' header line: not a word2vec file")
                n, dim = header
                if n < 1 or dim < 1:
                    raise FileError(f"{path}: header announces {n} vectors of dimension {dim}")
                have = available_memory()
                take = n if limit is None else min(n, limit)
                if have is not None and np.dtype(dtype).itemsize * take * dim > have // 2:
                    raise FileError(f"{path}: header announces {n:,} × {dim:,} values, more than memory holds"
                                    + ("" if limit is not None else " (limit= reads the first words only)"))
                if fmt == "word2vec-binary":
                    return _read_binary(f, path, n, dim, limit, dtype)
                return _read_text(f, path, n, dim, limit=limit, dtype=dtype)
            return _read_text(f, path, None, None, first_line=first, limit=limit, dtype=dtype)
    except OSError as e:
        if isinstance(e, FastembError):
            raise
        from fastemb.files import describe_os_error
        raise FileError(f"{path}: {describe_os_error(e)}") from None


def check_limit(limit):
    """None, or a positive number of words (an OptionError otherwise)."""
    import numbers
    from fastemb.errors import OptionError
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise OptionError("limit", f"must be a positive number of words, or None (got {limit!r})")
    return int(limit)


def check_dtype(dtype):
    """np.float32 or np.float16: the storage types of loaded vectors."""
    from fastemb.errors import OptionError
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise OptionError("dtype", f"must be float32 or float16 (got {dtype!r})")
    return dt.type


def _is_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # a character cut by the sample's end is fine
            return False
    return b"\x00" not in sample


# ------------------------------------------------------------------------------------ word counts
def write_vocab_counts(path, words, counts):
    """word2vec.c's -save-vocab format (also GloVe's vocab.txt): 'word count' lines, atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for w, c in zip(words, np.asarray(counts).tolist()):
            f.write(f"{w} {c}\n")


def read_vocab_counts(vectors_path, words, vocab=None):
    """Counts for `words` from a 'word count' file: `vocab`, else VECTORS.vocab when it exists (None
    otherwise). Every word of the vectors must be counted there; extra entries (word2vec.c's </s>) are
    ignored."""
    import os
    from fastemb.files import read_text_lines
    from fastemb.progress import log
    path = vocab if vocab is not None else f"{vectors_path}.vocab"
    if vocab is None and not os.path.exists(path):
        return None
    counts = {}
    for n, line in read_text_lines(path, "vocabulary file"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise FileError(f"{path}:{n}: expected 'word count'")
        counts[parts[0]] = int(parts[1])
    missing = [w for w in words if w not in counts]
    if missing:
        if vocab is not None:
            raise FileError(f"{path}: no count for {len(missing):,} of the {len(words):,} words (e.g. {missing[0]!r})")
        log.warning(f"warning: {path} does not count every word of {vectors_path}; counts not read")
        return None
    return np.array([counts[w] for w in words], dtype=np.int64)
