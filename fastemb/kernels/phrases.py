"""Numba kernels of phrase detection (gensim's Phrases, word2vec.c's word2phrase).

The tokenizer kernel (tokenize.scan) turns text into provisional ids (pids) and counts unigrams; these
kernels take its output:

- count_pairs: counts each candidate phrase -- a word, the connector words after it, the next word -- as
  gensim's learn_vocab does. A two-word candidate is one 64-bit key (pair_key) in an open-addressing table
  of (key, count) rows; a longer one (connector words inside) is the bytes of its pids in a tokenizer table
  (kernels.tokenize's primitives).
- score_pairs: gensim's original_scorer / npmi_scorer over every counted candidate, in gensim's order of
  floating-point operations (same scores bit for bit).
- apply_phrases: gensim's FrozenPhrases.analyze_sentence: greedy, left to right, a candidate joins when the
  delimiter-joined string is in the phrase table; writes the phrased text as bytes.

Every kernel takes only arrays and scalars; the tables are owned by fastemb.phrasing.
"""
import math

import numpy as np
from numba import njit

from fastemb.kernels.prefetch import prefetch
from fastemb.kernels.tokenize import ENTRY, S_ARENA, S_ENTRIES, find_entry, fnv1a, has_room, insert_entry

DONE, NEED_ROOM, OUT_FULL = 0, 1, 2   # the tokenizer's return codes

# count_pairs state (an int64 array that survives between calls)
C_KEY_LEN = 0     # tokens in the candidate being built: 0 none, 1 a start word, 1 + k with k connectors
C_START = 1       # the start word's pid
C_PAIRS = 2       # rows used in the pair table
C_POS = 3         # next id of the buffer to read
C_END = 4         # next sentence end of the buffer to read
C_STATE_SIZE = 5

# apply_phrases state
A_TOKENS = 0      # tokens pending (a start word and connector words; their pids in seg)
A_PENDING = 1     # their bytes
A_OUT = 2         # output bytes used
A_LINE = 3        # tokens written on the current output line
A_POS = 4
A_END = 5
A_FIRST = 6       # the pending start word begins some phrase
A_STATE_SIZE = 7

SCORING_DEFAULT, SCORING_NPMI = 0, 1
# apply_phrases' flags of a word (by pid): a connector word, the first word of some phrase, the last of one
IS_CONN, IS_FIRST, IS_LAST = 1, 2, 4
MIX = np.uint64(0x9E3779B97F4A7C15)
PAIR_EMPTY = np.uint64(0)  # the key of an empty row: a table is np.zeros (a pair's key is never 0, see pair_key)
PID_BYTES = 4                               # a pid in a long candidate's key: 4 bytes, little-endian
AHEAD = 16                                  # count_pairs prefetches the row of the pair this many ids on


@njit(cache=True, nogil=True, inline="always")
def pair_key(a, b):
    """The key of the two-word candidate (pid a, pid b): (a << 32 | b) + 1 (pids stay below 2**32 - 1)."""
    return ((np.uint64(a) << np.uint64(32)) | np.uint64(b)) + np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def pair_home(key, mask):
    """The first row a key probes in a pair table of mask + 1 rows."""
    h = key * MIX
    return np.int64((h ^ (h >> np.uint64(32))) & np.uint64(mask))


@njit(cache=True, nogil=True, inline="always")
def pair_row(pairs, key):
    """The row of `key` in a pair table (pairs[:, 0] keys, pairs[:, 1] counts; a power-of-two number of rows,
    at most half used), or the empty row where it belongs."""
    mask = pairs.shape[0] - 1
    i = pair_home(key, mask)
    while True:
        k = pairs[i, 0]
        if k == key or k == PAIR_EMPTY:
            return i
        i = (i + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def put_pid(key, k, pid):
    for b in range(PID_BYTES):
        key[PID_BYTES * k + b] = (pid >> (8 * b)) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def get_pid(arena, off):
    p = 0
    for b in range(PID_BYTES):
        p |= np.int64(arena[off + b]) << (8 * b)
    return p


@njit(cache=True, nogil=True)
def count_pairs(ids, ends, base, has_conn, is_conn, max_entries, st, pairs, key, l_slots, l_hash, l_off, l_len,
                l_count, l_pid, l_arena, l_state):
    """Count the candidates of ids[st[C_POS]:] (global positions base...; ends: the buffer's sentence ends, as
    global positions). A candidate is gensim's: each non-connector word with the previous non-connector word
    of its sentence and the connector words between them. Two-word candidates go to `pairs`, longer ones to
    the tokenizer table l_* (state l_state), built in `key`. Returns DONE, or NEED_ROOM (the pair table is
    half full, the table l_* or `key` is full, or the two tables hold max_entries: the caller grows or
    prunes and calls again)."""
    n_ids = ids.shape[0]
    n_ends = ends.shape[0]
    klen = st[C_KEY_LEN]
    start = st[C_START]
    n_pairs = st[C_PAIRS]
    n_long = l_state[S_ENTRIES]
    used = l_state[S_ARENA]
    half = pairs.shape[0] // 2
    i = st[C_POS]
    j = st[C_END]
    code = DONE
    mask = pairs.shape[0] - 1
    while i < n_ids:
        if i + AHEAD < n_ids:  # the row of the pair AHEAD places on (unless a connector or sentence end is between)
            prefetch(pairs, pair_home(pair_key(ids[i + AHEAD - 1], ids[i + AHEAD]), mask))
        g = base + i
        while j < n_ends and ends[j] <= g:
            klen = 0
            j += 1
        p = np.int64(ids[i])
        if has_conn and is_conn[p] != 0:
            if klen > 0:
                if PID_BYTES * (klen + 2) > key.shape[0]:
                    code = NEED_ROOM
                    break
                put_pid(key, klen, p)
                klen += 1
            i += 1
            continue
        if klen == 1:
            pk = pair_key(start, p)
            r = pair_row(pairs, pk)
            if pairs[r, 0] == PAIR_EMPTY:
                if n_pairs + n_long >= max_entries or n_pairs >= half:
                    code = NEED_ROOM
                    break
                pairs[r, 0] = pk
                n_pairs += 1
            pairs[r, 1] += np.uint64(1)
        elif klen > 1:
            put_pid(key, 0, start)
            put_pid(key, klen, p)
            length = PID_BYTES * (klen + 1)
            h = fnv1a(key, 0, length)
            e, slot = find_entry(key, 0, length, h, l_slots, l_off, l_len, l_arena)
            if e < 0:
                if n_pairs + n_long >= max_entries or not has_room(n_long, used, length, max_entries, l_slots, l_hash,
                                                                   l_arena):
                    code = NEED_ROOM
                    break
                e = n_long
                insert_entry(key, 0, length, h, slot, e, used, e, l_slots, l_hash, l_off, l_len, l_count, l_pid,
                             l_arena)
                n_long += 1
                used += length
            l_count[e] += 1
        start = p
        klen = 1
        i += 1
    if i == n_ids:
        while j < n_ends:
            klen = 0
            j += 1
    st[C_KEY_LEN] = klen
    st[C_START] = start
    st[C_PAIRS] = n_pairs
    st[C_POS] = i
    st[C_END] = j
    l_state[S_ENTRIES] = n_long
    l_state[S_ARENA] = used
    return code


@njit(cache=True, nogil=True)
def rehash_pairs(old, new):
    """Insert the rows of pair table `old` into the empty pair table `new` (larger)."""
    for r in range(old.shape[0]):
        if old[r, 0] != PAIR_EMPTY:
            s = pair_row(new, old[r, 0])
            new[s, 0] = old[r, 0]
            new[s, 1] = old[r, 1]


@njit(cache=True, nogil=True)
def prune_pairs(pairs, min_reduce):
    """Drop, in place, the rows of a pair table counted min_reduce times or fewer; returns the rows kept.
    The sweep starts after a row that was empty before it (no probe path crosses it) and puts every row it
    keeps back on its probe path, which then holds only rows already placed."""
    cap = pairs.shape[0]
    s0 = 0
    while pairs[s0, 0] != PAIR_EMPTY:
        s0 += 1
    kept = 0
    for k in range(1, cap + 1):
        r = (s0 + k) & (cap - 1)
        key = pairs[r, 0]
        if key == PAIR_EMPTY:
            continue
        count = pairs[r, 1]
        pairs[r, 0] = PAIR_EMPTY
        pairs[r, 1] = 0
        if count > np.uint64(min_reduce):
            t = pair_row(pairs, key)
            pairs[t, 0] = key
            pairs[t, 1] = count
            kept += 1
    return kept


@njit(cache=True, nogil=True)
def mark_members(first, last, t_arena, t_off, t_len, t_hash, t_pid, c_slots, c_off, c_len, c_arena, member, bit):
    """Set `bit` of member[pid] for the tokenizer table's entries first..last-1 whose string is in the set c_*,
    clear it for the others."""
    for e in range(first, last):
        c, _ = find_entry(t_arena, t_off[e], t_len[e], t_hash[e], c_slots, c_off, c_len, c_arena)
        if c >= 0:
            member[t_pid[e]] |= bit
        else:
            member[t_pid[e]] &= ~bit


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
def score_pairs(pairs, l_n, l_off, l_len, l_count, l_arena, remap, uni_count, scoring, min_count, len_vocab,
                total_words, threshold):
    """(candidates, scores) of the candidates scoring above threshold: a candidate below pairs.shape[0] is a
    row of the pair table, above it an entry of the long-candidate table (plus pairs.shape[0]). The first and
    last pid of a candidate are the phrase's two words (remap: pid -> tokenizer entry, -1 once pruned)."""
    rows = pairs.shape[0]
    out_c = np.empty(1024, np.int64)
    out_s = np.empty(1024, np.float64)
    k = 0
    # the least count that can score above threshold (the words' counts are not read for the rest): npmi
    # scores a count below min_count -inf; the default score is <= 0 for a count <= min_count
    least = min_count if scoring == SCORING_NPMI else (min_count + 1 if threshold >= 0.0 else 1)
    for c in range(rows + l_n):
        if c < rows:
            pk = pairs[c, 0]
            count = np.int64(pairs[c, 1])
            if pk == PAIR_EMPTY or count < least:
                continue
            a = np.int64((pk - np.uint64(1)) >> np.uint64(32))
            b = np.int64((pk - np.uint64(1)) & ENTRY)
        else:
            count = l_count[c - rows]
            if count < least:
                continue
            off = l_off[c - rows]
            a = get_pid(l_arena, off)
            b = get_pid(l_arena, off + l_len[c - rows] - PID_BYTES)
        a = remap[a]
        b = remap[b]
        s = score(scoring, uni_count[a] if a >= 0 else 0, uni_count[b] if b >= 0 else 0, count, min_count,
                  len_vocab, total_words)
        if s > threshold:
            if k == out_c.shape[0]:
                out_c = np.concatenate((out_c, np.empty_like(out_c)))
                out_s = np.concatenate((out_s, np.empty_like(out_s)))
            out_c[k] = c
            out_s[k] = s
            k += 1
    return out_c[:k], out_s[:k]


@njit(cache=True, nogil=True, inline="always")
def _emit(out, o, line, src, start, length):
    if line > 0:
        out[o] = 32
        o += 1
    for k in range(length):
        out[o + k] = src[start + k]
    return o + length


@njit(cache=True, nogil=True, inline="always")
def _flush(out, o, line, t_arena, t_off, t_len, seg, ntok):
    """Write the pending tokens (a start word and its connectors: their pids in seg) one by one."""
    for t in range(ntok):
        o = _emit(out, o, line, t_arena, t_off[seg[t]], t_len[seg[t]])
        line += 1
    return o, line


@njit(cache=True, nogil=True)
def _join(scratch, seg, ntok, p, t_arena, t_off, t_len, delim):
    """Write the candidate (the pending tokens, then p) delimiter-joined into scratch; returns its length."""
    dlen = delim.shape[0]
    kl = 0
    for t in range(ntok + 1):
        q = seg[t] if t < ntok else p
        if t > 0:
            for k in range(dlen):
                scratch[kl + k] = delim[k]
            kl += dlen
        for k in range(t_len[q]):
            scratch[kl + k] = t_arena[t_off[q] + k]
        kl += t_len[q]
    return kl


@njit(cache=True, nogil=True)
def apply_phrases(ids, ends, base, t_arena, t_off, t_len, flags, p_slots, p_off, p_len, p_arena, delim, scratch,
                  seg, known, st, out):
    """Phrase ids[st[A_POS]:] (tokens of the tokenizer table t_*, pid = entry) into `out` as text: tokens
    separated by spaces, sentences by newlines, a phrase as its delimiter-joined string. A candidate joins
    when its joined string is an entry of the phrase table p_* (gensim's FrozenPhrases); it is looked up
    (joined in scratch) only when its first word starts some phrase and its last word ends one (flags by
    pid: IS_CONN, IS_FIRST, IS_LAST). `known` remembers the answers for two-word candidates (a direct-mapped
    cache of pair_key rows: key, 1 a phrase / 2 not; valid while the pids are). Returns DONE, NEED_ROOM
    (scratch or seg full: grow them) or OUT_FULL (drain `out`)."""
    n_ids = ids.shape[0]
    n_ends = ends.shape[0]
    ntok = st[A_TOKENS]
    pending = st[A_PENDING]
    o = st[A_OUT]
    line = st[A_LINE]
    i = st[A_POS]
    j = st[A_END]
    first = st[A_FIRST]
    dlen = delim.shape[0]
    cap = out.shape[0]
    kmask = known.shape[0] - 1
    code = DONE
    while True:
        if i + AHEAD < n_ids:  # the word AHEAD places on, and the string of the one half as far
            q = ids[i + AHEAD]
            prefetch(t_off, q)
            prefetch(t_len, q)
            prefetch(flags, q)
        if i + AHEAD // 2 < n_ids:
            prefetch(t_arena, t_off[ids[i + AHEAD // 2]])
        g = base + i
        # sentence ends at or before this token (all of them once the buffer is read)
        while j < n_ends and (i >= n_ids or ends[j] <= g):
            if o + pending + ntok + 1 > cap:
                code = OUT_FULL
                break
            o, line = _flush(out, o, line, t_arena, t_off, t_len, seg, ntok)
            ntok = 0
            pending = 0
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
        if ntok + 1 >= seg.shape[0]:
            code = NEED_ROOM
            break
        # the most this token writes: the pending tokens, or the joined phrase, and itself, with spaces
        joined_len = pending + dlen * ntok + length
        if o + joined_len + ntok + 2 > cap:
            code = OUT_FULL
            break
        fp = flags[p]
        if fp & IS_CONN:
            if ntok > 0:
                seg[ntok] = p
                ntok += 1
                pending += length
            else:
                o = _emit(out, o, line, t_arena, off, length)
                line += 1
        else:
            joined = False
            if ntok > 0 and first != 0 and fp & IS_LAST:
                if joined_len > scratch.shape[0]:
                    code = NEED_ROOM
                    break
                pk = pair_key(seg[0], p)
                r = pair_home(pk, kmask)
                if ntok == 1 and known[r, 0] == pk:
                    e = 0 if known[r, 1] == 1 else -1
                else:
                    kl = _join(scratch, seg, ntok, p, t_arena, t_off, t_len, delim)
                    e, _ = find_entry(scratch, 0, kl, fnv1a(scratch, 0, kl), p_slots, p_off, p_len, p_arena)
                    if ntok == 1:
                        known[r, 0] = pk
                        known[r, 1] = 1 if e >= 0 else 2
                if e >= 0:
                    kl = _join(scratch, seg, ntok, p, t_arena, t_off, t_len, delim)
                    o = _emit(out, o, line, scratch, 0, kl)
                    line += 1
                    joined = True
                    ntok = 0
                    pending = 0
            if ntok > 0 and not joined:
                o, line = _flush(out, o, line, t_arena, t_off, t_len, seg, ntok)
            if not joined:
                seg[0] = p
                ntok = 1
                pending = length
                first = np.int64(fp & IS_FIRST)
        i += 1
    st[A_TOKENS] = ntok
    st[A_PENDING] = pending
    st[A_OUT] = o
    st[A_LINE] = line
    st[A_POS] = i
    st[A_END] = j
    st[A_FIRST] = first
    return code
