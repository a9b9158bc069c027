"""Numba kernels of the tokenizer: split a UTF-8 byte buffer on ASCII whitespace (LF, CR and CRLF end a
sentence), count tokens in an open-addressing hash table whose strings live in one byte arena, and emit
provisional ids.

The table is a set of flat arrays owned by vocab.StringTable; every kernel takes only arrays and scalars.
Entries are numbered in insertion order (e_* arrays); a slot holds its entry's number in the low 32 bits
and the top 32 bits of the entry's hash above them (a tag), so a probe passes other entries without
reading their arrays. Its primitives (fnv1a, find_entry, has_room, insert_entry, rebuild_slots, compact)
also serve tables keyed by other byte strings (the phrase counter's candidates).
"""
import numpy as np
from numba import njit

from fastemb.kernels.prefetch import prefetch

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


TAG = np.uint64(0xFFFFFFFF00000000)   # the hash bits a slot keeps
ENTRY = np.uint64(0xFFFFFFFF)        # the entry bits of a slot (entries stay below 2**31)
EMPTY = -1                           # an empty slot


@njit(cache=True, nogil=True, inline="always")
def fnv1a(buf, start, length):
    """FNV-1a of buf[start:start + length] (the table's hash)."""
    h = FNV_OFFSET
    for k in range(start, start + length):
        h = (h ^ np.uint64(buf[k])) * FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def find_entry(buf, start, length, h, slots, e_off, e_len, arena):
    """(entry, slot): the entry of the string buf[start:start + length] (hash h), or -1 and the empty slot
    where it belongs."""
    mask = slots.shape[0] - 1
    tag = h & TAG
    i = np.int64(h & np.uint64(mask))
    while True:
        v = slots[i]
        if v == EMPTY:
            return -1, i
        if (np.uint64(v) & TAG) == tag:
            e = np.int64(np.uint64(v) & ENTRY)
            if e_len[e] == length:
                off = e_off[e]
                k = 0
                while k < length and arena[off + k] == buf[start + k]:
                    k += 1
                if k == length:
                    return e, i
        i = (i + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def has_room(n, used, length, max_entries, slots, e_hash, arena):
    """Can entry n (a string of `length` bytes, `used` arena bytes taken) be added? (slots at most half full)"""
    return n < e_hash.shape[0] and n < max_entries and used + length <= arena.shape[0] \
        and 2 * (n + 1) <= slots.shape[0]


@njit(cache=True, nogil=True, inline="always")
def insert_entry(buf, start, length, h, slot, e, used, pid, slots, e_hash, e_off, e_len, e_count, e_pid, arena):
    """Make entry e (count 0, provisional id pid) the string buf[start:start + length], stored at arena[used:]
    and found at `slot` (find_entry's empty slot; has_room must have said yes)."""
    slots[slot] = np.int64((h & TAG) | np.uint64(e))
    e_hash[e] = h
    e_off[e] = used
    e_len[e] = length
    e_count[e] = 0
    e_pid[e] = pid
    for k in range(length):
        arena[used + k] = buf[start + k]


# scan works in batches: it finds up to BATCH tokens (and the line ends between them), asking the CPU to
# prefetch each token's slot, then counts them in order. Once the table holds more than DEEP entries (it
# no longer fits in the caches) it also prefetches the entry of the token AHEAD places on (its slot is in
# cache by then) and the string of the token AHEAD2 places on (its entry is): a lookup then rarely waits for
# memory. On a small table these two cost more than they save (2026-12-07: about +10% of scan time on
# KJV's 30k words; -5 to -10% on en.txt's 190k words).
BATCH = 64
AHEAD = 8
AHEAD2 = 4
DEEP = 1 << 16
EV_LINE, EV_TOKEN, EV_TRUNCATED = 0, 1, 2


@njit(cache=True, nogil=True)
def scan(buf, pos, final, max_sentence, max_token, write_ids, max_entries, slots, e_hash, e_off, e_len, e_count,
         e_pid, arena, st, out_ids, out_sents):
    """Consume buf[pos:]. Returns (code, position): DONE with the start of an unfinished trailing token
    (to be carried into the next buffer) or len(buf); NEED_ROOM / OUT_FULL with the position to resume
    from once the caller has grown the table / drained the output buffers."""
    space = SPACE
    n = buf.shape[0]
    mask = slots.shape[0] - 1
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
    # the batch: kind, start, length and hash of each event
    ev_kind = np.empty(2 * BATCH, np.int64)
    ev_pos = np.empty(2 * BATCH, np.int64)
    ev_len = np.empty(2 * BATCH, np.int64)
    ev_hash = np.empty(2 * BATCH, np.uint64)
    code = DONE
    i = pos
    carry = -1  # the start of an unfinished trailing token
    while i < n and carry < 0:
        # find: the events from i, skipping the tail of a truncated token as it goes
        m = 0
        n_found = 0
        a = i
        while a < n and n_found < BATCH and m < 2 * BATCH:
            b = buf[a]
            if space[b]:
                if b == 10 or b == 13:  # LF, CRLF (the LF then ends an empty sentence) and a lone CR end a line
                    ev_kind[m] = EV_LINE
                    ev_pos[m] = a
                    m += 1
                skipping = 0
                a += 1
                continue
            if skipping:
                a += 1
                continue
            h = FNV_OFFSET
            j = a
            limit = min(n, a + max_token)
            while j < limit and not space[buf[j]]:
                h = (h ^ np.uint64(buf[j])) * FNV_PRIME
                j += 1
            truncated = j == a + max_token and j < n and not space[buf[j]]
            if j == n and not final and not truncated:
                carry = a  # the token may go on in the next buffer: the caller carries it
                break
            length = j - a
            ev_kind[m] = EV_TOKEN
            if truncated:
                while length > 1 and (buf[a + length] & 0xC0) == 0x80:
                    length -= 1  # never cut inside a UTF-8 character
                h = fnv1a(buf, a, length)
                ev_kind[m] = EV_TRUNCATED
                skipping = 1
            ev_pos[m] = a
            ev_len[m] = length
            ev_hash[m] = h
            prefetch(slots, np.int64(h & np.uint64(mask)))
            m += 1
            n_found += 1
            a = j
        # count: the events in order; a stop leaves i at the event to resume from (no token is being skipped
        # there: a token event starts outside any skipped tail, and a line end clears it)
        stop = -1
        deep = n_entries > DEEP
        for k in range(m):
            start = ev_pos[k]
            if ev_kind[k] == EV_LINE:
                if sent_len > 0:
                    if write_ids:
                        if n_sents >= sents_cap:
                            code = OUT_FULL
                            stop = k
                            break
                        out_sents[n_sents] = emitted
                        n_sents += 1
                    sent_len = 0
                continue
            if deep and k + AHEAD < m and ev_kind[k + AHEAD] != EV_LINE:
                v = slots[np.int64(ev_hash[k + AHEAD] & np.uint64(mask))]
                if v != EMPTY:
                    f = np.int64(np.uint64(v) & ENTRY)
                    prefetch(e_len, f)
                    prefetch(e_off, f)
                    prefetch(e_count, f)
                    if write_ids:
                        prefetch(e_pid, f)
            if deep and k + AHEAD2 < m and ev_kind[k + AHEAD2] != EV_LINE:
                v = slots[np.int64(ev_hash[k + AHEAD2] & np.uint64(mask))]
                if v != EMPTY:
                    prefetch(arena, e_off[np.int64(np.uint64(v) & ENTRY)])
            length = ev_len[k]
            h = ev_hash[k]
            if write_ids and (n_out >= ids_cap or n_sents >= sents_cap):
                code = OUT_FULL
                stop = k
                break
            e, slot = find_entry(buf, start, length, h, slots, e_off, e_len, arena)
            if e < 0:
                if not has_room(n_entries, used, length, max_entries, slots, e_hash, arena):
                    code = NEED_ROOM
                    stop = k
                    break
                e = n_entries
                insert_entry(buf, start, length, h, slot, e, used, next_pid, slots, e_hash, e_off, e_len, e_count,
                             e_pid, arena)
                next_pid += 1
                n_entries += 1
                used += length
            e_count[e] += 1
            n_tokens += 1
            if ev_kind[k] == EV_TRUNCATED:
                n_truncated += 1
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
        if stop >= 0:
            i = ev_pos[stop]
            skipping = 0
            break
        i = a
    if carry >= 0 and code == DONE:
        i = carry
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
    slots[:] = EMPTY
    mask = slots.shape[0] - 1
    for e in range(n_entries):
        h = e_hash[e]
        i = np.int64(h & np.uint64(mask))
        while slots[i] != EMPTY:
            i = (i + 1) & mask
        slots[i] = np.int64((h & TAG) | np.uint64(e))


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
        e, slot = find_entry(src_arena, off, length, src_hash[i], slots, e_off, e_len, arena)
        if e < 0:
            if not has_room(n_entries, used, length, n_entries + 1, slots, e_hash, arena):
                code = NEED_ROOM
                break
            e = n_entries
            insert_entry(src_arena, off, length, src_hash[i], slot, e, used, src_key[i], slots, e_hash, e_off, e_len,
                         e_count, e_key, arena)
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
