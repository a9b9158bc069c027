"""python -m bench {corpus, zipf, run}: see bench/README.md."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from . import corpus as C
from . import harness as H

RESULTS = os.path.join(H.ROOT, "bench", "results")


def profile_cases(profile, en, en1m, tools, thread_counts=(1, 2)):
    """The cases of a profile, in running order (training at each of `thread_counts`)."""
    main = en1m if profile == "quick" else en
    cases = []
    if profile == "quality":  # issue 13's comparison: defaults, 2 threads, the benchmark corpus; --repeats seeds
        for task in ("sgns", "cbow"):
            for tool, mode in (("fastemb", ""), ("gensim", "corpus_file"), ("fasttext", "")):
                if tool in tools:
                    cases.append(dict(tool=tool, task=task, corpus=en, threads=2, mode=mode))
        for tool, task, kw in (("fastemb", "glove", {"epochs": 15}), ("glove", "glove", {"epochs": 15, "once": True}),
                               ("fastemb", "ppmi-svd", {}),  # its defaults, and the reference's settings:
                               ("fastemb", "ppmi-svd", {"window": 2, "extra_args": ["--sample", "0"]}),
                               ("numpy-ppmi", "ppmi-svd", {})):
            if tool in tools:
                cases.append(dict(tool=tool, task=task, corpus=en, threads=2, **kw))
        return cases
    if profile == "hs":  # issue 16: hierarchical softmax against negative sampling, fastemb and gensim, same run
        for task in ("sgns", "cbow"):
            for hs in (True, False):
                for tool, mode in (("fastemb", ""), ("gensim", "corpus_file")):
                    if tool in tools:
                        cases.append(dict(tool=tool, task=task, corpus=en, threads=2, mode=mode, hs=hs))
        return cases
    add = (lambda tool, task, corpus, **kw: cases.append(dict(tool=tool, task=task, corpus=corpus, **kw))
           if tool in tools else None)
    add("fastemb", "vocab", main)
    add("word2vec.c", "vocab", main)
    add("fastemb", "cooc", main, window=10, threads=2)
    add("glove", "cooc", main, window=10, threads=2)
    top = max(thread_counts)
    for task in ("sgns", "cbow"):
        for threads in thread_counts:
            if profile == "quick" and (threads == 1 and task == "cbow") and len(thread_counts) > 1:
                continue
            add("fastemb", task, main, threads=threads)
            if profile == "full" and task == "sgns":
                add("fastemb", task, main, threads=threads, extra_args=["--per-pair-negatives"])
            add("gensim", task, main, threads=threads, mode="corpus_file")
            if profile == "full" and threads == top:
                add("gensim", task, main, threads=threads, mode="LineSentence")
            if threads == top or profile == "full":
                add("word2vec.c", task, main, threads=threads)
                add("fasttext", task, main, threads=threads)
    add("fastemb", "glove", main, threads=top, epochs=15 if profile == "full" else 5)
    add("glove", "glove", main, threads=top, epochs=15 if profile == "full" else 5)
    add("fastemb", "ppmi-svd", main, threads=top)
    add("numpy-ppmi", "ppmi-svd", main, threads=top)
    if profile == "full":  # throughput and RSS against corpus size, quality against epochs
        for tool in ("fastemb", "gensim"):
            add(tool, "sgns", en1m, threads=top, mode="corpus_file" if tool == "gensim" else "")
            for epochs in (1, 2, 10):
                add(tool, "sgns", en1m, threads=top, epochs=epochs, mode="corpus_file" if tool == "gensim" else "")
    return cases


def startup_times(work):
    """First-call JIT compile (empty Numba cache) and a warm second process, on a tiny corpus."""
    tiny = os.path.join(work, "tiny.txt")
    with open(tiny, "w") as f:
        f.write(("the quick brown fox jumps over the lazy dog\n" * 200))
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=work)
    argv = ["fastemb", "train", tiny, "-o", os.path.join(work, "tiny.h5"), "--dim", "10", "--epochs", "1",
            "--min-count", "1", "--quiet", "--force"]
    cold = H.run_process(argv, env={"NUMBA_CACHE_DIR": cache})[0]
    warm = [H.run_process(argv, env={"NUMBA_CACHE_DIR": cache})[0] for _ in range(3)]
    return {"cold_start_seconds": round(cold, 2), "warm_start_seconds": round(sorted(warm)[1], 2)}


def warm_kernels(cases, work):
    """Compile (or load from the Numba cache) every fastemb kernel the cases will time, on a tiny corpus, so
    that no timed case pays for compiling after a code change (the first run after one spends ~11 s there)."""
    tiny = os.path.join(work, "warm.txt")
    with open(tiny, "w") as f:
        f.write("the quick brown fox jumps over the lazy dog\n" * 200)
    seen = set()
    for c in cases:
        if c["tool"] != "fastemb" or c["task"] not in ("sgns", "cbow", "glove", "ppmi-svd"):
            continue
        key = (c["task"], bool(c.get("hs")), c.get("dim", 100))
        if key in seen:
            continue
        seen.add(key)
        argv = ["fastemb", "train", tiny, "--algo", c["task"], "-o", os.path.join(work, "warm.h5"), "--dim",
                str(c.get("dim", 100)), "--epochs", "1", "--min-count", "1", "--threads", str(c.get("threads", 2)),
                "--quiet", "--force"] + (["--hs"] if c.get("hs") else [])
        H.run_process(argv)


def scaling_rss(work, sizes, memory="1GB"):
    """Peak RSS of `fastemb cooc` (vocabulary + co-occurrence, window 10) on Zipfian corpora of growing
    length, streamed through stdin so the corpus is never stored."""
    out = []
    for tokens in sizes:
        wall, rss, rc, _, err = H.run_process(
            ["fastemb", "cooc", "-", "-o", os.path.join(work, "z.h5"), "--window", "10", "--memory", memory,
             "--quiet", "--force"], stdin_source=C.zipf_tokens(tokens, vocab=100_000, exponent=1.0, seed=0))
        import h5py
        nnz = None
        if rc == 0:
            with h5py.File(os.path.join(work, "z.h5"), "r") as f:
                nnz = int(f["cooccurrence/data"].shape[0])
        out.append({"tokens": tokens, "wall": round(wall, 2), "rss_mb": round(rss), "nnz": nnz,
                    "memory": memory, "error": err.strip()[-200:] if rc else None})
        print(f"  zipf {tokens:,} tokens: {wall:.1f}s, peak RSS {rss:.0f} MB, nnz {nnz}", file=sys.stderr)
    return out


def vocab_scaling(work, sizes=(10_000, 50_000, 200_000), tokens=5_000_000):
    """Time and peak RSS of glove (5 epochs) and ppmi-svd against vocabulary size, on Zipfian corpora of
    `tokens` tokens (min-count 1, so the vocabulary is what the generator draws)."""
    out = []
    for vocab in sizes:
        path = C.write_zipf(os.path.join(work, f"zipf-v{vocab}.txt"), tokens, vocab=vocab, exponent=1.0, seed=0)
        for algo, extra in (("glove", ["--epochs", "5"]), ("ppmi-svd", [])):
            wall, rss, rc, _, err = H.run_process(["fastemb", "train", path, "--algo", algo, "--min-count", "1",
                                                   "-o", os.path.join(work, "v.h5"), "--quiet", "--force", *extra])
            out.append({"vocab": vocab, "algo": algo, "wall": round(wall, 2), "rss_mb": round(rss),
                        "error": err.strip()[-200:] if rc else None})
            print(f"  {algo} vocab {vocab:,}: {wall:.1f}s, peak RSS {rss:.0f} MB", file=sys.stderr)
        os.remove(path)
    return out


def _finish_axes(ax, legend_size):
    """Integer x ticks, both axes from zero, a light grid and a legend."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def plots(rows, extra, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["matplotlib is not installed: no plots (pip install matplotlib)"]
    made = []
    train = [r for r in rows if r["task"] in ("sgns", "cbow") and r.get("words_per_second")
             and not r.get("extra_args") and r["epochs"] == 5]
    if train:  # the profile's main corpus: the one trained on at the most thread counts
        main = max({r["corpus"] for r in train}, key=lambda c: len({r["threads"] for r in train if r["corpus"] == c}))
        train = [r for r in train if r["corpus"] == main]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, task in zip(axes, ("sgns", "cbow")):
        for tool in sorted({r["tool"] + (" " + r["mode"] if r["mode"] else "") for r in train}):
            pts = sorted((r["threads"], r["words_per_second"] / 1e6) for r in train if r["task"] == task
                         and r["tool"] + (" " + r["mode"] if r["mode"] else "") == tool)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=tool)
        ax.set(title=f"{task}: training throughput against threads", xlabel="threads",
               ylabel="training throughput (M words/s)")
        _finish_axes(ax, 7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "throughput_vs_threads.png"), dpi=100)
    made.append("throughput_vs_threads.png")
    if extra.get("scaling_rss"):
        sc = [s for s in extra["scaling_rss"] if s["rss_mb"]]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
        tokens = [s["tokens"] for s in sc]
        a1.plot(tokens, [s["rss_mb"] for s in sc], marker="o", color="#4477aa")
        a1.set(xscale="log", ylabel="peak RSS (MB)", xlabel="corpus tokens (log scale)",
               title="fastemb cooc (stdin, window 10): peak memory")
        a2.plot(tokens, [s["tokens"] / s["wall"] / 1e6 for s in sc], marker="s", color="#cc6677")
        a2.set(xscale="log", ylabel="throughput (M tokens/s, whole process)", xlabel="corpus tokens (log scale)",
               title="fastemb cooc (stdin, window 10): throughput")
        for ax in (a1, a2):
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "rss_vs_corpus_size.png"), dpi=100)
        made.append("rss_vs_corpus_size.png")
    by_epoch = [r for r in rows if r["task"] == "sgns" and r.get("quality") and not r.get("extra_args")]
    corpora = {r["corpus"] for r in by_epoch if r["epochs"] != 5}
    if corpora:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for tool in ("fastemb", "gensim"):
            pts = sorted((r["epochs"], r["quality"]["ws353"]) for r in by_epoch
                         if r["tool"] == tool and r["corpus"] in corpora)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=tool)
        ax.set(title="skip-gram: WordSim-353 against epochs (1M-token corpus)", xlabel="epochs",
               ylabel="WordSim-353 Spearman ρ")
        _finish_axes(ax, 8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "quality_vs_epochs.png"), dpi=100)
        made.append("quality_vs_epochs.png")
    plt.close("all")
    return made


def _thread_list(text):
    try:
        counts = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of thread counts: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1: {text!r}")
    return counts


def cmd_run(args):
    en, en1m = C.english_corpus()
    tools = set(args.tools.split(",")) if args.tools else {"fastemb", "glove", "numpy-ppmi", *H.PEERS}
    cases = profile_cases(args.profile, en, en1m, tools, thread_counts=args.threads)
    if args.tasks:
        cases = [c for c in cases if c["task"] in set(args.tasks.split(","))]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or os.path.join(RESULTS, f"{stamp}-{args.profile}")
    os.makedirs(out_dir, exist_ok=True)
    meta = {**H.machine(), "profile": args.profile, "repeats": args.repeats}
    from fastemb.vocab import build_vocab
    meta["corpus_tokens"] = {c: build_vocab([c], min_count=1).raw_tokens
                             for c in sorted({x["corpus"] for x in cases})}
    records = []
    with tempfile.TemporaryDirectory(prefix="fastemb-bench-") as work:
        warm_kernels(cases, work)
        for rep in range(args.repeats):
            for case in cases:
                if rep > 0 and (not H.availability(case["tool"])[0] or case.get("once")):
                    continue
                if args.seeds:
                    case = {**case, "seed": rep + 1}
                label = f"[{rep + 1}/{args.repeats}] {case['tool']} {case.get('mode', '')} {case['task']} " \
                        f"threads={case.get('threads', 1)} epochs={case.get('epochs', 5)} " \
                        f"{os.path.basename(case['corpus'])} {' '.join(case.get('extra_args', []))}" \
                        f"{' hs' if case.get('hs') else ''}"
                print(label, file=sys.stderr, flush=True)
                r = H.run_case(case, work)
                records.append(r)
                print("   ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                              if k in ("wall", "rss_mb", "train_seconds", "quality", "skipped", "error")},
                      file=sys.stderr, flush=True)
        extra = {}
        if "fastemb" in tools and args.profile not in ("quality", "hs"):
            extra["startup"] = startup_times(work)
            sizes = (1_000_000, 10_000_000) if args.profile == "quick" else (10_000_000, 100_000_000)
            extra["scaling_rss"] = scaling_rss(work, sizes)
            if args.profile == "full":
                extra["vocab_scaling"] = vocab_scaling(work)
    rows = H.summarise(records, meta["corpus_tokens"])
    meta["extra"] = extra
    meta["plots"] = plots(rows, extra, out_dir)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "records": records}, f, indent=1, default=str)
    table = H.markdown(rows, meta)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table)
    print(table)
    print(f"results: {out_dir}", file=sys.stderr)


def cmd_scale(args):
    """Peak RSS of vocabulary + co-occurrence (`fastemb cooc -`) on Zipfian corpora streamed through stdin,
    never stored, at growing lengths: it must stay flat (the vocabulary and the matrix aside)."""
    sizes = [int(float(s)) for s in args.tokens.split(",")]
    out = []
    with tempfile.TemporaryDirectory(prefix="fastemb-scale-", dir=args.tmp_dir) as work:
        for tokens in sizes:
            target = os.path.join(work, "z.h5")
            argv = ["fastemb", "cooc", "-", "-o", target, "--window", str(args.window), "--memory", args.memory,
                    "--quiet", "--force", "--tmp-dir", work]
            wall, rss, rc, _, err = H.run_process(argv, stdin_source=C.zipf_tokens(
                tokens, vocab=args.vocab, exponent=1.0, seed=0))
            row = {"tokens": tokens, "vocab": args.vocab, "window": args.window, "memory": args.memory,
                   "wall": round(wall, 1), "rss_mb": round(rss), "error": err.strip()[-300:] if rc else None}
            if rc == 0:
                import h5py
                with h5py.File(target, "r") as f:
                    row["nnz"] = int(f["cooccurrence/data"].shape[0])
                    row["matrix_mb"] = round(row["nnz"] * 8 / 2 ** 20)
                os.remove(target)
            out.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("corpus", help="build and cache the English benchmark corpus; print its counts")
    z = sub.add_parser("zipf", help="write a synthetic Zipfian corpus ('-' for stdout)")
    z.add_argument("output")
    z.add_argument("--tokens", type=float, default=1e6)
    z.add_argument("--vocab", type=int, default=100_000)
    z.add_argument("--exponent", type=float, default=1.0)
    z.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="run a benchmark profile")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick")
    g.add_argument("--full", dest="profile", action="store_const", const="full")
    g.add_argument("--quality", dest="profile", action="store_const", const="quality",
                   help="defaults of every tool on the benchmark corpus, 2 threads (with --repeats and --seeds)")
    g.add_argument("--hs", dest="profile", action="store_const", const="hs",
                   help="hierarchical softmax vs negative sampling, fastemb and gensim, 2 threads")
    r.set_defaults(profile="quick")
    r.add_argument("--repeats", type=int, default=1)
    r.add_argument("--seeds", action="store_true", help="repeat i runs with seed i (the tools that take one)")
    r.add_argument("--threads", type=_thread_list, default=(1, 2),
                   help="comma-separated thread counts for the training cases (default 1,2), e.g. 1,4,16")
    r.add_argument("--tools", help="comma-separated subset of fastemb,gensim,word2vec.c,fasttext,glove")
    r.add_argument("--tasks", help="comma-separated subset of the profile's tasks (sgns,cbow,glove,ppmi-svd,...)")
    r.add_argument("--out", help="result folder (default bench/results/STAMP-PROFILE)")
    s = sub.add_parser("scale", help="peak RSS of vocab + cooc on stdin-streamed Zipfian corpora")
    s.add_argument("--tokens", default="1e7,1e8,1e9", help="comma-separated corpus lengths")
    s.add_argument("--vocab", type=int, default=20_000)
    s.add_argument("--window", type=int, default=5)
    s.add_argument("--memory", default="1GB")
    s.add_argument("--tmp-dir", default=None)
    s.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.cmd == "corpus":
        for p in C.english_corpus():
            C.stats(p)
    elif args.cmd == "zipf":
        gen = C.zipf_tokens(int(args.tokens), vocab=args.vocab, exponent=args.exponent, seed=args.seed)
        if args.output == "-":
            try:
                for chunk in gen:
                    sys.stdout.buffer.write(chunk)
            except BrokenPipeError:
                pass
        else:
            with open(args.output, "wb") as f:
                for chunk in gen:
                    f.write(chunk)
    elif args.cmd == "scale":
        cmd_scale(args)
    else:
        cmd_run(args)


if __name__ == "__main__":
    main()
