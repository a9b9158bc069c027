"""PPMI-SVD (Levy, Goldberg & Dagan 2015): shifted positive PMI with context-distribution smoothing,
kept sparse, factored by a truncated SVD (ARPACK or a randomized range finder)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fastemb.cooc import CoocOptions
from fastemb.errors import FastembError, OptionError, param
from fastemb.options import ADD_CONTEXTS, DIM, Options, Spec, above_at_most, between, nested
from fastemb.parallel import numba_threads
from fastemb.progress import log
from fastemb.registry import Algorithm
from fastemb.seeding import generator

SVD_METHODS = ("auto", "arpack", "randomized")
# Past this many rows the randomized range finder is used by default: it measured several times faster
# than ARPACK at equal similarity/analogy scores on the benchmark corpus (see README, PPMI-SVD).
RANDOMIZED_ABOVE = 5_000


@dataclass(frozen=True)
class PPMIOptions(Options):
    """Levy, Goldberg & Dagan (2015): shifted positive PMI with context-distribution smoothing, truncated SVD."""
    dim: int = DIM(100)
    cds: float = Spec(float, "Context-distribution smoothing: context counts to this power.",
                      check=above_at_most(0, 4))(0.75)
    shift: float = Spec(float, "Shift PMI by log(k) (k = 1: no shift; SGNS with k negatives ~ shift k).",
                        check=above_at_most(0, 1e6))(1.0)
    eig: float = Spec(float, "Eigenvalue weighting p: vectors are U·S^p.", check=between(0, 4))(0.5)
    svd: str = Spec(str, "SVD solver (auto: randomized above 5,000 words).", choices=SVD_METHODS)("auto")
    add_contexts: bool = ADD_CONTEXTS(False)
    cooc: CoocOptions = nested(lambda: CoocOptions(window=5, weighting="dynamic", sample=1e-4))


def memory_bytes(options, n_words, nnz=0) -> int:
    """The PPMI copy of the nonzeros and the factors."""
    return 3 * n_words * (options.dim + 10) * 4 + 12 * nnz


def _kernels():
    from fastemb.kernels import linalg as _linalg_kernels
    return _linalg_kernels


def smoothed_columns(col_sum, cds):
    """(f(c)^cds for every context c, log Σ_c f(c)^cds): the context-distribution smoothing of PMI."""
    col_smooth = np.asarray(col_sum, np.float64) ** cds
    return col_smooth, float(np.log(col_smooth.sum()))


def ppmi_rows(X, col_smooth, log_total, shift=1.0, threads=1):
    """PPMI of the rows of X given the whole matrix's smoothed column sums (`smoothed_columns`): the same
    formula for the whole matrix (ppmi_matrix) and for a row block on a Dask worker. Computed by Numba
    kernels on `threads` threads, row by row."""
    import scipy.sparse as sp
    if shift <= 0:
        raise FastembError(f"{param('shift')} must be positive (got {shift})")
    X = sp.csr_matrix(X, dtype=np.float64)
    row_sum = np.asarray(X.sum(axis=1)).ravel()
    k = _kernels()
    indptr = X.indptr.astype(np.int64)
    indices = X.indices.astype(np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_row, log_col = np.log(row_sum), np.log(np.asarray(col_smooth, np.float64))
    pmi = np.empty(X.nnz, np.float64)
    kept = np.empty(X.shape[0], np.int64)
    new_indptr = np.zeros(X.shape[0] + 1, np.int64)
    blocks = row_blocks(indptr, threads)
    with numba_threads(threads):
        k.pmi_values(blocks, indptr, indices, X.data, log_row, log_col, float(log_total), float(np.log(shift)), pmi,
                     kept)
        np.cumsum(kept, out=new_indptr[1:])
        new_indices = np.empty(new_indptr[-1], np.int32)
        new_data = np.empty(new_indptr[-1], np.float32)
        k.keep_positive(blocks, indptr, indices, pmi, new_indptr, new_indices, new_data)
    return sp.csr_matrix((new_data, new_indices, new_indptr), shape=X.shape)


def ppmi_matrix(X, cds=0.75, shift=1.0, threads=1):
    """max(0, log(X_wc · Σ_c f(c)^cds / (f(w) · f(c)^cds)) − log shift) as float32 CSR, zeros dropped.
    f(w) are the row sums and f(c) the column sums of X."""
    import scipy.sparse as sp
    X = sp.csr_matrix(X, dtype=np.float64)
    col_smooth, log_total = smoothed_columns(np.asarray(X.sum(axis=0)).ravel(), cds)
    return ppmi_rows(X, col_smooth, log_total, shift, threads)


def check_ppmi(nnz):
    if nnz == 0:
        raise FastembError(f"no positive PMI entry: the corpus is too small (or {param('shift')} too large)")


def check_rank(k, n):
    if k >= n:
        raise FastembError(f"{param('dim')} {k} must be smaller than the vocabulary ({n} words)")


def row_blocks(indptr, threads, per_thread=16):
    """Row boundaries cutting a CSR matrix into threads x per_thread blocks of about equal work (nonzeros +
    rows): the kernels' threads take equal numbers of blocks (kernels/linalg.py)."""
    indptr = np.asarray(indptr, np.int64)
    n_rows = indptr.shape[0] - 1
    n = max(1, min(n_rows, threads * per_thread))
    work = indptr + np.arange(n_rows + 1)  # cumulative nonzeros + rows up to each row
    cuts = np.searchsorted(work, np.linspace(0, work[-1], n + 1)[1:-1])
    return np.unique(np.concatenate([[0], cuts, [n_rows]])).astype(np.int64)


def matmat(A, B, threads):
    """A (float32 CSR) @ B (dense) as float32 with the parallel Numba kernel on `threads` threads."""
    out = np.empty((A.shape[0], B.shape[1]), np.float32)
    with numba_threads(threads):
        _kernels().csr_matmat(row_blocks(A.indptr, threads), A.indptr, A.indices, A.data,
                              np.ascontiguousarray(B, dtype=np.float32), out)
    return out


def gaussian_start(n_cols, width, seed):
    """The range finder's random start: the same for the local and the blockwise (Dask) solver."""
    return generator(seed).standard_normal((n_cols, width), dtype=np.float32)


def fix_signs(U, vt):
    """A deterministic sign for each singular pair: the largest-magnitude entry of each left vector positive."""
    signs = np.sign(U[np.abs(U).argmax(axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1
    return U * signs, vt * signs[:, None]


def cholesky_qr2(Y):
    """Y = Q R (Q float64 with orthonormal columns, R upper triangular) for a tall, skinny Y by CholeskyQR2
    (Fukaya et al. 2014): R from the Cholesky factor of the float64 Gram matrix YᵀY, Y ← Y R⁻¹, done twice.
    Two matrix products per step, which use every BLAS thread, where Householder QR's panel factorisation
    barely scales. Raises numpy.linalg.LinAlgError when the Gram matrix is not numerically positive definite
    (Y nearly rank deficient). numpy's linear algebra only: scipy's own BLAS ran these small products slower on 2
    threads than on 1 (numpy: 1.7x faster on 2)."""
    Q = np.asarray(Y, np.float64)
    R = np.eye(Q.shape[1])
    for _ in range(2):
        step = np.linalg.cholesky(Q.T @ Q).T  # upper triangular: QᵀQ = stepᵀ step
        Q = Q @ np.linalg.inv(step)
        R = step @ R
    return Q, R


def orthonormal_columns(Y):
    """An orthonormal basis (float32) of the columns of a tall, skinny Y: CholeskyQR2 (it was Householder QR,
    most of the randomized SVD's time), or Householder QR when Y is nearly rank deficient."""
    try:
        return cholesky_qr2(Y)[0].astype(np.float32)
    except np.linalg.LinAlgError:
        return np.linalg.qr(np.asarray(Y, np.float32))[0]


def small_svd(Bt):
    """The SVD of B = Btᵀ (wide: width x n) as (u, s, vt) through the QR of the tall Bt = Q R: B = Rᵀ Qᵀ, so
    the SVD of the small Rᵀ = u S w gives B = u S (w Qᵀ). LAPACK's SVD of the wide matrix itself took ~5 s
    on one thread for 110 x 47k (the benchmark corpus) and does not scale; this is two products and a
    110 x 110 SVD."""
    try:
        Q, R = cholesky_qr2(Bt)
    except np.linalg.LinAlgError:
        Q, R = np.linalg.qr(np.asarray(Bt, np.float64))
    u, s, w = np.linalg.svd(R.T)
    return u, s, w @ Q.T


def randomized_svd(M, k, *, n_iter=4, oversample=10, seed=1, threads=1):
    """Halko, Martinsson & Tropp (2011): range finder with power iterations, QR between them."""
    import scipy.sparse as sp
    M = sp.csr_matrix(M, dtype=np.float32)
    Mt = M.T.tocsr()
    from fastemb.parallel import blas_threads
    width = min(k + oversample, min(M.shape))
    with blas_threads(threads):  # --threads bounds numpy's BLAS too (between the Numba products, never beside)
        Q = orthonormal_columns(matmat(M, gaussian_start(M.shape[1], width, seed), threads))
        for _ in range(n_iter):
            Z = orthonormal_columns(matmat(Mt, Q, threads))
            Q = orthonormal_columns(matmat(M, Z, threads))
        Bt = matmat(Mt, Q, threads)  # (Qᵀ M)ᵀ
        u_b, s, vt = small_svd(Bt)
        U = (Q.astype(np.float64) @ u_b)[:, :k]
    return U.astype(np.float32), s[:k].astype(np.float32), vt[:k].astype(np.float32)


def arpack_svd(M, k, seed=1):
    from scipy.sparse.linalg import svds
    rng = generator(seed)
    v0 = rng.standard_normal(min(M.shape))
    U, s, vt = svds(M.astype(np.float64), k=k, v0=v0)
    order = np.argsort(-s)
    return U[:, order].astype(np.float32), s[order].astype(np.float32), vt[order].astype(np.float32)


def truncated_svd(M, k, method="auto", seed=1, threads=1):
    if method not in SVD_METHODS:
        raise FastembError(f"{param('svd')} must be one of {', '.join(SVD_METHODS)} (got {method!r})")
    check_rank(k, min(M.shape))
    if method == "auto":
        method = "randomized" if min(M.shape) > RANDOMIZED_ABOVE else "arpack"
    U, s, vt = arpack_svd(M, k, seed) if method == "arpack" else randomized_svd(M, k, seed=seed, threads=threads)
    U, vt = fix_signs(U, vt)
    return U, s, vt, method


def weighted_vectors(U, s, vt, eig=0.5):
    """Word vectors U·Σ^p and context vectors V·Σ^p (eigenvalue weighting p)."""
    scale = s.astype(np.float64) ** eig
    return (U * scale).astype(np.float32), (vt.T * scale).astype(np.float32)


class PPMITrainer:
    """One shot: PPMI matrix, truncated SVD, weighted factors (no epochs, nothing to checkpoint)."""

    factors_on_cluster = True  # given a Dask client, the matrix stays on the cluster: data.factorize factors it

    @staticmethod
    def check_cluster(options):
        if options.svd == "arpack":
            raise OptionError("svd", "arpack runs on one machine; on a Dask cluster the SVD is randomized "
                                     "(blockwise, Halko et al.)")

    def __init__(self, options: PPMIOptions, data, *, seed, threads, state=None, arrays=None):
        self.o, self.X, self.seed, self.threads = options, data.matrix, seed, threads
        self.factorize = getattr(data, "factorize", None)  # (dim, cds, shift, seed) -> (U, s, vt) elsewhere

    def fit(self):
        o = self.o
        t0 = time.perf_counter()
        if self.factorize is not None:  # the matrix is on a Dask cluster: factored there, block by block
            U, s, vt = self.factorize(dim=o.dim, cds=o.cds, shift=o.shift, seed=self.seed)
            method, nnz = "randomized (dask)", None
        else:
            M = ppmi_matrix(self.X, cds=o.cds, shift=o.shift, threads=self.threads)
            t1 = time.perf_counter()
            log.info(f"ppmi: {M.nnz:,} positive entries of {self.X.nnz:,} ({t1 - t0:.1f}s)")
            check_ppmi(M.nnz)
            U, s, vt, method = truncated_svd(M, o.dim, o.svd, self.seed, self.threads)
            nnz = int(M.nnz)
        t2 = time.perf_counter()
        log.info(f"svd ({method}): {o.dim} singular values, largest {s[0]:.2f}, smallest {s[-1]:.2f} "
                 f"({t2 - t0:.1f}s)")
        W, C = weighted_vectors(U, s, vt, o.eig)
        attrs = {"svd": method, "train_seconds": t2 - t0}
        if nnz is not None:
            attrs["ppmi_nnz"] = nnz
        self._result = {"vectors": W + C if o.add_contexts else W, "context_vectors": C,
                        "svd": {"u": U, "s": s, "vt": vt}, "attrs": attrs}

    def result(self) -> dict:
        return self._result


ALGORITHMS = (
    Algorithm("ppmi-svd", PPMIOptions, PPMITrainer, memory_bytes, input="cooc", iterative=False,
              summary="PPMI matrix factored by a truncated SVD",
              output_bytes=lambda o, n: 4 * n * o.dim * 4 + 32 * n),  # vectors, contexts and the raw factors
)
