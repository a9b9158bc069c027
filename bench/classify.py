"""Text classification on the KJV sample tasks: fastemb's embedding-bag classifier against fastText's
supervised mode with the same settings, in the same run, and two baselines (the majority label, and a
bag-of-words multinomial logistic regression written here in numpy/scipy, its L2 penalty tuned on a
validation split of the training data).

    python -m bench.classify [--tasks group,testament,book] [--configs 1x5,2x5,2x25] [--seeds 1,2,3]
                             [--threads 2] [--json OUT.json]

A config NxE is word n-grams N and E epochs; every tool runs with lr 0.1, dim 100, min-count 1 and 200,000
n-gram buckets (fastText's -bucket; fastemb's default), `threads` threads. Accuracy is precision@1 on the
held-out verses (every 10th, fastemb.datasets.kjv_task). Timings are in-process: `call s` is the whole
training call (reading the file included) for both tools, `train s` fastemb's SGD alone; examples/s =
training lines × epochs / call seconds. The kernels are compiled (or loaded from Numba's cache) before
anything is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------- the baselines
def parse_labelled(path, label_prefix="__label__"):
    """(list of token lists, list of label lists) of a fastText-format file (lines without a label or
    without text skipped, as both classifiers do)."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
            labs = [t[len(label_prefix):] for t in tokens if t.startswith(label_prefix)]
            words = [t for t in tokens if not t.startswith(label_prefix)]
            if labs and words:
                texts.append(words)
                labels.append(labs)
    return texts, labels


def majority(train_labels, test_labels) -> dict:
    counts = {}
    for labs in train_labels:
        counts[labs[0]] = counts.get(labs[0], 0) + 1
    top = max(counts, key=lambda k: (counts[k], k))
    return {"label": top, "accuracy": float(np.mean([top in labs for labs in test_labels]))}


def bow_matrix(texts, vocab=None, ngrams=1):
    """CSR tf-idf matrix (sublinear tf, smoothed idf, rows L2-normalised) of word (and word n-gram) counts;
    `vocab` (term -> column, idf) from the training texts when None."""
    import scipy.sparse as sp
    rows, cols = [], []
    grams = [[" ".join(t[i:i + n]) for n in range(1, ngrams + 1) for i in range(len(t) - n + 1)] for t in texts]
    build = vocab is None
    if build:
        index = {}
        for g in grams:
            for term in g:
                index.setdefault(term, len(index))
    else:
        index = vocab["index"]
    for r, g in enumerate(grams):
        for term in g:
            c = index.get(term)
            if c is not None:
                rows.append(r)
                cols.append(c)
    X = sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(len(texts), len(index)))
    X.sum_duplicates()
    X.data = 1.0 + np.log(X.data)
    if build:
        df = np.bincount(X.indices, minlength=len(index))
        idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
        vocab = {"index": index, "idf": idf}
    X = X @ sp.diags(vocab["idf"])
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    return X.tocsr(), vocab


def lbfgs(fun, x, *, max_iter=500, memory=10, tol=1e-6):
    """Minimise a smooth convex fun(x) -> (value, gradient) by L-BFGS (two-loop recursion, backtracking line
    search with the Armijo condition). Written here because scipy's L-BFGS-B spent 70% of the time in its own
    bookkeeping on this problem (~100k parameters)."""
    f, g = fun(x)
    s_hist, y_hist = [], []
    for _ in range(max_iter):
        q = g.copy()
        alphas = []
        for s_k, y_k in reversed(list(zip(s_hist, y_hist))):
            a = s_k @ q / (y_k @ s_k)
            alphas.append(a)
            q -= a * y_k
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q /= max(np.linalg.norm(g), 1e-12)
        for (s_k, y_k), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += s_k * (a - (y_k @ q) / (y_k @ s_k))
        direction = -q
        slope = g @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            s_hist, y_hist = [], []
            direction, slope = -g, -(g @ g)
        step = 1.0
        while True:
            x_new = x + step * direction
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_k, y_k = x_new - x, g_new - g
        if y_k @ s_k > 1e-12:
            s_hist.append(s_k)
            y_hist.append(y_k)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        done = abs(f - f_new) <= tol * max(1.0, abs(f_new))
        x, f, g = x_new, f_new, g_new
        if done:
            break
    return x


def fit_logreg(X, y, n_labels, l2, max_iter=500, start=None):
    """Multinomial logistic regression with a bias: minimise mean cross-entropy + l2/2·||W||² by L-BFGS
    (from `start`, a previous (W, b), when given). Returns (W [features, labels], b [labels])."""
    n, d = X.shape
    Y = np.zeros((n, n_labels))
    Y[np.arange(n), y] = 1.0
    XT = X.T.tocsr()

    def loss_grad(theta):
        W = theta[:d * n_labels].reshape(d, n_labels)
        b = theta[d * n_labels:]
        Z = X @ W + b
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        s = P.sum(axis=1, keepdims=True)
        P /= s
        loss = -np.mean(Z[np.arange(n), y] - np.log(s.ravel())) + 0.5 * l2 * np.sum(W * W)
        G = (P - Y) / n
        gW = XT @ G + l2 * W
        return loss, np.concatenate((gW.ravel(), G.sum(axis=0)))

    theta = np.zeros(d * n_labels + n_labels) if start is None else np.concatenate((start[0].ravel(), start[1]))
    theta = lbfgs(loss_grad, theta, max_iter=max_iter)
    return theta[:d * n_labels].reshape(d, n_labels), theta[d * n_labels:]


L2_GRID = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)


def bow_logreg(train_texts, train_labels, test_texts, test_labels, *, ngrams=1, l2_grid=L2_GRID, validation=0.1,
               seed=1) -> dict:
    """Tune the L2 penalty on a random `validation` share of the training data (the path from the strongest
    penalty down, each fit starting from the previous one), refit on all of it with the best, and report
    held-out accuracy (a line is right when the top label is among its labels)."""
    names = sorted({labs[0] for labs in train_labels})
    label_id = {x: i for i, x in enumerate(names)}
    y = np.array([label_id[labs[0]] for labs in train_labels])
    t0 = time.perf_counter()
    perm = np.random.default_rng(seed).permutation(len(train_texts))
    n_val = int(len(perm) * validation)
    val, fit = perm[:n_val], perm[n_val:]
    Xf, vocab = bow_matrix([train_texts[i] for i in fit], ngrams=ngrams)
    Xv, _ = bow_matrix([train_texts[i] for i in val], vocab, ngrams=ngrams)
    scores, start = {}, None
    for l2 in sorted(l2_grid, reverse=True):
        start = fit_logreg(Xf, y[fit], len(names), l2, start=start)
        scores[l2] = float(np.mean((Xv @ start[0] + start[1]).argmax(1) == y[val]))
    best = max(l2_grid, key=lambda k: (scores[k], k))
    X, vocab = bow_matrix(train_texts, ngrams=ngrams)
    W, b = fit_logreg(X, y, len(names), best)
    seconds = time.perf_counter() - t0
    pred = (bow_matrix(test_texts, vocab, ngrams=ngrams)[0] @ W + b).argmax(1)
    acc = float(np.mean([names[p] in labs for p, labs in zip(pred, test_labels)]))
    return {"accuracy": acc, "l2": best, "validation": scores, "seconds": seconds, "features": X.shape[1]}


# ------------------------------------------------------------------------------------------ the tools
def run_fastemb(train, test, *, ngrams, epochs, seed, threads):
    import fastemb.models.classify as C
    t = time.perf_counter()
    clf = C.train(train, ngrams=ngrams, epochs=epochs, seed=seed, threads=threads, lr=0.1, dim=100, min_count=1,
                  buckets=200_000)
    call = time.perf_counter() - t
    return {"accuracy": clf.test(test)["accuracy"], "call_s": call, "train_s": clf.attrs["train_seconds"],
            "examples": clf.attrs["examples"]}


def run_fasttext(train, test, *, ngrams, epochs, seed, threads):
    import fasttext
    kw = dict(input=train, lr=0.1, epoch=epochs, wordNgrams=ngrams, dim=100, minCount=1, bucket=200_000,
              thread=threads, verbose=0)
    failures = []
    for _ in range(3):  # fastText sometimes stops with "Encountered NaN" (2 threads, lr 0.1): counted, retried
        try:
            t = time.perf_counter()
            model = fasttext.train_supervised(**kw, seed=seed)
            break
        except RuntimeError as e:
            failures.append(str(e))
    else:
        return {"accuracy": None, "call_s": None, "train_s": None, "examples": None, "failures": failures}
    call = time.perf_counter() - t
    _, p1, _ = model.test(test)
    return {"accuracy": p1, "call_s": call, "train_s": None, "examples": None, "failures": failures}


def _mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="group,testament,book")
    ap.add_argument("--configs", default="1x5,2x5,2x25", help="NGRAMSxEPOCHS, comma-separated")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr-ngrams", default="1,2", help="n-gram orders of the BoW-LR baseline (2: minutes)")
    ap.add_argument("--lr-bigram-max-labels", type=int, default=10,
                    help="no bigram BoW-LR for tasks with more labels (book: 66 labels x 145k features, too slow)")
    ap.add_argument("--corpora", default=os.path.join(ROOT, "corpora"))
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    import fastemb.models.classify as C
    from fastemb.datasets import kjv_task
    seeds = [int(s) for s in args.seeds.split(",")]
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    tools = {"fastemb": run_fastemb}
    try:
        import fasttext  # noqa: F401
        tools["fastText"] = run_fasttext
        ft_version = _version("fasttext-numpy2") or _version("fasttext")
    except ImportError as e:
        ft_version = f"skipped: {e}"
    records, rows = [], []
    with tempfile.TemporaryDirectory() as work:
        for task in args.tasks.split(","):
            info = kjv_task(task, os.path.join(work, f"kjv-{task}"), corpora=args.corpora)
            if not records:  # compile (or load from the cache) the kernels before any timing
                C.train(info["train"], epochs=1, ngrams=2, threads=args.threads).test(info["test"])
            train_texts, train_labels = parse_labelled(info["train"])
            test_texts, test_labels = parse_labelled(info["test"])
            n_labels = len(info["labels"])
            base = majority(train_labels, test_labels)
            rows.append((task, n_labels, "majority", "", "", f"{base['accuracy']:.4f}", "", "", "", ""))
            records.append({"task": task, "tool": "majority", **base})
            for ng in [int(x) for x in args.lr_ngrams.split(",") if x]:
                if ng > 1 and n_labels > args.lr_bigram_max_labels:
                    continue
                lr = bow_logreg(train_texts, train_labels, test_texts, test_labels, ngrams=ng)
                rows.append((task, n_labels, f"BoW-LR ({'uni' if ng == 1 else 'uni+bi'}grams, tf-idf, L2 "
                             f"{lr['l2']:g})", "", "", f"{lr['accuracy']:.4f}", f"{lr['seconds']:.1f}", "", "", ""))
                records.append({"task": task, "tool": "bow-logreg", "ngrams": ng, **lr})
            for ng, ep in configs:
                for tool, fn in tools.items():
                    runs = [fn(info["train"], info["test"], ngrams=ng, epochs=ep, seed=s, threads=args.threads)
                            for s in seeds]
                    for s, r in zip(seeds, runs):
                        records.append({"task": task, "tool": tool, "ngrams": ng, "epochs": ep, "seed": s, **r})
                    failed = sum(len(r.get("failures", [])) for r in runs)
                    acc, acc_sd = _mean_sd([r["accuracy"] for r in runs])
                    call, _ = _mean_sd([r["call_s"] for r in runs])
                    tr, _ = _mean_sd([r["train_s"] for r in runs])
                    speed = info["train_lines"] * ep / call
                    name = tool + (f" ({failed} run(s) stopped on NaN, rerun)" if failed else "")
                    rows.append((task, n_labels, name, ng, ep, f"{acc:.4f} ± {acc_sd:.4f}", f"{call:.2f}",
                                 f"{tr:.2f}" if tr is not None else "", f"{speed / 1e3:,.0f}k",
                                 f"{info['train_lines'] * ep / tr / 1e3:,.0f}k" if tr else ""))
                    print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    head = ("task", "labels", "model", "ngrams", "epochs", "accuracy", "call s", "train s", "examples/s (call)",
            "examples/s (train)")
    meta = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.processor() or platform.machine()} "
            f"({os.cpu_count()} cores), {args.threads} threads, seeds {args.seeds}, fastText {ft_version}, "
            f"train {info['train_lines']:,} / test {info['test_lines']:,} verses")
    print(meta)
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"meta": meta, "records": records}, f, indent=1)


def _version(dist):
    import importlib.metadata
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
