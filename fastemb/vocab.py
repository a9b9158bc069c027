"""Vocabulary counting and corpus encoding, in one streaming pass over the text.

Pass 1 tokenizes every chunk once: the kernel counts tokens in a hash table and (when an encoded corpus
is wanted) writes each token's provisional id -- its first-occurrence number -- to a temporary file.
When the table outgrows its memory budget the rarest entries are pruned as in word2vec.c's ReduceVocab
(their occurrences so far are forgotten: counts of pruned words become lower bounds, which the log says).
Pass 2 maps provisional ids to final ids (descending count, ties by first occurrence) over the id file
in blocks, dropping out-of-vocabulary tokens and empty sentences. Stdin works because the text is read once.

With several threads, local files are cut into line-aligned byte ranges (fastemb.sharding, shared with the
Dask path; a compressed file is one range): each range is counted and given provisional ids by its own
table on its own thread, the tables are merged exactly (counts add up, a word's first occurrence is the
smallest (range, provisional id) key: `merge_tables`, which the Dask path uses too) and the ranges are
encoded in parallel into one id file. The vocabulary, its order and every id equal a one-thread pass unless
a table had to be pruned (a warning says so).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from fastemb import files
from fastemb.corpus import MAX_TOKEN_BYTES, CorpusOptions, CorpusReader, is_sentences
from fastemb.files import write_array
from fastemb.errors import FastembError, FileError, param
from fastemb.progress import Progress, log

BYTES_PER_ENTRY = 64  # table arrays (36) + int64 slots at load 1/2 (16) + ~10 bytes of string
FIRST_BITS = 40       # a word's first occurrence over shards: (shard index << FIRST_BITS) | its provisional id
SHARD_MIN_BYTES = 4 << 20   # local parallel counting cuts ranges of at least this much text
SHARDS_PER_THREAD = 4       # ... and about this many per thread (the last ones balance the threads)


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

    def packed(self, keys=None) -> "StringTable":
        """A copy trimmed to its entries (to send to another process), e_pid replaced by `keys` if given."""
        K = _kernels()
        n, used = self.n, int(self.state[K.S_ARENA])
        t = StringTable.__new__(StringTable)
        for name in ("e_hash", "e_off", "e_len", "e_count", "e_pid"):
            setattr(t, name, getattr(self, name)[:max(n, 1)].copy())
        if keys is not None:
            t.e_pid[:n] = np.asarray(keys, np.int64)[:n]
        t.arena = self.arena[:used].copy()
        t.state = self.state.copy()
        t.slots = np.full(1 << max(4, (2 * n + 2).bit_length()), K.EMPTY, np.int64)
        K.rebuild_slots(t.slots, t.e_hash, n)
        return t

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
    seconds: dict = field(default_factory=dict)   # wall seconds of the passes that made it: read, encode

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


def merge_into(out: "StringTable", table: "StringTable", keys=None) -> np.ndarray:
    """Add `table`'s words to `out`: counts add up and a word's key (e_pid: where it first occurred) is the
    smaller of the two (`keys` replaces table's e_pid). Returns the entry in `out` of each of table's entries."""
    K = _kernels()
    n = table.n
    key = table.e_pid if keys is None else np.asarray(keys, np.int64)
    where = np.empty(n, np.int64)
    i = 0
    while True:
        code, i = K.merge(table.arena, table.e_off, table.e_len, table.e_hash, table.e_count, key, i, n, out.slots,
                          out.e_hash, out.e_off, out.e_len, out.e_count, out.e_pid, out.arena, out.state, where)
        if code == K.DONE:
            break
        out.grow(MAX_TOKEN_BYTES)
    for slot in (K.S_TOKENS, K.S_TRUNCATED):
        out.state[slot] += int(table.state[slot])
    return where


def merge_tables(tables, keys=None):
    """Exact merge of tokenizer tables (merge_into each, in order; `keys[i]` replaces table i's e_pid).
    Returns (the merged table, [per table: the merged entry of each of its entries]); the caller orders the
    merged words with vocabulary_order(counts, keys)."""
    biggest = max((t.n for t in tables), default=0)
    out = StringTable(entries=max(1 << 10, 1 << ((2 * biggest).bit_length() - 1)))
    wheres = [merge_into(out, t, None if keys is None else keys[j]) for j, t in enumerate(tables)]
    return out, wheres


@dataclass
class _Part:
    """One range of the corpus after counting: its provisional ids mapped to the merged table's entries
    (-1: pruned), the tokens each provisional id stands for, and its id files (when encoding)."""
    entry_of: np.ndarray
    count_of: np.ndarray
    pruned: int
    pids: str | None = None
    sents: str | None = None


def _part_of(table, where, pruned, pids=None, sents=None) -> _Part:
    n = table.n
    next_pid = int(table.state[_kernels().S_NEXT_PID])
    entry_of = np.full(next_pid, -1, np.int64)
    count_of = np.zeros(next_pid, np.int64)
    entry_of[table.e_pid[:n]] = where
    count_of[table.e_pid[:n]] = table.e_count[:n]
    return _Part(entry_of, count_of, pruned, pids, sents)


class _SharedProgress:
    """The progress of one range, reported as the sum over every range (scan_corpus calls update from
    the threads)."""

    def __init__(self, progress, parts):
        import threading
        self.progress, self.lock = progress, threading.Lock()
        self.done, self.items = [0] * parts, [0] * parts

    def of(self, k):
        shared = self

        class One:
            def update(self, done, items=None, **kw):
                with shared.lock:
                    shared.done[k] = done
                    shared.items[k] = items or 0
                    shared.progress.update(sum(shared.done), sum(shared.items))

            def rebase(self, *a, **k):
                pass
        return One()


def local_shards(reader: CorpusReader, threads: int):
    """The byte ranges to count on `threads` threads, or None to read the corpus on one (one thread,
    stdin, Python sentences, a phrase table, or too little text to share)."""
    if threads <= 1 or reader.phrases is not None or reader.total_bytes is None \
            or reader.total_bytes < 2 * SHARD_MIN_BYTES:
        return None
    from fastemb.sharding import shards
    size = max(SHARD_MIN_BYTES, -(-reader.total_bytes // (threads * SHARDS_PER_THREAD)))
    found = shards(reader.sources, size)
    return found if len(found) > 1 else None


def _count(reader, o, *, threads, max_entries, work, progress):
    """Pass 1: (merged table, parts, invalid bytes, files with invalid bytes, pruned) for the reader's corpus,
    on one thread or over byte ranges on `threads`."""
    K = _kernels()
    shard_list = local_shards(reader, threads)
    if shard_list is None:
        fi = fs = None
        try:
            if work:
                fi = open(os.path.join(work, "pids.0.u32"), "wb")
                fs = open(os.path.join(work, "sents.0.i64"), "wb")
            table, pruned = scan_corpus(reader, max_entries=max_entries, ids_file=fi, sents_file=fs,
                                         max_sentence_length=o.max_sentence_length, progress=progress)
        finally:
            for f in (fi, fs):
                if f is not None:
                    f.close()
        part = _part_of(table, np.arange(table.n), pruned, fi and fi.name, fs and fs.name)
        return table, [part], reader.invalid_bytes, reader.invalid_sources, pruned
    from concurrent.futures import ThreadPoolExecutor
    from fastemb.compiling import notice
    from fastemb.sharding import ShardReader
    params = {"lowercase": o.lowercase, "token_pattern": o.token_pattern, "chunk_bytes": reader.chunk_bytes}
    per_shard = max(1 << 10, max_entries // (2 * threads))
    shared = _SharedProgress(progress, len(shard_list))
    with notice([K.scan, K.merge, K.remap]):  # compiled here, once, not by every thread at its first call
        _warm()

    def count(k, shard):
        r = ShardReader(shard, params)
        fi = fs = None
        try:
            if work:
                fi = open(os.path.join(work, f"pids.{k}.u32"), "wb")
                fs = open(os.path.join(work, f"sents.{k}.i64"), "wb")
            table, pruned = scan_corpus(r, max_entries=per_shard, ids_file=fi, sents_file=fs,
                                         max_sentence_length=o.max_sentence_length, progress=shared.of(k))
        finally:
            for f in (fi, fs):
                if f is not None:
                    f.close()
        return table, pruned, r.invalid_bytes, fi and fi.name, fs and fs.name

    merged, parts, invalid, invalid_where, pruned = None, [], 0, [], 0
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(count, k, sh) for k, sh in enumerate(shard_list)]
        try:
            for k, fut in enumerate(futures):  # merged in corpus order: the same table whatever the timing
                table, dropped, bad, pids, sents = fut.result()
                futures[k] = None
                keys = (np.int64(k) << np.int64(FIRST_BITS)) | table.e_pid[:table.n]
                if merged is None:
                    merged = StringTable(entries=max(1 << 10, 1 << ((2 * table.n).bit_length() - 1)))
                parts.append(_part_of(table, merge_into(merged, table, keys), dropped, pids, sents))
                del table
                pruned += dropped
                invalid += bad
                if bad and shard_list[k].url not in invalid_where:
                    invalid_where.append(shard_list[k].url)
                if merged.n > max_entries // 2:
                    pruned += _prune_merged(merged, parts, max_entries // 2)
        except BaseException:
            for f in futures:
                if f is not None:
                    f.cancel()
            raise
    if pruned:
        log.warning(f"warning: the counting tables reached the memory budget and pruned {pruned:,} rare words: "
                    f"counts are lower bounds, and with several threads the vocabulary can differ from a "
                    f"one-thread run (raise {param('memory')})")
    log.info(f"vocabulary: counted {len(shard_list)} ranges of the corpus on {threads} threads")
    return merged, parts, invalid, invalid_where, pruned


def _prune_merged(merged, parts, limit):
    """Prune the merged table (as the one-thread counter prunes its table) until it holds at most `limit`
    entries; the parts' entries follow. Returns how many entries were dropped."""
    dropped, min_reduce = 0, 1
    while merged.n > limit:
        keep = merged.e_count[:merged.n] > min_reduce
        new_index = np.where(keep, np.cumsum(keep) - 1, -1)
        dropped += merged.prune(min_reduce)
        for part in parts:
            part.entry_of = np.where(part.entry_of >= 0, new_index[part.entry_of], -1)
        min_reduce += 1
    return dropped


def _warm():
    """The counting kernels called once on nothing (Numba compiles or loads them at a first call)."""
    K = _kernels()
    t = StringTable(1 << 4)
    e32, e64 = np.zeros(0, np.uint32), np.zeros(0, np.int64)
    K.scan(np.zeros(0, np.uint8), 0, True, 2, MAX_TOKEN_BYTES, False, 1 << 10, t.slots, t.e_hash, t.e_off,
           t.e_len, t.e_count, t.e_pid, t.arena, t.state, e32, e64)
    K.merge(t.arena, t.e_off, t.e_len, t.e_hash, t.e_count, t.e_pid, 0, 0, t.slots, t.e_hash, t.e_off, t.e_len,
            t.e_count, t.e_pid, t.arena, t.state, e64)
    K.remap(e32, e64, e64, 0, 0, e32, e64)


def build_vocab(paths, options: CorpusOptions | None = None, *, encode=False, work_dir=None, chunk_bytes=None,
                memory_bytes=None, base=None, update=False, client=None, threads=1, **corpus_options):
    """Count the corpus (and encode it when `encode`): returns Vocab, or EncodedCorpus (a context manager
    that removes its work directory). `options` or flat keyword arguments (min_count=5, ...) are the
    CorpusOptions; `memory_bytes` overrides its memory budget (tests force pruning with tiny ones).
    `base` (a Vocab, or anything with words and counts) continues an earlier vocabulary: its words keep
    their order and ids, counts add up, other words are out of vocabulary unless `update` appends them.
    threads: count and encode local files over byte ranges on this many threads (None: every core); the
    result equals one thread's unless the memory budget pruned a table (a warning says so).
    client: count on a Dask cluster (a dask.distributed Client, a scheduler address or "local:N"; files,
    directories or URLs only): the same Vocab as counting here (`fastemb.dask.vocabulary`)."""
    from fastemb.errors import OptionError
    from fastemb.parallel import resolve_threads
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
    if isinstance(threads, bool) or not (threads is None or isinstance(threads, (int, np.integer))):
        raise OptionError("threads", f"must be a whole number of threads (got {threads!r})")
    threads = resolve_threads(threads)
    K = _kernels()
    min_count, max_vocab = o.min_count, o.max_vocab
    memory = o.memory_bytes if memory_bytes is None else int(memory_bytes)
    reader = CorpusReader(paths, lowercase=o.lowercase, token_pattern=o.token_pattern, phrases=o.phrases,
                          max_sentence_length=o.max_sentence_length, glob=o.glob,
                          **({"chunk_bytes": chunk_bytes} if chunk_bytes else {}))
    progress = Progress("vocab" if not encode else "read", reader.total_bytes, unit="tokens")
    max_entries = max(1 << 10, memory // BYTES_PER_ENTRY)
    work = files.work_dir(work_dir) if encode else None
    t0 = time.perf_counter()
    try:
        table, parts, invalid, invalid_where, pruned = _count(reader, o, threads=threads, max_entries=max_entries,
                                                              work=work, progress=progress)
        raw_tokens = int(table.state[K.S_TOKENS])
        progress.done()
        warn_reading(invalid, invalid_where, int(table.state[K.S_TRUNCATED]))
        check_counted(raw_tokens, 1, table.n, min_count, reader.sources)
        if base is not None:
            final, words, merged = _extend(table, base, update, min_count, max_vocab)
            vocab = Vocab(words, merged, raw_tokens=raw_tokens, distinct=table.n, pruned=pruned)
            log.info(f"vocabulary: {len(base.words):,} words continued, {len(words) - len(base.words):,} added, "
                     f"{int((final >= 0).sum()):,} of the corpus's {table.n:,} distinct words in it")
        else:
            order, _ = vocabulary_order(table.e_count[:table.n], table.e_pid[:table.n], min_count, max_vocab)
            check_counted(raw_tokens, len(order), table.n, min_count, reader.sources)
            vocab = Vocab([table.word(e) for e in order], table.e_count[order].copy(), raw_tokens=raw_tokens,
                          distinct=table.n, pruned=pruned)
            final = np.full(table.n, -1, np.int64)
            final[order] = np.arange(len(order))
        if not encode:
            return vocab
        del table
        t1 = time.perf_counter()
        corpus = _encode(work, vocab, parts, final, threads)
        corpus.invalid_bytes = invalid
        corpus.seconds = {"read": t1 - t0, "encode": time.perf_counter() - t1}
        return corpus
    except BaseException:
        if work:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _encode(work, vocab, parts, final, threads, block=1 << 22):
    """Pass 2: provisional ids -> vocabulary ids (`final` of each merged entry), out-of-vocabulary tokens and
    empty sentences dropped, each part written at its place in one id file (its length is known from the
    counts), the parts on `threads` threads. Both files are read with plain reads, block by block: a memory
    map would leave every page it touched resident."""
    from concurrent.futures import ThreadPoolExecutor
    ids_of = [np.where(p.entry_of >= 0, final[np.maximum(p.entry_of, 0)], -1) for p in parts]
    kept = [int(p.count_of[i >= 0].sum()) for p, i in zip(parts, ids_of)]
    bases = np.concatenate(([0], np.cumsum(kept))).astype(np.int64)
    ids_path = os.path.join(work, "ids.u32")
    fd = os.open(ids_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        def one(k):
            return _encode_part(k, parts[k], ids_of[k], int(bases[k]), fd, work, block)
        if len(parts) == 1 or threads <= 1:
            written = [one(k) for k in range(len(parts))]
        else:
            with ThreadPoolExecutor(min(threads, len(parts))) as pool:
                written = list(pool.map(one, range(len(parts))))
    finally:
        os.close(fd)
    if written != kept:
        raise AssertionError("encoding wrote another number of tokens than the counts hold")
    with open(os.path.join(work, "ends.i64"), "wb") as fe:
        for k in range(len(parts)):
            path = os.path.join(work, f"ends.{k}.i64")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 24):
                    try:
                        fe.write(chunk)
                    except OSError as e:
                        raise FileError(f"{work}: cannot write: {files.describe_os_error(e)}") from None
            os.remove(path)
    return EncodedCorpus(vocab, _map(ids_path, np.uint32), _map(os.path.join(work, "ends.i64"), np.int64), work)


def _encode_part(k, part, ids_of, base, fd, work, block):
    """Encode one part's id files: ids written at `base` in the id file, sentence ends (positions in the
    whole encoded corpus) to ends.K.i64. Returns the ids written."""
    K = _kernels()
    n_pids = os.path.getsize(part.pids) // 4
    kept_total = 0
    last_end = base
    pending = np.zeros(0, np.int64)  # sentence ends read but not yet reached
    out_ids = np.empty(block, np.uint32)
    out_ends = np.empty(block, np.int64)
    with open(part.pids, "rb") as fp, open(part.sents, "rb") as fs, \
            open(os.path.join(work, f"ends.{k}.i64"), "wb") as fe:
        for b0 in range(0, n_pids, block):
            pids = np.fromfile(fp, dtype=np.uint32, count=block)
            b1 = b0 + len(pids)
            while len(pending) == 0 or pending[-1] <= b1:
                more = np.fromfile(fs, dtype=np.int64, count=1 << 20)
                if len(more) == 0:
                    break
                pending = np.concatenate((pending, more))
            j = int(np.searchsorted(pending, b1, side="right"))
            ends, pending = pending[:j] - b0, pending[j:]  # the ends in (b0, b1], block-relative
            n, ne = K.remap(pids, ids_of, ends, base + kept_total, last_end, out_ids, out_ends)
            _pwrite(fd, out_ids[:n], 4 * (base + kept_total), work)
            write_array(fe, out_ends[:ne], work)
            if ne:
                last_end = int(out_ends[ne - 1])
            kept_total += n
    os.remove(part.pids)
    os.remove(part.sents)
    return kept_total


def _pwrite(fd, array, offset, where):
    view = memoryview(np.ascontiguousarray(array)).cast("B")
    while len(view):
        try:
            done = os.pwrite(fd, view, offset)
        except OSError as e:
            raise FileError(f"{where}: cannot write: {files.describe_os_error(e)}") from None
        view, offset = view[done:], offset + done


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
