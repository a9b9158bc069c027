"""Numba kernels of GloVe: AdaGrad on the weighted least squares over the nonzeros of X, Hogwild over
chunks of a fresh shuffle each epoch (Pennington et al. 2014; the update follows GloVe's C code).

Memory layout for speed: the nonzeros are packed records (row, col, log x, f(x)) that are shuffled in
place, so an epoch streams them in order; a word's parameters are one row [vector, AdaGrad accumulators
of the vector, bias, bias accumulator], so an update touches two contiguous spans of memory."""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import stream as _stream
from fastemb.kernels.rng import xorshift as _next


SHUFFLE_PIECES = 64       # the shuffle's input pieces, each with its own stream (not one per thread: the
                          # permutation at a seed does not depend on the thread count)
SHUFFLE_BUCKET_ROWS = 16384  # rows per bucket on average (~256 KB of records: a core's cache)


@njit(cache=True, nogil=True, inline="always")
def _bucket(r, n_buckets):
    """A bucket in [0, n_buckets) from the high 32 of 64 random bits (multiply-shift)."""
    return np.int64(((r >> np.uint64(32)) * np.uint64(n_buckets)) >> np.uint64(32))


@njit(parallel=True, cache=True, nogil=True)
def shuffle_records(records, scratch, seed, epoch, bucket_rows):
    """The rows of `records` in a uniformly random order, in place, in parallel (Sanders 1998): every row goes
    to a random bucket, the rows are scattered into their buckets in `scratch` (an array of the same shape),
    and each bucket is shuffled back into its span of `records` by the inside-out Fisher-Yates. Random buckets
    then a uniform shuffle of each give a uniform permutation; every stream comes from (seed, epoch) and a
    piece or bucket number, so the order does not depend on the thread count. A serial Fisher-Yates over the
    whole array (a cache miss per row) was GloVe's serial part: ~20% of an epoch on 2 threads."""
    n = records.shape[0]
    width = records.shape[1]
    n_buckets = min(max(n // bucket_rows, 1), 1 << 16)
    n_pieces = SHUFFLE_PIECES
    counter = np.int64(epoch) << np.int64(32)
    counts = np.zeros((n_pieces, n_buckets), np.int64)
    for p in prange(n_pieces):
        state = _stream(seed, counter + p)
        for _ in range(p * n // n_pieces, (p + 1) * n // n_pieces):
            state, r = _next(state)
            counts[p, _bucket(r, n_buckets)] += 1
    pos = np.empty((n_pieces, n_buckets), np.int64)
    starts = np.empty(n_buckets + 1, np.int64)
    o = 0
    for b in range(n_buckets):  # bucket-major: bucket b's rows from piece 0, then piece 1, ...
        starts[b] = o
        for p in range(n_pieces):
            pos[p, b] = o
            o += counts[p, b]
    starts[n_buckets] = o
    for p in prange(n_pieces):
        state = _stream(seed, counter + p)  # the same draws as the counting pass
        for i in range(p * n // n_pieces, (p + 1) * n // n_pieces):
            state, r = _next(state)
            b = _bucket(r, n_buckets)
            q = pos[p, b]
            pos[p, b] = q + 1
            for c in range(width):
                scratch[q, c] = records[i, c]
    for b in prange(n_buckets):
        state = _stream(seed, counter + n_pieces + b)
        lo = starts[b]
        for i in range(starts[b + 1] - lo):
            state, r = _next(state)
            j = _bucket(r, i + 1)  # from the high bits: the low bits of a fresh xorshift64* stream are biased
            for c in range(width):
                if j != i:
                    records[lo + i, c] = records[lo + j, c]
                records[lo + j, c] = scratch[lo + i, c]


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
