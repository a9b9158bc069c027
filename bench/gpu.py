"""python -m bench.gpu: skip-gram on the GPU against fastemb on the CPU (1 thread and every core), in one run.

Prints, per configuration and seed, words/s, WS353 (Spearman) and analogy accuracy (3CosAdd) and, for the
GPU, where its time went (kernel, host-side subsampling and span cutting, transfers), then the mean over
seeds and the GPU's speed-up. Seeds after the first are run only while the time budget (--budget, default
420 s: the whole script stays under 8 minutes on a 16-core H100 machine) allows; what was left out is said.

It installs and downloads nothing (a lent GPU machine has no network): it needs, on that machine, a Python
with fastemb's dependencies and numba-cuda (pip install -e '.[cuda]'), and reads the corpus from the
repository: --corpus FILE, else bench/cache's benchmark corpus when it is there (build it with
`python -m bench corpus`, carry it along), else the shipped corpora/kjv.txt.gz.

    python -m bench.gpu                      # on a GPU machine
    python -m bench.gpu --smoke              # anywhere: Numba's CUDA simulator, a tiny corpus, seconds
    python -m bench.gpu --json out.json      # also write the figures
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KJV = os.path.join(ROOT, "corpora", "kjv.txt.gz")


def default_corpus() -> str:
    """The benchmark corpus (bench/cache/en.txt, 5.96M tokens) when it was built here or carried, else KJV."""
    path = os.path.join(ROOT, "bench", "cache", "en.txt")
    return path if os.path.isfile(path) else KJV


def smoke_corpus(lines=6) -> str:
    path = os.path.join(tempfile.mkdtemp(prefix="fastemb-gpu-smoke-"), "kjv-head.txt")
    with gzip.open(KJV, "rt", encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        for _ in range(lines):
            out.write(f.readline())
    return path


def quality(emb) -> dict:
    from fastemb import eval as E
    ws = E.similarity(emb, E.dataset("wordsim353"))
    an = E.analogy(emb, E.dataset("questions-words"))
    return {"ws353": ws["spearman"], "ws353_coverage": ws["coverage"], "analogy": an["3cosadd"],
            "analogy_coverage": an["coverage"]}


def run_one(corpus, device, threads, seed, params) -> dict:
    import fastemb
    emb = fastemb.train(corpus, "sgns", device=device, threads=threads, seed=seed, **params)
    a = emb.attrs
    row = {"device": device, "threads": threads, "seed": seed, "words_per_second": a["words_per_second"],
           "train_seconds": a["train_seconds"], "final_loss": a["loss"][-1], **quality(emb)}
    if device == "cuda":
        row.update(kernel_seconds=a["cuda_kernel_seconds"], host_seconds=a["cuda_host_seconds"],
                   transfer_seconds=a["cuda_transfer_seconds"], gpu=a["cuda_device"])
    return row


def fmt(row) -> str:
    label = "gpu" if row["device"] == "cuda" else f"cpu {row['threads']:>2}t"
    line = (f"{label:8s} seed {row['seed']}  {row['words_per_second']:12,.0f} words/s  "
            f"{row['train_seconds']:7.1f}s  WS353 {row['ws353']:.3f}  analogy {row['analogy']:.3f}  "
            f"loss {row['final_loss']:.4f}")
    if row["device"] == "cuda":
        line += (f"  [kernel {row['kernel_seconds']:.2f}s, host {row['host_seconds']:.2f}s, "
                 f"transfer {row['transfer_seconds']:.2f}s]")
    return line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=None, help="corpus file (default: see the module's help)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per configuration, while the budget allows")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds: no new seed starts past this")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: sgns's)")
    ap.add_argument("--cuda-blocks", type=int, default=None, help="thread blocks at once on the GPU")
    ap.add_argument("--smoke", action="store_true",
                    help="under Numba's CUDA simulator on a tiny corpus: proves the script end to end, no GPU")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"   # before numba is imported
    t_start = time.perf_counter()
    import numba
    import numpy as np
    from fastemb.errors import FastembError
    from fastemb.parallel import resolve_threads

    corpus = args.corpus or (smoke_corpus() if args.smoke else default_corpus())
    cores = resolve_threads(None)
    params = {"min_count": 1, "dim": 8, "window": 2, "negative": 2, "sample": 0, "epochs": 1} if args.smoke else {}
    if args.epochs:
        params["epochs"] = args.epochs
    gpu_params = dict(params, cuda_blocks=args.cuda_blocks) if args.cuda_blocks else params
    print(f"bench.gpu  {time.strftime('%Y-%m-%d %H:%M:%S')}  {platform.node()}  {cores} cores  "
          f"numba {numba.__version__}  numpy {np.__version__}  corpus {os.path.relpath(corpus, ROOT)}"
          f"{'  (SMOKE: simulator)' if args.smoke else ''}", flush=True)

    configs = [("cuda", None)] + [("cpu", t) for t in sorted({cores, 1}, reverse=True)]
    gpu_error = None
    try:
        from fastemb.models.w2v_cuda import check
        print(f"gpu: {check()}", flush=True)
    except FastembError as e:
        gpu_error = str(e)
        print(f"gpu: unavailable: {gpu_error}", flush=True)
        configs = configs[1:]
    # compile first (CPU kernels, the CUDA kernel for these shapes) on a small corpus, so timings exclude it;
    # the simulator compiles nothing
    warm = smoke_corpus(200)
    t0 = time.perf_counter()
    for device, threads in [c for c in configs[:2] if not (args.smoke and c[0] == "cuda")]:
        import fastemb
        fastemb.train(warm, "sgns", device=device, threads=threads, epochs=1, min_count=1,
                      **{k: v for k, v in gpu_params.items() if k not in ("epochs", "min_count")
                         and (device == "cuda" or k != "cuda_blocks")})
    print(f"warm-up (compilation): {time.perf_counter() - t0:.1f}s", flush=True)

    rows, skipped = [], []
    for seed in range(1, args.seeds + 1):
        for device, threads in configs:
            if seed > 1 and time.perf_counter() - t_start > args.budget:
                skipped.append(f"{device} {threads or ''} seed {seed}".replace("  ", " "))
                continue
            row = run_one(corpus, device, threads, seed, gpu_params if device == "cuda" else params)
            rows.append(row)
            print(fmt(row), flush=True)

    print("\nmean over seeds:")
    means = {}
    for device, threads in configs:
        mine = [r for r in rows if r["device"] == device and r["threads"] == threads]
        if not mine:
            continue
        m = {k: statistics.mean(r[k] for r in mine) for k in ("words_per_second", "ws353", "analogy")}
        sd = {k: (statistics.stdev(r[k] for r in mine) if len(mine) > 1 else 0.0) for k in ("ws353", "analogy")}
        means[(device, threads)] = m
        label = "gpu" if device == "cuda" else f"cpu {threads}t"
        extra = ""
        if device == "cuda":
            tk = {k: statistics.mean(r[k] for r in mine) for k in ("kernel_seconds", "host_seconds",
                                                                   "transfer_seconds", "train_seconds")}
            extra = (f"  time: kernel {tk['kernel_seconds']:.2f}s, host {tk['host_seconds']:.2f}s, transfer "
                     f"{tk['transfer_seconds']:.2f}s of {tk['train_seconds']:.2f}s")
        print(f"  {label:8s} n={len(mine)}  {m['words_per_second']:12,.0f} words/s  WS353 {m['ws353']:.3f}"
              f" ±{sd['ws353']:.3f}  analogy {m['analogy']:.3f} ±{sd['analogy']:.3f}{extra}")
    gpu = means.get(("cuda", None))
    cpu_all = means.get(("cpu", cores))
    if gpu and cpu_all:
        print(f"gpu vs cpu {cores}t: {gpu['words_per_second'] / cpu_all['words_per_second']:.2f}x words/s, "
              f"WS353 {gpu['ws353'] - cpu_all['ws353']:+.3f}, analogy {gpu['analogy'] - cpu_all['analogy']:+.3f}")
    if gpu_error:
        print(f"not measured: the GPU ({gpu_error})")
    if skipped:
        print(f"not run (past the {args.budget:.0f}s budget): {', '.join(skipped)}")
    print(f"total {time.perf_counter() - t_start:.1f}s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "skipped": skipped, "gpu_error": gpu_error, "corpus": corpus,
                       "smoke": args.smoke}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
