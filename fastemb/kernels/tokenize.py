"""Numba kernels of the tokenizer: split a UTF-8 byte buffer on ASCII whitespace (LF, CR and CRLF end a
sentence), count tokens in an open-addressing hash table whose strings live in one byte arena, and emit
provisional ids.

The table is a set of flat arrays owned by vocab.StringTable; every kernel takes only arrays and scalars.
"""
import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)

# Scanner state slots (an int64 array that survives between calls).
S_SKIPPING = 0      # inside an over-long token whose tail is being skipped
S_SENT_LEN = 1      # tokens in the sentence being read
S_OUT = 2           # ids in the output buffer
S_SENTS = 3         # sentence ends in the output buffer
S_EMITTED = 4       # tokens emitted since the start (global position of the next token)
S_ENTRIES = 5       # entries in the table
S_ARENA = 6         # bytes used in the arena
S_NEXT_PID = 7      # next provisional id
S_TRUNCATED = 8     # tokens cut at max_token_bytes
S_TOKENS = 9        # tokens counted (all, in or out of a sentence)
STATE_SIZE = 10

DONE, NEED_ROOM, OUT_FULL = 0, 1, 2


# str.split()'s ASCII separators, plus NUL: a NUL inside a word cannot be stored in HDF5 strings and in
# text it only comes from binary junk or a misread UTF-16 file.
SPACE = np.zeros(256, np.bool_)
for _b in (0, 9, 10, 11, 12, 13, 28, 29, 30, 31, 32):
    SPACE[_b] = True


@njit(cache=True, nogil=True)
def find_entry(buf, start, length, h, slots, e_hash, e_off, e_len, arena):
    """(entry, slot): the entry of the token, or -1 and the empty slot where it belongs."""
    mask = slots.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        e = slots[i]
        if e < 0:
            return -1, i
        if e_hash[e] == h and e_len[e] == length:
            off = e_off[e]
            k = 0
            while k < length and arena[off + k] == buf[start + k]:
                k += 1
            if k == length:
                return e, i
        i = (i + 1) & mask


@njit(cache=True, nogil=True)
def scan(buf, pos, final, max_sentence, max_token, write_ids, max_entries, slots, e_hash, e_off, e_len, e_count,
         e_pid, arena, st, out_ids, out_sents):
    """Consume buf[pos:]. Returns (code, position): DONE with the start of an unfinished trailing token
    (to be carried into the next buffer) or len(buf); NEED_ROOM / OUT_FULL with the position to resume
    from once the caller has grown the table / drained the output buffers."""
    space = SPACE
    n = buf.shape[0]
    # Counters live in locals inside the loop (LLVM cannot keep array slots in registers).
    skipping = st[S_SKIPPING]
    sent_len = st[S_SENT_LEN]
    n_out = st[S_OUT]
    n_sents = st[S_SENTS]
    emitted = st[S_EMITTED]
    n_entries = st[S_ENTRIES]
    used = st[S_ARENA]
    next_pid = st[S_NEXT_PID]
    n_truncated = st[S_TRUNCATED]
    n_tokens = st[S_TOKENS]
    ids_cap = out_ids.shape[0]
    sents_cap = out_sents.shape[0]
    code = DONE
    i = pos
    while i < n:
        b = buf[i]
        if space[b]:
            if b == 10 or b == 13:  # LF, CRLF (the LF then ends an empty sentence) and a lone CR end a line
                if sent_len > 0:
                    if write_ids:
                        if n_sents >= sents_cap:
                            code = OUT_FULL
                            break
                        out_sents[n_sents] = emitted
                        n_sents += 1
                    sent_len = 0
            skipping = 0
            i += 1
            continue
        if skipping:
            i += 1
            continue
        h = FNV_OFFSET
        j = i
        limit = min(n, i + max_token)
        while j < limit and not space[buf[j]]:
            h = (h ^ np.uint64(buf[j])) * FNV_PRIME
            j += 1
        truncated = j == i + max_token and j < n and not space[buf[j]]
        if j == n and not final and not truncated:
            break  # the token may go on in the next buffer: the caller carries it
        length = j - i
        if truncated:
            while length > 1 and (buf[i + length] & 0xC0) == 0x80:
                length -= 1  # never cut inside a UTF-8 character
            h = FNV_OFFSET
            for k in range(i, i + length):
                h = (h ^ np.uint64(buf[k])) * FNV_PRIME
        if write_ids and (n_out >= ids_cap or n_sents >= sents_cap):
            code = OUT_FULL
            break
        e, slot = find_entry(buf, i, length, h, slots, e_hash, e_off, e_len, arena)
        if e < 0:
            if n_entries >= e_hash.shape[0] or n_entries >= max_entries or used + length > arena.shape[0] \
                    or 2 * (n_entries + 1) > slots.shape[0]:
                code = NEED_ROOM
                break
            e = n_entries
            slots[slot] = e
            e_hash[e] = h
            e_off[e] = used
            e_len[e] = length
            e_count[e] = 0
            e_pid[e] = next_pid
            for k in range(length):
                arena[used + k] = buf[i + k]
            next_pid += 1
            n_entries += 1
            used += length
        e_count[e] += 1
        n_tokens += 1
        if truncated:
            n_truncated += 1
            skipping = 1
        if write_ids:
            out_ids[n_out] = e_pid[e]
            n_out += 1
        emitted += 1
        sent_len += 1
        if sent_len >= max_sentence:
            if write_ids:
                out_sents[n_sents] = emitted
                n_sents += 1
            sent_len = 0
        i = j
    st[S_SKIPPING] = skipping
    st[S_SENT_LEN] = sent_len
    st[S_OUT] = n_out
    st[S_SENTS] = n_sents
    st[S_EMITTED] = emitted
    st[S_ENTRIES] = n_entries
    st[S_ARENA] = used
    st[S_NEXT_PID] = next_pid
    st[S_TRUNCATED] = n_truncated
    st[S_TOKENS] = n_tokens
    return code, i


@njit(cache=True, nogil=True)
def rebuild_slots(slots, e_hash, n_entries):
    slots[:] = -1
    mask = slots.shape[0] - 1
    for e in range(n_entries):
        i = np.int64(e_hash[e] & np.uint64(mask))
        while slots[i] >= 0:
            i = (i + 1) & mask
        slots[i] = e


@njit(cache=True, nogil=True)
def compact(keep, e_hash, e_off, e_len, e_count, e_pid, arena):
    """Drop the entries where keep is False, in place, preserving order; returns (entries, arena bytes)."""
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
        e_pid[n] = e_pid[e]
        used += length
        n += 1
    return n, used


@njit(cache=True, nogil=True)
def merge(src_arena, src_off, src_len, src_hash, src_count, src_key, start, stop, slots, e_hash, e_off, e_len,
          e_count, e_key, arena, st, where):
    """Add the source table's entries start..stop-1 to this table: counts add up, an entry's key (e_pid: the
    order of first occurrence) becomes the smaller of the two; where[i] = the entry of source entry i.
    Returns (DONE, stop), or (NEED_ROOM, i) to resume from i once the caller has grown the table."""
    n_entries = st[S_ENTRIES]
    used = st[S_ARENA]
    code = DONE
    i = start
    while i < stop:
        length = src_len[i]
        off = src_off[i]
        e, slot = find_entry(src_arena, off, length, src_hash[i], slots, e_hash, e_off, e_len, arena)
        if e < 0:
            if n_entries >= e_hash.shape[0] or used + length > arena.shape[0] or 2 * (n_entries + 1) > slots.shape[0]:
                code = NEED_ROOM
                break
            e = n_entries
            slots[slot] = e
            e_hash[e] = src_hash[i]
            e_off[e] = used
            e_len[e] = length
            e_count[e] = 0
            e_key[e] = src_key[i]
            for k in range(length):
                arena[used + k] = src_arena[off + k]
            n_entries += 1
            used += length
        elif src_key[i] < e_key[e]:
            e_key[e] = src_key[i]
        e_count[e] += src_count[i]
        where[i] = e
        i += 1
    st[S_ENTRIES] = n_entries
    st[S_ARENA] = used
    return code, i


@njit(cache=True, nogil=True)
def remap(pids, ids_of, ends, kept_before, last_end, out_ids, out_ends):
    """Encode a block of provisional ids: out_ids gets ids_of[pid] for every pid whose id is not -1 (out of
    the vocabulary: dropped); `ends` are the sentence ends that fall in this block (positions after the
    block's first pid + 1, ascending) and become positions in the kept stream (plus kept_before), a sentence
    left empty (its end equal to the last one written, last_end) dropped. Returns (ids, ends written)."""
    n = 0
    ne = 0
    s = 0
    n_ends = ends.shape[0]
    while s < n_ends and ends[s] <= 0:
        s += 1
    for i in range(pids.shape[0]):
        v = ids_of[pids[i]]
        if v >= 0:
            out_ids[n] = v
            n += 1
        while s < n_ends and ends[s] == i + 1:
            end = kept_before + n
            if end > last_end:
                out_ends[ne] = end
                ne += 1
                last_end = end
            s += 1
    return n, ne
