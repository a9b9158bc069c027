"""The NPLM's full softmax on BLAS minibatches (fastemb.models.nplm.dense_gradients): gradients with direct
connections, dropout and weight decay against finite differences, the held-out split with early stopping
(the best epoch kept), and saved direct connections."""
import math

import numpy as np
import pytest

from conftest import central_differences

import fastemb
from fastemb.errors import OptionError
from fastemb.kernels import nplm as K
from fastemb.models import nplm


def _params(direct, V=9, dim=3, n=2, hidden=4, seed=0, hidden2=0):
    rng = np.random.default_rng(seed)
    p = {"emb": rng.normal(0, 0.5, (V + 1, dim)), "W": rng.normal(0, 0.5, (hidden, n * dim)),
         "b": rng.normal(0, 0.1, hidden), "out": rng.normal(0, 0.5, (V, hidden2 or hidden)),
         "out_b": rng.normal(0, 0.1, V)}
    if hidden2:
        p.update(W2=rng.normal(0, 0.5, (hidden2, hidden)), b2=rng.normal(0, 0.1, hidden2))
    if direct:
        p["direct"] = rng.normal(0, 0.5, (V, n * dim))
    ctx = rng.integers(0, V + 1, (6, n))
    tgt = rng.integers(0, V, 6)
    return p, ctx, tgt


def _gradients(p, ctx, tgt, *args, **kw):
    """dense_gradients with the word vectors' gradient (rows of the distinct context words) made dense."""
    loss, g = nplm.dense_gradients(p, ctx, tgt, *args, **kw)
    rows = g.pop("emb_rows")
    assert len(set(rows)) == len(rows) and set(rows) == set(np.ravel(ctx))
    full = np.zeros_like(p["emb"])
    full[rows] = g["emb"]
    g["emb"] = full
    return loss, g


def _mean_loss(p, ctx, tgt, activation, keep):
    """The minibatch's mean −log P, written with plain numpy, independently of dense_gradients."""
    total = 0.0
    for e in range(len(tgt)):
        x = np.concatenate([p["emb"][i] for i in ctx[e]])
        a = p["W"] @ x + p["b"]
        h = np.tanh(a) if activation == "tanh" else 1 / (1 + np.exp(-a))
        if "W2" in p:
            a = p["W2"] @ h + p["b2"]
            h = np.tanh(a) if activation == "tanh" else 1 / (1 + np.exp(-a))
        if keep is not None:
            h = h * keep[e]
        z = p["out"] @ h + p["out_b"]
        if "direct" in p:
            z = z + p["direct"] @ x
        total += -(z[tgt[e]] - z.max() - math.log(np.exp(z - z.max()).sum()))
    return total / len(tgt)


@pytest.mark.parametrize("direct,activation,dropout,hidden2", [
    (False, "tanh", False, 0), (True, "tanh", False, 0), (True, "logistic", False, 0), (True, "tanh", True, 0),
    (False, "tanh", False, 3), (True, "logistic", True, 5)])
def test_dense_gradients_match_finite_differences(direct, activation, dropout, hidden2):
    p, ctx, tgt = _params(direct, hidden2=hidden2)
    keep = None
    if dropout:  # a fixed mask: dropout's gradient flows through the kept units only, scaled by 1/(1-rate)
        keep = (np.random.default_rng(4).random((len(tgt), p["out"].shape[1])) >= 0.5) * 2.0
    loss, g = _gradients({k: v.copy() for k, v in p.items()}, ctx, tgt, activation, keep)
    assert loss / len(tgt) == pytest.approx(_mean_loss(p, ctx, tgt, activation, keep), rel=1e-12)
    assert set(g) == set(p)
    for name in p:
        numeric = central_differences(lambda: _mean_loss(p, ctx, tgt, activation, keep), p[name])
        for i, num in enumerate(numeric):
            assert g[name].reshape(-1)[i] == pytest.approx(num, abs=1e-8), (name, i)


def test_dropout_off_is_the_plain_model():
    p, ctx, tgt = _params(True)
    loss0, g0 = _gradients(p, ctx, tgt)
    loss1, g1 = _gradients(p, ctx, tgt, keep=np.ones((len(tgt), p["W"].shape[0])))
    assert loss0 == pytest.approx(loss1, rel=1e-14)
    for name in p:
        np.testing.assert_allclose(g0[name], g1[name], rtol=1e-13, atol=1e-15)


def test_weight_decay_step_is_the_gradient_of_the_l2_penalty():
    """momentum_step with decay λ steps along ∇(loss + λ/2·|p|²): checked against finite differences of
    the penalised loss, with momentum carrying the previous velocity."""
    p, ctx, tgt = _params(True)
    lam, lr, mu = 0.03, 0.2, 0.9
    _, g = _gradients(p, ctx, tgt)
    rng = np.random.default_rng(7)
    for name in ("W", "out", "direct", "emb"):
        w = p[name].copy().reshape(-1)
        v = rng.normal(0, 0.1, w.size)
        v0 = v.copy()
        K.momentum_step(w, v, g[name].reshape(-1).copy(), lr, mu, lam)

        def penalised(flat_i, value, name=name):
            q = {k: a.copy() for k, a in p.items()}
            q[name].reshape(-1)[flat_i] = value
            return _mean_loss(q, ctx, tgt, "tanh", None) + lam / 2 * (q[name] ** 2).sum()
        for i in rng.choice(w.size, 5, replace=False):
            x = p[name].reshape(-1)[i]
            fd = (penalised(i, x + 1e-6) - penalised(i, x - 1e-6)) / 2e-6
            assert v[i] == pytest.approx(mu * v0[i] + fd, abs=1e-7)
            assert w[i] == pytest.approx(x - lr * v[i], rel=1e-12)


def _softmax_by_kernels(Z, tgt, scale, fast):
    """The loss and gradient of one slice (the whole vocabulary) from the two kernels, as dense_gradients does."""
    bias = np.linspace(-1, 1, Z.shape[1]).astype(Z.dtype)   # given apart, added by softmax_exp
    G = Z - bias
    stats = np.empty((3, len(Z)))
    K.softmax_exp(G, bias, tgt, 0, fast, stats[0], stats[1], stats[2])
    col_sum = np.empty(Z.shape[1], Z.dtype)
    K.softmax_gradient(G, tgt, 0, (scale / stats[1]).astype(Z.dtype), Z.dtype.type(scale), col_sum)
    np.testing.assert_allclose(col_sum, G.sum(axis=0), rtol=1e-5, atol=1e-6)
    return np.log(stats[1]) + stats[0] - stats[2], G


def test_softmax_kernels_agree_with_numpy():
    rng = np.random.default_rng(3)
    Z = rng.normal(0, 3, (5, 40)).astype(np.float64)
    tgt = rng.integers(0, 40, 5)
    ref = Z - Z.max(1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(1, keepdims=True))
    np.testing.assert_allclose(K.log_softmax_at(Z, tgt), ref[np.arange(5), tgt], rtol=1e-12)
    loss, G = _softmax_by_kernels(Z, tgt, 0.5, False)
    np.testing.assert_allclose(loss, -ref[np.arange(5), tgt], rtol=1e-12)
    want = np.exp(ref) * 0.5
    want[np.arange(5), tgt] -= 0.5
    np.testing.assert_allclose(G, want, rtol=1e-12, atol=1e-15)


def test_fast_float32_softmax_is_accurate_to_float32():
    """The vectorised exp of training (float32) against float64 numpy, over logits spread far enough that some
    words' probabilities underflow (the clamp at e^-87) and rows whose target is the least likely word."""
    rng = np.random.default_rng(5)
    Z = np.concatenate([rng.normal(0, 4, (6, 997)), rng.uniform(-200, 30, (3, 997))]).astype(np.float32)
    tgt = rng.integers(0, 997, 9)
    tgt[-1] = int(np.argmin(Z[-1]))
    ref = Z.astype(np.float64) - Z.max(1, keepdims=True)
    ref -= np.log(np.exp(ref).sum(1, keepdims=True))
    loss, G = _softmax_by_kernels(Z, tgt, 0.25, True)
    np.testing.assert_allclose(loss, -ref[np.arange(9), tgt], rtol=1e-6)
    want = np.exp(ref) * 0.25
    want[np.arange(9), tgt] -= 0.25
    np.testing.assert_allclose(G, want, rtol=2e-6, atol=1e-9)
    assert (G >= -0.25).all() and np.isfinite(G).all()


def test_held_out_split_early_stopping_keeps_the_best_epoch(kjv_small, tmp_path):
    path = tmp_path / "lm.h5"
    emb = fastemb.train(kjv_small, "nplm", softmax="full", max_vocab=200, dim=16, hidden=32, context=2, epochs=8,
                        valid=0.1, patience=1, plateau=0.05, alpha=0.3, optimizer="momentum", threads=1, seed=2,
                        output=str(path))
    ppl = emb.attrs["valid_perplexity"]
    assert 1 <= len(ppl) == emb.attrs["epochs_trained"] <= 8
    assert emb.attrs["best_epoch"] == int(np.argmin(ppl)) + 1
    # the kept model is the best epoch's: its perplexity on the held-out pieces is the logged minimum
    from fastemb.corpus import CorpusOptions
    from fastemb.vocab import build_vocab
    with build_vocab([kjv_small], CorpusOptions(max_vocab=200), encode=True) as enc:
        opts = nplm.NPLMOptions(softmax="full", dim=16, hidden=32, context=2, epochs=8, valid=0.1)
        tr = nplm.NPLMTrainer(opts, enc, seed=2, threads=1, state=None)
        ids, ends = tr._gather(tr.valid_pieces)
        n_tokens = enc.n_tokens
    lm = fastemb.LanguageModel.load(path)
    lp = lm.sequence_log_probs(ids, ends)
    assert math.exp(-lp.mean()) == pytest.approx(min(ppl), rel=1e-4)
    assert tr.valid_tokens == emb.attrs["valid_tokens"] and tr.train_tokens + tr.valid_tokens == n_tokens


def test_direct_connections_round_trip(kjv_small, tmp_path):
    path = tmp_path / "direct.h5"
    emb = fastemb.train(kjv_small, "nplm", softmax="full", direct=True, dropout=0.2, max_vocab=150, dim=8, hidden=16,
                        context=2, epochs=1, threads=1, seed=1, output=str(path))
    assert emb.model["direct_weight"].shape == (150, 16) and np.abs(emb.model["direct_weight"]).max() > 0
    lm = fastemb.LanguageModel.load(path)
    lp = lm.log_probs("and the")
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-6)
    ids = np.array([lm.emb.index[w] for w in "and the lord said".split()])
    seq = lm.sequence_log_probs(ids, np.array([4]))
    assert seq[2] == pytest.approx(lp[ids[2]], abs=1e-5)


def test_second_hidden_layer_round_trip_and_crafted_files(kjv_small, tmp_path):
    import h5py
    path = tmp_path / "two.h5"
    emb = fastemb.train(kjv_small, "nplm", hidden2=6, optimizer="adam", adam_alpha=0.01, dropout=0.1, max_vocab=150,
                        dim=8, hidden=20, context=2, epochs=2, threads=2, seed=1, output=str(path))
    assert emb.model["hidden2_weight"].shape == (6, 20) and emb.model["output_weight"].shape == (150, 6)
    lm = fastemb.LanguageModel.load(path)
    lp = lm.log_probs("and the")
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-6)
    ids = np.array([lm.emb.index[w] for w in "and the lord said".split()])
    assert lm.sequence_log_probs(ids, np.array([4]))[2] == pytest.approx(lp[ids[2]], abs=1e-5)
    assert lm.perplexity(kjv_small) < 0.6 * math.exp(nplm.unigram_entropy(emb.counts))
    for name, value, message in (("hidden2_weight", np.zeros((6, 19), np.float32), "hidden2_weight is 6×19"),
                                 ("hidden2_bias", np.zeros(5, np.float32), "hidden2_bias is 5"),
                                 ("output_weight", np.zeros((150, 20), np.float32), "output_weight is 150×20")):
        bad = tmp_path / f"bad-{name}.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "a") as f:
            del f["model"][name]
            f["model"][name] = value
        with pytest.raises(fastemb.FileError, match=message):
            fastemb.LanguageModel.load(bad)


def test_new_options_are_checked():
    with pytest.raises(OptionError, match="direct"):
        fastemb.NPLMOptions(softmax="hs", direct=True)
    with pytest.raises(OptionError, match="dropout"):
        fastemb.NPLMOptions(softmax="sampled", dropout=0.5)
    with pytest.raises(OptionError, match="valid must be between"):
        fastemb.NPLMOptions(valid=0.9)


@pytest.mark.slow
def test_resume_with_a_held_out_split_gives_the_uninterrupted_model(kjv_small, tmp_path, monkeypatch):
    """The schedule (learning rate, best perplexity, epochs without gain) and the best epoch's arrays travel in
    the checkpoint: a run stopped mid-epoch and resumed ends with the uninterrupted run's model."""
    monkeypatch.setattr(nplm, "BLOCK_TOKENS", 4096)
    common = {"softmax": "full", "max_vocab": 150, "dim": 8, "hidden": 16, "context": 2, "epochs": 3, "valid": 0.1,
              "plateau": 0.2, "threads": 1, "seed": 4}
    straight = fastemb.train(kjv_small, "nplm", **common)
    ck = tmp_path / "run.ckpt"

    class Stop(fastemb.Callback):
        def on_step(self, run):
            if run.epoch == 1 and run.state.block == 3:
                raise fastemb.StopTraining()
    stopped = fastemb.train(kjv_small, "nplm", checkpoint=str(ck), checkpoint_every="0.001s", callbacks=[Stop()],
                            **common)
    assert not stopped.attrs["completed"]
    resumed = fastemb.train(resume=str(ck))
    assert resumed.attrs["valid_perplexity"] == pytest.approx(straight.attrs["valid_perplexity"], rel=1e-5)
    assert resumed.attrs["best_epoch"] == straight.attrs["best_epoch"]
    np.testing.assert_allclose(resumed.vectors, straight.vectors, rtol=1e-5, atol=1e-6)


def test_adam_step_matches_the_paper():
    """adam_step (float32, its 1/√v by bits and Newton steps) against Adam written in float64 numpy from the same
    state (its denominator √(v̂ + eps²)), with the bias corrections folded into lr and eps as the trainer does,
    at steps 1, 2, 3 with an L2 penalty; gradients spread over eight orders of magnitude; parameters whose gradient is 0 from the start stay
    put (their step is 0/√(0 + eps²))."""
    rng = np.random.default_rng(11)
    n = 3000   # several of the kernel's slices and a partial one
    p = rng.normal(0, 1, n).astype(np.float32)
    p[:7] = 0
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    lr, (b1, b2), eps, lam = 0.01, nplm.ADAM_BETAS, nplm.ADAM_EPS, 0.02
    for t in (1, 2, 3):
        g = rng.normal(0, 10.0 ** rng.integers(-6, 2, n)).astype(np.float32)
        g[:7] = 0
        x = g + lam * p.astype(np.float64)
        want_m = b1 * m + (1 - b1) * x
        size = np.abs(g) + np.abs(lam * p)      # g + λ·p may cancel: errors relative to the terms' size
        m_size, v_size = np.abs(b1 * m) + (1 - b1) * size, b2 * v + (1 - b2) * size ** 2
        want_v = b2 * v + (1 - b2) * x * x
        want_p = p - lr * (want_m / (1 - b1 ** t)) / np.sqrt(want_v / (1 - b2 ** t) + eps ** 2)
        c2 = math.sqrt(1 - b2 ** t)
        K.adam_step(p, m, v, g, np.float32(lr * c2 / (1 - b1 ** t)), np.float32(b1), np.float32(b2),
                    np.float32((eps * c2) ** 2), np.float32(lam))
        np.testing.assert_allclose(p, want_p, rtol=0, atol=lr * 1e-4)
        assert (np.abs(m - want_m) <= 1e-6 * m_size).all()
        assert (np.abs(v - want_v) <= 1e-4 * v_size).all()   # float32 (1 − β2 in float32 is 1.3e-5 off)
    assert (p[:7] == 0).all()


@pytest.mark.parametrize("direct,dropout,hidden2", [(False, False, 0), (True, True, 0), (True, False, 4)])
def test_output_layer_in_slices_over_threads_is_the_whole_layer(direct, dropout, hidden2):
    """The output layer in slices of the vocabulary computed on several threads (the softmax normalised across
    them) gives the one-slice loss and gradients (float64: the same up to the order of the sums), and each
    slice's gradients reach on_slice exactly once, rows partitioned."""
    from concurrent.futures import ThreadPoolExecutor
    p, _, _ = _params(direct, V=61, dim=4, n=2, hidden=5, seed=2, hidden2=hidden2)
    rng = np.random.default_rng(9)
    ctx, tgt = rng.integers(0, 62, (50, 2)), rng.integers(0, 61, 50)
    keep = (rng.random((50, hidden2 or 5)) >= 0.3) / 0.7 if dropout else None
    whole_loss, whole = _gradients(p, ctx, tgt, "tanh", keep)
    seen = []
    with ThreadPoolExecutor(2) as pool:
        loss, sliced = _gradients(p, ctx, tgt, "tanh", keep, slices=3, pool=pool)
        _, rest = _gradients(p, ctx, tgt, "tanh", keep, slices=3, pool=pool,
                                       on_slice=lambda lo, hi, g: seen.append((lo, hi, g)))
    assert loss == pytest.approx(whole_loss, rel=1e-13)
    for name in p:
        np.testing.assert_allclose(sliced[name], whole[name], rtol=1e-11, atol=1e-15)
    assert sorted((lo, hi) for lo, hi, _ in seen) == [(0, 20), (20, 40), (40, 61)]
    for lo, hi, g in seen:
        assert set(g) == {"out", "out_b"} | ({"direct"} if direct else set())
        for name, x in g.items():
            np.testing.assert_allclose(x, whole[name][lo:hi], rtol=1e-11, atol=1e-15)
    assert set(rest) == set(p) - {"out", "out_b", "direct"}
    np.testing.assert_allclose(rest["emb"], whole["emb"], rtol=1e-11, atol=1e-15)


def test_lazy_row_steps_move_the_given_rows_only():
    """The word vectors step lazily: adam_rows / momentum_rows are adam_step / momentum_step on the given rows
    (each with its own gradient row), and the other rows, their moments and velocities stay as they were."""
    rng = np.random.default_rng(2)
    p, m, v = (rng.random((7, 3), dtype=np.float32) for _ in range(3))
    g = rng.normal(0, 1, (2, 3)).astype(np.float32)
    rows = np.array([5, 1])
    args = (np.float32(0.01), np.float32(0.9), np.float32(0.999), np.float32(1e-16), np.float32(0.1))
    want = [a.copy() for a in (p, m, v)]
    for i, r in enumerate(rows):
        K.adam_step(want[0][r], want[1][r], want[2][r], g[i], *args)
    K.adam_rows(p, m, v, rows, g, *args)
    for got, ref in zip((p, m, v), want):
        np.testing.assert_array_equal(got, ref)
    before = p.copy()
    K.momentum_rows(p, v, rows, g, np.float32(0.1), np.float32(0.9), np.float32(0.0))
    np.testing.assert_array_equal(np.delete(p, rows, axis=0), np.delete(before, rows, axis=0))
    assert (p[rows] != before[rows]).all()
