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


class SubwordVectors:
    """The n-gram rows of a subword model, answering vectors for words outside its vocabulary: the mean of
    the rows of the word's n-grams (fastText's get_word_vector). An n-gram counts as known when some
    vocabulary word has it (its row was trained); a word none of whose n-grams is known has no vector
    (UnknownWord), as gensim's FastTextKeyedVectors raises KeyError for a word without n-grams."""

    def __init__(self, words, minn, maxn, buckets, ngram_vectors, word_vectors=None):
        self.minn, self.maxn, self.buckets = int(minn), int(maxn), int(buckets)
        self.ngram_vectors = np.ascontiguousarray(ngram_vectors, np.float32)
        if self.ngram_vectors.ndim != 2 or self.ngram_vectors.shape[0] != self.buckets:
            raise FastembError(f"{self.ngram_vectors.shape} n-gram rows for {self.buckets} buckets")
        # the words' own input rows (a subword model trained here: what continued training starts from)
        self.word_vectors = None if word_vectors is None else np.ascontiguousarray(word_vectors, np.float32)
        if self.word_vectors is not None and self.word_vectors.shape != (len(words), self.ngram_vectors.shape[1]):
            raise FastembError(f"{self.word_vectors.shape} word rows for {len(words)} words")
        self._words = words
        self._known = None

    def copy(self) -> "SubwordVectors":
        return SubwordVectors(list(self._words), self.minn, self.maxn, self.buckets, self.ngram_vectors.copy(),
                              None if self.word_vectors is None else self.word_vectors.copy())

    @property
    def known(self) -> np.ndarray:
        """Bool per bucket: used by some vocabulary word."""
        if self._known is None:
            n = len(self._words)
            _, idx = word_rows(self._words, self.minn, self.maxn, self.buckets, with_word=False)
            known = np.zeros(self.buckets, bool)
            known[idx - n] = True
            self._known = known
        return self._known

    def vector(self, word):
        """The mean of the word's n-gram rows, or None when it has no known n-gram."""
        ids = [b for _, b in ngram_spans(word, self.minn, self.maxn, self.buckets)]
        if not ids or not self.known[ids].any():
            return None
        return self.ngram_vectors[ids].mean(axis=0, dtype=np.float64).astype(np.float32)

    def get(self, word):
        v = self.vector(word)
        if v is None:
            raise UnknownWord(word)
        return v

    def attrs(self) -> dict:
        return {"minn": self.minn, "maxn": self.maxn, "buckets": self.buckets, "hash": HASH_NAME}
