"""A smoothed trigram baseline for the NPLM: interpolated modified Kneser-Ney (Chen & Goodman 1998), written
here in numpy, on the same token ids as the NPLM sees (words outside the vocabulary dropped, each sentence
preceded by boundary tokens, no end-of-sentence event), so perplexities compare exactly.

    lm = KneserNeyTrigram(V).fit(sentences)          # sentences: lists/arrays of ids in 0..V-1
    lm.perplexity(held_out_sentences)

Three discounts per order (D1, D2, D3+ from the count-of-counts), continuation counts for the lower orders,
and the unigram level interpolated with the uniform distribution, so every word has a non-zero probability.
"""
from __future__ import annotations

import math

import numpy as np


def _discounts(counts):
    """Modified Kneser-Ney discounts (D1, D2, D3+) from the count-of-counts n1..n4 of `counts`."""
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if min(n) == 0:  # tiny data: fall back to one absolute discount
        d = n[0] / max(n[0] + 2 * n[1], 1) if n[0] else 0.5
        return np.array([0.0, d, d, d])
    y = n[0] / (n[0] + 2 * n[1])
    return np.array([0.0, 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])


def _discount_of(counts, D):
    return D[np.minimum(counts, 3)]


class KneserNeyTrigram:
    def __init__(self, n_words):
        self.V = int(n_words)
        self.B = self.V + 1          # the boundary token's id is V

    def _trigrams(self, sentences):
        """Keys u·B² + v·B + w of every position (u, v the two previous tokens, the boundary before a start)."""
        B, V = self.B, self.V
        out = []
        for s in sentences:
            s = np.asarray(s, np.int64)
            if len(s) == 0:
                continue
            padded = np.concatenate(([V, V], s))
            out.append((padded[:-2] * B + padded[1:-1]) * B + padded[2:])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def fit(self, sentences):
        B = self.B
        keys, c3 = np.unique(self._trigrams(sentences), return_counts=True)
        self.k3, self.c3 = keys, c3
        self.D3 = _discounts(c3)
        # trigram contexts (u, v): total count and discounted mass
        ctx = keys // B
        self.k_ctx3, inv = np.unique(ctx, return_inverse=True)
        self.tot3 = np.bincount(inv, weights=c3)
        self.gamma3 = np.bincount(inv, weights=_discount_of(c3, self.D3)) / self.tot3
        # middle order: continuation counts N1+(• v w)
        vw = keys % (B * B)
        self.k2, n2 = np.unique(vw, return_counts=True)
        self.n2 = n2
        self.D2 = _discounts(n2)
        self.k_ctx2, inv2 = np.unique(self.k2 // B, return_inverse=True)
        self.tot2 = np.bincount(inv2, weights=n2)
        self.gamma2 = np.bincount(inv2, weights=_discount_of(n2, self.D2)) / self.tot2
        # lowest order: N1+(• w) over the distinct bigrams (v, w), interpolated with the uniform distribution
        w = self.k2 % B
        n1 = np.bincount(w, minlength=B)[:self.V].astype(np.float64)
        D1 = _discounts(n1[n1 > 0].astype(np.int64))
        disc = np.where(n1 > 0, _discount_of(n1.astype(np.int64), D1), 0.0)
        total1 = n1.sum()
        self.p1 = (n1 - disc) / total1 + disc.sum() / total1 / self.V
        return self

    @staticmethod
    def _lookup(sorted_keys, keys):
        i = np.searchsorted(sorted_keys, keys)
        i = np.minimum(i, len(sorted_keys) - 1)
        return i, sorted_keys[i] == keys

    def log_probs(self, sentences) -> np.ndarray:
        """Natural log P of every token of the sentences."""
        B = self.B
        keys = self._trigrams(sentences)
        w = keys % B
        vw = keys % (B * B)
        v = vw // B
        p = self.p1[w]
        # middle order
        i, found = self._lookup(self.k_ctx2, v)
        j, hit = self._lookup(self.k2, vw)
        cont = np.where(hit, self.n2[j], 0)
        p2 = np.where(found, (np.maximum(cont - _discount_of(cont, self.D2), 0) / self.tot2[i]
                              + self.gamma2[i] * p), p)
        # trigram order
        i, found = self._lookup(self.k_ctx3, keys // B)
        j, hit = self._lookup(self.k3, keys)
        c = np.where(hit, self.c3[j], 0)
        p3 = np.where(found, (np.maximum(c - _discount_of(c, self.D3), 0) / self.tot3[i]
                              + self.gamma3[i] * p2), p2)
        return np.log(p3)

    def perplexity(self, sentences) -> float:
        lp = self.log_probs(sentences)
        return math.exp(-lp.mean())
