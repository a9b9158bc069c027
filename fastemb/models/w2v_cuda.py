"""The host side of `--device cuda` for sgns and cbow: the model lives on the GPU, the epoch loop stays here.

`Word2VecTrainer` (models/word2vec.py) hands each block of the encoded corpus to `CudaWord2Vec.train_block`:
the block is subsampled here (numpy, one generator per (seed, epoch, block)), cut into spans (whole
sentences, at most `span` tokens each, see kernels/cuda_w2v.py), copied to the GPU and trained by one kernel
launch; the block's loss comes back with it. The vectors stay on the GPU between blocks and are copied back
only when someone asks for them (a checkpoint, a callback's `run.vectors`, the result).

`check()` is what `fastemb train --device cuda` runs before reading the corpus: numba's CUDA target must
import and find a usable GPU (or Numba's simulator, NUMBA_ENABLE_CUDASIM=1), else one line names the cause.
"""
from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np

from fastemb.errors import FastembError, param
from fastemb.progress import log
from fastemb.seeding import generator

WARPS = 4                    # threads per block: 32 · WARPS
BLOCKS_PER_SM = 4            # default concurrency: thread blocks per multiprocessor
WARMUP = 0.05                # the grid grows from 1/8 to full over this share of the training
SIM_BLOCKS = 2               # under the simulator (it runs blocks one after another anyway) ...
SIM_WARPS = 1                # ... and each thread is a Python thread: as few as the logic allows


def _one_line(e) -> str:
    """The first sentence of an exception's message, on one line."""
    text = " ".join(str(e).split()).strip(" :")
    return text.split(". ")[0].rstrip(".") or type(e).__name__


def cuda_module():
    """numba.cuda (numba-cuda's when it is installed), or a FastembError naming why it cannot be used."""
    try:
        from numba import cuda
    except ImportError as e:
        raise FastembError(f"{param('device')} cuda needs numba's CUDA target, which does not import "
                           f"({_one_line(e)}): pip install 'fastemb[cuda]'") from None
    return cuda


def check():
    """Raise a one-line FastembError unless a GPU (or the simulator) can train. Returns a description."""
    cuda = cuda_module()
    from fastemb.kernels.cuda_w2v import simulator
    if simulator():
        return "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        available = cuda.is_available()
        if available:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            return f"{name} (compute capability {'.'.join(map(str, dev.compute_capability))})"
        cuda.current_context()  # raises with the driver's reason
        raise RuntimeError("no CUDA device found")
    except FastembError:
        raise
    except Exception as e:  # CudaSupportError, CudaDriverError, ... : the driver's own words
        raise FastembError(f"{param('device')} cuda: no usable GPU ({_one_line(e)})") from None


def quiet_simulator(simulated):
    """Under the simulator the kernels run as Python on numpy scalars, whose uint64 hash arithmetic wraps
    around on purpose: silence numpy's overflow warnings there (a GPU has none)."""
    if not simulated:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", message="overflow encountered", category=RuntimeWarning)
    return stack


def span_for(o, warps=WARPS) -> int:
    """The span for these options, or a one-line FastembError when their window cache cannot fit."""
    from fastemb.kernels import cuda_w2v as CK
    span = CK.choose_span(o.dim, o.window, o.negative, warps)
    if span == 0:
        raise FastembError(f"{param('device')} cuda: {param('dim')} {o.dim} with {param('window')} {o.window} "
                           f"and {param('negative')} {o.negative} needs more than {CK.SHARED_BYTES // 1024} KB of "
                           f"shared memory per block: lower one of them")
    return span


def make_spans(ends, span, min_len=2):
    """Cut sentences (token ranges ending at `ends`) into spans of at most `span` tokens. Returns
    (span_lo, span_hi, sent_lo, sent_hi, sentence index) as int64 arrays; sentences shorter than min_len
    (no context) get none."""
    ends = np.asarray(ends, np.int64)
    starts = np.concatenate(([0], ends[:-1])) if len(ends) else ends
    lens = ends - starts
    n_sp = np.where(lens >= min_len, (lens + span - 1) // span, 0)
    sent = np.repeat(np.arange(len(ends), dtype=np.int64), n_sp)
    k = np.arange(len(sent), dtype=np.int64) - np.repeat(np.cumsum(n_sp) - n_sp, n_sp)
    lo = starts[sent] + k * span
    hi = np.minimum(lo + span, ends[sent])
    return lo, hi, starts[sent], ends[sent], sent


def subsample(ids, ends, keep, rng):
    """(kept ids as int32, new sentence ends, original start of each sentence): word2vec's subsampling."""
    ids = np.asarray(ids)
    if len(keep) == 0:
        kept = np.ones(len(ids), bool)
    else:
        kept = rng.random(len(ids), dtype=np.float64) < keep[ids]
    csum = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
    new_ends = csum[np.asarray(ends, np.int64)]
    return ids[kept].astype(np.int32), new_ends


class CudaWord2Vec:
    """The model's arrays on the GPU and one kernel launch per block."""

    def __init__(self, trainer):
        from fastemb.kernels import cuda_w2v as CK
        self.device = check()
        from numba import cuda
        self.cuda, self.CK, self.t = cuda, CK, trainer
        o = trainer.o
        self.simulated = CK.simulator()
        self.warps = SIM_WARPS if self.simulated else WARPS
        self.span = span_for(o, self.warps)
        self.kernel = CK.build(o.dim, o.window, o.negative, self.span, self.warps, trainer.cbow,
                               getattr(o, "cbow_mean", True))
        if self.simulated:
            self.max_blocks = SIM_BLOCKS
        else:
            sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
            self.max_blocks = int(o.cuda_blocks or BLOCKS_PER_SM * sms)
        t0 = time.perf_counter()
        self.d_syn0 = cuda.to_device(trainer.syn0)
        self.d_syn1 = cuda.to_device(trainer.syn1)
        self.d_prob = cuda.to_device(trainer.alias_prob)
        self.d_idx = cuda.to_device(trainer.alias_idx)
        self.d_sig = cuda.to_device(trainer.sig)
        self.d_nls = cuda.to_device(trainer.nls)
        self.d_first = cuda.device_array((self.max_blocks, self.span + 2 * o.window, o.dim), np.float32)
        cuda.synchronize()
        self.timing = {"kernel": 0.0, "host": 0.0, "transfer": time.perf_counter() - t0}
        self.stale = False   # the host arrays lag the GPU's
        log.info(f"cuda: {self.device}; span {self.span} tokens, {32 * self.warps} threads, up to {self.max_blocks} "
                 f"blocks")

    def grid(self, progress, n_spans) -> int:
        """Blocks for a launch: fewer while the first WARMUP of training runs (its updates are the largest,
        and concurrent blocks read stale copies of the frequent rows), then max_blocks."""
        ramp = min(1.0, 0.125 + 0.875 * progress / WARMUP)
        return int(max(1, min(n_spans, round(self.max_blocks * ramp))))

    def train_block(self, ids, ends, *, alpha0, min_alpha, work_before, total_work, seed, epoch, block):
        """Train one block of sentences; returns (loss sum, pair count)."""
        cuda, CK = self.cuda, self.CK
        t0 = time.perf_counter()
        rng = generator(seed, epoch, block)
        sub, sub_ends = subsample(ids, ends, self.t.keep, rng)
        lo, hi, s_lo, s_hi, sent = make_spans(sub_ends, self.span)
        orig_starts = np.concatenate(([0], np.asarray(ends, np.int64)[:-1]))
        progress = (work_before + orig_starts[sent]) / total_work
        alpha = np.maximum(min_alpha, alpha0 - (alpha0 - min_alpha) * progress).astype(np.float32)
        n_spans = len(lo)
        t1 = time.perf_counter()
        self.timing["host"] += t1 - t0
        if n_spans == 0:
            return 0.0, 0
        grid = self.grid(work_before / total_work, n_spans)
        d = [cuda.to_device(a) for a in (sub, lo, hi, s_lo, s_hi, alpha)]
        loss = cuda.to_device(np.zeros(grid, np.float64))
        pairs = cuda.to_device(np.zeros(grid, np.int64))
        cuda.synchronize()
        t2 = time.perf_counter()
        with quiet_simulator(self.simulated):
            self.kernel[grid, 32 * self.warps](*d, n_spans, np.int64(work_before),
                                               np.uint64(CK.epoch_seed(seed, epoch)), self.d_syn0, self.d_syn1,
                                               self.d_prob, self.d_idx, self.d_sig, self.d_nls, loss, pairs,
                                               self.d_first)
        cuda.synchronize()
        t3 = time.perf_counter()
        total, count = float(loss.copy_to_host().sum()), int(pairs.copy_to_host().sum())
        self.timing["kernel"] += t3 - t2
        self.timing["transfer"] += (t2 - t1) + (time.perf_counter() - t3)
        self.stale = True
        return total, count

    def sync(self):
        """Copy the GPU's vectors into the trainer's host arrays (in place)."""
        if self.stale:
            t0 = time.perf_counter()
            self.d_syn0.copy_to_host(self.t.syn0)
            self.d_syn1.copy_to_host(self.t.syn1)
            self.timing["transfer"] += time.perf_counter() - t0
            self.stale = False
