"""Embeddings queries, evaluation, interchange formats, alignment and plots."""
import json
import os

import numpy as np
import pytest

import fastemb
from fastemb import align as A
from fastemb.embeddings import Embeddings
from fastemb.errors import FastembError
from fastemb.eval import analogy as eval_analogy
from fastemb.eval import similarity as eval_similarity
from fastemb.formats import read_vectors, write_vectors
from conftest import SAMPLE, assert_one_line_error, run_cli


def random_emb(n=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return Embeddings([f"w{i}" for i in range(n)], rng.standard_normal((n, d)).astype(np.float32),
                      np.arange(n, 0, -1))


def unit(M):
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def test_neighbours_match_brute_force_and_batches():
    emb = random_emb()
    U = unit(emb.vectors.astype(np.float64))
    for w in ("w0", "w17", "w199"):
        i = emb.index[w]
        sims = U @ U[i]
        sims[i] = -np.inf
        expected = [emb.words[j] for j in np.argsort(-sims)[:7]]
        assert [x for x, _ in emb.most_similar(w, topn=7)] == expected
    batch = emb.most_similar_batch(["w0", "w17"], topn=5)
    for got, w in zip(batch, ["w0", "w17"]):
        single = emb.most_similar(w, topn=5)
        assert [x for x, _ in got] == [x for x, _ in single]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in single], rtol=1e-5)
    v = emb["w3"] * 2
    assert emb.most_similar(v, topn=1)[0][0] == "w3"
    assert all(emb.index[x] < 50 for x, _ in emb.most_similar("w0", topn=10, restrict_vocab=50))


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_matches_brute_force(method):
    emb = random_emb()
    U = unit(emb.vectors.astype(np.float64))
    a, b, c = (emb.index[w] for w in ("w1", "w2", "w3"))
    if method == "3cosadd":
        scores = U @ (U[b] - U[a] + U[c])
    else:  # Levy & Goldberg 2014: cos(d,b)·cos(d,c) / (cos(d,a) + ε), cosines shifted to [0, 1]
        cos = lambda i: (U @ U[i] + 1) / 2  # noqa: E731
        scores = cos(b) * cos(c) / (cos(a) + 1e-3)
    scores[[a, b, c]] = -np.inf
    expected = [emb.words[j] for j in np.argsort(-scores)[:3]]
    assert [x for x, _ in emb.analogy("w1", "w2", "w3", topn=3, method=method)] == expected


def test_unknown_word_message():
    with pytest.raises(FastembError, match="not in vocabulary"):
        random_emb().most_similar("nope")


@pytest.fixture(scope="module")
def kjv_vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "kjv.h5"
    fastemb.train(SAMPLE, "sgns", dim=50, epochs=3, threads=2).save(path)
    return str(path)


@pytest.mark.slow
def test_evaluation_agrees_with_gensim(kjv_vectors, tmp_path):
    pytest.importorskip("gensim")
    from gensim.models import KeyedVectors
    emb = fastemb.load(kjv_vectors)
    w2v = tmp_path / "v.txt"
    write_vectors(w2v, emb.words, emb.vectors, "word2vec")
    kv = KeyedVectors.load_word2vec_format(str(w2v))
    ws = fastemb.eval.dataset("wordsim353")
    pearson, spearman, oov = kv.evaluate_word_pairs(ws)
    ours = eval_similarity(emb, ws)
    assert ours["spearman"] == pytest.approx(spearman.statistic if hasattr(spearman, "statistic") else spearman[0],
                                             abs=1e-6)
    qa = fastemb.eval.dataset("questions-words")
    score, _ = kv.evaluate_word_analogies(qa, restrict_vocab=30000, case_insensitive=True)
    assert eval_analogy(emb, qa, methods=("3cosadd",))["3cosadd"] == pytest.approx(score, abs=1e-9)


@pytest.mark.slow
def test_export_is_gensim_compatible(kjv_vectors, tmp_path):
    pytest.importorskip("gensim")
    from gensim.models import KeyedVectors
    emb = fastemb.load(kjv_vectors)
    for fmt, binary in (("word2vec", False), ("word2vec-binary", True)):
        out = tmp_path / f"v.{fmt}"
        rc, _, err = run_cli("export", kjv_vectors, "--format", fmt, "-o", out)
        assert rc == 0, err
        kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert list(kv.index_to_key) == emb.words
        assert [w for w, _ in kv.most_similar("moses", topn=10)] == [w for w, _ in emb.most_similar("moses", topn=10)]
        # and gensim's own writer produces the very same bytes
        kv.save_word2vec_format(str(out) + ".gensim", binary=binary)
        assert (tmp_path / f"v.{fmt}.gensim").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "glove"])
def test_import_export_round_trip_byte_identical(tmp_path, fmt):
    emb = random_emb(50, 8)
    first = tmp_path / "a"
    write_vectors(first, emb.words, emb.vectors, fmt)
    rc, _, err = run_cli("import", first, "-o", tmp_path / "b.h5", "--format", fmt)
    assert rc == 0, err
    rc, _, err = run_cli("export", tmp_path / "b.h5", "--format", fmt, "-o", tmp_path / "c")
    assert rc == 0, err
    assert (tmp_path / "c").read_bytes() == first.read_bytes()
    words, vectors = read_vectors(first)  # format guessed from the content
    assert words == emb.words and np.array_equal(vectors, emb.vectors)


def test_word2vec_c_binary_with_newlines_is_read(tmp_path):
    emb = random_emb(5, 4)
    p = tmp_path / "c.bin"
    with open(p, "wb") as f:  # word2vec.c ends every vector with a newline
        f.write(b"5 4\n")
        for w, v in zip(emb.words, emb.vectors):
            f.write(w.encode() + b" " + v.tobytes() + b"\n")
    words, vectors = read_vectors(p)
    assert words == emb.words and np.array_equal(vectors, emb.vectors)


# ------------------------------------------------------------------------------------------ alignment
def rotated_pair(n=400, d=20, noise=0.01, seed=0, d_tgt=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    Y = X @ Q + noise * rng.standard_normal((n, d))
    src = Embeddings([f"s{i}" for i in range(n)], X.astype(np.float32))
    tgt = Embeddings([f"t{i}" for i in range(n)], Y.astype(np.float32))
    return src, tgt, Q, [(f"s{i}", f"t{i}") for i in range(n)]


def test_procrustes_recovers_rotation():
    src, tgt, Q, pairs = rotated_pair()
    train_pairs, test_pairs = A.split_lexicon(pairs, 0.25, seed=1)
    a = A.fit(src, tgt, train_pairs, "procrustes")
    np.testing.assert_allclose(a.R, Q, atol=0.01)
    res = A.evaluate(a, src, tgt, test_pairs)
    assert res["nn_p@1"] > 0.99 and res["csls_p@1"] > 0.99
    assert {s for s, _ in train_pairs}.isdisjoint({s for s, _ in test_pairs})


def test_gd_converges_to_lstsq_and_logs_loss():
    src, tgt, _, pairs = rotated_pair(n=200, d=10, noise=0.3)
    exact = A.fit(src, tgt, pairs, "lstsq")
    gd = A.fit(src, tgt, pairs, "gd", steps=2000, log_every=100)
    np.testing.assert_allclose(gd.R, exact.R, atol=1e-3)
    losses = [loss for _, loss in gd.loss]
    assert losses[0] > losses[-1] and all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    X, Y, _ = A.lexicon_matrices(src, tgt, pairs)
    assert losses[-1] == pytest.approx(np.sum((X @ exact.R - Y) ** 2) / len(X), rel=1e-4)


def test_dimension_mismatch_lstsq_gd_cca():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 12))
    M = rng.standard_normal((12, 7))
    src = Embeddings([f"s{i}" for i in range(300)], X.astype(np.float32))
    tgt = Embeddings([f"t{i}" for i in range(300)], (X @ M).astype(np.float32))
    pairs = [(f"s{i}", f"t{i}") for i in range(300)]
    for method in ("lstsq", "gd", "cca"):
        a = A.fit(src, tgt, pairs[:240], method, steps=3000)
        assert a.R.shape[0] == 12
        assert A.evaluate(a, src, tgt, pairs[240:])["nn_p@1"] > 0.9, method
    assert A.fit(src, tgt, pairs, "lstsq").R.shape == (12, 7)
    with pytest.raises(FastembError, match="equal dimensions"):
        A.fit(src, tgt, pairs, "procrustes")


def test_csls_reduces_hubness():
    """A target vector near the centre of the mapped sources is everybody's nearest neighbour; CSLS
    penalises it by its mean similarity to the sources."""
    rng = np.random.default_rng(5)
    d, n = 30, 300
    T = unit(rng.standard_normal((n, d)))
    common = unit(rng.standard_normal((1, d)))
    # mapped sources: their translation plus noise plus a direction they all share, which one target has
    S = unit(T + unit(rng.standard_normal((n, d))) + 1.2 * common)
    T = np.vstack([T, common])
    nn = A.retrieve(S, T, 1, "nn")[:, 0]
    csls = A.retrieve(S, T, 1, "csls")[:, 0]
    assert np.sum(nn == n) > 3 * max(np.sum(csls == n), 1)
    assert np.mean(csls == np.arange(n)) > np.mean(nn == np.arange(n))


def test_alignment_save_load_reapply(tmp_path):
    src, tgt, _, pairs = rotated_pair()
    a = A.fit(src, tgt, pairs, "procrustes", normalize=True, center=True)
    a.save(tmp_path / "r.h5")
    b = A.Alignment.load(tmp_path / "r.h5")
    np.testing.assert_array_equal(a.R, b.R)
    np.testing.assert_allclose(a.map_source(src.vectors[:5]), b.map_source(src.vectors[:5]), atol=1e-6)
    assert b.normalize and b.center


@pytest.mark.slow
def test_align_cli_and_bad_inputs(tmp_path):
    src, tgt, _, pairs = rotated_pair(n=300)
    src.save(tmp_path / "s.h5")
    tgt.save(tmp_path / "t.h5")
    lex = tmp_path / "lex.tsv"
    lex.write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    rc, out, err = run_cli("align", tmp_path / "s.h5", tmp_path / "t.h5", "--lexicon", lex, "--method", "gd",
                           "--json", "--quiet", "-o", tmp_path / "r.h5")
    assert rc == 0, err
    res = json.loads(out)
    assert res["nn_p@1"] > 0.95 and res["test_words"] == 60 and os.path.exists(tmp_path / "r.h5")
    bad = tmp_path / "bad.tsv"
    bad.write_text("nothing\there\n")
    rc, _, err = run_cli("align", tmp_path / "s.h5", tmp_path / "t.h5", "--lexicon", bad)
    assert_one_line_error(rc, err, contains="none of its 1 pairs")
    foreign = tmp_path / "foreign.h5"
    import h5py
    with h5py.File(foreign, "w") as f:
        f["x"] = [1]
    rc, _, err = run_cli("align", foreign, tmp_path / "t.h5", "--lexicon", lex)
    assert_one_line_error(rc, err, contains="not a fastemb file")
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes((tmp_path / "s.h5").read_bytes()[:3000])
    rc, _, err = run_cli("neighbors", trunc, "s1")
    assert_one_line_error(rc, err)


@pytest.mark.slow
def test_cli_queries_and_eval(kjv_vectors):
    rc, out, err = run_cli("neighbors", kjv_vectors, "moses", "-k", "3", "--json")
    assert rc == 0, err
    assert len(json.loads(out)["moses"]) == 3
    rc, _, err = run_cli("neighbors", kjv_vectors, "notaword")
    assert_one_line_error(rc, err, contains="not in vocabulary")
    rc, out, err = run_cli("analogy", kjv_vectors, "man", "king", "woman", "--json")
    assert rc == 0, err
    rc, out, err = run_cli("eval", kjv_vectors, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["similarity"][0]["covered"] > 0 and "3cosmul" in res["analogy"][0]


@pytest.mark.slow
def test_plot_pca_and_tsne(kjv_vectors, tmp_path):
    pytest.importorskip("matplotlib")
    for method in ("pca", "tsne"):
        out = tmp_path / f"{method}.png"
        rc, _, err = run_cli("plot", kjv_vectors, "--top", "60", "--method", method, "--iterations", "300",
                             "-o", out, "--quiet")
        assert rc == 0, err
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tsne_separates_clusters():
    from fastemb.plot import tsne_2d
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 20)) * 10
    X = np.vstack([c + rng.standard_normal((30, 20)) for c in centres])
    Y, kl = tsne_2d(X, perplexity=10, iterations=500)
    labels = np.repeat(np.arange(3), 30)
    D = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    assert np.mean(labels[D.argmin(1)] == labels) > 0.95 and np.isfinite(kl)
