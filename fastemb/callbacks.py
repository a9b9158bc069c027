"""The extension point of the training loop (as gensim's callbacks and Keras's): objects whose methods the
loop calls at the start and end of training, of each epoch and after each block of work.

    class Evaluate(fastemb.Callback):
        def on_epoch_end(self, run):
            print(run.epoch, run.loss, run.words_per_second, run.embeddings().most_similar("king", topn=3))

    fastemb.train("corpus.txt", callbacks=[Evaluate()])

A plain function is taken as `on_epoch_end`. Raising `StopTraining` from a callback ends training after the
current epoch (or block) with the model as it is; any other exception stops the run and propagates.
"""
from __future__ import annotations


class StopTraining(Exception):
    """Raise from a callback to end training early and keep the model trained so far."""


class Callback:
    """Override what you need; `run` is the `TrainingRun` (epoch, loss, words_per_second, vectors...)."""

    def on_train_begin(self, run):
        pass

    def on_epoch_begin(self, run):
        pass

    def on_step(self, run):
        """After each block of work (about a million words, or four million GloVe records)."""

    def on_epoch_end(self, run):
        pass

    def on_train_end(self, run):
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, run):
        self.fn(run)


def as_callbacks(callbacks) -> list:
    """Callback objects from a list of callbacks and plain functions (epoch-end hooks)."""
    from fastemb.errors import OptionError
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks) and not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback) or any(hasattr(cb, m) for m in ("on_epoch_end", "on_step", "on_train_begin",
                                                                   "on_train_end", "on_epoch_begin")):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise OptionError("callbacks", f"must be Callback objects or functions (got {type(cb).__name__})")
    return out


def call(callbacks, hook, run):
    """Call `hook` on every callback that has it; returns True when one asked to stop."""
    stop = False
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is None:
            continue
        try:
            method(run)
        except StopTraining:
            stop = True
    return stop


class FrozenLoss(Callback):
    """Records, after every epoch, the model's loss on the first `max_tokens` tokens of the corpus measured
    without training (trainers that offer `frozen_loss`: sgns, cbow). Unlike the online training loss it
    compares across epochs: it falls as long as the model improves."""

    def __init__(self, max_tokens=1 << 20):
        self.max_tokens, self.losses = max_tokens, []

    def on_epoch_end(self, run):
        measure = getattr(run.trainer, "frozen_loss", None)
        if measure is not None:
            self.losses.append(measure(self.max_tokens))
            from fastemb.progress import log
            log.info(f"epoch {run.epoch}: frozen loss {self.losses[-1]:.4f}")


class LossHistory(Callback):
    """Keeps (epoch, loss, words/s) of every epoch: a small example and a convenience."""

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, run):
        self.epochs.append((run.epoch, run.loss, run.words_per_second))
