"""A neural probabilistic language model (Bengio et al. 2003) as a fastemb algorithm: options, the trainer
that runs _nplm_kernels block by block under the shared epoch loop, and `LanguageModel` (next-word
prediction and perplexity of a saved model).

The model: the `context` previous words' vectors (dim each) concatenated, a hidden layer act(W·x + b) of
`hidden` units, and an output layer over the vocabulary: a full softmax, a sampled softmax (Jean et al. 2015),
NCE (Mnih & Teh 2012) or a hierarchical softmax over fastemb.models.huffman's tree; with the full softmax,
optionally a second hidden layer (`hidden2`: the output layer's vectors then have its size), Bengio et al.'s
direct connections from the context vectors to the output layer (`direct`) and dropout on the last hidden layer
(`dropout`); by default hashed n-gram features straight to the output layer (`ngram_order`, Mikolov et al.
2011's maximum-entropy connections: kernels/nplm.py's ngram_* kernels), stepped by plain SGD (`ngram_alpha`).

- Sentence starts: the words before a sentence's first word are a reserved boundary token (one more
  trained vector, saved as /model/boundary), so every token of the corpus is predicted once per epoch, the
  first word of a sentence from the boundary alone. Nothing predicts the end of a sentence unless the text
  has an end word: train on lines ending with " </s>" and score with `score_events(eos=True)` (eval --eos). Words outside the
  vocabulary are dropped from the token stream before contexts are formed (as for every fastemb algorithm);
  perplexity is measured on held-out text the same way (coverage says how many tokens were kept).
- Training: minibatch steps on the mean loss of a minibatch, by Adam (the full softmax's default) or SGD with
  momentum, the learning rate (adam_alpha or alpha) decayed linearly to min_alpha (optional L2 weight decay on
  weights and word vectors) or, with `valid`, kept until the held-out perplexity stops falling, then multiplied
  by lr_decay; `patience` epochs without gain stop training and the best epoch's parameters are the result.
- The full softmax trains on minibatches as matrix products through numpy's BLAS (`dense_gradients`; the
  softmax and the optimizer's step are fused Numba kernels), all parameters dense (every row steps every
  minibatch); with several threads the output layer runs in one slice of the vocabulary per thread. The other
  output layers run the Hogwild kernels below, with momentum. Momentum is TensorFlow's
  for sparse gradients: the rows of the word vectors and of the output layer that a minibatch touches take
  v = μ·v + g, p -= lr·v; the others keep their velocity and stay put ("lazy" momentum). W and b are dense.
- Order: an epoch visits the corpus in pieces of ~PIECE_TOKENS tokens (whole sentences) in the order of a
  permutation of (seed, epoch); a block (one kernel call) is BLOCK_TOKENS / PIECE_TOKENS pieces, its
  examples shuffled, cut into chunks of minibatches that run Hogwild in parallel (as word2vec's chunks do).
  Text read in its own order drifted the model towards the part just read (NOTES.md). A 1-thread run is
  reproducible bit for bit, and a checkpoint resumes at its block.
- sampled / nce draw `samples` words per minibatch from the unigram distribution, shared by its examples.
  Sampled softmax corrects logits by −log(K·q) and removes accidental hits; NCE trains logistic decisions on
  z − log(K·q) (no hit removal, as TensorFlow's nce_loss). Both models are used with the full softmax of
  their output layer afterwards (predict, perplexity).
- Output biases start at the log unigram probabilities (full, sampled, nce) or at the log-odds of each tree
  node's two subtrees (hs), output weights at 0: the untrained model is the unigram model.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastemb.errors import FastembError, FileError, OptionError, UnknownWord, param
from fastemb.options import DIM, EPOCHS, Options, Spec, above_at_most, between
from fastemb.registry import Algorithm
from fastemb.loop import call_ranges, check_unit_work, units_per_call
from fastemb.models.word2vec import ALPHA, MIN_ALPHA, MIN_ALPHA_RATIO
from fastemb.ranking import top_k
from fastemb.seeding import generator

BLOCK_TOKENS = 1 << 16   # tokens per kernel call: progress, Ctrl-C and SIGTERM are seen between calls
CHUNK_EXAMPLES = 2048    # Hogwild unit: a chunk of a block's shuffled examples, its minibatches run in order
PIECE_TOKENS = 512       # an epoch visits the corpus in pieces of whole sentences of about this many tokens,
                         # in the order of a random permutation (blocks are made of pieces from all over it)
FULL_MAX_WORDS = 10000   # softmax "auto": the full softmax (BLAS minibatches) up to this many words, sampled above
SOFTMAXES = ("auto", "full", "sampled", "nce", "hs")
ACTIVATIONS = ("tanh", "logistic")
OPTIMIZERS = ("auto", "adam", "momentum")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
ADAM_ALPHA, MOMENTUM_ALPHA, MOMENTUM = 0.008, 0.15, 0.9   # default learning rates, measured: docs/language-model.md
CODES = {"full": 0, "sampled": 1, "nce": 2, "hs": 3}
MODEL_ARRAYS = ("boundary", "hidden_weight", "hidden_bias", "output_weight", "output_bias")
BLAS_THREADS = 1          # OpenBLAS threads of the full softmax's products: on the shared 2-core machine 2 threads
                          # were 70x slower per minibatch (V 500) and 2.5x (V 6,000) than 1 (threads spinning)
MIN_SLICE = 256           # full softmax: the output layer runs in slices of at least this many words (one a thread)
PARAMS = ("emb", "W", "b", "W2", "b2", "out", "out_b", "direct", "ngram")   # trained arrays (W2, b2 with hidden2;
                                                                           # direct with --direct; ngram with
                                                                           # --ngram-order)
STATELESS = ("ngram",)   # stepped by plain SGD (ngram_alpha): no optimizer state
MAX_NGRAM_SIZE = 1 << 30
NGRAM_ORDER, NGRAM_ALPHA = 3, 60.0   # defaults with the full softmax, measured: docs/language-model.md
SCHEDULE_HEAD = 4        # schedule array: learning rate, best held-out perplexity, epochs without gain, best epoch


@dataclass(frozen=True)
class NPLMOptions(Options):
    """A neural probabilistic language model (Bengio et al. 2003): the previous `context` words predict the next
    through a hidden layer; its word vectors are the embedding, and the saved model predicts (`fastemb
    predict`) and scores held-out text (`fastemb eval --text`)."""
    dim: int = DIM(32)
    context: int = Spec(int, "Language model: how many previous words predict the next one (sentence starts "
                             "are padded with a boundary token).", check=between(1, 64))(6)
    hidden: int = Spec(int, "Language model: units of the hidden layer.", check=between(1, 100_000))(64)
    softmax: str = Spec(str, "Language model output layer: full softmax, sampled softmax (Jean et al. 2015), NCE "
                             "(Mnih & Teh 2012) or hierarchical softmax over a Huffman tree (hs); auto: full "
                             f"up to {FULL_MAX_WORDS:,} words, sampled above.", choices=SOFTMAXES)("auto")
    samples: int = Spec(int, "sampled / nce softmax: words drawn from the unigram distribution per minibatch "
                             "(shared by its examples).", check=between(1, 100_000))(100)
    activation: str = Spec(str, "Language model: the hidden layer's activation.", choices=ACTIVATIONS)("tanh")
    momentum: float = Spec(float, "SGD momentum (0: plain SGD); rows of sparse gradients take it lazily, when "
                                  "touched.", check=between(0, 0.999))(MOMENTUM)
    batch: int = Spec(int, "Examples per minibatch (one SGD step on their mean loss).",
                      check=between(1, 1 << 16))(128)
    optimizer: str = Spec(str, "The update rule: Adam (Kingma & Ba 2015: per-parameter steps of size adam_alpha; "
                                "full softmax only) or SGD with momentum (learning rate alpha); auto: Adam with the "
                                "full softmax, momentum with the others.", choices=OPTIMIZERS)("auto")
    adam_alpha: float = Spec(float, "optimizer adam: the initial step size, decayed as alpha is (alpha is the "
                                    "momentum optimizer's learning rate).", check=above_at_most(0, 10))(ADAM_ALPHA)
    weight_decay: float = Spec(float, "L2 penalty on the weights and word vectors (not the biases), added to their "
                                      "gradients when they take a step.", check=between(0, 1))(0.0)
    dropout: float = Spec(float, "full softmax: fraction of the last hidden layer's units dropped in training "
                                 "(inverted dropout; none at prediction).", check=between(0, 0.9))(0.0)
    hidden2: int = Spec(int, "full softmax: units of a second hidden layer between the hidden layer and the "
                             "output layer, whose vectors then have this size (Vaswani et al. 2013's output "
                             "embedding): a wide hidden layer before a small, cheap output layer (0: none).",
                        check=between(0, 100_000))(0)
    direct: bool = Spec(bool, "full softmax: Bengio et al.'s direct connections from the context words' vectors "
                              "to the output layer (a V×(context·dim) matrix more).")(False)
    ngram_order: Optional[int] = Spec(
        int, "full softmax: hashed n-gram features connected straight to the output layer (Mikolov et al. 2011's "
             "maximum-entropy direct connections): for each n = 2 .. ngram_order the previous n−1 words pick, by a "
             "hash, a slice of V weights of one array of ngram_size weights, added to the logits (order 1 is the "
             "output bias); at most context + 1 (0: none).", check=between(0, 65), optional=True,
        none_means=f"{NGRAM_ORDER} (at most context + 1) with the full softmax, 0 with the others")(None)
    ngram_size: Optional[int] = Spec(int, "with ngram_order: weights in the hashed n-gram array (float32; at least "
                                          "the vocabulary's size).", check=between(1 << 10, MAX_NGRAM_SIZE),
                                     optional=True, none_means="the smallest power of two at least 8192 x the "
                                                               "vocabulary, between 2^10 and 2^22")(None)
    ngram_alpha: float = Spec(float, "with ngram_order: the SGD learning rate of the n-gram weights (on the "
                                     "minibatch's mean loss), decayed as the model's.",
                              check=above_at_most(0, 1000))(NGRAM_ALPHA)
    valid: float = Spec(float, "Fraction of the corpus (pieces of whole sentences, chosen by the seed) held out "
                               "from training; its perplexity is logged after each epoch, the learning rate "
                               "is multiplied by lr_decay when it stops falling, training stops after "
                               "`patience` such epochs and the best epoch's model is kept (0: no held-out "
                               "text, the learning rate falls linearly from alpha to min_alpha).",
                        check=between(0, 0.5))(0.0)
    lr_decay: float = Spec(float, "with valid: learning-rate factor when the held-out perplexity falls by less "
                                  "than `plateau` in an epoch.", check=between(0.01, 1))(0.5)
    plateau: float = Spec(float, "with valid: the relative fall of the held-out perplexity below which an epoch "
                                 "counts as no gain.", check=between(0, 0.5))(0.003)
    patience: int = Spec(int, "with valid: epochs without gain before training stops early.",
                         check=between(1, 1000))(2)
    epochs: int = EPOCHS(2)
    alpha: float = ALPHA(MOMENTUM_ALPHA)
    min_alpha: Optional[float] = MIN_ALPHA(None)

    def check(self):
        if self.optimizer != "auto" or self.softmax != "auto":
            self.rates(FULL_MAX_WORDS)   # known without the vocabulary's size (else checked by the trainer)
        if self.softmax not in ("full", "auto"):
            if self.direct:
                raise OptionError("direct", f"needs {param('softmax')} full (got {self.softmax})")
            if self.hidden2:
                raise OptionError("hidden2", f"needs {param('softmax')} full (got {self.softmax})")
            if self.dropout:
                raise OptionError("dropout", f"needs {param('softmax')} full (got {self.softmax})")
            if self.optimizer == "adam":
                raise OptionError("optimizer", f"adam needs {param('softmax')} full (got {self.softmax})")
            if self.ngram_order:
                raise OptionError("ngram_order", f"needs {param('softmax')} full (got {self.softmax})")
        if self.ngram_order is not None and (self.ngram_order == 1 or self.ngram_order > self.context + 1):
            raise OptionError("ngram_order", f"must be 0 (none) or 2 .. {param('context')} + 1 = "
                                             f"{self.context + 1} (got {self.ngram_order}; order 1 is the output "
                                             f"layer's bias)")
        if self.ngram_order == 0 or self.ngram_order is None and self.softmax not in ("full", "auto"):
            defaults = NPLMOptions.__dataclass_fields__
            for name in ("ngram_size", "ngram_alpha"):
                if getattr(self, name) != defaults[name].default:
                    raise OptionError(name, f"applies with {param('ngram_order')} 2 or more (none here)")

    def rates(self, n_words) -> tuple:
        """The optimizer (auto resolved for a vocabulary of n_words), its initial and its final learning rate. The
        other optimizer's settings must stay at their defaults: they would be ignored."""
        optimizer = self.optimizer
        if optimizer == "auto":
            optimizer = "adam" if resolve_softmax(self.softmax, n_words) == "full" else "momentum"
        if optimizer == "adam" and self.alpha != MOMENTUM_ALPHA:
            raise OptionError("alpha", f"is the learning rate of {param('optimizer')} momentum; Adam's (the "
                                       f"optimizer here) is {param('adam_alpha')}")
        if optimizer == "adam" and self.momentum != MOMENTUM:
            raise OptionError("momentum", f"applies to {param('optimizer')} momentum; the optimizer here is Adam")
        if optimizer == "momentum" and self.adam_alpha != ADAM_ALPHA:
            raise OptionError("adam_alpha", f"is Adam's step size; the optimizer here is momentum (its learning rate "
                                            f"is {param('alpha')})")
        alpha = self.adam_alpha if optimizer == "adam" else self.alpha
        final = alpha * MIN_ALPHA_RATIO if self.min_alpha is None else self.min_alpha
        if final > alpha:
            raise OptionError("min_alpha", f"must not exceed {param('adam_alpha' if optimizer == 'adam' else 'alpha')} "
                                           f"{alpha:g} (got {self.min_alpha})")
        return optimizer, alpha, final


def resolve_softmax(softmax: str, n_words: int) -> str:
    if softmax == "auto":
        return "full" if n_words <= FULL_MAX_WORDS else "sampled"
    return softmax


def ngram_order_of(options, n_words) -> int:
    """The n-gram features' order (0: none): ngram_order, or its default for the softmax `auto` resolves to."""
    if options.ngram_order is not None:
        return options.ngram_order
    return min(NGRAM_ORDER, options.context + 1) if resolve_softmax(options.softmax, n_words) == "full" else 0


def ngram_size_of(options, n_words) -> int:
    """Weights of the hashed n-gram array: ngram_size, or by default the smallest power of two >= 8192 V within
    [2^10, 2^22]: 2^22 from 512 words up (a KJV quarter with 500 words lost 3% of perplexity at 2^18: the
    histories' slices collide), less for a toy vocabulary (not 16 MB for 50 words)."""
    if options.ngram_size is not None:
        return options.ngram_size
    return min(1 << 22, max(1 << 10, 1 << int(np.ceil(np.log2(8192 * max(n_words, 1))))))


def output_rows(softmax: str, n_words: int) -> int:
    """Rows of the output layer: one per word, or one per internal node of the tree (hs)."""
    return n_words - 1 if resolve_softmax(softmax, n_words) == "hs" else n_words


def _param_shapes(options, n_words) -> dict:
    nd = options.context * options.dim
    rows = output_rows(options.softmax, n_words)
    shapes = {"emb": (n_words + 1, options.dim), "W": (options.hidden, nd), "b": (options.hidden,),
              "out": (rows, options.hidden2 or options.hidden), "out_b": (rows,)}
    if options.hidden2:
        shapes.update(W2=(options.hidden2, options.hidden), b2=(options.hidden2,))
    if options.direct:
        shapes["direct"] = (rows, nd)
    if ngram_order_of(options, n_words):
        shapes["ngram"] = (ngram_size_of(options, n_words),)
    return shapes


def memory_bytes(options, n_words, nnz=0) -> int:
    """Parameters and their velocities (float32), the minibatch's buffers and a block's contexts."""
    params = sum(int(np.prod(s)) for s in _param_shapes(options, n_words).values())
    cols = n_words if resolve_softmax(options.softmax, n_words) == "full" else options.samples + 64
    buffers = options.batch * (2 * options.context * options.dim + 3 * options.hidden + cols)
    return 2 * 4 * params + 4 * buffers + 8 * (options.context + 2) * BLOCK_TOKENS * 2


def saved_bytes(options, n_words) -> int:
    shapes = _param_shapes(options, n_words)
    return 4 * sum(int(np.prod(s)) for s in shapes.values()) + 32 * n_words


def tree_of(counts):
    """The Huffman tree of the hs output layer (deterministic: built from the vocabulary's counts)."""
    from fastemb.models.huffman import build
    return build(np.asarray(counts, np.int64))


def model_shapes(path, attrs, n_words, dim, group) -> dict:
    """The shapes a language model's /model arrays must have, from its attributes and the vocabulary, the
    hidden size taken from /model/hidden_weight's declared shape: compared before any array is read."""
    softmax, context = attrs.get("softmax"), attrs.get("context")
    if softmax not in CODES or isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= 64:
        raise FileError(f"{path}: damaged language model (softmax {softmax!r}, context {context!r})")
    declared = getattr(group.get("hidden_weight"), "shape", None)
    if declared is None or len(declared) != 2 or not 1 <= declared[0] <= 100_000:
        raise FileError(f"{path}: damaged language model (/model/hidden_weight is {declared})")
    hidden = int(declared[0])
    rows = n_words - 1 if softmax == "hs" else n_words
    shapes = {"boundary": (dim,), "hidden_weight": (hidden, context * dim), "hidden_bias": (hidden,),
              "output_weight": (rows, hidden), "output_bias": (rows,)}
    if "direct_weight" in group:  # Bengio's direct connections (full softmax): context words to output
        shapes["direct_weight"] = (rows, context * dim)
    if "ngram_weight" in group:  # hashed n-gram features: as many weights as the recorded ngram_size
        size = attrs.get("ngram_size")
        if isinstance(size, bool) or not isinstance(size, int) or not n_words <= size <= MAX_NGRAM_SIZE:
            raise FileError(f"{path}: damaged language model (ngram_size {size!r} with /model/ngram_weight)")
        shapes["ngram_weight"] = (size,)
    declared2 = getattr(group.get("hidden2_weight"), "shape", None)
    if "hidden2_weight" in group:  # a second hidden layer (full softmax): the output layer's rows take its size
        if declared2 is None or len(declared2) != 2 or not 1 <= declared2[0] <= 100_000:
            raise FileError(f"{path}: damaged language model (/model/hidden2_weight is {declared2})")
        k = int(declared2[0])
        shapes.update(hidden2_weight=(k, hidden), hidden2_bias=(k,), output_weight=(rows, k))
    labels = {"hidden_weight": f"hidden×{context * dim} (context {context} × dim {dim})",
              "ngram_weight": f"{attrs.get('ngram_size')} (ngram_size)"}
    return {name: (shape, labels.get(name, "×".join(map(str, shape)))) for name, shape in shapes.items()}


def tree_digest(codes, points, lengths) -> str:
    """SHA-256 of a Huffman tree's arrays (stored with an hs model, compared with the tree rebuilt at load)."""
    import hashlib
    h = hashlib.sha256()
    for x in (np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(points, np.int64),
              np.ascontiguousarray(lengths, np.int64)):
        h.update(str(x.shape).encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _tree_arrays(tree):
    return (np.ascontiguousarray(tree.codes, np.uint8), np.ascontiguousarray(tree.points, np.int64),
            np.ascontiguousarray(tree.lengths, np.int64))


def node_log_odds(tree, counts) -> np.ndarray:
    """Each internal node's log(weight of its code-0 subtree / weight of its code-1 subtree): the biases that
    make the untrained tree give the unigram distribution."""
    counts = np.maximum(np.asarray(counts, np.float64), 1e-3)
    V = len(counts)
    weights = np.zeros((max(V - 1, 1), 2))
    for t in range(tree.codes.shape[1]):
        on = tree.lengths > t
        np.add.at(weights, (tree.points[on, t], tree.codes[on, t]), counts[on])
    return np.log(np.maximum(weights[:, 0], 1e-3) / np.maximum(weights[:, 1], 1e-3)).astype(np.float32)


def init_params(options, counts, seed) -> dict:
    """Word vectors uniform in [−0.5, 0.5], W Glorot-uniform, b 0, output weights 0 and output biases at the
    unigram model (see node_log_odds)."""
    V = len(counts)
    shapes = _param_shapes(options, V)
    rng = generator(seed)
    nd = options.context * options.dim
    emb = (rng.random(shapes["emb"], dtype=np.float32) - np.float32(0.5))
    limit = math.sqrt(6.0 / (nd + options.hidden))
    W = ((rng.random(shapes["W"], dtype=np.float32) * 2 - 1) * np.float32(limit)).astype(np.float32)
    softmax = resolve_softmax(options.softmax, V)
    if softmax == "hs":
        out_b = node_log_odds(tree_of(counts), counts)
    else:
        p = np.maximum(np.asarray(counts, np.float64), 1e-3)
        out_b = np.log(p / p.sum()).astype(np.float32)
    p = {"emb": emb, "W": W, "b": np.zeros(shapes["b"], np.float32), "out": np.zeros(shapes["out"], np.float32),
         "out_b": out_b}
    if "W2" in shapes:
        limit = math.sqrt(6.0 / (options.hidden + options.hidden2))
        p["W2"] = ((rng.random(shapes["W2"], dtype=np.float32) * 2 - 1) * np.float32(limit)).astype(np.float32)
        p["b2"] = np.zeros(shapes["b2"], np.float32)
    if "direct" in shapes:
        p["direct"] = np.zeros(shapes["direct"], np.float32)
    if "ngram" in shapes:
        p["ngram"] = np.zeros(shapes["ngram"], np.float32)
    return p


def _is_dense(options, n_words) -> bool:
    """Whether training runs the BLAS minibatch path (full softmax: checked in NPLMOptions.check and here
    for auto, which resolves by the vocabulary's size)."""
    softmax = resolve_softmax(options.softmax, n_words)
    if softmax != "full" and (options.direct or options.dropout or options.hidden2 or options.optimizer == "adam"
                              or options.ngram_order):
        raise OptionError("direct" if options.direct else "dropout" if options.dropout else
                          "hidden2" if options.hidden2 else "ngram_order" if options.ngram_order else "optimizer",
                          f"needs the full softmax ({param('softmax')} auto chose {softmax} for {n_words:,} words)")
    return softmax == "full"


def _activate(A, activation):
    """act(A) in place."""
    if activation == "tanh":
        return np.tanh(A, out=A)
    H = np.exp(-A, out=A)
    H += 1
    return np.reciprocal(H, out=H)


def _activation_slope(H, activation):
    """act'(A) from H = act(A)."""
    return (1 - H * H) if activation == "tanh" else H * (1 - H)


def hidden_forward(p, ctx, activation, keep=None):
    """The inputs X [B, n·dim], the last hidden layer's activations H [B, hidden or hidden2] (before dropout),
    those after dropout Hd and the first hidden layer's activations H1 (None without a second layer) of the
    contexts ctx [B, n] (ids checked by the caller); `keep` (0 or 1/(1−dropout)) masks H."""
    X = p["emb"][ctx].reshape(len(ctx), -1)
    A = X @ p["W"].T
    A += p["b"]
    H = _activate(A, activation)
    H1 = None
    if p.get("W2") is not None:
        H1 = H
        A = H1 @ p["W2"].T
        A += p["b2"]
        H = _activate(A, activation)
    Hd = H * keep if keep is not None else H
    return X, H, Hd, H1


def ngram_offsets(p, ctx, ngram_order):
    """The offsets [B, ngram_order − 1] of the contexts' n-gram slices in p["ngram"] (None without n-gram
    features): kernels.nplm.ngram_offsets."""
    if p.get("ngram") is None:
        return None
    from fastemb.kernels import nplm as K
    return K.ngram_offsets(ctx, ngram_order, len(p["ngram"]), len(p["out"]))


def output_logits(p, X, Hd, lo=0, hi=None, bias=True, offsets=None):
    """The logits [B, hi − lo] of the output layer's rows lo..hi−1 (words, for the full softmax); bias=False:
    without the output biases; offsets (ngram_offsets): the n-gram features' slices, added."""
    hi = len(p["out"]) if hi is None else hi
    Z = Hd @ p["out"][lo:hi].T
    if bias:
        Z += p["out_b"][lo:hi]
    if p.get("direct") is not None:
        Z += X @ p["direct"][lo:hi].T
    if offsets is not None:
        from fastemb.kernels import nplm as K
        K.ngram_add(Z, p["ngram"], offsets, lo)
    return Z


def forward(p, ctx, activation, keep=None, ngram_order=0):
    """hidden_forward's X, H, Hd, the logits Z [B, V] and H1."""
    X, H, Hd, H1 = hidden_forward(p, ctx, activation, keep)
    return X, H, Hd, output_logits(p, X, Hd, offsets=ngram_offsets(p, ctx, ngram_order)), H1


class NgramGradient:
    """The gradient of the n-gram array without making it dense: each slice of words lo.. and its ∂loss/∂logits
    Z [B, n], at the examples' offsets. `step` applies plain SGD to the indices d_lo .. d_hi − 1 of the array
    (threads given disjoint ranges), `dense` makes the whole gradient (tests)."""

    def __init__(self, offsets, parts):
        self.offsets, self.parts = offsets, parts

    def step(self, D, lr, d_lo=0, d_hi=None):
        from fastemb.kernels import nplm as K
        for lo, Z in self.parts:
            K.ngram_sgd(D, self.offsets, Z, lo, d_lo, len(D) if d_hi is None else d_hi, Z.dtype.type(lr))

    def dense(self, size, dtype=np.float64):
        g = np.zeros(size, dtype)
        self.step(g, -1.0)
        return g


def _output_slice_forward(p, X, Hd, tgt, lo, hi, offsets=None):
    """The softmax's first half over the words lo..hi−1: their logits as e^(z − m) per row, with m, Σ e^(z − m)
    and the target's logit (kernels.nplm.softmax_exp)."""
    from fastemb.kernels import nplm as K
    Z = output_logits(p, X, Hd, lo, hi, bias=False)
    B = len(Z)
    stats = np.empty((3, B), np.float64)
    if offsets is None:
        K.softmax_exp(Z, p["out_b"][lo:hi], tgt, lo, Z.dtype == np.float32, stats[0], stats[1], stats[2])
    else:   # the n-gram features added row by row with the biases, in cache
        K._check_slices(Z, p["ngram"], offsets, lo)
        K.softmax_exp(Z, p["out_b"][lo:hi], tgt, lo, Z.dtype == np.float32, stats[0], stats[1], stats[2],
                      p["ngram"], offsets)
    return Z, stats


def _output_slice_backward(p, X, Hd, tgt, lo, hi, Z, factor, scale, on_slice):
    """The softmax's second half over the words lo..hi−1 and their rows' gradients; returns their contribution
    to ∂/∂Hd (and ∂/∂X through direct connections, else None), taken before on_slice(lo, hi, g) may step them."""
    from fastemb.kernels import nplm as K
    g = {"out_b": np.empty(hi - lo, Z.dtype)}
    K.softmax_gradient(Z, tgt, lo, factor.astype(Z.dtype), Z.dtype.type(scale), g["out_b"])
    g["out"] = Z.T @ Hd
    dHd = Z @ p["out"][lo:hi]
    dX = None
    if p.get("direct") is not None:
        g["direct"] = Z.T @ X
        dX = Z @ p["direct"][lo:hi]
    on_slice(lo, hi, g)
    return dHd, dX


def dense_gradients(p, ctx, tgt, activation="tanh", keep=None, scale=None, slices=1, pool=None, on_slice=None,
                    ngram_order=0):
    """Summed loss Σ −log P(tgt | ctx) of a minibatch and the gradients of `scale` times it (default 1/B: its
    MEAN) over every array of p (full softmax; `keep` the dropout mask or None). Matrix products through numpy
    (BLAS); works in the arrays' float type (float32 in training, float64 in the gradient tests).

    The output layer runs in `slices` slices of its rows (the vocabulary), slice 0 on this thread and the others
    on the pool's, in two phases (the softmax needs every slice's maximum and sum); the slices' contributions to
    the layers below are summed in slice order, so a result depends on the number of slices, not on timing. With
    on_slice, each slice's gradients (out, out_b, direct) go to on_slice(lo, hi, g) on its thread, once the layers
    below have what they need from those rows (the trainer steps them there), and g holds the others. The word
    vectors' gradient is g["emb"] [U, dim] for the rows g["emb_rows"] [U] (the distinct context words); the n-gram
    array's (with p["ngram"] and ngram_order) is g["ngram"], an NgramGradient."""
    B = len(ctx)
    scale = 1.0 / B if scale is None else scale
    tgt = np.ascontiguousarray(tgt, np.int64)
    X, H, Hd, H1 = hidden_forward(p, ctx, activation, keep)
    V = len(p["out"])
    slices = max(1, min(int(slices), V)) if pool is not None else 1
    cuts = [V * i // slices for i in range(slices + 1)]
    bounds = list(zip(cuts[:-1], cuts[1:]))

    def across(fn, args):  # fn(*args[i]) for every slice, slice 0 here, the others on the pool
        jobs = [pool.submit(fn, *a) for a in args[1:]]
        return [fn(*args[0])] + [j.result() for j in jobs]
    offsets = ngram_offsets(p, ctx, ngram_order)
    first = across(_output_slice_forward, [(p, X, Hd, tgt, lo, hi, offsets) for lo, hi in bounds])
    stats = np.stack([st for _, st in first])                       # [slices, 3, B]
    top = stats[:, 0].max(axis=0)
    weights = np.exp(stats[:, 0] - top) * stats[:, 1]                # each slice's Σ e^(z − top)
    total = weights.sum(axis=0)
    loss = np.log(total) + top - stats[:, 2].max(axis=0)
    factors = scale * np.exp(stats[:, 0] - top) / total
    g = {}

    def keep_slice(lo, hi, part):
        for name, x in part.items():
            if name not in g:
                g[name] = np.empty((V,) + x.shape[1:], x.dtype)
            g[name][lo:hi] = x
    second = across(_output_slice_backward, [(p, X, Hd, tgt, lo, hi, Z, factors[i], scale, on_slice or keep_slice)
                                             for i, ((lo, hi), (Z, _)) in enumerate(zip(bounds, first))])
    if offsets is not None:
        g["ngram"] = NgramGradient(offsets, [(lo, Z) for (lo, _), (Z, _) in zip(bounds, first)])
    dA = second[0][0]
    for dHd, _ in second[1:]:
        dA += dHd
    if keep is not None:
        dA *= keep
    dA *= _activation_slope(H, activation)
    if H1 is not None:  # back through the second layer to the first
        g["W2"] = dA.T @ H1
        g["b2"] = dA.sum(axis=0)
        dA = dA @ p["W2"]
        dA *= _activation_slope(H1, activation)
    g["W"] = dA.T @ X
    g["b"] = dA.sum(axis=0)
    dX = dA @ p["W"]
    for _, dX_direct in second:
        if dX_direct is not None:
            dX += dX_direct
    from fastemb.kernels import nplm as K
    g["emb_rows"], g["emb"] = K.sum_rows(np.ascontiguousarray(ctx, np.int64).ravel(),
                                         dX.reshape(-1, p["emb"].shape[1]), len(p["emb"]))
    return float(loss.sum()), g


def dense_log_probs(p, ctx, tgt, activation="tanh", chunk=512, ngram_order=0) -> np.ndarray:
    """log P(tgt[e] | ctx[e]) under the full softmax (float64 [N]), in chunks of `chunk` examples."""
    from fastemb.kernels import nplm as K
    out = np.empty(len(tgt), np.float64)
    for a in range(0, len(tgt), chunk):
        Z = forward(p, ctx[a:a + chunk], activation, ngram_order=ngram_order)[3]
        out[a:a + chunk] = K.log_softmax_at(Z, np.ascontiguousarray(tgt[a:a + chunk], np.int64))
    return out


def unigram_entropy(counts) -> float:
    p = np.asarray(counts, np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def batch_work(options, n_words, softmax, n_cols) -> int:
    """Multiply-adds of one minibatch (forward, backward, the momentum steps; the dense hidden layer is stepped
    whole every minibatch): the unit the trainer sizes its kernel calls by (fastemb.loop)."""
    B, H, H2, nd = options.batch, options.hidden, options.hidden2, options.context * options.dim
    cols = n_words if softmax == "full" else n_cols
    Ho = H2 or H   # the output layer's rows
    return (3 * B * (H * nd + H2 * H + Ho * cols) + 3 * (H * (nd + 1) + H2 * (H + 1)) + 3 * min(B * cols, n_words)
            * (Ho + 1) + 3 * B * nd + 2 * B * max(ngram_order_of(options, n_words) - 1, 0) * cols)


class NPLMTrainer:
    """Minibatch SGD with momentum over shuffled blocks of the encoded corpus; one block per kernel call (sampled,
    nce, hs: Hogwild Numba kernels) or per run of BLAS minibatches (full softmax: `dense_gradients`)."""

    unit = "words"
    advice = "alpha"

    def __init__(self, options: NPLMOptions, corpus, *, seed, threads, state, arrays=None):
        from fastemb.kernels import nplm as K
        self.K, self.o, self.corpus, self.seed = K, options, corpus, seed
        counts = np.asarray(corpus.vocab.counts, np.int64)
        V = len(counts)
        if V < 2:
            raise FastembError(f"nplm needs at least 2 words in the vocabulary (got {V}): lower {param('min_count')}")
        self.V = V
        self.threads = threads
        self.softmax = resolve_softmax(options.softmax, V)
        if self.softmax in ("sampled", "nce") and options.samples > V:
            raise OptionError("samples", f"is {options.samples:,}, more than the {V:,} words of the vocabulary it "
                                         f"draws from: give at most {V:,} (or {param('softmax')} full)")
        self.dense = _is_dense(options, V)
        self.ngram_order = ngram_order_of(options, V)
        if self.ngram_order and ngram_size_of(options, V) < V:
            raise OptionError("ngram_size", f"is {ngram_size_of(options, V):,}, fewer weights than the {V:,} words "
                                            f"of the "
                                            f"vocabulary (each n-gram history has a slice of V weights)")
        self.optimizer, self.alpha, self.final_alpha = options.rates(V)
        specs = self.array_specs(options, corpus.vocab.words)
        if self.softmax == "hs":
            self.codes, self.points, self.lengths = _tree_arrays(tree_of(counts))
            n_cols = self.codes.shape[1]
        else:
            self.codes, self.points = np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int64)
            self.lengths = np.zeros(1, np.int64)
            n_cols = V if self.softmax == "full" else options.samples + 1
        self.n_cols = n_cols
        self.batch_work = batch_work(options, V, self.softmax, n_cols)
        check_unit_work(self.batch_work, "minibatch",
                        ["batch", "hidden", "dim", "context"] + (["samples"] if self.n_cols > 1 and
                                                                 self.softmax in ("sampled", "nce") else []))
        if arrays is None:
            p = init_params(options, counts, seed)
            arrays = dict(p)
            for name, a in p.items():
                if name in STATELESS:
                    continue
                arrays["v_" + name] = np.zeros_like(a)
                if self.optimizer == "adam":
                    arrays["m_" + name] = np.zeros_like(a)
            if self.optimizer == "adam":
                arrays["adam_steps"] = np.zeros(1, np.float64)
            if options.valid:
                arrays.update({"best_" + name: a.copy() for name, a in p.items()})
                arrays["schedule"] = np.zeros(specs["schedule"][0], np.float32)
                arrays["schedule"][0] = self.alpha
        self.p = {k: np.ascontiguousarray(arrays[k], specs[k][1]) for k in specs}
        self.n_samples = options.samples if self.softmax in ("sampled", "nce") else 0
        q = counts.astype(np.float64) / counts.sum()
        self.cdf = np.cumsum(q)
        self.cdf /= self.cdf[-1]
        self.logq = np.log(np.maximum(self.n_samples * q, 1e-300)) if self.n_samples else np.zeros(V)
        self._starts = None
        self._split()
        self.work_per_epoch = self.train_tokens
        self.total_work = float(options.epochs) * self.work_per_epoch
        self._reference = self._reference_loss(counts)
        self.stop_training = False
        self.threads = threads

    @staticmethod
    def array_specs(options, words) -> dict:
        n_words = len(words)
        shapes = _param_shapes(options, n_words)
        specs = {name: (shape, "float32") for name, shape in shapes.items()}
        stepped = {name: shape for name, shape in shapes.items() if name not in STATELESS}
        specs.update({"v_" + name: (shape, "float32") for name, shape in stepped.items()})
        if options.rates(n_words)[0] == "adam":   # v_: the running mean of the squared gradient, m_: of the gradient
            specs.update({"m_" + name: (shape, "float32") for name, shape in stepped.items()})
            specs["adam_steps"] = ((1,), "float64")
        if options.valid:
            specs.update({"best_" + name: (shape, "float32") for name, shape in shapes.items()})
            specs["schedule"] = ((SCHEDULE_HEAD + options.epochs,), "float32")
        return specs

    def arrays(self) -> dict:
        return dict(self.p)

    def vectors(self):
        return self.p["emb"][:self.V]

    def _reference_loss(self, counts) -> float:
        K = self.n_samples
        if self.softmax == "sampled":
            return math.log(K + 1)
        if self.softmax == "nce":
            return math.log(K + 1) + K * math.log1p(1 / K)
        return unigram_entropy(counts)

    def reference_loss(self) -> float:
        """The untrained model's loss: the unigram entropy (full, hs), log(K + 1) for sampled softmax (every
        corrected logit is −log K), and NCE's log(K + 1) + K·log(1 + 1/K)."""
        return self._reference

    def _pieces(self):
        """Token offsets where the corpus's pieces start (whole sentences of about PIECE_TOKENS tokens), and the
        end: the units an epoch's permutation shuffles."""
        if self._starts is None:
            ends = self.corpus.sentence_ends
            marks = np.arange(0, int(ends[-1]), PIECE_TOKENS)
            first = np.unique(np.searchsorted(ends, marks, side="right"))   # sentences where pieces start
            first = first[first < len(ends)]
            starts = np.where(first > 0, np.asarray(ends[np.maximum(first - 1, 0)]), 0)
            self._starts = np.concatenate((starts, [int(ends[-1])])).astype(np.int64)
        return self._starts

    def _split(self):
        """Pieces held out for validation (a `valid` fraction of them, chosen by the seed) and those trained on."""
        starts = self._pieces()
        n = len(starts) - 1
        n_valid = int(round(self.o.valid * n)) if self.o.valid else 0
        if self.o.valid and not 1 <= n_valid < n:
            raise OptionError("valid", f"{self.o.valid} of the corpus's {n:,} pieces of ~{PIECE_TOKENS} tokens "
                                       f"leaves {'no held-out' if n_valid < 1 else 'no training'} text")
        order = generator(self.seed, 0x76616C6964).permutation(n)
        self.valid_pieces = np.sort(order[:n_valid])
        self.train_pieces = np.sort(order[n_valid:])
        sizes = np.diff(starts)
        self.train_tokens = int(sizes[self.train_pieces].sum())
        self.valid_tokens = int(sizes[self.valid_pieces].sum())

    def _gather(self, pieces):
        starts = self._pieces()
        ids_all, ends_all = self.corpus.ids, self.corpus.sentence_ends
        ids, ends, pos = [], [], 0
        for c in pieces:
            t0, t1 = int(starts[c]), int(starts[c + 1])
            s0, s1 = np.searchsorted(ends_all, [t0, t1], side="right")
            ids.append(np.asarray(ids_all[t0:t1]))
            ends.append(np.asarray(ends_all[s0:s1], np.int64) - t0 + pos)
            pos += t1 - t0
        return np.concatenate(ids).astype(np.int64), np.concatenate(ends)

    def blocks(self, epoch):
        """The epoch's blocks: (token ids, sentence ends relative to the block), each made of BLOCK_TOKENS /
        PIECE_TOKENS training pieces taken in the order of a permutation of (seed, epoch), so that a block mixes
        text from all over the corpus (text read in its own order drifts the model towards the part just read)."""
        pieces = self.train_pieces
        order = pieces[generator(self.seed, epoch, 0x6E706C6D).permutation(len(pieces))]
        per_block = max(1, BLOCK_TOKENS // PIECE_TOKENS)
        for b0 in range(0, len(order), per_block):
            yield self._gather(order[b0:b0 + per_block])

    def _schedule(self):
        return self.p.get("schedule")

    def learning_rate(self, done) -> float:
        """The learning rate after `done` words of training: the schedule's (valid) or linear decay."""
        sched = self._schedule()
        if sched is not None:
            return float(sched[0])
        return max(self.final_alpha, self.alpha - (self.alpha - self.final_alpha) * done / max(self.total_work, 1.0))

    def run_epoch(self, state):
        o, epoch = self.o, state.epoch
        pool = None
        if self.dense and self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(self.threads - 1)
        try:
            yield from self._epoch_blocks(state, pool)
        finally:
            if pool is not None:
                pool.shutdown()
        if o.valid:
            from fastemb.parallel import blas_threads
            with blas_threads(BLAS_THREADS):
                self._validate(epoch)

    def _epoch_blocks(self, state, pool):
        from fastemb.loop import Step
        o, p = self.o, self.p
        epoch = state.epoch
        code = CODES[self.softmax]
        activation = ACTIVATIONS.index(o.activation)
        for b, (ids, ends) in enumerate(self.blocks(epoch)):
            if b < state.block:
                continue  # finished before the checkpoint
            before = epoch * self.work_per_epoch + state.pos
            if self.dense:
                from fastemb.parallel import blas_threads
                with blas_threads(BLAS_THREADS):
                    total = self._dense_block(ids, ends, epoch, b, before, pool)
            else:
                sched = self._schedule()
                alpha, min_alpha = (float(sched[0]),) * 2 if sched is not None else (self.alpha, self.final_alpha)
                # work-sized calls (fastemb.loop): chunks of at most CHUNK_EXAMPLES examples and about one call's
                # work each, as many per call as the threads take; one thread trains the block bit for bit alike
                chunk_batches = units_per_call(self.batch_work, 1, max(1, CHUNK_EXAMPLES // o.batch))
                chunk = chunk_batches * o.batch
                n_chunks = (len(ids) + chunk - 1) // chunk
                chunk_work = chunk_batches * self.batch_work + 2 * (self.V + p["out"].shape[0])
                loss = np.zeros(n_chunks, np.float64)
                ctx_all = self.K.sentence_contexts(ids, ends, o.context, self.V)
                order = self.K.block_order(len(ids), self.seed, epoch, b)
                for q_lo, q_hi in call_ranges(n_chunks, units_per_call(chunk_work, self.threads)):
                    self.K.train_range(
                        ids, ctx_all, order, q_lo, q_hi, o.batch, chunk_batches, self.seed, epoch, b, float(before),
                        max(self.total_work, 1.0), alpha, min_alpha, o.momentum, o.weight_decay, self.n_samples,
                        self.cdf, self.logq, p["emb"], p["W"], p["b"], p["out"], p["out_b"], p["v_emb"], p["v_W"],
                        p["v_b"], p["v_out"], p["v_out_b"], self.codes, self.points, self.lengths, code, activation,
                        self.n_cols, loss)
                total = float(loss.sum())
            current = self.learning_rate(before + len(ids))
            yield Step(work=len(ids), loss=total, count=len(ids), extra=f"alpha {current:.5f}")

    def _dense_block(self, ids, ends, epoch, block, before, pool) -> float:
        """One block on the full softmax: its positions shuffled, minibatches of `batch` examples, each one step
        of the optimizer from dense_gradients (BLAS) applied by a fused kernel. With a pool, the output layer runs
        in one slice of the vocabulary per thread (numpy and the kernels free the GIL; one BLAS thread each), each
        slice's rows stepped on its thread: a run is reproducible for a given thread count."""
        o, p, K = self.o, self.p, self.K
        ctx_all = K.sentence_contexts(ids, ends, o.context, self.V)
        rng = generator(self.seed, epoch, block, 0x64656E7365)
        order = rng.permutation(len(ids))
        params = {n: p[n] for n in PARAMS if n in p}
        slices = min(self.threads, max(1, self.V // MIN_SLICE)) if pool is not None else 1
        total = 0.0
        keep_scale = np.float32(1.0 / (1.0 - o.dropout)) if o.dropout else None
        for lo in range(0, len(ids), o.batch):
            sel = order[lo:lo + o.batch]
            keep = None
            if keep_scale is not None:
                keep = (rng.random((len(sel), o.hidden2 or o.hidden), dtype=np.float32) >= o.dropout) * keep_scale
            rate = self.learning_rate(before + lo)
            rates = self._step_rates(rate)

            def step_slice(a, b, g, rates=rates):
                for name, x in g.items():
                    self._step(name, x, rates, a, b)
            loss, g = dense_gradients(params, ctx_all[sel], ids[sel], o.activation, keep, slices=slices, pool=pool,
                                      on_slice=step_slice, ngram_order=self.ngram_order)
            total += loss
            ngram = g.pop("ngram", None)
            if ngram is not None:   # plain SGD, the array cut in one range of indices per thread (no races)
                lr = o.ngram_alpha * rate / self.alpha   # decayed as the model's rate is
                D = p["ngram"]
                parts = slices if pool is not None else 1
                cuts = [len(D) * i // parts for i in range(parts + 1)]
                jobs = [pool.submit(ngram.step, D, lr, cuts[i], cuts[i + 1]) for i in range(1, parts)]
                ngram.step(D, lr, cuts[0], cuts[1])
                for j in jobs:
                    j.result()
            emb_rows = g.pop("emb_rows")
            for name, x in g.items():
                self._step(name, x, rates, rows=emb_rows if name == "emb" else None)
        return total

    def _step_rates(self, lr) -> tuple:
        """This minibatch's (lr, μ) for momentum or (lr, β1, β2, eps²) for Adam, its bias corrections folded in."""
        if self.optimizer != "adam":
            return np.float32(lr), np.float32(self.o.momentum)
        t = self.p["adam_steps"][0] = self.p["adam_steps"][0] + 1
        b1, b2 = ADAM_BETAS
        c2 = math.sqrt(1 - b2 ** t)
        return (np.float32(lr * c2 / (1 - b1 ** t)), np.float32(b1), np.float32(b2),
                np.float32((ADAM_EPS * c2) ** 2))

    def _step(self, name, g, rates, lo=None, hi=None, rows=None):
        """One step of the array `name` (its rows lo..hi−1, or the rows `rows` with g one row each: the word
        vectors, stepped lazily) along its gradient g, by the run's optimizer."""
        p = self.p
        decay = np.float32(0.0 if name in ("b", "b2", "out_b") else self.o.weight_decay)
        if rows is not None:
            if self.optimizer == "adam":
                self.K.adam_rows(p[name], p["m_" + name], p["v_" + name], rows, g, *rates, decay)
            else:
                self.K.momentum_rows(p[name], p["v_" + name], rows, g, *rates, decay)
            return
        rows = slice(lo, hi)
        if self.optimizer == "adam":
            self.K.adam_step(p[name][rows].reshape(-1), p["m_" + name][rows].reshape(-1),
                             p["v_" + name][rows].reshape(-1), g.reshape(-1), *rates, decay)
        else:
            self.K.momentum_step(p[name][rows].reshape(-1), p["v_" + name][rows].reshape(-1), g.reshape(-1), *rates,
                                 decay)

    def log_probs(self, ids, ends, params=None) -> np.ndarray:
        """log P of every token of sentences (ids < V, ends) under the current (or given) parameters, with
        the output layer's exact normalisation (full softmax for full/sampled/nce, the tree for hs)."""
        p = params or self.p
        ctx = self.K.sentence_contexts(ids, ends, self.o.context, self.V)
        if self.softmax != "hs":
            return dense_log_probs(p, ctx, ids, self.o.activation, ngram_order=self.ngram_order)
        out = np.empty(len(ids), np.float64)
        for a in range(0, len(ids), 1024):
            H = hidden_forward({k: p[k] for k in ("emb", "W", "b")}, ctx[a:a + 1024], self.o.activation)[1]
            out[a:a + 1024] = self.K.tree_log_probs(H, ids[a:a + 1024], p["out"], p["out_b"], self.codes,
                                                     self.points, self.lengths)
        return out

    def _validate(self, epoch):
        """After an epoch: the held-out perplexity; keep the best parameters, decay the learning rate on a
        plateau, and stop after `patience` epochs without gain."""
        from fastemb.progress import log
        o, p = self.o, self.p
        ids, ends = self._gather(self.valid_pieces)
        ppl = math.exp(-float(self.log_probs(ids, ends).mean()))
        sched = p["schedule"]
        best = float(sched[1])
        if epoch < len(sched) - SCHEDULE_HEAD:
            sched[SCHEDULE_HEAD + epoch] = ppl
        gain = best == 0 or ppl < best * (1 - o.plateau)
        if best == 0 or ppl < best:
            sched[1], sched[3] = ppl, epoch + 1
            for n in PARAMS:
                if n in p:
                    p["best_" + n][...] = p[n]
        if gain:
            sched[2] = 0
        else:
            sched[2] += 1
            sched[0] *= o.lr_decay
        self.stop_training = sched[2] >= o.patience
        log.info(f"epoch {epoch + 1}: held-out perplexity {ppl:.2f} ({self.valid_tokens:,} tokens; best "
                 f"{float(sched[1]):.2f} after epoch {int(sched[3])}), alpha now {float(sched[0]):.5f}"
                 + ("; stopping" if self.stop_training else ""))

    @property
    def valid_perplexities(self) -> list:
        sched = self._schedule()
        if sched is None:
            return []
        return [float(x) for x in sched[SCHEDULE_HEAD:] if x > 0]

    def result(self) -> dict:
        V = self.V
        sched = self._schedule()
        p = self.p
        attrs = {"softmax": self.softmax, "language_model": "nplm", "ngram_order": self.ngram_order}
        if sched is not None and sched[1] > 0:
            p = {n: self.p["best_" + n] for n in PARAMS if n in self.p}
            attrs.update(valid_perplexity=self.valid_perplexities, best_epoch=int(sched[3]),
                         valid_tokens=self.valid_tokens)
        model = {"boundary": p["emb"][V].copy(), "hidden_weight": p["W"].copy(), "hidden_bias": p["b"].copy(),
                 "output_weight": p["out"].copy(), "output_bias": p["out_b"].copy()}
        if self.softmax == "hs":
            attrs["hs_tree_sha256"] = tree_digest(self.codes, self.points, self.lengths)
        if "direct" in p:
            model["direct_weight"] = p["direct"].copy()
        if "ngram" in p:
            model["ngram_weight"] = p["ngram"].copy()
            attrs["ngram_size"] = int(p["ngram"].shape[0])
        if "W2" in p:
            model.update(hidden2_weight=p["W2"].copy(), hidden2_bias=p["b2"].copy())
        return {"vectors": p["emb"][:V].copy(), "model": model, "attrs": attrs}


# ------------------------------------------------------------------------------------------ using a model
def _record(attrs) -> dict:
    try:
        record = json.loads(attrs.get("options") or "null")
    except (TypeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class LanguageModel:
    """A trained NPLM: `LanguageModel.load("model.h5").predict("the king of", k=10)`, `.perplexity(text)`.

    Every array is checked against the vocabulary, dim, hidden, context and the tree before any kernel sees it:
    a damaged or crafted file is a one-line FileError."""

    def __init__(self, emb, where=None):
        where = where or "<Embeddings>"
        a = emb.attrs
        model = getattr(emb, "model", None)
        if a.get("algo") != "nplm" or not model:
            algo = a.get("algo", "unknown")
            raise FastembError(f"{where} holds {algo} vectors, not a language model (train one with --algo nplm)")
        def bad(what):
            return FileError(f"{where}: damaged language model ({what})")
        softmax, activation, context = a.get("softmax"), a.get("activation"), a.get("context")
        if softmax not in CODES:
            raise bad(f"softmax {softmax!r}")
        if activation not in ACTIVATIONS:
            raise bad(f"activation {activation!r}")
        if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= 64:
            raise bad(f"context {context!r}")
        missing = [n for n in MODEL_ARRAYS if n not in model]
        if missing:
            raise bad(f"no /model/{missing[0]}")
        arrays = {}
        for name in MODEL_ARRAYS:
            x = np.asarray(model[name])
            if x.dtype.kind != "f" or not np.isfinite(x).all():
                raise bad(f"/model/{name} must hold finite floats")
            arrays[name] = np.ascontiguousarray(x, np.float32)
        V, dim = emb.vectors.shape
        if V < 2:
            raise bad(f"{V} words")
        W = arrays["hidden_weight"]
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] != context * dim:
            raise bad(f"/model/hidden_weight is {'×'.join(map(str, W.shape))}, expected hidden×{context * dim} "
                      f"(context {context} × dim {dim})")
        hidden = W.shape[0]
        rows = V - 1 if softmax == "hs" else V
        expected = {"boundary": (dim,), "hidden_bias": (hidden,), "output_weight": (rows, hidden),
                    "output_bias": (rows,)}
        for name in ("direct_weight", "hidden2_weight", "hidden2_bias", "ngram_weight"):  # the full softmax's
            x = model.get(name)
            if x is None:
                continue
            x = np.asarray(x)
            if x.dtype.kind != "f" or not np.isfinite(x).all():
                raise bad(f"/model/{name} must hold finite floats")
            if softmax == "hs":
                raise bad(f"/model/{name} with a tree output layer")
            arrays[name] = np.ascontiguousarray(x, np.float32)
        if "direct_weight" in arrays:
            expected["direct_weight"] = (rows, context * dim)
        ngram_order = a.get("ngram_order", 0)
        if isinstance(ngram_order, bool) or not isinstance(ngram_order, int) or \
                not (ngram_order == 0 or 2 <= ngram_order <= context + 1):
            raise bad(f"ngram_order {ngram_order!r} with context {context}")
        if bool(ngram_order) != ("ngram_weight" in arrays):
            raise bad(f"ngram_order {ngram_order} " + ("without /model/ngram_weight" if ngram_order else
                                                        "with /model/ngram_weight"))
        if "ngram_weight" in arrays:
            D = arrays["ngram_weight"]
            if D.ndim != 1 or not V <= D.shape[0] <= MAX_NGRAM_SIZE or D.shape[0] != a.get("ngram_size"):
                raise bad(f"/model/ngram_weight is {'×'.join(map(str, D.shape))}, expected ngram_size "
                          f"{a.get('ngram_size')!r} weights, at least the {V} words")
        if ("hidden2_weight" in arrays) != ("hidden2_bias" in arrays):
            raise bad("/model/hidden2_weight and /model/hidden2_bias must come together")
        if "hidden2_weight" in arrays:
            W2 = arrays["hidden2_weight"]
            if W2.ndim != 2 or W2.shape[0] < 1:
                raise bad(f"/model/hidden2_weight is {'×'.join(map(str, W2.shape))}, expected hidden2×{hidden}")
            expected.update(hidden2_weight=(W2.shape[0], hidden), hidden2_bias=(W2.shape[0],),
                            output_weight=(rows, W2.shape[0]))
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise bad(f"/model/{name} is {'×'.join(map(str, arrays[name].shape))}, expected "
                          f"{'×'.join(map(str, shape))}")
        if softmax == "hs":  # the tree is rebuilt from the counts: it must be the one the model was trained on
            saved = a.get("hs_tree_sha256")
            if not isinstance(saved, str):
                raise bad("no digest of its Huffman tree (hs_tree_sha256): the tree it was trained with cannot be "
                          "checked")
            counts = np.asarray(emb.counts)
            if counts.shape != (V,) or (counts < 1).any():
                raise bad("its word counts, which its Huffman tree is built from, are missing or not positive")
            tree = tree_of(counts)
            codes, points, lengths = _tree_arrays(tree)
            if lengths.min() < 1 or points.min() < 0 or points.max() >= rows or codes.max() > 1:
                raise bad("its Huffman tree")  # cannot happen for counts read through store.py
            if tree_digest(codes, points, lengths) != saved:
                raise bad("its word counts give another Huffman tree than the one it was trained with")
            self.codes, self.points, self.lengths = codes, points, lengths
        self.emb, self.where, self.V, self.dim, self.hidden = emb, where, V, dim, hidden
        self.softmax, self.activation, self.context = softmax, activation, context
        self.table = np.ascontiguousarray(np.vstack([emb.vectors, arrays["boundary"][None]]), np.float32)
        self.W, self.b = W, arrays["hidden_bias"]
        self.out, self.out_b = arrays["output_weight"], arrays["output_bias"]
        self.direct = arrays.get("direct_weight")
        self.ngram, self.ngram_order = arrays.get("ngram_weight"), ngram_order
        self.W2, self.b2 = arrays.get("hidden2_weight"), arrays.get("hidden2_bias")
        record = _record(a)
        corpus = record.get("corpus_options") if isinstance(record.get("corpus_options"), dict) else {}
        self.lowercase = bool(corpus.get("lowercase", a.get("lowercase", False)))
        pattern = corpus.get("token_pattern", a.get("token_pattern"))
        if pattern is not None:  # the same check as the CLI's --token-pattern (no catastrophic backtracking)
            from fastemb.corpus import CorpusOptions
            try:
                CorpusOptions(token_pattern=pattern)
            except (OptionError, TypeError):
                raise bad("its recorded token pattern is not one --token-pattern accepts") from None
        self.token_pattern = pattern
        self._out64 = None

    @property
    def params(self) -> dict:
        """The model's arrays under the trainer's names (emb holds the boundary vector as row V)."""
        return {"emb": self.table, "W": self.W, "b": self.b, "W2": self.W2, "b2": self.b2, "out": self.out,
                "out_b": self.out_b, "direct": self.direct, "ngram": self.ngram}

    @property
    def params64(self) -> dict:
        """The arrays in float64: predict, eval --text and perplexity all compute in float64, the same way."""
        if getattr(self, "_params64", None) is None:
            self._params64 = {k: (None if v is None else v.astype(np.float64)) for k, v in self.params.items()}
        return self._params64

    @classmethod
    def load(cls, path) -> "LanguageModel":
        from fastemb.embeddings import load
        return cls(load(path, "hdf5"), os.fspath(path))

    @property
    def words(self):
        return self.emb.words

    # ------------------------------------------------------------------ the model
    def tokens(self, text) -> list:
        """Text split as the training corpus was (lower-cased, token pattern), or a list of tokens as given."""
        if not isinstance(text, str):
            return [str(t) for t in text]
        from fastemb.corpus import tokenize
        return tokenize(text, self.lowercase, self.token_pattern)

    def _hidden(self, ctx):
        return self.K.hidden_layer(np.ascontiguousarray(ctx, np.int64), self.table, self.W, self.b,
                                   ACTIVATIONS.index(self.activation))

    @property
    def K(self):
        from fastemb.kernels import nplm as _nplm_kernels
        return _nplm_kernels

    def context_ids(self, text, skip_unknown=False) -> np.ndarray:
        """The ids of the last `context` words of `text`, padded with the boundary token (a shorter text is
        the start of a sentence, as in training). Unknown words raise UnknownWord, or are dropped with
        skip_unknown (training dropped them from the corpus the same way)."""
        tokens = self.tokens(text)
        index = self.emb.index
        unknown = [t for t in tokens if t not in index]
        if unknown and not skip_unknown:
            raise UnknownWord(unknown[0] if len(unknown) == 1 else ", ".join(unknown))
        ids = [index[t] for t in tokens if t in index][-self.context:] if self.context else []
        return np.array([self.V] * (self.context - len(ids)) + ids, np.int64)

    def log_probs(self, text, skip_unknown=False) -> np.ndarray:
        """log P(w | the text's last words) for every word w (float64 [V]), exactly normalised."""
        ctx = self.context_ids(text, skip_unknown)[None]
        with np.errstate(all="ignore"):
            if self.softmax == "hs":
                h = self._hidden(ctx)[0]
                logits = self.out.astype(np.float64) @ h.astype(np.float64) + self.out_b
            else:  # float64 throughout, as sequence_log_probs (eval --text, perplexity)
                logits = forward(self.params64, ctx, self.activation, ngram_order=self.ngram_order)[3][0]
            if self.softmax == "hs":
                lp = self.K.tree_all_log_probs(logits, self.codes, self.points, self.lengths)
            else:
                m = logits.max()
                lp = logits - (m + math.log(np.exp(logits - m).sum())) if np.isfinite(m) else logits + np.nan
        if not np.isfinite(lp).all():
            raise FastembError(f"{self.where}: the model gives non-finite probabilities (its weights overflow: a "
                               f"diverged or damaged model)")
        return lp

    def predict(self, text, k=10, skip_unknown=False) -> list:
        """The k most probable next words after `text`, with their probabilities: [(word, p), ...]."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise OptionError("topn", f"must be an integer of at least 1 (got {k!r})")
        lp = self.log_probs(text, skip_unknown)
        k = min(k, len(lp))
        top = top_k(lp, k)
        return [(self.emb.words[i], float(np.exp(lp[i]))) for i in top]

    def sequence_log_probs(self, ids, ends, chunk=None) -> np.ndarray:
        """log P of every token of sentences given as ids (int, < V) with their end offsets (float64), in
        work-sized pieces (fastemb.loop) of at most 1024 tokens."""
        if chunk is None:
            from fastemb.loop import units_per_call
            from fastemb.parallel import max_threads
            chunk = units_per_call(self.hidden * (self.context * self.dim + 1) + self.out.size
                                   + (0 if self.W2 is None else self.W2.size), max_threads(), 1024)
        ids = np.ascontiguousarray(ids, np.int64)
        ends = np.ascontiguousarray(ends, np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.V):
            raise FastembError("token ids must be in 0..V-1")
        if len(ends) and (ends[-1] != len(ids) or (np.diff(ends, prepend=0) < 0).any()):
            raise FastembError("sentence ends must rise to the number of tokens")
        ctx = self.K.sentence_contexts(ids, ends, self.context, self.V)
        if self.softmax != "hs":
            with np.errstate(all="ignore"):  # overflow shows as a non-finite perplexity (score: an error)
                return dense_log_probs(self.params64, ctx, ids, self.activation, chunk, self.ngram_order)
        out = np.empty(len(ids), np.float64)
        for a in range(0, len(ids), chunk):
            H = self._hidden(ctx[a:a + chunk])
            y = ids[a:a + chunk]
            if self.softmax == "hs":
                out[a:a + chunk] = self.K.tree_log_probs(H, y, self.out, self.out_b, self.codes, self.points,
                                                         self.lengths)
            else:  # in float64, as log_probs (predict) computes them
                if self._out64 is None:
                    self._out64 = (np.ascontiguousarray(self.out.T, np.float64), self.out_b.astype(np.float64))
                with np.errstate(all="ignore"):  # overflow shows as a non-finite perplexity (score: an error)
                    z = H.astype(np.float64) @ self._out64[0] + self._out64[1]
                    m = z.max(axis=1, keepdims=True)
                    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
                    out[a:a + chunk] = z[np.arange(len(y)), y] - lse
        return out

    def score(self, text_or_path, memory=None) -> dict:
        """Held-out perplexity of a text: a path (a string without whitespace, or a PathLike; .gz/.bz2/.xz
        as for training), a string of text (lines are sentences), or a list of sentences (token lists or
        strings). It is read as the training corpus was, against this model's vocabulary; tokens outside it are
        dropped (as training dropped them) and `coverage` says how many were kept. The perplexity is
        exp(mean −log P(token | its context)) over the kept tokens."""
        from fastemb.corpus import CorpusOptions, Sentences, is_sentences
        from fastemb.files import check_readable
        from fastemb.vocab import build_vocab, iter_blocks
        source = text_or_path
        if isinstance(source, os.PathLike) or isinstance(source, str) and not any(c.isspace() for c in source):
            sources = [check_readable(source, "text file")]
        elif isinstance(source, str):
            sources = [Sentences(source.splitlines())]
        elif is_sentences(source):
            sources = [Sentences(source)]
        else:
            sources = list(source)
        record = _record(self.emb.attrs)
        try:
            copts = CorpusOptions.from_dict(record.get("corpus_options") or {})
        except (OptionError, TypeError):
            copts = CorpusOptions(lowercase=self.lowercase, token_pattern=self.token_pattern)
        copts = copts.replace(min_count=1, max_vocab=None, **({"memory": memory} if memory else {}))
        total, n = 0.0, 0
        with _quiet_vocab(), build_vocab(sources, copts, encode=True, base=self.emb) as enc:
            raw = enc.vocab.raw_tokens
            if enc.n_tokens == 0:
                raise FastembError(f"none of the {raw:,} tokens of the text is in the model's vocabulary")
            for ids, ends, _ in iter_blocks(enc, 1 << 20):
                lp = self.sequence_log_probs(ids, ends)
                total -= float(lp.sum())
                n += len(lp)
        mean = total / n
        if not math.isfinite(mean) or mean > 700:
            raise FastembError(f"{self.where}: the model gives a non-finite perplexity on this text (its weights "
                               f"overflow: a diverged or damaged model)")
        return {"perplexity": math.exp(mean), "cross_entropy_bits": mean / math.log(2), "tokens": n,
                "text_tokens": raw, "coverage": n / raw, "softmax": self.softmax}

    def sentences_of(self, text_or_path) -> list:
        """The sentences of a text (a path, a string of lines, or a list of sentences) as token lists, split as
        the training corpus was."""
        if isinstance(text_or_path, os.PathLike) or isinstance(text_or_path, str) and \
                not any(c.isspace() for c in text_or_path):
            return [self.tokens(line) for line in _read_lines(os.fspath(text_or_path))]
        if isinstance(text_or_path, str):
            return [self.tokens(line) for line in text_or_path.splitlines()]
        return [self.tokens(s) for s in text_or_path]

    def score_events(self, text_or_path, eos=False, unk=None) -> dict:
        """Per-token log-probabilities of a text with explicit events: each sentence's words, then the
        end-of-sentence word EOS_WORD when `eos` (the model must have been trained with it at the end of each
        line); a word outside the vocabulary is scored as the word `unk` (e.g. the <unk> of a corpus whose rare
        words were replaced) or, without it, dropped as training dropped it. Returns perplexity, tokens
        (events scored), words (text words), unknown (text words outside the vocabulary), unknown_rate,
        dropped, eos, log_probs (natural log, float64 per event) and sentence (each event's sentence)."""
        index = self.emb.index
        if eos and EOS_WORD not in index:
            raise FastembError(f"{self.where} has no end-of-sentence word {EOS_WORD}: train it on lines that end "
                               f"with ' {EOS_WORD}' to score the end of sentences")
        if unk is not None and unk not in index:
            raise OptionError("unk", f"{unk!r} is not in the model's vocabulary")
        unk_id = index[unk] if unk is not None else None
        ids, ends, words, unknown, dropped, sent = [], [], 0, 0, 0, []
        for si, tokens in enumerate(self.sentences_of(text_or_path)):
            row = []
            for t in tokens:
                i = index.get(t)
                if i is None:
                    unknown += 1
                    if unk_id is None:
                        dropped += 1
                        continue
                    i = unk_id
                row.append(i)
            words += len(tokens)
            if eos:
                row.append(index[EOS_WORD])
            if row:
                ids += row
                ends.append(len(ids))
                sent += [si] * len(row)
        if not ids:
            raise FastembError("none of the text's tokens is in the model's vocabulary")
        lp = self.sequence_log_probs(np.asarray(ids, np.int64), np.asarray(ends, np.int64))
        return {"perplexity": math.exp(-float(lp.mean())), "tokens": len(lp), "words": words, "unknown": unknown,
                "unknown_rate": unknown / max(words, 1), "dropped": dropped, "coverage": 1 - dropped / max(words, 1),
                "eos": bool(eos), "unk": unk,
                "log_probs": lp, "ids": np.asarray(ids, np.int64), "sentence": np.asarray(sent, np.int64)}

    def write_per_token(self, result, path):
        """One line per scored event of score_events: sentence number, word, log10 P (tab-separated)."""
        from fastemb.files import describe_os_error
        words = self.emb.words
        try:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                for s, i, lp in zip(result["sentence"], result["ids"], result["log_probs"]):
                    f.write(f"{s + 1}\t{words[i]}\t{lp / math.log(10):.6f}\n")
        except OSError as e:
            raise FileError(f"{path}: {describe_os_error(e)}") from None

    def perplexity(self, text_or_path) -> float:
        """exp(mean −log P(token | its context)) over the text's in-vocabulary tokens (see `score`)."""
        return self.score(text_or_path)["perplexity"]


EOS_WORD = "</s>"


def _read_lines(path):
    """Lines of a UTF-8 text file (.gz, .bz2, .xz read through their decompressors)."""
    import bz2
    import gzip
    import lzma
    from fastemb.files import check_readable, describe_os_error, read_text_lines
    path = check_readable(path, "text file")
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(os.path.splitext(path)[1])
    if opener is None:
        return [line for _, line in read_text_lines(path, "text file")]
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as e:
        what = describe_os_error(e) if isinstance(e, OSError) else str(e).split("\n")[0]
        raise FileError(f"{path}: {what}") from None


class _quiet_vocab:
    """Silence the vocabulary's "continued" log line while a held-out text is encoded."""

    def __enter__(self):
        import logging
        from fastemb.progress import log
        self.log, self.level = log, log.level
        log.setLevel(max(self.level, logging.WARNING))

    def __exit__(self, *exc):
        self.log.setLevel(self.level)


ALGORITHMS = (
    Algorithm("nplm", NPLMOptions, NPLMTrainer, memory_bytes, output_bytes=saved_bytes,
              summary="neural probabilistic language model (Bengio et al. 2003)"),
)
