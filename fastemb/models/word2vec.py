"""Skip-gram and CBOW with negative sampling: options, and the trainer that runs _w2v_kernels block by block
under the shared epoch loop (training.run_epochs)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from fastemb.loop import MAX_UNIT_WORK, call_ranges, check_unit_work, units_per_call
from typing import Optional

import numpy as np

from fastemb.options import ADD_CONTEXTS, DIM, EPOCHS, SAMPLE, WINDOW, Options, Spec, above_at_most, between, non_negative
from fastemb.registry import Algorithm
from fastemb.seeding import generator

CHUNK_TOKENS = 8192      # Hogwild unit: sentences of about this many tokens share one RNG and scratch
BLOCK_TOKENS = 1 << 20   # per kernel call: progress, Ctrl-C and SIGTERM are seen between calls (< 1 s)
MIN_ALPHA_RATIO = 1e-4   # word2vec.c decays the learning rate to alpha * 1e-4

NEGATIVE = Spec(int, "Negative samples per positive (0: none, with --hs only).", check=between(0, 1000))
HS = Spec(bool, "Hierarchical softmax output layer (word2vec's -hs 1, gensim's hs=1): a Huffman tree over the "
                "vocabulary, log2(V) binary decisions per prediction. Trained together with negative sampling "
                "unless negative is 0 (as word2vec.c and gensim do); the tree's node vectors are not word "
                "vectors, so add_contexts applies to the negative-sampling vectors only.",
          flags="--hs/--no-hs")
NS_EXPONENT = Spec(float, "Negatives are drawn from the unigram distribution to this power (0.75 as "
                          "word2vec.c and gensim; fastText 0.5).", check=between(0, 2))
ALPHA = Spec(float, "Initial learning rate, decayed linearly to min_alpha.", check=above_at_most(0, 10))
MIN_ALPHA = Spec(float, "Final learning rate.", check=non_negative, optional=True, none_means="alpha·1e-4")
# Half-width of the uniform initialisation of input vectors, in units of 1/dim. word2vec.c uses 0.5 and
# gensim 1.0; with 5 epochs both under-train small and mid-sized corpora, and a wider start measured
# better here (benchmark corpus, WS353 / analogy, at the learning rate of each algorithm; README: Defaults).
DEVICE = Spec(str, "Where sgns/cbow train: cpu (Hogwild threads) or cuda (one NVIDIA GPU through numba.cuda: "
                    "pip install 'fastemb[cuda]'; negative sampling with shared negatives only; see docs/gpu.md).",
              choices=("cpu", "cuda"), on_resume="free")
CUDA_BLOCKS = Spec(int, "With --device cuda: thread blocks trained at once (more: faster, but more concurrent "
                        "updates of the frequent words' rows).", check=between(1, 1 << 20), optional=True,
                   on_resume="free", none_means="4 per multiprocessor")
INIT_WIDTH = Spec(float, "Input vectors start uniform in [-W/dim, W/dim] (word2vec.c 0.5, gensim 1).",
                  check=above_at_most(0, 1000))
# fastText's subword model (docs/subwords.md): its option names and defaults, except that it is off unless
# maxn > 0, so runs without these options train as before.
MINN = Spec(int, "Subwords: shortest character n-gram (fastText's -minn).", check=between(1, 100))
MAXN = Spec(int, "Subwords: longest character n-gram; 0 turns subwords off (fastText's -maxn; 6 is its value "
                 "with subwords on). A word's input vector is then the mean of its own row and the rows of its "
                 "n-grams, and words outside the vocabulary get vectors.", check=between(0, 100))
SUBWORD_BUCKETS = Spec(int, "Subwords: hash buckets the character n-grams share (fastText's -bucket).",
                       check=between(1, 2**31 - 1))


@dataclass(frozen=True)
class Word2VecOptions(Options):
    dim: int = DIM(100)
    window: int = WINDOW(5)
    negative: int = NEGATIVE(5)
    hs: bool = HS(False)
    ns_exponent: float = NS_EXPONENT(0.75)
    sample: float = SAMPLE(1e-3)
    epochs: int = EPOCHS(5)
    alpha: float = ALPHA(0.025)
    min_alpha: Optional[float] = MIN_ALPHA(None)
    init_width: float = INIT_WIDTH(4.0)
    add_contexts: bool = ADD_CONTEXTS(False)
    device: str = DEVICE("cpu")
    cuda_blocks: Optional[int] = CUDA_BLOCKS(None)
    minn: int = MINN(3)
    maxn: int = MAXN(0)
    buckets: int = SUBWORD_BUCKETS(2_000_000)

    def check(self):
        from fastemb.errors import OptionError, param
        if self.negative == 0 and not self.hs:
            raise OptionError("negative", f"must be at least 1 unless {param('hs')} is on (got 0)")
        if self.device == "cuda":
            if self.hs:
                raise OptionError("hs", f"runs on the cpu only; {param('device')} cuda trains negative sampling")
            if not getattr(self, "shared_negatives", True):
                raise OptionError("shared_negatives", f"is required by {param('device')} cuda (negatives drawn "
                                                      f"once per window)")
            if self.maxn > 0:
                raise OptionError("maxn", f"runs on the cpu only: subwords are not trained with {param('device')} "
                                          f"cuda")
        if self.maxn > 0:
            if self.minn > self.maxn:
                raise OptionError("minn", f"must not exceed {param('maxn')} {self.maxn} (got {self.minn})")
            if self.hs:
                raise OptionError("hs", f"is not available with subwords ({param('maxn')} > 0): use negative "
                                        f"sampling")
        if self.min_alpha is not None and self.min_alpha > self.alpha:
            raise OptionError("min_alpha", f"must not exceed {param('alpha')} {self.alpha} (got {self.min_alpha})")

    @property
    def subwords(self) -> bool:
        return self.maxn > 0

    def ngram_rows_bound(self, n_words) -> int:
        """About how many n-gram rows a vocabulary of n_words uses (none without subwords): a model has rows
        for the buckets its words use only (subwords.compact_rows), at most the buckets and, at fastText's
        lengths, about 5 new buckets a word (217k for the benchmark corpus's 47k words): 24 a word bounds it."""
        return min(self.buckets, 24 * n_words) if self.maxn > 0 else 0

    @property
    def final_alpha(self) -> float:
        return self.alpha * MIN_ALPHA_RATIO if self.min_alpha is None else self.min_alpha


@dataclass(frozen=True)
class SGNSOptions(Word2VecOptions):
    """Skip-gram with negative sampling. Its defaults were chosen on the benchmark corpus (5.96M tokens, dim 100,
    window 5, negative 5, sample 1e-4, 5 epochs; a grid over learning rate, initialisation, ns-exponent,
    shared/per-pair negatives and w/w+c output, 3-6 seeds each; docs/algorithms.md): learning rate 0.05,
    init width 2, negatives drawn from unigram^0.6 and word + context vectors saved give WS353 0.691, SimLex
    0.427 and analogy 0.218 (fastText: 0.666 / 0.418 / 0.211; word2vec.c's settings here: 0.630 / - / 0.204)."""
    alpha: float = ALPHA(0.05)
    ns_exponent: float = NS_EXPONENT(0.6)
    init_width: float = INIT_WIDTH(2.0)
    add_contexts: bool = ADD_CONTEXTS(True)
    shared_negatives: bool = Spec(bool, "Draw negatives once per window and share them across its "
                                        "contexts (HogBatch: faster), or per (word, context) pair as "
                                        "word2vec.c does; with --hs, the centre word's tree path is "
                                        "likewise updated once per window, or per pair.",
                                  flags="--shared-negatives/--per-pair-negatives")(True)


@dataclass(frozen=True)
class CBOWOptions(Word2VecOptions):
    """Continuous bag of words with negative sampling. Defaults chosen on the benchmark corpus (dim 100, 5
    epochs, 2 seeds, 2026-12-07; docs/algorithms.md): learning rate 0.06, negatives from unigram^0.6 and word +
    context vectors saved give WS353 0.661, SimLex 0.398 and analogy 0.240 at sample 1e-4 (word2vec.c's
    0.05 / 0.75 / word vectors alone: 0.601 / 0.350 / 0.217; gensim in the bench: 0.624 / 0.345 / 0.221)."""
    alpha: float = ALPHA(0.06)
    ns_exponent: float = NS_EXPONENT(0.6)
    add_contexts: bool = ADD_CONTEXTS(True)
    cbow_mean: bool = Spec(bool, "The hidden layer is the mean (or the sum) of the context vectors.",
                           flags="--cbow-mean/--cbow-sum")(True)


def _n_nodes(n_words) -> int:
    return max(n_words - 1, 1)


def memory_bytes(options, n_words, nnz=0) -> int:
    """Input vectors (and n-gram buckets), output vectors of negative sampling (rows padded to cache lines as
    training stores them), node vectors of the hierarchical softmax tree; with subwords also the rows as the
    run started and the words' row lists (about 20 rows a word)."""
    from fastemb.models.w2v_dims import stored_width
    ngram_rows = options.ngram_rows_bound(n_words)
    rows = n_words * (1 + (options.negative > 0 or options.subwords)) + ngram_rows  # stored padded (row_matrix)
    extra = n_words * 64 * 5 + _n_nodes(n_words) * options.dim * 4 if options.hs else 0
    if options.subwords:
        # the rows as the run started (RowGroups: the padded rows above are at most as many groups), the CSRs
        # of rows and groups (and their temporaries), the bucket ids
        extra += (n_words + ngram_rows) * options.dim * 4 + n_words * 8 * 24 * 5 + ngram_rows * 8 * 6
    return rows * stored_width(options.dim, options.device) * 4 + extra


def output_bytes(options, n_words) -> int:
    """The saved file: vectors, context vectors (negative sampling only), vocabulary; with subwords the n-gram
    rows and the words' own rows."""
    ngram_rows = options.ngram_rows_bound(n_words)
    rows = n_words * (1 + (options.negative > 0)) + (ngram_rows + n_words if options.subwords else 0)
    return rows * options.dim * 4 + 32 * n_words + 8 * ngram_rows


def init_vectors(n_words, dim, seed, init_width, out=None):
    """Input vectors uniform in [-init_width/d, init_width/d] (written into `out` when given), output vectors
    zero."""
    syn0 = np.empty((n_words, dim), np.float32) if out is None else out
    _uniform_rows(generator(seed), syn0, np.float32(2.0 * init_width / dim))
    return syn0, np.zeros((n_words, dim), np.float32)


def _uniform_rows(rng, out, scale):
    """out = (uniform [0, 1) - 0.5) * scale, drawn in slices of rows (no temporary of the whole matrix; the
    same numbers as one draw of the whole shape)."""
    step = 1 << 13  # 3 MB of temporaries at dim 100
    for r0 in range(0, out.shape[0], step):
        part = rng.random((min(step, out.shape[0] - r0), out.shape[1]), dtype=np.float32)
        part -= np.float32(0.5)
        part *= scale
        out[r0:r0 + len(part)] = part


def continue_arrays(options, init, vocab, seed) -> dict:
    """Starting arrays to train `init` further: its input and context vectors for its words, new words
    initialised as at the start of a run (input uniform, context zero). The hierarchical softmax tree is
    built anew on the (merged) vocabulary, so its node vectors start from zero. A subword model continues
    from its words' own rows and its n-gram rows (same minn, maxn and buckets)."""
    from fastemb.errors import FastembError, param
    if init.dim != options.dim:
        raise FastembError(f"{param('init')} has {init.dim} dimensions but {param('dim')} is {options.dim}")
    sub = getattr(init, "subwords", None)
    if options.subwords or sub is not None:
        return _continue_subwords(options, init, vocab, seed, sub)
    context = init.context_vectors
    if context is not None and np.shape(context) != init.vectors.shape:
        context = None
    inputs = init.vectors
    if init.attrs.get("add_contexts"):  # saved as word + context vectors: the input vectors are the difference
        if context is None:
            raise FastembError(f"{param('init')}: its vectors are word + context vectors (add_contexts) and its "
                               f"context vectors are not in the file, so its input vectors cannot be recovered")
        inputs = init.vectors - context
    syn0, syn1 = init_vectors(len(vocab), options.dim, seed, options.init_width)
    n = len(init)
    syn0[:n] = inputs
    arrays = {"syn0": syn0}
    if options.negative > 0:
        if context is not None:
            syn1[:n] = context
        arrays["syn1"] = syn1
    if options.hs:
        arrays["syn1_hs"] = np.zeros((_n_nodes(len(vocab)), options.dim), np.float32)
    return arrays


def _continue_subwords(options, init, vocab, seed, sub):
    from fastemb.errors import FastembError, param
    if sub is None:
        raise FastembError(f"{param('init')} has no subword (n-gram) vectors: continue it with {param('maxn')} 0")
    if not options.subwords:
        raise FastembError(f"{param('init')} is a subword model: continue it with subwords on ({param('maxn')} "
                           f"{sub.maxn})")
    if (sub.minn, sub.maxn, sub.buckets) != (options.minn, options.maxn, options.buckets):
        raise FastembError(f"{param('init')} has minn {sub.minn}, maxn {sub.maxn}, buckets {sub.buckets}; the run "
                           f"asks for {options.minn}, {options.maxn}, {options.buckets}: they must agree")
    if sub.word_vectors is None:
        raise FastembError(f"{param('init')}: its words' own input rows are not in the file (a fastText .bin "
                           f"or vectors-only file), so it cannot be trained further")
    n_new = len(vocab)
    ngram_buckets = subword_layout(vocab, options)[2]
    syn0 = subword_init(n_new + len(ngram_buckets), options, seed)
    n = len(init)
    syn0[:n] = sub.word_vectors
    rows = sub.rows_of(ngram_buckets)  # the n-gram rows the model has; buckets new to it start at random
    have = rows >= 0
    syn0[n_new + np.flatnonzero(have)] = sub.ngram_vectors[rows[have]]
    syn1 = np.zeros((n_new, options.dim), np.float32)
    context = init.context_vectors
    if context is not None and np.shape(context) == init.vectors.shape:
        syn1[:n] = context
    return {"syn0": syn0, "syn1": syn1}


GROUP_ROWS = True  # False: every row trains on its own (the same model; for tests and A/B runs)


class RowGroups:
    """How a subword model's rows train (kernels.subword.row_groups): rows that every word uses alike get the
    same updates all run long, so each such group trains as one row holding their sum; a word's input vector
    is the sum of its groups (a group named as often as the word uses its rows) over its row count (n_rows).
    On the benchmark corpus 254k rows train as 116k groups and a position reads and updates 16.8 instead of
    19.6 rows (its rarest ones): ~10% less time."""

    def __init__(self, indptr, indices, n_rows: int, grouped=None):
        from fastemb.kernels import subword as KS
        self.n_rows = np.diff(indptr).astype(np.int64)
        if GROUP_ROWS if grouped is None else grouped:
            self.group_of, self.size, self.indptr, self.indices, self.spread = KS.row_groups(indptr, indices,
                                                                                             n_rows)
        else:
            self.group_of, self.size = np.arange(n_rows, dtype=np.int64), np.ones(n_rows, np.int64)
            self.indptr, self.indices = indptr, indices
            self.spread = np.ones(len(indices), np.float32)
        self.n_groups = len(self.size)

    def ungroup(self, base, sums, out=None, keep_sums=True):
        """The rows as trained: base (the rows when training started) plus the change of each row's group.
        keep_sums False: sums (no longer needed) serves as the scratch, instead of a copy of it."""
        from fastemb.kernels import subword as KS
        out = np.empty_like(base) if out is None else out
        KS.ungroup(base, sums.copy() if keep_sums else sums, self.group_of, self.size, out)
        return out


def subword_layout(vocab, options):
    """(indptr, indices, ngram_buckets) of a subword model over `vocab`: each word's input rows, the n-gram
    rows being those of the buckets the vocabulary uses, ordered by how often training will touch them (the
    words' counts after subsampling) so the busiest rows share cache lines and pages (subwords.compact_rows)."""
    from fastemb.sampling import keep_probabilities
    from fastemb.subwords import compact_rows
    counts = np.asarray(vocab.counts, np.float64)
    return compact_rows(vocab.words, counts * keep_probabilities(vocab.counts, options.sample), options.minn,
                        options.maxn, options.buckets)


def subword_init(rows, options, seed, out=None):
    """`rows` input rows of a subword model (the words' rows, then the n-gram rows), uniform as init_vectors
    (written into `out` when given), drawn on every thread (kernels.rng.uniform_rows: a row per stream; a
    subword model has ~5x skip-gram's rows, 0.25 s of numpy's generator on the benchmark corpus)."""
    from fastemb.kernels.rng import uniform_rows
    syn0 = np.empty((rows, options.dim), np.float32) if out is None else out
    uniform_rows(syn0, np.float32(2.0 * options.init_width / options.dim), np.uint64(seed))
    return syn0


def negative_table(counts, ns_exponent):
    from fastemb.kernels import w2v as K
    weights = np.asarray(counts, dtype=np.float64) ** ns_exponent
    return K.alias_table(weights)


def _chunks(ends, chunk_tokens):
    """Sentence indices where chunks start (a chunk is whole sentences of ~chunk_tokens tokens)."""
    if len(ends) == 0:
        return np.zeros(1, np.int64)
    marks = np.arange(0, ends[-1], chunk_tokens)
    starts = np.unique(np.searchsorted(ends, marks, side="right"))
    return np.concatenate((starts[starts < len(ends)], [len(ends)])).astype(np.int64)


class Word2VecTrainer:
    """Hogwild SGD over blocks of the encoded corpus; one block per kernel call (see `run_epoch`)."""

    unit = "words"
    advice = "alpha"  # what to lower when training diverges

    def __init__(self, options: Word2VecOptions, corpus, *, seed, threads, state, arrays=None):
        from fastemb.kernels import w2v as K
        from fastemb.models.w2v_dims import kernels, row_matrix, row_width
        from fastemb.sampling import keep_probabilities
        self.K, self.o, self.corpus, self.seed = K, options, corpus, seed
        self.kernels = kernels(options.dim)
        self.cbow = isinstance(options, CBOWOptions)
        vocab = corpus.vocab
        self.rows = self.groups = self.base0 = None
        self.finished = False  # finish() was called: the subword rows are plain rows again
        if options.subwords:
            from fastemb.kernels import subword as KS
            self.kernels = kernels(options.dim, KS)
            indptr, indices, self.ngram_buckets = subword_layout(vocab, options)
            self.rows = (indptr, indices)
            self.groups = RowGroups(indptr, indices, len(vocab) + len(self.ngram_buckets))
        # syn0 and syn1 live in matrices whose rows start on cache lines (w2v_dims.row_matrix): the kernels
        # take those (self._syn0, self._syn1), everything else the (rows, dim) views self.syn0, self.syn1
        width = options.dim if options.device == "cuda" else row_width(options.dim, self.kernels)
        dim = options.dim
        if options.subwords:
            # the model's rows (self.base0: as they were when this run started) train as groups of rows
            # (self.syn0: each group's sum, RowGroups); the rows as trained are base0 + each group's change
            n_in = len(vocab) + len(self.ngram_buckets)
            if arrays is None:
                from fastemb.parallel import numba_threads
                with numba_threads(threads):
                    self.base0 = subword_init(n_in, options, seed)
            else:
                self.base0 = np.array(arrays["syn0"], np.float32, order="C")
            arrays = arrays or {}
            sums = arrays.get("syn0_groups")  # a checkpoint's: resumed exactly where it stopped
            self.syn0, self._syn0 = row_matrix(self.groups.n_groups, dim, width, sums)
            if sums is None:
                KS.group_sums(self.base0, self.groups.group_of, self.syn0)
            self.syn1, self._syn1 = row_matrix(len(vocab), dim, width, arrays.get("syn1"))
        elif arrays is None:
            self.syn0, self._syn0 = row_matrix(len(vocab), dim, width)
            init_vectors(len(vocab), dim, seed, options.init_width, out=self.syn0)
            self.syn1, self._syn1 = row_matrix(len(vocab) if options.negative > 0 else 0, dim, width)
            arrays = {}
            if options.hs:
                arrays["syn1_hs"] = np.zeros((_n_nodes(len(vocab)), dim), np.float32)
        else:
            self.syn0, self._syn0 = row_matrix(len(arrays["syn0"]), dim, width, arrays["syn0"])
            syn1 = arrays.get("syn1")
            self.syn1, self._syn1 = row_matrix(0 if syn1 is None else len(syn1), dim, width, syn1)
        if options.hs:
            from fastemb.models.huffman import build
            self.tree = build(vocab.counts)
            self.syn1_hs = arrays["syn1_hs"]
            self.hs_arrays = (self.syn1_hs, self.tree.points, self.tree.codes, self.tree.lengths)
        else:
            self.tree = None
            self.hs_arrays = (np.zeros((1, options.dim), np.float32), np.zeros((1, 1), np.int32),
                              np.zeros((1, 1), np.uint8), np.zeros(0, np.int32))
        self.keep = keep_probabilities(vocab.counts, options.sample)
        self.alias_prob, self.alias_idx = negative_table(vocab.counts, options.ns_exponent)
        self.sig, self.nls = K.sigmoid_tables()
        self.work_per_epoch = corpus.n_tokens
        self.total_work = float(options.epochs) * corpus.n_tokens
        state.extra.setdefault("chunk_counter", 0)
        # work-sized calls (fastemb.loop): a word's windows cost about (window + 1) contexts times its output
        # rows (negatives and tree path) times dim, three passes; chunks keep CHUNK_TOKENS unless that is more
        # than one call may take, calls take as many chunks as the threads get through in one call's work
        path = int(self.tree.codes.shape[1]) if self.tree is not None else 0
        self.token_work = 3 * (options.window + 1) * (options.negative + 1 + path) * options.dim
        check_unit_work(self.token_work, "word's windows", ["dim", "window", "negative"])
        self.chunk_tokens = CHUNK_TOKENS if CHUNK_TOKENS * self.token_work <= MAX_UNIT_WORK else \
            max(1, MAX_UNIT_WORK // self.token_work)
        self.chunks_per_call = units_per_call(self.chunk_tokens * self.token_work, threads)
        self.entry_kernels = [self.kernels.train_chunks]  # what compiling.notice checks before the first call
        self.gpu = None
        if options.device == "cuda":
            from fastemb.models.w2v_cuda import CudaWord2Vec
            self.gpu = CudaWord2Vec(self)

    @staticmethod
    def check_device(options):
        """Before any input is read: --device cuda needs numba's CUDA target and a GPU (one line if not)."""
        if options.device == "cuda":
            from fastemb.models.w2v_cuda import check, span_for
            check()
            span_for(options)

    @staticmethod
    def array_specs(options, words) -> dict:
        from fastemb.subwords import compact_rows
        n_words = len(words)
        specs = {"syn0": ((n_words, options.dim), "float32")}
        if options.subwords:  # the rows as the run started, and their groups' sums (Word2VecTrainer.arrays)
            indptr, indices, buckets = compact_rows(words, np.ones(n_words), options.minn, options.maxn,
                                                    options.buckets)
            n_rows = n_words + len(buckets)
            specs["syn0"] = ((n_rows, options.dim), "float32")
            # optional: a checkpoint of an earlier fastemb has the rows as trained in syn0 and no groups
            specs["syn0_groups"] = ((RowGroups(indptr, indices, n_rows).n_groups, options.dim), "float32", "optional")
        if options.negative > 0:
            specs["syn1"] = ((n_words, options.dim), "float32")
        if options.hs:
            specs["syn1_hs"] = ((_n_nodes(n_words), options.dim), "float32")
        return specs

    def _sync(self):
        if self.gpu is not None:
            self.gpu.sync()

    def arrays(self) -> dict:
        self._sync()
        out = {"syn0": self.syn0}
        if self.rows is not None:  # the rows as the run started and the groups' sums: resumed exactly
            out = {"syn0": self.base0} if self.finished else {"syn0": self.base0, "syn0_groups": self.syn0}
        if self.o.negative > 0:
            out["syn1"] = self.syn1
        if self.o.hs:
            out["syn1_hs"] = self.syn1_hs
        return out

    def finish(self):
        """The run is over (training.py calls this once before the final result): the padded rows are packed
        in place, so the result takes syn0 and syn1 without copies."""
        from fastemb.models.w2v_dims import unpadded
        self._sync()
        if self.finished:
            return
        if self.rows is not None:  # the rows as trained, made in the memory of the rows as they started
            self.groups.ungroup(self.base0, self._syn0, out=self.base0, keep_sums=False)
            self._syn0 = self.syn0 = None
        else:
            self._syn0 = self.syn0 = unpadded(self._syn0, self.o.dim)
        self._syn1 = self.syn1 = unpadded(self._syn1, self.o.dim)
        self.finished = True

    def vectors(self):
        self._sync()
        if self.rows is None:
            return self.syn0
        from fastemb.kernels import subword as KS
        out = np.empty((len(self.corpus.vocab), self.o.dim), np.float32)  # the words' vectors (row means)
        if self.finished:
            KS.mean_rows(self.base0, self.rows[0], self.rows[1], out)
        else:
            g = self.groups
            KS.mean_groups(self._syn0, g.indptr, g.indices, g.n_rows, out)
        return out

    def reference_loss(self) -> float:
        """The loss of the untrained model (output vectors are zero: every term is log 2): 1 + negative
        terms per prediction, plus the tree path's length (its mean over the subsampled corpus) with hs."""
        terms = 1 + self.o.negative if self.o.negative > 0 else 0
        if self.tree is not None:
            counts = self.corpus.vocab.counts
            kept = counts * (self.keep if len(self.keep) else 1.0)
            terms += self.tree.mean_length(kept)
        return terms * math.log(2.0)

    def run_epoch(self, state):
        """Train one epoch from state.block on; yields after each block (the loop then updates `state`)."""
        from fastemb.loop import Step
        from fastemb.vocab import iter_blocks
        o = self.o
        alpha, min_alpha = o.alpha, o.final_alpha
        epoch = state.epoch
        shared = getattr(o, "shared_negatives", True)
        cbow_mean = getattr(o, "cbow_mean", True)
        for b, (ids, ends, _first) in enumerate(iter_blocks(self.corpus, BLOCK_TOKENS)):
            if b < state.block:
                continue  # finished before the checkpoint
            work_before = float(epoch * self.work_per_epoch + state.pos)
            if self.gpu is not None:
                loss, pairs = self.gpu.train_block(ids, ends, alpha0=alpha, min_alpha=min_alpha,
                                                   work_before=work_before, total_work=self.total_work,
                                                   seed=self.seed, epoch=epoch, block=b)
                done = work_before + len(ids)
                current = max(min_alpha, alpha - (alpha - min_alpha) * done / self.total_work)
                yield Step(work=len(ids), loss=loss, count=pairs, extra=f"alpha {current:.5f}")
                continue
            chunk_sents = _chunks(ends, self.chunk_tokens)
            n_chunks = len(chunk_sents) - 1
            loss = np.zeros(n_chunks, np.float64)
            pairs = np.zeros(n_chunks, np.int64)
            for q_lo, q_hi in call_ranges(n_chunks, self.chunks_per_call):  # the same block, call by call
                self._train(ids, ends, chunk_sents[q_lo:q_hi + 1], shared, cbow_mean, np.float32(alpha),
                            np.float32(min_alpha), float(epoch * self.work_per_epoch + state.pos), self.total_work,
                            self.seed + epoch * 1_000_003, state.extra["chunk_counter"] + q_lo, loss[q_lo:q_hi],
                            pairs[q_lo:q_hi])
            state.extra["chunk_counter"] += n_chunks
            done = epoch * self.work_per_epoch + state.pos + len(ids)
            current = max(min_alpha, alpha - (alpha - min_alpha) * done / self.total_work)
            yield Step(work=len(ids), loss=float(loss.sum()), count=int(pairs.sum()), extra=f"alpha {current:.5f}")

    def _train(self, ids, ends, chunk_sents, shared, cbow_mean, alpha, min_alpha, work_before, total_work, seed,
               chunk_base, loss, pairs):
        o = self.o
        if self.finished:
            raise RuntimeError("this run is finished: its trainer trains no more")
        if self.rows is not None:
            g = self.groups
            self.kernels.train_chunks(ids, ends, chunk_sents, self._syn0, self._syn1, g.indptr, g.indices, g.spread,
                                      g.n_rows, self.keep, self.alias_prob, self.alias_idx, self.sig, self.nls,
                                      self.cbow, shared, cbow_mean, o.window, o.negative, alpha, min_alpha,
                                      work_before, total_work, seed, chunk_base, loss, pairs)
        else:
            self.kernels.train_chunks(ids, ends, chunk_sents, self._syn0, self._syn1, self.keep, self.alias_prob,
                                      self.alias_idx, self.sig, self.nls, self.cbow, shared, cbow_mean, o.window,
                                      o.negative, alpha, min_alpha, work_before, total_work, seed, chunk_base,
                                      loss, pairs, *self.hs_arrays)

    def frozen_loss(self, max_tokens=1 << 20, seed=12345) -> float:
        """The model's loss on (the first max_tokens of) the corpus without updating it: the same windows and
        negatives every time it is called, so values from different epochs compare. The loss reported while
        training is measured online, on each window just before its update; on bursty text that online loss
        profits from the steps just taken, a profit that shrinks as the learning rate decays, so it can rise
        in the last epoch while this one still falls (README: Training loss)."""
        from fastemb.vocab import iter_blocks
        self._sync()  # measured on the host (alpha 0: nothing changes)
        total, count, seen = 0.0, 0, 0
        shared = getattr(self.o, "shared_negatives", True)
        cbow_mean = getattr(self.o, "cbow_mean", True)
        for ids, ends, _ in iter_blocks(self.corpus, BLOCK_TOKENS):
            chunk_sents = _chunks(ends, CHUNK_TOKENS)
            n = len(chunk_sents) - 1
            loss, pairs = np.zeros(n, np.float64), np.zeros(n, np.int64)
            self._train(ids, ends, chunk_sents, shared, cbow_mean, np.float32(0.0), np.float32(0.0), 0.0,
                        max(self.total_work, 1.0), seed, 0, loss, pairs)
            total, count, seen = total + float(loss.sum()), count + int(pairs.sum()), seen + len(ids)
            if seen >= max_tokens:
                break
        return total / max(count, 1)

    def result(self) -> dict:
        """Input vectors (+ the negative-sampling context vectors with add_contexts). Under a pure
        hierarchical softmax (negative 0) there are no per-word context vectors: the tree's node vectors
        are not saved, and the file records add_contexts False."""
        self._sync()
        if self.gpu is not None:
            t = self.gpu.timing
            attrs = {"cuda_device": self.gpu.device, "cuda_kernel_seconds": t["kernel"],
                     "cuda_host_seconds": t["host"], "cuda_transfer_seconds": t["transfer"]}
            vectors = self.syn0 + self.syn1 if self.o.add_contexts else self.syn0
            return {"vectors": vectors, "context_vectors": self.syn1, "attrs": attrs}
        if self.rows is not None:
            return self._subword_result()
        # views into the padded rows while training (a snapshot copies them), plain arrays after finish()
        if self.o.negative == 0:
            return {"vectors": self.syn0, "context_vectors": None, "attrs": {"add_contexts": False}}
        vectors = self.syn0 + self.syn1 if self.o.add_contexts else self.syn0
        return {"vectors": vectors, "context_vectors": self.syn1}


    def _subword_result(self) -> dict:
        """A word's vector is the mean of its own row and its n-gram rows (fastText's get_word_vector); the
        n-gram rows answer words outside the vocabulary. Context vectors are not added (an unknown word has
        none), whatever add_contexts says: the file records add_contexts False."""
        from fastemb.subwords import SubwordVectors
        from fastemb.kernels import subword as KS
        n = len(self.corpus.vocab)
        rows = self.base0 if self.finished else self.groups.ungroup(self.base0, self._syn0)
        vectors = np.empty((n, self.o.dim), np.float32)
        KS.mean_rows(rows, self.rows[0], self.rows[1], vectors)
        sub = SubwordVectors(self.corpus.vocab.words, self.o.minn, self.o.maxn, self.o.buckets, rows[n:],
                             word_vectors=rows[:n], ngram_buckets=self.ngram_buckets,
                             known=self.ngram_buckets)  # compact_rows: exactly the used buckets
        return {"vectors": vectors, "context_vectors": self.syn1, "subwords": sub,
                "attrs": {"add_contexts": False}}


ALGORITHMS = (
    Algorithm("sgns", SGNSOptions, Word2VecTrainer, memory_bytes, output_bytes=output_bytes,
              summary="skip-gram, negative sampling or hierarchical softmax", init_arrays=continue_arrays),
    Algorithm("cbow", CBOWOptions, Word2VecTrainer, memory_bytes, output_bytes=output_bytes,
              summary="CBOW, negative sampling or hierarchical softmax", init_arrays=continue_arrays),
)
