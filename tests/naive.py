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
