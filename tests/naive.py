"""Slow, plainly written references that fast kernels are tested against."""

MASK = (1 << 64) - 1
NGRAM_SEED, NGRAM_MUL = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9


def ngram_offset(history, size, V):
    """The offset of an n-gram history's slice of V weights in an array of `size` (fastemb.kernels.nplm's hashed
    n-gram features): `history` the previous words, the most recent first (the boundary token is id V)."""
    x = (len(history) + 1) * NGRAM_SEED & MASK
    for w in history:
        x = ((x ^ (w + 1)) * NGRAM_MUL) & MASK
        x ^= x >> 31
    return x % (size - V + 1)


def ngram_offsets(ctx, order, size, V):
    """[[offset of the last k words of each context, for k = 1 .. order − 1]] as lists."""
    return [[ngram_offset([int(row[-1 - i]) for i in range(k)], size, V) for k in range(1, order)] for row in ctx]


def row_groups(indptr, indices, n_rows):
    """The subword model's row groups (kernels.subword.row_groups), plainly: rows used by the same words the
    same number of times form a group; row w (word w's own row) is in group w, the other groups are numbered
    in the order of their first rows. Returns (group_of, sizes, entries): entries[w] = {group: times word w
    names it} (its uses of each row of the group)."""
    W = len(indptr) - 1
    users = [[] for _ in range(n_rows)]
    for w in range(W):
        for r in indices[indptr[w]:indptr[w + 1]]:
            users[int(r)].append(w)
    key = [tuple(sorted(u)) for u in users]
    number = {key[w]: w for w in range(W)}
    for r in range(W, n_rows):
        if key[r] not in number:
            number[key[r]] = W + len([k for k in number if number[k] >= W])
    group_of = [number[key[r]] for r in range(n_rows)]
    sizes = [group_of.count(g) for g in range(len(number))]
    entries = []
    for w in range(W):
        count = {}
        for r in indices[indptr[w]:indptr[w + 1]]:
            g = group_of[int(r)]
            count[g] = count.get(g, 0) + 1
        entries.append({g: c // sizes[g] for g, c in count.items()})
    return group_of, sizes, entries
