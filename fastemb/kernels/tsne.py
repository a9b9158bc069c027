"""Numba kernels of exact t-SNE (van der Maaten & Hinton 2008): perplexity calibration and the
gradient of KL(P || Q) with the Student-t kernel, O(n²) per iteration, rows in parallel."""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def conditional_p(D, perplexity, tol, max_iter):
    """Row-wise P(j|i) from squared distances D, each row's Gaussian bandwidth found by bisection so that
    its entropy is log(perplexity)."""
    n = D.shape[0]
    P = np.zeros((n, n))
    conditional_p_rows(D, perplexity, tol, max_iter, 0, n, P)
    return P


@njit(parallel=True, cache=True, nogil=True)
def conditional_p_rows(D, perplexity, tol, max_iter, r0, r1, P):
    """Rows r0..r1-1 of `conditional_p` into P (zeros there before): the caller sizes the calls by work."""
    n = D.shape[0]
    target = np.log(perplexity)
    for i in prange(r0, r1):
        beta, lo, hi = 1.0, 0.0, np.inf
        for _ in range(max_iter):
            total = 0.0
            weighted = 0.0
            for j in range(n):
                if j != i:
                    p = np.exp(-D[i, j] * beta)
                    P[i, j] = p
                    total += p
                    weighted += D[i, j] * p
            if total == 0.0:
                total = 1e-300
            entropy = np.log(total) + beta * weighted / total
            if abs(entropy - target) < tol:
                break
            if entropy > target:
                lo = beta
                beta = beta * 2.0 if hi == np.inf else (beta + hi) / 2.0
            else:
                hi = beta
                beta = (beta + lo) / 2.0
        for j in range(n):
            P[i, j] /= total


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def kl_gradient(P, Y, grad):
    """grad_i = 4 Σ_j (p_ij − q_ij)(y_i − y_j)/(1 + |y_i − y_j|²); returns KL(P||Q)."""
    n, dim = Y.shape
    W = np.empty((n, n))
    row_sums = np.zeros(n)
    for i in prange(n):
        s = 0.0
        for j in range(n):
            if i == j:
                W[i, j] = 0.0
                continue
            d = 0.0
            for k in range(dim):
                t = Y[i, k] - Y[j, k]
                d += t * t
            w = 1.0 / (1.0 + d)
            W[i, j] = w
            s += w
        row_sums[i] = s
    Z = row_sums.sum()
    kl = np.zeros(n)
    for i in prange(n):
        for k in range(dim):
            grad[i, k] = 0.0
        for j in range(n):
            if i == j:
                continue
            q = W[i, j] / Z
            m = 4.0 * (P[i, j] - q) * W[i, j]
            for k in range(dim):
                grad[i, k] += m * (Y[i, k] - Y[j, k])
            if P[i, j] > 0:
                kl[i] += P[i, j] * np.log(P[i, j] / max(q, 1e-300))
    return kl.sum()
