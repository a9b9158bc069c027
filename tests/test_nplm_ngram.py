"""The NPLM's hashed n-gram features (ngram_order: Mikolov et al. 2011's maximum-entropy direct connections):
offsets against a plain Python hash, gradients against finite differences, the SGD step in per-thread index
ranges, the saved model's round trip and crafted files, and the options' bounds."""
import math
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from conftest import central_differences

import fastemb
from fastemb.errors import FastembError, FileError, OptionError
from fastemb.kernels import nplm as K
from fastemb.models import nplm
from conftest import assert_one_line_error, run_cli
import naive


def test_offsets_match_the_python_reference():
    rng = np.random.default_rng(1)
    for V, size, n, order in ((9, 40, 2, 3), (150, 4096, 6, 7), (5202, 1 << 22, 6, 4), (3, 3, 1, 2)):
        ctx = rng.integers(0, V + 1, (50, n))
        ctx[:5] = V   # sentence starts: the boundary token
        got = K.ngram_offsets(ctx, order, size, V)
        assert got.tolist() == naive.ngram_offsets(ctx, order, size, V)
        assert got.min() >= 0 and got.max() <= size - V
    # a history depends on its last k words only, and orders differ
    ctx = np.array([[1, 2, 3], [4, 2, 3], [4, 5, 3]])
    off = K.ngram_offsets(ctx, 3, 1000, 9)
    assert off[0, 0] == off[1, 0] == off[2, 0] and off[0, 1] == off[1, 1] != off[2, 1]
    for bad in ((ctx, 1, 1000, 9), (ctx, 5, 1000, 9), (ctx, 3, 8, 9), (ctx + 10, 3, 1000, 9)):
        with pytest.raises(ValueError):
            K.ngram_offsets(*bad)


def _params(V=9, dim=3, n=2, hidden=4, size=23, seed=0, B=8):
    rng = np.random.default_rng(seed)
    p = {"emb": rng.normal(0, 0.5, (V + 1, dim)), "W": rng.normal(0, 0.5, (hidden, n * dim)),
         "b": rng.normal(0, 0.1, hidden), "out": rng.normal(0, 0.5, (V, hidden)), "out_b": rng.normal(0, 0.1, V),
         "ngram": rng.normal(0, 0.5, size)}
    ctx = rng.integers(0, V + 1, (B, n))
    ctx[1] = ctx[0]   # a shared history: its slices collect two examples' gradients
    tgt = rng.integers(0, V, B)
    return p, ctx, tgt


def _mean_loss(p, ctx, tgt, order):
    """The mean −log P written with plain numpy and the Python hash, independently of the kernels."""
    V = len(p["out"])
    offsets = naive.ngram_offsets(ctx, order, len(p["ngram"]), V)
    total = 0.0
    for e in range(len(tgt)):
        x = np.concatenate([p["emb"][i] for i in ctx[e]])
        z = p["out"] @ np.tanh(p["W"] @ x + p["b"]) + p["out_b"]
        for o in offsets[e]:
            z = z + p["ngram"][o:o + V]
        total += -(z[tgt[e]] - z.max() - math.log(np.exp(z - z.max()).sum()))
    return total / len(tgt)


@pytest.mark.parametrize("order,slices", [(2, 1), (3, 1), (3, 3)])
def test_gradients_match_finite_differences(order, slices):
    p, ctx, tgt = _params()
    with ThreadPoolExecutor(2) as pool:
        loss, g = nplm.dense_gradients({k: v.copy() for k, v in p.items()}, ctx, tgt, slices=slices,
                                       pool=pool if slices > 1 else None, ngram_order=order)
    assert loss / len(tgt) == pytest.approx(_mean_loss(p, ctx, tgt, order), rel=1e-12)
    rows = g.pop("emb_rows")
    emb = np.zeros_like(p["emb"])
    emb[rows] = g["emb"]
    g["emb"] = emb
    g["ngram"] = g["ngram"].dense(len(p["ngram"]))
    assert set(g) == set(p) and np.abs(g["ngram"]).max() > 0
    for name in p:
        numeric = central_differences(lambda: _mean_loss(p, ctx, tgt, order), p[name])
        for i, num in enumerate(numeric):
            assert g[name].reshape(-1)[i] == pytest.approx(num, abs=1e-8), (name, i)


def test_sgd_in_index_ranges_is_one_whole_step():
    """The trainer steps the n-gram array in one range of indices per thread: the ranges together are the whole
    step D −= lr·∇, and each range moves its own indices only."""
    p, ctx, tgt = _params(V=40, size=300, n=3, B=30, seed=3)
    p = {k: v.astype(np.float32) for k, v in p.items()}
    _, g = nplm.dense_gradients(p, ctx, tgt, ngram_order=4)
    ng = g["ngram"]
    want = p["ngram"].astype(np.float64) - 0.5 * ng.dense(300)
    D = p["ngram"].copy()
    ng.step(D, 0.5, 0, 137)
    assert (D[137:] == p["ngram"][137:]).all() and not (D[:137] == p["ngram"][:137]).all()
    ng.step(D, 0.5, 137, 300)
    np.testing.assert_allclose(D, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def ngram_model(tmp_path_factory, kjv_small):
    path = tmp_path_factory.mktemp("ngram") / "ng.h5"
    emb = fastemb.train(kjv_small, "nplm", max_vocab=150, dim=8, hidden=16, context=2, epochs=1, threads=2, seed=1,
                        ngram_order=3, ngram_size=4096, output=str(path))
    return path, emb


def test_round_trip_gives_identical_perplexity(ngram_model, kjv_small):
    path, emb = ngram_model
    assert emb.model["ngram_weight"].shape == (4096,) and np.abs(emb.model["ngram_weight"]).max() > 0
    lm = fastemb.LanguageModel.load(path)
    assert lm.ngram_order == 3
    assert lm.perplexity(kjv_small) == fastemb.LanguageModel(emb).perplexity(kjv_small)
    lp = lm.log_probs("and the")
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-9)
    ids = np.array([lm.emb.index[w] for w in "and the lord said".split()])
    assert lm.sequence_log_probs(ids, np.array([4]))[2] == pytest.approx(lp[ids[2]], abs=1e-9)
    ppl = lm.perplexity(kjv_small)
    lm.ngram[:] = 0   # the features are used: without them the model is another
    lm._params64 = None
    assert lm.perplexity(kjv_small) != pytest.approx(ppl, rel=1e-3)


def _crafted(path, tmp_path, edit):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "a") as f:
        edit(f)
    return bad


def _resize(f):
    del f["model/ngram_weight"]
    f["model/ngram_weight"] = np.zeros(4095, np.float32)


def _tiny_size(f):
    del f["model/ngram_weight"]
    f["model/ngram_weight"] = np.zeros(100, np.float32)
    f.attrs["ngram_size"] = 100


@pytest.mark.parametrize("edit,message", [
    (_resize, "/model/ngram_weight is 4095, expected 4096 (ngram_size)"),
    (_tiny_size, "ngram_size 100 with /model/ngram_weight"),
    (lambda f: f.attrs.__setitem__("ngram_order", 0), "ngram_order 0 with /model/ngram_weight"),
    (lambda f: f.attrs.__setitem__("ngram_order", 4), "ngram_order 4 with context 2"),
    (lambda f: f.__delitem__("model/ngram_weight"), "ngram_order 3 without /model/ngram_weight"),
], ids=["size", "fewer than V", "order 0", "order above context+1", "missing"])
def test_crafted_ngram_arrays_are_refused(ngram_model, tmp_path, edit, message):
    bad = _crafted(ngram_model[0], tmp_path, edit)
    with pytest.raises(FastembError) as e:
        fastemb.LanguageModel.load(bad)
    assert isinstance(e.value, FileError) and message in str(e.value) and "\n" not in str(e.value)


def test_crafted_ngram_array_cli_is_one_line(ngram_model, tmp_path):
    bad = _crafted(ngram_model[0], tmp_path, _resize)
    rc, _, err = run_cli("predict", bad, "the")
    assert_one_line_error(rc, err, contains="ngram_weight")


@pytest.mark.parametrize("options,name,message", [
    ({"ngram_order": 1}, "ngram_order", "order 1 is the output layer's bias"),
    ({"ngram_order": 5, "context": 3}, "ngram_order", "2 .. context + 1 = 4"),
    ({"ngram_order": 66}, "ngram_order", "between 0 and 65"),
    ({"ngram_order": 3, "ngram_size": 1000}, "ngram_size", "between 1,024 and"),
    ({"ngram_order": 3, "ngram_alpha": 0}, "ngram_alpha", "must be positive"),
    ({"ngram_order": 0, "ngram_size": 1 << 20}, "ngram_size", "applies with ngram_order 2 or more"),
    ({"softmax": "hs", "ngram_alpha": 0.5}, "ngram_alpha", "applies with ngram_order"),
    ({"ngram_order": 3, "softmax": "hs"}, "ngram_order", "needs softmax full"),
])
def test_options_bounds_name_the_option(options, name, message):
    with pytest.raises(OptionError) as e:
        fastemb.NPLMOptions(**options)
    assert str(e.value).startswith(name)
    assert message in str(e.value), str(e.value)


def test_default_order_follows_the_softmax_and_context(kjv_small):
    """ngram_order's default: 3 with the full softmax (at most context + 1), none with the others; the order
    trained is the one saved."""
    V = 500
    assert nplm.ngram_order_of(fastemb.NPLMOptions(), V) == nplm.NGRAM_ORDER == 3
    assert nplm.ngram_order_of(fastemb.NPLMOptions(context=1), V) == 2
    assert nplm.ngram_order_of(fastemb.NPLMOptions(softmax="hs"), V) == 0
    assert nplm.ngram_order_of(fastemb.NPLMOptions(), nplm.FULL_MAX_WORDS + 1) == 0   # auto: sampled
    emb = fastemb.train(kjv_small, "nplm", max_vocab=100, dim=4, hidden=4, context=1, epochs=1, threads=1,
                        ngram_size=2048)
    assert emb.attrs["ngram_order"] == 2 and emb.model["ngram_weight"].shape == (2048,)
    assert fastemb.LanguageModel(emb).ngram_order == 2


def test_hash_smaller_than_the_vocabulary_is_refused(kjv_small):
    with pytest.raises(OptionError, match="ngram_size is 1,024, fewer weights than the 1,500 words"):
        fastemb.train(kjv_small, "nplm", max_vocab=1500, min_count=1, dim=4, hidden=4, context=2, epochs=1, threads=1,
                      ngram_order=2, ngram_size=1024)
