"""Phrase detection against gensim's Phrases (issue 22): the same phrase table, speed, peak RSS.

    python -m bench.phrases [--case kjv|kjv-x8|en ...] [--corpus FILE [--repeat N]] [--min-count 5]
                            [--threshold 10] [--npmi-threshold 0.5]

Cases: kjv (corpora/kjv.txt.gz, 0.9M tokens), kjv-x8 (the same text 8 times, uncompressed: the phrase set
changes with the counts) and en (bench/cache/en.txt, the benchmark corpus, 6.0M tokens; skipped, and said,
when absent); all three by default, or --corpus FILE [--repeat N] for another corpus.

Each tool runs in its own process (bench.harness.run_process: wall time and peak RSS, VmHWM polled over the
process tree). Inside, each reports its own timings: learning the table (gensim: Phrases(...) +
export_phrases(); fastemb: phrasing.learn after a warm-up that loads the compiled kernels) and writing
the phrased corpus (gensim: FrozenPhrases over LineSentence; fastemb: PhraseTable.apply), as wall and CPU
time (the CPU time of a single-threaded step moves less with the machine's load). The whole process is
gensim's (learn + write) against the `fastemb phrases CORPUS -o OUT --table TSV` command, wall and CPU time
(the children's user + system time) and peak RSS. The phrase sets of both scorings are compared (identical
keys; largest relative score difference), and the phrased files (both fastemb's, against gensim's).
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
CASES = {"kjv": ("corpora/kjv.txt.gz", 1), "kjv-x8": ("corpora/kjv.txt.gz", 8), "en": ("bench/cache/en.txt", 1)}


def run_tool(tool, corpus, out_dir, min_count, threshold, scoring):
    from bench.harness import run_process
    argv = [sys.executable, "-m", "bench.phrases", "--child", tool, "--corpus", corpus, "--out", out_dir,
            "--min-count", str(min_count), "--threshold", str(threshold), "--scoring", scoring]
    cpu, (wall, peak, rc, out, err) = children_cpu(run_process, argv, env={"PYTHONPATH": ROOT})
    if rc != 0:
        raise SystemExit(f"{tool} failed ({rc}): {err[-2000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak}


def run_cli(corpus, out_dir, min_count, threshold, scoring):
    """`fastemb phrases` as a user runs it: (wall, CPU, peak RSS MB) of the whole process."""
    from bench.harness import run_process
    argv = [sys.executable, "-m", "fastemb", "phrases", corpus, "-o", os.path.join(out_dir, "cli.txt"), "--table",
            os.path.join(out_dir, "cli.tsv"), "--min-count", str(min_count), "--threshold", str(threshold),
            "--scoring", scoring, "--force", "--quiet"]
    cpu, (wall, peak, rc, _, err) = children_cpu(run_process, argv, env={"PYTHONPATH": ROOT})
    if rc != 0:
        raise SystemExit(f"fastemb phrases failed ({rc}): {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak}


def children_cpu(fn, *args, **kwargs):
    """(user + system seconds of the child processes fn waited for, fn's result)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn(*args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result


def compare(out_dir, scoring):
    with open(os.path.join(out_dir, f"fastemb-{scoring}.json")) as f:
        a = json.load(f)
    with open(os.path.join(out_dir, f"gensim-{scoring}.json")) as f:
        b = json.load(f)
    common = set(a) & set(b)
    rel = max((abs(a[k] - b[k]) / max(abs(b[k]), 1e-300) for k in common), default=0.0)
    return {"fastemb": len(a), "gensim": len(b), "only_fastemb": sorted(set(a) - set(b))[:5],
            "only_gensim": sorted(set(b) - set(a))[:5], "identical_set": set(a) == set(b), "max_rel_score_diff": rel}


def same_files(*paths):
    with open(paths[0], "rb") as f:
        first = f.read()
    for p in paths[1:]:
        with open(p, "rb") as f:
            if f.read() != first:
                return False
    return True


def run_case(label, corpus, work, args):
    rows = []
    print(f"\n# case {label}: load average {os.getloadavg()[0]:.1f} at start")
    for scoring, threshold in (("default", args.threshold), ("npmi", args.npmi_threshold)):
        res = {tool: run_tool(tool, corpus, work, args.min_count, threshold, scoring) for tool in ("gensim", "fastemb")}
        cli = run_cli(corpus, work, args.min_count, threshold, scoring)
        same = compare(work, scoring)
        same_text = same_files(*(os.path.join(work, f) for f in ("gensim.txt", "fastemb.txt", "cli.txt")))
        g, fe = res["gensim"], res["fastemb"]
        rows.append((scoring, threshold, g, fe, cli, same, same_text))
        print(f"\n## {label}: scoring={scoring} min_count={args.min_count} threshold={threshold} "
              f"({fe['words']:,} tokens)")
        print(f"phrase set: fastemb {same['fastemb']:,}, gensim {same['gensim']:,}, identical: "
              f"{same['identical_set']}, largest relative score difference {same['max_rel_score_diff']:.1e}"
              + ("" if same["identical_set"] else f"; only fastemb {same['only_fastemb']}, only gensim "
                                                  f"{same['only_gensim']}"))
        print(f"phrased corpus byte-identical (gensim, fastemb, fastemb phrases): {same_text}")
        print("| | gensim | fastemb | ratio |\n|---|---:|---:|---:|")
        for key, name in (("learn_s", "learn table (s)"), ("learn_cpu_s", "learn table, CPU time (s)"),
                          ("apply_s", "write phrased corpus (s)"), ("apply_cpu_s", "write, CPU time (s)")):
            print(f"| {name} | {g[key]:.2f} | {fe[key]:.2f} | {g[key] / max(fe[key], 1e-9):.1f}x |")
        for key, name in (("wall_s", "whole process: gensim / `fastemb phrases` (s)"),
                          ("cpu_s", "whole process, CPU time (s)")):
            print(f"| {name} | {g[key]:.2f} | {cli[key]:.2f} | {g[key] / max(cli[key], 1e-9):.1f}x |")
        print(f"| peak RSS: gensim / `fastemb phrases` (MB) | {g['peak_rss_mb']:.0f} | {cli['peak_rss_mb']:.0f} | |")
    print(f"\n# case {label}: load average {os.getloadavg()[0]:.1f} at end")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES))
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
    if args.corpus and args.case:
        ap.error("give --case or --corpus, not both")
    from bench.harness import machine
    if args.corpus:
        cases = [(args.corpus + (f" x{args.repeat}" if args.repeat > 1 else ""), args.corpus, args.repeat)]
    else:
        cases = [(name, os.path.join(ROOT, CASES[name][0]), CASES[name][1]) for name in args.case or CASES]
    m = machine()
    print(f"# phrases: fastemb vs gensim {m['versions'].get('gensim')}")
    print(f"# {m['date']}, {m['cpu']}, {m['cores']} cores")
    for label, corpus, repeat in cases:
        if not os.path.exists(corpus):
            print(f"\n# case {label}: skipped, {os.path.relpath(corpus, ROOT)} does not exist (`python -m bench corpus` "
                  f"builds it)")
            continue
        work = tempfile.mkdtemp(prefix="bench-phrases-")
        try:
            if repeat > 1:
                big = os.path.join(work, "corpus.txt")
                opener = gzip.open if corpus.endswith(".gz") else open
                with open(big, "wb") as out:
                    for _ in range(repeat):
                        with opener(corpus, "rb") as f:
                            shutil.copyfileobj(f, out)
                corpus = big
            run_case(label, corpus, work, args)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
