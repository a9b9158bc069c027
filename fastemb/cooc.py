"""Co-occurrence counting: encoded corpus -> CSR matrix, streamed to a sink row block by row block.

Each Numba worker counts its share of every block of sentences into its own hash table (symmetric
pairs stored once, as (min, max)). A table that fills up first grows, while the tables fit in half of
the memory budget, and is otherwise extracted as a sorted run; runs stay in memory until they and the
tables outgrow the budget, then go to disk. The final merge walks row ranges of all runs at once.
Values are fixed point (see _cooc_kernels), so the matrix is the same however the work was split.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from dataclasses import dataclass

import numpy as np

from fastemb.errors import FastembError, FileError, param
from fastemb.files import describe_os_error, work_dir, write_array
from fastemb.options import SAMPLE, WINDOW, Options, Spec
from fastemb.parallel import numba_threads, resolve_threads
from fastemb.progress import Progress
from fastemb.sampling import keep_probabilities
from fastemb.vocab import EncodedCorpus, iter_blocks

ENTRY_BYTES = 16       # one uint64 key + one int64 value
MAX_LOAD = 0.7
FENCE = 4096           # every FENCE-th key of a run stays in memory to locate key ranges
# Sums are kept in fixed point, multiples of 2^-24: a weight is off by at most 3e-8 (below float32's
# resolution of the sums), and one pair can accumulate up to 5.5e11 before int64 overflows (detected).
FIXED_SCALE = float(1 << 24)
WEIGHTINGS = ("dynamic", "harmonic", "uniform")
WEIGHTING = Spec(str, "Weight of a pair at distance d: dynamic = word2vec's expected (w-d+1)/w, harmonic = "
                      "GloVe's 1/d, uniform = 1.", choices=WEIGHTINGS)
SYMMETRIC = Spec(bool, "Count the contexts on both sides of a word (--one-sided: the left side only).",
                 flags="--symmetric/--one-sided")


@dataclass(frozen=True)
class CoocOptions(Options):
    """Which pairs a co-occurrence count sees and how it weighs them. The defaults are GloVe's counting
    (`fastemb cooc`'s default, --for glove); PPMI-SVD counts with window 5 (`counting_defaults`)."""
    window: int = WINDOW(10)
    weighting: str = WEIGHTING("dynamic")
    symmetric: bool = SYMMETRIC(True)
    sample: float = SAMPLE(1e-4)


DEFAULT_FOR = "glove"   # `fastemb cooc` counts for this algorithm unless told --for another


def _kernels():
    from fastemb.kernels import cooc as _cooc_kernels
    return _cooc_kernels


def counting_algorithms() -> tuple:
    """The algorithms that train on a co-occurrence matrix (what `fastemb cooc --for` takes)."""
    from fastemb import registry
    return tuple(a.name for a in registry.all_algorithms() if a.input == "cooc")


def counting_defaults(algo: str = DEFAULT_FOR) -> CoocOptions:
    """How `algo` counts a corpus when it trains on one: the counting settings `fastemb cooc --for algo`
    starts from, and the ones `train --cooc` checks a file against."""
    from fastemb import registry
    from fastemb.errors import OptionError
    if algo not in counting_algorithms():
        raise OptionError("algo", f"must be one of {', '.join(counting_algorithms())} (got {algo!r})")
    return registry.get(algo).options().cooc


def counting_options(algo: str | None, **given) -> CoocOptions:
    """`algo`'s counting defaults with the given CoocOptions values replacing them."""
    return counting_defaults(DEFAULT_FOR if algo is None else algo).replace(**given)


def counting_mismatch(attrs, algo: str) -> str:
    """'' when a matrix counted with these recorded settings (a cooc file's attributes) is what `algo`
    counts by default, else 'window 5 (glove: 10), ...' naming each setting that differs."""
    expected = counting_defaults(algo).flat()
    diffs = []
    for name, want in expected.items():
        if name not in attrs:
            continue
        got = attrs[name]
        if hasattr(got, "item"):
            got = got.item()
        if isinstance(got, bytes):
            got = got.decode()
        same = (abs(float(got) - float(want)) <= 1e-12 * max(1.0, abs(float(want)))
                if isinstance(want, float) and not isinstance(want, bool) else got == want)
        if not same:
            diffs.append(f"{name} {got} ({algo}: {want})")
    return ", ".join(diffs)


def cooccurrences(corpus, *, algo=DEFAULT_FOR, seed=1, threads=None, tmp_dir=None, client=None, **params):
    """Count a corpus (files, or Python sentences as for fastemb.train) into (words, counts, CSR matrix);
    algo: count as this algorithm does ("glove": window 10, "ppmi-svd": window 5; both weigh word2vec's
    dynamic window and subsample with 1e-4, see `counting_defaults`); params: CoocOptions (which replace
    those defaults) and CorpusOptions by name (window=10, weighting="dynamic", min_count=5, ...).
    The result feeds fastemb.train(cooc=(words, counts, matrix), algo="glove"). client: count on a Dask
    cluster (a dask.distributed Client, an address or "local:N"; files or URLs), bit-identical."""
    from fastemb.corpus import CorpusOptions
    from fastemb.errors import OptionError
    from fastemb.files import check_work_dir
    from fastemb.options import RunOptions, split_known
    from fastemb.vocab import build_vocab
    (cooc_params, corpus_params), rest = split_known(params, CoocOptions, CorpusOptions)
    if rest:
        raise OptionError(next(iter(rest)), "is not an option of fastemb.cooccurrences")
    if algo not in counting_algorithms():
        raise OptionError("algo", f"must be one of {', '.join(counting_algorithms())} (got {algo!r})")
    options, copts = counting_options(algo, **cooc_params), CorpusOptions(**corpus_params)
    run = RunOptions(seed=seed, threads=threads)
    if client is not None:
        from fastemb.corpus import is_sentences
        if is_sentences(corpus):
            raise OptionError("client", "reads the corpus on the workers: give files, directories or URLs, not "
                                        "Python sentences")
        from fastemb.dask import cooccurrences as on_cluster
        return on_cluster(corpus, copts, options, client, seed=run.seed)
    check_work_dir(tmp_dir)
    threads = resolve_threads(run.threads)
    with build_vocab(corpus, copts, encode=True, work_dir=tmp_dir, threads=threads) as enc:
        sink = CsrCollector(len(enc.vocab))
        cooccurrence(enc, sink, options, seed=run.seed, memory=copts.memory_bytes, threads=threads,
                     spill_dir=tmp_dir)
        return enc.vocab.words, enc.vocab.counts, sink.matrix()


def distance_weights(window: int, weighting: str) -> np.ndarray:
    """Weight of a pair at distance d = 1..window (index 0 unused)."""
    d = np.arange(window + 1, dtype=np.float64)
    d[0] = 1.0
    if weighting == "dynamic":  # expected weight of word2vec's window drawn uniformly in 1..window
        w = (window - d + 1) / window
    elif weighting == "harmonic":
        w = 1.0 / d
    elif weighting == "uniform":
        w = np.ones_like(d)
    else:
        raise FastembError(f"{param('weighting')} must be one of {', '.join(WEIGHTINGS)} (got {weighting!r})")
    w[0] = 0.0
    return w


class _Run:
    """A sorted run of (key, value) pairs, in memory or in two raw files, with every FENCE-th key kept in
    memory so that any key range can be located with one small read."""

    def __init__(self, keys, vals):
        self.keys, self.vals = keys, vals
        self.fences = keys[::FENCE].copy()
        self.n = len(keys)
        self.path = None

    @property
    def nbytes(self):
        return 0 if self.keys is None else self.n * ENTRY_BYTES

    def to_disk(self, directory, name):
        self.path = os.path.join(directory, name)
        for suffix, array in ((".keys", self.keys), (".vals", self.vals)):
            try:
                with open(self.path + suffix, "wb") as f:
                    write_array(f, array, directory)
            except OSError as e:
                raise FileError(f"{directory}: cannot write: {describe_os_error(e)}") from None
        self.keys = self.vals = None

    def position(self, key) -> int:
        """Index of the first entry whose key is >= key."""
        if self.path is None:
            return int(np.searchsorted(self.keys, key))
        f = int(np.searchsorted(self.fences, key))  # the answer lies in ((f-1)·FENCE, f·FENCE]
        if f == 0:
            return 0
        lo = (f - 1) * FENCE
        with open(self.path + ".keys", "rb") as fk:
            fk.seek(8 * lo)
            block = np.fromfile(fk, dtype=np.uint64, count=min(FENCE, self.n - lo))
        return lo + int(np.searchsorted(block, key))

    def slice(self, lo, hi):
        if self.path is None:
            return self.keys[lo:hi], self.vals[lo:hi]
        with open(self.path + ".keys", "rb") as fk, open(self.path + ".vals", "rb") as fv:
            fk.seek(8 * lo)
            fv.seek(8 * lo)
            return (np.fromfile(fk, dtype=np.uint64, count=hi - lo),
                    np.fromfile(fv, dtype=np.int64, count=hi - lo))


class CsrCollector:
    """A sink that assembles the whole matrix in memory as scipy.sparse.csr_matrix."""

    def __init__(self, n_rows):
        self.n_rows = n_rows
        self.row_nnz = np.zeros(n_rows, np.int64)
        self.indices, self.data = [], []

    def append(self, r0, r1, row_nnz, indices, data):
        self.row_nnz[r0:r1] += row_nnz  # a row may arrive in several consecutive pieces
        self.indices.append(indices)
        self.data.append(data)

    def matrix(self):
        import scipy.sparse as sp
        indptr = np.zeros(self.n_rows + 1, np.int64)
        np.cumsum(self.row_nnz, out=indptr[1:])
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
        return sp.csr_matrix((cat(self.data, np.float32), cat(self.indices, np.int32), indptr),
                             shape=(self.n_rows, self.n_rows))


class PairTables:
    """The counting tables of one co-occurrence pass and their memory policy, shared by the local pass
    (`cooccurrence`) and the Dask shard tasks (fastemb.dask.cooc): one open-addressing table per thread of
    fixed-point pair sums. A table that fills up first grows, while the tables fit in a quarter of the
    memory budget; otherwise the full tables are extracted as sorted runs and handed to `on_runs` (which
    keeps them, in memory or on disk). Room for the longest sentence of a block times the window is reserved
    before each block, since the kernel checks the load only between sentences."""

    def __init__(self, n_rows, options: CoocOptions, keep, seed, memory, threads=1, on_runs=None, pool=None):
        self.window, self.symmetric = options.window, options.symmetric
        self.weights = np.rint(distance_weights(options.window, options.weighting) * FIXED_SCALE).astype(np.int64)
        self.keep, self.seed, self.memory, self.threads = keep, int(seed), int(memory), int(threads)
        self.col_bits = np.uint64(max(1, (n_rows - 1).bit_length()))
        self.key_bits = 2 * int(self.col_bits)
        self.on_runs = on_runs
        self.pool = pool
        self.cap, self.reserve = 0, 0
        self.keys = self.vals = None
        self.used = np.zeros(self.threads, np.int64)

    @property
    def nbytes(self) -> int:
        return 0 if self.keys is None else self.keys.nbytes + self.vals.nbytes

    def _fits(self, cap) -> bool:
        return self.threads * cap * ENTRY_BYTES <= self.memory // 4

    def ensure_room(self, longest_sentence):
        """Reserve room for a sentence of this many tokens (a one-line error when the budget cannot)."""
        reserve = int(longest_sentence) * self.window
        if self.keys is None:
            cap = 1 << max(16, (4 * reserve).bit_length())
            while not self._fits(cap) and MAX_LOAD * cap / 4 > reserve:
                cap //= 2
            self.cap = cap
            self.keys = np.zeros((self.threads, cap), np.uint64)
            self.vals = np.zeros((self.threads, cap), np.int64)
        while reserve > MAX_LOAD * self.cap / 2:
            if not self._fits(2 * self.cap):
                raise FastembError(f"{param('memory')} {self.memory >> 20}MB is too small for sentences of "
                                   f"{longest_sentence} tokens with window {self.window}: raise "
                                   f"{param('memory')} or lower {param('max_sentence_length')}")
            self._grow()
        self.reserve = max(self.reserve, reserve)

    def _grow(self):
        K = _kernels()
        new_cap = 2 * self.cap
        new_keys = np.zeros((self.threads, new_cap), np.uint64)
        new_vals = np.zeros((self.threads, new_cap), np.int64)
        shift = np.uint64(64 - (new_cap.bit_length() - 1))

        def rehash(w):
            K.rehash(self.keys[w], self.vals[w], new_keys[w], new_vals[w], shift)
        if self.pool is not None:
            list(self.pool.map(rehash, range(self.threads)))
        else:
            for w in range(self.threads):
                rehash(w)
        self.keys, self.vals, self.cap = new_keys, new_vals, new_cap

    def count(self, ids, ends, first):
        """Count one block of sentences (ends block-relative; `first` the global index of its first sentence,
        which seeds the subsampling of each sentence), split among the threads by tokens."""
        K = _kernels()
        if len(ends) == 0:
            return
        self.ensure_room(int(np.max(np.diff(ends, prepend=0))))
        cuts = np.searchsorted(ends, np.linspace(0, ends[-1], self.threads + 1)[1:-1], side="left")
        w_next = np.concatenate(([0], cuts)).astype(np.int64)
        w_stop = np.concatenate((cuts, [len(ends)])).astype(np.int64)
        while True:
            max_used = int(MAX_LOAD * self.cap) - self.reserve
            shift = np.uint64(64 - (self.cap.bit_length() - 1))
            K.count_pairs(ids, ends, first, w_next, w_stop, self.keep, self.seed, self.window, self.weights,
                          self.symmetric, self.col_bits, self.keys, self.vals, self.used, max_used, shift)
            if np.all(w_next >= w_stop):
                break
            if self._fits(2 * self.cap):
                self._grow()
            else:
                self.spill([w for w in range(self.threads) if self.used[w] >= max_used])

    def spill(self, which=None):
        """Extract the tables of threads `which` (default: every non-empty one) as sorted runs for on_runs.
        Extracting a table takes up to four times its entries' bytes (mirrored pairs, sort buffer): in
        parallel only when that fits in the budget beside the tables."""
        if self.keys is None:
            return
        which = [w for w in range(self.threads) if self.used[w] > 0] if which is None else which
        if not which:
            return

        def extract(w):
            return extract_sorted(self.keys[w], self.vals[w], self.symmetric, self.col_bits, self.key_bits)
        if self.pool is not None and self.nbytes + sum(4 * int(self.used[w]) * ENTRY_BYTES for w in which) \
                <= self.memory // 2:
            runs = list(self.pool.map(extract, which))
        else:
            runs = [extract(w) for w in which]
        for w in which:
            self.keys[w][:] = 0
            self.used[w] = 0
        self.on_runs(runs)

    def close(self):
        """Extract what the tables hold and free them."""
        self.spill()
        self.keys = self.vals = None


def cooccurrence(corpus: EncodedCorpus, sink, options: CoocOptions | None = None, *, seed=1, memory=2 << 30,
                 threads=None, spill_dir=None, block_tokens=1 << 22, **cooc_options) -> dict:
    """Count co-occurrences of `corpus` and feed the CSR matrix to sink.append(...). Returns stats.
    `options` or flat keyword arguments (window=10, ...) are the CoocOptions; `memory` is in bytes."""
    o = options if options is not None else CoocOptions(**cooc_options)
    if options is not None and cooc_options:
        o = o.replace(**cooc_options)
    threads = resolve_threads(threads)
    keep = keep_probabilities(corpus.vocab.counts, o.sample)
    n_rows = len(corpus.vocab)
    runs: list[_Run] = []
    spill_root = None
    stats = {"spilled_runs": 0, "runs": 0}
    progress = Progress("cooc", corpus.n_tokens)
    pool = ThreadPoolExecutor(threads)
    start = time.perf_counter()

    def keep_runs(new):
        """Runs stay in memory until they and the tables pass half of the budget, then go to disk."""
        nonlocal spill_root
        runs.extend(_Run(k, v) for k, v in new)
        stats["runs"] = len(runs)
        if tables.nbytes + sum(r.nbytes for r in runs) > memory // 2:
            if spill_root is None:
                spill_root = work_dir(spill_dir, "cooc")
            for i, r in enumerate(runs):
                if r.path is None and r.n:
                    r.to_disk(spill_root, f"run{i}")
                    stats["spilled_runs"] += 1

    tables = PairTables(n_rows, o, keep, seed, memory, threads, on_runs=keep_runs, pool=pool)
    from fastemb.compiling import notice
    K = _kernels()
    first_call = notice([K.count_pairs, K.extract, K.radix_sort, K.sum_duplicates]).begin()
    try:
        tables.ensure_room(corpus.longest_sentence())  # a budget too small for the corpus fails before counting
        stats["table_capacity"] = tables.cap
        with numba_threads(threads):
            done = 0
            for ids, ends, first in iter_blocks(corpus, block_tokens):
                tables.count(ids, ends, first)
                done += len(ids)
                if first_call is not None:
                    if first_call.compiling:
                        first_call.missing = [k for k in first_call.missing if k is K.count_pairs]
                        first_call.end()
                        progress.rebase(done, done)
                    first_call = None
                progress.update(done, done, extra=f"{int(tables.used.sum()):,} pairs in tables")
            tables.close()  # the tables are free before the merge
            stats["nnz"] = _merge(runs, n_rows, tables.col_bits, tables.key_bits, sink, memory)
    finally:
        pool.shutdown()
        if spill_root:
            shutil.rmtree(spill_root, ignore_errors=True)
    stats["seconds"] = time.perf_counter() - start
    progress.done(extra=f"{stats['nnz']:,} nonzeros, {stats['runs']} runs ({stats['spilled_runs']} on disk)")
    return stats


OVERFLOW = ("co-occurrence weight overflow: a pair passed {:.1e}; split the corpus or use a smaller "
            "window".format(2 ** 63 / FIXED_SCALE))


def extract_sorted(keys1, vals, symmetric, col_bits, key_bits):
    """A table's pairs as a sorted run of unique fixed-point (keys, vals) (an overflow is an error)."""
    K = _kernels()
    k, v, overflow = K.extract(keys1, vals, symmetric, col_bits)
    if overflow:
        raise FastembError(OVERFLOW)
    K.radix_sort(k, v, key_bits)
    return k, v


def merge_runs(runs, key_bits):
    """(keys, values) of sorted fixed-point runs merged into one sorted run, equal keys summed (an
    overflow is an error). Used by the local merge and by the distributed reduce alike."""
    K = _kernels()
    runs = [r for r in runs if len(r[0])]
    if not runs:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    if len(runs) == 1:
        return runs[0]
    keys = np.concatenate([r[0] for r in runs])
    vals = np.concatenate([r[1] for r in runs])
    K.radix_sort(keys, vals, key_bits)
    m = K.sum_duplicates(keys, vals)
    if m < 0:
        raise FastembError(OVERFLOW)
    return keys[:m], vals[:m]


def csr_piece(keys, vals, col_bits, r0=None, r1=None):
    """Sorted fixed-point (keys, vals) as what sink.append takes: (r0, r1, nonzeros per row, column
    indices, float32 values) for rows r0..r1-1 (by default the rows the keys span)."""
    col_bits = np.uint64(col_bits)
    rows = (keys >> col_bits).astype(np.int64)
    if r0 is None:
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
    mask = (np.uint64(1) << col_bits) - np.uint64(1)
    return (r0, r1, np.bincount(rows - r0, minlength=r1 - r0).astype(np.int64), (keys & mask).astype(np.int32),
            (vals / FIXED_SCALE).astype(np.float32))


def _merge(runs, n_rows, col_bits, key_bits, sink, memory):
    """Merge the sorted runs key range by key range (a range may end inside a row: the sink adds row
    counts up) into CSR pieces of bounded size; returns the number of nonzeros."""
    runs = [r for r in runs if r.n]
    if not runs:
        sink.append(0, n_rows, np.zeros(n_rows, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
        return 0
    # a piece costs, per pair: its entries and a sort buffer (32 B), row numbers, masked columns and
    # float64 values on the way to the CSR arrays (32 B), the int32/float32 output (8 B), slack (8 B)
    target = max(1 << 10, memory // (4 * 80))
    # fences of all runs in key order: each stands for at most FENCE entries of its run, so cutting every
    # `step` fences gives pieces of about `target` entries (at most len(runs)·FENCE more)
    fences = np.sort(np.concatenate([r.fences for r in runs]))
    step = max(1, target // FENCE)
    bounds = [int(k) for k in fences[step::step]]
    end_key = (n_rows << int(col_bits)) + 1
    bounds = sorted(set(b for b in bounds if b > 0)) + [end_key]
    positions = [0] * len(runs)
    nnz = 0
    progress = Progress("merge", sum(r.n for r in runs), unit="pairs") if len(bounds) >= 4 else None
    for bound in bounds:
        ends = [r.position(np.uint64(bound)) if bound < end_key else r.n for r in runs]
        parts = [r.slice(lo, hi) for r, lo, hi in zip(runs, positions, ends) if hi > lo]
        positions = ends
        if not parts:
            continue
        keys, vals = merge_runs(parts, key_bits)
        sink.append(*csr_piece(keys, vals, col_bits))
        nnz += len(keys)
        done = sum(positions)
        if progress is not None:
            progress.update(done, done, extra=f"{nnz:,} nonzeros written")
    if progress is not None:
        progress.close()
    return nnz
