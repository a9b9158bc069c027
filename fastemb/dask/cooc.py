"""Co-occurrences on a Dask cluster, bit-identical to the local `fastemb cooc`: each shard is encoded with the
final vocabulary and counted by the local tables (cooc.PairTables) in fixed point (sums are exact integers
whatever the split), the pairs cut into row ranges, each range reduced by one task (cooc.merge_runs,
cooc.csr_piece) and streamed, in order, to a CSR matrix or to an HDF5 file through store.CoocWriter. With
`sample > 0` every sentence is subsampled with the RNG seeded by its GLOBAL index in the encoded corpus (the
index the local path uses), found by a counting pass (vocab.sentence_bases)."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from fastemb.dask.cluster import (check_workers, client_of, release, require, shared, track, worker_addresses,
                                  worker_threads)
from fastemb.dask.shards import DEFAULT_SHARD_BYTES, shards
from fastemb.dask.vocab import corpus_options_of, corpus_params_of, encoded_blocks, sentence_bases, vocab_pass
from fastemb.errors import FastembError, OptionError
from fastemb.progress import Progress


class _ShardRuns:
    """One task's pairs: the local tables and their policy (cooc.PairTables), the sorted runs they spill kept
    in memory and merged into one when they pass half of the memory budget."""

    def __init__(self, n_rows, options, keep, seed, memory, threads):
        from fastemb.cooc import PairTables
        self.memory = memory
        self.runs = []
        self.tables = PairTables(n_rows, options, keep, seed, memory, threads, on_runs=self._keep)

    def _keep(self, new):
        from fastemb.cooc import merge_runs
        self.runs.extend(new)
        if sum(k.nbytes + v.nbytes for k, v in self.runs) + self.tables.nbytes > self.memory // 2:
            self.runs = [merge_runs(self.runs, self.tables.key_bits)]

    def finish(self, row_bounds):
        """The pairs as sorted, unique fixed-point (keys, vals), cut at row_bounds."""
        from fastemb.cooc import merge_runs
        self.tables.close()
        keys, vals = merge_runs(self.runs, self.tables.key_bits)
        self.runs = []
        cuts = np.searchsorted(keys, np.asarray(row_bounds, np.uint64) << self.tables.col_bits)
        return [(keys[a:b], vals[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _cooc_shard(shard, params, cooc, seed, vocab_key, vocab_text, keep, sentence_base, row_bounds):
    """A shard's co-occurrences in fixed point, one sorted (keys, vals) piece per row range."""
    from fastemb.cooc import CoocOptions
    from fastemb.parallel import numba_threads
    n_words = len(row_bounds) and int(row_bounds[-1])
    threads = worker_threads()
    counter = _ShardRuns(n_words, CoocOptions(**cooc), keep, seed, params["memory"], threads)
    first = sentence_base
    tokens = 0
    with numba_threads(threads):
        for ids, ends in encoded_blocks(shard, params, vocab_key, vocab_text, n_words):
            counter.tables.count(ids, ends, int(first))
            first += len(ends)
            tokens += len(ids)
        parts = counter.finish(row_bounds)
    return {"parts": parts, "sentences": first - sentence_base, "tokens": tokens,
            "bytes": [int(k.nbytes + v.nbytes) for k, v in parts]}


def _part(result, p):
    return result["parts"][p]


def _reduce_range(r0, r1, col_bits, key_bits, *pieces):
    """One row range of the matrix: the shards' pieces summed (exact integers), as CSR arrays."""
    from fastemb.cooc import csr_piece, merge_runs
    keys, vals = merge_runs(list(pieces), key_bits)
    return csr_piece(keys, vals, col_bits, r0, r1)


def _range_csr(piece, n_cols):
    import scipy.sparse as sp
    r0, r1, row_nnz, indices, data = piece
    indptr = np.zeros(r1 - r0 + 1, np.int64)
    np.cumsum(row_nnz, out=indptr[1:])
    return sp.csr_matrix((data, indices, indptr), shape=(r1 - r0, n_cols))


def _row_bounds(counts, window, symmetric, partitions):
    """Row ranges of about equal expected nonzeros (a row's pairs grow with its count, up to the width)."""
    n = len(counts)
    partitions = max(1, min(int(partitions), n))
    w = np.minimum(np.asarray(counts, np.float64) * window * (2 if symmetric else 1), n) + 1.0
    cum = np.cumsum(w)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, partitions) / partitions, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n - 1) if n > 1 else [], [n]))).astype(np.int64)
    return [int(b) for b in bounds]


@dataclass
class _CoocRun:
    vocab: object
    ranges: list              # futures of (r0, r1, row_nnz, indices, data), in row order
    bounds: list
    stats: dict


def _cooc_run(shard_list, copts, options, client, seed, partitions, storage_options):
    from fastemb.sampling import keep_probabilities
    t0 = time.perf_counter()
    n_workers = check_workers(client)
    params = corpus_params_of(copts, storage_options)
    sample = options.sample > 0
    vp = vocab_pass(client, shard_list, copts, params, track_sentences=sample)
    vocab = vp.vocab
    n_rows = len(vocab)
    vocab_text = b"".join(w + b"\n" for w in vp.words)
    vocab_key = hashlib.sha256(vocab_text).hexdigest()
    text_f = shared(client, vocab_text)
    if sample:
        bases, n_sentences = sentence_bases(client, vp, params, vocab_key, text_f, copts)
    else:
        bases, n_sentences = [0] * len(shard_list), None
    keep = keep_probabilities(vocab.counts, options.sample)
    keep_f = shared(client, keep)
    bounds = _row_bounds(vocab.counts, options.window, options.symmetric,
                         partitions if partitions is not None else 2 * n_workers)
    cooc = {"window": options.window, "weighting": options.weighting, "symmetric": options.symmetric,
            "sample": options.sample}
    futs = [client.submit(_cooc_shard, s, params, cooc, seed, vocab_key, text_f, keep_f, b, bounds)
            for s, b in zip(shard_list, bases)]
    col_bits = max(1, (n_rows - 1).bit_length())
    workers = worker_addresses(client)
    ranges = []
    for p in range(len(bounds) - 1):
        pieces = [client.submit(_part, f, p) for f in futs]
        ranges.append(client.submit(_reduce_range, bounds[p], bounds[p + 1], col_bits, 2 * col_bits, *pieces,
                                    workers=[workers[p % len(workers)]], allow_other_workers=True))
    shard_tokens = [m["tokens"] for m in vp.metas]
    track(futs, "cooc", shard_tokens)
    info = client.gather([client.submit(_shard_stats, f) for f in futs])
    if sample and sum(i["sentences"] for i in info) != n_sentences:
        raise AssertionError("sentence counts of the vocabulary and co-occurrence passes differ")
    del futs
    stats = {"shards": len(shard_list), "partitions": len(bounds) - 1, "workers": n_workers,
             "shuffle_bytes": int(sum(sum(i["bytes"]) for i in info)),
             "vocab_tokens": int(sum(i["tokens"] for i in info)), "seconds_counting": time.perf_counter() - t0}
    return _CoocRun(vocab, ranges, bounds, stats)


def _shard_stats(result):
    return {"sentences": result["sentences"], "tokens": result["tokens"], "bytes": result["bytes"]}


def _cooc_options(cooc_options, cooc_params):
    from fastemb.cooc import CoocOptions
    o = cooc_options if cooc_options is not None else CoocOptions(**cooc_params)
    if cooc_options is not None and cooc_params:
        o = o.replace(**cooc_params)
    return o


def cooccurrences(paths, corpus_options=None, cooc_options=None, client=None, seed: int = 1, output=None,
                  partitions=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None, force=False,
                  attrs=None, stats=None):
    """Co-occurrence counts of a corpus (paths, directories or fsspec URLs) on a Dask cluster, bit-identical
    to the local `fastemb cooc` / cooc.cooccurrence() for the same corpus, options and seed (sample > 0
    included). `client`: a dask.distributed Client or an address for `connect`. Returns (words, counts,
    scipy CSR float32) or, with `output`, writes the HDF5 file (as `fastemb cooc` does; `force` overwrites;
    `attrs` adds root attributes) and returns the stats. `partitions`: row ranges, each reduced by one task
    (default: twice the workers). `stats`: a dict to fill (shards, partitions, shuffle_bytes, nnz...)."""
    require()
    from fastemb.cooc import CsrCollector
    copts = corpus_options_of(corpus_options, {})
    options = _cooc_options(cooc_options, {})
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError("seed", f"must be a non-negative integer (got {seed!r})")
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, (int, np.integer))
                                   or partitions < 1):
        raise OptionError("partitions", f"must be at least 1 (got {partitions!r})")
    if output is not None:
        from fastemb.store import check_output
        check_output(output, force)
    shard_list = shards(paths, shard_bytes, storage_options)  # files checked before a cluster starts
    client, owned = client_of(client)
    t0 = time.perf_counter()
    try:
        run = _cooc_run(shard_list, copts, options, client, int(seed), partitions, storage_options)
        v = run.vocab
        if output is None:
            sink = CsrCollector(len(v))
            nnz = _stream_ranges(client, run, sink)
            result = (v.words, v.counts, sink.matrix())
        else:
            from fastemb.store import CoocWriter, corpus_attr
            all_attrs = {**options.flat(), **copts.flat(), "seed": int(seed), "corpus_tokens": v.raw_tokens,
                         "vocab_tokens": run.stats["vocab_tokens"], "corpus": corpus_attr(paths), **(attrs or {})}
            writer = CoocWriter(output, v.words, v.counts, all_attrs)
            ok = False
            try:
                nnz = _stream_ranges(client, run, writer)
                writer.f.attrs["nnz"] = nnz
                ok = True
            finally:
                writer.close(ok)
            result = None
        s = {**run.stats, "nnz": nnz, "words": len(v), "tokens": v.raw_tokens,
             "seconds": time.perf_counter() - t0}
        if output is not None:
            s["output"] = os.fspath(output)
            result = s
        if stats is not None:
            stats.update(s)
        return result
    finally:
        if owned:
            release(client)


def _stream_ranges(client, run, sink):
    """Append the row ranges to sink in order, each fetched when its turn comes and then released."""
    progress = Progress("cooc merge", len(run.ranges), unit="pairs")
    nnz = 0
    for i, f in enumerate(run.ranges):
        r0, r1, row_nnz, indices, data = f.result()
        sink.append(r0, r1, row_nnz, indices, data)
        nnz += len(indices)
        run.ranges[i] = None
        progress.update(i + 1, nnz, extra=f"{i + 1}/{len(run.ranges)} ranges")
    progress.done(extra=f"{nnz:,} nonzeros")
    return nnz


def cooccurrence_blocks(paths, corpus_options=None, cooc_options=None, client=None, seed: int = 1,
                        partitions=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None,
                        stats=None):
    """The co-occurrence matrix left on the cluster: (Vocab, futures of its CSR row blocks in row order),
    for ppmi_svd without bringing the matrix to the client. `client` must be a Client (the futures live
    on it)."""
    require()
    copts = corpus_options_of(corpus_options, {})
    options = _cooc_options(cooc_options, {})
    shard_list = shards(paths, shard_bytes, storage_options)
    client, owned = client_of(client)
    if owned:
        release(client)
        raise FastembError("cooccurrence_blocks needs a dask.distributed Client (its results stay on it)")
    run = _cooc_run(shard_list, copts, options, client, int(seed), partitions, storage_options)
    n = len(run.vocab)
    if stats is not None:
        stats.update(run.stats, words=n, tokens=run.vocab.raw_tokens)
    return run.vocab, [client.submit(_range_csr, f, n) for f in run.ranges]
