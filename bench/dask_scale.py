"""Distributed counting against the local path on one synthetic Zipfian corpus: wall time, peak RSS (the
local process; each Dask worker), bytes shuffled between the count and the reduce tasks, and a check that
both matrices are bit-identical.

    python -m bench.dask_scale [--tokens 100000000] [--workers 2 4 8] [--window 10] [--json out.json]

The corpus (cached under bench/cache/) is bench.corpus's Zipfian text: `--vocab` word types, ranks drawn
from p(k) ∝ 1/k, sentences of 20 tokens. Run it on a many-core machine for the 1/4/8-worker rows.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", "cache")


def zipf_corpus(tokens: int, vocab: int) -> str:
    """The cached corpus of `tokens` Zipfian synthetic words (bench.corpus.zipf_tokens, exponent 1)."""
    from .corpus import write_zipf
    path = os.path.join(CACHE, f"zipf-{tokens}-v{vocab}.txt")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        write_zipf(path, tokens, vocab=vocab, exponent=1.0, seed=0)
    return path


def _digest(words, counts, X) -> str:
    h = hashlib.sha256()
    h.update("\n".join(words).encode())
    for a in (np.asarray(counts, np.int64), X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data):
        h.update(a.tobytes())
    return h.hexdigest()


def _local(corpus, window, sample, out):
    """The local `fastemb cooc` in its own process: wall, peak RSS (ru_maxrss of the child)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fastemb", "cooc", corpus, "-o", out, "--force", "--window",
                        str(window), "--sample", str(sample), "--json", "-q"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall": wall, "rss_mb": rss, **json.loads(r.stdout)}


def _peak_rss_mb():
    import resource as R
    return R.getrusage(R.RUSAGE_SELF).ru_maxrss / 1024


def _distributed(corpus, window, sample, workers, shard_mb, out):
    import distributed
    from fastemb import dask as D
    from fastemb.cooc import CoocOptions
    from fastemb.corpus import CorpusOptions
    client = distributed.Client(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        stats = {}
        t = time.perf_counter()
        D.cooccurrences([corpus], CorpusOptions(), CoocOptions(window=window, sample=sample), client, output=out,
                        force=True, stats=stats, shard_bytes=shard_mb << 20)
        wall = time.perf_counter() - t
        rss = client.run(_peak_rss_mb)
        return {"wall": wall, "worker_rss_mb": sorted(rss.values()), "client_rss_mb": _peak_rss_mb(), **stats}
    finally:
        client.close()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000_000)
    ap.add_argument("--vocab", type=int, default=200_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--sample", type=float, default=0.0)
    ap.add_argument("--shard-mb", type=int, default=64)
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from fastemb.store import load_cooc
    corpus = zipf_corpus(args.tokens, args.vocab)
    work = os.path.join(CACHE, "dask_scale")
    os.makedirs(work, exist_ok=True)
    rows = []
    ref = None
    if not args.skip_local:
        out = os.path.join(work, "local.h5")
        r = _local(corpus, args.window, args.sample, out)
        ref = _digest(*load_cooc(out)[:3])  # (the client's peak RSS below includes these loads)
        rows.append({"mode": "local", **r, "sha256": ref})
        print(json.dumps(rows[-1]), flush=True)
    for w in args.workers:
        out = os.path.join(work, f"dask{w}.h5")
        r = _distributed(corpus, args.window, args.sample, w, args.shard_mb, out)
        d = _digest(*load_cooc(out)[:3])
        rows.append({"mode": f"dask local:{w}", **r, "sha256": d, "identical": None if ref is None else d == ref})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"tokens": args.tokens, "vocab": args.vocab, "window": args.window, "sample": args.sample,
                       "cpus": os.cpu_count(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
