"""Numba kernels of the neural probabilistic language model (fastemb/nplm.py): arrays and scalars in, nothing
else; every shape and index is checked by nplm.py before it reaches them (Numba does no bounds checks).

The model (Bengio et al. 2003, without the direct input-output connections): the `n` previous words' vectors
(rows of `emb`; row V is the sentence-boundary token) concatenated into x [n·dim], a hidden layer
h = act(W·x + b), and an output layer over the vocabulary: `out` holds one row per word (full, sampled, nce)
or per internal node of the Huffman tree (hs), `out_b` its biases.

One minibatch is one SGD step with momentum (`batch_step`), in two phases:
  1. over the minibatch's examples (`forward_backward`): each example's forward pass, its loss (float64), and
     what it sends back: G[e, column] = ∂loss/∂logit of each output column it touched, D[e] = ∂loss/∂(W·x + b),
     dX[e] = ∂loss/∂x, all from the parameters as they were before the step;
  2. over parameter rows (`_update`): each touched row sums its contributions in example order and takes its
     step, v = μ·v + g, p -= lr·v (g the minibatch mean). Rows of `emb` and `out` that no example of the
     minibatch touched keep their velocity and are not moved (TensorFlow's sparse momentum: "lazy" momentum
     on the touched rows); W and b are dense and step every time.
A block's positions are shuffled (the RNG stream of (seed, epoch, block)) and cut into chunks of minibatches;
the chunks run Hogwild in parallel (`train_block`), as word2vec's kernels do: each chunk's minibatches in
order, their updates unsynchronised. The shared samples of sampled softmax and NCE come from the stream of
(seed, epoch, block, minibatch). Chunks do not depend on the thread count, so a 1-thread run is bit-for-bit
reproducible; with more threads runs differ only by Hogwild's races. Losses are summed per chunk in float64.

The kernels are generic in the float type: training runs them on float32, the gradient tests on float64.
"""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import splitmix as _splitmix
from fastemb.kernels.rng import uniform as _uniform
from fastemb.kernels.rng import xorshift as _next

FULL, SAMPLED, NCE, HS = 0, 1, 2, 3
TANH, LOGISTIC = 0, 1


@njit(cache=True, nogil=True, inline="always")
def _dot(a, b):
    s = a[0] * b[0]
    for k in range(1, a.shape[0]):
        s += a[k] * b[k]
    return s


@njit(cache=True, nogil=True, inline="always")
def _decay_velocity(v, row, mu, decay):
    """v = μ·v + decay·row: a row's velocity before this step's gradient is added (L2 penalty `decay`)."""
    for k in range(v.shape[0]):
        v[k] = mu * v[k] + decay * row[k]


@njit(cache=True, nogil=True, inline="always")
def _descend(row, v, lr):
    """row −= lr·v: the momentum step."""
    for k in range(row.shape[0]):
        row[k] -= lr * v[k]


@njit(cache=True, nogil=True, inline="always")
def _axpy(alpha, x, y):
    """y += alpha · x"""
    for k in range(y.shape[0]):
        y[k] += alpha * x[k]


@njit(cache=True, nogil=True, inline="always")
def _softplus(x):
    """log(1 + e^x), float64, without overflow."""
    if x > 0.0:
        return x + np.log1p(np.exp(-x))
    return np.log1p(np.exp(x))


@njit(cache=True, nogil=True, inline="always")
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + np.exp(-x))
    t = np.exp(x)
    return t / (1.0 + t)


@njit(cache=True, nogil=True, fastmath=True)
def _dots(A, M, idx, out, col0):
    """out[e, col0 + t] = A[e]·M[idx[t]] for every row e of A and t < len(idx); four rows of A at a time, so
    that each row of M is read once per four (the loops are vectorised, with four accumulators)."""
    E = A.shape[0]
    L = A.shape[1]
    e = 0
    while e + 4 <= E:
        a0 = A[e]
        a1 = A[e + 1]
        a2 = A[e + 2]
        a3 = A[e + 3]
        for t in range(idx.shape[0]):
            m = M[idx[t]]
            s0 = a0[0] * m[0]
            s1 = a1[0] * m[0]
            s2 = a2[0] * m[0]
            s3 = a3[0] * m[0]
            for k in range(1, L):
                mk = m[k]
                s0 += a0[k] * mk
                s1 += a1[k] * mk
                s2 += a2[k] * mk
                s3 += a3[k] * mk
            out[e, col0 + t] = s0
            out[e + 1, col0 + t] = s1
            out[e + 2, col0 + t] = s2
            out[e + 3, col0 + t] = s3
        e += 4
    while e < E:
        for t in range(idx.shape[0]):
            out[e, col0 + t] = _dot(A[e], M[idx[t]])
        e += 1


@njit(cache=True, nogil=True, fastmath=True)
def _combine(coef, M, idx, dst):
    """dst += Σ_t coef[t]·M[idx[t]], four rows of M per pass over dst."""
    n = idx.shape[0]
    L = dst.shape[0]
    t = 0
    while t + 4 <= n:
        c0 = coef[t]
        c1 = coef[t + 1]
        c2 = coef[t + 2]
        c3 = coef[t + 3]
        m0 = M[idx[t]]
        m1 = M[idx[t + 1]]
        m2 = M[idx[t + 2]]
        m3 = M[idx[t + 3]]
        for k in range(L):
            dst[k] += c0 * m0[k] + c1 * m1[k] + c2 * m2[k] + c3 * m3[k]
        t += 4
    while t < n:
        _axpy(coef[t], M[idx[t]], dst)
        t += 1


@njit(cache=True, nogil=True, fastmath=True)
def _gather_sum(scale, coef, rows, dst):
    """dst += scale · Σ_e coef[e]·rows[e] over every row e (four per pass); returns scale · Σ_e coef[e]."""
    E = rows.shape[0]
    L = dst.shape[0]
    e = 0
    total = scale * coef[0] - scale * coef[0]
    while e + 4 <= E:
        c0 = scale * coef[e]
        c1 = scale * coef[e + 1]
        c2 = scale * coef[e + 2]
        c3 = scale * coef[e + 3]
        total += c0 + c1 + c2 + c3
        r0 = rows[e]
        r1 = rows[e + 1]
        r2 = rows[e + 2]
        r3 = rows[e + 3]
        for k in range(L):
            dst[k] += c0 * r0[k] + c1 * r1[k] + c2 * r2[k] + c3 * r3[k]
        e += 4
    while e < E:
        c = scale * coef[e]
        total += c
        _axpy(c, rows[e], dst)
        e += 1
    return total


@njit(cache=True, nogil=True, fastmath=True)
def forward_backward(ctx, tgt, samples, logq, emb, W, b, out, out_b, codes, points, lengths, softmax, activation,
                     X, H, G, D, dX, loss):
    """Phase 1 over the examples of a minibatch (ctx [B, n], tgt [B]): fills X (inputs), H (activations),
    G (∂loss/∂logit per output column: every word for full, the target then the shared samples for sampled and
    nce, the target's path for hs), D (∂loss/∂(W·x + b)), dX (∂loss/∂x) and loss [B] (float64)."""
    B, n = ctx.shape
    dim = emb.shape[1]
    hidden = W.shape[0]
    for e in range(B):
        x = X[e]
        for c in range(n):
            row = emb[ctx[e, c]]
            for k in range(dim):
                x[c * dim + k] = row[k]
    every_unit = np.arange(hidden)
    _dots(X, W, every_unit, H, 0)
    for e in range(B):
        h = H[e]
        for j in range(hidden):
            a = h[j] + b[j]
            if activation == TANH:
                h[j] = np.tanh(a)
            else:
                h[j] = 1.0 / (1.0 + np.exp(-a))
            D[e, j] = 0.0
    if softmax == FULL:
        n_out = out.shape[0]
        every_word = np.arange(n_out)
        _dots(H, out, every_word, G, 0)
        for e in range(B):
            g = G[e]
            y = tgt[e]
            for v in range(n_out):
                g[v] += out_b[v]
            zmax = g[0]
            for v in range(1, n_out):
                zmax = max(zmax, g[v])
            zy = g[y]
            total = 0.0
            for v in range(n_out):  # one exp per word, in the float type of the model
                g[v] = np.exp(g[v] - zmax)
                total += g[v]
            loss[e] = np.log(total) + (zmax - zy)
            inv = 1.0 / total
            for v in range(n_out):
                g[v] *= inv
            g[y] -= 1.0
            _combine(g, out, every_word, D[e])
    elif softmax == SAMPLED or softmax == NCE:
        # column 0 is the target, column j ≥ 1 the shared sample j − 1: Δ = z − log(K·q)
        n_cols = samples.shape[0] + 1
        _dots(H, out, samples, G, 1)
        for e in range(B):
            g = G[e]
            y = tgt[e]
            g[0] = _dot(out[y], H[e])
            if softmax == SAMPLED:
                zmax = -np.inf
                for j in range(n_cols):
                    r = y if j == 0 else samples[j - 1]
                    if j > 0 and r == y:
                        continue  # an accidental hit: the target drawn as a sample is not a negative
                    z = np.float64(g[j] + out_b[r]) - logq[r]
                    g[j] = z
                    zmax = max(zmax, z)
                total = 0.0
                for j in range(n_cols):
                    if j == 0 or samples[j - 1] != y:
                        total += np.exp(np.float64(g[j]) - zmax)
                lse = zmax + np.log(total)
                loss[e] = lse - g[0]
                for j in range(n_cols):
                    if j > 0 and samples[j - 1] == y:
                        g[j] = 0.0
                    else:
                        g[j] = np.exp(np.float64(g[j]) - lse)
                g[0] -= 1.0
            else:
                lo = 0.0
                for j in range(n_cols):
                    r = y if j == 0 else samples[j - 1]
                    delta = np.float64(g[j] + out_b[r]) - logq[r]
                    if j == 0:
                        lo += _softplus(-delta)
                        g[j] = _sigmoid(delta) - 1.0
                    else:
                        lo += _softplus(delta)
                        g[j] = _sigmoid(delta)
                loss[e] = lo
            _axpy(g[0], out[y], D[e])
            _combine(g[1:], out, samples, D[e])
    else:
        # P(y | h) = Π_t σ((1 − 2·code_t)·(node_t·h + bias_t)) along y's path from the root
        for e in range(B):
            y = tgt[e]
            h = H[e]
            d = D[e]
            g = G[e]
            lo = 0.0
            for t in range(lengths[y]):
                node = points[y, t]
                sign = 1.0 - 2.0 * codes[y, t]
                s = np.float64(out_b[node] + _dot(out[node], h))
                lo += _softplus(-sign * s)
                g[t] = -sign * _sigmoid(-sign * s)
                _axpy(g[t], out[node], d)
            loss[e] = lo
    for e in range(B):
        h = H[e]
        d = D[e]
        for j in range(hidden):
            if activation == TANH:
                d[j] *= 1.0 - h[j] * h[j]
            else:
                d[j] *= h[j] * (1.0 - h[j])
        dx = dX[e]
        for k in range(dx.shape[0]):
            dx[k] = 0.0
        _combine(d, W, every_unit, dx)


@njit(cache=True, nogil=True)
def _group(keys, codes_in, m, slot_of, rows, ptr, entries):
    """Group entries by row: entry i (< m) belongs to row keys[i] and carries codes_in[i]. Returns the number of
    distinct rows; rows[:n] are they (first seen first), entries[ptr[s]:ptr[s+1]] the codes of row s in entry
    order. slot_of (one per row of the matrix, all −1) is left all −1."""
    n = 0
    for i in range(m):
        r = keys[i]
        if slot_of[r] < 0:
            slot_of[r] = n
            rows[n] = r
            ptr[n + 1] = 0
            n += 1
        ptr[slot_of[r] + 1] += 1
    ptr[0] = 0
    for s in range(n):
        ptr[s + 1] += ptr[s]
    for i in range(m):
        s = slot_of[keys[i]]
        entries[ptr[s]] = codes_in[i]
        ptr[s] += 1
    for s in range(n - 1, -1, -1):  # the cursors ran to the next slot's start: shift back
        ptr[s + 1] = ptr[s]
    ptr[0] = 0
    for s in range(n):
        slot_of[rows[s]] = -1
    return n


@njit(cache=True, nogil=True, fastmath=True)
def _update(ctx, samples, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out, v_outb, softmax, H, G, D, X, dX,
            emb_rows, emb_ptr, emb_ent, n_emb, out_rows, out_ptr, out_ent, n_outs, hs_width, lr, mu, scale, decay):
    """Phase 2: every touched row sums its contributions in example order and takes its momentum step (an L2
    penalty `decay` adds decay·row to the gradient of the weights and word vectors, not of the biases)."""
    n = ctx.shape[1]
    dim = emb.shape[1]
    Dt = np.ascontiguousarray(D.T)
    for j in range(W.shape[0]):
        vw = v_W[j]
        w = W[j]
        _decay_velocity(vw, w, mu, decay)
        v_b[j] = mu * v_b[j] + _gather_sum(scale, Dt[j], X, vw)
        _descend(w, vw, lr)
        b[j] -= lr * v_b[j]
    for s in range(n_emb):
        r = emb_rows[s]
        vr = v_emb[r]
        row = emb[r]
        _decay_velocity(vr, row, mu, decay)
        for i in range(emb_ptr[s], emb_ptr[s + 1]):
            code = emb_ent[i]
            e = code // n
            c = code - e * n
            _axpy(scale, dX[e, c * dim:(c + 1) * dim], vr)
        _descend(row, vr, lr)
    if softmax == FULL:
        Gt = np.ascontiguousarray(G.T)
        for r in range(out.shape[0]):
            vr = v_out[r]
            row = out[r]
            _decay_velocity(vr, row, mu, decay)
            v_outb[r] = mu * v_outb[r] + _gather_sum(scale, Gt[r], H, vr)
            _descend(row, vr, lr)
            out_b[r] -= lr * v_outb[r]
    else:
        Gt = np.ascontiguousarray(G.T) if softmax != HS else G[:0]
        for s in range(n_outs):
            r = out_rows[s]
            vr = v_out[r]
            row = out[r]
            _decay_velocity(vr, row, mu, decay)
            gb = 0.0
            for i in range(out_ptr[s], out_ptr[s + 1]):
                code = out_ent[i]
                if softmax == HS:
                    e = code // hs_width
                    coef = scale * G[e, code - e * hs_width]
                    gb += coef
                    _axpy(coef, H[e], vr)
                elif code >= 0:  # the target column of example `code`
                    coef = scale * G[code, 0]
                    gb += coef
                    _axpy(coef, H[code], vr)
                else:  # shared sample column −code: every example's
                    gb += _gather_sum(scale, Gt[-code], H, vr)
            v_outb[r] = mu * v_outb[r] + gb
            _descend(row, vr, lr)
            out_b[r] -= lr * v_outb[r]


@njit(cache=True, nogil=True)
def batch_step(ctx, tgt, samples, logq, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out, v_outb, codes, points,
               lengths, softmax, activation, X, H, G, D, dX, loss, emb_slot, out_slot, lr, mu, scale, decay):
    """One minibatch: forward_backward, then every touched row's momentum step (lr, mu, scale = 1/B in the float
    type of the arrays). emb_slot [V+1] and out_slot [rows of out]: all −1, left so. Returns the summed loss."""
    B, n = ctx.shape
    forward_backward(ctx, tgt, samples, logq, emb, W, b, out, out_b, codes, points, lengths, softmax, activation,
                     X, H, G, D, dX, loss)
    m = B * n
    keys = np.empty(m, np.int64)
    entry = np.empty(m, np.int64)
    for e in range(B):
        for c in range(n):
            keys[e * n + c] = ctx[e, c]
            entry[e * n + c] = e * n + c
    emb_rows = np.empty(m, np.int64)
    emb_ptr = np.zeros(m + 1, np.int64)
    emb_ent = np.empty(m, np.int64)
    n_emb = _group(keys, entry, m, emb_slot, emb_rows, emb_ptr, emb_ent)
    hs_width = codes.shape[1]
    if softmax == HS:
        m = 0
        for e in range(B):
            m += lengths[tgt[e]]
    elif softmax == FULL:
        m = 0
    else:
        m = B + samples.shape[0]
    okeys = np.empty(m, np.int64)
    oent = np.empty(m, np.int64)
    if softmax == HS:
        i = 0
        for e in range(B):
            y = tgt[e]
            for t in range(lengths[y]):
                okeys[i] = points[y, t]
                oent[i] = e * hs_width + t
                i += 1
    elif softmax != FULL:
        for e in range(B):
            okeys[e] = tgt[e]
            oent[e] = e
        for j in range(samples.shape[0]):
            okeys[B + j] = samples[j]
            oent[B + j] = -(j + 1)
    out_rows = np.empty(m, np.int64)
    out_ptr = np.zeros(m + 1, np.int64)
    out_ent = np.empty(m, np.int64)
    n_outs = _group(okeys, oent, m, out_slot, out_rows, out_ptr, out_ent)
    _update(ctx, samples, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out, v_outb, softmax, H, G, D, X, dX,
            emb_rows, emb_ptr, emb_ent, n_emb, out_rows, out_ptr, out_ent, n_outs, hs_width, lr, mu, scale, decay)
    total = 0.0
    for e in range(B):
        total += loss[e]
    return total


@njit(cache=True, nogil=True, inline="always")
def _stream(a, b, c, d):
    """A xorshift state from four integers (seed, epoch, block, minibatch)."""
    _, s = _splitmix(np.uint64(a))
    _, s = _splitmix(s ^ np.uint64(b))
    _, s = _splitmix(s ^ np.uint64(c))
    _, s = _splitmix(s ^ np.uint64(d))
    return s | np.uint64(1)


@njit(cache=True, nogil=True)
def sentence_contexts(ids, ends, n, boundary):
    """[N, n] int64: the n tokens before each position of its own sentence, `boundary` before its start."""
    N = ids.shape[0]
    ctx = np.empty((N, n), np.int64)
    s0 = 0
    for si in range(ends.shape[0]):
        s1 = ends[si]
        for p in range(s0, s1):
            for c in range(n):
                q = p - n + c
                ctx[p, c] = ids[q] if q >= s0 else boundary
        s0 = s1
    return ctx


@njit(cache=True, nogil=True)
def block_order(N, seed, epoch, block):
    """The order a block's N examples are trained in: a Fisher-Yates shuffle of (seed, epoch, block)."""
    state = _stream(seed, epoch, block, 0)
    order = np.arange(N)
    for i in range(N - 1, 0, -1):
        state, r = _next(state)
        j = np.int64(r % np.uint64(i + 1))
        t = order[i]
        order[i] = order[j]
        order[j] = t
    return order


@njit(cache=True, nogil=True, parallel=True)
def train_block(ids, ends, n, batch, chunk_batches, seed, epoch, block, work_before, total_work, alpha0, min_alpha,
                mu, decay, n_samples, cdf, logq, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out, v_outb, codes,
                points, lengths, softmax, activation, n_cols, loss_out):
    """Train on one block of whole sentences (float32 model) in one call: `train_range` over all its chunks."""
    ctx_all = sentence_contexts(ids, ends, n, emb.shape[0] - 1)
    order = block_order(ids.shape[0], seed, epoch, block)
    train_range(ids, ctx_all, order, 0, loss_out.shape[0], batch, chunk_batches, seed, epoch, block, work_before,
                total_work, alpha0, min_alpha, mu, decay, n_samples, cdf, logq, emb, W, b, out, out_b, v_emb, v_W,
                v_b, v_out, v_outb, codes, points, lengths, softmax, activation, n_cols, loss_out)


@njit(cache=True, nogil=True, parallel=True)
def train_range(ids, ctx_all, order, q_lo, q_hi, batch, chunk_batches, seed, epoch, block, work_before, total_work,
                alpha0, min_alpha, mu, decay, n_samples, cdf, logq, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out,
                v_outb, codes, points, lengths, softmax, activation, n_cols, loss_out):
    """Chunks q_lo..q_hi-1 of one block (its contexts ctx_all and training order from `sentence_contexts` and
    `block_order`): the block's examples in that order cut into chunks of `chunk_batches` minibatches of
    `batch` examples; chunks run Hogwild in parallel, each its minibatches in order. A block trained in
    consecutive ranges by one thread is the block trained in one call, bit for bit, so the caller sizes each
    call by its work (fastemb.loop.calls). loss_out [chunks of the block] gets each chunk's summed loss."""
    N = ids.shape[0]
    n = ctx_all.shape[1]
    nd = n * emb.shape[1]
    hidden = W.shape[0]
    V = cdf.shape[0]
    chunk = batch * chunk_batches
    for q in prange(q_lo, q_hi):
        X = np.empty((batch, nd), np.float32)
        H = np.empty((batch, hidden), np.float32)
        D = np.empty((batch, hidden), np.float32)
        dX = np.empty((batch, nd), np.float32)
        G = np.empty((batch, n_cols), np.float32)
        loss = np.zeros(batch, np.float64)
        ctx = np.empty((batch, n), np.int64)
        tgt = np.empty(batch, np.int64)
        samples = np.empty(n_samples, np.int64)
        emb_slot = np.full(emb.shape[0], -1, np.int64)
        out_slot = np.full(out.shape[0], -1, np.int64)
        total = 0.0
        c_hi = min(N, (q + 1) * chunk)
        for lo in range(q * chunk, c_hi, batch):
            B = min(c_hi, lo + batch) - lo
            for e in range(B):
                p = order[lo + e]
                tgt[e] = ids[p]
                for c in range(n):
                    ctx[e, c] = ctx_all[p, c]
            if n_samples > 0:
                st = _stream(seed, epoch, block, lo // batch + 1)
                for j in range(n_samples):
                    st, r = _next(st)
                    k = np.searchsorted(cdf, _uniform(r), side="right")
                    samples[j] = min(k, V - 1)
            progress = (work_before + lo) / total_work
            lr = np.float32(max(min_alpha, alpha0 - (alpha0 - min_alpha) * progress))
            total += batch_step(ctx[:B], tgt[:B], samples, logq, emb, W, b, out, out_b, v_emb, v_W, v_b, v_out,
                                v_outb, codes, points, lengths, softmax, activation, X[:B], H[:B], G[:B], D[:B],
                                dX[:B], loss[:B], emb_slot, out_slot, lr, np.float32(mu), np.float32(1.0 / B),
                                np.float32(decay))
        loss_out[q] = total


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def hidden_layer(ctx, emb, W, b, activation):
    """h = act(W·x + b) for each row of contexts ctx [N, n] (float32 [N, hidden])."""
    N, n = ctx.shape
    dim = emb.shape[1]
    H = np.empty((N, W.shape[0]), np.float32)
    for e in prange(N):
        x = np.empty(n * dim, np.float32)
        for c in range(n):
            row = emb[ctx[e, c]]
            for k in range(dim):
                x[c * dim + k] = row[k]
        for j in range(W.shape[0]):
            a = b[j] + _dot(W[j], x)
            H[e, j] = np.tanh(a) if activation == TANH else 1.0 / (1.0 + np.exp(-a))
    return H


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def tree_log_probs(H, tgt, out, out_b, codes, points, lengths):
    """log P(tgt[e] | H[e]) along the tree's paths (float64 [N])."""
    N = H.shape[0]
    lp = np.empty(N, np.float64)
    for e in prange(N):
        y = tgt[e]
        s = 0.0
        for t in range(lengths[y]):
            node = points[y, t]
            sign = 1.0 - 2.0 * codes[y, t]
            s -= _softplus(-sign * np.float64(out_b[node] + _dot(out[node], H[e])))
        lp[e] = s
    return lp


@njit(cache=True, nogil=True)
def tree_all_log_probs(node_logits, codes, points, lengths):
    """log P(w | h) of every word w from the logits of every internal node (float64 [V])."""
    V = lengths.shape[0]
    lp = np.empty(V, np.float64)
    for w in range(V):
        s = 0.0
        for t in range(lengths[w]):
            sign = 1.0 - 2.0 * codes[w, t]
            s -= _softplus(-sign * np.float64(node_logits[points[w, t]]))
        lp[w] = s
    return lp


# ------------------------------------------------------------------------ the full softmax on BLAS minibatches
# The full softmax trains through numpy's matrix products (fastemb.models.nplm.dense_gradients): these kernels
# do the parts around them that numpy would do in several passes over a [B, V] array or with np.add.at.
# They are serial (no Numba parallel region: on the shared 2-core machine one between two BLAS calls cost more in
# spinning threads than it saved); the trainer runs them on its own threads, one slice of the vocabulary each.

# e^x for x <= 0 in float32, vectorised (Numba has no vector exp without Intel's SVML): x = n·ln 2 + r with
# |r| <= ln 2 / 2 (ln 2 in two parts, Cody & Waite), e^r by Cephes's degree-7 polynomial (expf), and 2^n written
# into a float's exponent bits. Relative error about 1e-7 (float32's own), 3-4x faster than one libm call per word.
_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.4426950408889634), np.float32(0.693359375), np.float32(-2.12194440e-4)
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_EXP_MIN = np.float32(-87.0)   # e^-87 ≈ 1.6e-38: the smallest power of 2 that stays a normal float32


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _row_normaliser(row, store, fast, scratch):
    """The row's maximum m and Σ_j e^(row[j] − m) (float64): the one row loop of the full softmax's kernels.
    With `store` the row becomes e^(row − m) in place; with `fast` (float32 rows only; scratch float32 [len(row)])
    through the vectorised exp above, otherwise through np.exp (in float64 when not stored)."""
    V = row.shape[0]
    m = row[0]
    for j in range(1, V):
        m = max(m, row[j])
    s = 0.0
    if fast:
        bits = scratch.view(np.int32)
        for j in range(V):
            x = max(np.float32(row[j] - m), _EXP_MIN)
            n = np.floor(x * _LOG2E + np.float32(0.5))
            r = x - n * _LN2_HI - n * _LN2_LO
            p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
            row[j] = p * r * r + r + np.float32(1.0)
            bits[j] = (np.int32(n) + np.int32(127)) << 23
        for j in range(V):
            x = row[j] * scratch[j]
            row[j] = x
            s += x
    elif store:
        for j in range(V):
            x = np.exp(row[j] - m)
            row[j] = x
            s += x
    else:
        for j in range(V):
            s += np.exp(np.float64(row[j] - m))
    return m, s


@njit(cache=True, nogil=True, fastmath=True)
def softmax_exp(Z, bias, tgt, lo, fast, row_max, row_sum, target_logit, ngram=None, offsets=None):
    """The softmax's first half over a slice of the vocabulary (Z [B, n]: the logits of words lo .. lo+n−1 but
    their biases, bias [n]), in place: Z[e] + bias becomes e^(Z[e] + bias − m_e), m_e the row's maximum (row_max,
    float64 [B]), Σ_j e^(Z[e, j] + bias[j] − m_e) goes to row_sum, and the target's logit to target_logit where
    the target is in the slice (−inf where it is not). `fast`: the vectorised float32 exp (Z float32), else np.exp.
    With ngram and offsets, the n-gram features' slices (ngram_add's) are added to each row with its bias, while
    the row is in cache (offsets checked by the caller: _check_slices)."""
    B, n = Z.shape
    scratch = np.empty(n if fast else 0, np.float32)
    for e in range(B):
        row = Z[e]
        for j in range(n):
            row[j] += bias[j]
        if offsets is not None:
            for k in range(offsets.shape[1]):
                a = offsets[e, k] + lo
                for j in range(n):
                    row[j] += ngram[a + j]
        y = tgt[e] - lo
        target_logit[e] = np.float64(row[y]) if 0 <= y < n else -np.inf
        m, total = _row_normaliser(row, True, fast, scratch)
        row_max[e] = m
        row_sum[e] = total


@njit(cache=True, nogil=True, fastmath=True)
def softmax_gradient(Z, tgt, lo, factor, scale, col_sum):
    """The second half, in place: Z[e] (from softmax_exp) times factor[e] (scale · e^(m_e − M_e) / S_e, M_e and S_e
    the maximum and the sum over every slice) is scale · softmax; scale is taken off at the target where it is in
    the slice: Z becomes ∂(scale · Σ_e −log P(tgt[e]))/∂(its logits), and col_sum [n] its sum over the rows (the
    biases' gradient)."""
    B, n = Z.shape
    for j in range(n):
        col_sum[j] = 0.0
    for e in range(B):
        row = Z[e]
        f = factor[e]
        for j in range(n):
            row[j] *= f
        y = tgt[e] - lo
        if 0 <= y < n:
            row[y] -= scale
        for j in range(n):
            col_sum[j] += row[j]


@njit(cache=True, nogil=True, fastmath=True)
def log_softmax_at(Z, tgt):
    """log softmax(Z[e])[tgt[e]] of every row (float64 [B]), Z left unchanged."""
    B = Z.shape[0]
    out = np.empty(B, np.float64)
    scratch = np.empty(0, np.float32)
    for e in range(B):
        m, s = _row_normaliser(Z[e], False, False, scratch)
        out[e] = np.float64(Z[e, tgt[e]] - m) - np.log(s)
    return out


@njit(cache=True, nogil=True)
def sum_rows(ids, rows, n_ids):
    """The distinct ids (first seen first, int64 [U]) and the sum of the rows of each (rows [N, d] → [U, d]),
    ids in 0 .. n_ids − 1 (checked by the caller)."""
    slot = np.full(n_ids, -1, np.int64)
    order = np.empty(ids.shape[0], np.int64)
    U = 0
    for i in range(ids.shape[0]):
        if slot[ids[i]] < 0:
            slot[ids[i]] = U
            order[U] = ids[i]
            U += 1
    out = np.zeros((U, rows.shape[1]), rows.dtype)
    for i in range(ids.shape[0]):
        r = out[slot[ids[i]]]
        x = rows[i]
        for k in range(r.shape[0]):
            r[k] += x[k]
    return order[:U].copy(), out


@njit(cache=True, nogil=True)
def adam_rows(p, m, v, ids, g, lr, b1, b2, eps2, decay):
    """adam_step on the rows ids[i] of p, m and v with the gradients g[i] (lazy Adam: the other rows stay put)."""
    for i in range(ids.shape[0]):
        r = ids[i]
        adam_step(p[r], m[r], v[r], g[i], lr, b1, b2, eps2, decay)


@njit(cache=True, nogil=True)
def momentum_rows(p, v, ids, g, lr, mu, decay):
    """momentum_step on the rows ids[i] of p and v with the gradients g[i] (lazy momentum)."""
    for i in range(ids.shape[0]):
        r = ids[i]
        momentum_step(p[r], v[r], g[i], lr, mu, decay)


@njit(cache=True, nogil=True, fastmath=True)
def momentum_step(p, v, g, lr, mu, decay):
    """Dense momentum SGD with L2 penalty `decay`, in place over flat views: v = μ·v + g + decay·p;
    p −= lr·v."""
    n = p.shape[0]
    for i in range(n):
        x = mu * v[i] + g[i] + decay * p[i]
        v[i] = x
        p[i] -= lr * x


# Adam's 1/√v: a first guess from the float's bits and two Newton steps (relative error below 1e-5, as good as
# Adam's scale needs); Numba's sqrt does not vectorise (one sqrtss a value), this does. In slices of _SLICE values.
_RSQRT_MAGIC = np.int32(0x5F375A86)
_SLICE = 1024


@njit(cache=True, nogil=True, fastmath=True)
def adam_step(p, m, v, g, lr, b1, b2, eps2, decay):
    """Adam (Kingma & Ba 2015) in place over flat float32 views, an L2 penalty `decay` added to the gradient:
    g' = g + decay·p, m = β1·m + (1 − β1)·g', v = β2·v + (1 − β2)·g'², p −= lr·m / √(v + eps²). The caller folds
    the bias corrections into lr and eps (the paper's section 2, last paragraph)."""
    c1 = np.float32(1) - b1
    c2 = np.float32(1) - b2
    half, three_halves = np.float32(0.5), np.float32(1.5)
    buf = np.empty(_SLICE, np.float32)
    bits = buf.view(np.int32)
    n = p.shape[0]
    for a in range(0, n, _SLICE):   # loops over few arrays each, so that LLVM vectorises them (alias checks)
        k = min(n - a, _SLICE)
        pa, ma, va, ga = p[a:a + k], m[a:a + k], v[a:a + k], g[a:a + k]
        for i in range(k):
            buf[i] = ga[i] + decay * pa[i]
        for i in range(k):
            ma[i] = b1 * ma[i] + c1 * buf[i]
        for i in range(k):
            x = b2 * va[i] + c2 * buf[i] * buf[i]
            va[i] = x
            buf[i] = x + eps2
        for i in range(k):
            bits[i] = _RSQRT_MAGIC - (bits[i] >> 1)
        for i in range(k):
            u = half * (va[i] + eps2)
            y = buf[i]
            y = y * (three_halves - u * y * y)
            y = y * (three_halves - u * y * y)
            pa[i] -= lr * ma[i] * y


# ------------------------------------------------------------------------ hashed n-gram features (ngram_order)
# Mikolov et al. 2011's maximum-entropy direct connections: for each order k + 1 = 2 .. N, the k previous words
# (the context's last k ids, the boundary token V before a sentence's start) are hashed to an offset o_k in
# 0 .. S − V of one float array D [S]; the logit of word w gets + D[o_k + w] (order 1, a unigram bias, is the
# output layer's bias already). The words of one history are a
# contiguous slice of V weights; two histories share a weight only where o + w = o' + w' (pair-level collisions).
_NG_SEED = np.uint64(0x9E3779B97F4A7C15)
_NG_MUL = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True, nogil=True)
def _ngram_offsets(ctx, order, size, V, out):
    B, n = ctx.shape
    span = np.uint64(size - V + 1)
    for e in range(B):
        for k in range(1, order):
            x = np.uint64(k + 1) * _NG_SEED
            for i in range(k):
                x = (x ^ np.uint64(ctx[e, n - 1 - i] + 1)) * _NG_MUL
                x ^= x >> np.uint64(31)
            out[e, k - 1] = np.int64(x % span)


def ngram_offsets(ctx, order, size, V) -> np.ndarray:
    """int64 [B, order − 1]: the offset in an n-gram array of `size` weights of the slice of V weights of each
    context's history of k = 1 .. order − 1 words (ctx [B, n] ids in 0 .. V, V the boundary; 2 ≤ order ≤ n + 1)."""
    ctx = np.ascontiguousarray(ctx, np.int64)
    if ctx.ndim != 2 or not 2 <= order <= ctx.shape[1] + 1 or not 2 <= V <= size:
        raise ValueError(f"ngram_offsets: order {order} with a context of {ctx.shape}, size {size}, V {V}")
    if ctx.size and (ctx.min() < 0 or ctx.max() > V):
        raise ValueError("ngram_offsets: context ids must be in 0 .. V")
    out = np.empty((ctx.shape[0], order - 1), np.int64)
    _ngram_offsets(ctx, order, size, V, out)
    return out


def _check_slices(Z, D, offsets, lo):
    if Z.ndim != 2 or offsets.ndim != 2 or offsets.shape[0] != Z.shape[0] or D.ndim != 1 or lo < 0:
        raise ValueError(f"n-gram slices: logits {Z.shape}, offsets {offsets.shape}, weights {D.shape}, lo {lo}")
    if offsets.size and (offsets.min() < 0 or offsets.max() + lo + Z.shape[1] > D.shape[0]):
        raise ValueError("n-gram slices: an offset runs past the n-gram array")


@njit(cache=True, nogil=True, fastmath=True)
def _ngram_add(Z, D, offsets, lo):
    B, n = Z.shape
    K = offsets.shape[1]
    for e in range(B):
        row = Z[e]
        k = 0
        while k + 2 <= K:   # two orders a pass over the row
            a = offsets[e, k] + lo
            c = offsets[e, k + 1] + lo
            for j in range(n):
                row[j] += D[a + j] + D[c + j]
            k += 2
        if k < K:
            a = offsets[e, k] + lo
            for j in range(n):
                row[j] += D[a + j]


def ngram_add(Z, D, offsets, lo):
    """Z[e, j] += Σ_k D[offsets[e, k] + lo + j]: the n-gram features of the words lo .. lo + n − 1 (Z [B, n])."""
    _check_slices(Z, D, offsets, lo)
    _ngram_add(Z, D, offsets, lo)


@njit(cache=True, nogil=True, fastmath=True)
def _ngram_sgd(D, offsets, G, lo, d_lo, d_hi, lr):
    B, n = G.shape
    for e in range(B):
        g = G[e]
        for k in range(offsets.shape[1]):
            a = offsets[e, k] + lo
            j0 = max(0, d_lo - a)
            j1 = min(n, d_hi - a)
            for j in range(j0, j1):
                D[a + j] -= lr * g[j]


def ngram_sgd(D, offsets, G, lo, d_lo, d_hi, lr):
    """D[offsets[e, k] + lo + j] −= lr · G[e, j] (G [B, n]: ∂loss/∂ the logits of words lo .. lo + n − 1), only
    where the index is in d_lo .. d_hi − 1: threads given disjoint index ranges step D without races, each index
    taking its contributions in (example, order) order."""
    _check_slices(G, D, offsets, lo)
    _ngram_sgd(D, offsets, G, lo, max(0, int(d_lo)), min(int(d_hi), D.shape[0]), lr)
