"""The Huffman tree of hierarchical softmax (word2vec.c's CreateBinaryTree), shared by word2vec's `hs` output
layer and the NPLM's `softmax="hs"`.

A vocabulary of V words gets V − 1 internal nodes, numbered 0..V−2 (the root is V − 2). Word w's path from
the root is `points[w, :lengths[w]]` (internal nodes, each a row of the output matrix) and `codes[w, :lengths[w]]`
(0 = left, 1 = right): P(w | h) = Π_d σ((1 − 2·code_d) · h·node_d), the binary decision at node d predicting
label 1 − code_d, as word2vec.c and gensim do. Frequent words get short codes: the expected path length is
within one bit of the unigram entropy, so a prediction costs about log2(V) dot products instead of V.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    codes: np.ndarray     # uint8 [V, L]: the branch taken at each node on the path (root first)
    points: np.ndarray    # int32 [V, L]: the internal nodes on the path, each in 0..V-2 (root first)
    lengths: np.ndarray   # int32 [V]: path lengths (≥ 1 when V ≥ 2)

    @property
    def n_nodes(self) -> int:
        return max(len(self.lengths) - 1, 0)

    def mean_length(self, weights) -> float:
        """The expected path length under `weights` (e.g. word counts)."""
        w = np.asarray(weights, np.float64)
        return float((w * self.lengths).sum() / max(w.sum(), 1e-300))


def build(counts) -> Tree:
    """The Huffman tree of `counts` (any order; non-negative; ties broken by index, deterministic)."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError("a Huffman tree needs a non-empty vector of counts")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("Huffman counts must be finite and non-negative")
    from fastemb.kernels.huffman import huffman
    order = np.argsort(-counts.astype(np.float64), kind="stable")   # word2vec.c builds on counts sorted down
    codes, points, lengths = huffman(counts.astype(np.float64)[order])
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return Tree(codes[inverse], points[inverse], lengths[inverse])
