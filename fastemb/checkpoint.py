"""Training checkpoints: the model state at a block or epoch boundary, written atomically, from which
`fastemb train --resume FILE` continues to the same model an uninterrupted run gives."""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import FastembError


@dataclass
class TrainState:
    epoch: int = 0              # epochs finished
    block: int = 0              # blocks finished within the current epoch (word2vec)
    pos: int = 0                # tokens finished within the current epoch (word2vec)
    chunk_counter: int = 0      # RNG stream counter (word2vec)
    epoch_loss: float = 0.0     # loss summed so far in the current epoch
    epoch_pairs: int = 0
    loss: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    seconds: float = 0.0        # training seconds spent before this process


def parse_every(text):
    """'2' or '2e' or '2epochs' -> (2, None); '10m' / '10min' / '30s' -> (None, seconds)."""
    if text is None:
        return None, None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(e|ep|epoch|epochs|s|sec|m|min|h)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise FastembError(f"--checkpoint-every: cannot read {text!r} (e.g. 1 or 2epochs for epochs, 10min, 90s)")
    value, unit = float(m.group(1)), (m.group(2) or "e")
    if unit.startswith("e"):
        if value != int(value):
            raise FastembError("--checkpoint-every: a whole number of epochs")
        return int(value), None
    return None, value * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]


class Checkpointer:
    """Decides when to write and writes (atomically) through `save(path, state, arrays)`."""

    def __init__(self, path, every, train_args, words, counts, log=None):
        self.path = path
        self.every_epochs, self.every_seconds = parse_every(every)
        self.train_args, self.words, self.counts = train_args, words, counts
        self.log = log
        self.last = time.monotonic()
        self.write_seconds = []

    def due(self, epoch_end: bool, epochs_done: int) -> bool:
        if self.every_epochs is not None:
            return epoch_end and epochs_done % self.every_epochs == 0
        return time.monotonic() - self.last >= self.every_seconds

    def save(self, state: TrainState, arrays: dict):
        t0 = time.perf_counter()
        save_checkpoint(self.path, self.train_args, state, arrays, self.words, self.counts)
        self.write_seconds.append(time.perf_counter() - t0)
        self.last = time.monotonic()
        if self.log:
            self.log(f"checkpoint: epoch {state.epoch}, block {state.block} -> {self.path} "
                     f"({self.write_seconds[-1]:.2f}s)")


def save_checkpoint(path, train_args, state, arrays, words, counts):
    from .store import _h5py, _root_attrs, _write_vocab, atomic_output
    with atomic_output(path) as tmp, _h5py().File(tmp, "w") as f:
        _root_attrs(f, "checkpoint", {"train_args": json.dumps(train_args), "state": json.dumps(asdict(state))})
        g = f.create_group("arrays")
        for name, a in arrays.items():
            g.create_dataset(name, data=a)
        _write_vocab(f, words, counts)


def load_checkpoint(path):
    """(train_args, TrainState, arrays, words, counts)."""
    from .store import _read_vocab, open_fastemb
    with open_fastemb(path, "checkpoint") as f:
        args = json.loads(f.attrs["train_args"])
        state = TrainState(**json.loads(f.attrs["state"]))
        arrays = {k: f["arrays"][k][()] for k in f["arrays"]}
        words, counts = _read_vocab(f)
    return args, state, arrays, words, counts


def check_same_vocab(words, counts, ck_words, ck_counts, path):
    if list(words) != list(ck_words) or not np.array_equal(counts, ck_counts):
        raise FastembError(f"{path}: the corpus no longer gives the checkpoint's vocabulary "
                           f"({len(words):,} vs {len(ck_words):,} words): it changed since the checkpoint")
