"""Skip-gram and CBOW training over an encoded corpus (orchestration around _w2v_kernels)."""
from __future__ import annotations

import math
import time

import numpy as np

from . import _w2v_kernels as K
from .cooc import keep_probabilities
from .errors import FastembError
from .parallel import numba_threads
from .progress import Progress, seconds
from .vocab import EncodedCorpus, iter_blocks

CHUNK_TOKENS = 8192      # Hogwild unit: sentences of about this many tokens share one RNG and scratch
BLOCK_TOKENS = 1 << 22   # read from the id file per call of the kernel


def init_vectors(n_words, dim, seed, init_width):
    """Input vectors uniform in [-init_width/d, init_width/d], output vectors zero (word2vec.c uses
    init_width 0.5, gensim 1.0; fastemb's 4.0 trains faster: see DEFAULT_INIT_WIDTH)."""
    rng = np.random.default_rng(seed)
    syn0 = ((rng.random((n_words, dim), dtype=np.float32) - np.float32(0.5))
            * np.float32(2.0 * init_width / dim)).astype(np.float32)
    return syn0, np.zeros((n_words, dim), np.float32)


def negative_table(counts, ns_exponent):
    weights = np.asarray(counts, dtype=np.float64) ** ns_exponent
    return K.alias_table(weights)


def _chunks(ends, chunk_tokens):
    """Sentence indices where chunks start (a chunk is whole sentences of ~chunk_tokens tokens)."""
    if len(ends) == 0:
        return np.zeros(1, np.int64)
    marks = np.arange(0, ends[-1], chunk_tokens)
    starts = np.unique(np.searchsorted(ends, marks, side="right"))
    return np.concatenate((starts[starts < len(ends)], [len(ends)])).astype(np.int64)


def train_word2vec(corpus: EncodedCorpus, *, cbow, dim, window, negative, ns_exponent, sample, epochs, alpha,
                   min_alpha, cbow_mean, threads, seed, shared_negatives, init_width, quiet=False, init=None):
    """Returns (syn0, syn1neg, info) where info holds the loss per epoch and timing."""
    vocab = corpus.vocab
    syn0, syn1 = init if init is not None else init_vectors(len(vocab), dim, seed, init_width)
    keep = keep_probabilities(vocab.counts, sample)
    alias_prob, alias_idx = negative_table(vocab.counts, ns_exponent)
    sig, nls = K.sigmoid_tables()
    total_work = float(epochs) * corpus.n_tokens
    progress = Progress("train", total_work, unit="words", quiet=quiet)
    epoch_loss, curve = [], []
    start = time.perf_counter()
    chunk_counter = 0
    with numba_threads(threads):
        for epoch in range(epochs):
            e_loss = 0.0
            e_pairs = 0
            pos = 0
            for ids, ends, _first in iter_blocks(corpus, BLOCK_TOKENS):
                chunk_sents = _chunks(ends, CHUNK_TOKENS)
                n_chunks = len(chunk_sents) - 1
                loss = np.zeros(n_chunks, np.float64)
                pairs = np.zeros(n_chunks, np.int64)
                K.train_chunks(ids, ends, chunk_sents, syn0, syn1, keep, alias_prob, alias_idx, sig, nls,
                               cbow, shared_negatives, cbow_mean, window, negative, np.float32(alpha),
                               np.float32(min_alpha), float(epoch * corpus.n_tokens + pos), total_work,
                               seed + epoch * 1_000_003, chunk_counter, loss, pairs)
                chunk_counter += n_chunks
                pos += len(ids)
                b_loss, b_pairs = float(loss.sum()), int(pairs.sum())
                e_loss += b_loss
                e_pairs += b_pairs
                block_mean = b_loss / max(b_pairs, 1)
                if not math.isfinite(block_mean):
                    raise FastembError(f"training diverged (loss {block_mean}) in epoch {epoch + 1}: "
                                       f"lower --alpha")
                curve.append(block_mean)
                done = epoch * corpus.n_tokens + pos
                cur_alpha = max(min_alpha, alpha - (alpha - min_alpha) * done / total_work)
                progress.update(done, done, extra=f"epoch {epoch + 1}/{epochs}  alpha {cur_alpha:.5f}  "
                                                   f"loss {block_mean:.4f}")
            epoch_loss.append(e_loss / max(e_pairs, 1))
            if not quiet:
                progress.log(f"epoch {epoch + 1}/{epochs}: loss {epoch_loss[-1]:.4f}  "
                             f"({seconds(time.perf_counter() - start)} elapsed)")
    train_seconds = time.perf_counter() - start
    progress.done(extra=f"final loss {epoch_loss[-1]:.4f}" if epoch_loss else "")
    return syn0, syn1, {"loss": epoch_loss, "loss_curve": curve, "train_seconds": train_seconds,
                        "words_per_second": total_work / max(train_seconds, 1e-9)}
