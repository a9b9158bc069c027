"""fastemb.train: corpus -> Embeddings, for every algorithm."""
from __future__ import annotations

import math
import os
import time

import numpy as np

from . import options as O
from .embeddings import Embeddings
from .errors import FastembError
from .parallel import resolve_threads
from .progress import Progress, human
from .vocab import build_vocab

ALGOS = ("sgns", "cbow")
W2V_DEFAULTS = dict(dim=100, window=5, negative=5, ns_exponent=0.75, sample=1e-3, epochs=5, cbow_mean=True,
                    seed=1, shared_negatives=True)
DEFAULT_ALPHA = {"sgns": 0.025, "cbow": 0.05}   # word2vec.c's
MIN_ALPHA_RATIO = 1e-4                          # word2vec.c decays to alpha * 1e-4
# Half-width of the uniform initialisation of input vectors, in units of 1/dim. word2vec.c uses 0.5 and
# gensim 1.0; with 5 epochs both under-train small and mid-sized corpora, and a wider start measured better
# everywhere here (benchmark corpus, 2 seeds each, WS353 / analogy; 1M-token prefix, 3 seeds):
#   width 0.5: sgns 0.606/0.195, cbow 0.604/0.199; 1M prefix sgns 0.255/0.010
#   width 2:   sgns 0.621/0.203, cbow 0.619/0.218; 1M prefix sgns 0.288/0.018
#   width 4:   sgns 0.628/0.206, cbow 0.626/0.222; 1M prefix sgns 0.312/0.027
# (gensim corpus_file, same settings: 0.608/0.200, cbow 0.621/0.217; 1M prefix 0.297/0.018).
DEFAULT_INIT_WIDTH = 4.0


def check_word2vec_options(dim, window, negative, ns_exponent, sample, epochs, alpha, min_alpha, init_width=1.0):
    O.require(dim >= 1, f"--dim must be at least 1 (got {dim})")
    O.check_window(window)
    O.require(negative >= 1, f"--negative must be at least 1 (got {negative}); fastemb trains with "
                             f"negative sampling only")
    O.require(math.isfinite(ns_exponent), f"--ns-exponent must be a number (got {ns_exponent})")
    O.check_sample(sample)
    O.require(epochs >= 1, f"--epochs must be at least 1 (got {epochs})")
    O.require(alpha > 0 and math.isfinite(alpha), f"--alpha must be positive (got {alpha})")
    O.require(0 <= min_alpha <= alpha, f"--min-alpha must be between 0 and --alpha (got {min_alpha})")
    O.require(init_width > 0 and math.isfinite(init_width), f"--init-width must be positive (got {init_width})")


def memory_estimate(n_words, dim) -> int:
    """Bytes the vectors need during word2vec training (input + output matrices, float32)."""
    return 2 * n_words * dim * 4


def train(corpus, algo="sgns", *, dim=100, window=5, negative=5, ns_exponent=0.75, sample=1e-3,
          min_count=O.MIN_COUNT, max_vocab=None, epochs=5, alpha=None, min_alpha=None, cbow_mean=True,
          threads=None, seed=1, shared_negatives=True, init_width=DEFAULT_INIT_WIDTH, add_contexts=False,
          lowercase=False,
          token_pattern=None, max_sentence_length=O.MAX_SENTENCE_LENGTH, memory=O.MEMORY, quiet=False,
          tmp_dir=None) -> Embeddings:
    """Train word vectors on `corpus` (a path, a directory, '-' or a list of them)."""
    if algo not in ALGOS:
        raise FastembError(f"unknown algorithm {algo!r} (one of {', '.join(ALGOS)})")
    alpha = DEFAULT_ALPHA[algo] if alpha is None else float(alpha)
    min_alpha = alpha * MIN_ALPHA_RATIO if min_alpha is None else float(min_alpha)
    check_word2vec_options(dim, window, negative, ns_exponent, sample, epochs, alpha, min_alpha, init_width)
    O.check_corpus_options(min_count, max_vocab, max_sentence_length)
    threads = resolve_threads(threads)
    budget = O.parse_memory(memory)
    t0 = time.perf_counter()
    log = Progress("train", None, quiet=quiet)
    with build_vocab(corpus if isinstance(corpus, (list, tuple)) else [corpus], min_count=min_count,
                     max_vocab=max_vocab, lowercase=lowercase, token_pattern=token_pattern,
                     max_sentence_length=max_sentence_length, memory=budget, quiet=quiet, encode=True,
                     work_dir=tmp_dir) as enc:
        v = enc.vocab
        need = memory_estimate(len(v), dim)
        log.log(f"vocabulary: {len(v):,} words, {enc.n_tokens:,} of {v.raw_tokens:,} tokens; "
                f"vectors need {human(need)}B")
        from .word2vec import train_word2vec
        syn0, syn1, info = train_word2vec(enc, cbow=(algo == "cbow"), dim=dim, window=window, negative=negative,
                                          ns_exponent=ns_exponent, sample=sample, epochs=epochs, alpha=alpha,
                                          min_alpha=min_alpha, cbow_mean=cbow_mean, threads=threads, seed=seed,
                                          shared_negatives=shared_negatives, init_width=init_width,
                                          quiet=quiet)
        attrs = dict(algo=algo, dim=dim, window=window, negative=negative, ns_exponent=ns_exponent,
                     sample=sample, min_count=min_count, max_vocab=max_vocab or 0, epochs=epochs, alpha=alpha,
                     min_alpha=min_alpha, cbow_mean=cbow_mean, threads=threads, seed=seed,
                     shared_negatives=shared_negatives, init_width=init_width, add_contexts=add_contexts,
                     lowercase=lowercase,
                     max_sentence_length=max_sentence_length, corpus_tokens=v.raw_tokens,
                     vocab_tokens=enc.n_tokens, loss=info["loss"], loss_curve=info["loss_curve"],
                     train_seconds=info["train_seconds"], words_per_second=info["words_per_second"],
                     total_seconds=time.perf_counter() - t0,
                     corpus=os.pathsep.join(map(str, corpus if isinstance(corpus, (list, tuple)) else [corpus])))
        vectors = syn0 + syn1 if add_contexts else syn0
        return Embeddings(v.words, vectors, v.counts, context_vectors=syn1, attrs=attrs)
