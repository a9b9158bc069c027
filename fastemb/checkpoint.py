"""Training checkpoints (format 2): the model state at a block or epoch boundary, written atomically and
durably, from which `fastemb train --resume FILE` (and `fastemb classify train --resume FILE`) continues to the
same model an uninterrupted run gives. The policy below (where a run checkpoints, what it may overwrite or
remove, what a resumed run must find again) is one for every trainer; a trainer reads its own records.

A checkpoint holds the run's options as a versioned record (algorithm, its options, corpus options, seed,
inputs and a fingerprint of the data), the loop's `TrainState`, the model arrays with a SHA-256 each, and
the vocabulary. Reading one checks everything before any kernel sees it: the record is parsed back into
validated options, every array's name, shape and dtype must be what the algorithm declares for that
vocabulary and those options, every checksum must match, every value must be finite.

Ownership: each run has a random id, written into its checkpoints. A run never writes over a checkpoint
that another run wrote (an interrupted run's work is never lost by starting a new one) unless told to
(`force`), and a checkpoint is removed only after the finished model is on disk.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from fastemb.callbacks import Callback
from fastemb.errors import FastembError, FileError, OptionError, param
from fastemb.progress import log

VERSION = 2
# Trainers outside the registry that write checkpoints of this format: their record's `algo` -> what they are
# (a registered algorithm's reader names them when given one of their checkpoints)
OTHER_TRAINERS = {"classify": "the text classifier (fastemb classify train --resume)"}


@dataclass
class TrainState:
    """Where the epoch loop stands; everything a resumed run needs besides the arrays."""
    epoch: int = 0              # epochs finished
    block: int = 0              # blocks finished within the current epoch
    pos: int = 0                # work units (words, records) finished within the current epoch
    epoch_loss: float = 0.0     # loss summed so far in the current epoch
    epoch_count: int = 0        # what it was summed over (pairs, records)
    loss: list = field(default_factory=list)    # mean loss of every finished epoch
    curve: list = field(default_factory=list)   # mean loss of every block
    seconds: float = 0.0        # training seconds spent before this process
    extra: dict = field(default_factory=dict)   # the trainer's own counters (e.g. its RNG stream)

    @classmethod
    def from_dict(cls, d, where="checkpoint"):
        """A state read from a file: every field type- and range-checked."""
        def bad(what):
            return FileError(f"{where}: damaged checkpoint state ({what})")
        if not isinstance(d, dict) or set(d) - set(cls.__dataclass_fields__):
            raise bad("unexpected fields")
        s = cls(**d)
        for name in ("epoch", "block", "pos", "epoch_count"):
            v = getattr(s, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{name} = {v!r}")
        for name in ("epoch_loss", "seconds"):
            v = getattr(s, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(f"{name} = {v!r}")
        for name in ("loss", "curve"):
            v = getattr(s, name)
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  and math.isfinite(x) for x in v):
                raise bad(name)
        if len(s.loss) != s.epoch:
            raise bad(f"{len(s.loss)} epoch losses for {s.epoch} epochs")
        if not isinstance(s.extra, dict) or not all(isinstance(k, str) and isinstance(v, int) and not
                                                    isinstance(v, bool) and v >= 0 for k, v in s.extra.items()):
            raise bad("extra")
        return s

    def snapshot(self, seconds_now=0.0) -> "TrainState":
        return TrainState(**{**asdict(self), "seconds": self.seconds + seconds_now})


def parse_every(text):
    """'2' or '2e' or '2epochs' -> (2, None); '10m' / '10min' / '30s' -> (None, seconds)."""
    if text is None:
        return None, None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(e|ep|epoch|epochs|s|sec|m|min|h)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise OptionError("checkpoint_every", f"cannot read {text!r} (e.g. 1 or 2epochs for epochs, 10min, 90s)")
    value, unit = float(m.group(1)), (m.group(2) or "e")
    if unit.startswith("e"):
        if value != int(value):
            raise OptionError("checkpoint_every", f"must be a whole number of epochs (got {text!r})")
        return int(value), None
    return None, value * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]


def _header_digest(record_json, state_json) -> str:
    return hashlib.sha256((record_json + "\n" + state_json).encode()).hexdigest()


def digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8).data).hexdigest()


# ------------------------------------------------------------------------------------------ writing
def save_checkpoint(path, run_id, record, state: TrainState, arrays: dict, words, counts):
    from fastemb.store import root_attrs, write_vocab, atomic_h5
    record_json, state_json = json.dumps(record), json.dumps(asdict(state))
    with atomic_h5(path) as f:
        root_attrs(f, "checkpoint", {"checkpoint_version": VERSION, "run_id": run_id, "record": record_json,
                                      "state": state_json, "header_sha256": _header_digest(record_json, state_json)})
        g = f.create_group("arrays")
        for name, a in arrays.items():
            ds = g.create_dataset(name, data=a)
            ds.attrs["sha256"] = digest(a)
        write_vocab(f, words, counts)


def checkpoint_owner(path):
    """(run_id, summary) of the checkpoint at `path`, or (None, why) when it is not a readable one."""
    from fastemb.store import open_h5
    try:
        with open_h5(path, "checkpoint") as f:
            run_id = str(f.attrs.get("run_id", ""))
            try:
                record = json.loads(f.attrs["record"])
                st = json.loads(f.attrs["state"])
                summary = (f"{record.get('algo')}, {st.get('epoch')} epoch(s) done, written "
                           f"{f.attrs.get('created', '?')}")
            except (KeyError, ValueError, TypeError, AttributeError):
                summary = f"written {f.attrs.get('created', '?')}"
            return run_id or None, summary
    except FastembError as e:
        return None, str(e)


def made_for(path, run_id, output) -> bool:
    """Is the checkpoint at `path` provably this run's own, written for this output? Its run id is `run_id`,
    and its sealed record names `path` as the run's checkpoint and `output` as the run's output. Only such a
    file is removed when the finished model is saved: a copy kept elsewhere, or a checkpoint of a run that
    wrote another output, is left alone."""
    from fastemb.store import open_h5
    if output is None or not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with open_h5(path, "checkpoint") as f:
            record_json, state_json = str(f.attrs["record"]), str(f.attrs["state"])
            if str(f.attrs.get("header_sha256", "")) != _header_digest(record_json, state_json):
                return False
            owner = str(f.attrs.get("run_id", ""))
        record = json.loads(record_json)
    except (FastembError, KeyError, ValueError, TypeError, OSError):
        return False
    return (bool(run_id) and owner == run_id and isinstance(record, dict)
            and record.get("checkpoint") == os.path.abspath(path)
            and record.get("output") == os.path.abspath(os.fspath(output)))


def recorded_here(resumable, output) -> bool:
    """Is a resumed checkpoint at the place its run recorded (not a copy moved or kept elsewhere), resumed for
    the output it was written for? Then the resumed run goes on writing it; otherwise it is left as it is."""
    return (resumable.record.get("checkpoint") == os.path.abspath(resumable.path)
            and resumable.record.get("output") == (None if output is None else os.path.abspath(os.fspath(output))))


def claim_checkpoint_path(path, force, run_id=None):
    """Policy for a new run that will checkpoint to `path`: a checkpoint there belongs to another run and
    is never overwritten, unless `force` (then it is removed now). A resumed run (`run_id`) may continue
    over a checkpoint of its own run."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        raise FileError(f"{path}: the checkpoint path is a directory")
    if run_id is not None and os.path.isfile(path) and checkpoint_owner(path)[0] == run_id:
        return
    if not force:
        _, summary = checkpoint_owner(path)
        raise FileError(f"{path}: a checkpoint of another run is there ({summary}): continue it with "
                        f"{param('resume')} {path}, or give {param('force')} to discard it")
    os.remove(path)
    log.info(f"checkpoint: removed the earlier run's {path} ({param('force')})")


def checkpoint_target(checkpoint, checkpoint_every, output, resumed=None):
    """Where a run writes its checkpoints and how often: (path, every), or (None, None) for none.

    `checkpoint_every` alone writes OUTPUT.ckpt; a resumed run goes on at its own rhythm, writing the
    checkpoint it resumed when that is at the place, and for the output, its run recorded (a copy or a
    checkpoint resumed for another output is left as it is). Nothing is written or removed here: the caller
    checks its inputs, then claims the path (`claim_checkpoint_path`)."""
    every = checkpoint_every if checkpoint_every is not None else \
        (resumed.record.get("checkpoint_every") if resumed is not None else None)
    if every is None and checkpoint is None:
        if output is not None and resumed is None and os.path.exists(f"{output}.ckpt"):
            log.warning(f"warning: {output}.ckpt holds an unfinished run; it is left alone (continue it with "
                        f"{param('resume')})")
        return None, None
    parse_every(every or "1")
    own = resumed is not None and recorded_here(resumed, output)
    path = checkpoint or (resumed.path if own else (None if output is None else f"{output}.ckpt"))
    if path is None and checkpoint_every is None and resumed is not None:
        log.info(f"checkpoint: {resumed.path} is a copy or was written for another output; it is left as it is "
                 f"and this run writes no checkpoints (give {param('output')} or {param('checkpoint')})")
        return None, None
    if path is None:
        raise OptionError("checkpoint_every", f"needs a file: give {param('checkpoint')} or {param('output')}")
    return os.fspath(path), every or "1"


def finish_checkpoints(output, run_id, paths):
    """After the finished model is on disk (durably): remove the checkpoints it supersedes, only those this
    run wrote for this output (`made_for`); any other is kept and said so."""
    for done in sorted({os.fspath(p) for p in paths if p is not None}):
        if output is not None and made_for(done, run_id, output):
            os.remove(done)
        elif os.path.exists(done):
            why = f"not this run's checkpoint for {output}" if output is not None else \
                "the model was not saved to a file"
            log.info(f"checkpoint kept: {done} ({why})")


class Checkpoint(Callback):
    """Writes the training state every N epochs or every N minutes (`every`: '1', '2epochs', '10min'),
    atomically, at block or epoch boundaries; refuses to write over another run's checkpoint."""

    def __init__(self, path, every="1", run_id=None):
        self.path = os.fspath(path)
        self.every_epochs, self.every_seconds = parse_every(every or "1")
        self.run_id = run_id
        self.last = time.monotonic()
        self.write_seconds = []
        self.written = False

    def on_train_begin(self, run):
        self.last = time.monotonic()
        self.run_id = self.run_id or run.run_id

    def on_step(self, run):
        if self.every_seconds is not None and time.monotonic() - self.last >= self.every_seconds \
                and run.state.pos < run.work_per_epoch:
            self.save(run)

    def on_epoch_end(self, run):
        if run.epoch >= run.epochs:
            return  # the model itself follows
        if (self.every_epochs is not None and run.epoch % self.every_epochs == 0) or \
                (self.every_seconds is not None and time.monotonic() - self.last >= self.every_seconds):
            self.save(run)

    def save(self, run):
        if os.path.lexists(self.path):
            owner, summary = checkpoint_owner(self.path)
            if owner != self.run_id:
                raise FileError(f"{self.path}: another run wrote a checkpoint here while this one ran "
                                f"({summary}); not overwriting it")
        t0 = time.perf_counter()
        save_checkpoint(self.path, self.run_id, run.record, run.state_snapshot(), run.arrays(), run.words,
                        run.counts)
        self.write_seconds.append(time.perf_counter() - t0)
        self.last = time.monotonic()
        self.written = True
        log.info(f"checkpoint: epoch {run.state.epoch}, block {run.state.block} -> {self.path} "
                 f"({self.write_seconds[-1]:.2f}s)")


# ------------------------------------------------------------------------------------------ reading
@dataclass
class Resumable:
    path: str
    run_id: str
    record: dict
    state: TrainState
    arrays: dict
    words: list
    counts: np.ndarray


def load_checkpoint(path, reader=None) -> Resumable:
    """Read and check a checkpoint completely: record, state, vocabulary, and every array against what
    its trainer declares for that vocabulary and those options (shape, dtype, checksum, finiteness).

    reader(record, path) -> (options, specs): the validated options of the record (with `epochs`) and a
    function n_words -> {array name: (shape, dtype)}; it refuses a record it does not read (another
    trainer's) with one FileError. Default: an algorithm of the registry (`fastemb train`)."""
    from fastemb.store import read_vocab, open_h5
    path = os.fspath(path)
    with open_h5(path, "checkpoint") as f:
        version = f.attrs.get("checkpoint_version")
        if version is None:
            raise FileError(f"{path}: a checkpoint of an older fastemb (format 1), which this version cannot "
                            f"resume: start the run again")
        if int(version) != VERSION:
            raise FileError(f"{path}: checkpoint format {version}, this fastemb reads {VERSION}")
        try:
            record_json, state_json = str(f.attrs["record"]), str(f.attrs["state"])
            sealed = str(f.attrs["header_sha256"]) == _header_digest(record_json, state_json)
            record = json.loads(record_json) if sealed else None
            state_d = json.loads(state_json) if sealed else None
        except (KeyError, ValueError, TypeError) as e:
            raise FileError(f"{path}: damaged checkpoint ({e})") from None
        if not sealed:
            raise FileError(f"{path}: damaged checkpoint: the checksum of its settings does not match")
        run_id = str(f.attrs.get("run_id", ""))
        state = TrainState.from_dict(state_d, path)
        options, array_specs = (reader or algorithm_reader)(record, path)
        words, counts = read_vocab(f, path)
        if len(words) == 0 or (counts < 1).any():
            raise FileError(f"{path}: damaged checkpoint vocabulary ({len(words)} words, {len(counts)} counts)")
        if state.epoch > options.epochs:
            raise FileError(f"{path}: damaged checkpoint state ({state.epoch} epochs done of {options.epochs})")
        specs = array_specs(words)
        have = set(f["arrays"].keys()) if "arrays" in f else set()
        required = {name for name, spec in specs.items() if not (len(spec) > 2 and spec[2] == "optional")}
        if not required <= have <= set(specs):
            raise FileError(f"{path}: damaged checkpoint: arrays {sorted(have)}, expected {sorted(specs)}")
        arrays = {}
        for name, (shape, dtype, *_) in specs.items():
            if name not in have:
                continue
            ds = f["arrays"][name]
            if not hasattr(ds, "shape") or tuple(ds.shape) != tuple(shape) or ds.dtype != np.dtype(dtype):
                raise FileError(f"{path}: damaged checkpoint: array {name} is {getattr(ds, 'dtype', '?')} "
                                f"{tuple(getattr(ds, 'shape', ()))}, expected {np.dtype(dtype)} {tuple(shape)}")
            a = np.ascontiguousarray(ds[()])
            expected = ds.attrs.get("sha256")
            if expected is None or digest(a) != str(expected):
                raise FileError(f"{path}: damaged checkpoint: the checksum of array {name} does not match")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise FileError(f"{path}: damaged checkpoint: array {name} holds non-finite values")
            arrays[name] = a
    return Resumable(path, run_id, record, state, arrays, words, counts)


def record_options(record, path):
    """(Algorithm, validated options) of a checkpoint record of a registered algorithm."""
    from fastemb import registry
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise FileError(f"{path}: damaged checkpoint record")
    algo = record.get("algo")
    if isinstance(algo, str) and algo in OTHER_TRAINERS:
        raise FileError(f"{path}: a checkpoint of {OTHER_TRAINERS[algo]}, not of a word-embedding algorithm: "
                        f"continue it with the command that wrote it")
    try:
        algorithm = registry.get(record.get("algo"))
        options = algorithm.options.from_dict(record["options"])
    except (OptionError, KeyError, TypeError) as e:
        raise FileError(f"{path}: damaged checkpoint record ({e})") from None
    if not algorithm.iterative:
        raise FileError(f"{path}: {algorithm.name} has no epochs to resume")
    return algorithm, options


def algorithm_reader(record, path):
    """load_checkpoint's reader for the registry's algorithms: (options, vocabulary -> array specs)."""
    algorithm, options = record_options(record, path)
    return options, lambda words: algorithm.trainer.array_specs(options, words)


def check_input_digests(record, paths, path) -> dict:
    """The SHA-256 of every input file the checkpoint's record names, compared before any of them is parsed
    (a file changed since, or a record pointing elsewhere, is refused without reading its content)."""
    from fastemb.files import file_sha256
    saved = (record.get("inputs") or {}).get("sha256")
    if not isinstance(saved, dict) or sorted(saved) != sorted(paths) or \
            not all(isinstance(v, str) for v in saved.values()):
        raise FileError(f"{path}: its record holds no checksums of its input files (a checkpoint of an older "
                        f"fastemb, or damaged): start the run again")
    for p in paths:
        if file_sha256(p) != saved[p]:
            raise FastembError(f"{path}: the input changed since the checkpoint: {p} (its SHA-256 differs; it "
                               f"was not read)")
    return saved


def check_state_fits(state: TrainState, work_per_epoch, path):
    """A resumed state must stand inside an epoch of this run's work (a crafted position is refused)."""
    if state.pos > work_per_epoch or (state.block == 0) != (state.pos == 0):
        raise FileError(f"{path}: damaged checkpoint state (block {state.block} at position {state.pos:,} of "
                        f"{work_per_epoch:,})")


def must_agree(name, value, saved, path, free):
    """A resumed run keeps its settings: an option given again must have the value the run started with."""
    if value != saved:
        raise OptionError(name, f"is {value!r}, but the run in {path} was started with {saved!r}: a resumed "
                                f"run keeps its settings (only {', '.join(sorted(free))} and checkpoint_every "
                                f"can change)")


def check_same_vocab(words, counts, ck_words, ck_counts, path):
    if list(words) != list(ck_words):
        raise FastembError(f"{path}: the corpus no longer gives the checkpoint's vocabulary ({len(words):,} words "
                           f"now, {len(ck_words):,} then): it changed since the checkpoint")
    if not np.array_equal(counts, ck_counts):
        raise FastembError(f"{path}: the corpus no longer gives the checkpoint's word counts: it changed since "
                           f"the checkpoint")
