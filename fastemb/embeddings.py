"""Embeddings: a vocabulary with its vectors, queried the way gensim's KeyedVectors are.

    emb.most_similar(positive=["king", "woman"], negative=["man"], topn=5)
    emb.similarity("gold", "silver"); emb.doesnt_match(["gold", "silver", "sheep"])
    emb["king"]; "king" in emb; len(emb); list(emb); numpy.asarray(emb)
    emb.to_gensim(); Embeddings.from_gensim(kv)

Queries work on unit-normalised vectors computed once (`get_normed_vectors`); an unknown word raises
`fastemb.UnknownWord`, which is both a `KeyError` (as in gensim) and a `FastembError`. Many queries at once
go through `most_similar_batch` (one matrix product and a Numba top-k per batch).
"""
from __future__ import annotations

import os
from numbers import Integral

import numpy as np

from fastemb.errors import FastembError, OptionError, UnknownWord
from fastemb.ranking import top_k, top_k_rows


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, (str, np.ndarray, Integral)) or (isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], float)):
        return [x]
    return list(x)


class Embeddings:
    def __init__(self, words, vectors, counts=None, *, context_vectors=None, bias=None, context_bias=None,
                 svd=None, attrs=None, model=None, subwords=None):
        self.words = list(words)
        if isinstance(vectors, np.memmap) or getattr(vectors, "dtype", None) == np.float16:
            self.vectors = vectors  # float16 storage, or a read-only map of a file (load(..., mmap=True))
        else:
            self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise FastembError(f"{self.vectors.shape} vectors for {len(self.words)} words")
        self.counts = np.zeros(len(self.words), np.int64) if counts is None else np.asarray(counts, np.int64)
        if self.counts.shape != (len(self.words),):
            raise FastembError(f"{self.counts.shape[0]} counts for {len(self.words)} words")
        self.context_vectors = context_vectors
        self.bias, self.context_bias, self.svd = bias, context_bias, svd
        # a model's other named arrays (e.g. the NPLM's layers), saved under /model/ and checked on loading
        self.model = dict(model) if model else None
        self.attrs = dict(attrs or {})
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise FastembError("the vocabulary holds a word twice")
        # a subword model's n-gram vectors (subwords.SubwordVectors): vectors for words outside the vocabulary
        self.subwords = subwords
        if subwords is not None and subwords.ngram_vectors.shape[1] != self.vectors.shape[1]:
            raise FastembError(f"n-gram vectors of {subwords.ngram_vectors.shape[1]} dimensions for word vectors "
                               f"of {self.vectors.shape[1]}")
        self._unit = None
        self._norms = None

    # ------------------------------------------------------------ gensim's KeyedVectors names
    @property
    def index_to_key(self) -> list:
        return self.words

    @property
    def key_to_index(self) -> dict:
        return self.index

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    dim = vector_size

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    def __iter__(self):
        return iter(self.words)

    def __array__(self, dtype=None, copy=None):
        return self.vectors if dtype is None else self.vectors.astype(dtype)

    def __getitem__(self, key):
        """The vector of a word (or of an index); a list of words gives a matrix. A subword model answers
        words outside its vocabulary from their character n-grams."""
        if isinstance(key, (list, tuple, np.ndarray)) and not isinstance(key, str):
            if self.subwords is None:
                return self.vectors[[self.get_index(k) for k in key]]
            return np.vstack([self.get_vector(k) for k in key]) if len(key) else np.zeros((0, self.dim), np.float32)
        return self.get_vector(key)

    def __repr__(self):
        return f"Embeddings({len(self)} words x {self.dim} dims, algo={self.attrs.get('algo', '?')})"

    def get_index(self, key, default=None) -> int:
        """The row of a word; an int is taken as a row number (as in gensim)."""
        i = self.index.get(key) if isinstance(key, str) else None
        if i is not None:
            return i
        if isinstance(key, Integral) and not isinstance(key, bool) and 0 <= key < len(self.words):
            return int(key)
        if default is not None:
            return default
        raise UnknownWord(key)

    id = get_index

    def has_index_for(self, key) -> bool:
        return self.get_index(key, -1) >= 0

    def get_vector(self, key, norm=False):
        """A word's vector (unit length with norm); for a subword model also of a word outside the vocabulary
        (the mean of its n-gram vectors, as fastText; UnknownWord when none of its n-grams is known)."""
        if self.subwords is not None and isinstance(key, str) and key not in self.index:
            v = self.subwords.get(key)
            return v / max(float(np.linalg.norm(v)), 1e-12) if norm else v
        i = self.get_index(key)
        if norm and self._lean():
            return np.asarray(self.vectors[i], np.float32) / self.norms()[i]
        return (self.get_normed_vectors() if norm else self.vectors)[i]

    def has_vector(self, word) -> bool:
        """Whether get_vector answers `word` (in the vocabulary, or a subword model knows one of its n-grams)."""
        if word in self.index:
            return True
        return self.subwords is not None and isinstance(word, str) and self.subwords.vector(word) is not None

    def get_vecattr(self, key, attr):
        if attr != "count":
            raise KeyError(attr)
        return int(self.counts[self.get_index(key)])

    def get_normed_vectors(self) -> np.ndarray:
        """Unit-length rows (zero rows stay zero), computed once and cached (in the vectors' own type: float16
        vectors give float16 unit vectors; a memory-mapped matrix is read into memory for them)."""
        if self._unit is None:
            norms = self.norms()[:, None]
            if self.vectors.dtype == np.float32 and not isinstance(self.vectors, np.memmap):
                self._unit = self.vectors / norms
            else:
                self._unit = np.empty(self.vectors.shape, np.float32 if self.vectors.dtype == np.float32
                                      else self.vectors.dtype)
                for r0, block in self._blocks():
                    self._unit[r0:r0 + len(block)] = block / norms[r0:r0 + len(block)]
        return self._unit

    def _blocks(self, n=None, rows=1 << 16):
        """(first row, float32 block) over the first n rows: float16 or mapped vectors, a block at a time."""
        n = len(self) if n is None else n
        for r0 in range(0, n, rows):
            yield r0, np.asarray(self.vectors[r0:min(n, r0 + rows)], dtype=np.float32)

    def norms(self) -> np.ndarray:
        """The rows' lengths (float32; at least 1e-12), computed once, a block at a time."""
        if self._norms is None:
            norms = np.empty(len(self), np.float32)
            for r0, block in self._blocks():
                norms[r0:r0 + len(block)] = np.linalg.norm(block, axis=1)
            if not np.isfinite(norms).all():
                raise FastembError("the vectors hold non-finite values (NaN or infinity)")
            self._norms = np.maximum(norms, np.float32(1e-12))
        return self._norms

    def _lean(self) -> bool:
        """float16 or memory-mapped vectors: queries go block by block instead of through unit vectors."""
        return self._unit is None and (self.vectors.dtype != np.float32 or isinstance(self.vectors, np.memmap))

    def cosines(self, vector, n=None) -> np.ndarray:
        """Cosine of the first n words (all by default) with a unit `vector` (float32)."""
        n = len(self) if n is None else n
        if not self._lean():
            return self.get_normed_vectors()[:n] @ vector
        out = np.empty(n, np.float32)
        norms = self.norms()
        for r0, block in self._blocks(n):
            out[r0:r0 + len(block)] = (block @ vector) / norms[r0:r0 + len(block)]
        return out

    normalized = get_normed_vectors

    # ------------------------------------------------------------ queries
    def _candidates(self, restrict_vocab):
        if restrict_vocab is None:
            return len(self)
        if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, Integral) or restrict_vocab < 1:
            raise OptionError("restrict_vocab", f"must be an integer of at least 1 (got {restrict_vocab!r})")
        return min(int(restrict_vocab), len(self))

    @staticmethod
    def _topn(topn):
        if topn is not None and (isinstance(topn, bool) or not isinstance(topn, Integral) or topn < 0):
            raise OptionError("topn", f"must be an integer of at least 0, or None (got {topn!r})")
        return topn

    def _vector(self, item, norm=True):
        if isinstance(item, str) or isinstance(item, Integral):
            return self.get_vector(item, norm=norm)
        v = np.asarray(item, dtype=np.float32)
        if v.shape != (self.dim,):
            raise FastembError(f"a query vector has shape {v.shape}, expected ({self.dim},)")
        if not np.isfinite(v).all():
            raise FastembError("a query vector holds non-finite values")
        return v

    def get_mean_vector(self, keys, weights=None, pre_normalize=True, post_normalize=False):
        """The weighted mean of words (unit vectors when pre_normalize) and raw vectors, as gensim's."""
        if len(keys) == 0:
            raise FastembError("cannot compute the mean of no words")
        weights = np.ones(len(keys), np.float32) if weights is None else np.asarray(weights, np.float32)
        mean = np.zeros(self.dim, np.float32)
        for key, w in zip(keys, weights):
            mean += w * self._vector(key, norm=pre_normalize and not isinstance(key, np.ndarray))
        mean /= max(float(np.abs(weights).sum()), 1e-12)
        if post_normalize:
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
        return mean

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The words nearest (by cosine) to the mean of the positive words/vectors minus the negative ones,
        the query words excluded, as gensim's most_similar. topn=None returns every cosine as an array."""
        topn = self._topn(topn)
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive and not negative:
            raise FastembError("most_similar needs at least one word or vector")
        keys, weights = [], []
        for items, sign in ((positive, 1.0), (negative, -1.0)):
            for item in items:
                if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], (int, float)):
                    keys.append(item[0])
                    weights.append(float(item[1]))
                else:
                    keys.append(item)
                    weights.append(sign)
        mean = self.get_mean_vector(keys, weights, pre_normalize=True, post_normalize=True)
        n = self._candidates(restrict_vocab)
        sims = self.cosines(mean, n)
        if topn is None:
            return sims
        skip = {self.get_index(k, -1) for k in keys if not isinstance(k, np.ndarray)} - {-1}
        order = top_k(sims, topn + len(skip))
        return [(self.words[i], float(sims[i])) for i in order.tolist() if i not in skip][:topn]

    def similar_by_word(self, word, topn=10, restrict_vocab=None):
        return self.most_similar(positive=[word], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_vector(self, vector, topn=10, restrict_vocab=None):
        return self.most_similar(positive=[np.asarray(vector, np.float32)], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_batch(self, queries, topn=10, restrict_vocab=None):
        """One result list per query (a word or a vector), each query's own word excluded: many queries at
        once, by batched matrix products and a Numba top-k (see bench/query_speed.py)."""
        topn = self._topn(topn)
        if topn is None:
            raise OptionError("topn", "must be a number for batched queries")
        n = self._candidates(restrict_vocab)
        unit = self.get_normed_vectors()[:n]
        queries = list(queries)
        results = []
        for b0 in range(0, len(queries), 1024):
            part = queries[b0:b0 + 1024]
            q = np.vstack([self._vector(x) for x in part]) if part else np.zeros((0, self.dim), np.float32)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-12))
            sims = np.ascontiguousarray(q @ unit.T, dtype=np.float32)
            own = [(r, self.index[w]) for r, w in enumerate(part) if isinstance(w, str) and self.index.get(w, n) < n]
            if own:
                rows, cols = zip(*own)
                sims[list(rows), list(cols)] = -np.inf
            kk = min(topn, n - (1 if own else 0))
            if kk <= 0:
                results.extend([] for _ in part)
                continue
            top, top_sims = top_k_rows(sims, kk)
            results.extend([(self.words[i], float(s)) for i, s in zip(ti, si) if i >= 0 and np.isfinite(s)]
                           for ti, si in zip(top.tolist(), top_sims.tolist()))
        return results

    def similarity(self, w1, w2) -> float:
        return float(np.asarray(self.get_vector(w1, norm=True), np.float32) @
                     np.asarray(self.get_vector(w2, norm=True), np.float32))

    def n_similarity(self, ws1, ws2) -> float:
        """Cosine between the means of two sets of words (as gensim: means of the raw vectors)."""
        if not len(ws1) or not len(ws2):
            raise FastembError("n_similarity needs at least one word on each side")
        a, b = self[list(ws1)].mean(axis=0), self[list(ws2)].mean(axis=0)
        return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))

    def distance(self, w1, w2) -> float:
        return 1.0 - self.similarity(w1, w2)

    def distances(self, word_or_vector, other_words=()):
        v = self._vector(word_or_vector)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        u = self.get_normed_vectors() if not other_words else self.get_normed_vectors()[
            [self.get_index(w) for w in other_words]]
        return 1.0 - u @ v

    def doesnt_match(self, words):
        """The word furthest from the mean of the others' unit vectors (unknown words are ignored)."""
        used = [w for w in words if w in self.index]
        if not used:
            raise FastembError("doesnt_match: none of the words is in the vocabulary")
        vectors = self.get_normed_vectors()[[self.index[w] for w in used]]
        mean = vectors.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        return used[int(np.argmin(vectors @ mean))]

    def closer_than(self, w1, w2) -> list:
        """Every word closer to w1 than w2 is."""
        i, j = self.get_index(w1), self.get_index(w2)
        sims = self.get_normed_vectors() @ self.get_normed_vectors()[i]
        return [self.words[k] for k in np.flatnonzero(sims > sims[j]).tolist() if k != i]

    words_closer_than = closer_than

    def rank(self, w1, w2) -> int:
        """The rank of w2 among the neighbours of w1 (1 = nearest)."""
        return len(self.closer_than(w1, w2)) + 1

    def analogy(self, a, b, c, topn=1, method="3cosadd", restrict_vocab=None):
        """a is to b as c is to ?  (3CosAdd, or 3CosMul of Levy & Goldberg 2014). The question words are never
        answers, so fewer than topn answers come back when the candidates run out."""
        from fastemb.eval import analogy_scores
        topn = self._topn(topn) or 1
        n = self._candidates(restrict_vocab)
        ids = [self.get_index(a), self.get_index(b), self.get_index(c)]
        unit = self.get_normed_vectors()
        scores = analogy_scores(unit[:n], unit[np.array([ids])], method)[0]
        order = top_k(scores, topn + 3).tolist()
        return [(self.words[i], float(scores[i])) for i in order if i not in ids][:topn]

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """Levy & Goldberg's 3CosMul over any number of positive and negative words (gensim's signature)."""
        positive, negative = _as_list(positive), _as_list(negative)
        n = self._candidates(restrict_vocab)
        unit = self.get_normed_vectors()
        pos = [(unit[:n] @ self._vector(w)) for w in positive]
        neg = [(unit[:n] @ self._vector(w)) for w in negative]
        scores = np.prod([(s + 1) / 2 for s in pos], axis=0) / (np.prod([(s + 1) / 2 for s in neg], axis=0) + 1e-6)
        skip = {self.get_index(w) for w in positive + negative if not isinstance(w, np.ndarray)}
        order = top_k(scores, topn + len(skip)).tolist()
        return [(self.words[i], float(scores[i])) for i in order if i not in skip][:topn]

    # ------------------------------------------------------------ gensim, both ways
    def to_gensim(self):
        """A gensim KeyedVectors holding these words, vectors and counts (needs gensim)."""
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise FastembError("to_gensim needs gensim: pip install gensim") from None
        kv = KeyedVectors(self.dim, count=len(self), dtype=np.float32)
        kv.vectors[:] = self.vectors
        kv.index_to_key = list(self.words)
        kv.key_to_index = dict(self.index)
        kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
        kv.expandos["count"][:] = self.counts
        return kv

    @classmethod
    def from_gensim(cls, kv) -> "Embeddings":
        """Embeddings from a gensim KeyedVectors (or a model with .wv): words, vectors and counts."""
        kv = getattr(kv, "wv", kv)
        counts = None
        if "count" in getattr(kv, "expandos", {}):
            counts = np.asarray(kv.expandos["count"], np.int64)
        return cls([str(w) for w in kv.index_to_key], np.asarray(kv.vectors, np.float32), counts,
                   attrs={"source": "gensim"})

    @property
    def wv(self) -> "Embeddings":
        """gensim's `model.wv`: the result of fastemb.train is the word vectors themselves."""
        return self

    # ------------------------------------------------------------ files
    def save(self, path, format=None, *, overwrite=False, vocab=None):
        """Write the embeddings to `path`: HDF5 (.h5, .hdf5: everything, context vectors and settings too),
        word2vec text (.vec, .txt), word2vec binary (.bin), or format= "hdf5", "word2vec",
        "word2vec-binary", "glove" (GloVe text) under any name. An existing file is refused unless
        overwrite=True. Text formats: the counts go to `vocab` ('word count' lines, word2vec.c's
        -save-vocab), by default PATH.vocab (what `fastemb export` writes and load() reads back) when the
        counts are known; vocab=False writes none."""
        from fastemb.errors import FileError
        from fastemb.store import check_output, save_embeddings
        fmt = save_format(path, format)
        if vocab not in (None, False) and fmt == "hdf5":
            raise OptionError("vocab", "writes the counts beside a text file; an HDF5 file holds them already")
        if vocab is None:
            vocab = f"{os.fspath(path)}.vocab" if fmt != "hdf5" and self.counts.any() else None
        elif vocab is False:
            vocab = None
        for p in [path] + ([] if vocab is None else [vocab]):
            if os.path.lexists(os.fspath(p)) and not overwrite:
                raise FileError(f"{os.fspath(p)}: exists (give overwrite=True to replace it)")
            check_output(p, True)
        if fmt == "hdf5":
            save_embeddings(path, self.words, self.counts, self.vectors, context=self.context_vectors,
                            bias=self.bias, context_bias=self.context_bias, svd=self.svd, attrs=self.attrs,
                            model=self.model, subwords=self.subwords)
            return
        from fastemb.formats import write_vectors, write_vocab_counts
        write_vectors(path, self.words, self.vectors, fmt)
        if vocab is not None:
            write_vocab_counts(vocab, self.words, self.counts)

    def save_word2vec_format(self, fname, fvocab=None, binary=False, *, overwrite=False):
        """gensim's name: word2vec text (binary=False) or binary, the counts to `fvocab` when given."""
        self.save(fname, "word2vec-binary" if binary else "word2vec", overwrite=overwrite,
                  vocab=False if fvocab is None else fvocab)

    @classmethod
    def load_word2vec_format(cls, fname, fvocab=None, binary=False, limit=None) -> "Embeddings":
        """gensim's name: word2vec text or binary (binary=True), counts from `fvocab`, the first `limit`
        words only when given."""
        return load(fname, "word2vec-binary" if binary else "word2vec", fvocab, limit=limit)

    # ------------------------------------------------------------ gensim's evaluation names
    def _eval_vocab(self, restrict_vocab, case_insensitive):
        """gensim's lookup for its evaluations: the first restrict_vocab words, upper-cased when
        case_insensitive (the more frequent of two spellings wins)."""
        n = self._candidates(restrict_vocab)
        if not case_insensitive:
            return n, {w: i for i, w in enumerate(self.words[:n])}
        return n, {w.upper(): i for i, w in reversed(list(enumerate(self.words[:n])))}

    def evaluate_word_pairs(self, pairs, restrict_vocab=300_000, case_insensitive=True):
        """gensim's name and result: ((pearson, p-value), (spearman, p-value), oov_ratio in percent) on a
        similarity file (a path or a shipped set: 'wordsim353', 'simlex999'); pairs with a word outside the
        first restrict_vocab words are skipped."""
        from scipy.stats import pearsonr, spearmanr
        from fastemb.eval import read_pairs
        n, vocab = self._eval_vocab(restrict_vocab, case_insensitive)
        model, human = [], []
        all_pairs = read_pairs(pairs)
        for a, b, score in all_pairs:
            if case_insensitive:
                a, b = a.upper(), b.upper()
            ia, ib = vocab.get(a), vocab.get(b)
            if ia is None or ib is None:
                continue
            model.append(float(np.asarray(self.get_vector(ia, norm=True), np.float32) @
                               np.asarray(self.get_vector(ib, norm=True), np.float32)))
            human.append(score)
        if len(model) < 3:
            raise FastembError(f"evaluate_word_pairs: only {len(model)} pairs have both words known")
        oov = 100.0 * (len(all_pairs) - len(model)) / max(len(all_pairs), 1)
        p, s = pearsonr(model, human), spearmanr(model, human)
        return (float(p[0]), float(p[1])), (float(s[0]), float(s[1])), oov

    def evaluate_word_analogies(self, analogies, restrict_vocab=300_000, case_insensitive=True):
        """gensim's name and result: (3CosAdd accuracy, [{'section', 'correct', 'incorrect'} per section, then
        'Total accuracy']) on a questions-words file (a path or 'questions-words'), questions with a word
        outside the first restrict_vocab words skipped, as gensim; here the lists hold the questions'
        counts (gensim lists the questions themselves). Words are matched in upper case, as gensim's
        default case_insensitive=True does (fastemb's reader lower-cases the questions, so that is the only
        matching offered)."""
        from fastemb.eval import analogy_scores, read_analogies
        if case_insensitive is not True:
            raise OptionError("case_insensitive", "must be True here (the questions are read lower-cased)")
        n, vocab = self._eval_vocab(restrict_vocab, True)
        unit = self.get_normed_vectors()[:n]
        sections, right_all, seen_all = [], 0, 0
        for name, questions in read_analogies(analogies):
            ids = [[vocab.get(w.upper()) for w in q] for q in questions]
            ok = np.array([q for q in ids if None not in q], dtype=np.int64).reshape(-1, 4)
            right = 0
            for b0 in range(0, len(ok), 512):
                q = ok[b0:b0 + 512]
                scores = analogy_scores(unit, unit[q[:, :3]], "3cosadd")
                rows = np.arange(len(q))
                for j in range(3):
                    scores[rows, q[:, j]] = -np.inf
                right += int(np.sum(np.argmax(scores, axis=1) == q[:, 3]))
            sections.append({"section": name, "correct": right, "incorrect": len(ok) - right})
            right_all, seen_all = right_all + right, seen_all + len(ok)
        sections.append({"section": "Total accuracy", "correct": right_all, "incorrect": seen_all - right_all})
        return (right_all / seen_all if seen_all else 0.0), sections

    @classmethod
    def load(cls, path) -> "Embeddings":
        from fastemb.store import load_embeddings
        d = load_embeddings(path)
        subwords = None
        if d.get("subwords") is not None:
            from fastemb.subwords import SubwordVectors
            s = d["subwords"]
            subwords = SubwordVectors(d["words"], s["minn"], s["maxn"], s["buckets"], s["ngrams"],
                                      word_vectors=s.get("words"), ngram_buckets=s.get("ngram_buckets"),
                                      known=s.get("known"))
        return cls(d["words"], d["vectors"], d["counts"], context_vectors=d["context_embedding"],
                   bias=d["bias"], context_bias=d["context_bias"], svd=d["svd"], attrs=d["attrs"],
                   model=d.get("model"), subwords=subwords)


SAVE_FORMATS = ("hdf5", "word2vec", "word2vec-binary", "glove")
_EXTENSIONS = {".h5": "hdf5", ".hdf5": "hdf5", ".vec": "word2vec", ".txt": "word2vec", ".bin": "word2vec-binary"}


def save_format(path, format=None) -> str:
    """The format Embeddings.save writes to `path`: `format`, else the one its extension names."""
    import os
    if format is not None:
        if format not in SAVE_FORMATS:
            raise OptionError("format", f"must be one of {', '.join(SAVE_FORMATS)} (got {format!r})")
        return format
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _EXTENSIONS:
        raise OptionError("format", f"cannot be told from the name {os.fspath(path)!r}: use a name ending in "
                                    f"{', '.join(_EXTENSIONS)}, or give format= (one of {', '.join(SAVE_FORMATS)})")
    return _EXTENSIONS[ext]


def load(path, format=None, vocab=None, *, limit=None, dtype=np.float32, mmap=False) -> Embeddings:
    """Embeddings from an HDF5 file (fastemb's, or any with /embedding and /vocab/words), a fastText .bin model
    (with its n-gram vectors: vectors for any word), or from word2vec text/binary or GloVe text (format=None
    guesses from the content). For the text formats, word counts come
    from `vocab` (word2vec.c's -save-vocab format: 'word count' lines) or from the FILE.vocab beside it.
    Large files: limit= keeps the first `limit` words (the most frequent, in files sorted by count, as
    gensim's limit=); dtype=np.float16 stores the vectors in half the memory (queries compute in float32, a
    block at a time); mmap=True (HDF5 only) maps the file's /embedding read-only, so that loading reads
    only the vocabulary and the operating system pages vectors in as queries touch them."""
    from fastemb.files import check_readable
    from fastemb.formats import check_dtype, check_limit
    limit, dtype = check_limit(limit), check_dtype(dtype)
    if not isinstance(mmap, bool):
        raise OptionError("mmap", f"must be True or False (got {mmap!r})")
    if format in (None, "hdf5"):
        path = check_readable(path)
        with open(path, "rb") as f:
            is_hdf5 = f.read(8) == b"\x89HDF\r\n\x1a\n"
        if is_hdf5 or format == "hdf5":
            if limit is None and dtype is np.float32 and not mmap:
                return Embeddings.load(path)
            from fastemb.store import load_embeddings
            d = load_embeddings(path, limit=limit, dtype=dtype, mmap=mmap)
            return Embeddings(d["words"], d["vectors"], d["counts"], attrs=d["attrs"])
    if mmap:
        raise OptionError("mmap", f"maps HDF5 files; {os.fspath(path)} is text (convert it once: fastemb import)")
    if format in (None, "fasttext"):
        from fastemb.fasttext_bin import is_fasttext_bin, read_bin
        if format == "fasttext" or is_fasttext_bin(path):
            if limit is not None or dtype is not np.float32:
                raise OptionError("limit" if limit is not None else "dtype",
                                  "applies to word2vec, GloVe and HDF5 files, not to a fastText model")
            return read_bin(path)
    from fastemb.formats import read_vectors, read_vocab_counts
    words, vectors = read_vectors(path, None if format in (None, "hdf5") else format, limit=limit, dtype=dtype)
    counts = read_vocab_counts(path, words, vocab)
    return Embeddings(words, vectors, counts, attrs={"source_file": str(path)})
