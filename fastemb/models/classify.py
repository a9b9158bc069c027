"""Text classification with an embedding bag (fastText's supervised mode): options, training with checkpoints and
resume (fastemb.checkpoint's policy), and the `Classifier` (predict, test, save, load).

A document is the mean of the input vectors of its words and, with `ngrams` > 1, of its hashed word n-grams
(fastText's -wordNgrams); a linear layer (labels × dim) and a softmax give the label probabilities. Training
is SGD on the softmax cross-entropy, back-propagated into the input vectors, with the learning rate decayed
linearly to 0 over all epochs (fastText's schedule), Hogwild over chunks of documents (_classify_kernels).
Unlike fastText, which reads the file in order, the documents are shuffled every epoch (seeded).

Data is text in fastText's format: whitespace-separated tokens, one document a line; tokens that start with
`label_prefix` ("__label__") are its labels, anywhere in the line, the rest is its text. It is read by the
corpus reader every other command uses (files, '-' for stdin, .gz/.bz2/.xz, byte-order marks, invalid UTF-8
replaced and counted) in two passes: the vocabulary pass tokenizes the text once into an id file on disk,
then that file is read block by block into the documents' id arrays (4 bytes a token in memory).

    import fastemb.models.classify as C
    clf = C.train("train.txt", ngrams=2, epochs=5)
    clf.predict(["and jesus said unto them"], k=3)
    clf.test("test.txt")["accuracy"]
    clf.save("clf.h5"); clf = C.Classifier.load("clf.h5")
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from fastemb.corpus import CorpusOptions, tokenize
from fastemb.errors import FastembError, FileError, OptionError, param
from fastemb.options import DIM, EPOCHS, SEED, THREADS, Options, Spec, above_at_most, between
from fastemb.progress import log
from fastemb.ranking import top_k_rows
from fastemb.seeding import generator

CHUNK_TOKENS = 8192     # Hogwild unit: documents of about this many tokens share one RNG and scratch
BLOCK_CHUNKS = 128      # chunks per kernel call (~1M tokens): progress and Ctrl-C are seen between calls
READ_BLOCK_TOKENS = 1 << 22
MAX_LINE_TOKENS = 1 << 24  # a line is one document: the reader splits only lines longer than this
CONTENT = "classifier"
CHECKPOINT_KIND = "classify"  # the `algo` of its checkpoints' record (fastemb.checkpoint.OTHER_TRAINERS)


def _prefix_check(v):
    if not v:
        return "must not be empty"
    if any(c.isspace() for c in v) or "\x00" in v:
        return "must not hold whitespace"
    return None


MIN_COUNT = CorpusOptions.specs()["min_count"][1]  # the one meaning of min_count (corpus.CorpusOptions)
LR = Spec(float, "Learning rate at the start, decayed linearly to 0 over all epochs (fastText's -lr).",
          check=above_at_most(0, 100))
NGRAMS = Spec(int, "Word n-grams: 1 = words only, 2 = words and hashed bigrams, 3 = and trigrams (fastText's "
                   "-wordNgrams).", check=between(1, 10))
BUCKETS = Spec(int, "Hash buckets (input rows) shared by the word n-grams when ngrams > 1 (fastText's -bucket: "
                    "2,000,000; here 200,000: 80 MB at dim 100).", check=between(1, 100_000_000))
LABEL_PREFIX = Spec(str, "Tokens that start with this are a line's labels, the rest its text.", check=_prefix_check)
EOS_WORD = Spec(bool, "End every document with the word </s> as fastText does (its vector is part of every "
                      "mean, and of the last n-grams: a learned offset; measured +1 to 1.5 points of accuracy on "
                      "the KJV tasks).", flags="--eos/--no-eos")
EOS = "</s>"


@dataclass(frozen=True)
class ClassifierOptions(Options):
    """The embedding-bag classifier. Defaults are fastText's supervised ones (lr 0.1, dim 100, 5 epochs,
    min_count 1, word n-grams 1, the end-of-line word </s>) except the bucket count (200,000 instead of
    2,000,000). With `init`, dim is that of the vectors given."""
    dim: int = DIM(100)
    epochs: int = EPOCHS(5)
    lr: float = LR(0.1)
    min_count: int = MIN_COUNT(1)
    ngrams: int = NGRAMS(1)
    buckets: int = BUCKETS(200_000)
    label_prefix: str = LABEL_PREFIX("__label__")
    eos: bool = EOS_WORD(True)
    seed: int = SEED(1)
    threads: Optional[int] = THREADS(None)

    @property
    def bucket_rows(self) -> int:
        """Input rows of the n-gram buckets (none with words only)."""
        return self.buckets if self.ngrams > 1 else 0


def _kernels():
    from fastemb.kernels import classify as _classify_kernels
    return _classify_kernels


def word_hashes(words) -> np.ndarray:
    """FNV-1a (64 bits) of each word's UTF-8 bytes: what n-gram buckets are computed from."""
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
    return _kernels().fnv1a(data, offsets)


def _eos_hash():
    return word_hashes([EOS])[0]


def ngram_bucket(words, buckets) -> int:
    """The bucket (0..buckets-1) of the word n-gram `words` (a list of at least 2 words); its input row is
    len(vocabulary) + bucket. Stable across runs and platforms: FNV-1a over each word, folded as fastText
    does (h·116049371 + next), then mixed by splitmix64's finaliser."""
    return int(_kernels().ngram_bucket(word_hashes(words), int(buckets)))


# ------------------------------------------------------------------------------------------ reading
@dataclass
class _Docs:
    """Labelled documents as id arrays: tok (int32 indices into `types`), doc_ends (int64), lab (int32
    indices into `label_types`), lab_ends (int64); types / label_types are the distinct text tokens and
    label tokens (prefix stripped) in descending count, ties by first occurrence."""
    types: list
    type_counts: np.ndarray
    label_types: list
    tok: np.ndarray
    doc_ends: np.ndarray
    lab: np.ndarray
    lab_ends: np.ndarray
    lines: int = 0           # non-empty lines read
    no_text: int = 0         # lines with labels but no text (skipped)
    no_label: int = 0        # lines with text but no label (skipped)
    name: str = ""

    @property
    def n_docs(self) -> int:
        return int(self.doc_ends.shape[0])


def _source(data):
    from fastemb.corpus import Sentences
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data), ("<stdin>" if os.fspath(data) == "-" else os.fspath(data))
    if isinstance(data, (bytes, bytearray)) or not hasattr(data, "__iter__"):
        raise FastembError(f"data must be a path or an iterable of lines (got {type(data).__name__})")
    return Sentences(data), "the lines given"


def read_labelled(data, label_prefix="__label__", *, tmp_dir=None) -> _Docs:
    """Read labelled text (a path, '-' or an iterable of lines) into id arrays: one pass tokenizes it into an
    id file (vocab.build_vocab), a second reads that file block by block. Lines without a label, and lines with
    labels but no text, are skipped and counted."""
    from fastemb.vocab import build_vocab, iter_blocks
    source, name = _source(data)
    options = CorpusOptions(min_count=1, max_sentence_length=MAX_LINE_TOKENS)
    with build_vocab(source, options, encode=True, work_dir=tmp_dir) as enc:
        words, counts = enc.vocab.words, enc.vocab.counts
        is_label = np.fromiter((w.startswith(label_prefix) for w in words), bool, len(words))
        text_ids, label_ids = np.flatnonzero(~is_label), np.flatnonzero(is_label)
        compact = np.empty(len(words), np.int64)
        compact[text_ids] = np.arange(len(text_ids))
        compact[label_ids] = np.arange(len(label_ids))
        toks, labs, doc_lens, lab_lens = [], [], [], []
        lines = no_text = no_label = 0
        for ids, ends, _ in iter_blocks(enc, READ_BLOCK_TOKENS):
            lengths = np.diff(ends, prepend=0)
            sentence = np.repeat(np.arange(len(ends)), lengths)
            lab_mask = is_label[ids]
            n_lab = np.bincount(sentence[lab_mask], minlength=len(ends))
            n_txt = lengths - n_lab
            keep = (n_lab > 0) & (n_txt > 0)
            lines += len(ends)
            no_text += int(((n_lab > 0) & (n_txt == 0)).sum())
            no_label += int((n_lab == 0).sum())
            kept = keep[sentence]
            toks.append(compact[ids[kept & ~lab_mask]].astype(np.int32))
            labs.append(compact[ids[kept & lab_mask]].astype(np.int32))
            doc_lens.append(n_txt[keep])
            lab_lens.append(n_lab[keep])
    cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype))
    return _Docs(types=[words[i] for i in text_ids], type_counts=counts[text_ids].astype(np.int64),
                 label_types=[words[i][len(label_prefix):] for i in label_ids], tok=cat(toks, np.int32),
                 doc_ends=np.cumsum(cat(doc_lens, np.int64)), lab=cat(labs, np.int32),
                 lab_ends=np.cumsum(cat(lab_lens, np.int64)), lines=lines, no_text=no_text, no_label=no_label,
                 name=name)


def _report_skipped(docs: _Docs, label_prefix):
    if docs.no_text:
        log.warning(f"warning: {docs.name}: {docs.no_text:,} line(s) with labels but no text skipped")
    if docs.no_label and docs.n_docs:
        log.warning(f"warning: {docs.name}: {docs.no_label:,} line(s) without a {label_prefix} label skipped")
    if docs.n_docs == 0:
        if not docs.label_types:
            raise FastembError(f"{docs.name}: no labels: no token starts with {label_prefix!r} (each line needs a "
                               f"label such as {label_prefix}NAME; see {param('label_prefix')})")
        raise FastembError(f"{docs.name}: no line has both a label and text ({docs.no_text:,} line(s) with labels "
                           f"only, {docs.no_label:,} without a label)")


# ------------------------------------------------------------------------------------------ the model
class Classifier:
    """A trained embedding-bag classifier. words / labels: lists; embedding: the input matrix [words +
    bucket rows, dim] (`vectors` is its word part, `ngram_vectors` the buckets); output: [labels, dim];
    options: the ClassifierOptions it was trained with; attrs: training figures."""

    def __init__(self, words, labels, embedding, output, options: ClassifierOptions, *, word_counts=None,
                 label_counts=None, attrs=None):
        self.words, self.labels = list(words), list(labels)
        self.embedding = np.ascontiguousarray(embedding, dtype=np.float32)
        self.output = np.ascontiguousarray(output, dtype=np.float32)
        self.options = options
        n, rows = len(self.words), len(self.words) + options.bucket_rows
        if self.embedding.ndim != 2 or self.embedding.shape[0] != rows:
            raise FastembError(f"embedding has shape {self.embedding.shape}: expected {rows} rows ({n} words + "
                               f"{options.bucket_rows} buckets)")
        if self.output.shape != (len(self.labels), self.embedding.shape[1]) or not self.labels:
            raise FastembError(f"output has shape {self.output.shape}: expected ({len(self.labels)}, "
                               f"{self.embedding.shape[1]})")
        if options.eos and EOS not in self.words:
            raise FastembError(f"the vocabulary has no end-of-line word {EOS} (options.eos is on)")
        self.word_counts = np.zeros(n, np.int64) if word_counts is None else np.asarray(word_counts, np.int64)
        self.label_counts = (np.zeros(len(self.labels), np.int64) if label_counts is None
                             else np.asarray(label_counts, np.int64))
        self.attrs = dict(attrs or {})
        self._index = None
        self._label_index = None

    def __repr__(self):
        return (f"<Classifier: {len(self.labels)} labels, {len(self.words):,} words, dim {self.dim}, "
                f"ngrams {self.options.ngrams}>")

    @property
    def dim(self) -> int:
        return int(self.embedding.shape[1])

    @property
    def vectors(self) -> np.ndarray:
        return self.embedding[:len(self.words)]

    @property
    def ngram_vectors(self) -> np.ndarray:
        return self.embedding[len(self.words):]

    @property
    def index(self) -> dict:
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.words)}
        return self._index

    @property
    def label_index(self) -> dict:
        if self._label_index is None:
            self._label_index = {w: i for i, w in enumerate(self.labels)}
        return self._label_index

    # ------------------------------------------------------------ prediction
    def _type_table(self, types):
        """(type_row, type_hash) of token strings against this model's vocabulary."""
        index = self.index
        rows = np.fromiter((index.get(t, -1) for t in types), np.int64, len(types))
        return rows, word_hashes(types)

    @property
    def eos_row(self) -> int:
        """The input row of the end-of-line word, or -1 (options.eos off)."""
        return self.index[EOS] if self.options.eos else -1

    def _probs(self, tok, doc_ends, type_row, type_hash) -> np.ndarray:
        from fastemb.parallel import numba_threads, resolve_threads
        n = int(doc_ends.shape[0])
        probs = np.zeros((n, len(self.labels)), np.float32)
        if n == 0:
            return probs
        from fastemb.loop import call_ranges, units_per_call
        longest = int(np.max(np.diff(doc_ends, prepend=0)))
        threads = resolve_threads(self.options.threads)
        doc_work = 2 * len(self.labels) * self.dim + 2 * (int(doc_ends[-1]) // n + 1) * self.options.ngrams * self.dim
        with numba_threads(threads):
            for d0, d1 in call_ranges(n, units_per_call(doc_work, threads)):  # work-sized calls (loop.py)
                off = int(doc_ends[d0 - 1]) if d0 > 0 else 0
                _kernels().predict_docs(tok[off:int(doc_ends[d1 - 1])], doc_ends[d0:d1] - off, type_row, type_hash,
                                        len(self.words), self.options.buckets, self.options.ngrams, self.eos_row,
                                        _eos_hash(), self.embedding, self.output, (longest + 1) * self.options.ngrams,
                                        probs[d0:d1])
        return probs

    def predict_proba(self, texts) -> np.ndarray:
        """[len(texts), labels] probabilities (a 1-D row for one string). Texts are tokenized as the training
        file was (whitespace); tokens with the label prefix are ignored. A text without any known word gets
        the labels' prior (`prior()`), with a warning."""
        single = isinstance(texts, str)
        if single:
            texts = [texts]
        prefix = self.options.label_prefix
        table, tok, ends = {}, [], []
        for n, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise FastembError(f"text {n} is a {type(text).__name__}, not a string")
            for t in tokenize(text):
                if t.startswith(prefix):
                    continue
                tok.append(table.setdefault(t, len(table)))
            ends.append(len(tok))
        type_row, type_hash = self._type_table(list(table))
        probs = self._probs(np.asarray(tok, np.int32), np.asarray(ends, np.int64), type_row, type_hash)
        self._prior_for_unknown(probs, np.asarray(tok, np.int64), np.asarray(ends, np.int64), type_row)
        return probs[0] if single else probs

    def prior(self) -> np.ndarray:
        """The labels' frequencies in the training data (uniform when the model does not record them)."""
        total = int(self.label_counts.sum())
        if total <= 0:
            return np.full(len(self.labels), 1.0 / len(self.labels), np.float32)
        return (self.label_counts / total).astype(np.float32)

    def _prior_for_unknown(self, probs, tok, ends, type_row):
        """A text without a word the model knows has nothing to go on but the end-of-line word: it gets the
        prior instead, with a warning (fastText answers such texts with a confident label silently)."""
        known = np.zeros(len(ends), bool)
        if len(tok):
            doc = np.searchsorted(ends, np.arange(len(tok)), side="right")
            np.logical_or.at(known, doc, type_row[tok] >= 0)
        blind = np.flatnonzero(~known)
        if len(blind):
            probs[blind] = self.prior()
            shown = ", ".join(str(i + 1) for i in blind[:5]) + (" ..." if len(blind) > 5 else "")
            log.warning(f"warning: {len(blind)} of {len(ends)} text(s) (text {shown}) hold no word the model "
                        f"knows: their probabilities are the labels' prior (training frequencies)")

    def predict(self, texts, k=1):
        """The k most probable labels and their probabilities: for one string, (labels, probabilities[k]);
        for a list of strings, (list of label lists, probabilities[n, k]). k larger than the number of labels
        gives them all."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise OptionError("k", f"must be a positive integer (got {k!r})")
        probs = self.predict_proba(texts)
        single = probs.ndim == 1
        probs = np.atleast_2d(probs)
        k = min(k, len(self.labels))
        top = top_k_rows(probs, k)[0]
        labels = [[self.labels[j] for j in row] for row in top]
        p = np.take_along_axis(probs, top, axis=1)
        return (labels[0], p[0]) if single else (labels, p)

    def test(self, data, k=1, *, tmp_dir=None) -> dict:
        """Evaluate on labelled text (a path, '-' or an iterable of lines, as for training). A line counts as
        right when the top label is among its labels. Returns examples, accuracy (precision@1), precision@k and
        recall@k (fastText's test), per-label precision/recall/F1 (a label never predicted has precision NaN),
        and the confusion matrix: rows the true labels (the model's, then any it has never seen), columns the
        predicted ones; a line with several labels counts on the diagonal when the prediction is one of them,
        else in the row of its first label. Labels the model has never seen are reported in unknown_labels;
        a file with only such labels is an error."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise OptionError("k", f"must be a positive integer (got {k!r})")
        prefix = self.options.label_prefix
        docs = read_labelled(data, prefix, tmp_dir=tmp_dir)
        _report_skipped(docs, prefix)
        L = len(self.labels)
        known = self.label_index
        present = set(np.unique(docs.lab).tolist())
        unknown_names = [x for i, x in enumerate(docs.label_types) if x not in known and i in present]
        unknown_index = {x: L + i for i, x in enumerate(unknown_names)}
        label_map = np.array([known.get(x, unknown_index.get(x, -1)) for x in docs.label_types], np.int64)
        lab = label_map[docs.lab]
        n = docs.n_docs
        n_lab = np.diff(docs.lab_ends, prepend=0)
        doc_of_label = np.repeat(np.arange(n), n_lab)
        if unknown_names:
            lines_with = {name: int(len(np.unique(doc_of_label[lab == L + i]))) for i, name in enumerate(unknown_names)}
            if all(lab >= L):
                raise FastembError(f"{docs.name}: none of its labels is known to the model ("
                                   f"{', '.join(unknown_names[:8])}{' ...' if len(unknown_names) > 8 else ''}; the "
                                   f"model's: {', '.join(self.labels[:8])}{' ...' if L > 8 else ''})")
            log.warning(f"warning: {docs.name}: {len(unknown_names)} label(s) the model has never seen, on "
                        f"{int(len(np.unique(doc_of_label[lab >= L]))):,} line(s): "
                        + ", ".join(f"{x} ({c})" for x, c in list(lines_with.items())[:8])
                        + (" ..." if len(unknown_names) > 8 else ""))
        else:
            lines_with = {}
        type_row, type_hash = self._type_table(docs.types)
        probs = self._probs(docs.tok, docs.doc_ends, type_row, type_hash)
        kk = min(k, L)
        top = top_k_rows(probs, kk)[0]
        pred = top[:, 0]
        # (document, label) pairs, each once
        pairs = np.unique(doc_of_label * (L + len(unknown_names)) + lab)
        p_doc, p_lab = pairs // (L + len(unknown_names)), pairs % (L + len(unknown_names))
        correct = np.zeros(n, bool)
        correct[p_doc[p_lab == pred[p_doc]]] = True
        hits_k = int((top[p_doc] == p_lab[:, None]).any(axis=1).sum())
        names = self.labels + unknown_names
        R = len(names)
        gold = np.bincount(p_lab, minlength=R)
        predicted = np.bincount(pred, minlength=R)
        tp = np.bincount(pred[correct], minlength=R)
        first = lab[np.concatenate(([0], docs.lab_ends[:-1])).astype(np.int64)]
        row = np.where(correct, pred, first)
        confusion = np.zeros((R, L), np.int64)
        np.add.at(confusion, (row, pred), 1)
        per_label = {}
        for j, name in enumerate(names):
            p = tp[j] / predicted[j] if predicted[j] else math.nan
            r = tp[j] / gold[j] if gold[j] else math.nan
            f1 = math.nan if math.isnan(p) or math.isnan(r) else (0.0 if p + r == 0 else 2 * p * r / (p + r))
            per_label[name] = {"precision": p, "recall": r, "f1": f1, "support": int(gold[j]),
                               "predicted": int(predicted[j])}
        return {"examples": n, "accuracy": float(correct.mean()), "k": k, "precision_at_k": hits_k / (n * kk),
                "recall_at_k": hits_k / max(int(len(pairs)), 1), "labels": names, "per_label": per_label,
                "confusion": confusion, "unknown_labels": lines_with, "skipped_no_text": docs.no_text,
                "skipped_no_label": docs.no_label}

    # ------------------------------------------------------------ files
    def save(self, path):
        """Write the model to HDF5 atomically (store.atomic_h5): /embedding, /output, /vocab/words,
        /vocab/counts, /labels, /label_counts; the options and training figures as attributes."""
        import h5py
        from fastemb.store import root_attrs, write_vocab, atomic_h5
        o = self.options
        attrs = {**{k: v for k, v in self.attrs.items() if k not in _RESERVED},
                 **{k: v for k, v in o.to_dict().items() if k != "threads"},
                 "n_words": len(self.words), "n_labels": len(self.labels)}
        with atomic_h5(path) as f:
            root_attrs(f, CONTENT, attrs)
            f.create_dataset("embedding", data=self.embedding)
            f.create_dataset("output", data=self.output)
            write_vocab(f, self.words, self.word_counts)
            f.create_dataset("labels", data=np.array(self.labels, dtype=object), dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("label_counts", data=self.label_counts)

    @classmethod
    def load(cls, path) -> "Classifier":
        """Read a classifier through the checked HDF5 door; every shape, dtype, count and value is checked
        against the others before any kernel sees them (a crafted file is one FileError)."""
        from fastemb.store import text_attr, attrs_dict, open_h5, read_array, read_counts, read_words
        path = os.fspath(path)
        with open_h5(path, CONTENT) as f:
            if text_attr(f.attrs.get("content")) != CONTENT:
                raise FileError(f"{path}: not a fastemb classifier (content: {text_attr(f.attrs.get('content'))})")
            attrs = attrs_dict(f)
            given = {}
            for name in ("dim", "ngrams", "buckets", "label_prefix", "eos"):
                if name not in attrs:
                    raise FileError(f"{path}: damaged classifier file (no {name} attribute)")
            for name in ClassifierOptions.specs():
                if name in attrs and name != "threads":
                    given[name] = attrs[name]
            try:
                options = ClassifierOptions(**given)
            except OptionError as e:
                raise FileError(f"{path}: damaged classifier file (attribute {e})") from None
            for name in ("embedding", "output", "labels", "vocab/words"):
                if name not in f:
                    raise FileError(f"{path}: no dataset /{name}")
            n_words = f["vocab/words"].shape[0] if f["vocab/words"].ndim == 1 else -1
            n_labels = f["labels"].shape[0] if f["labels"].ndim == 1 else -1
            if n_words < 0 or n_labels < 1:
                raise FileError(f"{path}: /vocab/words and /labels must be non-empty lists of strings")
            for name, n in (("n_words", n_words), ("n_labels", n_labels)):
                if name in attrs and attrs[name] != n:
                    raise FileError(f"{path}: attribute {name} is {attrs[name]} but the file holds {n:,}")
            rows = n_words + options.bucket_rows
            embedding = read_array(path, f, "embedding", ndim=2, shape=(rows, options.dim), dtype=np.float32)
            output = read_array(path, f, "output", ndim=2, shape=(n_labels, options.dim), dtype=np.float32)
            words = read_words(path, f, n_words)
            if options.eos and EOS not in words:
                raise FileError(f"{path}: damaged classifier file (eos is on and /vocab/words has no {EOS})")
            labels = read_words(path, f, n_labels, name="labels")
            bad = next((i for i, x in enumerate(labels) if not x or any(c.isspace() for c in x)), None)
            if bad is not None:  # a label is a token of the training text: never empty, never with whitespace
                raise FileError(f"{path}: damaged classifier file (label {bad + 1} is empty or holds whitespace)")
            counts = read_counts(path, f, n_words, required=False)
            label_counts = read_counts(path, f, n_labels, name="label_counts", required=False)
        return cls(words, labels, embedding, output, options, word_counts=counts, label_counts=label_counts,
                   attrs={k: v for k, v in attrs.items() if k not in _RESERVED and k not in given})


_RESERVED = {"encoding-type", "encoding-version", "format_version", "content", "fastemb_version", "created",
             "n_words", "n_labels"}


def load(path) -> Classifier:
    return Classifier.load(path)


# ------------------------------------------------------------------------------------------ training
def _resolve_options(options, params, init):
    if options is not None and not isinstance(options, ClassifierOptions):
        raise OptionError("options", f"must be a ClassifierOptions (got {type(options).__name__})")
    unknown = sorted(set(params) - set(ClassifierOptions.specs()))
    if unknown:
        raise OptionError(unknown[0], "is not an option of the classifier")
    dim_given = "dim" in params or options is not None
    o = (options or ClassifierOptions()).replace(**params) if params else (options or ClassifierOptions())
    if init is None:
        return o, None
    from fastemb.embeddings import Embeddings, load as load_vectors
    emb = init if isinstance(init, Embeddings) else load_vectors(init)
    if dim_given and o.dim != emb.dim:
        raise FastembError(f"{param('init')} has {emb.dim} dimensions but {param('dim')} is {o.dim}: give the "
                           f"same dimension, or leave {param('dim')} out to use {emb.dim}")
    return o.replace(dim=emb.dim), emb


@dataclass
class _Plan:
    """A classifier run, checked before any data is read: options, data, output and the checkpoint policy
    (fastemb.checkpoint's, as for `fastemb train`)."""
    options: ClassifierOptions
    data: object                        # a path, '-', or an iterable of lines
    run_id: str
    init: object = None                 # Embeddings the words of a new run start from
    init_path: Optional[str] = None     # ... and the file they came from
    callbacks: list = field(default_factory=list)
    output: Optional[str] = None
    checkpoint: Optional[str] = None
    checkpoint_every: Optional[str] = None
    resumed: object = None              # the checkpoint.Resumable continued
    data_sha256: Optional[dict] = None  # a checkpointed run's data file -> SHA-256 (checked before a resume reads)


def train(data=None, *, options: ClassifierOptions | None = None, init=None, output=None, force=False,
          verbose=False, tmp_dir=None, callbacks=None, checkpoint=None, checkpoint_every=None, resume=None,
          **params) -> Classifier:
    """Train a classifier on labelled text and return it (and save it to `output` when given).

    data: a path ('-' for stdin; .gz/.bz2/.xz), or an iterable of lines (strings, or token lists) in fastText's
    format. **params: the ClassifierOptions by name (dim=100, epochs=5, lr=0.1, min_count=1, ngrams=1,
    buckets=200000, label_prefix="__label__", seed=1, threads=None), or a whole object as `options=`.
    init: word vectors (fastemb.Embeddings or any file fastemb.load reads) to start the words it knows from;
    their dimension is used (a different `dim` given is an error). Threads=1 is reproducible bit for bit.
    callbacks: fastemb.Callback objects or functions of the run, as for fastemb.train (the one epoch loop:
    `run.epoch`, `run.loss`, `run.vectors` (the word rows), StopTraining ends training early).
    checkpoint / checkpoint_every ('1', '2epochs', '10min'), resume, force: as for fastemb.train (the same
    policy, fastemb.checkpoint): the training state is written there (default OUTPUT.ckpt), a checkpoint of
    another run is never overwritten unless force, the run's own is removed once the model is saved to
    `output`; resume continues a run with its data and options (only threads and checkpoint_every may differ)
    to the classifier an uninterrupted run gives (bit for bit at 1 thread). Checkpoints need `data` as a file."""
    import contextlib
    from fastemb.checkpoint import finish_checkpoints
    from fastemb.files import output_lock
    from fastemb.progress import verbosity
    with verbosity(verbose), (output_lock(output) if output is not None else contextlib.nullcontext()):
        plan = _plan(data, options, init, params, callbacks, output, force, checkpoint, checkpoint_every, resume)
        t_start = time.perf_counter()
        docs = read_labelled(plan.data, plan.options.label_prefix, tmp_dir=tmp_dir)
        _report_skipped(docs, plan.options.label_prefix)
        clf = _fit(docs, plan, t_start)
        if output is not None:
            clf.save(output)  # durable (store.atomic_h5) before the checkpoints it supersedes go
        finish_checkpoints(plan.output, plan.run_id, [plan.checkpoint, plan.resumed.path if plan.resumed else None])
        return clf


def _data_file(data):
    """The absolute path of `data` when a resumed run can read it again (a file), else None."""
    if isinstance(data, (str, os.PathLike)) and os.fspath(data) != "-" and os.path.isfile(data):
        return os.path.abspath(os.fspath(data))
    return None


def _plan(data, options, init, params, callbacks, output, force, checkpoint, checkpoint_every, resume) -> _Plan:
    """Every check that reads no data: options, output, checkpoint policy (nothing is read but a checkpoint
    to resume and the init vectors)."""
    import uuid
    from fastemb.callbacks import as_callbacks
    from fastemb.checkpoint import Checkpoint, checkpoint_target, claim_checkpoint_path
    cbs = as_callbacks(callbacks)  # bad callbacks fail before any work
    if any(isinstance(cb, Checkpoint) for cb in cbs):
        raise OptionError("callbacks", f"take no Checkpoint: give {param('checkpoint')} and "
                                       f"{param('checkpoint_every')}, which follow the checkpoint policy")
    if resume is not None:
        plan = _plan_resume(os.fspath(resume), data, options, init, params)
    else:
        if data is None:
            raise OptionError("data", f"is missing: give labelled text to train on (or {param('resume')} a "
                                      f"checkpoint)")
        o, init_emb = _resolve_options(options, params, init)
        init_path = os.path.abspath(os.fspath(init)) if isinstance(init, (str, os.PathLike)) else None
        plan = _Plan(o, data, uuid.uuid4().hex, init=init_emb, init_path=init_path)
    plan.callbacks, plan.output = cbs, None if output is None else os.fspath(output)
    if output is not None:
        from fastemb.store import check_output
        check_output(output, force)
    path, every = checkpoint_target(checkpoint, checkpoint_every, plan.output, plan.resumed)
    if path is not None:
        data_file = _data_file(plan.data)
        if data_file is None:
            raise OptionError("checkpoint_every", "needs data that a resumed run can read again: give a file, "
                                                  "not stdin, a directory or Python lines")
        plan.checkpoint, plan.checkpoint_every = path, every
        if plan.data_sha256 is None:  # what a resumed run must find again, checked before it parses anything
            from fastemb.files import file_sha256
            plan.data_sha256 = {data_file: file_sha256(data_file)}
        if resume is None or os.path.abspath(path) != os.path.abspath(resume):
            claim_checkpoint_path(path, force, run_id=plan.run_id if resume is not None else None)
    return plan


def _plan_resume(path, data, options, init, params) -> _Plan:
    """The run saved in the checkpoint at `path`: its options (single ones given must agree, but for those a
    resumed run may change), its data file, unchanged (its SHA-256 compared before it is read)."""
    import uuid
    from fastemb.checkpoint import check_input_digests, load_checkpoint, must_agree
    from fastemb.options import free_on_resume
    if options is not None:
        raise OptionError("resume", "takes its options from the checkpoint: give single options to check them")
    ck = load_checkpoint(path, _read_record)
    o, _ = _read_record(ck.record, path)
    free, specs = free_on_resume(ClassifierOptions), ClassifierOptions.specs()
    for name, value in params.items():
        if name not in specs:
            raise OptionError(name, "is not an option of the classifier")
        if name in free:
            o = o.replace(**{name: value})
        else:
            must_agree(name, specs[name][1].coerce(name, value), o.get(name), path, free)
    inputs, saved_init = ck.record.get("inputs"), ck.record.get("init")
    saved = inputs.get("data") if isinstance(inputs, dict) else None
    if not isinstance(saved, str) or not (saved_init is None or isinstance(saved_init, dict) and
                                          isinstance(saved_init.get("path"), (str, type(None))) and
                                          type(saved_init.get("words")) is int and saved_init["words"] >= 0):
        raise FileError(f"{path}: damaged checkpoint record (inputs)")
    if data is not None and _data_file(data) != saved:
        raise OptionError("data", f"differs from the data of the run in {path} ({saved})")
    if init is not None and (saved_init is None or not isinstance(init, (str, os.PathLike))
                             or os.path.abspath(os.fspath(init)) != saved_init.get("path")):
        raise OptionError("init", f"differs from the run in {path} (a resumed run goes on from its checkpoint)")
    if not os.path.isfile(saved):
        raise FileError(f"{saved}: the data of the run in {path} is gone")
    digests = check_input_digests(ck.record, [saved], path)
    return _Plan(o, saved, ck.run_id or uuid.uuid4().hex, resumed=ck, data_sha256=digests,
                 init_path=(saved_init or {}).get("path"), checkpoint_every=ck.record.get("checkpoint_every"))


def _read_record(record, path):
    """fastemb.checkpoint.load_checkpoint's reader for a classifier's checkpoint: (options, vocabulary -> the
    arrays it must hold)."""
    from fastemb.checkpoint import VERSION
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise FileError(f"{path}: damaged checkpoint record")
    if record.get("algo") != CHECKPOINT_KIND:
        raise FileError(f"{path}: a checkpoint of {str(record.get('algo'))[:40]!r}, not of a classifier: continue "
                        f"it with the command that wrote it (fastemb train --resume)")
    try:
        o = ClassifierOptions.from_dict(record["options"])
        n_labels = record["fingerprint"]["labels"]
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
            raise TypeError(f"labels = {n_labels!r}")
    except (OptionError, KeyError, TypeError) as e:
        raise FileError(f"{path}: damaged checkpoint record ({e})") from None
    return o, lambda words: {"embedding": ((len(words) + o.bucket_rows, o.dim), np.float32),
                               "output": ((n_labels, o.dim), np.float32)}


def _record(plan: _Plan, fingerprint, init_words) -> dict:
    """The versioned record a classifier's checkpoint carries (fastemb.checkpoint)."""
    from fastemb.checkpoint import VERSION
    init = None if plan.init is None and plan.resumed is None else \
        (plan.resumed.record.get("init") if plan.resumed is not None else {"path": plan.init_path, "words": init_words})
    return {"version": VERSION, "algo": CHECKPOINT_KIND, "options": plan.options.to_dict(),
            "inputs": {"data": _data_file(plan.data), "sha256": plan.data_sha256}, "fingerprint": fingerprint,
            "checkpoint_every": plan.checkpoint_every,
            "output": None if plan.output is None else os.path.abspath(plan.output),
            "checkpoint": None if plan.checkpoint is None else os.path.abspath(plan.checkpoint), "init": init}


def _diverged(o):
    return FastembError(f"training diverged (the loss or the weights are not finite): lower {param('lr')} "
                        f"(now {o.lr:g})")


def check_fits_classifier(rows, n_labels, dim, max_rows, threads):
    """The model (input rows and output layer, float32) and the training scratch must fit in the memory
    available: checked before anything is allocated, naming classify's own options."""
    from fastemb.files import available_memory
    from fastemb.progress import human
    need = 4 * (rows + n_labels) * dim + threads * (8 * max_rows + 4 * n_labels + 8 * dim)
    have = available_memory()
    if have is not None and need > have:
        raise FastembError(f"the classifier needs about {human(need)}B for its model ({rows:,} input rows, "
                           f"{n_labels:,} labels, dim {dim}) but only {human(have)}B of memory is available: "
                           f"lower {param('buckets')} or {param('dim')}, or raise {param('min_count')}")


class ClassifierTrainer:
    """The classifier's epochs for the one epoch loop (fastemb.loop.run_epochs): callbacks, progress, the
    divergence guard and interruption as for every algorithm. An epoch visits the documents in a seeded
    permutation; chunks of about CHUNK_TOKENS tokens run Hogwild, and each kernel call takes as many chunks
    as one call's work allows (fastemb.loop.units_per_call), so Ctrl-C and SIGTERM act within about a second."""

    unit = "tokens"
    advice = "lr"

    def __init__(self, o, docs, lab, type_row, type_hash, n_words, eos_row, emb, out, max_rows, threads):
        from fastemb.loop import units_per_call
        self.o, self.docs, self.lab, self.type_row, self.type_hash = o, docs, lab, type_row, type_hash
        self.n_words, self.eos_row, self.emb, self.out, self.max_rows = n_words, eos_row, emb, out, max_rows
        self.n_docs, self.n_tok = docs.n_docs, int(docs.doc_ends[-1])
        self.doc_len = np.diff(docs.doc_ends, prepend=0)
        self.work_per_epoch = self.n_tok
        self.total_tokens = float(o.epochs) * self.n_tok
        # work-sized calls (fastemb.loop): a document costs its rows' reads and writes and three passes over
        # the output layer; chunks hold about one call's work (at most CHUNK_TOKENS tokens), calls as many
        # chunks as the threads take
        d, n_labels = o.dim, out.shape[0]
        token_work = max(1, (3 * n_labels * d * self.n_docs) // max(self.n_tok, 1) + 4 * o.ngrams * d)
        self.chunk_tokens = units_per_call(token_work, 1, CHUNK_TOKENS)
        self.per_call = units_per_call(self.chunk_tokens * token_work, threads, BLOCK_CHUNKS)
        self.trained_per_epoch = []   # documents trained in each epoch finished in this process
        self.trained_here = 0         # ... and in all, in this process (examples per second)

    def reference_loss(self) -> float:
        """The untrained model's loss: the output layer starts at zero, every label has probability 1/L."""
        return math.log(max(self.out.shape[0], 2))

    def vectors(self):
        return self.emb[:self.n_words]

    def arrays(self) -> dict:
        return {"embedding": self.emb, "output": self.out}

    def embeddings(self, words, counts, copy=False):
        from fastemb.embeddings import Embeddings
        v = self.vectors()
        return Embeddings(list(words), v.copy() if copy else v, counts=np.asarray(counts, np.int64))

    def _chunks(self, epoch):
        """The epoch's document order (a seeded permutation), the tokens before each document in it, and the first
        document of each chunk."""
        perm = generator(self.o.seed, epoch).permutation(self.n_docs).astype(np.int64)
        before = np.concatenate(([0], np.cumsum(self.doc_len[perm])))[:-1]
        starts = np.flatnonzero(np.diff(before // self.chunk_tokens, prepend=-1))
        return perm, before, starts

    def first_chunk(self, state, where="checkpoint") -> int:
        """The first chunk of state.epoch not trained yet. A resumed position must be where a chunk starts (or the
        epoch's end): a checkpoint is written between two kernel calls, and calls take whole chunks."""
        from fastemb.checkpoint import check_state_fits
        check_state_fits(state, self.work_per_epoch, where)
        if state.pos == 0:
            return 0
        _, before, starts = self._chunks(state.epoch)
        q = int(np.searchsorted(before[starts], state.pos))
        if state.pos != self.n_tok and (q >= len(starts) or before[starts[q]] != state.pos):
            raise FileError(f"{where}: damaged checkpoint state (position {state.pos:,} is not where a chunk of "
                            f"epoch {state.epoch + 1} starts)")
        return q

    def run_epoch(self, state):
        """Train one epoch from state.pos on (a resumed run starts at its first chunk not trained); yields after
        each kernel call. Chunk q of an epoch draws from its own RNG stream (seed, epoch, q), so where calls are
        cut changes nothing a single thread computes."""
        from fastemb.loop import Step, call_ranges
        K = _kernels()
        o, docs, epoch = self.o, self.docs, state.epoch
        first = self.first_chunk(state)
        perm, before, starts = self._chunks(epoch)
        chunk_starts = np.concatenate((starts, [self.n_docs])).astype(np.int64)
        tokens_before = (epoch * float(self.n_tok) + before[starts]).astype(np.float64)
        n_chunks = len(starts)
        loss = np.zeros(n_chunks, np.float64)
        count = np.zeros(n_chunks, np.int64)
        done_before = state.pos
        for b0, b1 in call_ranges(n_chunks - first, self.per_call):
            b0, b1 = b0 + first, b1 + first
            K.train_chunks(docs.tok, docs.doc_ends, self.lab, docs.lab_ends, self.type_row, self.type_hash,
                           self.n_words, o.buckets, o.ngrams, self.eos_row, _eos_hash(), perm,
                           chunk_starts[b0:b1 + 1], tokens_before[b0:b1], self.emb, self.out, float(o.lr),
                           self.total_tokens, o.seed, epoch, b0, self.max_rows, loss[b0:b1], count[b0:b1])
            if not np.isfinite(loss[b0:b1]).all():
                raise _diverged(o)
            done = int(before[chunk_starts[b1]]) if b1 < n_chunks else self.n_tok
            self.trained_here += int(count[b0:b1].sum())
            yield Step(work=done - done_before, loss=float(loss[b0:b1].sum()), count=int(count[b0:b1].sum()))
            done_before = done
        trained = state.epoch_count  # the epoch's documents trained, those before a resume included
        if trained == 0:
            raise FastembError(f"{docs.name}: no line has a word in the vocabulary: lower {param('min_count')} "
                               f"or use {param('ngrams')} 2")
        if not (np.isfinite(self.out).all() and np.isfinite(self.emb).all()):
            raise _diverged(o)
        self.trained_per_epoch.append(trained)


def _fit(docs: _Docs, plan: _Plan, t_start) -> Classifier:
    from fastemb.checkpoint import Checkpoint, TrainState
    from fastemb.loop import TrainingRun, check_unit_work, run_epochs
    from fastemb.parallel import numba_threads, resolve_threads
    o = plan.options
    n_text = int(np.searchsorted(-docs.type_counts, -o.min_count, side="right"))  # counts descend
    if not any(w != EOS for w in docs.types[:n_text]):  # the end-of-line word alone is no vocabulary
        most = int(docs.type_counts[0]) if len(docs.type_counts) else 0
        raise FastembError(f"{docs.name}: no word occurs at least {o.min_count:,} times (the most frequent: "
                           f"{most:,}): lower {param('min_count')}")
    words, word_counts = docs.types[:n_text], docs.type_counts[:n_text]
    type_row = np.where(np.arange(len(docs.types)) < n_text, np.arange(len(docs.types)), -1).astype(np.int64)
    eos_row = -1
    if o.eos:  # the end-of-line word: the word </s> of the text if it has one, else a word of its own
        eos_row = words.index(EOS) if EOS in words else n_text
        if eos_row == n_text:
            words, word_counts = words + [EOS], np.append(word_counts, docs.n_docs)
            if EOS in docs.types:  # rarer than min_count in the text: still the end-of-line word
                type_row[docs.types.index(EOS)] = eos_row
    n_words = len(words)
    # labels: those of the documents kept, by descending count (ties: first seen)
    lab_counts = np.bincount(docs.lab, minlength=len(docs.label_types))
    order = np.argsort(-lab_counts, kind="stable")
    order = order[lab_counts[order] > 0]
    relabel = np.full(len(docs.label_types), -1, np.int64)
    relabel[order] = np.arange(len(order))
    labels = [docs.label_types[i] for i in order]
    lab = relabel[docs.lab].astype(np.int32)
    type_hash = word_hashes(docs.types)

    d = o.dim
    rows = n_words + o.bucket_rows
    n_docs, n_tok = docs.n_docs, int(docs.doc_ends[-1])
    doc_len = np.diff(docs.doc_ends, prepend=0)
    max_rows = (int(doc_len.max()) + 1) * o.ngrams
    check_fits_classifier(rows, len(labels), d, max_rows, resolve_threads(o.threads))
    doc_work = 3 * len(labels) * d + 4 * max_rows * d
    check_unit_work(doc_work, "document", ["dim", "ngrams"])
    if plan.checkpoint is not None:
        from fastemb.files import check_space
        check_space(os.path.dirname(os.path.abspath(plan.checkpoint)), 4 * (rows + len(labels)) * d + 32 * n_words,
                    plan.checkpoint)
    fingerprint = {"documents": n_docs, "tokens": n_tok, "labels": len(labels),
                   "labels_sha256": hashlib.sha256("\n".join(labels).encode("utf-8", "surrogatepass")).hexdigest()}
    state = TrainState()
    if plan.resumed is not None:
        emb, out, init_words = _resumed_arrays(plan.resumed, words, word_counts, fingerprint)
        state = plan.resumed.state
    else:
        emb, out, init_words = _initial_arrays(o, words, rows, len(labels), plan.init)

    threads = resolve_threads(o.threads)
    trainer = ClassifierTrainer(o, docs, lab, type_row, type_hash, n_words, eos_row, emb, out, max_rows, threads)
    if plan.resumed is not None:
        trainer.first_chunk(state, plan.resumed.path)  # a crafted position is refused before any training
        log.info(f"resuming {plan.resumed.path}: {state.epoch} epoch(s) and {state.pos:,} tokens done")
    run = TrainingRun(algo=CHECKPOINT_KIND, options=o, trainer=trainer, state=state, words=words,
                      counts=word_counts, epochs=o.epochs, record=_record(plan, fingerprint, init_words),
                      run_id=plan.run_id, make_embeddings=lambda copy=False: trainer.embeddings(words, word_counts,
                                                                                                copy))
    callbacks = list(plan.callbacks)
    if plan.checkpoint is not None:
        callbacks.append(Checkpoint(plan.checkpoint, plan.checkpoint_every, plan.run_id))
    t_train = time.perf_counter()
    with numba_threads(threads):
        finished = run_epochs(run, callbacks)
    train_seconds = time.perf_counter() - t_train
    examples = trainer.trained_per_epoch[-1] if trainer.trained_per_epoch else state.epoch_count
    if not finished:
        log.info(f"training stopped by a callback after {run.state.epoch} epoch(s)")
    attrs = {"examples": examples, "lines": docs.lines, "documents": n_docs, "tokens": n_tok,
             "skipped_no_text": docs.no_text, "skipped_no_label": docs.no_label, "threads": threads,
             "skipped_no_word": n_docs - examples, "init_words": init_words, "train_seconds": train_seconds,
             "total_seconds": time.perf_counter() - t_start,
             "examples_per_second": trainer.trained_here / max(train_seconds, 1e-9),
             "loss": list(run.state.loss), "epochs_trained": run.state.epoch,
             "resumed_from": None if plan.resumed is None else plan.resumed.path}
    return Classifier(words, labels, emb, out, o, word_counts=word_counts,
                      label_counts=lab_counts[order], attrs={k: v for k, v in attrs.items() if v is not None})


def _initial_arrays(o, words, rows, n_labels, init_emb):
    """A new model: input rows uniform in [-1/dim, 1/dim] (fastText), or the init vectors of the words they
    have; the output layer at zero. Returns (embedding, output, words initialised or None)."""
    d = o.dim
    rng = generator(o.seed)
    emb = ((rng.random((rows, d), dtype=np.float32) * np.float32(2.0) - np.float32(1.0))
           * np.float32(1.0 / d)).astype(np.float32)
    out = np.zeros((n_labels, d), np.float32)
    if init_emb is None:
        return emb, out, None
    idx = init_emb.index
    have = [(i, idx[w]) for i, w in enumerate(words) if w in idx]
    if have:
        mine, theirs = map(list, zip(*have))
        emb[mine] = init_emb.vectors[theirs]
    log.info(f"init: {len(have):,} of {len(words):,} words start from the given vectors")
    return emb, out, len(have)


def _resumed_arrays(ck, words, word_counts, fingerprint):
    """The checkpoint's arrays, once the data read again gives its vocabulary, labels and documents."""
    from fastemb.checkpoint import check_same_vocab
    check_same_vocab(words, word_counts, ck.words, ck.counts, ck.path)
    if ck.record.get("fingerprint") != fingerprint:
        raise FastembError(f"{ck.path}: the data changed since the checkpoint (its labels or documents differ)")
    init = ck.record.get("init")
    return ck.arrays["embedding"], ck.arrays["output"], None if init is None else init["words"]


def text_lines(path):
    """Lines (str) of a text file through the corpus reader (compression, BOMs, invalid UTF-8 as elsewhere),
    as str.splitlines() would give them. The reader ends a file with one more newline, so the last empty line
    is held back and dropped."""
    from fastemb.corpus import CorpusReader
    carry, empty = b"", 0
    for chunk in CorpusReader(path):
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            if not line:
                empty += 1
                continue
            yield from [""] * empty
            empty = 0
            yield line.rstrip(b"\r").decode("utf-8")
    yield from [""] * (empty - 1 if not carry else empty)
    if carry:
        yield carry.rstrip(b"\r").decode("utf-8")


__all__ = ["ClassifierOptions", "Classifier", "train", "load", "read_labelled", "word_hashes", "ngram_bucket",
           "text_lines"]
