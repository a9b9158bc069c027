"""The neural probabilistic language model (fastemb/nplm.py, _nplm_kernels.py): gradients of every output
layer against a numpy implementation and finite differences, lazy momentum, sampled softmax and NCE against
the full softmax, held-out perplexity against a Kneser-Ney trigram on KJV, checkpoints, saved models (crafted
ones refused) and the `predict` / `eval --text` commands."""
import gzip
import math

import h5py
import numpy as np
import pytest

import fastemb
from fastemb.kernels import nplm as K
from fastemb.models import nplm
from fastemb.errors import FastembError, FileError, OptionError, UnknownWord
from conftest import SAMPLE, assert_one_line_error, run_cli

from bench.ngram import KneserNeyTrigram
from bench.nplm import sentences


# ------------------------------------------------------------------------------------ numpy reference
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, softmax, activation):
    """The summed loss of a minibatch and the gradients of its mean, written independently of the kernels."""
    V = len(logq)
    emb, W, b, out, out_b = P["emb"], P["W"], P["b"], P["out"], P["out_b"]
    g = {k: np.zeros_like(v) for k, v in P.items()}
    B = len(tgt)
    total = 0.0
    for e in range(B):
        x = np.concatenate([emb[i] for i in ctx[e]])
        a = W @ x + b
        h = np.tanh(a) if activation == "tanh" else _sigmoid(a)
        y = tgt[e]
        if softmax == "full":
            rows = np.arange(V)
            z = out @ h + out_b
            p = np.exp(z - z.max())
            p /= p.sum()
            total += -math.log(p[y])
            dz = p.copy()
            dz[y] -= 1
        elif softmax == "sampled":
            rows = np.concatenate(([y], samples))
            z = out[rows] @ h + out_b[rows] - logq[rows]
            keep = np.concatenate(([True], samples != y))
            zk = np.where(keep, z, -np.inf)
            p = np.exp(zk - zk.max())
            p /= p.sum()
            total += -math.log(p[0])
            dz = p.copy()
            dz[0] -= 1
        elif softmax == "nce":
            rows = np.concatenate(([y], samples))
            d = out[rows] @ h + out_b[rows] - logq[rows]
            labels = np.zeros(len(rows))
            labels[0] = 1
            total += -math.log(_sigmoid(d[0])) - np.log(1 - _sigmoid(d[1:])).sum()
            dz = _sigmoid(d) - labels
        else:
            codes, points, lengths = tree
            rows = points[y, :lengths[y]]
            sign = 1 - 2 * codes[y, :lengths[y]].astype(float)
            s = out[rows] @ h + out_b[rows]
            total += -np.log(_sigmoid(sign * s)).sum()
            dz = -sign * _sigmoid(-sign * s)
        np.add.at(g["out"], rows, np.outer(dz, h) / B)
        np.add.at(g["out_b"], rows, dz / B)
        dh = dz @ out[rows]
        da = dh * (1 - h * h if activation == "tanh" else h * (1 - h))
        g["W"] += np.outer(da, x) / B
        g["b"] += da / B
        dx = W.T @ da
        for c, i in enumerate(ctx[e]):
            g["emb"][i] += dx[c * emb.shape[1]:(c + 1) * emb.shape[1]] / B
    return total, g


def _tiny(softmax, activation="tanh", seed=0, V=7, dim=3, n=2, hidden=4, B=6):
    rng = np.random.default_rng(seed)
    counts = np.array([30, 20, 12, 9, 5, 3, 2][:V])
    tree = nplm._tree_arrays(nplm.tree_of(counts))
    rows = V - 1 if softmax == "hs" else V
    P = {"emb": rng.normal(0, 0.8, (V + 1, dim)), "W": rng.normal(0, 0.6, (hidden, n * dim)),
         "b": rng.normal(0, 0.3, hidden), "out": rng.normal(0, 0.6, (rows, hidden)), "out_b": rng.normal(0, 0.3, rows)}
    ctx = rng.integers(0, V + 1, (B, n))
    ctx[0, 0] = V                        # the boundary token
    ctx[1] = ctx[2]                      # a repeated row within the minibatch
    tgt = rng.integers(0, V, B)
    samples = np.array([1, 4, 1, 6, 0])  # a duplicate sample ...
    tgt[3] = 1                           # ... and accidental hits
    q = counts / counts.sum()
    logq = np.log(len(samples) * q)
    return P, ctx, tgt, samples, logq, tree


def _kernel_step(P, ctx, tgt, samples, logq, tree, softmax, activation, lr=1.0, mu=0.0, V_in=None, decay=0.0):
    """One kernel minibatch step on float64 copies; returns (summed loss, new params, new velocities)."""
    P = {k: v.copy() for k, v in P.items()}
    Vel = {k: np.zeros_like(v) for k, v in P.items()} if V_in is None else {k: v.copy() for k, v in V_in.items()}
    B = ctx.shape[0]
    codes, points, lengths = tree if softmax == "hs" else (np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int64),
                                                          np.zeros(1, np.int64))
    cols = {"full": P["out"].shape[0], "hs": codes.shape[1]}.get(softmax, len(samples) + 1)
    nd, hidden = P["W"].shape[1], P["W"].shape[0]
    buf = [np.zeros((B, nd)), np.zeros((B, hidden)), np.zeros((B, cols)), np.zeros((B, hidden)), np.zeros((B, nd))]
    loss = K.batch_step(ctx, tgt, samples if softmax in ("sampled", "nce") else samples[:0], logq, P["emb"], P["W"],
                        P["b"], P["out"], P["out_b"], Vel["emb"], Vel["W"], Vel["b"], Vel["out"], Vel["out_b"],
                        codes, points, lengths, nplm.CODES[softmax], nplm.ACTIVATIONS.index(activation), *buf,
                        np.zeros(B), np.full(P["emb"].shape[0], -1), np.full(P["out"].shape[0], -1), lr, mu, 1.0 / B,
                        decay)
    return loss, P, Vel


@pytest.mark.parametrize("softmax,activation", [("full", "tanh"), ("sampled", "tanh"), ("nce", "tanh"),
                                                ("hs", "tanh"), ("full", "logistic"), ("hs", "logistic")])
def test_gradients_match_numpy_and_finite_differences(softmax, activation):
    P, ctx, tgt, samples, logq, tree = _tiny(softmax, activation)
    want_loss, want = numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, softmax, activation)
    loss, after, _ = _kernel_step(P, ctx, tgt, samples, logq, tree, softmax, activation)  # lr 1, no momentum
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for name in P:
        np.testing.assert_allclose(P[name] - after[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # the numpy gradients against central differences of the numpy loss (the mean over the minibatch)
    eps = 1e-6
    rng = np.random.default_rng(1)
    for name in P:
        flat = P[name].reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, 12), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, softmax, activation)[0]
            flat[i] = old - eps
            down = numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, softmax, activation)[0]
            flat[i] = old
            fd = (up - down) / (2 * eps) / len(tgt)
            assert want[name].reshape(-1)[i] == pytest.approx(fd, abs=1e-7), (name, i)


def test_lazy_momentum_moves_touched_rows_only():
    P, ctx, tgt, samples, logq, tree = _tiny("sampled")
    V = len(logq)
    untouched = sorted(set(range(V + 1)) - set(ctx.ravel().tolist()))
    assert untouched
    Vel = {k: np.random.default_rng(2).normal(0, 0.1, v.shape) for k, v in P.items()}
    _, grads = numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, "sampled", "tanh")
    _, after, vel = _kernel_step(P, ctx, tgt, samples, logq, tree, "sampled", "tanh", lr=0.1, mu=0.9, V_in=Vel)
    touched = sorted(set(ctx.ravel().tolist()))
    for name, rows in (("emb", touched), ("W", list(range(P["W"].shape[0])))):
        np.testing.assert_allclose(vel[name][rows], 0.9 * Vel[name][rows] + grads[name][rows], rtol=1e-9)
        np.testing.assert_allclose(after[name][rows], P[name][rows] - 0.1 * vel[name][rows], rtol=1e-9)
    # rows no example touched keep their velocity and stay put (TensorFlow's sparse momentum)
    np.testing.assert_array_equal(vel["emb"][untouched], Vel["emb"][untouched])
    np.testing.assert_array_equal(after["emb"][untouched], P["emb"][untouched])
    out_touched = set(tgt.tolist()) | set(samples.tolist())
    idle = [r for r in range(V) if r not in out_touched]
    np.testing.assert_array_equal(after["out"][idle], P["out"][idle])
    np.testing.assert_array_equal(vel["out_b"][idle], Vel["out_b"][idle])


def test_weight_decay_penalises_touched_weights_not_biases():
    P, ctx, tgt, samples, logq, tree = _tiny("hs")
    _, grads = numpy_loss_and_grads(P, ctx, tgt, samples, logq, tree, "hs", "tanh")
    _, after, _ = _kernel_step(P, ctx, tgt, samples, logq, tree, "hs", "tanh", decay=0.01)
    touched = sorted(set(ctx.ravel().tolist()))
    np.testing.assert_allclose(after["W"], P["W"] - grads["W"] - 0.01 * P["W"], rtol=1e-9)
    np.testing.assert_allclose(after["emb"][touched], P["emb"][touched] - grads["emb"][touched]
                               - 0.01 * P["emb"][touched], rtol=1e-9)
    np.testing.assert_allclose(after["b"], P["b"] - grads["b"], rtol=1e-9)
    nodes = sorted({int(p) for y in tgt for p in tree[1][y, :tree[2][y]]})
    np.testing.assert_allclose(after["out"][nodes], P["out"][nodes] - grads["out"][nodes] - 0.01 * P["out"][nodes],
                               rtol=1e-9)
    np.testing.assert_allclose(after["out_b"], P["out_b"] - grads["out_b"], rtol=1e-9)


# ------------------------------------------------------------------------------------------ saved models
@pytest.fixture(scope="module")
def models(tmp_path_factory, kjv_small):
    """Two small models of the first 2,000 verses (300 words): full softmax and hs, saved."""
    d = tmp_path_factory.mktemp("nplm")
    out = {}
    for softmax in ("full", "hs"):
        path = d / f"{softmax}.h5"
        fastemb.train(kjv_small, "nplm", softmax=softmax, max_vocab=300, epochs=1, context=3, dim=16, hidden=32,
                      threads=1, output=str(path))
        out[softmax] = path
    return out


def test_saved_model_round_trip_and_exact_probabilities(models):
    for softmax, path in models.items():
        emb = fastemb.load(path)  # an Embeddings like any other
        assert emb.attrs["algo"] == "nplm" and emb.attrs["softmax"] == softmax and emb.vectors.shape == (300, 16)
        assert set(emb.model) == set(nplm.MODEL_ARRAYS) | ({"ngram_weight"} if softmax == "full" else set())
        assert emb.most_similar("god", topn=3)
        lm = fastemb.LanguageModel.load(path)
        lp = lm.log_probs("and the lord")
        assert lp.shape == (300,) and np.exp(lp).sum() == pytest.approx(1.0, abs=1e-5)
        top = lm.predict("and the lord", k=5)
        assert len(top) == 5 and all(a[1] >= b[1] for a, b in zip(top, top[1:]))
        assert top[0][1] == pytest.approx(np.exp(lp.max()), rel=1e-6)
        # a context shorter than `context` words is the start of a sentence: the boundary token pads it
        np.testing.assert_array_equal(lm.context_ids("lord"), [lm.V, lm.V, lm.emb.index["lord"]])
        # perplexity agrees with the per-position distributions (boundary handling included)
        text = "in the beginning god created the heaven and the earth .\nand god said , let there be light .\n"
        lines = [[w for w in line.split() if w in lm.emb.index] for line in text.splitlines()]
        text = "\n".join(" ".join(line) for line in lines)
        assert sum(map(len, lines)) > 12
        want = [lm.log_probs(line[:i])[lm.emb.index[w]] for line in lines for i, w in enumerate(line)]
        score = lm.score(text)
        assert score["tokens"] == len(want) and score["coverage"] == 1.0
        assert score["perplexity"] == pytest.approx(math.exp(-np.mean(want)), rel=1e-5)
        again = fastemb.Embeddings.load(path)
        again.save(path.parent / f"again-{softmax}.h5")
        assert fastemb.LanguageModel.load(path.parent / f"again-{softmax}.h5").predict("and the lord", k=5) == top


def test_unknown_words_and_other_models(models, tmp_path):
    lm = fastemb.LanguageModel.load(models["hs"])
    with pytest.raises(UnknownWord, match="xyzzy"):
        lm.predict("the xyzzy of")
    assert lm.predict("the xyzzy of", skip_unknown=True) == lm.predict("the of")
    with pytest.raises(OptionError):
        lm.predict("the", k=0)
    with pytest.raises(FileError, match="no such text file"):
        lm.perplexity(str(tmp_path / "held-out.txt"))          # a path, not a one-word text
    with pytest.raises(FastembError, match="none of the 2 tokens"):
        lm.perplexity("xyzzy plugh\n")
    assert lm.perplexity([["and", "the", "lord"], "and god said"]) > 1
    sg = fastemb.Embeddings(["a", "b"], np.ones((2, 4), np.float32), attrs={"algo": "sgns"})
    sg.save(tmp_path / "sg.h5")
    with pytest.raises(FastembError, match="not a language model"):
        fastemb.LanguageModel.load(tmp_path / "sg.h5")
    rc, _, err = run_cli("predict", tmp_path / "sg.h5", "a")
    assert_one_line_error(rc, err, contains="not a language model")
    rc, _, err = run_cli("eval", tmp_path / "sg.h5", "--text", SAMPLE)
    assert_one_line_error(rc, err, contains="--text measures the perplexity of a language model")


@pytest.mark.slow
def test_predict_and_eval_text_cli(models, tmp_path, kjv_small):
    import json
    path = models["full"]
    rc, out, err = run_cli("predict", path, "the king of", "-k", "3", "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert got["context"] == ["the", "king", "of"] and len(got["predictions"]) == 3
    want = fastemb.LanguageModel.load(path).predict("the king of", k=3)
    assert [w for w, _ in got["predictions"]] == [w for w, _ in want]
    rc, out, err = run_cli("predict", path, "and", "the", "lord")
    assert rc == 0 and "rank" in out and "probability" in out, err
    rc, _, err = run_cli("predict", path, "the xyzzy")
    assert_one_line_error(rc, err, contains="--skip-unknown")
    rc, _, err = run_cli("predict", path, "the", "-k", "0")
    assert_one_line_error(rc, err, contains="-k/--topn must be at least 1")
    rc, _, err = run_cli("predict", tmp_path / "missing.h5", "the")
    assert_one_line_error(rc, err, contains="missing.h5")
    held = tmp_path / "held.txt"
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        held.write_text("".join(line for i, line in zip(range(2300), f) if i >= 2000), encoding="utf-8")
    rc, out, err = run_cli("eval", path, "--text", held, "--json")
    assert rc == 0, err
    r = json.loads(out)["perplexity"][0]
    assert r["perplexity"] == pytest.approx(fastemb.LanguageModel.load(path).perplexity(str(held)), rel=1e-6)
    assert 0.5 < r["coverage"] < 1 and r["tokens"] > 1000
    rc, out, err = run_cli("eval", path, "--text", held)
    assert rc == 0 and "perplexity" in out and "coverage" in out, err
    for args in (("neighbors", path, "god"), ("info", path), ("export", path, "--format", "word2vec", "-o",
                                                                   tmp_path / "v.txt")):
        rc, _, err = run_cli(*args)
        assert rc == 0, err


def _crafted(models, tmp_path, edit, softmax="hs"):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(models[softmax].read_bytes())
    with h5py.File(bad, "a") as f:
        edit(f)
    return bad


def _set(name, value):
    def edit(f):
        del f[name]
        f[name] = value
    return edit


def _attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


CRAFTED = [
    ("hs output rows", _set("model/output_weight", np.zeros((300, 32), np.float32)), "/model/output_weight is 300×32"),
    ("hidden columns", _set("model/hidden_weight", np.zeros((32, 40), np.float32)), "/model/hidden_weight is 32×40"),
    ("hidden bias", _set("model/hidden_bias", np.zeros(31, np.float32)), "/model/hidden_bias is 31"),
    ("boundary", _set("model/boundary", np.zeros(15, np.float32)), "/model/boundary is 15"),
    ("context attr", _attr("context", 5), "/model/hidden_weight is 32×48, expected hidden×80"),
    ("context type", _attr("context", "3"), "context '3'"),
    ("softmax attr", _attr("softmax", "bogus"), "softmax 'bogus'"),
    ("missing array", lambda f: f.__delitem__("model/boundary"), "no /model/boundary"),
    ("NaN", _set("model/output_bias", np.full(299, np.nan, np.float32)), "non-finite"),
    ("beyond float32", _set("model/hidden_bias", np.full(32, 1e300)), "beyond float32's range"),
    ("integers", _set("model/hidden_bias", np.zeros(32, np.int64)), "must hold finite floats"),
    ("strings", _set("model/hidden_bias", np.array([b"x"] * 32)), "expected numbers"),
    ("3-D", _set("model/output_bias", np.zeros((299, 1, 1), np.float32)), "3 dimensions"),
    ("group", lambda f: (f.__delitem__("model"), f.create_dataset("model", data=np.zeros(3))), "/model is not a group"),
    ("nested", lambda f: f["model"].create_group("sub"), "/model/sub is not a dataset"),
]


@pytest.mark.parametrize("what,edit,message", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_model_files_are_refused(models, tmp_path, what, edit, message):
    bad = _crafted(models, tmp_path, edit)
    with pytest.raises(FastembError) as e:
        fastemb.LanguageModel.load(bad)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, FileError) or "language model" in str(e.value)


def test_crafted_model_cli_is_one_line(models, tmp_path):
    bad = _crafted(models, tmp_path, _set("model/output_weight", np.zeros((7, 32), np.float32)), "full")
    for args in (("predict", bad, "the"), ("eval", bad, "--text", SAMPLE)):
        rc, _, err = run_cli(*args)
        assert_one_line_error(rc, err, contains="damaged language model")


# ------------------------------------------------------------------------------------- quality on KJV
def _kjv_split(tmp_path, train_every):
    """Deterministic verse split of the shipped corpus: every 20th verse held out; every `train_every`-th of the
    others (from verse 1) trains."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    train, held = tmp_path / "train.txt", tmp_path / "held.txt"
    train.write_text("".join(v for i, v in enumerate(lines) if i % 20 and i % train_every == 1), encoding="utf-8")
    held.write_text("".join(v for i, v in enumerate(lines) if i % 20 == 0), encoding="utf-8")
    return str(train), str(held)


@pytest.mark.slow
def test_sampled_softmax_and_nce_approach_the_full_softmax(tmp_path):
    train, held = _kjv_split(tmp_path, 8)   # ~115k training tokens
    common = {"max_vocab": 200, "epochs": 5, "context": 3, "dim": 32, "hidden": 64, "samples": 40, "seed": 3,
              "optimizer": "momentum", "ngram_order": 0}   # the output layers compared under one update rule, alone
    ppl = {}
    for softmax in ("full", "sampled", "nce"):
        emb = fastemb.train(train, "nplm", softmax=softmax, **common)
        ppl[softmax] = fastemb.LanguageModel(emb).perplexity(held)
    counts = emb.counts / emb.counts.sum()
    unigram = math.exp(-(counts * np.log(counts)).sum())
    assert ppl["full"] < 0.4 * unigram, (ppl, unigram)
    for softmax in ("sampled", "nce"):  # within 6% of the full softmax's perplexity (2-3% measured)
        assert ppl[softmax] < 1.06 * ppl["full"], ppl


@pytest.mark.slow
def test_kjv_heldout_perplexity_beats_kneser_ney_trigram(tmp_path):
    """On a quarter of KJV's verses (~200k tokens, the 500 most frequent words; 1 in 20 verses held out) the NPLM
    (4 words of context, Adam, weight decay 1e-4) beats interpolated modified Kneser-Ney on the same token ids: 31.9
    against 34.0 here (33.0 without the weight decay)."""
    train, held = _kjv_split(tmp_path, 4)
    emb = fastemb.train(train, "nplm", max_vocab=500, softmax="full", context=4, epochs=6, weight_decay=1e-4, seed=1)
    score = fastemb.LanguageModel(emb).score(held)
    held_ids = sentences(held, emb)
    assert score["tokens"] == sum(map(len, held_ids)) and 0.7 < score["coverage"] < 0.95
    kn = KneserNeyTrigram(len(emb)).fit(sentences(train, emb))
    baseline = kn.perplexity(held_ids)
    assert 30 < baseline < 40
    assert score["perplexity"] < 0.96 * baseline, (score["perplexity"], baseline)


def test_kneser_ney_baseline_is_normalised():
    rng = np.random.default_rng(0)
    sents = [rng.integers(0, 30, rng.integers(1, 12)) for _ in range(400)]
    kn = KneserNeyTrigram(30).fit(sents)
    for ctx in ([], [4], [7, 3], [29, 29]):
        probe = [np.array(ctx + [w]) for w in range(30)]
        lp = kn.log_probs(probe).reshape(30, -1)[:, -1]
        assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.slow
def test_resume_mid_epoch_gives_the_uninterrupted_model(tmp_path, kjv_small, monkeypatch):
    monkeypatch.setattr(nplm, "BLOCK_TOKENS", 2048)   # ~30 blocks an epoch, so a checkpoint lands mid-epoch
    common = {"max_vocab": 300, "epochs": 2, "softmax": "sampled", "samples": 20, "dim": 16, "hidden": 24,
              "threads": 1, "seed": 5}
    straight = fastemb.train(kjv_small, "nplm", **common)
    ck = tmp_path / "run.ckpt"

    def stop(run):  # the checkpoint callback (every step) still saves this step, then training stops
        if run.epoch == 1 and run.state.block == 7:
            raise fastemb.StopTraining()
    stopped = fastemb.train(kjv_small, "nplm", checkpoint=str(ck), checkpoint_every="0.001s", callbacks=[_OnStep(stop)],
                            **common)
    assert not stopped.attrs["completed"] and ck.exists()
    from fastemb.checkpoint import load_checkpoint
    assert load_checkpoint(str(ck)).state.block == 7 and load_checkpoint(str(ck)).state.epoch == 1
    resumed = fastemb.train(resume=str(ck))
    assert resumed.attrs["epochs_trained"] == 2
    np.testing.assert_array_equal(resumed.vectors, straight.vectors)
    for name in nplm.MODEL_ARRAYS:
        np.testing.assert_array_equal(resumed.model[name], straight.model[name])
    assert resumed.attrs["loss"] == pytest.approx(straight.attrs["loss"], rel=1e-12)


class _OnStep(fastemb.Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_step(self, run):
        self.fn(run)


def test_options_are_checked_and_named():
    with pytest.raises(OptionError, match="softmax must be one of"):
        fastemb.NPLMOptions(softmax="tree")
    with pytest.raises(OptionError, match="context must be between"):
        fastemb.NPLMOptions(context=0)
    assert nplm.resolve_softmax("auto", nplm.FULL_MAX_WORDS) == "full"
    assert nplm.resolve_softmax("auto", nplm.FULL_MAX_WORDS + 1) == "sampled"
    specs = fastemb.NPLMOptions.specs()
    assert "loss" not in specs and specs["dim"][1] is fastemb.SGNSOptions.specs()["dim"][1]
