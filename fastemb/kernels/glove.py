"""Numba kernels of GloVe: AdaGrad on the weighted least squares over the nonzeros of X, Hogwild over
chunks of a fresh shuffle each epoch (Pennington et al. 2014; the update follows GloVe's C code).

Memory layout for speed: the nonzeros are packed records (row, col, log x, f(x)) that are shuffled in
place, so an epoch streams them in order; a word's parameters are one row [vector, AdaGrad accumulators
of the vector, bias, bias accumulator], so an update touches two contiguous spans of memory."""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import stream as _stream
from fastemb.kernels.rng import xorshift as _next


@njit(cache=True, nogil=True)
def shuffle_records(records, seed, epoch):
    """Fisher-Yates over the rows of `records`, in place, from the stream (seed, epoch)."""
    state = _stream(seed, epoch)
    width = records.shape[1]
    for i in range(records.shape[0] - 1, 0, -1):
        state, r = _next(state)
        j = np.int64(r % np.uint64(i + 1))
        for c in range(width):
            t = records[i, c]
            records[i, c] = records[j, c]
            records[j, c] = t


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def glove_step(P, Pc, i, j, logx, weight, eta, clip, gi, gj):
    """One AdaGrad update for the pair (i, j); returns weight * diff^2. P and Pc may be the same array:
    the symmetric model. gi/gj are scratch rows: gradients first, then one loop per updated row, so
    that LLVM vectorises the loops (it cannot when one loop writes two rows that may alias)."""
    dim = (P.shape[1] - 2) // 2
    pi = P[i]
    pj = Pc[j]
    diff = pi[2 * dim] + pj[2 * dim] - logx
    for k in range(dim):
        diff += pi[k] * pj[k]
    fdiff = weight * diff
    loss = fdiff * diff
    fdiff *= eta
    for k in range(dim):
        gi[k] = min(max(fdiff * pj[k], -clip), clip)
        gj[k] = min(max(fdiff * pi[k], -clip), clip)
    # x ** -0.5 vectorises (rsqrt) where 1 / sqrt(x) did not: 2x on this loop. error_model="numpy" lets a
    # diverging run produce inf/NaN (caught after the epoch) instead of raising inside the kernel.
    for k in range(dim):
        pi[k] -= gi[k] * pi[dim + k] ** np.float32(-0.5)
        pi[dim + k] += gi[k] * gi[k]
    for k in range(dim):
        pj[k] -= gj[k] * pj[dim + k] ** np.float32(-0.5)
        pj[dim + k] += gj[k] * gj[k]
    pi[2 * dim] -= fdiff / np.sqrt(pi[2 * dim + 1])
    pj[2 * dim] -= fdiff / np.sqrt(pj[2 * dim + 1])
    pi[2 * dim + 1] += fdiff * fdiff
    pj[2 * dim + 1] += fdiff * fdiff
    return loss


@njit(parallel=True, cache=True, nogil=True, fastmath=True, error_model="numpy")
def glove_epoch(pairs, values, P, Pc, eta, clip, n_chunks, loss_out):
    """One pass over the records in their current order; chunk q is one thread's (Hogwild between chunks).
    pairs[:, 0:2] are (row, col); values is the same memory seen as float32, columns 2:4 (log x, f(x))."""
    n = pairs.shape[0]
    for q in prange(n_chunks):
        lo = q * n // n_chunks
        hi = (q + 1) * n // n_chunks
        loss = 0.0
        gi = np.empty(P.shape[1], np.float32)
        gj = np.empty(P.shape[1], np.float32)
        for t in range(lo, hi):
            loss += glove_step(P, Pc, pairs[t, 0], pairs[t, 1], values[t, 2], values[t, 3], eta, clip, gi, gj)
        loss_out[q] = loss
