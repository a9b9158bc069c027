"""Numba kernels of the co-occurrence builder.

Pairs are accumulated in fixed point (int64 multiples of 1/cooc.FIXED_SCALE), so sums do not depend on the
order of addition: any number of threads, any spilling pattern gives bit-identical matrices.
A pair key packs (row << col_bits) | col; the tables store key + 1 so that 0 marks an empty slot and
freshly zeroed memory is an empty table.
"""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import splitmix as _splitmix
from fastemb.kernels.rng import stream as _stream

HASH_MULT = np.uint64(0x9E3779B97F4A7C15)
RADIX_BITS = 11


@njit(cache=True, nogil=True, inline="always")
def _insert(keys, vals, shift, key1, weight):
    """Add weight to key1 (= key + 1); returns 1 when a new slot was taken."""
    mask = keys.shape[0] - 1
    i = np.int64((key1 * HASH_MULT) >> shift)
    while True:
        k = keys[i]
        if k == key1:
            vals[i] += weight
            return 0
        if k == 0:
            keys[i] = key1
            vals[i] = weight
            return 1
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def subsample_sentence(ids, a0, a1, keep_prob, seed, sentence, out):
    """Copy the kept tokens of ids[a0:a1] into out; the RNG depends only on (seed, sentence)."""
    state = _stream(seed, sentence)
    n = 0
    for p in range(a0, a1):
        t = ids[p]
        state, r = _splitmix(state)
        if np.float64(r >> np.uint64(11)) * (1.0 / 9007199254740992.0) < keep_prob[t]:
            out[n] = t
            n += 1
    return n


@njit(parallel=True, cache=True, nogil=True)
def count_pairs(ids, sent_ends, sent_base, w_next, w_stop, keep_prob, seed, window, weights, symmetric,
                col_bits, t_keys, t_vals, t_used, max_used, shift):
    """Each worker w counts sentences w_next[w]..w_stop[w]-1 into its own table until the table holds
    max_used entries; w_next is advanced so the caller can spill and call again."""
    n_workers = w_next.shape[0]
    for w in prange(n_workers):
        keys = t_keys[w]
        vals = t_vals[w]
        used = t_used[w]
        subsample = keep_prob.shape[0] > 0
        tok = np.empty(1, np.uint32)
        s = w_next[w]
        while s < w_stop[w] and used < max_used:
            a0 = sent_ends[s - 1] if s > 0 else 0
            a1 = sent_ends[s]
            if subsample:
                if tok.shape[0] < a1 - a0:
                    tok = np.empty(a1 - a0, np.uint32)
                n = subsample_sentence(ids, a0, a1, keep_prob, seed, sent_base + s, tok)
                sent = tok[:n]
            else:
                n = a1 - a0
                sent = ids[a0:a1]
            for i in range(n):
                a = np.uint64(sent[i])
                for d in range(1, window + 1):
                    j = i + d
                    if j >= n:
                        break
                    b = np.uint64(sent[j])
                    if symmetric:
                        if a <= b:
                            key1 = ((a << col_bits) | b) + np.uint64(1)
                        else:
                            key1 = ((b << col_bits) | a) + np.uint64(1)
                    else:  # one-sided: the row word sees its left context
                        key1 = ((b << col_bits) | a) + np.uint64(1)
                    used += _insert(keys, vals, shift, key1, weights[d])
            s += 1
        w_next[w] = s
        t_used[w] = used


@njit(cache=True, nogil=True)
def rehash(old_keys, old_vals, keys, vals, shift):
    for i in range(old_keys.shape[0]):
        if old_keys[i] != 0:
            _insert(keys, vals, shift, old_keys[i], old_vals[i])


@njit(cache=True, nogil=True)
def radix_sort(keys, vals, key_bits):
    """Sort (keys, vals) by keys in place (LSD radix, RADIX_BITS per pass over the low key_bits)."""
    n = keys.shape[0]
    tk = np.empty_like(keys)
    tv = np.empty_like(vals)
    nb = 1 << RADIX_BITS
    src_k, src_v, dst_k, dst_v = keys, vals, tk, tv
    passes = 0
    shift = 0
    while shift < key_bits:
        count = np.zeros(nb + 1, np.int64)
        sh = np.uint64(shift)
        m = np.uint64(nb - 1)
        for i in range(n):
            count[np.int64((src_k[i] >> sh) & m) + 1] += 1
        for r in range(nb):
            count[r + 1] += count[r]
        for i in range(n):
            r = np.int64((src_k[i] >> sh) & m)
            p = count[r]
            dst_k[p] = src_k[i]
            dst_v[p] = src_v[i]
            count[r] = p + 1
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
        passes += 1
        shift += RADIX_BITS
    if passes % 2 == 1:
        keys[:] = src_k
        vals[:] = src_v


@njit(cache=True, nogil=True)
def extract(keys1, vals, symmetric, col_bits):
    """Table contents as (key, value) pairs, the mirror image added in symmetric mode (the diagonal
    doubled: a pair (a, a) is seen from both ends)."""
    n = 0
    for i in range(keys1.shape[0]):
        if keys1[i] != 0:
            n += 1
    size = 2 * n if symmetric else n
    out_k = np.empty(size, np.uint64)
    out_v = np.empty(size, np.int64)
    mask = (np.uint64(1) << col_bits) - np.uint64(1)
    m = 0
    for i in range(keys1.shape[0]):
        k1 = keys1[i]
        if k1 == 0:
            continue
        if vals[i] < 0 or (symmetric and vals[i] > 4611686018427387903):
            return out_k[:0], out_v[:0], True  # an int64 sum overflowed
        key = k1 - np.uint64(1)
        out_k[m] = key
        out_v[m] = vals[i]
        m += 1
        if symmetric:
            row = key >> col_bits
            col = key & mask
            if row == col:
                out_v[m - 1] = 2 * vals[i]
            else:
                out_k[m] = (col << col_bits) | row
                out_v[m] = vals[i]
                m += 1
    return out_k[:m], out_v[:m], False


@njit(cache=True, nogil=True)
def sum_duplicates(keys, vals):
    """Sorted keys -> unique keys with summed values (in place; returns the new length, -1 on overflow)."""
    n = keys.shape[0]
    if n == 0:
        return 0
    m = 0
    for i in range(1, n):
        if keys[i] == keys[m]:
            if vals[m] > 9223372036854775807 - vals[i]:
                return -1
            vals[m] += vals[i]
        else:
            m += 1
            keys[m] = keys[i]
            vals[m] = vals[i]
    return m + 1
