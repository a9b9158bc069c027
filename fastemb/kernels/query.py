"""Numba kernel for top-k selection over rows of a similarity matrix (argpartition is the bottleneck of
batched queries: a k-slot insertion list per row touches each score once)."""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def topk_rows(S, k):
    """(indices, values) of the k largest entries of every row, in decreasing order; -inf entries are
    never returned (their slots stay -1 / -inf)."""
    n, m = S.shape
    idx = np.full((n, k), -1, np.int64)
    val = np.full((n, k), -np.inf, np.float32)
    for r in prange(n):
        row = S[r]
        vi = val[r]
        ii = idx[r]
        floor = -np.inf
        for j in range(m):
            s = row[j]
            if s > floor:
                p = k - 1
                while p > 0 and vi[p - 1] < s:
                    vi[p] = vi[p - 1]
                    ii[p] = ii[p - 1]
                    p -= 1
                vi[p] = s
                ii[p] = j
                floor = vi[k - 1]
    return idx, val
