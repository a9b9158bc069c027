"""Subword (fastText) skip-gram against fastText (fasttext-numpy2) and gensim's FastText, in one run:

    python -m bench.subword [--corpus PATH] [--seeds 1] [--tools fastemb,fasttext,gensim] [--out bench/results]

Every tool trains on the same corpus with the same settings (dim 100, window 5, negative 5, sample 1e-4,
min-count 5, minn 3, maxn 6, 2,000,000 buckets, 5 epochs, 2 threads, fastText's learning rate 0.05 for
fastemb and fastText, gensim's default 0.025),
each in its own process, timed from outside (whole-process seconds: start, reading, training, saving).
Before training, 10% of WordSim-353's words (seeded) are held out: every corpus line that holds one is
removed, so those words are outside every model's vocabulary and get their vectors from n-grams only.
Reported per tool and seed: seconds; WS353 Spearman on all pairs (unknown words from n-grams), on the pairs
without a held-out word, and on the pairs with one (OOV quality); SimLex-999; analogy accuracy (3CosAdd,
the 30,000 most frequent words). The corpus is the benchmark corpus bench/cache/en.txt (built by
bench.corpus.english_corpus when it is missing and Debian's packages can be downloaded), else the shipped
KJV sample (said in the output).
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-4, min_count=5, minn=3, maxn=6, buckets=2_000_000,
                epochs=5, threads=2, alpha=0.05)


def corpus_path(given):
    if given:
        return given, os.path.basename(given)
    full = os.path.join(ROOT, "bench", "cache", "en.txt")
    if not os.path.exists(full):
        try:
            from bench.corpus import english_corpus
            full, _ = english_corpus(quiet=True)
        except Exception as e:  # noqa: BLE001 - no network or no apt: fall back, and say so
            print(f"# the benchmark corpus cannot be built ({type(e).__name__}: {e}); using corpora/kjv.txt.gz",
                  file=sys.stderr)
            return os.path.join(ROOT, "corpora", "kjv.txt.gz"), "kjv.txt.gz (fallback)"
    return full, "en.txt"


def held_out_corpus(src, out, fraction, seed):
    """Write `src` without the lines that hold a held-out WS353 word; returns the held-out words."""
    from fastemb.eval import dataset, read_pairs
    words = sorted({w.lower() for a, b, _ in read_pairs(dataset("wordsim353")) for w in (a, b)})
    held = set(random.Random(seed).sample(words, max(1, round(fraction * len(words)))))
    opener = gzip.open if src.endswith(".gz") else open
    kept = dropped = 0
    with opener(src, "rt", encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
        for line in f:
            if held.intersection(line.lower().split()):
                dropped += 1
                continue
            g.write(line)
            kept += 1
    return held, kept, dropped


def run_tool(tool, corpus, out_dir, seed):
    s = SETTINGS
    if tool == "fastemb":
        out = os.path.join(out_dir, f"fastemb{seed}.h5")
        cmd = [sys.executable, "-m", "fastemb", "train", corpus, "--algo", "sgns", "-o", out, "--force", "-q",
               "--dim", str(s["dim"]), "--window", str(s["window"]), "--negative", str(s["negative"]),
               "--sample", str(s["sample"]), "--min-count", str(s["min_count"]), "--minn", str(s["minn"]),
               "--alpha", str(s["alpha"]),
               "--maxn", str(s["maxn"]), "--buckets", str(s["buckets"]), "--epochs", str(s["epochs"]),
               "--threads", str(s["threads"]), "--seed", str(seed)]
    elif tool == "fasttext":
        out = os.path.join(out_dir, f"fasttext{seed}.bin")
        code = ("import fasttext, sys\n"
                f"m = fasttext.train_unsupervised(sys.argv[1], model='skipgram', dim={s['dim']}, ws={s['window']},"
                f" neg={s['negative']}, t={s['sample']}, minCount={s['min_count']}, minn={s['minn']},"
                f" maxn={s['maxn']}, bucket={s['buckets']}, epoch={s['epochs']}, thread={s['threads']},"
                f" lr={s['alpha']}, verbose=0)\n"  # fasttext-numpy2's Python API takes no seed
                "m.save_model(sys.argv[2])\n")
        cmd = [sys.executable, "-c", code, corpus, out]
    elif tool == "gensim":
        out = os.path.join(out_dir, f"gensim{seed}.model")
        code = ("import logging, sys\nlogging.disable(logging.CRITICAL)\n"
                "from gensim.models import FastText\n"
                f"m = FastText(corpus_file=sys.argv[1], sg=1, vector_size={s['dim']}, window={s['window']},"
                f" negative={s['negative']}, sample={s['sample']}, min_count={s['min_count']}, min_n={s['minn']},"
                f" max_n={s['maxn']}, bucket={s['buckets']}, epochs={s['epochs']}, workers={s['threads']},"
                f" seed={seed})\n"
                "m.save(sys.argv[2])\n")
        cmd = [sys.executable, "-c", code, corpus, out]
    else:
        raise SystemExit(f"unknown tool {tool}")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    return out, time.perf_counter() - t0


def vector_source(tool, path):
    """(in-vocabulary Embeddings, word -> vector or None) of a trained model."""
    import fastemb
    if tool == "fastemb":
        e = fastemb.load(path)

        def vec(w):
            try:
                return e.get_vector(w)
            except KeyError:
                return None
        return e, vec
    if tool == "fasttext":
        import fasttext
        m = fasttext.load_model(path)
        words = m.get_words()
        e = fastemb.Embeddings(words, np.vstack([m.get_word_vector(w) for w in words]))
        return e, m.get_word_vector
    from gensim.models import FastText
    wv = FastText.load(path).wv
    return fastemb.Embeddings.from_gensim(wv), lambda w: wv[w]


def spearman(vec, pairs):
    from scipy.stats import spearmanr
    model, human = [], []
    for a, b, score in pairs:
        va, vb = vec(a.lower()), vec(b.lower())
        if va is None or vb is None or not np.linalg.norm(va) or not np.linalg.norm(vb):
            continue
        model.append(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)))
        human.append(score)
    return (float(spearmanr(model, human).correlation) if len(model) > 2 else float("nan")), len(model)


def evaluate(tool, path, held):
    from fastemb.eval import analogy, dataset, read_pairs
    e, vec = vector_source(tool, path)
    ws = read_pairs(dataset("wordsim353"))
    oov = [p for p in ws if p[0].lower() in held or p[1].lower() in held]
    inv = [p for p in ws if p not in oov]
    r = {}
    r["ws353_all"], r["ws353_all_n"] = spearman(vec, ws)
    r["ws353_invocab"], r["ws353_invocab_n"] = spearman(vec, inv)
    r["ws353_oov"], r["ws353_oov_n"] = spearman(vec, oov)
    r["simlex"], r["simlex_n"] = spearman(vec, read_pairs(dataset("simlex999")))
    r["analogy"] = analogy(e, dataset("questions-words"), methods=("3cosadd",))["3cosadd"]
    r["vocab"] = len(e)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--tools", default="fastemb,fasttext,gensim")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--work", default=None, help="Folder for the models (default: a temporary one).")
    args = ap.parse_args()
    import tempfile
    work = args.work or tempfile.mkdtemp(prefix="fastemb-subword-")
    os.makedirs(work, exist_ok=True)
    src, name = corpus_path(args.corpus)
    train = os.path.join(work, "train.txt")
    held, kept, dropped = held_out_corpus(src, train, args.holdout, 0)
    print(f"# corpus {name}: {kept:,} lines kept, {dropped:,} removed for {len(held)} held-out WS353 words; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    # compile fastemb's kernels first (Numba caches them on disk, as a user's second run finds them)
    warm = os.path.join(work, "warm.txt")
    with open(train, encoding="utf-8") as f, open(warm, "w", encoding="utf-8") as g:
        for _, line in zip(range(2000), f):
            g.write(line)
    if "fastemb" in args.tools:
        subprocess.run([sys.executable, "-m", "fastemb", "train", warm, "-o", os.path.join(work, "warm.h5"), "--force",
                        "-q", "--maxn", "6", "--buckets", "1000", "--epochs", "1", "--threads", "2"], check=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
    rows = []
    for seed in range(1, args.seeds + 1):
        for tool in args.tools.split(","):
            out, seconds = run_tool(tool, train, work, seed)
            r = {"tool": tool, "seed": seed, "seconds": round(seconds, 2), "load": round(os.getloadavg()[0], 1),
                 **evaluate(tool, out, held)}
            rows.append(r)
            print(json.dumps(r), flush=True)
            if not args.work:
                for p in os.listdir(work):
                    if p.startswith(tool):
                        os.remove(os.path.join(work, p))
    by = {}
    for r in rows:
        by.setdefault(r["tool"], []).append(r)
    print("\n| tool | seconds | WS353 all | WS353 in-vocab | WS353 OOV pairs | SimLex | analogy |")
    print("|---|---|---|---|---|---|---|")
    for tool, rs in by.items():
        def m(k, rs=rs, digits=3):
            v = [x[k] for x in rs]
            return f"{np.mean(v):.{digits}f}" + (f" ± {np.std(v):.{digits}f}" if len(v) > 1 else "")
        print(f"| {tool} | {m('seconds', digits=1)} | {m('ws353_all')} | {m('ws353_invocab')} | {m('ws353_oov')} "
              f"(n={rs[0]['ws353_oov_n']}) | {m('simlex')} | {m('analogy')} |")
    if "fastemb" in by:
        base = np.mean([x["seconds"] for x in by["fastemb"]])
        for tool in by:
            if tool != "fastemb":
                print(f"# fastemb is {np.mean([x['seconds'] for x in by[tool]]) / base:.2f}x {tool}'s speed")
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M")
    with open(os.path.join(args.out, f"subword-{stamp}.json"), "w") as f:
        json.dump({"corpus": name, "settings": SETTINGS, "held_out": sorted(held), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
