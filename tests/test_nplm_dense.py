"""The NPLM's full softmax on BLAS minibatches (fastemb.models.nplm.dense_gradients): gradients with direct
connections, dropout and weight decay against finite differences, the held-out split with early stopping
(the best epoch kept), and saved direct connections."""
import math

import numpy as np
import pytest

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
    loss, g = nplm.dense_gradients({k: v.copy() for k, v in p.items()}, ctx, tgt, activation, keep)
    assert loss / len(tgt) == pytest.approx(_mean_loss(p, ctx, tgt, activation, keep), rel=1e-12)
    assert set(g) == set(p)
    eps = 1e-6
    for name in p:
        flat = p[name].reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = _mean_loss(p, ctx, tgt, activation, keep)
            flat[i] = old - eps
            down = _mean_loss(p, ctx, tgt, activation, keep)
            flat[i] = old
            assert g[name].reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), abs=1e-8), (name, i)


def test_dropout_off_is_the_plain_model():
    p, ctx, tgt = _params(True)
    loss0, g0 = nplm.dense_gradients(p, ctx, tgt)
    loss1, g1 = nplm.dense_gradients(p, ctx, tgt, keep=np.ones((len(tgt), p["W"].shape[0])))
    assert loss0 == pytest.approx(loss1, rel=1e-14)
    for name in p:
        np.testing.assert_allclose(g0[name], g1[name], rtol=1e-13, atol=1e-15)


def test_weight_decay_step_is_the_gradient_of_the_l2_penalty():
    """momentum_step with decay λ steps along ∇(loss + λ/2·|p|²): checked against finite differences of
    the penalised loss, with momentum carrying the previous velocity."""
    p, ctx, tgt = _params(True)
    lam, lr, mu = 0.03, 0.2, 0.9
    _, g = nplm.dense_gradients(p, ctx, tgt)
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


def test_softmax_kernels_agree_with_numpy():
    rng = np.random.default_rng(3)
    Z = rng.normal(0, 3, (5, 40)).astype(np.float64)
    tgt = rng.integers(0, 40, 5)
    ref = Z - Z.max(1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(1, keepdims=True))
    np.testing.assert_allclose(K.log_softmax_at(Z, tgt), ref[np.arange(5), tgt], rtol=1e-12)
    G = Z.copy()
    loss = K.softmax_gradient(G, tgt, 0.5, False)
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
    G = Z.copy()
    loss = K.softmax_gradient(G, tgt, np.float32(0.25), True)
    np.testing.assert_allclose(loss, -ref[np.arange(9), tgt], rtol=1e-6)
    want = np.exp(ref) * 0.25
    want[np.arange(9), tgt] -= 0.25
    np.testing.assert_allclose(G, want, rtol=2e-6, atol=1e-9)
    assert (G >= -0.25).all() and np.isfinite(G).all()


def test_held_out_split_early_stopping_keeps_the_best_epoch(kjv_small, tmp_path):
    path = tmp_path / "lm.h5"
    emb = fastemb.train(kjv_small, "nplm", softmax="full", max_vocab=200, dim=16, hidden=32, context=2, epochs=8,
                        valid=0.1, patience=1, plateau=0.05, alpha=0.3, threads=1, seed=2, output=str(path))
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
    emb = fastemb.train(kjv_small, "nplm", hidden2=6, optimizer="adam", alpha=0.01, dropout=0.1, max_vocab=150,
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


@pytest.mark.parametrize("dropout", [False, True])
def test_minibatch_in_parts_over_threads_is_the_whole_minibatch(kjv_small, dropout):
    """The trainer's minibatch cut into parts computed on several threads gives the one-part gradient (float64:
    the same up to the order of the sums)."""
    from concurrent.futures import ThreadPoolExecutor
    from fastemb.corpus import CorpusOptions
    from fastemb.vocab import build_vocab
    with build_vocab([kjv_small], CorpusOptions(max_vocab=60), encode=True) as enc:
        tr = nplm.NPLMTrainer(nplm.NPLMOptions(softmax="full", dim=4, hidden=5, context=2, batch=64), enc, seed=1,
                              threads=3, state=None)
    p, ctx, tgt = _params(True, V=60, dim=4, n=2, hidden=5, seed=2)
    rng = np.random.default_rng(9)
    ctx, tgt = rng.integers(0, 61, (50, 2)), rng.integers(0, 60, 50)
    keep = (rng.random((50, 5)) >= 0.3) / 0.7 if dropout else None
    whole_loss, whole = nplm.dense_gradients(p, ctx, tgt, "tanh", keep)
    with ThreadPoolExecutor(2) as pool:
        loss, parts = tr._minibatch_gradients(p, ctx, tgt, keep, pool)
    assert loss == pytest.approx(whole_loss, rel=1e-13)
    for name in p:
        np.testing.assert_allclose(parts[name], whole[name], rtol=1e-11, atol=1e-15)
