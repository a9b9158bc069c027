"""Training from a Python iterable against training from the same text in a file, and the cost of
Embeddings.to_gensim() on a 100k x 300 model.

    python -m bench.iterable_speed [CORPUS] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?", default="bench/cache/en.txt")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    import fastemb
    with open(args.corpus, encoding="utf-8") as f:
        lines = f.read().splitlines()
    token_lists = [line.split() for line in lines]
    n_tokens = sum(map(len, token_lists))
    kw = dict(dim=100, epochs=args.epochs, threads=2, sample=1e-4)
    fastemb.train(lines[:2000].__iter__(), **kw)  # compile / load the kernels once
    times = {"file": [], "token lists": [], "generator of strings": []}
    for _ in range(args.repeats):
        for name, corpus in (("file", args.corpus), ("token lists", token_lists),
                             ("generator of strings", (line for line in lines))):
            t = time.perf_counter()
            fastemb.train(corpus, **kw)
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:22s} {med:6.2f} s whole call ({n_tokens * args.epochs / med / 1e6:.2f}M words/s over "
              f"{args.epochs} epoch(s)), runs {', '.join(f'{t:.2f}' for t in ts)}")
    rng = np.random.default_rng(0)
    emb = fastemb.Embeddings([f"w{i}" for i in range(100_000)], rng.standard_normal((100_000, 300), np.float32),
                             rng.integers(1, 10 ** 6, 100_000))
    try:
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            emb.to_gensim()
            ts.append(time.perf_counter() - t)
        print(f"to_gensim() on 100,000 x 300: {statistics.median(ts) * 1e3:.0f} ms (median of {args.repeats})")
    except fastemb.FastembError as e:
        print(f"to_gensim: {e}")


if __name__ == "__main__":
    main()
