"""Subsampling of frequent words (Mikolov et al. 2013, word2vec.c's formula), shared by the word2vec trainers,
the co-occurrence counts and their Dask tasks: the one place the formula lives."""
from __future__ import annotations

import numpy as np


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """Keep a word of count c with probability min(1, (sqrt(c/(tT)) + 1)·tT/c), t = `sample`, T = the total
    count (word2vec.c and gensim). An empty array when `sample` <= 0 (the kernels then keep every token)."""
    if sample <= 0:
        return np.zeros(0, np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)
