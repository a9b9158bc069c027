"""Skip-gram and CBOW training over an encoded corpus (orchestration around _w2v_kernels)."""
from __future__ import annotations

import math
import time

import numpy as np

from . import _w2v_kernels as K
from .checkpoint import Checkpointer, TrainState
from .cooc import keep_probabilities
from .errors import FastembError
from .parallel import numba_threads
from .progress import Progress, seconds
from .vocab import EncodedCorpus, iter_blocks

CHUNK_TOKENS = 8192      # Hogwild unit: sentences of about this many tokens share one RNG and scratch
BLOCK_TOKENS = 1 << 20   # per kernel call: Ctrl-C and SIGTERM are seen between calls (< 1 s)


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
                   min_alpha, cbow_mean, threads, seed, shared_negatives, init_width, quiet=False, init=None,
                   state: TrainState | None = None, checkpointer: Checkpointer | None = None):
    """Returns (syn0, syn1neg, info) where info holds the loss per epoch and timing. `init`/`state` resume
    from a checkpoint; `checkpointer` writes them at block or epoch boundaries."""
    vocab = corpus.vocab
    syn0, syn1 = init if init is not None else init_vectors(len(vocab), dim, seed, init_width)
    state = state or TrainState()
    keep = keep_probabilities(vocab.counts, sample)
    alias_prob, alias_idx = negative_table(vocab.counts, ns_exponent)
    sig, nls = K.sigmoid_tables()
    total_work = float(epochs) * corpus.n_tokens
    progress = Progress("train", total_work, unit="words", quiet=quiet)
    start = time.perf_counter()
    resumed_work = state.epoch * corpus.n_tokens + state.pos
    with numba_threads(threads):
        while state.epoch < epochs:
            epoch = state.epoch
            for b, (ids, ends, _first) in enumerate(iter_blocks(corpus, BLOCK_TOKENS)):
                if b < state.block:
                    continue  # finished before the checkpoint
                chunk_sents = _chunks(ends, CHUNK_TOKENS)
                n_chunks = len(chunk_sents) - 1
                loss = np.zeros(n_chunks, np.float64)
                pairs = np.zeros(n_chunks, np.int64)
                K.train_chunks(ids, ends, chunk_sents, syn0, syn1, keep, alias_prob, alias_idx, sig, nls,
                               cbow, shared_negatives, cbow_mean, window, negative, np.float32(alpha),
                               np.float32(min_alpha), float(epoch * corpus.n_tokens + state.pos), total_work,
                               seed + epoch * 1_000_003, state.chunk_counter, loss, pairs)
                b_loss, b_pairs = float(loss.sum()), int(pairs.sum())
                block_mean = b_loss / max(b_pairs, 1)
                if not math.isfinite(block_mean):
                    raise FastembError(f"training diverged (loss {block_mean}) in epoch {epoch + 1}: lower "
                                       f"--alpha" + (f"; the last good checkpoint is {checkpointer.path}"
                                                     if checkpointer else ""))
                state.chunk_counter += n_chunks
                state.pos += len(ids)
                state.block = b + 1
                state.epoch_loss += b_loss
                state.epoch_pairs += b_pairs
                state.curve.append(block_mean)
                done = epoch * corpus.n_tokens + state.pos
                cur_alpha = max(min_alpha, alpha - (alpha - min_alpha) * done / total_work)
                progress.update(done, done - resumed_work, extra=f"epoch {epoch + 1}/{epochs}  alpha "
                                                                  f"{cur_alpha:.5f}  loss {block_mean:.4f}")
                if checkpointer and state.pos < corpus.n_tokens and checkpointer.due(False, epoch):
                    _save(checkpointer, state, syn0, syn1, start)
            state.loss.append(state.epoch_loss / max(state.epoch_pairs, 1))
            state.epoch += 1
            state.block = state.pos = state.epoch_pairs = 0
            state.epoch_loss = 0.0
            if not quiet:
                progress.log(f"epoch {state.epoch}/{epochs}: loss {state.loss[-1]:.4f}  "
                             f"({seconds(time.perf_counter() - start)} elapsed)")
            if checkpointer and state.epoch < epochs and checkpointer.due(True, state.epoch):
                _save(checkpointer, state, syn0, syn1, start)
    train_seconds = state.seconds + time.perf_counter() - start
    progress.done(extra=f"final loss {state.loss[-1]:.4f}" if state.loss else "")
    return syn0, syn1, {"loss": state.loss, "loss_curve": state.curve, "train_seconds": train_seconds,
                        "words_per_second": (total_work - resumed_work) / max(time.perf_counter() - start, 1e-9),
                        "checkpoint_seconds": checkpointer.write_seconds if checkpointer else []}


def _save(checkpointer, state, syn0, syn1, start):
    snapshot = TrainState(**{**state.__dict__, "seconds": state.seconds + time.perf_counter() - start,
                             "loss": list(state.loss), "curve": list(state.curve)})
    checkpointer.save(snapshot, {"syn0": syn0, "syn1": syn1})
