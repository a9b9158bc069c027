"""Character n-grams as fastText builds them, and the subword vectors of a model: a vector for any word.

    >>> ngrams("where", 3, 6)          # fastText's order: '<wh', '<whe', ..., 're>'
    >>> bucket("<wh", 2_000_000)        # fastText's FNV-1a (signed chars) modulo the bucket count
    >>> sv = SubwordVectors(words, minn, maxn, buckets, ngram_matrix)   # what Embeddings.load attaches
    >>> sv.vector("whereabouts")       # mean of its known n-gram rows

A word's input rows in the subword model are its own row (in the vocabulary) and nwords + bucket of every
n-gram of "<word>" (see kernels/subword.py for the exact rules); fastText's end-of-sentence word "</s>" has
no n-grams. The file layout is in docs/subwords.md.
"""
from __future__ import annotations

import numpy as np

from fastemb.errors import FastembError, UnknownWord

EOS = "</s>"                 # fastText's end-of-line word: its own row only
HASH_NAME = "fasttext-fnv1a"  # the hash recorded in files (/subword attrs)
MAX_BUCKETS = 2**31 - 1       # fastText stores the bucket count as int32


def _kernels():
    from fastemb.kernels import subword as K
    return K


def _bracketed(words):
    """(bytes buffer uint8, offsets int64 [W+1], with_word bool [W]) of "<w>" for every word; the end-of-line
    word gets an empty span (no n-grams)."""
    parts, offsets = [], [0]
    for w in words:
        b = b"" if w == EOS else b"<" + w.encode("utf-8") + b">"
        parts.append(b)
        offsets.append(offsets[-1] + len(b))
    buf = np.frombuffer(b"".join(parts), np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
    return buf, np.asarray(offsets, np.int64)


def fnv1a(text) -> int:
    """fastText's Dictionary::hash of a string's UTF-8 bytes (or of bytes): 32-bit FNV-1a with every byte
    sign-extended first, as C's `char` is signed on x86."""
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    buf = np.frombuffer(b, np.uint8) if b else np.zeros(0, np.uint8)
    return int(_kernels().fnv1a(buf, 0, len(b)))


def bucket(ngram, buckets) -> int:
    return fnv1a(ngram) % int(buckets)


def ngram_spans(word, minn, maxn, buckets=MAX_BUCKETS):
    """[(n-gram string, bucket)] of `word` in fastText's order (computeSubwords on "<word>")."""
    if word == EOS or maxn <= 0:
        return []
    b = b"<" + word.encode("utf-8") + b">"
    buf = np.frombuffer(b, np.uint8)
    ids, starts, ends = _kernels().ngram_spans(buf, 0, len(b), int(minn), int(maxn), int(buckets))
    return [(b[s:e].decode("utf-8"), int(i)) for i, s, e in zip(ids.tolist(), starts.tolist(), ends.tolist())]


def ngrams(word, minn, maxn) -> list:
    """The character n-grams of "<word>" fastText uses for `word` (n from minn to maxn characters)."""
    return [g for g, _ in ngram_spans(word, minn, maxn)]


def word_rows(words, minn, maxn, buckets, with_word=True):
    """CSR (indptr, indices: int64) of every word's input rows: its own row w (with_word) then
    len(words) + bucket of each n-gram. Built once per vocabulary by a Numba kernel."""
    buf, offsets = _bracketed(words)
    flags = np.full(len(words), bool(with_word))
    return _kernels().ngram_rows(buf, offsets, flags, int(minn), int(maxn), max(int(buckets), 1), len(words))


def check_settings(minn, maxn, buckets, where="subwords"):
    """The n-gram settings a file declares, checked before anything is built from them."""
    from fastemb.errors import FileError
    for name, v in (("minn", minn), ("maxn", maxn), ("buckets", buckets)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise FileError(f"{where}: {name} is not an integer ({v!r})")
    if not (1 <= minn <= maxn <= 100) or not (1 <= buckets <= MAX_BUCKETS):
        raise FileError(f"{where}: bad n-gram settings (minn {minn}, maxn {maxn}, buckets {buckets}; need "
                        f"1 <= minn <= maxn <= 100 and 1 <= buckets <= {MAX_BUCKETS})")


def _positions(keys, ids) -> np.ndarray:
    """The index of each id in the sorted array `keys`, -1 where it is absent."""
    if not len(keys):
        return np.full(ids.shape, -1, np.int64)
    pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    return np.where(keys[pos] == ids, pos, -1)


def used_buckets(words, minn, maxn, buckets) -> np.ndarray:
    """The buckets the n-grams of `words` fall in (sorted, distinct)."""
    _, idx = word_rows(words, minn, maxn, buckets, with_word=False)
    return np.unique(idx - len(words))


def compact_rows(words, weights, minn, maxn, buckets):
    """word_rows with rows for the used buckets only: (indptr, indices, ngram_buckets). Row n + i (n words) is
    bucket ngram_buckets[i]; a bucket no word uses has no row (it would never be trained). The buckets are
    ordered by weight, the summed `weights` (one per word, e.g. its expected count of training positions) of
    the words that use them, then by bucket: the rows trained most often are neighbours in memory (on the
    benchmark corpus 217k of 2M buckets are used, and an epoch is ~14% faster than over all buckets)."""
    n = len(words)
    indptr, idx = word_rows(words, minn, maxn, buckets)
    ng = idx >= n
    b = idx[ng] - n
    used, inverse = _distinct(b, buckets)
    per_row = np.repeat(np.asarray(weights, np.float64), np.diff(indptr))[ng]
    total = np.bincount(inverse, weights=per_row, minlength=len(used))
    order = np.lexsort((used, -total))
    rank = np.empty(len(used), np.int64)
    rank[order] = np.arange(len(used))
    idx[ng] = n + rank[inverse]
    return indptr, idx, used[order].astype(np.int64)


def _distinct(b, buckets):
    """np.unique(b, return_inverse=True) for bucket ids in [0, buckets): by a table over the buckets (5 bytes a
    bucket) when they are not many more than the ids (no sort: ~10x faster at 2M buckets), else by np.unique."""
    if buckets > max(1 << 22, 4 * len(b)):
        return np.unique(b, return_inverse=True)
    seen = np.zeros(buckets, np.bool_)
    seen[b] = True
    used = np.flatnonzero(seen)
    where = np.empty(buckets, np.int32)  # fewer than 2^31 buckets
    where[used] = np.arange(len(used), dtype=np.int32)
    return used, where[b].astype(np.int64)


class SubwordVectors:
    """The n-gram rows of a subword model, answering vectors for words outside its vocabulary: the mean of
    the rows of the word's n-grams (fastText's get_word_vector). An n-gram counts as known when some
    vocabulary word has it (its row was trained); a word none of whose n-grams is known has no vector
    (UnknownWord), as gensim's FastTextKeyedVectors raises KeyError for a word without n-grams.

    `ngram_vectors` holds one row per bucket (`ngram_buckets` None: row b is bucket b, as a fastText .bin) or
    one row per bucket listed in `ngram_buckets` (a model trained here keeps the buckets its vocabulary uses);
    a bucket without a row counts as a zero row in the mean. `known`, when the caller has computed it, is
    used_buckets(words, minn, maxn, buckets) (else it is computed at the first query of an unknown word)."""

    def __init__(self, words, minn, maxn, buckets, ngram_vectors, word_vectors=None, ngram_buckets=None,
                 known=None):
        self.minn, self.maxn, self.buckets = int(minn), int(maxn), int(buckets)
        self.ngram_vectors = np.ascontiguousarray(ngram_vectors, np.float32)
        self.ngram_buckets = None if ngram_buckets is None else np.ascontiguousarray(ngram_buckets, np.int64)
        rows = self.buckets if self.ngram_buckets is None else len(self.ngram_buckets)
        if self.ngram_vectors.ndim != 2 or self.ngram_vectors.shape[0] != rows:
            raise FastembError(f"{self.ngram_vectors.shape} n-gram rows for {rows} buckets")
        if self.ngram_buckets is not None and (self.ngram_buckets.ndim != 1 or len(self.ngram_buckets) and (
                self.ngram_buckets.min() < 0 or self.ngram_buckets.max() >= self.buckets)):
            raise FastembError(f"n-gram bucket ids outside [0, {self.buckets})")
        # the words' own input rows (a subword model trained here: what continued training starts from)
        self.word_vectors = None if word_vectors is None else np.ascontiguousarray(word_vectors, np.float32)
        if self.word_vectors is not None and self.word_vectors.shape != (len(words), self.ngram_vectors.shape[1]):
            raise FastembError(f"{self.word_vectors.shape} word rows for {len(words)} words")
        self._words = words
        self._known = None if known is None else np.unique(np.asarray(known, np.int64))  # sorted, distinct
        self._sorted = None

    def copy(self) -> "SubwordVectors":
        return SubwordVectors(list(self._words), self.minn, self.maxn, self.buckets, self.ngram_vectors.copy(),
                              None if self.word_vectors is None else self.word_vectors.copy(),
                              None if self.ngram_buckets is None else self.ngram_buckets.copy(), self._known)

    def rows_of(self, bucket_ids) -> np.ndarray:
        """The row of each bucket in ngram_vectors, -1 where the model has none."""
        ids = np.asarray(bucket_ids, np.int64)
        if self.ngram_buckets is None:
            return ids
        if self._sorted is None:
            order = np.argsort(self.ngram_buckets, kind="stable")
            self._sorted = (self.ngram_buckets[order], order)
        keys, order = self._sorted
        pos = _positions(keys, ids)
        return np.where(pos >= 0, order[np.maximum(pos, 0)], -1) if len(keys) else pos

    @property
    def known(self) -> np.ndarray:
        """The buckets some vocabulary word uses (sorted)."""
        if self._known is None:
            self._known = used_buckets(self._words, self.minn, self.maxn, self.buckets)
        return self._known

    def is_known(self, bucket_ids) -> np.ndarray:
        return _positions(self.known, np.asarray(bucket_ids, np.int64)) >= 0

    def vector(self, word):
        """The mean of the word's n-gram rows, or None when it has no known n-gram."""
        ids = [b for _, b in ngram_spans(word, self.minn, self.maxn, self.buckets)]
        if not ids or not self.is_known(ids).any():
            return None
        rows = self.rows_of(ids)
        total = self.ngram_vectors[rows[rows >= 0]].sum(axis=0, dtype=np.float64)
        return (total / len(ids)).astype(np.float32)

    def get(self, word):
        v = self.vector(word)
        if v is None:
            raise UnknownWord(word)
        return v

    def attrs(self) -> dict:
        return {"minn": self.minn, "maxn": self.maxn, "buckets": self.buckets, "hash": HASH_NAME}
