"""Loading a large pretrained file: peak memory (VmHWM of a fresh process) and wall time of fastemb.load with
limit=, dtype=float16 and mmap=True against gensim's load_word2vec_format(limit=) and KeyedVectors.load(mmap='r'),
on a synthetic file (random vectors; words word0..wordN-1). Each case runs in its own process: load, then one
most_similar query (a mapped file is only touched by the query).

    python -m bench.large_load [--words 300000] [--dim 300] [--limit 100000] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CASES = {
    "fastemb.load(bin)": "e = fastemb.load(BIN)",
    "fastemb.load(bin, limit)": "e = fastemb.load(BIN, limit=LIMIT)",
    "fastemb.load(bin, float16)": "e = fastemb.load(BIN, dtype=np.float16)",
    "gensim load_word2vec_format(bin)": "e = KeyedVectors.load_word2vec_format(BIN, binary=True)",
    "gensim load_word2vec_format(bin, limit)": "e = KeyedVectors.load_word2vec_format(BIN, binary=True, limit=LIMIT)",
    "fastemb.load(h5)": "e = fastemb.load(H5)",
    "fastemb.load(h5, limit)": "e = fastemb.load(H5, limit=LIMIT)",
    "fastemb.load(h5, mmap)": "e = fastemb.load(H5, mmap=True)",
    "gensim KeyedVectors.load(kv)": "e = KeyedVectors.load(KV)",
    "gensim KeyedVectors.load(kv, mmap='r')": "e = KeyedVectors.load(KV, mmap='r')",
}

CHILD = """
import os, sys, time, json
import numpy as np
t0 = time.perf_counter()
import fastemb
from gensim.models import KeyedVectors
BIN, H5, KV, LIMIT = {bin!r}, {h5!r}, {kv!r}, {limit}
t = time.perf_counter()
{stmt}
load = time.perf_counter() - t
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
after_load = hwm()
t = time.perf_counter()
r = e.most_similar("word7", topn=3)
query = time.perf_counter() - t
print(json.dumps({{"load_s": load, "query_s": query, "peak_after_load": after_load, "peak": hwm(), "top": r[0][0]}}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--limit", type=int, default=100_000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    import fastemb
    from gensim.models import KeyedVectors  # noqa: F401  (fails early without gensim)
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(args.words)]
    vectors = rng.standard_normal((args.words, args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        paths = {"bin": os.path.join(d, "v.bin"), "h5": os.path.join(d, "v.h5"), "kv": os.path.join(d, "v.kv")}
        emb = fastemb.Embeddings(words, vectors, np.arange(args.words, 0, -1))
        emb.save(paths["bin"])
        emb.save(paths["h5"])
        emb.to_gensim().save(paths["kv"])
        del emb, vectors
        sizes = {k: sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith(os.path.basename(p)))
                 for k, p in paths.items()}
        print(f"{args.words:,} x {args.dim} float32 ({args.words * args.dim * 4 / 1e6:.0f} MB of values); files: "
              + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()), flush=True)
        print(f"{'case':42s} {'load s':>7s} {'peak MB (load)':>15s} {'query s':>8s} {'peak MB (+query)':>17s}")
        for name, stmt in CASES.items():
            code = CHILD.format(bin=paths["bin"], h5=paths["h5"], kv=paths["kv"], limit=args.limit, stmt=stmt)
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{name:42s} failed: {p.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{name:42s} {r['load_s']:7.2f} {r['peak_after_load'] / 1e6:15.0f} {r['query_s']:8.3f} "
                  f"{r['peak'] / 1e6:17.0f}", flush=True)


if __name__ == "__main__":
    main()
