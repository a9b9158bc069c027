"""Numba kernels of word2vec: skip-gram and CBOW with negative sampling, Hogwild over chunks of sentences.

Every chunk owns its RNG, seeded from (seed, epoch, chunk), and computes its learning rate from its own
position in the corpus, so a 1-thread run is bit-for-bit reproducible and an n-thread run differs only by
Hogwild races. Inner loops work on 1-D row views so LLVM vectorises them under fastmath.

This source is compiled twice over: as it is (DIM = None: a row's length is read from the array), and, for
the common vector dimensions, as a copy with DIM set to the dimension (see w2v_dims.kernels), where every
row loop has a compile-time trip count that LLVM unrolls into whole vector instructions (measured 24%
faster at dim 100 with 2 threads). Numba caches each copy like any module.
"""
import numpy as np
from numba import njit, prange

from fastemb.kernels.prefetch import NO_ALIAS, aligned_rows, prefetch_row
from fastemb.kernels.rng import stream as _stream
from fastemb.kernels.rng import uniform as _uniform
from fastemb.kernels.rng import xorshift as _next

MAX_EXP = 6.0
TABLE_SIZE = 1024
DIM = None  # the row length as a constant, in the copies compiled for one dimension (w2v_dims.py)

if DIM is None:
    @njit(cache=True, nogil=True, inline="always")
    def _n(row):
        return row.shape[0]
else:
    @njit(cache=True, nogil=True, inline="always")
    def _n(row):
        return DIM


def sigmoid_tables():
    """sigmoid and -log(sigmoid) sampled on [-MAX_EXP, MAX_EXP] (word2vec.c's expTable idea)."""
    x = (np.arange(TABLE_SIZE, dtype=np.float64) / TABLE_SIZE * 2 - 1) * MAX_EXP
    sig = 1.0 / (1.0 + np.exp(-x))
    return sig.astype(np.float32), np.log1p(np.exp(-x)).astype(np.float32)


@njit(cache=True, nogil=True, inline="always")
def _draw_negative(r, alias_prob, alias_idx):
    """One draw from the alias table with a single 64-bit random number."""
    n = alias_prob.shape[0]
    i = np.int64((r >> np.uint64(32)) % np.uint64(n))
    frac = np.float32(r & np.uint64(0xFFFFFFFF)) * np.float32(1.0 / 4294967296.0)
    return i if frac < alias_prob[i] else alias_idx[i]


@njit(cache=True, nogil=True, inline="always")
def _draw_negatives(out, negative, word, alias_prob, alias_idx, state):
    """Fill out[1:] with `negative` draws, dropping draws of `word` itself (as word2vec.c does); returns
    (n_out, state) where out[:n_out] is the word followed by its negatives."""
    n_out = 1
    for _ in range(negative):
        state, r = _next(state)
        t = _draw_negative(r, alias_prob, alias_idx)
        if t != word:
            out[n_out] = t
            n_out += 1
    return n_out, state


@njit(cache=True, nogil=True, inline="always")
def _draw_ahead(nxt, negative, word, alias_prob, alias_idx, state, syn1):
    """The next window's negatives (its centre is `word`) drawn one position early, and their output rows
    and the word's prefetched while the current window computes. Returns (n_next, state)."""
    n_next, state = _draw_negatives(nxt, negative, word, alias_prob, alias_idx, state)
    for j in range(1, n_next):
        prefetch_row(syn1, nxt[j])
    prefetch_row(syn1, word)
    return n_next, state


@njit(cache=True, nogil=True, inline="always")
def _sig_loss(f, label, sig_table, nls_table):
    """(sigmoid(f), the pair's negative log-likelihood) by table lookup."""
    if f > MAX_EXP:
        s = np.float32(1.0)
        loss = np.float32(0.0) if label > 0 else f
    elif f < -MAX_EXP:
        s = np.float32(0.0)
        loss = -f if label > 0 else np.float32(0.0)
    else:
        k = int((f + MAX_EXP) * (TABLE_SIZE / (2.0 * MAX_EXP)))
        if k >= TABLE_SIZE:
            k = TABLE_SIZE - 1
        s = sig_table[k]
        loss = nls_table[k] if label > 0 else nls_table[k] + f  # -log(1-σ(f)) = -log σ(f) + f
    return s, loss


@njit(cache=True, nogil=True)
def _subsample(ids, a0, a1, keep_prob, state, out):
    n = 0
    subsample = keep_prob.shape[0] > 0
    for p in range(a0, a1):
        t = ids[p]
        if subsample:
            state, r = _next(state)
            if _uniform(r) >= keep_prob[t]:
                continue
        out[n] = t
        n += 1
    return n, state


@njit(cache=True, nogil=True, inline="always")
def _gradient(h, l2, positive, alpha, sig_table, nls_table):
    """(g, loss) of one output row: g = (label − σ(h·l2))·alpha, label 1 for the positive, else 0."""
    f = np.float32(0.0)
    for k in range(_n(h)):
        f += h[k] * l2[k]
    label = np.float32(1.0) if positive else np.float32(0.0)
    s, loss = _sig_loss(f, label, sig_table, nls_table)
    return (label - s) * alpha, loss


@njit(cache=True, nogil=True, inline="always")
def _weighted_sum(weights, matrix, rows, n, dst):
    """dst = Σ_j weights[j] · matrix[rows[j]] for j < n."""
    for k in range(_n(dst)):
        dst[k] = 0.0
    for j in range(n):
        g = weights[j]
        src = matrix[rows[j]]
        for k in range(_n(dst)):
            dst[k] += g * src[k]


@njit(cache=True, nogil=True, inline="always")
def _add_rows(matrix, rows, n, deltas):
    """matrix[rows[j]] += deltas[j] for j < n (a repeated row gets every delta)."""
    for j in range(n):
        row = matrix[rows[j]]
        d = deltas[j]
        for k in range(_n(row)):
            row[k] += d[k]


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def sg_window_shared(syn0, syn1, ctx, nc, out, n_out, codes, alpha, sig_table, nls_table, G, d_ctx, d_out):
    """Skip-gram on one window with output rows shared by its contexts (HogBatch, Ji et al. 2016): every
    context row predicts out[o] with label 1 − codes[o] for o < n_out — the centre word (code 0) and the
    negatives (code 1) drawn once per window, or the centre word's tree path under hierarchical softmax.
    Gradients are computed from the values read before the update, then applied once per row. Returns the
    summed loss."""
    loss = 0.0
    for c in range(nc):
        l1 = syn0[ctx[c]]
        for o in range(n_out):
            G[c, o], pair_loss = _gradient(l1, syn1[out[o]], codes[o] == 0, alpha, sig_table, nls_table)
            loss += pair_loss
    for c in range(nc):
        _weighted_sum(G[c], syn1, out, n_out, d_ctx[c])
    for o in range(n_out):
        _weighted_sum(G[:, o], syn0, ctx, nc, d_out[o])
    _add_rows(syn0, ctx, nc, d_ctx)
    _add_rows(syn1, out, n_out, d_out)
    return loss


@njit(cache=True, nogil=True, inline="always")
def _g_of(f, o, n_out, alpha, sig_table, nls_table):
    """(g, loss) of output slot o given its score f; slots past n_out are padding (g 0, no loss)."""
    if o >= n_out:
        return np.float32(0.0), np.float32(0.0)
    label = np.float32(1.0) if o == 0 else np.float32(0.0)
    s, loss = _sig_loss(f, label, sig_table, nls_table)
    return (label - s) * alpha, loss


# ---- the six output slots of negative 5 (the default): the word and five negatives. Shared by the fused
# kernels below and kernels/subword.py; `dim` is passed in so that the copies compiled for one dimension
# (w2v_dims) see a constant trip count after inlining.
@njit(cache=True, nogil=True, inline="always")
def rows6(matrix, out, n_out):
    """The six output rows out[0..5] of `matrix`; slots past n_out repeat out[0] (their gradient is 0)."""
    return (matrix[out[0]], matrix[out[1 if n_out > 1 else 0]], matrix[out[2 if n_out > 2 else 0]],
            matrix[out[3 if n_out > 3 else 0]], matrix[out[4 if n_out > 4 else 0]],
            matrix[out[5 if n_out > 5 else 0]])


@njit(cache=True, nogil=True, inline="always")
def zero6(e, dim):
    e0, e1, e2, e3, e4, e5 = e
    for k in range(dim):
        e0[k] = 0.0
        e1[k] = 0.0
        e2[k] = 0.0
        e3[k] = 0.0
        e4[k] = 0.0
        e5[k] = 0.0


@njit(cache=True, nogil=True, inline="always")
def grads6(x, r, n_out, alpha, sig_table, nls_table, dim):
    """The six scores x·r[o] in one pass over x (six independent accumulators), then their gradients:
    ((g0..g5), summed loss)."""
    r0, r1, r2, r3, r4, r5 = r
    f0 = f1 = f2 = f3 = f4 = f5 = np.float32(0.0)
    for k in range(dim):
        v = x[k]
        f0 += v * r0[k]
        f1 += v * r1[k]
        f2 += v * r2[k]
        f3 += v * r3[k]
        f4 += v * r4[k]
        f5 += v * r5[k]
    g0, p0 = _g_of(f0, 0, n_out, alpha, sig_table, nls_table)
    g1, p1 = _g_of(f1, 1, n_out, alpha, sig_table, nls_table)
    g2, p2 = _g_of(f2, 2, n_out, alpha, sig_table, nls_table)
    g3, p3 = _g_of(f3, 3, n_out, alpha, sig_table, nls_table)
    g4, p4 = _g_of(f4, 4, n_out, alpha, sig_table, nls_table)
    g5, p5 = _g_of(f5, 5, n_out, alpha, sig_table, nls_table)
    return (g0, g1, g2, g3, g4, g5), p0 + p1 + p2 + p3 + p4 + p5


@njit(cache=True, nogil=True, inline="always")
def backward6(x, g, r, err, acc, dim):
    """One pass: err += Σ_o g[o]·r[o] (the input's error) and acc[o] += g[o]·x (the rows' deltas; acc may be
    the rows r themselves, each element read for err before its own update; err may be x itself, whose
    element is read before it is updated)."""
    g0, g1, g2, g3, g4, g5 = g
    r0, r1, r2, r3, r4, r5 = r
    a0, a1, a2, a3, a4, a5 = acc
    for k in range(dim):
        v = x[k]
        err[k] += g0 * r0[k] + g1 * r1[k] + g2 * r2[k] + g3 * r3[k] + g4 * r4[k] + g5 * r5[k]
        a0[k] += g0 * v
        a1[k] += g1 * v
        a2[k] += g2 * v
        a3[k] += g3 * v
        a4[k] += g4 * v
        a5[k] += g5 * v


@njit(cache=True, nogil=True, inline="always")
def shared6(X, xi, nc, D, di, syn1, out, n_out, alpha, sig_table, nls_table, d_out, dim):
    """Skip-gram on one window with the six output rows shared by its contexts (HogBatch): input vector
    X[xi[c]] predicts out[0] (label 1) and out[1:n_out] (label 0) for c < nc; its delta is added to D[di[c]]
    (scratch rows, or X itself with di = xi: the input updated in place once its scores are computed), the
    output rows' deltas are summed in d_out and added to syn1 after the window, so every output gradient
    uses the values read before it: per input, its six scores in one pass over the rows, then its delta and
    the six row deltas in a second. Returns the summed loss."""
    r = rows6(syn1, out, n_out)
    e = (d_out[0], d_out[1], d_out[2], d_out[3], d_out[4], d_out[5])
    zero6(e, dim)
    loss = 0.0
    for c in range(nc):
        x = X[xi[c]]
        g, pair_loss = grads6(x, r, n_out, alpha, sig_table, nls_table, dim)
        loss += pair_loss
        backward6(x, g, r, D[di[c]], e, dim)
    _add_rows(syn1, out, n_out, d_out)
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def sg_window_shared6(syn0, syn1, ctx, nc, out, n_out, alpha, sig_table, nls_table, d_out):
    """sg_window_shared for the default negative 5 (at most six output rows), fused (shared6), with each
    context row updated in place right after its six scores (word2vec.c's order; no scratch rows and no
    second pass over them). Same arithmetic as sg_window_shared up to the order of float sums, except that a
    context word repeated in the window reads its row as updated by its earlier occurrence."""
    return shared6(syn0, ctx, nc, syn0, ctx, syn1, out, n_out, alpha, sig_table, nls_table, d_out, _n(d_out[0]))


@njit(cache=True, nogil=True, inline="always")
def _predict(h, syn1, rows, codes, n, alpha, sig_table, nls_table, neu1e):
    """The output layer of word2vec.c: hidden vector h predicts rows[:n] of syn1, row j with label 1 − codes[j]
    (hierarchical softmax: the word's tree path), or with codes None label 1 for rows[0] and 0 for the rest
    (negative sampling: the word, then its negatives). Each row is updated at once; the error for h is
    accumulated in neu1e. Returns the loss."""
    dim = _n(h)
    loss = 0.0
    for j in range(n):
        l2 = syn1[rows[j]]
        positive = (j == 0) if codes is None else (codes[j] == 0)
        g, pair_loss = _gradient(h, l2, positive, alpha, sig_table, nls_table)
        loss += pair_loss
        for k in range(dim):
            neu1e[k] += g * l2[k]
        for k in range(dim):
            l2[k] += g * h[k]
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def sg_pair_hs(syn0, syn1, context, points, codes, length, alpha, sig_table, nls_table, neu1e):
    """word2vec.c's skip-gram step under hierarchical softmax: the context's input vector predicts the centre
    word's tree path; the input row is updated after the whole path. Returns the loss."""
    l1 = syn0[context]
    for k in range(_n(l1)):
        neu1e[k] = 0.0
    loss = _predict(l1, syn1, points, codes, length, alpha, sig_table, nls_table, neu1e)
    for k in range(_n(l1)):
        l1[k] += neu1e[k]
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def sg_pair(syn0, syn1, context, out, n_out, alpha, sig_table, nls_table, neu1e):
    """word2vec.c's skip-gram step: the context's input vector predicts out[0] (the centre word) against
    its own negatives out[1:n_out]; the input row is updated after all targets. Returns the loss."""
    l1 = syn0[context]
    for k in range(_n(l1)):
        neu1e[k] = 0.0
    loss = _predict(l1, syn1, out, None, n_out, alpha, sig_table, nls_table, neu1e)
    for k in range(_n(l1)):
        l1[k] += neu1e[k]
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def cbow_window(syn0, syn1, syn1_hs, ctx, nc, out, n_out, points, codes, length, alpha, cbow_mean, sig_table,
                nls_table, neu1, neu1e):
    """word2vec.c's CBOW step: the (mean of the) context input vectors predict out[0] against out[1:n_out]
    (negative sampling: skipped when n_out is 0) and/or the tree path points[:length] (hierarchical
    softmax: skipped when length is 0); the error is added to every context row. Returns the loss."""
    dim = _n(neu1)
    for k in range(dim):
        neu1[k] = 0.0
    for c in range(nc):
        l1 = syn0[ctx[c]]
        for k in range(dim):
            neu1[k] += l1[k]
    if cbow_mean:
        inv = np.float32(1.0) / np.float32(nc)
        for k in range(dim):
            neu1[k] *= inv
    for k in range(dim):
        neu1e[k] = 0.0
    loss = 0.0
    if length > 0:
        loss += _predict(neu1, syn1_hs, points, codes, length, alpha, sig_table, nls_table, neu1e)
    if n_out > 0:
        loss += _predict(neu1, syn1, out, None, n_out, alpha, sig_table, nls_table, neu1e)
    for c in range(nc):
        l1 = syn0[ctx[c]]
        for k in range(dim):
            l1[k] += neu1e[k]
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def cbow_window6(syn0, syn1, ctx, nc, out, n_out, alpha, cbow_mean, sig_table, nls_table, neu1, neu1e):
    """cbow_window for the default negative 5 without a tree, fused as sg_window_shared6: the six output rows'
    scores in one pass over the hidden vector, then the hidden error and the six row updates in a second.
    Slots past n_out repeat out[0] with gradient 0. The same arithmetic as cbow_window up to the order of
    float sums when the output rows differ (a negative drawn twice gets both updates, each from the scores
    read before them). Returns the loss."""
    dim = _n(neu1)
    for k in range(dim):
        neu1[k] = 0.0
    for c in range(nc):
        l1 = syn0[ctx[c]]
        for k in range(dim):
            neu1[k] += l1[k]
    if cbow_mean:
        inv = np.float32(1.0) / np.float32(nc)
        for k in range(dim):
            neu1[k] *= inv
    r = rows6(syn1, out, n_out)
    g, loss = grads6(neu1, r, n_out, alpha, sig_table, nls_table, dim)
    for k in range(dim):
        neu1e[k] = 0.0
    backward6(neu1, g, r, neu1e, r, dim)  # the rows step at once (word2vec.c's CBOW order)
    for c in range(nc):
        l1 = syn0[ctx[c]]
        for k in range(dim):
            l1[k] += neu1e[k]
    return loss


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def train_chunks(ids, sent_ends, chunk_sents, syn0, syn1, keep_prob, alias_prob, alias_idx, sig_table,
                 nls_table, cbow, shared_negatives, cbow_mean, window, negative, alpha0, min_alpha,
                 work_before, total_work, seed, chunk_base, loss_out, pairs_out, syn1_hs, points, codes, lengths):
    """Train on the sentences of one block; chunk q covers sentences chunk_sents[q]..chunk_sents[q+1]-1.
    work_before: corpus positions trained before this block (all epochs); total_work: epochs × tokens.
    negative 0: no negative sampling; hierarchical softmax is on when `lengths` is not empty (syn1_hs holds
    the tree's node vectors, points/codes/lengths the words' paths, see huffman.py)."""
    hs = lengths.shape[0] > 0
    dim = syn0.shape[1]
    n_chunks = chunk_sents.shape[0] - 1
    max_ctx = 2 * window
    # Negatives shared by a window (CBOW, HogBatch skip-gram) are drawn one position ahead, so that their
    # rows, the next centre word's output row and the context row entering the window are prefetched while
    # this window computes (memory.prefetch_row: the kernel is bound by the latency of these rows).
    ahead = negative > 0 and (cbow or shared_negatives)
    for q in prange(n_chunks):
        state = _stream(seed, chunk_base + q)
        s_lo = chunk_sents[q]
        s_hi = chunk_sents[q + 1]
        longest = 0
        for s in range(s_lo, s_hi):
            a0 = sent_ends[s - 1] if s > 0 else 0
            if sent_ends[s] - a0 > longest:
                longest = sent_ends[s] - a0
        sent = np.empty(longest, np.int64)
        ctx = np.empty(max_ctx, np.int64)
        out = np.empty(negative + 1, np.int64)
        nxt = np.empty(negative + 1, np.int64)
        n_next = 0
        n_drawn = 0
        n_slots = max(negative + 1, codes.shape[1])  # output rows of a window: negatives or a tree path
        ns_codes = np.ones(negative + 1, np.uint8)  # negative sampling as codes: the centre word 0, negatives 1
        ns_codes[0] = 0
        G = np.empty((max_ctx, n_slots), np.float32)
        d_ctx = aligned_rows(max_ctx, dim)  # dim: the rows' stored width (w2v_dims.row_width)
        d_out = aligned_rows(n_slots, dim)
        hidden = aligned_rows(2, dim)
        neu1 = hidden[0]
        neu1e = hidden[1]
        loss = 0.0
        pairs = 0
        for s in range(s_lo, s_hi):
            a0 = sent_ends[s - 1] if s > 0 else 0
            a1 = sent_ends[s]
            progress = (work_before + a0) / total_work
            alpha = np.float32(max(min_alpha, alpha0 - (alpha0 - min_alpha) * progress))
            n, state = _subsample(ids, a0, a1, keep_prob, state, sent)
            if ahead and n > 0:
                n_next, state = _draw_negatives(nxt, negative, sent[0], alias_prob, alias_idx, state)
            for p in range(n):
                word = sent[p]
                if ahead:
                    out, nxt = nxt, out
                    n_drawn = n_next
                    if p + 1 < n:
                        n_next, state = _draw_ahead(nxt, negative, sent[p + 1], alias_prob, alias_idx, state, syn1)
                        if p + 1 + window < n:
                            prefetch_row(syn0, sent[p + 1 + window])
                state, r = _next(state)
                reduced = np.int64(r % np.uint64(window))  # word2vec's dynamic window: b in 0..window-1
                lo = max(0, p - window + reduced)
                hi = min(n, p + window - reduced + 1)
                nc = 0
                for j in range(lo, hi):
                    if j != p:
                        ctx[nc] = sent[j]
                        nc += 1
                if nc == 0:
                    continue
                out[0] = word
                tw = word if hs else 0  # the tree arrays have one dummy row when hs is off
                length = lengths[tw] if hs else 0
                if cbow:
                    n_out = 0
                    if negative > 0:
                        n_out = n_drawn
                        out[0] = word
                    if negative == 5 and length == 0:
                        loss += cbow_window6(syn0, syn1, ctx, nc, out, n_out, alpha, cbow_mean, sig_table, nls_table,
                                             neu1, neu1e)
                        pairs += 1
                        continue
                    loss += cbow_window(syn0, syn1, syn1_hs, ctx, nc, out, n_out, points[tw], codes[tw],
                                        length, alpha, cbow_mean, sig_table, nls_table, neu1, neu1e)
                    pairs += 1
                    continue
                if hs and shared_negatives:
                    loss += sg_window_shared(syn0, syn1_hs, ctx, nc, points[tw], length, codes[tw], alpha,
                                             sig_table, nls_table, G, d_ctx, d_out)
                elif hs:
                    for c in range(nc):
                        loss += sg_pair_hs(syn0, syn1_hs, ctx[c], points[tw], codes[tw], length, alpha,
                                           sig_table, nls_table, neu1e)
                if negative == 0:
                    pairs += nc
                elif shared_negatives:
                    n_out = n_drawn
                    out[0] = word
                    if negative == 5:
                        loss += sg_window_shared6(syn0, syn1, ctx, nc, out, n_out, alpha, sig_table,
                                                  nls_table, d_out)
                    else:
                        loss += sg_window_shared(syn0, syn1, ctx, nc, out, n_out, ns_codes, alpha, sig_table,
                                                 nls_table, G, d_ctx, d_out)
                    pairs += nc
                else:
                    for c in range(nc):
                        n_out, state = _draw_negatives(out, negative, word, alias_prob, alias_idx, state)
                        loss += sg_pair(syn0, syn1, ctx[c], out, n_out, alpha, sig_table, nls_table, neu1e)
                        pairs += 1
        loss_out[q] = loss
        pairs_out[q] = pairs


# the helpers other kernel modules share (kernels/subword.py)
draw_negatives = _draw_negatives
draw_ahead = _draw_ahead
sig_loss = _sig_loss
subsample = _subsample


@njit(cache=True, nogil=True)
def alias_table(weights):
    """Vose's alias method: (prob float32, alias int64) for O(1) draws from `weights`."""
    n = weights.shape[0]
    total = weights.sum()
    scaled = weights * (n / total)
    prob = np.zeros(n, np.float32)
    alias = np.arange(n).astype(np.int64)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        g = large[nl]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[ns] = g
            ns += 1
        else:
            large[nl] = g
            nl += 1
    for k in range(nl):
        prob[large[k]] = 1.0
    for k in range(ns):
        prob[small[k]] = 1.0
    return prob, alias
