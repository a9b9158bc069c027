"""GloVe (Pennington et al. 2014): options, and the trainer that runs _glove_kernels over the nonzeros of a
co-occurrence matrix under the shared epoch loop."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastemb.cooc import CoocOptions
from fastemb.errors import FastembError, param
from fastemb.options import ADD_CONTEXTS, DIM, EPOCHS, Options, Spec, above_at_most, nested, positive
from fastemb.registry import Algorithm
from fastemb.seeding import generator

GRAD_CLIP = 100.0               # GloVe C's grad_clip_value
RECORDS_PER_CALL = 1 << 22      # a kernel call returns to Python this often: progress, Ctrl-C, SIGTERM


@dataclass(frozen=True)
class GloveOptions(Options):
    """GloVe's weighted least squares on log co-occurrences, trained by AdaGrad."""
    dim: int = DIM(100)
    epochs: int = EPOCHS(15)
    eta: float = Spec(float, "AdaGrad learning rate.", check=above_at_most(0, 100))(0.05)
    x_max: Optional[float] = Spec(float, "Weighting cutoff: pairs counted x_max times or more get weight 1.",
                                  check=positive, optional=True,
                                  none_means="min(100, 98th percentile of the counts)")(None)
    weight_exponent: float = Spec(float, "Exponent of the weighting f(x) = min(1, (x/x_max)^e) (GloVe's "
                                         "alpha).", check=above_at_most(0, 10))(0.75)
    tied: bool = Spec(bool, "One vector and bias per word (w_i·w_j + b_i + b_j) instead of separate word "
                            "and context parameters.")(False)
    add_contexts: bool = ADD_CONTEXTS(True)
    cooc: CoocOptions = nested(lambda: CoocOptions(window=10, weighting="dynamic", sample=1e-4))


def memory_bytes(options, n_words, nnz=0) -> int:
    """Word and context parameter rows (vector, accumulators, bias), the 16-byte records and the parallel
    shuffle's scratch copy of them."""
    return 2 * n_words * (2 * options.dim + 2) * 4 + 32 * nnz


def default_x_max(data) -> float:
    """GloVe's x_max = 100 was set on billion-token corpora, where a few percent of the pairs reach it.
    On small corpora almost none do and f(x) starves the fit. fastemb takes min(100, the 98th percentile
    of the nonzero counts), which is 100 on large corpora and follows the counts on small ones (figures
    in README: GloVe)."""
    data = data[data > 0]
    if len(data) == 0:
        return 100.0
    return float(min(100.0, max(1.0, np.percentile(data, 98))))


def glove_weights(x, x_max, exponent):
    """f(x) = min(1, (x / x_max)^exponent)."""
    return np.minimum(1.0, (np.asarray(x, np.float64) / x_max) ** exponent).astype(np.float32)


class GloveTrainer:
    """AdaGrad Hogwild over packed (row, col, log x, f(x)) records shuffled in place every epoch."""

    unit = "pairs"
    advice = "eta"

    def __init__(self, options: GloveOptions, data, *, seed, threads, state, arrays=None):
        from fastemb.kernels import glove as K
        import scipy.sparse as sp
        self.K, self.o, self.seed = K, options, seed
        from fastemb.loop import units_per_call
        self.entry_kernels = [K.glove_epoch, K.shuffle_records]  # what compiling.notice checks
        self.n_chunks = max(threads * 16, 1)  # Hogwild units of an epoch
        # work-sized calls (fastemb.loop): a record costs two rows' dot product, gradients and AdaGrad steps
        self.records_per_call = units_per_call(12 * (2 * options.dim + 2), threads, RECORDS_PER_CALL)
        X = data.matrix
        coo = sp.coo_matrix(X)
        keep = coo.data > 0
        if not keep.any():
            raise FastembError("the co-occurrence matrix has no nonzero entries: nothing to train on")
        x = coo.data[keep]
        self.x_max = default_x_max(x) if options.x_max is None else options.x_max
        pairs = np.empty((int(keep.sum()), 4), np.uint32)
        values = pairs.view(np.float32)
        pairs[:, 0] = coo.row[keep]
        pairs[:, 1] = coo.col[keep]
        values[:, 2] = np.log(x.astype(np.float64))
        values[:, 3] = glove_weights(x, self.x_max, options.weight_exponent)
        self.pairs, self.values = pairs, values
        self.scratch = np.empty_like(pairs)  # the parallel shuffle's buckets
        del coo, x, keep
        self.n_words = X.shape[0]
        if arrays is None:
            rng = generator(seed)
            self.P = self._params(rng)
            self.Pc = self.P if options.tied else self._params(rng)
        else:
            self.P = arrays["P"]
            self.Pc = self.P if options.tied else arrays["Pc"]
        # a resumed run replays the shuffles: the records' order is the product of every epoch's shuffle
        for epoch in range(state.epoch + (1 if state.block else 0)):
            self.shuffle(epoch)
        self.work_per_epoch = len(self.pairs)

    def shuffle(self, epoch):
        """The records in a fresh uniformly random order (from the seed and the epoch), in parallel."""
        self.K.shuffle_records(self.pairs, self.scratch, self.seed, epoch, self.K.SHUFFLE_BUCKET_ROWS)

    def _params(self, rng):
        # GloVe C's initialisation: vector and bias uniform in [-0.5/d, 0.5/d]; AdaGrad accumulators at 1
        dim = self.o.dim
        p = np.ones((self.n_words, 2 * dim + 2), np.float32)
        p[:, :dim] = (rng.random((self.n_words, dim), dtype=np.float32) - 0.5) / dim
        p[:, 2 * dim] = (rng.random(self.n_words, dtype=np.float32) - 0.5) / dim
        return p

    @staticmethod
    def array_specs(options, words) -> dict:
        row = ((len(words), 2 * options.dim + 2), "float32")
        return {"P": row} if options.tied else {"P": row, "Pc": row}

    def arrays(self) -> dict:
        return {"P": self.P} if self.o.tied else {"P": self.P, "Pc": self.Pc}

    def vectors(self):
        return self.P[:, :self.o.dim]

    def reference_loss(self) -> float:
        """The loss of the untrained model (vectors and biases near 0): the mean of f(x)·(log x)²."""
        return float(np.mean(self.values[:, 3].astype(np.float64) * self.values[:, 2].astype(np.float64) ** 2))

    def run_epoch(self, state):
        from fastemb.loop import Step, call_ranges
        if state.block == 0:
            self.shuffle(state.epoch)
        n_chunks = self.n_chunks
        for b, lo in enumerate(range(0, len(self.pairs), RECORDS_PER_CALL)):
            if b < state.block:
                continue
            part = slice(lo, min(lo + RECORDS_PER_CALL, len(self.pairs)))
            total = 0.0
            for r0, r1 in call_ranges(part.stop - part.start, self.records_per_call):  # work-sized calls
                sub = slice(part.start + r0, part.start + r1)
                loss = np.zeros(n_chunks, np.float64)
                self.K.glove_epoch(self.pairs[sub], self.values[sub], self.P, self.Pc, np.float32(self.o.eta),
                                   np.float32(GRAD_CLIP), n_chunks, loss)
                total += float(loss.sum())
            yield Step(work=part.stop - part.start, loss=total, count=part.stop - part.start)

    def result(self) -> dict:
        dim = self.o.dim
        W, Wc = self.P[:, :dim].copy(), self.Pc[:, :dim].copy()
        b, bc = self.P[:, 2 * dim].copy(), self.Pc[:, 2 * dim].copy()
        if not (np.isfinite(W).all() and np.isfinite(Wc).all()):
            raise FastembError(f"GloVe produced non-finite vectors: lower {param('eta')}")
        attrs = {"x_max": self.x_max, "nnz": len(self.pairs)}
        if self.o.tied:
            return {"vectors": W, "bias": b, "attrs": attrs}
        return {"vectors": W + Wc if self.o.add_contexts else W, "context_vectors": Wc, "bias": b,
                "context_bias": bc, "attrs": attrs}


ALGORITHMS = (
    Algorithm("glove", GloveOptions, GloveTrainer, memory_bytes, input="cooc",
              summary="GloVe, AdaGrad on the co-occurrence matrix"),
)
