"""CUDA kernels of skip-gram and CBOW with negative sampling (numba.cuda; `fastemb train --device cuda`).

Layout (after the fastest published GPU word2vec kernels: one thread block per run of a sentence, shared
negatives per window as in HogBatch, Ji et al. 2016, dimensions across the lanes):

* The host subsamples a block of the corpus and cuts its sentences into *spans* of at most `span` tokens.
  Thread block b trains the contiguous spans [b·n/G, (b+1)·n/G) one after another, windows in corpus order,
  so blocks running at the same time work on text far apart ("spread positions": bursty text puts the
  same rare-but-local words in neighbouring sentences).
* For a span, the input rows (syn0) of every position it and its windows touch (the span ± window, inside
  its sentence) are loaded into shared memory once (and their values as loaded into global scratch); repeated words share one cached row, so the block sees
  its own updates exactly as the single-threaded CPU kernel does. The windows update the cached rows; at the
  end of the span each row's *change* is added to global memory once, with atomic adds (per-block
  accumulation: no lost updates, one global write per row per span instead of one per window).
* Per window the centre word and `negative` draws (shared by the window's contexts) are the output rows:
  loaded into shared memory, scored by one warp per (context, output) pair with the row's dimensions across
  the lanes and a warp reduction, then updated by one thread per dimension; the output rows' changes go to
  global memory with atomic adds at once (other blocks see them at their next window).
* Random numbers are counter based (a splitmix64 hash of the seed and the token's position), so which
  negatives a window draws and its reduced window do not depend on the order in which blocks run.

The dot product of two rows is a small device function: on a GPU the lanes of a warp sum strided dimensions
and a butterfly of `shfl_xor_sync` adds them up; under Numba's CUDA simulator (which has no shuffles) every
lane sums the whole row. Barriers are only reached by every thread of the block (loop bounds and branches
around them are the same in every thread), and a warp's lanes always work on the same pair.

The kernels are built per shape (dim, window, negative, span, warps, cbow, cbow_mean) by `build`, because
shared arrays need compile-time sizes. `hash_bits` is the host (numpy) twin of the device hash: tests and
the host use it to know the draws a kernel makes.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import cuda  # a module global: the simulator swaps it for its own in the kernels' globals
from numba import float32, float64, int32, int64, uint64

MAX_EXP = 6.0
TABLE_SIZE = 1024
SHARED_BYTES = 48 * 1024     # static shared memory a block may use
MAX_SPAN = 64                # tokens per span at most (then shared memory sets it)

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_SLOTS = np.uint64(1024)     # draws per position: slot 0 the reduced window, 1.. the negatives
_LOW32 = np.uint64(0xFFFFFFFF)


def _mix(x):
    """splitmix64's output function of x + golden ratio (numpy uint64 arrays or device uint64)."""
    z = x + _GOLD
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def hash_bits(seed, pos, slot):
    """64 random bits for draw `slot` at corpus position `pos` (host twin of the device function)."""
    with np.errstate(over="ignore"):
        p = np.asarray(pos).astype(np.uint64) * _SLOTS + np.asarray(slot).astype(np.uint64)
        return _mix(np.uint64(seed) ^ _mix(p))


def epoch_seed(seed, epoch) -> int:
    """The counter RNG's key for one epoch of a run."""
    with np.errstate(over="ignore"):
        return int(_mix(np.uint64(seed) * _M1 + np.uint64(epoch)))


def alias_draw(bits, alias_prob, alias_idx):
    """Host twin of the device alias draw (the CPU kernels' formula)."""
    bits = np.asarray(bits, np.uint64)
    n = np.uint64(alias_prob.shape[0])
    i = ((bits >> _S32) % n).astype(np.int64)
    frac = (bits & _LOW32).astype(np.float32) * np.float32(1.0 / 4294967296.0)
    return np.where(frac < alias_prob[i], i, alias_idx[i])


def shared_bytes(dim, window, negative, span, warps) -> int:
    """Shared memory of one block for these shapes."""
    n_cache = span + 2 * window
    n_out = negative + 1
    floats = n_cache * dim + n_out * dim + 2 * window * n_out + dim
    return 4 * floats + 4 * n_cache


def choose_span(dim, window, negative, warps=4) -> int:
    """The longest span (≤ MAX_SPAN) whose cache fits in shared memory; 0 when not even one token fits."""
    for span in range(MAX_SPAN, 0, -1):
        if shared_bytes(dim, window, negative, span, warps) <= SHARED_BYTES:
            return span
    return 0


def simulator() -> bool:
    """Is numba.cuda Numba's CUDA simulator? Asked of the module imported (NUMBA_ENABLE_CUDASIM decided that
    at its import), not of numba's config, which the compiler reloads from the environment."""
    return "simulator" in getattr(cuda.jit, "__module__", "")


@functools.lru_cache(maxsize=None)
def build(dim, window, negative, span, warps, cbow, cbow_mean, simulated=None):
    """The training kernel for these shapes: kernel[grid, 32·warps](ids, span_lo, span_hi, sent_lo, sent_hi,
    span_alpha, n_spans, pos_base, seed, syn0, syn1, alias_prob, alias_idx, sig, nls, loss_out, pairs_out,
    first), where `first` is float32 scratch of shape (grid, span + 2·window, dim) in global memory: each
    block's cached rows as loaded, from which their change is computed at the span's end (kept out of
    shared memory, which then holds twice the rows)."""
    if simulated is None:
        simulated = simulator()
    DIM, W, NO, SPAN, WARPS = int(dim), int(window), int(negative) + 1, int(span), int(warps)
    TPB = 32 * WARPS
    NCACHE = SPAN + 2 * W
    MAXC = 2 * W
    CBOW, MEAN = bool(cbow), bool(cbow_mean)

    mix = cuda.jit(device=True, inline=True)(_mix)

    @cuda.jit(device=True, inline=True)
    def bits_at(seed, pos, slot):
        return mix(seed ^ mix(uint64(pos) * _SLOTS + uint64(slot)))

    if simulated:
        @cuda.jit(device=True)
        def row_dot(a, ia, b, ib, lane):
            """a[ia]·b[ib]: every lane sums the whole row (the simulator has no shuffles)."""
            total = float32(0.0)
            for k in range(DIM):
                total += a[ia, k] * b[ib, k]
            return total
    else:
        @cuda.jit(device=True, inline=True)
        def row_dot(a, ia, b, ib, lane):
            """a[ia]·b[ib]: the lanes sum strided dimensions, a butterfly of shuffles adds them up (every lane
            gets the total). The whole warp must call it."""
            x = float32(0.0)
            for k in range(lane, DIM, 32):
                x += a[ia, k] * b[ib, k]
            x += cuda.shfl_xor_sync(0xFFFFFFFF, x, 16)
            x += cuda.shfl_xor_sync(0xFFFFFFFF, x, 8)
            x += cuda.shfl_xor_sync(0xFFFFFFFF, x, 4)
            x += cuda.shfl_xor_sync(0xFFFFFFFF, x, 2)
            x += cuda.shfl_xor_sync(0xFFFFFFFF, x, 1)
            return x

    @cuda.jit(device=True, inline=True)
    def sig_loss(f, positive, sig, nls):
        """(sigmoid(f), the pair's negative log-likelihood) by table lookup, as the CPU kernels."""
        if f > MAX_EXP:
            s = float32(1.0)
            loss = float32(0.0) if positive else f
        elif f < -MAX_EXP:
            s = float32(0.0)
            loss = -f if positive else float32(0.0)
        else:
            k = int32((f + MAX_EXP) * (TABLE_SIZE / (2.0 * MAX_EXP)))
            if k >= TABLE_SIZE:
                k = TABLE_SIZE - 1
            s = sig[k]
            loss = nls[k] if positive else nls[k] + f
        return s, loss

    @cuda.jit(device=True, inline=True)
    def draw(bits, alias_prob, alias_idx):
        n = alias_prob.shape[0]
        i = int64((bits >> _S32) % uint64(n))
        frac = float32(bits & _LOW32) * float32(1.0 / 4294967296.0)
        return i if frac < alias_prob[i] else alias_idx[i]

    @cuda.jit
    def train(ids, span_lo, span_hi, sent_lo, sent_hi, span_alpha, n_spans, pos_base, seed, syn0, syn1,
              alias_prob, alias_idx, sig, nls, loss_out, pairs_out, first):
        cache = cuda.shared.array((NCACHE, DIM), float32)   # current values of the span's input rows
        canon = cuda.shared.array(NCACHE, int32)             # the slot that holds this position's word
        rows = cuda.shared.array((NO, DIM), float32)         # the window's output rows
        grad = cuda.shared.array((MAXC, NO), float32)        # g of each (context, output) pair
        hidden = cuda.shared.array((1, DIM), float32)        # CBOW's hidden layer
        out = cuda.local.array(NO, int64)

        tid = cuda.threadIdx.x
        warp = tid // 32
        lane = tid % 32
        b = cuda.blockIdx.x
        G = cuda.gridDim.x
        first_span = (b * n_spans) // G
        last_span = ((b + 1) * n_spans) // G
        loss = float64(0.0)
        pairs = int64(0)
        for sp in range(first_span, last_span):
            s0 = span_lo[sp]
            s1 = span_hi[sp]
            lo_sent = sent_lo[sp]
            hi_sent = sent_hi[sp]
            alpha = span_alpha[sp]
            c_lo = max(lo_sent, s0 - W)
            c_hi = min(hi_sent, s1 + W)
            n_cache = c_hi - c_lo
            for t in range(tid, n_cache * DIM, TPB):   # load the span's input rows
                u = t // DIM
                k = t - u * DIM
                v = syn0[ids[c_lo + u], k]
                cache[u, k] = v
                first[b, u, k] = v   # as loaded: their change is written back
            for u in range(tid, n_cache, TPB):         # repeated words share the first slot
                w = ids[c_lo + u]
                j = 0
                while ids[c_lo + j] != w:
                    j += 1
                canon[u] = j
            cuda.syncthreads()
            for p in range(s0, s1):
                word = ids[p]
                pos = pos_base + p
                reduced = int64(bits_at(seed, pos, 0) % uint64(W))
                lo = max(lo_sent, p - W + reduced)
                hi = min(hi_sent, p + W - reduced + 1)
                nc = hi - lo - 1
                if nc <= 0:
                    continue
                out[0] = word
                n_out = 1
                for i in range(1, NO):
                    t = draw(bits_at(seed, pos, i), alias_prob, alias_idx)
                    if t != word:
                        out[n_out] = t
                        n_out += 1
                for t in range(tid, n_out * DIM, TPB):
                    o = t // DIM
                    k = t - o * DIM
                    rows[o, k] = syn1[out[o], k]
                if CBOW:
                    for k in range(tid, DIM, TPB):
                        h = float32(0.0)
                        for c in range(nc):
                            j = lo + c + (1 if lo + c >= p else 0)
                            h += cache[canon[j - c_lo], k]
                        if MEAN:
                            h = h / float32(nc)
                        hidden[0, k] = h
                cuda.syncthreads()
                n_pairs = n_out if CBOW else nc * n_out
                for q in range(warp, n_pairs, WARPS):   # one warp per (context, output) pair
                    c = q // n_out
                    o = q - c * n_out
                    if CBOW:
                        f = row_dot(hidden, 0, rows, o, lane)
                    else:
                        j = lo + c + (1 if lo + c >= p else 0)
                        f = row_dot(cache, canon[j - c_lo], rows, o, lane)
                    if lane == 0:
                        s, pair_loss = sig_loss(f, o == 0, sig, nls)
                        label = float32(1.0) if o == 0 else float32(0.0)
                        grad[c, o] = (label - s) * alpha
                        loss += pair_loss
                cuda.syncthreads()
                for k in range(tid, DIM, TPB):   # one thread per dimension: no two threads share a value
                    if CBOW:
                        e = float32(0.0)
                        hk = hidden[0, k]
                        for o in range(n_out):
                            g = grad[0, o]
                            e += g * rows[o, k]
                            cuda.atomic.add(syn1, (out[o], k), g * hk)
                        for c in range(nc):
                            j = lo + c + (1 if lo + c >= p else 0)
                            cache[canon[j - c_lo], k] += e
                    else:
                        for o in range(n_out):   # output rows: from the context values before the update
                            e = float32(0.0)
                            for c in range(nc):
                                j = lo + c + (1 if lo + c >= p else 0)
                                e += grad[c, o] * cache[canon[j - c_lo], k]
                            cuda.atomic.add(syn1, (out[o], k), e)
                        for c in range(nc):
                            j = lo + c + (1 if lo + c >= p else 0)
                            e = float32(0.0)
                            for o in range(n_out):
                                e += grad[c, o] * rows[o, k]
                            cache[canon[j - c_lo], k] += e
                if tid == 0:
                    pairs += 1 if CBOW else nc
                cuda.syncthreads()
            for t in range(tid, n_cache * DIM, TPB):   # write each row's change back once
                u = t // DIM
                k = t - u * DIM
                if canon[u] == u:
                    cuda.atomic.add(syn0, (ids[c_lo + u], k), cache[u, k] - first[b, u, k])
            cuda.syncthreads()
        if lane == 0:
            cuda.atomic.add(loss_out, b, loss)
        if tid == 0:
            pairs_out[b] = pairs

    return train
