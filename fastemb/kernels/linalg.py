"""Numba kernels for the randomized SVD: sparse (CSR) times dense, parallel over rows."""
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def csr_matmat(indptr, indices, data, B, out):
    """out = A @ B for A in CSR form; rows of out are computed independently (no races)."""
    n_rows = indptr.shape[0] - 1
    k = B.shape[1]
    for i in prange(n_rows):
        o = out[i]
        for c in range(k):
            o[c] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            row = B[indices[p]]
            for c in range(k):
                o[c] += v * row[c]
