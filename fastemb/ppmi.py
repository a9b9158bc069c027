"""PPMI-SVD (Levy, Goldberg & Dagan 2015): shifted positive PMI with context-distribution smoothing,
kept sparse, factored by a truncated SVD (ARPACK or a randomized range finder)."""
from __future__ import annotations

import time

import numpy as np

from . import _linalg_kernels as K
from .errors import FastembError
from .parallel import numba_threads
from .progress import Progress

SVD_METHODS = ("auto", "arpack", "randomized")
# Past this many rows the randomized range finder is used by default: it measured several times faster
# than ARPACK at equal similarity/analogy scores on the benchmark corpus (see README, PPMI-SVD).
RANDOMIZED_ABOVE = 5_000


def ppmi_matrix(X, cds=0.75, neg=1.0):
    """max(0, log(X_wc · Σ_c f(c)^cds / (f(w) · f(c)^cds)) − log neg) as float32 CSR, zeros dropped.
    f(w) are the row sums and f(c) the column sums of X."""
    import scipy.sparse as sp
    if neg <= 0:
        raise FastembError(f"--neg must be positive (got {neg})")
    X = sp.csr_matrix(X, dtype=np.float64)
    X.eliminate_zeros()
    row_sum = np.asarray(X.sum(axis=1)).ravel()
    col_sum = np.asarray(X.sum(axis=0)).ravel()
    col_smooth = col_sum ** cds
    log_total = np.log(col_smooth.sum())
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    with np.errstate(divide="ignore"):
        pmi = (np.log(X.data) + log_total - np.log(row_sum[rows]) - np.log(col_smooth[X.indices])
               - np.log(neg))
    keep = pmi > 0
    counts = np.bincount(rows[keep], minlength=X.shape[0])
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((pmi[keep].astype(np.float32), X.indices[keep].astype(np.int32), indptr),
                         shape=X.shape)


def _matmat(A, B, threads):
    out = np.empty((A.shape[0], B.shape[1]), np.float32)
    with numba_threads(threads):
        K.csr_matmat(A.indptr, A.indices, A.data, np.ascontiguousarray(B, dtype=np.float32), out)
    return out


def randomized_svd(M, k, *, n_iter=4, oversample=10, seed=1, threads=1):
    """Halko, Martinsson & Tropp (2011): range finder with power iterations, QR between them."""
    import scipy.sparse as sp
    M = sp.csr_matrix(M, dtype=np.float32)
    Mt = M.T.tocsr()
    rng = np.random.default_rng(seed)
    width = min(k + oversample, min(M.shape))
    Q = np.linalg.qr(_matmat(M, rng.standard_normal((M.shape[1], width), dtype=np.float32), threads))[0]
    for _ in range(n_iter):
        Z = np.linalg.qr(_matmat(Mt, Q, threads))[0]
        Q = np.linalg.qr(_matmat(M, Z, threads))[0]
    Bt = _matmat(Mt, Q, threads)  # (Qᵀ M)ᵀ
    u_b, s, vt = np.linalg.svd(Bt.T.astype(np.float64), full_matrices=False)
    U = (Q.astype(np.float64) @ u_b)[:, :k]
    return U.astype(np.float32), s[:k].astype(np.float32), vt[:k].astype(np.float32)


def arpack_svd(M, k, seed=1):
    from scipy.sparse.linalg import svds
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(M.shape))
    U, s, vt = svds(M.astype(np.float64), k=k, v0=v0)
    order = np.argsort(-s)
    return U[:, order].astype(np.float32), s[order].astype(np.float32), vt[order].astype(np.float32)


def truncated_svd(M, k, method="auto", seed=1, threads=1):
    if method not in SVD_METHODS:
        raise FastembError(f"--svd must be one of {', '.join(SVD_METHODS)} (got {method!r})")
    if k >= min(M.shape):
        raise FastembError(f"--dim {k} must be smaller than the vocabulary ({min(M.shape)} words)")
    if method == "auto":
        method = "randomized" if min(M.shape) > RANDOMIZED_ABOVE else "arpack"
    U, s, vt = arpack_svd(M, k, seed) if method == "arpack" else randomized_svd(M, k, seed=seed, threads=threads)
    # a deterministic sign: the largest-magnitude entry of each left singular vector is positive
    signs = np.sign(U[np.abs(U).argmax(axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1
    return U * signs, s, vt * signs[:, None], method


def weighted_vectors(U, s, vt, eig=0.5):
    """Word vectors U·Σ^p and context vectors V·Σ^p (eigenvalue weighting p)."""
    scale = s.astype(np.float64) ** eig
    return (U * scale).astype(np.float32), (vt.T * scale).astype(np.float32)


def train_ppmi_svd(X, *, dim, cds, neg, eig, svd="auto", seed=1, threads=1, quiet=False):
    progress = Progress("ppmi-svd", None, quiet=quiet)
    t0 = time.perf_counter()
    M = ppmi_matrix(X, cds=cds, neg=neg)
    t1 = time.perf_counter()
    progress.log(f"ppmi: {M.nnz:,} positive entries of {X.nnz:,} ({t1 - t0:.1f}s)")
    if M.nnz == 0:
        raise FastembError("no positive PMI entry: the corpus is too small (or --neg too large)")
    U, s, vt, method = truncated_svd(M, dim, svd, seed, threads)
    t2 = time.perf_counter()
    progress.log(f"svd ({method}): {dim} singular values, largest {s[0]:.2f}, smallest {s[-1]:.2f} ({t2 - t1:.1f}s)")
    W, C = weighted_vectors(U, s, vt, eig)
    return W, C, {"u": U, "s": s, "vt": vt}, {"ppmi_nnz": int(M.nnz), "svd_method": method,
                                             "train_seconds": t2 - t0}
