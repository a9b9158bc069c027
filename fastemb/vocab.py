"""Vocabulary counting and corpus encoding, in one streaming pass over the text.

Pass 1 tokenizes every chunk once: the kernel counts tokens in a hash table and (when an encoded corpus
is wanted) writes each token's provisional id -- its first-occurrence number -- to a temporary file.
When the table outgrows its memory budget the rarest entries are pruned as in word2vec.c's ReduceVocab
(their occurrences so far are forgotten: counts of pruned words become lower bounds, which the log says).
Pass 2 maps provisional ids to final ids (descending count, ties by first occurrence) over the id file
in blocks, dropping out-of-vocabulary tokens and empty sentences. Stdin works because the text is read once.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from fastemb import files
from fastemb.corpus import MAX_TOKEN_BYTES, CorpusOptions, CorpusReader, is_sentences
from fastemb.files import write_array
from fastemb.errors import FastembError, FileError, param
from fastemb.progress import Progress, log

BYTES_PER_ENTRY = 64  # table arrays (36) + int64 slots at load 1/2 (16) + ~10 bytes of string


@dataclass
class Vocab:
    words: list
    counts: np.ndarray
    raw_tokens: int = 0          # every token read, in or out of the vocabulary
    distinct: int = 0            # distinct tokens seen (before min_count)
    pruned: int = 0              # entries dropped by the memory budget while counting
    _index: dict = field(default=None, repr=False)

    def __len__(self):
        return len(self.words)

    @property
    def total(self) -> int:
        """Tokens of the corpus that are in the vocabulary (word2vec's train_words)."""
        return int(self.counts.sum())

    @property
    def index(self) -> dict:
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.words)}
        return self._index

    def save_tsv(self, path):
        from fastemb.store import atomic_output
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for w, c in zip(self.words, self.counts.tolist()):
                f.write(f"{w}\t{c}\n")

    def save(self, path, format="tsv"):
        """tsv: word<TAB>count; glove / word2vec: 'word count' (GloVe's vocab_count, word2vec.c's -save-vocab)."""
        if format == "tsv":
            return self.save_tsv(path)
        if format not in ("glove", "word2vec"):
            raise FastembError(f"unknown vocabulary format {format!r} (tsv, glove or word2vec)")
        from fastemb.formats import write_vocab_counts
        write_vocab_counts(path, self.words, self.counts)

    @classmethod
    def load_tsv(cls, path):
        from fastemb.files import read_text_lines
        words, counts = [], []
        for n, line in read_text_lines(path, "vocabulary file"):
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].isdigit():
                raise FileError(f"{path}:{n}: expected word<TAB>count")
            words.append(parts[0])
            counts.append(int(parts[1]))
        return cls(words, np.array(counts, dtype=np.int64))


def _kernels():
    from fastemb.kernels import tokenize as _tokenize_kernels
    return _tokenize_kernels


class StringTable:
    """Growable open-addressing table of byte strings with counts, for the tokenizer kernel."""

    def __init__(self, entries=1 << 16):
        K = _kernels()
        self.slots = np.full(4 * entries, K.EMPTY, np.int64)
        self.e_hash = np.zeros(entries, np.uint64)
        self.e_off = np.zeros(entries, np.int64)
        self.e_len = np.zeros(entries, np.int32)
        self.e_count = np.zeros(entries, np.int64)
        self.e_pid = np.zeros(entries, np.int64)
        self.arena = np.zeros(entries * 8, np.uint8)
        self.state = np.zeros(K.STATE_SIZE, np.int64)

    @property
    def n(self):
        return int(self.state[_kernels().S_ENTRIES])

    def grow(self, length_needed):
        K = _kernels()
        st = self.state
        n, used = st[K.S_ENTRIES], st[K.S_ARENA]
        if n >= self.e_hash.shape[0]:
            cap = 2 * self.e_hash.shape[0]
            for name in ("e_hash", "e_off", "e_len", "e_count", "e_pid"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
        if used + length_needed > self.arena.shape[0]:
            new = np.zeros(max(2 * self.arena.shape[0], used + length_needed), np.uint8)
            new[:used] = self.arena[:used]
            self.arena = new
        if 2 * (n + 1) > self.slots.shape[0]:
            self.slots = np.full(2 * self.slots.shape[0], K.EMPTY, np.int64)
            K.rebuild_slots(self.slots, self.e_hash, n)

    def prune(self, min_reduce):
        """Drop entries counted min_reduce times or fewer; returns how many were dropped."""
        K = _kernels()
        n = self.n
        keep = self.e_count[:n] > min_reduce
        new_n, used = K.compact(keep, self.e_hash, self.e_off, self.e_len, self.e_count, self.e_pid,
                                self.arena)
        self.state[K.S_ENTRIES] = new_n
        self.state[K.S_ARENA] = used
        K.rebuild_slots(self.slots, self.e_hash, new_n)
        return n - new_n

    def word(self, e) -> str:
        off, length = self.e_off[e], self.e_len[e]
        return self.arena[off:off + length].tobytes().decode("utf-8", errors="replace")

    def raw_words(self) -> list:
        """Every entry's word as UTF-8 bytes, in entry order."""
        n = self.n
        arena = self.arena[:int(self.state[_kernels().S_ARENA])].tobytes()
        return [arena[o:o + k] for o, k in zip(self.e_off[:n].tolist(), self.e_len[:n].tolist())]

    def copy(self) -> "StringTable":
        t = StringTable.__new__(StringTable)
        for name in ("slots", "e_hash", "e_off", "e_len", "e_count", "e_pid", "arena", "state"):
            setattr(t, name, getattr(self, name).copy())
        return t


@dataclass
class EncodedCorpus:
    """The corpus as uint32 ids (memory-mapped) with sentence end offsets; owns its work directory."""
    vocab: Vocab
    ids: np.ndarray
    sentence_ends: np.ndarray
    work_dir: str
    invalid_bytes: int = 0

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])

    def longest_sentence(self, block=1 << 20) -> int:
        """Length of the longest sentence, reading the boundaries in blocks (bounded memory)."""
        longest, prev = 1, 0
        with open(os.path.join(self.work_dir, "ends.i64"), "rb") as f:
            while len(part := np.fromfile(f, dtype=np.int64, count=block)):
                longest = max(longest, int(np.max(np.diff(part, prepend=prev))))
                prev = int(part[-1])
        return longest

    def digest(self, block=1 << 24) -> str:
        """SHA-256 of the token ids and sentence ends: what a resumed run must find again."""
        import hashlib
        h = hashlib.sha256()
        for name in ("ids.u32", "ends.i64"):
            with open(os.path.join(self.work_dir, name), "rb") as f:
                while chunk := f.read(block):
                    h.update(chunk)
        return h.hexdigest()

    def close(self):
        self.ids = self.sentence_ends = None
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _drain(table, ids_buf, sents_buf, ids_file, sents_file):
    K = _kernels()
    st = table.state
    if ids_file is not None:
        write_array(ids_file, ids_buf[:st[K.S_OUT]], os.path.dirname(ids_file.name))
        write_array(sents_file, sents_buf[:st[K.S_SENTS]], os.path.dirname(sents_file.name))
    st[K.S_OUT] = 0
    st[K.S_SENTS] = 0


def scan_corpus(reader, *, max_entries, max_sentence_length, ids_file=None, sents_file=None,
                 progress: Progress):
    """Pass 1 over a reader's chunks (a CorpusReader, or the Dask shard reader): returns the StringTable and
    how many entries the memory budget pruned. With ids_file/sents_file, each token's provisional id and the
    sentence ends are written to them."""
    K = _kernels()
    table = StringTable()
    buf_len = 1 << 20
    ids_buf = np.empty(buf_len if ids_file is not None else 0, np.uint32)
    sents_buf = np.empty(buf_len // 8 if ids_file is not None else 0, np.int64)
    write_ids = ids_file is not None
    carry = b""
    pruned = 0
    min_reduce = 1
    from fastemb.compiling import notice
    first = notice([K.scan]).begin()
    for chunk in reader:
        data = carry + chunk if carry else chunk
        buf = np.frombuffer(data, dtype=np.uint8)
        pos = 0
        while True:
            code, pos = K.scan(buf, pos, False, max_sentence_length, MAX_TOKEN_BYTES, write_ids, max_entries,
                               table.slots, table.e_hash, table.e_off, table.e_len, table.e_count,
                               table.e_pid, table.arena, table.state, ids_buf, sents_buf)
            if first is not None:
                if first.compiling:
                    first.end()
                    progress.rebase(reader.bytes_done, int(table.state[K.S_TOKENS]))
                first = None
            if code == K.DONE:
                break
            if code == K.OUT_FULL:
                _drain(table, ids_buf, sents_buf, ids_file, sents_file)
            elif table.n >= max_entries:
                dropped = table.prune(min_reduce)
                pruned += dropped
                log.info(f"vocabulary: table reached {max_entries:,} entries (memory budget): pruned "
                             f"{dropped:,} words seen {min_reduce} time(s) or fewer; their counts are lost")
                min_reduce += 1
            else:
                table.grow(MAX_TOKEN_BYTES)
        carry = data[pos:]
        progress.update(reader.bytes_done, int(table.state[K.S_TOKENS]))
    if carry:  # the reader ends every source with b"\n", so this only happens on a bug
        raise AssertionError("tokenizer left an unfinished token")
    _drain(table, ids_buf, sents_buf, ids_file, sents_file)
    return table, pruned


def vocabulary_order(counts, first, min_count, max_vocab):
    """Indices of the words kept, in vocabulary order: count at least min_count, descending count, ties by
    first occurrence, at most max_vocab. `first` orders the occurrences (a provisional id locally, a
    (shard, id) number on a Dask cluster). Returns (order, how many words reached min_count)."""
    counts = np.asarray(counts)
    keep = np.flatnonzero(counts >= min_count)
    order = keep[np.lexsort((np.asarray(first)[keep], -counts[keep]))]
    eligible = len(order)
    if max_vocab is not None:
        order = order[:max_vocab]
    return order, eligible


def warn_reading(invalid_bytes, invalid_sources, truncated):
    """The warnings of a counting pass: invalid UTF-8 replaced (naming the first files), long tokens cut."""
    if invalid_bytes:
        where = ", ".join(invalid_sources[:3]) + (" ..." if len(invalid_sources) > 3 else "")
        log.warning(f"warning: {invalid_bytes:,} invalid UTF-8 bytes replaced by U+FFFD (in {where})")
    if truncated:
        log.warning(f"warning: {truncated:,} tokens longer than {MAX_TOKEN_BYTES} bytes were truncated")


def check_counted(raw_tokens, n_words, distinct, min_count, sources):
    """One-line errors for a corpus without tokens, or without a word reaching min_count."""
    shown = ["<stdin>" if s == "-" else str(s) for s in sources[:3]]
    names = ", ".join(shown) + (" ..." if len(sources) > 3 else "")
    if raw_tokens == 0:
        raise FastembError(f"corpus is empty: no tokens in {names}")
    if n_words == 0:
        raise FastembError(f"no word occurs at least {min_count} times ({distinct:,} distinct words in "
                           f"{raw_tokens:,} tokens): lower {param('min_count')}")


def _extend(table, base, update, min_count, max_vocab):
    """(entry -> final id, the merged Vocab's words and counts) for continued training: `base`'s words keep
    their ids and add this corpus's counts; with `update`, new words that occur min_count times are appended
    (descending count, ties by first occurrence) up to max_vocab words in all."""
    n = table.n
    counts = table.e_count[:n]
    index = {w: i for i, w in enumerate(base.words)}
    final = np.full(n, -1, np.int64)
    for e in range(n):
        final[e] = index.get(table.word(e), -1)
    known = final >= 0
    merged = np.asarray(base.counts, np.int64).copy()
    np.add.at(merged, final[known], counts[known])
    words = list(base.words)
    if update:
        new = np.flatnonzero(~known & (counts >= min_count))
        new = new[np.lexsort((table.e_pid[new], -counts[new]))]
        if max_vocab is not None:
            new = new[:max(0, max_vocab - len(words))]
        final[new] = len(words) + np.arange(len(new))
        words += [table.word(e) for e in new]
        merged = np.concatenate((merged, counts[new]))
    return final, words, merged


def build_vocab(paths, options: CorpusOptions | None = None, *, encode=False, work_dir=None, chunk_bytes=None,
                memory_bytes=None, base=None, update=False, client=None, **corpus_options):
    """Count the corpus (and encode it when `encode`): returns Vocab, or EncodedCorpus (a context manager
    that removes its work directory). `options` or flat keyword arguments (min_count=5, ...) are the
    CorpusOptions; `memory_bytes` overrides its memory budget (tests force pruning with tiny ones).
    `base` (a Vocab, or anything with words and counts) continues an earlier vocabulary: its words keep
    their order and ids, counts add up, other words are out of vocabulary unless `update` appends them.
    client: count on a Dask cluster (a dask.distributed Client, a scheduler address or "local:N"; files,
    directories or URLs only): the same Vocab as counting here (`fastemb.dask.vocabulary`)."""
    from fastemb.errors import OptionError
    unknown = sorted(set(corpus_options) - set(CorpusOptions.specs()))
    if unknown:
        raise OptionError(unknown[0], "is not a parameter of fastemb.build_vocab")
    o = options if options is not None else CorpusOptions(**corpus_options)
    if options is not None and corpus_options:
        o = o.replace(**corpus_options)
    if client is not None:
        if encode or base is not None:
            raise OptionError("client", "counts a vocabulary on a cluster; encoding or continuing one runs here")
        if is_sentences(paths):
            raise OptionError("client", "reads the corpus on the workers: give files, directories or URLs, not "
                                        "Python sentences")
        from fastemb.dask import vocabulary
        return vocabulary(paths, o, client=client)
    K = _kernels()
    min_count, max_vocab, max_sentence_length = o.min_count, o.max_vocab, o.max_sentence_length
    memory = o.memory_bytes if memory_bytes is None else int(memory_bytes)
    reader = CorpusReader(paths, lowercase=o.lowercase, token_pattern=o.token_pattern, phrases=o.phrases,
                          max_sentence_length=max_sentence_length, glob=o.glob,
                          **({"chunk_bytes": chunk_bytes} if chunk_bytes else {}))
    progress = Progress("vocab" if not encode else "read", reader.total_bytes, unit="tokens")
    max_entries = max(1 << 10, memory // BYTES_PER_ENTRY)
    work = files.work_dir(work_dir) if encode else None
    try:
        if encode:
            with open(os.path.join(work, "pids.u32"), "wb") as fi, \
                    open(os.path.join(work, "sents.i64"), "wb") as fs:
                table, pruned = scan_corpus(reader, max_entries=max_entries, ids_file=fi, sents_file=fs,
                                             max_sentence_length=max_sentence_length, progress=progress)
        else:
            table, pruned = scan_corpus(reader, max_entries=max_entries,
                                         max_sentence_length=max_sentence_length, progress=progress)
        raw_tokens = int(table.state[K.S_TOKENS])
        progress.done()
        warn_reading(reader.invalid_bytes, reader.invalid_sources, int(table.state[K.S_TRUNCATED]))
        check_counted(raw_tokens, 1, table.n, min_count, reader.sources)
        remap = np.full(int(table.state[K.S_NEXT_PID]), -1, np.int64)
        if base is not None:
            final, words, merged = _extend(table, base, update, min_count, max_vocab)
            vocab = Vocab(words, merged, raw_tokens=raw_tokens, distinct=table.n, pruned=pruned)
            remap[table.e_pid[:table.n]] = final
            log.info(f"vocabulary: {len(base.words):,} words continued, {len(words) - len(base.words):,} added, "
                     f"{int((final >= 0).sum()):,} of the corpus's {table.n:,} distinct words in it")
        else:
            order, _ = vocabulary_order(table.e_count[:table.n], table.e_pid[:table.n], min_count, max_vocab)
            check_counted(raw_tokens, len(order), table.n, min_count, reader.sources)
            vocab = Vocab([table.word(e) for e in order], table.e_count[order].copy(), raw_tokens=raw_tokens,
                          distinct=table.n, pruned=pruned)
            remap[table.e_pid[order]] = np.arange(len(order))
        if not encode:
            return vocab
        del table
        corpus = _remap(work, vocab, remap)
        corpus.invalid_bytes = reader.invalid_bytes
        return corpus
    except BaseException:
        if work:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _remap(work, vocab, remap, block=1 << 22):
    """Pass 2: provisional ids -> vocabulary ids, OOV tokens and empty sentences dropped. Both files are
    read with plain reads, block by block: a memory map would leave every page it touched resident."""
    pids_path, sents_path = os.path.join(work, "pids.u32"), os.path.join(work, "sents.i64")
    n_pids = os.path.getsize(pids_path) // 4
    kept_total = 0
    last_end = 0
    pending = np.zeros(0, np.int64)  # sentence ends read but not yet reached
    with open(pids_path, "rb") as fp, open(sents_path, "rb") as fs, \
            open(os.path.join(work, "ids.u32"), "wb") as fi, open(os.path.join(work, "ends.i64"), "wb") as fe:
        for b0 in range(0, n_pids, block):
            pids = np.fromfile(fp, dtype=np.uint32, count=block)
            b1 = b0 + len(pids)
            while len(pending) == 0 or pending[-1] <= b1:
                more = np.fromfile(fs, dtype=np.int64, count=1 << 20)
                if len(more) == 0:
                    break
                pending = np.concatenate((pending, more))
            k = int(np.searchsorted(pending, b1, side="right"))
            old_ends, pending = pending[:k], pending[k:]  # the ends in (b0, b1]
            new = remap[pids]
            keep = new >= 0
            write_array(fi, new[keep].astype(np.uint32), work)
            cum = np.cumsum(keep) + kept_total
            ends = cum[old_ends - b0 - 1]
            ends = ends[np.diff(np.concatenate(([last_end], ends))) > 0]
            write_array(fe, ends, work)
            if len(ends):
                last_end = ends[-1]
            kept_total = int(cum[-1]) if len(cum) else kept_total
    os.remove(pids_path)
    os.remove(sents_path)
    return EncodedCorpus(vocab, _map(os.path.join(work, "ids.u32"), np.uint32),
                         _map(os.path.join(work, "ends.i64"), np.int64), work)


def _map(path, dtype):
    """Read-only memory map of a raw array file (numpy refuses to map an empty file)."""
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def iter_blocks(corpus: EncodedCorpus, block_tokens=1 << 22):
    """Yields (ids, ends, first_sentence): whole sentences of about block_tokens tokens, read from the
    id files with plain reads (bounded memory whatever the corpus length); ends are block-relative."""
    ids_path = os.path.join(corpus.work_dir, "ids.u32")
    ends_path = os.path.join(corpus.work_dir, "ends.i64")
    n_sent = os.path.getsize(ends_path) // 8
    pos = 0
    s = 0
    with open(ids_path, "rb") as fi, open(ends_path, "rb") as fe:
        while s < n_sent:
            ends = np.fromfile(fe, dtype=np.int64, count=min(1 << 20, n_sent - s))
            k = 0
            while k < len(ends):
                stop = max(int(np.searchsorted(ends, pos + block_tokens, side="right")), k + 1)
                ids = np.fromfile(fi, dtype=np.uint32, count=int(ends[stop - 1] - pos))
                yield ids, ends[k:stop] - pos, s + k
                pos = int(ends[stop - 1])
                k = stop
            s += len(ends)
