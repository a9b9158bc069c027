"""Numba kernels of phrase detection (gensim's Phrases, word2vec.c's word2phrase).

The tokenizer kernel (tokenize.scan) turns text into provisional ids (pids) and counts unigrams; these
kernels take its output:

- count_pairs: counts each candidate phrase -- a word, the connector words after it, the next word -- as a
  sequence of pids in an open-addressing table whose keys live in one int64 arena (gensim's learn_vocab).
- score_pairs: gensim's original_scorer / npmi_scorer over every counted candidate, in gensim's order of
  floating-point operations (same scores bit for bit).
- apply_phrases: gensim's FrozenPhrases.analyze_sentence: greedy, left to right, a candidate joins when the
  delimiter-joined string is in the phrase table; writes the phrased text as bytes.

Every kernel takes only arrays and scalars; the tables are owned by fastemb.phrasing.
"""
import math

import numpy as np
from numba import njit

from fastemb.kernels.tokenize import FNV_OFFSET, FNV_PRIME, find_entry

DONE, NEED_ROOM, OUT_FULL = 0, 1, 2   # the tokenizer's return codes

# count_pairs state (an int64 array that survives between calls)
C_KEY_LEN = 0     # tokens in the candidate being built: 0 none, 1 a start word, 1 + k with k connectors
C_ENTRIES = 1     # entries in the pair table
C_ARENA = 2       # arena slots used
C_POS = 3         # next id of the buffer to read
C_END = 4         # next sentence end of the buffer to read
C_STATE_SIZE = 5

# apply_phrases state
A_TOKENS = 0      # tokens pending in the scratch buffer (a start word and connector words)
A_SCRATCH = 1     # scratch bytes used
A_OUT = 2         # output bytes used
A_LINE = 3        # tokens written on the current output line
A_POS = 4
A_END = 5
A_FIRST = 6       # the pending start word begins some phrase
A_STATE_SIZE = 7

SCORING_DEFAULT, SCORING_NPMI = 0, 1
MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def seq_hash(key, length):
    h = FNV_OFFSET
    for k in range(length):
        h = (h ^ np.uint64(key[k])) * FNV_PRIME
    h ^= h >> np.uint64(31)
    h *= MIX
    return h ^ (h >> np.uint64(29))


@njit(cache=True, nogil=True, inline="always")
def pair_hash(pack):
    h = pack * MIX
    return h ^ (h >> np.uint64(32))


LONG = np.uint64(0xFFFFFFFFFFFFFFFF)  # e_pack of a key longer than two ids (pids stay below 2**32 - 1)


@njit(cache=True, nogil=True)
def find_seq(key, length, h, slots, e_hash, e_off, e_len, arena):
    """(entry, slot): the entry holding key[:length], or -1 and the empty slot where it belongs."""
    mask = slots.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        e = slots[i]
        if e < 0:
            return -1, i
        if e_hash[e] == h and e_len[e] == length:
            off = e_off[e]
            k = 0
            while k < length and arena[off + k] == key[k]:
                k += 1
            if k == length:
                return e, i
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def count_pairs(ids, ends, base, has_conn, is_conn, key, max_entries, st, slots, e_hash, e_off, e_len, e_count,
                e_pack, arena):
    """Count the candidates of ids[st[C_POS]:] (global positions base...; ends: the buffer's sentence ends, as
    global positions). A candidate is gensim's: each non-connector word with the previous non-connector word
    of its sentence and the connector words between them. Returns DONE, or NEED_ROOM (the table, the
    arena or `key` is full: the caller grows or prunes and calls again). A two-word key is also kept packed in
    e_pack (first pid << 32 | second pid): the common case is found with one comparison."""
    n_ids = ids.shape[0]
    n_ends = ends.shape[0]
    klen = st[C_KEY_LEN]
    n = st[C_ENTRIES]
    used = st[C_ARENA]
    i = st[C_POS]
    j = st[C_END]
    code = DONE
    while i < n_ids:
        g = base + i
        while j < n_ends and ends[j] <= g:
            klen = 0
            j += 1
        p = ids[i]
        if has_conn and is_conn[p] != 0:
            if klen > 0:
                if klen + 1 >= key.shape[0]:
                    code = NEED_ROOM
                    break
                key[klen] = p
                klen += 1
        else:
            if klen > 0:
                key[klen] = p
                length = klen + 1
                if length == 2:
                    pack = (np.uint64(key[0]) << np.uint64(32)) | np.uint64(p)
                    h = pair_hash(pack)
                    mask = slots.shape[0] - 1
                    slot = np.int64(h & np.uint64(mask))
                    while True:
                        e = slots[slot]
                        if e < 0 or e_pack[e] == pack:
                            break
                        slot = (slot + 1) & mask
                else:
                    pack = LONG
                    h = seq_hash(key, length)
                    e, slot = find_seq(key, length, h, slots, e_hash, e_off, e_len, arena)
                if e < 0:
                    if n >= e_hash.shape[0] or n >= max_entries or used + length > arena.shape[0] \
                            or 2 * (n + 1) > slots.shape[0]:
                        code = NEED_ROOM
                        break
                    e = n
                    slots[slot] = e
                    e_hash[e] = h
                    e_off[e] = used
                    e_len[e] = length
                    e_count[e] = 0
                    e_pack[e] = pack
                    for k in range(length):
                        arena[used + k] = key[k]
                    used += length
                    n += 1
                e_count[e] += 1
            key[0] = p
            klen = 1
        i += 1
    if i == n_ids:
        while j < n_ends:
            klen = 0
            j += 1
    st[C_KEY_LEN] = klen
    st[C_ENTRIES] = n
    st[C_ARENA] = used
    st[C_POS] = i
    st[C_END] = j
    return code


@njit(cache=True, nogil=True)
def compact_pairs(keep, e_hash, e_off, e_len, e_count, e_pack, arena):
    """Drop the entries where keep is False, in place, preserving order; returns (entries, arena slots)."""
    n = 0
    used = 0
    for e in range(keep.shape[0]):
        if not keep[e]:
            continue
        off = e_off[e]
        length = e_len[e]
        for k in range(length):
            arena[used + k] = arena[off + k]
        e_hash[n] = e_hash[e]
        e_off[n] = used
        e_len[n] = length
        e_count[n] = e_count[e]
        e_pack[n] = e_pack[e]
        used += length
        n += 1
    return n, used


@njit(cache=True, nogil=True)
def mark_members(first, last, t_arena, t_off, t_len, t_hash, t_pid, c_slots, c_hash, c_off, c_len, c_arena,
                 member):
    """member[pid] for the tokenizer table's entries first..last-1: is the entry's string in the set c_*?"""
    for e in range(first, last):
        c, _ = find_entry(t_arena, t_off[e], t_len[e], t_hash[e], c_slots, c_hash, c_off, c_len, c_arena)
        member[t_pid[e]] = 1 if c >= 0 else 0


@njit(cache=True, nogil=True)
def score(scoring, count_a, count_b, count_ab, min_count, len_vocab, total_words):
    """gensim's original_scorer / npmi_scorer, with its order of operations (and its -inf cases)."""
    if count_a <= 0 or count_b <= 0 or count_ab <= 0:
        return -np.inf  # gensim's score_candidate: an unknown word or phrase is never a phrase
    if scoring == SCORING_DEFAULT:
        denom = float(count_a) * float(count_b)  # exact: both are below 2**53, as Python's float(a * b)
        return float(count_ab - min_count) / denom * float(len_vocab)
    if count_ab < min_count:
        return -np.inf
    n = float(total_words)
    pa = float(count_a) / n
    pb = float(count_b) / n
    pab = float(count_ab) / n
    ratio = pab / (pa * pb)
    if ratio <= 0.0:
        return -np.inf
    d = -math.log(pab)
    if d == 0.0:
        return -np.inf
    return math.log(ratio) / d


@njit(cache=True, nogil=True)
def score_pairs(n, e_off, e_len, e_count, arena, remap, uni_count, scoring, min_count, len_vocab, total_words,
                threshold):
    """(entries, scores) of the candidates scoring above threshold: the first and last pid of each key are
    the phrase's two words (remap: pid -> tokenizer entry, -1 once pruned)."""
    out_e = np.empty(n, np.int64)
    out_s = np.empty(n, np.float64)
    k = 0
    for e in range(n):
        a = remap[arena[e_off[e]]]
        b = remap[arena[e_off[e] + e_len[e] - 1]]
        ca = uni_count[a] if a >= 0 else 0
        cb = uni_count[b] if b >= 0 else 0
        s = score(scoring, ca, cb, e_count[e], min_count, len_vocab, total_words)
        if s > threshold:
            out_e[k] = e
            out_s[k] = s
            k += 1
    return out_e[:k], out_s[:k]


@njit(cache=True, nogil=True, inline="always")
def _emit(out, o, line, src, start, length):
    if line > 0:
        out[o] = 32
        o += 1
    for k in range(length):
        out[o + k] = src[start + k]
    return o + length


@njit(cache=True, nogil=True)
def _flush(out, o, line, scratch, seg, ntok, dlen):
    """Write the pending tokens (a start word and its connectors, delimiter-joined in scratch) one by one."""
    pos = 0
    for t in range(ntok):
        o = _emit(out, o, line, scratch, pos, seg[t])
        line += 1
        pos += seg[t] + dlen
    return o, line


@njit(cache=True, nogil=True)
def apply_phrases(ids, ends, base, t_arena, t_off, t_len, is_conn, is_first, is_last, p_slots, p_hash, p_off, p_len,
                  p_arena, delim, scratch, seg, st, out):
    """Phrase ids[st[A_POS]:] (tokens of the tokenizer table t_*, pid = entry) into `out` as text: tokens
    separated by spaces, sentences by newlines, a phrase as its delimiter-joined string. A candidate joins
    when its joined string is an entry of the phrase table p_* (gensim's FrozenPhrases); it is looked up
    only when its first word starts some phrase and its last word ends one (is_first, is_last: by pid,
    like is_conn). Returns DONE, NEED_ROOM (scratch or seg full: grow them) or OUT_FULL (drain `out`)."""
    n_ids = ids.shape[0]
    n_ends = ends.shape[0]
    ntok = st[A_TOKENS]
    used = st[A_SCRATCH]
    o = st[A_OUT]
    line = st[A_LINE]
    i = st[A_POS]
    j = st[A_END]
    first = st[A_FIRST]
    dlen = delim.shape[0]
    cap = out.shape[0]
    code = DONE
    while True:
        g = base + i
        # sentence ends at or before this token (all of them once the buffer is read)
        while j < n_ends and (i >= n_ids or ends[j] <= g):
            if o + used + ntok + 1 > cap:
                code = OUT_FULL
                break
            o, line = _flush(out, o, line, scratch, seg, ntok, dlen)
            ntok = 0
            used = 0
            if line > 0:
                out[o] = 10
                o += 1
            line = 0
            j += 1
        if code != DONE or i >= n_ids:
            break
        p = ids[i]
        length = t_len[p]
        off = t_off[p]
        if used + dlen + length > scratch.shape[0] or ntok + 1 >= seg.shape[0]:
            code = NEED_ROOM
            break
        if o + used + dlen + length + ntok + 2 > cap:
            code = OUT_FULL
            break
        if is_conn[p] != 0:
            if ntok > 0:
                for k in range(dlen):
                    scratch[used + k] = delim[k]
                used += dlen
                for k in range(length):
                    scratch[used + k] = t_arena[off + k]
                used += length
                seg[ntok] = length
                ntok += 1
            else:
                o = _emit(out, o, line, t_arena, off, length)
                line += 1
        else:
            joined = False
            if ntok > 0 and first != 0 and is_last[p] != 0:
                kl = used + dlen + length
                for k in range(dlen):
                    scratch[used + k] = delim[k]
                for k in range(length):
                    scratch[used + dlen + k] = t_arena[off + k]
                h = FNV_OFFSET
                for k in range(kl):
                    h = (h ^ np.uint64(scratch[k])) * FNV_PRIME
                e, _ = find_entry(scratch, 0, kl, h, p_slots, p_hash, p_off, p_len, p_arena)
                if e >= 0:
                    o = _emit(out, o, line, scratch, 0, kl)
                    line += 1
                    joined = True
                    ntok = 0
                    used = 0
            if ntok > 0 and not joined:
                o, line = _flush(out, o, line, scratch, seg, ntok, dlen)
            if not joined:
                for k in range(length):
                    scratch[k] = t_arena[off + k]
                used = length
                seg[0] = length
                ntok = 1
                first = np.int64(is_first[p])
        i += 1
    st[A_TOKENS] = ntok
    st[A_SCRATCH] = used
    st[A_OUT] = o
    st[A_LINE] = line
    st[A_POS] = i
    st[A_END] = j
    st[A_FIRST] = first
    return code
