"""GloVe training on a co-occurrence matrix (orchestration around _glove_kernels)."""
from __future__ import annotations

import math
import time

import numpy as np

from . import _glove_kernels as K
from .checkpoint import Checkpointer, TrainState
from .errors import FastembError
from .parallel import numba_threads
from .progress import Progress

GRAD_CLIP = 100.0  # GloVe C's grad_clip_value


def glove_weights(x, x_max, alpha):
    """f(x) = min(1, (x / x_max)^alpha)."""
    return np.minimum(1.0, (np.asarray(x, np.float64) / x_max) ** alpha).astype(np.float32)


RECORDS_PER_CALL = 1 << 22  # a kernel call returns to Python this often, so Ctrl-C / SIGTERM act promptly


def train_glove(X, *, dim, epochs, x_max, alpha, eta, seed, threads, symmetric=False, quiet=False, init=None,
                state: TrainState | None = None, checkpointer: Checkpointer | None = None):
    """X: scipy.sparse CSR co-occurrence matrix (V x V). Returns (W, Wc, b, bc, info); in the symmetric
    model Wc is W and bc is b. `init` (P, Pc) and `state` resume from a checkpoint taken after an epoch."""
    import scipy.sparse as sp
    coo = sp.coo_matrix(X)
    keep = coo.data > 0
    if not keep.any():
        raise FastembError("the co-occurrence matrix has no nonzero entries: nothing to train on")
    pairs = np.empty((int(keep.sum()), 4), np.uint32)
    values = pairs.view(np.float32)
    pairs[:, 0] = coo.row[keep]
    pairs[:, 1] = coo.col[keep]
    x = coo.data[keep]
    values[:, 2] = np.log(x.astype(np.float64))
    values[:, 3] = glove_weights(x, x_max, alpha)
    del coo, x, keep
    n_words = X.shape[0]
    rng = np.random.default_rng(seed)

    def params():
        # GloVe C's initialisation: vector and bias uniform in [-0.5/d, 0.5/d]; AdaGrad accumulators at 1
        p = np.ones((n_words, 2 * dim + 2), np.float32)
        p[:, :dim] = (rng.random((n_words, dim), dtype=np.float32) - 0.5) / dim
        p[:, 2 * dim] = (rng.random(n_words, dtype=np.float32) - 0.5) / dim
        return p
    P = params()
    Pc = P if symmetric else params()
    state = state or TrainState()
    if init is not None:
        P = init["P"]
        Pc = P if symmetric else init["Pc"]
        for epoch in range(state.epoch):  # the records' order is the product of every epoch's shuffle
            K.shuffle_records(pairs, seed * 1_000_003 + epoch)
    n_chunks = max(threads * 16, 1)
    progress = Progress("glove", epochs, unit="pairs", quiet=quiet, interval=0.0)
    start = time.perf_counter()
    with numba_threads(threads):
        while state.epoch < epochs:
            epoch = state.epoch
            K.shuffle_records(pairs, seed * 1_000_003 + epoch)
            total = 0.0
            for lo in range(0, len(pairs), RECORDS_PER_CALL):
                part = slice(lo, min(lo + RECORDS_PER_CALL, len(pairs)))
                loss = np.zeros(n_chunks, np.float64)
                K.glove_epoch(pairs[part], values[part], P, Pc, np.float32(eta), np.float32(GRAD_CLIP), n_chunks,
                              loss)
                total += float(loss.sum())
            mean = total / len(pairs)
            if not math.isfinite(mean):
                raise FastembError(f"GloVe diverged in epoch {epoch + 1} (loss {mean}): lower --eta" +
                                   (f"; the last good checkpoint is {checkpointer.path}" if checkpointer else ""))
            state.loss.append(mean)
            state.epoch += 1
            progress.update(state.epoch, state.epoch * len(pairs), extra=f"epoch {state.epoch}/{epochs}  "
                                                                        f"loss {mean:.5f}", force=True)
            if checkpointer and state.epoch < epochs and checkpointer.due(True, state.epoch):
                snapshot = TrainState(epoch=state.epoch, loss=list(state.loss),
                                      seconds=state.seconds + time.perf_counter() - start)
                checkpointer.save(snapshot, {"P": P} if symmetric else {"P": P, "Pc": Pc})
    seconds = state.seconds + time.perf_counter() - start
    losses = state.loss
    W, Wc = P[:, :dim].copy(), Pc[:, :dim].copy()
    b, bc = P[:, 2 * dim].copy(), Pc[:, 2 * dim].copy()
    if not (np.isfinite(W).all() and np.isfinite(Wc).all()):
        raise FastembError(f"GloVe produced non-finite vectors in epoch {epochs}: lower --eta")
    progress.done(extra=f"final loss {losses[-1]:.5f}")
    return W, Wc, b, bc, {"loss": losses, "train_seconds": seconds, "nnz": len(pairs),
                          "checkpoint_seconds": checkpointer.write_seconds if checkpointer else []}
