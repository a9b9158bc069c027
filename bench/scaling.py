"""Thread scaling of every pass, measured at the thread counts this machine has and modelled beyond them:

    python -m bench.scaling [--corpus bench/cache/en.txt] [--threads 1,2] [--repeats 2] [--json OUT]

Passes (each timed inside one process, kernels warmed first, the best of --repeats): reading + counting and
encoding the corpus (vocab.build_vocab), one epoch of sgns and of cbow, co-occurrence counting (window 10),
three GloVe epochs, and PPMI-SVD (the PPMI matrix alone, numpy on one thread, and the whole training step).
For each pass the two smallest thread counts give Amdahl's parallel fraction p = (1 - T2/T1) / (1 - 1/n2),
and T(n) = T1 (1 - p + p/n) is printed for 4, 8 and 16 threads, marked as a model: it ignores memory
bandwidth and cache sharing, which make real curves flatter, and is no substitute for a many-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

BENCH_CORPUS = os.path.join(os.path.dirname(__file__), "cache", "en.txt")


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = fn()
        times.append(t)
    return min(times)


def measure(corpus, threads, repeats):
    """{pass: seconds} at `threads` threads."""
    import numpy as np
    import fastemb
    from fastemb.models.ppmi import ppmi_matrix
    from fastemb.vocab import build_vocab
    out = {}

    def vocab_pass():
        with build_vocab(corpus, encode=True, threads=threads) as enc:
            out["encode"] = min(out.get("encode", 1e9), enc.seconds["encode"])
            return enc.seconds["read"]
    out["read + count"] = _best(vocab_pass, repeats)
    for algo in ("sgns", "cbow"):
        out[f"{algo} epoch"] = _best(lambda algo=algo: fastemb.train(corpus, algo, epochs=1, threads=threads,
                                                           seed=1).attrs["train_seconds"], repeats)

    def cooc_pass():
        t = time.perf_counter()
        cooc_pass.result = fastemb.cooccurrences(corpus, algo="glove", threads=threads)
        return time.perf_counter() - t
    out["cooc (incl. read)"] = _best(cooc_pass, repeats)
    words, counts, X = cooc_pass.result
    out["glove 3 epochs"] = _best(lambda: fastemb.train(cooc=(words, counts, X), algo="glove", epochs=3,
                                                        threads=threads, seed=1).attrs["train_seconds"],
                                  repeats)

    def ppmi_pass():
        t = time.perf_counter()
        ppmi_pass.M = ppmi_matrix(X)
        return time.perf_counter() - t
    out["ppmi matrix"] = _best(ppmi_pass, repeats)

    out["ppmi-svd (matrix + svd)"] = _best(lambda: fastemb.train(cooc=(words, counts, X), algo="ppmi-svd",
                                                                 threads=threads, seed=1).attrs["train_seconds"],
                                           repeats)
    del np
    return out


def model(t1, t2, n2, n):
    """Amdahl's law from two measurements: T(n) at n threads, and the parallel fraction."""
    p = (1 - t2 / t1) / (1 - 1 / n2) if t1 > 0 else 0.0
    p = min(max(p, 0.0), 1.0)
    return t1 * (1 - p + p / n), p


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.scaling")
    ap.add_argument("--corpus", default=BENCH_CORPUS)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if not os.path.exists(a.corpus):
        from bench.corpus import english_corpus
        english_corpus()
    counts = [int(x) for x in a.threads.split(",")]
    measure(a.corpus, 1, 1)  # warm: compile or load every kernel before timing
    runs = {n: measure(a.corpus, n, a.repeats) for n in counts}
    n1, n2 = counts[0], counts[1]
    rows = []
    print(f"scaling on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, corpus {a.corpus}, "
          f"{time.strftime('%Y-%m-%d')}; seconds (best of {a.repeats}); 4/8/16 threads modelled (Amdahl)")
    print("| pass | " + " | ".join(f"{n} thr" for n in counts) + " | parallel fraction | 4 thr (model) | "
          "8 thr (model) | 16 thr (model) | speed-up 2 -> 16 (model) |")
    print("|---|" + "---|" * (len(counts) + 5))
    for name in runs[n1]:
        t1, t2 = runs[n1][name], runs[n2][name]
        modelled = {n: model(t1, t2, n2 / n1, n / n1)[0] for n in (4, 8, 16)}
        p = model(t1, t2, n2 / n1, 1)[1]
        two = model(t1, t2, n2 / n1, 2 / n1)[0]
        rows.append({"pass": name, **{str(n): runs[n][name] for n in counts}, "parallel_fraction": p,
                     **{f"model_{n}": v for n, v in modelled.items()}})
        print(f"| {name} | " + " | ".join(f"{runs[n][name]:.2f}" for n in counts) + f" | {p:.2f} | "
              + " | ".join(f"{modelled[n]:.2f}" for n in (4, 8, 16)) + f" | {two / modelled[16]:.1f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
