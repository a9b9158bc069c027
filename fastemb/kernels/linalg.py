"""Numba kernels of PPMI-SVD, parallel over blocks of rows: the PPMI of a CSR matrix, and sparse (CSR) times dense.

Rows of a co-occurrence or PPMI matrix are ordered by frequency, so their lengths fall by orders of magnitude
from the first to the last: `blocks` (row boundaries, ppmi.row_blocks) cut them into pieces of about the same
number of nonzeros, so that the threads (which take equal numbers of blocks) get equal work. Split by rows
instead, the first thread had most of the nonzeros and 2 threads were no faster than 1."""
import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def pmi_values(blocks, indptr, indices, data, log_row, log_col, log_total, log_shift, out, kept):
    """out[p] = log data[p] + log_total − log_row[i] − log_col[indices[p]] − log_shift for the nonzeros p of
    row i (the same float64 operations in the same order as the numpy formula), kept[i] = how many are > 0."""
    for b in prange(blocks.shape[0] - 1):
        for i in range(blocks[b], blocks[b + 1]):
            n = 0
            for p in range(indptr[i], indptr[i + 1]):
                v = math.log(data[p]) + log_total - log_row[i] - log_col[indices[p]] - log_shift
                out[p] = v
                if v > 0:
                    n += 1
            kept[i] = n


@njit(parallel=True, cache=True, nogil=True)
def keep_positive(blocks, indptr, indices, values, new_indptr, new_indices, new_data):
    """The entries > 0 of a CSR matrix (indptr, indices, values) into new_indptr's rows, as float32."""
    for b in prange(blocks.shape[0] - 1):
        for i in range(blocks[b], blocks[b + 1]):
            q = new_indptr[i]
            for p in range(indptr[i], indptr[i + 1]):
                v = values[p]
                if v > 0:
                    new_indices[q] = indices[p]
                    new_data[q] = np.float32(v)
                    q += 1


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def csr_matmat(blocks, indptr, indices, data, B, out):
    """out = A @ B for A in CSR form; rows of out are computed independently (no races)."""
    k = B.shape[1]
    for b in prange(blocks.shape[0] - 1):
        for i in range(blocks[b], blocks[b + 1]):
            o = out[i]
            for c in range(k):
                o[c] = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                row = B[indices[p]]
                for c in range(k):
                    o[c] += v * row[c]
