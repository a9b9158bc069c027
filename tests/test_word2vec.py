import numpy as np
import pytest

import fastemb
from fastemb.kernels import w2v as K
from fastemb import train
from conftest import SAMPLE, assert_one_line_error, category_purity, planted_corpus, run_cli

SIG, NLS = K.sigmoid_tables()


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def negatives_reference(h, syn1, out, alpha):
    """word2vec.c's negative-sampling step of a hidden vector h against out (the target, then the negatives):
    syn1's rows updated in place; returns the error to add to the input rows."""
    e = np.zeros(h.shape[0])
    for target, label in zip(out, [1] + [0] * (len(out) - 1)):
        g = (label - table_sigmoid(float(h @ syn1[target]))) * alpha
        e += g * syn1[target]
        syn1[target] += g * h
    return e


def table_sigmoid(f):
    """The kernels' sigmoid: word2vec.c's table, saturated outside [-6, 6]."""
    if f > K.MAX_EXP:
        return 1.0
    if f < -K.MAX_EXP:
        return 0.0
    return SIG[min(int((f + K.MAX_EXP) * (K.TABLE_SIZE / (2 * K.MAX_EXP))), K.TABLE_SIZE - 1)]


def rand_params(n=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)).astype(np.float32) * 0.5,
            rng.standard_normal((n, dim)).astype(np.float32) * 0.5)


from fastemb.models.w2v_dims import kernels  # noqa: E402

DIMS = [8, 50]  # 8: the generic kernels (length read from the arrays); 50: compiled for a constant length


@pytest.mark.parametrize("dim", DIMS)
def test_sg_pair_matches_numpy_gradient_step(dim):
    syn0, syn1 = rand_params(dim=dim)
    s0, s1 = syn0.copy(), syn1.copy()
    word, context, alpha = 2, 4, np.float32(0.1)
    out = np.array([word, 0, 5])  # the centre word, then the negatives
    loss = kernels(dim).sg_pair(syn0, syn1, context, out, 3, alpha, SIG, NLS, np.zeros(dim, np.float32))
    # reference: gradient ascent on log σ(v_c·u_w) + Σ log σ(-v_c·u_n), output rows updated in turn
    v = s0[context].copy()
    grad_v = np.zeros(dim)
    ref_loss = 0.0
    for target, label in ((word, 1), (0, 0), (5, 0)):
        f = float(v @ s1[target])
        g = (label - table_sigmoid(f)) * alpha
        ref_loss += -np.log(sigmoid(f)) if label else -np.log(1 - sigmoid(f))
        grad_v += g * s1[target]
        s1[target] += g * v
    s0[context] += grad_v
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, s1, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(ref_loss, rel=2e-2)  # table lookup of log σ


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n_out,six,nc", [(3, False, 4), (6, False, 4), (6, True, 4), (5, True, 4), (3, True, 4),
                                          (6, True, 3), (4, True, 5), (6, True, 1)])
def test_shared_negative_window_matches_numpy_matrix_step(dim, n_out, six, nc):
    """The general window kernel (every gradient from the values read before the window), and the fused one
    for negative 5 (six output slots, fewer when negatives that drew the centre word were dropped; context
    rows updated in place in turn, so the repeated context word reads its own first update)."""
    syn0, syn1 = rand_params(n=9, dim=dim)
    s0, s1 = syn0.copy(), syn1.copy()
    ctx = np.array([1, 3, 4, 1, 6])[:nc]  # a repeated context word gets both updates
    out = np.array([2, 0, 5, 7, 8, 6])[:n_out]
    alpha = np.float32(0.05)
    d_ctx, d_out = np.full((nc, dim), np.nan, np.float32), np.full((6, dim), np.nan, np.float32)  # scratch
    if six:
        padded = np.concatenate([out, np.full(6 - n_out, -1)])  # slots past n_out are never read as rows
        loss = kernels(dim).sg_window_shared6(syn0, syn1, ctx, nc, padded, n_out, alpha, SIG, NLS, d_out)
    else:
        codes = np.array([0] + [1] * (n_out - 1), np.uint8)  # the centre word, then the negatives
        loss = kernels(dim).sg_window_shared(syn0, syn1, ctx, nc, out, n_out, codes, alpha, SIG, NLS,
                                             np.zeros((nc, n_out), np.float32), d_ctx, d_out)
    labels = np.zeros(n_out)
    labels[0] = 1
    sig = np.vectorize(table_sigmoid)
    if six:  # context rows updated in place one after another, output rows after the window
        d1 = np.zeros((n_out, dim))
        ref_loss = 0.0
        for c in ctx:
            x = s0[c].copy()
            S = s1[out] @ x
            ref_loss -= np.log(sigmoid(S[0])) + np.log(1 - sigmoid(S[1:])).sum()
            g = (labels - sig(S)) * alpha
            s0[c] += g @ s1[out]
            d1 += np.outer(g, x)
    else:  # every gradient from the values read before the window
        S = s0[ctx] @ s1[out].T
        ref_loss = -(np.log(sigmoid(S[:, 0])).sum() + np.log(1 - sigmoid(S[:, 1:])).sum())
        Gr = (labels - sig(S)) * alpha
        d1 = Gr.T @ s0[ctx]
        np.add.at(s0, ctx, Gr @ s1[out])
    np.add.at(s1, out, d1)
    assert loss == pytest.approx(ref_loss, rel=2e-2)
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, s1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n_out", [6, 5, 2])
def test_fused_cbow_window_matches_numpy(n_out, dim):
    """The fused kernel for negative 5 (six output slots, fewer when negatives that drew the centre word were
    dropped): word2vec.c's CBOW step, the mean of the contexts predicting the word against its negatives."""
    syn0, syn1 = rand_params(n=9, dim=dim)
    s0, s1 = syn0.copy(), syn1.copy()
    ctx = np.array([0, 1, 3, 1])  # a repeated context word gets the error twice
    out = np.array([2, 4, 5, 7, 8, 6])[:n_out]
    padded = np.concatenate([out, np.full(6 - n_out, -1)])  # slots past n_out are never read as rows
    alpha = np.float32(0.1)
    loss = kernels(dim).cbow_window6(syn0, syn1, ctx, 4, padded, n_out, alpha, True, SIG, NLS,
                                     np.zeros(dim, np.float32), np.zeros(dim, np.float32))
    h = s0[ctx].sum(0) / 4
    e = np.zeros(dim)
    ref_loss = 0.0
    for o, target in enumerate(out):
        label = 1.0 if o == 0 else 0.0
        f = float(h @ s1[target])
        g = (label - table_sigmoid(f)) * alpha
        ref_loss -= np.log(sigmoid(f)) if o == 0 else np.log(1 - sigmoid(f))
        e += g * s1[target]
        s1[target] += g * h
    np.add.at(s0, ctx, np.tile(e, (4, 1)))
    assert loss == pytest.approx(ref_loss, rel=2e-2)
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, s1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("mean", [True, False])
def test_cbow_window_matches_numpy(mean, dim):
    syn0, syn1 = rand_params(dim=dim)
    s0, s1 = syn0.copy(), syn1.copy()
    ctx = np.array([0, 1, 3])
    out = np.array([2, 4, 5])
    alpha = np.float32(0.1)
    no_tree = np.zeros((1, dim), np.float32), np.zeros(1, np.int32), np.zeros(1, np.uint8)
    kernels(dim).cbow_window(syn0, syn1, no_tree[0], ctx, 3, out, 3, no_tree[1], no_tree[2], 0, alpha, mean, SIG,
                             NLS, np.zeros(dim, np.float32), np.zeros(dim, np.float32))
    h = s0[ctx].sum(0) / (3 if mean else 1)
    s0[ctx] += negatives_reference(h, s1, out, alpha)
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, s1, rtol=1e-5, atol=1e-6)


def test_alias_table_draws_follow_weights():
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    prob, alias = K.alias_table(w)
    # exact probability mass of each outcome under the table
    mass = np.zeros(5)
    for i in range(5):
        mass[i] += prob[i] / 5
        mass[alias[i]] += (1 - prob[i]) / 5
    np.testing.assert_allclose(mass, w / w.sum(), atol=1e-6)


def assert_groups_recovered(emb, groups):
    """Every word's nearest neighbours are exactly its group mates."""
    for group in groups:
        for w in group:
            neighbours = {x for x, _ in emb.most_similar(w, topn=len(group) - 1)}
            assert neighbours == set(group) - {w}, (w, neighbours)


@pytest.mark.parametrize("algo,shared", [("sgns", True), ("sgns", False), ("cbow", True)])
def test_planted_groups_are_recovered(tmp_path, algo, shared):
    groups = planted_corpus(tmp_path / "p.txt")
    emb = train(str(tmp_path / "p.txt"), algo, dim=20, epochs=5, sample=0, threads=1,
                **({"shared_negatives": shared} if algo == "sgns" else {}))
    assert_groups_recovered(emb, groups)
    assert emb.attrs["loss"][-1] < emb.attrs["loss"][0]


def test_one_thread_runs_are_reproducible(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=500)
    a = train(str(tmp_path / "p.txt"), dim=16, epochs=2, threads=1, seed=3)
    b = train(str(tmp_path / "p.txt"), dim=16, epochs=2, threads=1, seed=3)
    c = train(str(tmp_path / "p.txt"), dim=16, epochs=2, threads=1, seed=4)
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.context_vectors, b.context_vectors)
    assert not np.array_equal(a.vectors, c.vectors)


@pytest.mark.parametrize("rows,dim,width", [(1, 3, 16), (7, 100, 112), (300, 50, 64), (5, 64, 64), (0, 8, 16)])
def test_row_matrix_alignment_and_in_place_unpadding(rows, dim, width):
    from fastemb.models.w2v_dims import row_matrix, unpadded
    data = np.random.default_rng(rows).random((rows, dim), dtype=np.float32)
    view, matrix = row_matrix(rows, dim, width, data)
    assert matrix.shape == (rows, width) and matrix.flags.c_contiguous and (matrix.ctypes.data % 64 == 0 or rows == 0)
    assert np.shares_memory(view, matrix) or rows == 0
    np.testing.assert_array_equal(view, data)
    assert not matrix[:, dim:].any()  # the padding is zero
    packed = unpadded(matrix, dim)
    assert packed.flags.c_contiguous and packed.shape == (rows, dim)
    assert np.shares_memory(packed, matrix) or rows == 0  # in place: no second copy of the model
    np.testing.assert_array_equal(packed, data)


@pytest.mark.parametrize("params", [dict(algo="sgns"), dict(algo="cbow"), dict(algo="sgns", maxn=4, buckets=3000)])
def test_rows_on_cache_lines_train_as_unpadded_rows(kjv_small, monkeypatch, params):
    """The kernels compiled for dim 100 take the model's rows padded to whole 64-byte lines (112 floats) and
    starting on one; a 1-thread run gives bit for bit the vectors of unpadded rows."""
    from fastemb.models import w2v_dims
    seen = []

    def layout(run):
        seen.append((run.trainer._syn0.shape[1], run.trainer._syn0.ctypes.data % 64, run.trainer._syn1.ctypes.data % 64,
                     run.trainer.syn0.shape[1], np.shares_memory(run.trainer.syn0, run.trainer._syn0)))
    opts = dict(params, epochs=1, threads=1, seed=3, sample=1e-3, min_count=3)
    padded = train(kjv_small, callbacks=[layout], **opts)
    assert seen == [(112, 0, 0, 100, True)]
    monkeypatch.setattr(w2v_dims, "row_width", lambda dim, module: dim)
    plain = train(kjv_small, callbacks=[layout], **opts)
    assert seen[1][0] == 100
    np.testing.assert_array_equal(padded.vectors, plain.vectors)
    np.testing.assert_array_equal(padded.context_vectors, plain.context_vectors)
    if "maxn" in params:
        np.testing.assert_array_equal(padded.subwords.ngram_vectors, plain.subwords.ngram_vectors)
        assert padded.subwords.ngram_vectors.flags.c_contiguous


@pytest.fixture(scope="module")
def kjv_sgns():
    return train(SAMPLE, "sgns", epochs=5, sample=1e-3, threads=2)


@pytest.mark.slow
def test_loss_falls_on_real_text(kjv_sgns):
    loss = kjv_sgns.attrs["loss"]
    assert loss[-1] < loss[0] * 0.95
    curve = kjv_sgns.attrs["loss_curve"]
    assert np.mean(curve[-3:]) < np.mean(curve[:3])


@pytest.mark.slow
def test_quality_floor_on_sample_corpus(kjv_sgns):
    """The category purity of conftest.CATEGORIES (defaults' floors for every algorithm: test_quality_floors).
    Measured on the shipped corpus: 0.96-1.00 (sgns and cbow, seeds 1-3); random vectors score 0.22."""
    assert category_purity(kjv_sgns) > 0.8
    assert "aaron" in [w for w, _ in kjv_sgns.most_similar("moses", topn=10)]


def test_saved_file_records_training(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=300)
    out = tmp_path / "v.h5"
    rc, _, err = run_cli("train", tmp_path / "p.txt", "-o", out, "--dim", "8", "--epochs", "2", "--quiet",
                         "--add-contexts")
    assert rc == 0, err
    emb = fastemb.load(out)
    assert emb.attrs["algo"] == "sgns" and len(emb.attrs["loss"]) == 2 and emb.attrs["train_seconds"] > 0
    assert emb.context_vectors.shape == emb.vectors.shape and emb.attrs["add_contexts"]


@pytest.mark.parametrize("args,contains", [
    (["--dim", "0"], "--dim"), (["--negative", "-1"], "--negative"), (["--window", "0"], "--window"),
    (["--threads", "0"], "--threads"), (["--alpha", "0"], "--alpha"), (["--alpha", "-0.1"], "--alpha"),
    (["--epochs", "0"], "--epochs"), (["--sample", "-1"], "--sample")])
def test_bad_training_options(tmp_path, kjv_small, args, contains):
    out = tmp_path / "v.h5"
    rc, _, err = run_cli("train", kjv_small, "-o", out, *args)
    assert_one_line_error(rc, err, contains=contains)
    assert not out.exists()


@pytest.mark.slow
def test_frozen_loss_falls_every_epoch_while_the_online_loss_may_rise():
    """The reported (online) skip-gram loss can rise in the last epoch on the KJV sample; the same model's loss
    on the corpus measured without training falls every epoch (README: Training loss)."""
    import fastemb
    frozen = fastemb.FrozenLoss(max_tokens=400_000)
    emb = train(SAMPLE, "sgns", epochs=5, threads=1, callbacks=[frozen])
    assert len(frozen.losses) == 5
    assert all(b < a for a, b in zip(frozen.losses, frozen.losses[1:])), frozen.losses
    assert emb.attrs["loss"][0] > emb.attrs["loss"][-1]
