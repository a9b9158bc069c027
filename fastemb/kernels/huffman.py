"""The linear-time Huffman construction of word2vec.c on counts sorted in descending order: two queues (the
leaves, read from the rarest up, and the internal nodes, created in ascending order of weight) replace a
heap. Pure arrays in, arrays out (fastemb/huffman.py wraps and checks)."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def huffman(counts):
    """(codes uint8 [V, L], points int32 [V, L], lengths int32 [V]) for counts sorted descending."""
    v = counts.shape[0]
    lengths = np.zeros(v, np.int32)
    if v < 2:
        return np.zeros((v, 1), np.uint8), np.zeros((v, 1), np.int32), lengths
    weight = np.empty(2 * v - 1, np.float64)
    weight[:v] = counts
    parent = np.zeros(2 * v - 1, np.int64)
    branch = np.zeros(2 * v - 1, np.uint8)
    leaf = v - 1          # next leaf to take (rarest first)
    node = v              # next internal node to take
    for a in range(v - 1):
        picked = np.empty(2, np.int64)
        for k in range(2):
            if leaf >= 0 and (node >= v + a or weight[leaf] <= weight[node]):
                picked[k] = leaf
                leaf -= 1
            else:
                picked[k] = node
                node += 1
        weight[v + a] = weight[picked[0]] + weight[picked[1]]
        parent[picked[0]] = v + a
        parent[picked[1]] = v + a
        branch[picked[1]] = 1
    root = 2 * v - 2
    longest = 0
    for w in range(v):
        n = 0
        b = w
        while b != root:
            b = parent[b]
            n += 1
        lengths[w] = n
        longest = max(longest, n)
    codes = np.zeros((v, longest), np.uint8)
    points = np.zeros((v, longest), np.int32)
    for w in range(v):
        n = lengths[w]
        b = w
        d = n - 1
        while b != root:   # walk up from the leaf; the path is stored root first
            codes[w, d] = branch[b]
            points[w, d] = parent[b] - v
            b = parent[b]
            d -= 1
    return codes, points, lengths
