"""Cost of fastemb's checks on loading a vectors file: fastemb.load (the checked door: structure walk, shape,
dtype, finiteness, vocabulary checks) against a bare h5py read of the same datasets.

    python -m bench.load_cost [--words 100000] [--dim 300] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import h5py
    import fastemb
    rng = np.random.default_rng(0)
    emb = fastemb.Embeddings([f"word{i}" for i in range(args.words)],
                             rng.standard_normal((args.words, args.dim)).astype(np.float32),
                             rng.integers(5, 10 ** 6, args.words))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "v.h5")
        emb.save(path)
        checked, bare = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            with h5py.File(path, "r") as f:
                v = f["embedding"][()]
                w = f["vocab/words"].asstr()[()]
                c = f["vocab/counts"][()]
            bare.append(time.perf_counter() - t)
            del v, w, c
            t = time.perf_counter()
            fastemb.load(path)
            checked.append(time.perf_counter() - t)
    b, c = np.median(bare), np.median(checked)
    print(f"{args.words:,} x {args.dim}: bare h5py read {b * 1e3:.0f} ms, fastemb.load (checked) {c * 1e3:.0f} ms "
          f"(medians of {args.repeats}); the checks and Embeddings construction add {(c - b) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
