"""The multi-step (VecMap) mapping against a numpy reference, and self-learning from a tiny seed lexicon."""
import json

import numpy as np
import pytest

import fastemb
from fastemb import align
from conftest import run_cli


def planted(n=3000, d=40, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Z = (X @ Q + noise * rng.standard_normal((n, d))).astype(np.float32)
    return (fastemb.Embeddings([f"s{i}" for i in range(n)], X), fastemb.Embeddings([f"t{i}" for i in range(n)], Z))


@pytest.mark.slow
def test_refinement_recovers_a_planted_rotation_from_20_pairs():
    src, tgt = planted()
    seed = [(f"s{i}", f"t{i}") for i in range(20)]
    test = [(f"s{i}", f"t{i}") for i in range(2000, 2600)]
    plain = align.evaluate(align.fit(src, tgt, seed, "procrustes"), src, tgt, test)
    refined_alignment = align.refine(src, tgt, seed, rounds=5, method="procrustes", vocab=3000)
    refined = align.evaluate(refined_alignment, src, tgt, test)
    assert plain["csls_p@1"] < 0.8 and plain["nn_p@1"] < 0.8
    assert refined["csls_p@1"] >= 0.95 and refined["nn_p@1"] >= 0.95
    objectives = [o for _, o, _ in refined_alignment.refinement]
    assert objectives[-1] > objectives[0]


def reference_vecmap(X, Y, src_rw, trg_rw):
    """Step by step as in the paper: whitening, orthogonal mapping, re-weighting, de-whitening."""
    def mat_pow(C, p):
        w, V = np.linalg.eigh(C)
        return (V * w ** p) @ V.T
    Cx, Cy = X.T @ X, Y.T @ Y
    Wx1, Wy1 = mat_pow(Cx, -0.5), mat_pow(Cy, -0.5)
    U, s, Vt = np.linalg.svd((X @ Wx1).T @ (Y @ Wy1))
    xs = X @ Wx1 @ U @ np.diag(s ** src_rw) @ U.T @ mat_pow(Cx, 0.5) @ U
    ys = Y @ Wy1 @ Vt.T @ np.diag(s ** trg_rw) @ Vt @ mat_pow(Cy, 0.5) @ Vt.T
    return xs, ys


@pytest.mark.parametrize("src_rw,trg_rw", [(0.5, 0.5), (0.0, 1.0), (1.0, 0.0)])
def test_vecmap_steps_match_a_numpy_reference(src_rw, trg_rw):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 12))
    Y = X @ rng.standard_normal((12, 12)) + 0.3 * rng.standard_normal((500, 12))
    Wx, Wy = align.vecmap_transforms(X, Y, src_reweight=src_rw, trg_reweight=trg_rw)
    xs, ys = reference_vecmap(X, Y, src_rw, trg_rw)
    np.testing.assert_allclose(X @ Wx, xs, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Y @ Wy, ys, rtol=1e-6, atol=1e-8)
    # whitening alone makes the aligned rows' covariance the identity
    Wx1, _ = align._inv_sqrt(X)
    np.testing.assert_allclose((X @ Wx1).T @ (X @ Wx1), np.eye(12), atol=1e-8)
    Wx3, _ = align.vecmap_transforms(X, Y, dim_reduction=5)
    assert Wx3.shape == (12, 5)


@pytest.mark.slow
def test_align_cli_vecmap_refine_and_test_lexicon(tmp_path):
    src, tgt = planted(n=1500, d=20)
    src.save(tmp_path / "s.h5")
    tgt.save(tmp_path / "t.h5")
    (tmp_path / "seed.tsv").write_text("".join(f"s{i}\tt{i}\n" for i in range(20)))
    (tmp_path / "test.tsv").write_text("".join(f"s{i}\tt{i}\n" for i in range(1000, 1300)))
    rc, out, err = run_cli("align", tmp_path / "s.h5", tmp_path / "t.h5", "--lexicon", tmp_path / "seed.tsv",
                           "--test-lexicon", tmp_path / "test.tsv", "--method", "vecmap", "--refine", "3",
                           "--refine-vocab", "1500", "--json", "-o", tmp_path / "r.h5")
    assert rc == 0, err
    result = json.loads(out)
    assert result["train_pairs"] == 20 and result["test_words"] == 300 and result["csls_p@1"] > 0.95
    assert 1 <= len(result["refinement"]) <= 3
    a = align.Alignment.load(tmp_path / "r.h5")
    assert a.method == "vecmap" and a.tgt_projection is not None and len(a.refinement) == len(result["refinement"])
