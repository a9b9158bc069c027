"""Top-k selection, the one helper every ranked answer goes through (neighbours, analogies, CSLS retrieval,
a classifier's labels, a language model's next words): the k largest scores in decreasing order, ties by
the lower index (as a stable sort), never an index whose score is -inf or NaN."""
from __future__ import annotations

import numpy as np


def top_k(scores, k):
    """Indices of the k largest entries of a 1-D array (fewer when fewer are finite or greater than -inf)."""
    s = np.asarray(scores)
    k = int(min(max(k, 0), s.shape[0]))
    if k == 0:
        return np.zeros(0, np.int64)
    if k < s.shape[0]:
        cand = np.argpartition(-s, k - 1)[:k]
        kth = s[cand].min()
        cand = np.flatnonzero(s >= kth)  # every tie of the k-th score, so ties resolve by index
    else:
        cand = np.arange(s.shape[0])
    order = cand[np.lexsort((cand, -s[cand]))][:k]
    return order[np.isfinite(s[order]) | (s[order] == np.inf)]


def top_k_rows(S, k):
    """(indices, values) of the k largest entries of every row of a 2-D array, in decreasing order, ties by
    the lower index; slots beyond a row's entries greater than -inf hold -1 / -inf (Numba kernel: one pass
    over each row, parallel over rows)."""
    from fastemb.kernels.query import topk_rows
    S = np.ascontiguousarray(S, dtype=np.float32)
    k = int(min(max(k, 1), S.shape[1])) if S.shape[1] else 1
    return topk_rows(np.where(np.isnan(S), -np.inf, S).astype(np.float32, copy=False), k)
