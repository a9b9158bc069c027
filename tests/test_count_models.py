"""GloVe and PPMI-SVD against numpy references and planted structure."""
import numpy as np
import pytest
import scipy.sparse as sp

from fastemb.kernels import glove as GK
from fastemb.models.glove import glove_weights
from fastemb.models.ppmi import ppmi_matrix, truncated_svd, weighted_vectors
from fastemb import train
from conftest import planted_corpus


def glove_params(rng, n, dim):
    P = np.ones((n, 2 * dim + 2), np.float32)
    P[:, :dim] = rng.standard_normal((n, dim)) * 0.3
    P[:, 2 * dim] = rng.standard_normal(n) * 0.3
    P[:, dim:2 * dim] += rng.random((n, dim))  # accumulators that already moved
    return P


def test_glove_step_matches_numpy_adagrad():
    rng = np.random.default_rng(0)
    dim, eta, clip = 6, np.float32(0.05), np.float32(100.0)
    P, Pc = glove_params(rng, 5, dim), glove_params(rng, 5, dim)
    p0, c0 = P.copy(), Pc.copy()
    i, j, x, x_max, alpha = 1, 3, 7.0, 10.0, 0.75
    f = min(1.0, (x / x_max) ** alpha)
    loss = GK.glove_step(P, Pc, i, j, np.float32(np.log(x)), np.float32(f), eta, clip,
                         np.zeros(2 * dim + 2, np.float32), np.zeros(2 * dim + 2, np.float32))
    w, gw, b, gb = p0[i, :dim], p0[i, dim:2 * dim], p0[i, 2 * dim], p0[i, 2 * dim + 1]
    wc, gwc, bc, gbc = c0[j, :dim], c0[j, dim:2 * dim], c0[j, 2 * dim], c0[j, 2 * dim + 1]
    diff = w @ wc + b + bc - np.log(x)
    assert loss == pytest.approx(f * diff ** 2, rel=1e-5)
    # gradient of f·diff² / 2 with respect to w is f·diff·wc; AdaGrad divides by sqrt(accumulator)
    grad_w, grad_wc, grad_b = f * diff * wc * eta, f * diff * w * eta, f * diff * eta
    np.testing.assert_allclose(P[i, :dim], w - grad_w / np.sqrt(gw), rtol=1e-4)
    np.testing.assert_allclose(Pc[j, :dim], wc - grad_wc / np.sqrt(gwc), rtol=1e-4)
    np.testing.assert_allclose(P[i, dim:2 * dim], gw + grad_w ** 2, rtol=1e-5)
    assert P[i, 2 * dim] == pytest.approx(b - grad_b / np.sqrt(gb), rel=1e-4)
    assert Pc[j, 2 * dim] == pytest.approx(bc - grad_b / np.sqrt(gbc), rel=1e-4)
    assert P[i, 2 * dim + 1] == pytest.approx(gb + grad_b ** 2, rel=1e-5)
    untouched = [k for k in range(5) if k != i]
    np.testing.assert_array_equal(P[untouched], p0[untouched])


def factorizable(n=30, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    W, C = rng.standard_normal((n, dim)) * 0.5, rng.standard_normal((n, dim)) * 0.5
    b, c = rng.random(n), rng.random(n)
    return sp.csr_matrix(np.exp(W @ C.T + b[:, None] + c[None, :] + 1.0))


def glove(X, **kw):
    return train(cooc=X, algo="glove", add_contexts=False, threads=1, **kw)


def test_glove_fits_an_exactly_factorizable_matrix():
    X = factorizable()
    loss = glove(X, dim=8, epochs=300, x_max=1e-3, weight_exponent=0.75, eta=0.05, seed=1).attrs["loss"]
    assert loss[0] > 0.5
    assert loss[-1] < 1e-3 * loss[0]


def test_glove_one_thread_reproducible_and_tied_model():
    X = factorizable()
    a = glove(X, dim=4, epochs=5, x_max=10, seed=3)
    b = glove(X, dim=4, epochs=5, x_max=10, seed=3)
    c = glove(X, dim=4, epochs=5, x_max=10, seed=4)
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.context_vectors, b.context_vectors)
    assert not np.array_equal(a.vectors, c.vectors)
    tied = glove(X + X.T, dim=4, epochs=5, x_max=10, seed=3, tied=True)
    assert tied.context_vectors is None and tied.context_bias is None and tied.bias.shape == (30,)
    assert tied.attrs["loss"][-1] < tied.attrs["loss"][0]


def test_glove_weights():
    np.testing.assert_allclose(glove_weights([1, 50, 100, 1000], 100, 0.75), [0.01 ** 0.75, 0.5 ** 0.75, 1, 1],
                               rtol=1e-6)


def dense_ppmi(X, cds, neg):
    X = np.asarray(X, dtype=np.float64)
    total = X.sum()
    pw = X.sum(1) / total
    pc = X.sum(0) ** cds / (X.sum(0) ** cds).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((X / total) / np.outer(pw, pc)) - np.log(neg)
    return np.maximum(np.nan_to_num(pmi, nan=0.0, neginf=0.0), 0)  # an empty row: no entry


@pytest.mark.parametrize("cds,neg,threads", [(1.0, 1.0, 1), (0.75, 1.0, 2), (0.75, 5.0, 1), (1.0, 3.0, 2)])
def test_ppmi_equals_dense_reference(cds, neg, threads):
    rng = np.random.default_rng(1)
    X = rng.poisson(1.5, (40, 40)) * (rng.random((40, 40)) < 0.3)
    X[0, 0] = 3  # no empty row or column
    X[:, 0] += 1
    X[0, :] += 1
    X[5, :] = 0  # an empty row, and stored zeros
    Xs = sp.csr_matrix(X)
    Xs.data[::7] = 0
    X = Xs.toarray()
    got = ppmi_matrix(Xs, cds=cds, shift=neg, threads=threads)
    np.testing.assert_allclose(got.toarray(), dense_ppmi(X, cds, neg), rtol=1e-5, atol=1e-6)
    assert (got.data > 0).all()  # kept sparse: only positive entries stored


@pytest.mark.parametrize("method", ["arpack", "randomized"])
def test_svd_matches_numpy_dense_svd(method):
    rng = np.random.default_rng(2)
    # a decaying spectrum, like PPMI matrices have (a flat one defeats any truncated method)
    Q1 = np.linalg.qr(rng.standard_normal((60, 50)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((50, 50)))[0]
    A = (Q1 * 0.8 ** np.arange(50)) @ Q2.T
    A[np.abs(A) < 0.01] = 0
    U, s, vt, used = truncated_svd(sp.csr_matrix(A, dtype=np.float32), 8, method=method, seed=1)
    assert used == method
    Ur, sr, vtr = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(s, sr[:8], rtol=1e-3)
    for k in range(8):  # equal up to sign
        sign = np.sign(U[:, k] @ Ur[:, k])
        np.testing.assert_allclose(U[:, k] * sign, Ur[:, k], atol=2e-3)
        np.testing.assert_allclose(vt[k] * sign, vtr[k], atol=2e-3)


def test_eigenvalue_weighting():
    U = np.eye(3, 2, dtype=np.float32)
    s = np.array([4.0, 9.0], np.float32)
    vt = np.eye(2, 3, dtype=np.float32)
    W0, C0 = weighted_vectors(U, s, vt, 0.0)
    W1, _ = weighted_vectors(U, s, vt, 1.0)
    Wh, _ = weighted_vectors(U, s, vt, 0.5)
    np.testing.assert_array_equal(W0, U)          # p = 0: U alone
    np.testing.assert_array_equal(C0, vt.T)
    np.testing.assert_allclose(W1, U * s)         # p = 1: U·Σ
    np.testing.assert_allclose(Wh, U * [2.0, 3.0])  # p = 0.5: U·Σ^½


@pytest.mark.parametrize("algo", ["glove", "ppmi-svd"])
def test_planted_groups_recovered(tmp_path, algo):
    groups = planted_corpus(tmp_path / "p.txt", groups=5, per_group=6, sentences=3000)
    # sample=0: subsampling at the defaults (1e-4) would drop ~95% of a 30-word corpus
    emb = train(str(tmp_path / "p.txt"), algo, dim=10, window=5, sample=0.0, threads=1)
    for group in groups:
        for w in group:
            neighbours = {x for x, _ in emb.most_similar(w, topn=len(group) - 1)}
            assert neighbours == set(group) - {w}, (algo, w, neighbours)


@pytest.mark.slow
def test_cooc_file_feeds_training(tmp_path):
    from conftest import run_cli
    planted_corpus(tmp_path / "p.txt", sentences=500)
    rc, _, err = run_cli("cooc", tmp_path / "p.txt", "-o", tmp_path / "c.h5", "--window", "3", "--quiet")
    assert rc == 0, err
    rc, _, err = run_cli("train", "--cooc", tmp_path / "c.h5", "--algo", "ppmi-svd", "--dim", "5", "-o",
                         tmp_path / "v.h5", "--quiet")
    assert rc == 0, err
    import fastemb
    emb = fastemb.load(tmp_path / "v.h5")
    assert emb.attrs["window"] == 3 and emb.svd is not None and emb.vectors.shape[1] == 5


def test_orthonormal_columns_cholesky_qr2():
    """CholeskyQR2 gives an orthonormal basis of the same column space, also for an ill-conditioned matrix,
    and falls back to Householder QR for a rank-deficient one."""
    from fastemb.models.ppmi import orthonormal_columns
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((2000, 30)))
    V, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    for cond in (1.0, 1e3, 1e6):
        Y = ((U * np.logspace(0, -np.log10(cond), 30)) @ V.T).astype(np.float32)
        Q = orthonormal_columns(Y)
        assert Q.dtype == np.float32 and Q.shape == Y.shape
        np.testing.assert_allclose(Q.T @ Q, np.eye(30), atol=2e-5)
        np.testing.assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-4 * np.abs(Y).max())
    Y = rng.standard_normal((500, 10)).astype(np.float32)
    Y[:, 9] = Y[:, 0]  # rank 9: the Gram matrix is singular
    Q = orthonormal_columns(Y)
    np.testing.assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-4)


def test_small_svd_matches_lapack_on_the_wide_matrix():
    """The randomized SVD's last step, through the QR of the tall Bt, gives LAPACK's SVD of the wide B = Btᵀ:
    the same singular values and (up to sign) vectors, also ill-conditioned and rank deficient."""
    from fastemb.models.ppmi import small_svd
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((3000, 40)))
    V, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    for spectrum in (np.linspace(10, 1, 40), np.logspace(3, -3, 40), np.r_[np.linspace(5, 1, 30), np.zeros(10)]):
        Bt = ((U * spectrum) @ V.T).astype(np.float32)
        u, s, vt = small_svd(Bt)
        u_ref, s_ref, vt_ref = np.linalg.svd(Bt.T.astype(np.float64), full_matrices=False)
        np.testing.assert_allclose(s, s_ref, atol=1e-5 * s_ref[0])
        np.testing.assert_allclose((u * s) @ vt, Bt.T, atol=1e-5 * s_ref[0])  # B = u S vt
        np.testing.assert_allclose(vt @ vt.T, np.eye(40), atol=1e-6)
        top = int((spectrum > 1e-2 * spectrum[0]).sum())  # well-separated leading singular vectors
        signs = np.sign(np.sum(u[:, :top] * u_ref[:, :top], axis=0))
        np.testing.assert_allclose(u[:, :top] * signs, u_ref[:, :top], atol=1e-4)
        np.testing.assert_allclose(vt[:top] * signs[:, None], vt_ref[:top], atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocked_sparse_product_and_balanced_blocks(threads):
    """The product over row blocks equals scipy's, every row in exactly one block, and the blocks of a matrix
    whose row lengths fall steeply (as frequency-ordered co-occurrences do) carry about equal work."""
    import scipy.sparse as sp
    from fastemb.models.ppmi import matmat, row_blocks
    rng = np.random.default_rng(threads)
    n = 600
    lengths = np.maximum(1, (n / np.arange(1, n + 1)).astype(int))  # Zipf-like rows
    lengths[[7, 300]] = 0  # empty rows
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([np.sort(rng.choice(n, size=k, replace=False)) for k in lengths]).astype(np.int32)
    A = sp.csr_matrix((rng.standard_normal(indptr[-1]).astype(np.float32), indices, indptr), shape=(n, n))
    B = rng.standard_normal((n, 13)).astype(np.float32)
    import numba
    np.testing.assert_allclose(matmat(A, B, min(threads, numba.config.NUMBA_NUM_THREADS)), A @ B, rtol=1e-4,
                               atol=1e-4)
    blocks = row_blocks(A.indptr, threads)
    assert blocks[0] == 0 and blocks[-1] == n and (np.diff(blocks) > 0).all()
    work = np.add.reduceat(lengths + 1, blocks[:-1])
    per_thread = [w.sum() for w in np.array_split(work, threads)]  # each thread: a run of as many blocks
    assert max(per_thread) <= 1.25 * (work.sum() / threads) + lengths.max()


def test_parallel_record_shuffle_is_a_uniform_permutation():
    """GloVe's parallel shuffle (random buckets, then an inside-out Fisher-Yates per bucket) permutes the rows,
    does not depend on the thread count, and is uniform: every row lands at every position equally often and
    every ordering of three rows is equally likely (checked through small buckets, so the bucket path runs)."""
    import numba
    from fastemb.kernels import glove as K
    rng = np.random.default_rng(0)
    recs = rng.integers(0, 2 ** 32, (5000, 4), dtype=np.uint64).astype(np.uint32)
    runs = []
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(threads)
        r = recs.copy()
        K.shuffle_records(r, np.empty_like(r), 7, 3, 64)
        runs.append(r)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert (runs[0] == runs[-1]).all()
    assert not (runs[0] == recs).all()
    key = lambda a: np.sort(a.view(np.dtype((np.void, 16))).ravel())  # noqa: E731  rows as one value each
    assert (key(runs[0]) == key(recs)).all()
    n, trials = 6, 12000  # 6 rows in buckets of ~2 (3 buckets)
    pos = np.zeros((n, n))
    orders = {}
    r = np.arange(n, dtype=np.uint32).reshape(n, 1).repeat(4, 1)
    scratch = np.empty_like(r)
    for epoch in range(trials):
        x = r.copy()
        K.shuffle_records(x, scratch, 1, epoch, 2)
        pos[x[:, 0], np.arange(n)] += 1
        first = [int(v) for v in x[:, 0] if v < 3]
        orders[tuple(first)] = orders.get(tuple(first), 0) + 1
    np.testing.assert_allclose(pos / trials, 1 / n, atol=0.02)
    assert len(orders) == 6 and max(abs(c / trials - 1 / 6) for c in orders.values()) < 0.02
