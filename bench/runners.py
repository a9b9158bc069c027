"""One benchmark case, run in its own process: `python -m bench.runners CASE_JSON`.

Prints one JSON line: what the tool reported about itself (training seconds, output path). Wall time and
peak RSS are measured from outside by the harness."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time


# Each peer runs with its own default learning rate (ANCHORS.md measured them so): word2vec.c 0.025 for
# skip-gram and 0.05 for CBOW, gensim's 0.025 (0.05 for CBOW, as ANCHORS.md), fastText's 0.05 for both.
DEFAULT_ALPHA = {"gensim": {"sgns": 0.025, "cbow": 0.05}, "word2vec.c": {"sgns": 0.025, "cbow": 0.05},
                 "fasttext": {"sgns": 0.05, "cbow": 0.05}}


def _w2v_params(p):
    """The shared word2vec-family settings of a case; `hs` cases train a hierarchical softmax alone (negative
    0: gensim hs=1 negative=0, word2vec.c -hs 1 -negative 0, fastText loss hs)."""
    return dict(dim=p.get("dim", 100), window=p.get("window", 5), hs=bool(p.get("hs")),
                negative=p.get("negative", 0 if p.get("hs") else 5),
                sample=p.get("sample", 1e-4), min_count=p.get("min_count", 5), epochs=p.get("epochs", 5),
                alpha=p.get("alpha", DEFAULT_ALPHA.get(p.get("tool"), {}).get(p["task"], 0.025)),
                threads=p.get("threads", 2))


def run_fastemb(case):
    p = case
    out = os.path.join(case["out_dir"], "vectors.h5")
    if p["task"] == "vocab":
        cmd = ["fastemb", "vocab", p["corpus"], "-o", os.path.join(case["out_dir"], "vocab.tsv"),
               "--min-count", str(p.get("min_count", 5)), "--quiet", "--force"]
        subprocess.run(cmd, check=True)
        return {}
    if p["task"] == "cooc":
        cmd = ["fastemb", "cooc", p["corpus"], "-o", os.path.join(case["out_dir"], "cooc.h5"), "--window",
               str(p.get("window", 10)), "--weighting", p.get("weighting", "harmonic"), "--min-count",
               str(p.get("min_count", 5)), "--threads", str(p.get("threads", 2)), "--quiet", "--force"]
        if p.get("memory"):
            cmd += ["--memory", p["memory"]]
        subprocess.run(cmd, check=True)
        return {}
    if p["task"] in ("glove", "ppmi-svd"):
        # fastemb's own defaults for everything the case does not set (window, epochs...)
        cmd = ["fastemb", "train", p["corpus"], "--algo", p["task"], "-o", out, "--dim", str(p.get("dim", 100)),
               "--min-count", str(p.get("min_count", 5)), "--threads", str(p.get("threads", 2)), "--seed",
               str(p.get("seed", 1)), "--quiet", "--force"]
        for key in ("window", "epochs"):
            if p.get(key) is not None:
                cmd += [f"--{key}", str(p[key])]
        subprocess.run(cmd + p.get("extra_args", []), check=True)
        import h5py
        with h5py.File(out, "r") as f:
            return {"vectors": out, "train_seconds": float(f.attrs["train_seconds"]),
                    "corpus_tokens": int(f.attrs["corpus_tokens"])}
    report = json.loads(subprocess.run(fastemb_w2v_command(case), check=True, stdout=subprocess.PIPE).stdout)
    return fastemb_result(report)


def fastemb_w2v_command(case):
    """`fastemb train` for a sgns/cbow case (the harness runs it as the timed process itself: one process,
    as a user runs it)."""
    p = case
    out = os.path.join(case["out_dir"], "vectors.h5")
    w = _w2v_params(p)
    cmd = ["fastemb", "train", p["corpus"], "--algo", p["task"], "-o", out, "--dim", str(w["dim"]),
           "--window", str(w["window"]), "--negative", str(w["negative"]), "--sample", str(w["sample"]),
           "--min-count", str(w["min_count"]), "--epochs", str(w["epochs"]),
           "--threads", str(w["threads"]), "--seed", str(p.get("seed", 1)), "--quiet", "--force"]
    if "alpha" in p:  # otherwise fastemb's default learning rate, as every peer runs with its own
        cmd += ["--alpha", str(p["alpha"])]
    if w["hs"]:
        cmd += ["--hs"]
    return cmd + p.get("extra_args", []) + ["--json"]


def fastemb_result(report):
    """The bench record of `fastemb train --json`'s report."""
    return {"vectors": report["output"], "train_seconds": report["train_seconds"],
            "corpus_tokens": report["corpus_tokens"],
            "passes": {k[:-len("_seconds")]: report[k] for k in PASSES if k in report}}


# what `fastemb train --json` reports of each pass, in the order they run (bench table: per pass)
PASSES = ("startup_seconds", "read_seconds", "encode_seconds", "train_seconds", "write_seconds")


def run_gensim(case):
    import logging
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    logging.disable(logging.CRITICAL)
    w = _w2v_params(case)
    kw = dict(vector_size=w["dim"], window=w["window"], negative=w["negative"], hs=int(w["hs"]), sample=w["sample"],
              min_count=w["min_count"], epochs=w["epochs"], alpha=w["alpha"], workers=w["threads"],
              sg=1 if case["task"] == "sgns" else 0, seed=case.get("seed", 1))
    model = Word2Vec(**kw)
    t0 = time.perf_counter()
    if case.get("mode", "corpus_file") == "corpus_file":
        model.build_vocab(corpus_file=case["corpus"])
        t1 = time.perf_counter()
        model.train(corpus_file=case["corpus"], total_examples=model.corpus_count,
                    total_words=model.corpus_total_words, epochs=w["epochs"])
    else:
        sentences = LineSentence(case["corpus"])
        model.build_vocab(sentences)
        t1 = time.perf_counter()
        model.train(sentences, total_examples=model.corpus_count, epochs=w["epochs"])
    t2 = time.perf_counter()
    out = os.path.join(case["out_dir"], "vectors.bin")
    model.wv.save_word2vec_format(out, binary=True)
    return {"vectors": out, "train_seconds": t2 - t1, "vocab_seconds": t1 - t0,
            "corpus_tokens": int(model.corpus_total_words)}


def run_word2vec_c(case):
    exe = shutil.which("word2vec")
    if case["task"] == "vocab":
        subprocess.run([exe, "-train", case["corpus"], "-save-vocab", os.path.join(case["out_dir"], "vocab.txt"),
                        "-min-count", str(case.get("min_count", 5))], check=True, stdout=subprocess.DEVNULL)
        return {}
    w = _w2v_params(case)
    out = os.path.join(case["out_dir"], "vectors.bin")
    subprocess.run([exe, "-train", case["corpus"], "-output", out, "-cbow", "1" if case["task"] == "cbow" else "0",
                    "-size", str(w["dim"]), "-window", str(w["window"]), "-negative", str(w["negative"]),
                    "-hs", str(int(w["hs"])), "-sample", str(w["sample"]), "-min-count", str(w["min_count"]), "-iter",
                    str(w["epochs"]), "-alpha", str(w["alpha"]), "-threads", str(w["threads"]), "-binary", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    return {"vectors": out}


def run_fasttext(case):
    import fasttext
    import numpy as np
    from fastemb.formats import write_vectors
    w = _w2v_params(case)
    t0 = time.perf_counter()
    model = fasttext.train_unsupervised(case["corpus"], model="skipgram" if case["task"] == "sgns" else "cbow",
                                        dim=w["dim"], ws=w["window"], neg=w["negative"], t=w["sample"],
                                        minCount=w["min_count"], epoch=w["epochs"], lr=w["alpha"],
                                        loss="hs" if w["hs"] else "ns",
                                        thread=w["threads"], minn=0, maxn=0, verbose=0)
    seconds = time.perf_counter() - t0
    words = model.get_words()
    vec = np.vstack([model.get_word_vector(x) for x in words])
    out = os.path.join(case["out_dir"], "vectors.bin")
    write_vectors(out, words, vec, "word2vec-binary")
    return {"vectors": out, "train_seconds": seconds}


def run_numpy_ppmi(case):
    """The straightforward numpy/scipy PPMI-SVD that ANCHORS.md times: Counter vocabulary, pairs per
    offset with numpy, scipy.sparse sums, PPMI with CDS, ARPACK svds, U·Σ^0.5."""
    import collections
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds
    from fastemb.formats import write_vectors
    window, dim, cds = case.get("window", 2), case.get("dim", 100), 0.75
    t0 = time.perf_counter()
    with open(case["corpus"], encoding="utf-8") as f:
        lines = [line.split() for line in f]
    counts = collections.Counter(t for line in lines for t in line)
    words = [w for w, c in counts.most_common() if c >= case.get("min_count", 5)]
    index = {w: i for i, w in enumerate(words)}
    ids, sent = [], []
    for k, line in enumerate(lines):
        kept = [index[t] for t in line if t in index]
        ids.extend(kept)
        sent.extend([k] * len(kept))
    ids, sent = np.array(ids), np.array(sent)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):  # word2vec's dynamic window: expected weight (window - d + 1) / window
        same = sent[d:] == sent[:-d]
        a, b = ids[:-d][same], ids[d:][same]
        w = np.full(len(a), (window - d + 1) / window)
        rows += [a, b]
        cols += [b, a]
        vals += [w, w]
    X = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(words),) * 2).tocsr()
    row_sum = np.asarray(X.sum(1)).ravel()
    col = np.asarray(X.sum(0)).ravel() ** cds
    X = X.tocoo()
    pmi = np.log(X.data * col.sum() / (row_sum[X.row] * col[X.col]))
    keep = pmi > 0
    M = sp.csr_matrix((pmi[keep], (X.row[keep], X.col[keep])), shape=X.shape)
    U, s, _ = svds(M, k=dim)
    vectors = (U * np.sqrt(s)).astype(np.float32)
    seconds = time.perf_counter() - t0
    out = os.path.join(case["out_dir"], "vectors.bin")
    write_vectors(out, words, vectors, "word2vec-binary")
    return {"vectors": out, "train_seconds": seconds}


def glove_c_dir():
    """A build of Stanford's GloVe (https://github.com/stanfordnlp/GloVe: `make`), named by FASTEMB_GLOVE_C."""
    d = os.environ.get("FASTEMB_GLOVE_C")
    if d and all(os.access(os.path.join(d, exe), os.X_OK) for exe in ("vocab_count", "cooccur", "shuffle", "glove")):
        return d
    return None


def run_glove_c(case):
    """GloVe C's four steps as its demo.sh runs them: vocab_count, cooccur, shuffle, glove (W + W̃ saved)."""
    d = glove_c_dir()
    work = case["out_dir"]
    times = {}

    def step(name, args, stdin, stdout):
        t = time.perf_counter()
        with open(stdin, "rb") as fi, open(stdout, "wb") as fo:
            subprocess.run([os.path.join(d, name), *map(str, args)], stdin=fi, stdout=fo, stderr=subprocess.DEVNULL,
                           check=True)
        times[name] = time.perf_counter() - t
    vocab, cooc, shuf = (os.path.join(work, n) for n in ("vocab.txt", "cooc.bin", "cooc.shuf.bin"))
    step("vocab_count", ["-min-count", case.get("min_count", 5), "-verbose", 0], case["corpus"], vocab)
    if case["task"] == "vocab":
        return {"train_seconds": times["vocab_count"]}
    step("cooccur", ["-memory", 4.0, "-vocab-file", vocab, "-verbose", 0, "-window-size", case.get("window", 10)],
         case["corpus"], cooc)
    if case["task"] == "cooc":
        return {"train_seconds": times["cooccur"], "step_seconds": times}
    step("shuffle", ["-memory", 4.0, "-verbose", 0], cooc, shuf)
    out = os.path.join(work, "vectors")
    t = time.perf_counter()
    args = ["-save-file", out, "-threads", case.get("threads", 2), "-input-file", shuf, "-x-max", case.get("x_max", 100),
            "-iter", case.get("epochs", 15), "-vector-size", case.get("dim", 100), "-binary", 0, "-vocab-file", vocab,
            "-verbose", 0]
    subprocess.run([os.path.join(d, "glove"), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    times["glove"] = time.perf_counter() - t
    return {"vectors": out + ".txt", "train_seconds": times["glove"], "step_seconds": times}


RUNNERS = {"fastemb": run_fastemb, "gensim": run_gensim, "word2vec.c": run_word2vec_c, "fasttext": run_fasttext,
           "numpy-ppmi": run_numpy_ppmi, "glove": run_glove_c}


def main():
    case = json.loads(sys.argv[1])
    result = RUNNERS[case["tool"]](case)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
