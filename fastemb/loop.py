"""The one epoch loop of every iterative algorithm (sgns, cbow, glove, and what the registry adds).

A trainer's `run_epoch(state)` runs one kernel call per block and yields a `Step`; this loop does the rest,
identically for every algorithm: the position and loss bookkeeping in `TrainState`, progress, the
divergence guard, and the callbacks (checkpointing is one of them). Python owns everything between two
kernel calls, so Ctrl-C and SIGTERM act within about a second: trainers size their calls by work with
`units_per_call` / `call_ranges` and refuse an indivisible unit that is too big (`check_unit_work`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastemb.callbacks import call
from fastemb.errors import FastembError, param
from fastemb.progress import Progress, log, seconds

# Work-sized kernel calls. Python sees SIGINT and SIGTERM only between two kernel calls, so no call may take
# long at any accepted setting: every loop cuts its work into calls of about WORK_PER_CALL multiply-adds per
# thread (0.2 s to 1 s on one core, as vectorised or not), estimated from the options, not from a count of tokens; an
# indivisible unit (one minibatch, one document, one iteration) costing more than MAX_UNIT_WORK is refused
# before anything is allocated, with the options that make it so named.
WORK_PER_CALL = 1 << 29
MAX_UNIT_WORK = 1 << 30


def units_per_call(unit_work, threads=1, most=None) -> int:
    """How many units of `unit_work` one kernel call takes on `threads` threads (at least 1, at most `most`)."""
    n = max(1, (WORK_PER_CALL * max(int(threads), 1)) // max(int(unit_work), 1))
    return n if most is None else max(1, min(n, int(most)))


def call_ranges(n_units, per_call):
    """[lo, hi) ranges of n_units in calls of per_call units."""
    per_call = max(1, int(per_call))
    return [(lo, min(n_units, lo + per_call)) for lo in range(0, int(n_units), per_call)]


def check_unit_work(unit_work, what, names):
    """Refuse settings where one indivisible unit of work would run past about a second without a signal being
    seen (names: the options that set its size, the first one blamed)."""
    from fastemb.errors import OptionError
    if unit_work > MAX_UNIT_WORK:
        others = ", ".join(param(n) for n in names[1:])
        raise OptionError(names[0], f"makes one {what} about {unit_work:.3g} multiply-adds, more than one kernel call "
                                    f"may take ({MAX_UNIT_WORK:.3g}; it could not be interrupted): lower it"
                                    + (f" or {others}" if others else ""))


# A loss this many times the untrained model's means the run has diverged (the word2vec loss cannot
# legitimately exceed about 8.7x, a learning GloVe stays far below 1x).
EXPLODE = 10.0


@dataclass
class Step:
    work: int            # words (or records) this block trained on
    loss: float          # summed loss of the block
    count: int           # what the loss was summed over
    extra: str = ""      # shown in the progress line (e.g. the learning rate)


class TrainingRun:
    """What callbacks see: the run's settings and its progress so far."""

    def __init__(self, *, algo, options, trainer, state, words, counts, epochs, record, run_id, make_embeddings):
        self.algo, self.options, self.trainer, self.state = algo, options, trainer, state
        self.words, self.counts, self.epochs = words, counts, epochs
        self.record, self.run_id = record, run_id
        self._make_embeddings = make_embeddings
        self.unit = trainer.unit
        self.work_per_epoch = trainer.work_per_epoch
        self.rate = None              # work units per second over the last epoch
        self.step_loss = None         # mean loss of the last block
        self._start = time.perf_counter()

    @property
    def epoch(self) -> int:
        """Epochs finished."""
        return self.state.epoch

    @property
    def loss(self):
        """Mean loss of the last finished epoch."""
        return self.state.loss[-1] if self.state.loss else None

    @property
    def losses(self) -> list:
        return list(self.state.loss)

    @property
    def words_per_second(self):
        return self.rate if self.unit == "words" else None

    @property
    def seconds(self) -> float:
        """Training seconds so far (including those before a resume)."""
        return self.state.seconds + time.perf_counter() - self._start

    @property
    def vectors(self):
        """The current input vectors (a live view, or for a subword model a fresh array of the words' mean
        vectors: copy what you keep)."""
        return self.trainer.vectors()

    def arrays(self) -> dict:
        return self.trainer.arrays()

    def embeddings(self):
        """A snapshot of the model as Embeddings (copies), for evaluation during training."""
        return self._make_embeddings(copy=True)

    def state_snapshot(self):
        return self.state.snapshot(time.perf_counter() - self._start)


def _diverged(run, value, where, callbacks):
    from fastemb.checkpoint import Checkpoint
    kept = [cb.path for cb in callbacks if isinstance(cb, Checkpoint) and cb.written]
    return FastembError(f"training diverged in epoch {run.state.epoch + 1} ({where} loss {value:.4g}, "
                        f"{run.trainer.reference_loss():.4g} before training): lower "
                        f"{param(run.trainer.advice)}" + (f"; the last good checkpoint is {kept[-1]}" if kept else ""))


def run_epochs(run: TrainingRun, callbacks) -> bool:
    """Train from run.state to run.epochs. Returns False when a callback stopped training early."""
    trainer, state = run.trainer, run.state
    limit = EXPLODE * trainer.reference_loss()
    total = float(run.epochs) * trainer.work_per_epoch
    resumed_work = state.epoch * trainer.work_per_epoch + state.pos
    progress = Progress(run.algo, total, unit=trainer.unit)
    stop = call(callbacks, "on_train_begin", run)
    from fastemb.compiling import notice
    first = notice(getattr(trainer, "entry_kernels", ())).begin()
    try:
        while not stop and state.epoch < run.epochs:
            if call(callbacks, "on_epoch_begin", run):
                stop = True
                break
            epoch_start, epoch_work = time.perf_counter(), 0
            for step in trainer.run_epoch(state):
                if first is not None:
                    if first.compiling:  # rate and ETA from after the compilation
                        first.end()
                        progress.rebase(state.epoch * trainer.work_per_epoch + state.pos + step.work,
                                        state.epoch * trainer.work_per_epoch + state.pos + step.work - resumed_work)
                        epoch_start, epoch_work = time.perf_counter(), -step.work
                    first = None
                state.block += 1
                state.pos += step.work
                state.epoch_loss += step.loss
                state.epoch_count += step.count
                epoch_work += step.work
                mean = step.loss / max(step.count, 1)
                state.curve.append(mean)
                run.step_loss = mean
                if not math.isfinite(mean) or mean > limit:
                    raise _diverged(run, mean, "block", callbacks)
                done = state.epoch * trainer.work_per_epoch + state.pos
                progress.update(done, done - resumed_work, extra=f"epoch {state.epoch + 1}/{run.epochs}  "
                                f"{step.extra + '  ' if step.extra else ''}loss {mean:.4f}")
                if call(callbacks, "on_step", run):
                    stop = True
                    break
            if stop and state.pos < trainer.work_per_epoch:
                break  # stopped inside an epoch: it is not counted as finished
            epoch_loss = state.epoch_loss / max(state.epoch_count, 1)
            if not math.isfinite(epoch_loss) or epoch_loss > limit:
                raise _diverged(run, epoch_loss, "epoch", callbacks)
            state.loss.append(epoch_loss)
            state.epoch += 1
            state.block = state.pos = state.epoch_count = 0
            state.epoch_loss = 0.0
            run.rate = epoch_work / max(time.perf_counter() - epoch_start, 1e-9)
            log.info(f"epoch {state.epoch}/{run.epochs}: loss {epoch_loss:.4f}  ({seconds(run.seconds)} elapsed)")
            if call(callbacks, "on_epoch_end", run):
                stop = True
            elif getattr(trainer, "stop_training", False):
                log.info(f"{run.algo}: stopped after epoch {state.epoch} (no gain on the held-out text)")
                break  # the trainer's own early stop: training is complete
    finally:
        progress.close()
    progress.done(extra=f"final loss {state.loss[-1]:.4f}" if state.loss else "")
    call(callbacks, "on_train_end", run)
    return not stop
