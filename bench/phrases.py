"""Phrase detection against gensim's Phrases (issue 22): the same phrase table, speed, peak RSS.

    python -m bench.phrases [--corpus FILE] [--repeat N] [--min-count 5] [--threshold 10] [--npmi-threshold 0.5]

Each tool runs in its own process (bench.harness.run_process: wall time and peak RSS, VmHWM polled over the
process tree). Inside, each reports its own timings: learning the table (gensim: Phrases(...) +
export_phrases(); fastemb: phrasing.learn after a warm-up that loads the compiled kernels) and writing
the phrased corpus (gensim: FrozenPhrases over LineSentence; fastemb: PhraseTable.apply), as wall and CPU time (the CPU
time of a single-threaded step moves less with the machine's load). The phrase sets
of both scorings are compared (identical keys; largest relative score difference).

The corpus is bench/cache/en.txt when it exists, else the shipped corpora/kjv.txt.gz (said in the output);
--repeat N concatenates it N times (a larger corpus for timing; the phrase set then changes with the counts).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_corpus():
    en = os.path.join(ROOT, "bench", "cache", "en.txt")
    return (en, "bench/cache/en.txt") if os.path.exists(en) else \
        (os.path.join(ROOT, "corpora", "kjv.txt.gz"), "corpora/kjv.txt.gz (bench/cache/en.txt does not exist)")


# ------------------------------------------------------------------------------------------ children
def child_fastemb(corpus, out_dir, min_count, threshold, scoring):
    import fastemb  # noqa: F401
    from fastemb.corpus import CorpusOptions
    from fastemb.phrasing import PhrasesOptions, learn
    warm = os.path.join(out_dir, "warm.txt")
    with open(warm, "w") as f:
        f.write("a b c a b\n" * 10)
    learn(warm, PhrasesOptions(threshold=0.0), CorpusOptions(min_count=1)).apply(warm, warm + ".out", force=True)
    t0, c0 = time.perf_counter(), time.process_time()
    table = learn(corpus, PhrasesOptions(threshold=threshold, scoring=scoring), CorpusOptions(min_count=min_count))
    t1, c1 = time.perf_counter(), time.process_time()
    table.apply(corpus, os.path.join(out_dir, "fastemb.txt"), force=True)
    t2, c2 = time.perf_counter(), time.process_time()
    with open(os.path.join(out_dir, f"fastemb-{scoring}.json"), "w") as f:
        json.dump(table.as_dict(), f)
    return {"learn_s": t1 - t0, "apply_s": t2 - t1, "learn_cpu_s": c1 - c0, "apply_cpu_s": c2 - c1,
            "phrases": len(table), "words": table.passes[0].words}


def child_gensim(corpus, out_dir, min_count, threshold, scoring):
    from gensim.models.phrases import Phrases
    from gensim.models.word2vec import LineSentence
    sentences = LineSentence(corpus)
    t0, c0 = time.perf_counter(), time.process_time()
    model = Phrases(sentences, min_count=min_count, threshold=threshold, scoring=scoring)
    table = model.export_phrases()
    t1, c1 = time.perf_counter(), time.process_time()
    frozen = model.freeze()
    with open(os.path.join(out_dir, "gensim.txt"), "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(" ".join(frozen[s]) + "\n")
    t2, c2 = time.perf_counter(), time.process_time()
    with open(os.path.join(out_dir, f"gensim-{scoring}.json"), "w") as f:
        json.dump(table, f)
    return {"learn_s": t1 - t0, "apply_s": t2 - t1, "learn_cpu_s": c1 - c0, "apply_cpu_s": c2 - c1,
            "phrases": len(table), "words": model.corpus_word_count}


# ------------------------------------------------------------------------------------------ parent
def run_tool(tool, corpus, out_dir, min_count, threshold, scoring):
    from bench.harness import run_process
    argv = [sys.executable, "-m", "bench.phrases", "--child", tool, "--corpus", corpus, "--out", out_dir,
            "--min-count", str(min_count), "--threshold", str(threshold), "--scoring", scoring]
    wall, peak, rc, out, err = run_process(argv, env={"PYTHONPATH": ROOT})
    if rc != 0:
        raise SystemExit(f"{tool} failed ({rc}): {err[-2000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall, "peak_rss_mb": peak}


def compare(out_dir, scoring):
    with open(os.path.join(out_dir, f"fastemb-{scoring}.json")) as f:
        a = json.load(f)
    with open(os.path.join(out_dir, f"gensim-{scoring}.json")) as f:
        b = json.load(f)
    common = set(a) & set(b)
    rel = max((abs(a[k] - b[k]) / max(abs(b[k]), 1e-300) for k in common), default=0.0)
    return {"fastemb": len(a), "gensim": len(b), "only_fastemb": sorted(set(a) - set(b))[:5],
            "only_gensim": sorted(set(b) - set(a))[:5], "identical_set": set(a) == set(b), "max_rel_score_diff": rel}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=10.0)
    ap.add_argument("--npmi-threshold", type=float, default=0.5)
    ap.add_argument("--child", choices=["fastemb", "gensim"])
    ap.add_argument("--out")
    ap.add_argument("--scoring", default="default")
    args = ap.parse_args(argv)
    if args.child:
        fn = child_fastemb if args.child == "fastemb" else child_gensim
        print(json.dumps(fn(args.corpus, args.out, args.min_count, args.threshold, args.scoring)))
        return
    from bench.harness import machine
    corpus, label = (args.corpus, args.corpus) if args.corpus else default_corpus()
    work = tempfile.mkdtemp(prefix="bench-phrases-")
    try:
        if args.repeat > 1:
            big = os.path.join(work, "corpus.txt")
            opener = gzip.open if corpus.endswith(".gz") else open
            with open(big, "wb") as out:
                for _ in range(args.repeat):
                    with opener(corpus, "rb") as f:
                        shutil.copyfileobj(f, out)
            corpus, label = big, f"{label} x{args.repeat}"
        m = machine()
        print(f"# phrases: fastemb vs gensim {m['versions'].get('gensim')} on {label}")
        print(f"# {m['date']}, {m['cpu']}, {m['cores']} cores, load average {os.getloadavg()[0]:.1f} at start")
        rows = []
        for scoring, threshold in (("default", args.threshold), ("npmi", args.npmi_threshold)):
            res = {tool: run_tool(tool, corpus, work, args.min_count, threshold, scoring)
                   for tool in ("gensim", "fastemb")}
            same = compare(work, scoring)
            with open(os.path.join(work, "fastemb.txt"), "rb") as f1, open(os.path.join(work, "gensim.txt"), "rb") as f2:
                same_text = f1.read() == f2.read()
            g, fe = res["gensim"], res["fastemb"]
            rows.append((scoring, threshold, g, fe, same, same_text))
            print(f"\n## scoring={scoring} min_count={args.min_count} threshold={threshold} "
                  f"({fe['words']:,} tokens)")
            print(f"phrase set: fastemb {same['fastemb']:,}, gensim {same['gensim']:,}, identical: "
                  f"{same['identical_set']}, largest relative score difference {same['max_rel_score_diff']:.1e}"
                  + ("" if same["identical_set"] else f"; only fastemb {same['only_fastemb']}, only gensim "
                                                      f"{same['only_gensim']}"))
            print(f"phrased corpus byte-identical: {same_text}")
            print("| | gensim | fastemb | ratio |\n|---|---:|---:|---:|")
            for key, name in (("learn_s", "learn table (s)"), ("learn_cpu_s", "learn table, CPU time (s)"),
                              ("apply_s", "write phrased corpus (s)"), ("apply_cpu_s", "write, CPU time (s)"),
                              ("wall_s", "whole process (s)")):
                print(f"| {name} | {g[key]:.2f} | {fe[key]:.2f} | {g[key] / max(fe[key], 1e-9):.1f}x |")
            print(f"| peak RSS (MB) | {g['peak_rss_mb']:.0f} | {fe['peak_rss_mb']:.0f} | |")
        print(f"\n# load average {os.getloadavg()[0]:.1f} at end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
