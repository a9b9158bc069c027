"""Embeddings: a vocabulary with its vectors, queried on unit-normalised vectors computed once."""
from __future__ import annotations

import numpy as np

from ._query_kernels import topk_rows
from .errors import FastembError


class Embeddings:
    def __init__(self, words, vectors, counts=None, *, context_vectors=None, bias=None, context_bias=None,
                 svd=None, attrs=None):
        self.words = list(words)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise FastembError(f"{self.vectors.shape} vectors for {len(self.words)} words")
        self.counts = np.zeros(len(self.words), np.int64) if counts is None else np.asarray(counts, np.int64)
        self.context_vectors = context_vectors
        self.bias, self.context_bias, self.svd = bias, context_bias, svd
        self.attrs = dict(attrs or {})
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unit = None

    # ---------------------------------------------------------------- container protocol
    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    def __getitem__(self, word):
        return self.vectors[self.id(word)]

    def __repr__(self):
        return f"Embeddings({len(self)} words x {self.dim} dims, algo={self.attrs.get('algo', '?')})"

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def id(self, word) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise FastembError(f"word not in vocabulary: {word!r}") from None

    # ---------------------------------------------------------------- queries
    def normalized(self) -> np.ndarray:
        """Unit-length rows (zero rows stay zero), computed once and cached."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.maximum(norms, np.float32(1e-12))
        return self._unit

    def _query_vectors(self, queries):
        unit = self.normalized()
        rows = []
        for q in queries:
            if isinstance(q, str):
                rows.append(unit[self.id(q)])
            else:
                v = np.asarray(q, dtype=np.float32)
                if v.shape != (self.dim,):
                    raise FastembError(f"query vector has shape {v.shape}, expected ({self.dim},)")
                if not np.isfinite(v).all():
                    raise FastembError("query vector holds non-finite values")
                rows.append(v / max(float(np.linalg.norm(v)), 1e-12))
        return np.vstack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def most_similar(self, query, k=10, restrict=None, exclude=None):
        """Nearest neighbours by cosine of a word or a vector (a list of them: one result list each).
        Query words are excluded from their own results. restrict: search the `restrict` most frequent."""
        if isinstance(query, str):
            single = True
        elif isinstance(query, (list, tuple)):
            single = not any(isinstance(q, (str, np.ndarray, list, tuple)) for q in query)
        else:
            single = np.ndim(query) == 1
        queries = [query] if single else list(query)
        k, n = self._k_and_restrict(k, restrict)
        q = self._query_vectors(queries)
        unit = self.normalized()[:n]
        skip_common = [self.index[w] for w in (exclude or ()) if w in self.index and self.index[w] < n]
        results = []
        batch = 1024
        for b0 in range(0, len(queries), batch):
            part = queries[b0:b0 + batch]
            sims = q[b0:b0 + batch] @ unit.T
            if skip_common:
                sims[:, skip_common] = -np.inf
            own = [(r, self.index[w]) for r, w in enumerate(part) if isinstance(w, str) and self.index[w] < n]
            if own:
                rows, cols = zip(*own)
                sims[list(rows), list(cols)] = -np.inf
            kk = max(min(k, n - len(skip_common) - (1 if own else 0)), 0)
            if kk == 0:
                results.extend([] for _ in part)
                continue
            top, top_sims = topk_rows(np.ascontiguousarray(sims, dtype=np.float32), kk)
            words = self.words
            results.extend([(words[i], float(s)) for i, s in zip(ti, si) if i >= 0]
                           for ti, si in zip(top.tolist(), top_sims.tolist()))
        return results[0] if single else results

    def _k_and_restrict(self, k, restrict):
        """(k, number of candidate rows), checked."""
        from .errors import OptionError
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise OptionError("k", f"must be an integer of at least 1 (got {k!r})")
        if restrict is not None and (isinstance(restrict, bool) or not isinstance(restrict, (int, np.integer))
                                     or restrict < 1):
            raise OptionError("restrict", f"must be an integer of at least 1 (got {restrict!r})")
        n = len(self) if restrict is None else min(int(restrict), len(self))
        return min(int(k), n), n

    def analogy(self, a, b, c, k=1, method="3cosadd", restrict=None):
        """a is to b as c is to ?  (3CosAdd, or 3CosMul of Levy & Goldberg 2014). The question words are never
        answers, so fewer than k answers come back when the candidates run out."""
        from .eval import analogy_scores
        k, n = self._k_and_restrict(k, restrict)
        ids = np.array([[self.id(a), self.id(b), self.id(c)]])
        scores = analogy_scores(self.normalized()[:n], self.normalized()[ids], method)[0]
        order = np.argsort(-scores, kind="stable")
        question = set(ids[0].tolist())
        top = [i for i in order[:k + 3].tolist() if i not in question][:k]
        return [(self.words[i], float(scores[i])) for i in top]

    # ---------------------------------------------------------------- files
    def save(self, path):
        from .store import save_embeddings
        save_embeddings(path, self.words, self.counts, self.vectors, context=self.context_vectors,
                        bias=self.bias, context_bias=self.context_bias, svd=self.svd, attrs=self.attrs)

    @classmethod
    def load(cls, path) -> "Embeddings":
        from .store import load_embeddings
        d = load_embeddings(path)
        return cls(d["words"], d["vectors"], d["counts"], context_vectors=d["context_embedding"],
                   bias=d["bias"], context_bias=d["context_bias"], svd=d["svd"], attrs=d["attrs"])


def load(path, format=None) -> Embeddings:
    """Embeddings from a fastemb HDF5 file, or from word2vec text/binary or GloVe text (format=None
    guesses from the content)."""
    from .files import check_readable
    if format in (None, "hdf5"):
        path = check_readable(path)
        with open(path, "rb") as f:
            is_hdf5 = f.read(8) == b"\x89HDF\r\n\x1a\n"
        if is_hdf5 or format == "hdf5":
            return Embeddings.load(path)
    from .formats import read_vectors
    words, vectors = read_vectors(path, None if format in (None, "hdf5") else format)
    return Embeddings(words, vectors, attrs={"source_file": str(path)})
