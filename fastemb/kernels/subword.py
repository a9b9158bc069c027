"""Numba kernels of the subword (fastText) model: character n-gram hashing, and skip-gram / CBOW with negative
sampling where a word's input vector is the mean of its own row and its n-gram bucket rows.

Hashing follows fastText's Dictionary::computeSubwords and Dictionary::hash exactly: the n-grams of "<word>"
(n counted in UTF-8 characters: a continuation byte 10xxxxxx never starts an n-gram and is kept with its
character), the one-character n-grams "<" and ">" skipped, FNV-1a over the bytes with each byte taken as a
*signed* char (h ^= uint32(int8(c)), fastText's behaviour on x86), bucket = hash % buckets.

Training: Hogwild over chunks as in w2v.py (per-chunk RNG, shared negatives per window). The input vector
of each sentence position (the mean of its word's rows) is computed once, when the position enters the
first window that uses it, and its accumulated update is spread to every row of the word once the last
window that uses it is done (at most 2·window positions later): each row gets the hidden layer's whole
update, as fastText does for its unsupervised models (its `normalizeGradient_` is off there). Gathering and
spreading a position's ~20 rows is bound by memory: the n-gram rows are ordered by use
(subwords.compact_rows) and start on cache lines (w2v_dims.row_matrix); prefetching them measured nothing.
Compiled like w2v.py: as it is (DIM None) and as a copy per common dimension (see w2v_dims.kernels).
"""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import stream as _stream
from fastemb.kernels.rng import xorshift as _next
from fastemb.kernels.prefetch import NO_ALIAS, aligned_rows
from fastemb.kernels.w2v import draw_ahead, draw_negatives, shared6, sig_loss, subsample

DIM = None  # the row length as a constant, in the copies compiled for one dimension (w2v_dims.py)

if DIM is None:
    @njit(cache=True, nogil=True, inline="always")
    def _n(row):
        return row.shape[0]
else:
    @njit(cache=True, nogil=True, inline="always")
    def _n(row):
        return DIM


# ------------------------------------------------------------------------------------------------ hashing
@njit(cache=True, nogil=True)
def fnv1a(buf, a0, a1):
    """fastText's Dictionary::hash of buf[a0:a1]: 32-bit FNV-1a, each byte sign-extended (int8 -> uint32)."""
    h = np.uint64(2166136261)
    mask = np.uint64(0xFFFFFFFF)
    for i in range(a0, a1):
        c = np.int64(buf[i])
        if c >= 128:
            c -= 256
        h = h ^ (np.uint64(c & 0xFFFFFFFF))
        h = (h * np.uint64(16777619)) & mask
    return h


@njit(cache=True, nogil=True)
def _word_ngrams(buf, a0, a1, minn, maxn, buckets, out, n, starts, ends):
    """The n-grams of the bracketed word buf[a0:a1] ("<word>") in fastText's order: out[n + k] = bucket,
    starts/ends[n + k] = the byte span (arrays may be empty: counting only). Returns the new n."""
    for i in range(a0, a1):
        if (buf[i] & 0xC0) == 0x80:
            continue
        j = i
        for length in range(1, maxn + 1):
            if j >= a1:
                break
            j += 1
            while j < a1 and (buf[j] & 0xC0) == 0x80:
                j += 1
            if length >= minn and not (length == 1 and (i == a0 or j == a1)):
                if out.shape[0] > 0:
                    out[n] = np.int64(fnv1a(buf, i, j) % np.uint64(buckets))
                if starts.shape[0] > 0:
                    starts[n] = i
                    ends[n] = j
                n += 1
    return n


@njit(cache=True, nogil=True)
def ngram_rows(buf, offsets, with_word, minn, maxn, buckets, n_words):
    """CSR of input rows per word: word w's bracketed bytes are buf[offsets[w]:offsets[w+1]]; its rows are
    w itself (when with_word[w]) followed by n_words + bucket of each n-gram (maxn 0: no n-grams).
    Returns (indptr int64 [W+1], indices int64)."""
    W = offsets.shape[0] - 1
    empty = np.zeros(0, np.int64)
    indptr = np.zeros(W + 1, np.int64)
    for w in range(W):
        k = 1 if with_word[w] else 0
        if maxn > 0:
            k = _word_ngrams(buf, offsets[w], offsets[w + 1], minn, maxn, buckets, empty, k, empty, empty)
        indptr[w + 1] = indptr[w] + k
    indices = np.empty(indptr[W], np.int64)
    tmp = np.empty(indptr[W] - indptr[0] + 1, np.int64)
    for w in range(W):
        p = indptr[w]
        if with_word[w]:
            indices[p] = w
            p += 1
        if maxn > 0:
            m = _word_ngrams(buf, offsets[w], offsets[w + 1], minn, maxn, buckets, tmp, 0, empty, empty)
            for k in range(m):
                indices[p + k] = n_words + tmp[k]
    return indptr, indices


@njit(cache=True, nogil=True)
def ngram_spans(buf, a0, a1, minn, maxn, buckets):
    """(buckets, starts, ends) of one bracketed word's n-grams (for inspection and tests)."""
    empty = np.zeros(0, np.int64)
    m = _word_ngrams(buf, a0, a1, minn, maxn, buckets, empty, 0, empty, empty)
    out = np.empty(m, np.int64)
    starts = np.empty(m, np.int64)
    ends = np.empty(m, np.int64)
    _word_ngrams(buf, a0, a1, minn, maxn, buckets, out, 0, starts, ends)
    return out, starts, ends


@njit(cache=True, nogil=True)
def mean_rows(matrix, indptr, indices, out):
    """out[w] = mean of matrix[indices[indptr[w]:indptr[w+1]]] (zero when the word has no rows): mean_groups
    of rows that are each their own group."""
    mean_groups(matrix, indptr, indices, indptr[1:] - indptr[:-1], out)


# ------------------------------------------------------------------------------------------------ row groups
# Every row of a word gets the word's whole update, so two rows that every word uses equally often (the same
# words, each as many times) receive the same updates all run long: their difference never changes. Such rows
# train as one row holding their sum (a rare word's own row and the n-grams no other word has; the n-grams a
# few words share and no other word has), and come back at the end as base + (sum - base sum) / count.
@njit(cache=True, nogil=True)
def row_groups(indptr, indices, n_rows):
    """Group the n_rows rows of the word CSR (indptr, indices; word w's own row is row w, used by w alone)
    by the list of words that use them (with repeats). Returns (group_of [n_rows], size [n_groups],
    g_indptr, g_indices, spread): row w is in group w; the other groups are numbered by their first row;
    word w's entries g_indptr[w]:g_indptr[w+1] name each of its groups as many times as it uses each of the
    group's rows (once, but twice for "ana" in "banana"), each with spread = the group's size (an update of
    the word's rows adds to the group's sum that many times). Raises if a group's rows are not used alike."""
    W = indptr.shape[0] - 1
    total = indptr[W]
    start = np.zeros(n_rows + 1, np.int64)
    for p in range(total):
        start[indices[p] + 1] += 1
    for r in range(n_rows):
        start[r + 1] += start[r]
    fill = start[:n_rows].copy()
    users = np.empty(total, np.int64)
    for w in range(W):  # each row's users in word order, a word that uses it twice listed twice
        for p in range(indptr[w], indptr[w + 1]):
            r = indices[p]
            users[fill[r]] = w
            fill[r] += 1
    h = np.empty(n_rows, np.uint64)
    for r in range(n_rows):
        x = np.uint64(14695981039346656037) ^ np.uint64(start[r + 1] - start[r])
        for q in range(start[r], start[r + 1]):
            x = (x ^ np.uint64(users[q])) * np.uint64(1099511628211)
        h[r] = x
    order = np.argsort(h)
    cls = np.empty(n_rows, np.int64)  # rows with equal user lists share a class (compared, not just hashed)
    reps = np.empty(n_rows, np.int64)
    n_cls = 0
    i = 0
    while i < n_rows:
        j = i
        while j < n_rows and h[order[j]] == h[order[i]]:
            j += 1
        first = n_cls
        for t in range(i, j):
            r = order[t]
            found = -1
            for c in range(first, n_cls):
                q = reps[c]
                same = start[q + 1] - start[q] == start[r + 1] - start[r]
                k = 0
                while same and k < start[r + 1] - start[r]:
                    same = users[start[q] + k] == users[start[r] + k]
                    k += 1
                if same:
                    found = c
                    break
            if found < 0:
                reps[n_cls] = r
                found = n_cls
                n_cls += 1
            cls[r] = found
        i = j
    gid = np.full(n_cls, -1, np.int64)
    for w in range(min(W, n_rows)):
        gid[cls[w]] = w
    n_groups = min(W, n_rows)
    group_of = np.empty(n_rows, np.int64)
    for r in range(n_rows):
        c = cls[r]
        if gid[c] < 0:
            gid[c] = n_groups
            n_groups += 1
        group_of[r] = gid[c]
    size = np.zeros(n_groups, np.int64)
    for r in range(n_rows):
        size[group_of[r]] += 1
    g_indptr = np.zeros(W + 1, np.int64)
    g_idx = np.empty(total, np.int64)
    g_spread = np.empty(total, np.float32)
    longest = 0
    for w in range(W):
        longest = max(longest, indptr[w + 1] - indptr[w])
    seen = np.empty(longest, np.int64)
    uses = np.empty(longest, np.int64)
    n = 0
    for w in range(W):
        a = 0  # this word's groups: seen[:a], with how many of its entries name one of their rows
        for p in range(indptr[w], indptr[w + 1]):
            g = group_of[indices[p]]
            k = 0
            while k < a and seen[k] != g:
                k += 1
            if k == a:
                seen[a] = g
                uses[a] = 0
                a += 1
            uses[k] += 1
        for k in range(a):
            g = seen[k]
            if uses[k] % size[g] != 0:
                raise ValueError("row_groups: a group's rows are not used alike")
            for _ in range(uses[k] // size[g]):  # a group whose rows the word uses twice: named twice
                g_idx[n] = g
                g_spread[n] = np.float32(size[g])
                n += 1
        g_indptr[w + 1] = n
    return group_of, size, g_indptr, g_idx[:n].copy(), g_spread[:n].copy()


@njit(cache=True, nogil=True)
def group_sums(base, group_of, out):
    """out[g] = the sum of the rows base[r] of group g (added in row order; out may be wider than base)."""
    dim = base.shape[1]
    for g in range(out.shape[0]):
        for k in range(dim):
            out[g, k] = 0.0
    for r in range(base.shape[0]):
        dst = out[group_of[r]]
        src = base[r]
        for k in range(dim):
            dst[k] += src[k]


@njit(cache=True, nogil=True)
def ungroup(base, sums, group_of, size, out):
    """The rows as trained: out[r] = base[r] + (sums[g] - the sum of the group's base rows) / size[g] for row r
    of group g, and out[r] = sums[g] for a group of one row. Uses sums as scratch (its groups of several rows
    are left holding their change per row); out may be base (in place)."""
    dim = base.shape[1]
    for r in range(base.shape[0]):
        g = group_of[r]
        if size[g] > 1:
            dst = sums[g]
            src = base[r]
            for k in range(dim):
                dst[k] -= src[k]
    for g in range(sums.shape[0]):
        if size[g] > 1:
            inv = np.float32(1.0) / np.float32(size[g])
            for k in range(dim):
                sums[g, k] *= inv
    for r in range(base.shape[0]):
        g = group_of[r]
        dst = out[r]
        d = sums[g]
        if size[g] == 1:
            for k in range(dim):
                dst[k] = d[k]
        else:
            src = base[r]
            for k in range(dim):
                dst[k] = src[k] + d[k]


# ------------------------------------------------------------------------------------------------ training
# _load_hidden and _spread are calls (not inlined) whose arrays are declared free of aliasing: LLVM then keeps
# the row being summed or added in registers across the word's rows (measured ~10% of an epoch).
@njit(cache=True, nogil=True, **NO_ALIAS)
def _load_hidden(syn0, indices, a0, a1, inv, dst):
    """dst = inv * the sum of the rows syn0[indices[a0:a1]] (the word's rows, or its groups of rows: see
    row_groups)."""
    for k in range(_n(dst)):
        dst[k] = 0.0
    for p in range(a0, a1):
        src = syn0[indices[p]]
        for k in range(_n(dst)):
            dst[k] += src[k]
    for k in range(_n(dst)):
        dst[k] *= inv


@njit(cache=True, nogil=True, fastmath={"contract"}, **NO_ALIAS)
def _spread(syn0, indices, spread, a0, a1, delta):
    """Every row of the word gets the whole delta (fastText's unsupervised update): a group of rows gets it
    spread[p] times (its rows times the word's uses of each)."""
    for p in range(a0, a1):
        row = syn0[indices[p]]
        g = spread[p]
        for k in range(_n(row)):
            row[k] += g * delta[k]


@njit(cache=True, nogil=True, parallel=True)
def mean_groups(sums, indptr, indices, n_rows, out):
    """out[w] = word w's input vector (the mean of its n_rows[w] rows) from the grouped rows (row_groups)."""
    for w in prange(out.shape[0]):
        _load_hidden(sums, indices, indptr[w], indptr[w + 1], np.float32(1.0) / np.float32(max(n_rows[w], 1)),
                     out[w])


@njit(cache=True, nogil=True, inline="always")
def _score(h, l2):
    f = np.float32(0.0)
    for k in range(_n(h)):
        f += h[k] * l2[k]
    return f


@njit(cache=True, nogil=True, fastmath=True)
def sg_window_hidden(H, D, slots, nc, syn1, out, n_out, alpha, sig_table, nls_table, G, d_out):
    """Skip-gram on one window with shared outputs (HogBatch): each context's hidden vector H[slots[c]]
    predicts out[0] (label 1) and out[1:n_out] (label 0). Input updates are added to D[slots[c]] (applied
    to the rows later), output rows are updated after the window from the values read before it. Returns
    the summed loss."""
    loss = 0.0
    for c in range(nc):
        h = H[slots[c]]
        for o in range(n_out):
            f = _score(h, syn1[out[o]])
            label = np.float32(1.0) if o == 0 else np.float32(0.0)
            s, pair_loss = sig_loss(f, label, sig_table, nls_table)
            G[c, o] = (label - s) * alpha
            loss += pair_loss
    for o in range(n_out):
        e = d_out[o]
        for k in range(_n(e)):
            e[k] = 0.0
        for c in range(nc):
            g = G[c, o]
            h = H[slots[c]]
            for k in range(_n(e)):
                e[k] += g * h[k]
    for c in range(nc):
        d = D[slots[c]]
        for o in range(n_out):
            g = G[c, o]
            l2 = syn1[out[o]]
            for k in range(_n(d)):
                d[k] += g * l2[k]
    for o in range(n_out):
        row = syn1[out[o]]
        e = d_out[o]
        for k in range(_n(row)):
            row[k] += e[k]
    return loss


@njit(cache=True, nogil=True, fastmath=True, **NO_ALIAS)
def sg_window_hidden6(H, D, slots, nc, syn1, out, n_out, alpha, sig_table, nls_table, d_out):
    """sg_window_hidden for negative 5 (at most six output rows), fused as w2v.sg_window_shared6 (the shared
    six-slot window w2v.shared6): context c's delta is added to D[slots[c]]. Slots past n_out repeat out[0]
    with gradient 0."""
    return shared6(H, slots, nc, D, slots, syn1, out, n_out, alpha, sig_table, nls_table, d_out, _n(d_out[0]))


@njit(cache=True, nogil=True, fastmath=True)
def predict_hidden(h, syn1, out, n_out, alpha, sig_table, nls_table, neu1e):
    """h predicts out[0] (label 1) against out[1:n_out] (label 0), each output row updated at once, the
    error for h accumulated in neu1e (word2vec.c's and fastText's order). Returns the loss."""
    loss = 0.0
    for o in range(n_out):
        l2 = syn1[out[o]]
        f = _score(h, l2)
        label = np.float32(1.0) if o == 0 else np.float32(0.0)
        s, pair_loss = sig_loss(f, label, sig_table, nls_table)
        g = (label - s) * alpha
        loss += pair_loss
        for k in range(_n(h)):
            neu1e[k] += g * l2[k]
        for k in range(_n(h)):
            l2[k] += g * h[k]
    return loss


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def train_chunks(ids, sent_ends, chunk_sents, syn0, syn1, indptr, indices, spread, n_rows, keep_prob,
                 alias_prob, alias_idx, sig_table, nls_table, cbow, shared_negatives, cbow_mean, window, negative,
                 alpha0, min_alpha, work_before, total_work, seed, chunk_base, loss_out, pairs_out):
    """Train the subword model on the sentences of one block (chunk q: sentences chunk_sents[q] to
    chunk_sents[q+1]-1). Word w's input vector is the mean of its n_rows[w] rows, held here as the sum of the
    rows syn0[indices[p]] for p in indptr[w]:indptr[w+1], each of which gets a word's update spread[p] times
    (its own rows: once each; groups of rows held as their sum, row_groups: their size). The arguments
    otherwise mean what they mean in w2v.train_chunks (negative sampling only)."""
    width = syn0.shape[1]  # the rows' stored width (w2v_dims.row_width)
    n_chunks = chunk_sents.shape[0] - 1
    max_ctx = 2 * window
    ahead = cbow or shared_negatives  # negatives shared by a window: drawn a position ahead, rows prefetched
    R = 2 * window + 2  # ring of live positions: [p - window, p + window]
    for q in prange(n_chunks):
        state = _stream(seed, chunk_base + q)
        state = state | np.uint64(1)
        s_lo = chunk_sents[q]
        s_hi = chunk_sents[q + 1]
        longest = 0
        for s in range(s_lo, s_hi):
            a0 = sent_ends[s - 1] if s > 0 else 0
            if sent_ends[s] - a0 > longest:
                longest = sent_ends[s] - a0
        sent = np.empty(longest, np.int64)
        slots = np.empty(max_ctx, np.int64)
        out = np.empty(negative + 1, np.int64)
        nxt = np.empty(negative + 1, np.int64)
        n_next = 0
        n_drawn = 0
        G = np.empty((max_ctx, negative + 1), np.float32)
        d_out = aligned_rows(max(negative + 1, 6), width)
        H = aligned_rows(R, width)
        D = aligned_rows(R, width)
        hidden = aligned_rows(2, width)
        neu1 = hidden[0]
        neu1e = hidden[1]
        dim = _n(neu1)  # the vector's length (width's first values)
        loss = 0.0
        pairs = 0
        for s in range(s_lo, s_hi):
            a0 = sent_ends[s - 1] if s > 0 else 0
            a1 = sent_ends[s]
            progress = (work_before + a0) / total_work
            alpha = np.float32(max(min_alpha, alpha0 - (alpha0 - min_alpha) * progress))
            n, state = subsample(ids, a0, a1, keep_prob, state, sent)
            if ahead and n > 0:
                n_next, state = draw_negatives(nxt, negative, sent[0], alias_prob, alias_idx, state)
            loaded = 0   # positions whose hidden vector is in H
            applied = 0  # positions whose update has been spread to their rows
            for p in range(n):
                word = sent[p]
                if ahead:
                    out, nxt = nxt, out
                    n_drawn = n_next
                    if p + 1 < n:
                        n_next, state = draw_ahead(nxt, negative, sent[p + 1], alias_prob, alias_idx, state, syn1)
                state, r = _next(state)
                reduced = np.int64(r % np.uint64(window))
                lo = max(0, p - window + reduced)
                hi = min(n, p + window - reduced + 1)
                while loaded < hi:
                    slot = loaded % R
                    w = sent[loaded]
                    _load_hidden(syn0, indices, indptr[w], indptr[w + 1],
                                 np.float32(1.0) / np.float32(max(n_rows[w], 1)), H[slot])
                    dd = D[slot]
                    for k in range(dim):
                        dd[k] = 0.0
                    loaded += 1
                nc = 0
                for j in range(lo, hi):
                    if j != p:
                        slots[nc] = j % R
                        nc += 1
                if nc > 0:
                    out[0] = word
                    if ahead:
                        n_out = n_drawn
                    else:
                        n_out, state = draw_negatives(out, negative, word, alias_prob, alias_idx, state)
                    if cbow:
                        # fastText's CBOW: the mean over every row of every context word (or, --cbow-sum,
                        # the sum of the context words' vectors)
                        for k in range(dim):
                            neu1[k] = 0.0
                        total = 0
                        for c in range(nc):
                            w = sent[lo + c + (1 if lo + c >= p else 0)]
                            m = n_rows[w]
                            h = H[slots[c]]
                            wt = np.float32(m) if cbow_mean else np.float32(1.0)
                            for k in range(dim):
                                neu1[k] += wt * h[k]
                            total += m
                        if cbow_mean:
                            inv = np.float32(1.0) / np.float32(max(total, 1))
                            for k in range(dim):
                                neu1[k] *= inv
                        for k in range(dim):
                            neu1e[k] = 0.0
                        loss += predict_hidden(neu1, syn1, out, n_out, alpha, sig_table, nls_table, neu1e)
                        for c in range(nc):
                            dd = D[slots[c]]
                            for k in range(dim):
                                dd[k] += neu1e[k]
                        pairs += 1
                    elif shared_negatives and negative == 5:
                        loss += sg_window_hidden6(H, D, slots, nc, syn1, out, n_out, alpha, sig_table, nls_table,
                                                  d_out)
                        pairs += nc
                    elif shared_negatives:
                        loss += sg_window_hidden(H, D, slots, nc, syn1, out, n_out, alpha, sig_table, nls_table,
                                                 G, d_out)
                        pairs += nc
                    else:
                        for c in range(nc):
                            if c > 0:
                                n_out, state = draw_negatives(out, negative, word, alias_prob, alias_idx, state)
                            for k in range(dim):
                                neu1e[k] = 0.0
                            loss += predict_hidden(H[slots[c]], syn1, out, n_out, alpha, sig_table, nls_table,
                                                   neu1e)
                            dd = D[slots[c]]
                            for k in range(dim):
                                dd[k] += neu1e[k]
                            pairs += 1
                while applied <= p - window:  # no later window uses this position
                    w = sent[applied]
                    _spread(syn0, indices, spread, indptr[w], indptr[w + 1], D[applied % R])
                    applied += 1
            while applied < loaded:
                w = sent[applied]
                _spread(syn0, indices, spread, indptr[w], indptr[w + 1], D[applied % R])
                applied += 1
        loss_out[q] = loss
        pairs_out[q] = pairs
