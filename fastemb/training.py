"""fastemb.train: a corpus (or a co-occurrence file) in, Embeddings out, for every registered algorithm.

This module knows no algorithm. It validates everything before any I/O (`_plan`), prepares the input the
algorithm declares (token ids, or a co-occurrence matrix), builds the algorithm's trainer, runs the shared
epoch loop with the callbacks (checkpointing among them), and writes the model durably before it removes
the run's checkpoint. The checkpoint policy (ownership, what a resumed run may change) lives here and in
checkpoint.py, for the API and the CLI alike.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field

from . import registry
from .callbacks import as_callbacks
from .corpus import CorpusOptions, resolve_sources
from .errors import FastembError, FileError, OptionError, param
from .options import RunOptions, free_on_resume
from .progress import human, log, verbosity

DEFAULT_ALGO = "sgns"


@dataclass
class CoocData:
    """The input of a co-occurrence algorithm."""
    words: list
    counts: object
    matrix: object           # scipy.sparse.csr_matrix (float32)
    attrs: dict = field(default_factory=dict)


@dataclass
class _Plan:
    algorithm: registry.Algorithm
    options: object
    corpus_options: CorpusOptions | None
    run: RunOptions
    sources: list | None
    cooc_file: str | None
    tmp_dir: str | None
    output: str | None
    callbacks: list
    checkpoint: str | None
    checkpoint_every: str | None
    run_id: str
    resumed: object = None
    matrix: CoocData | None = None      # an in-memory co-occurrence matrix given as `cooc`


def train(corpus=None, algo=None, *, cooc=None, options=None, corpus_options=None, seed=None, threads=None,
          callbacks=None, verbose=False, output=None, force=False, checkpoint=None, checkpoint_every=None,
          resume=None, tmp_dir=None, **params):
    """Train word vectors and return `fastemb.Embeddings`.

    corpus: a path, a directory, '-' (stdin) or a list of them. cooc: a file from `fastemb cooc` (glove,
    ppmi-svd) instead of a corpus, or a square scipy.sparse matrix, or (words, matrix). algo: one of `fastemb.registry.names()` (default sgns).
    **params: the algorithm's options and the corpus options by name (dim=100, window=5, min_count=5, ...;
    see `fastemb.SGNSOptions`, `fastemb.CorpusOptions` ...), or whole objects as `options=` and
    `corpus_options=`. Options of another algorithm are refused.
    seed, threads: the run (threads=None uses every core; one thread is reproducible bit for bit).
    callbacks: `fastemb.Callback` objects or functions called at each epoch end with the `TrainingRun`.
    verbose: progress bars and log lines on stderr (by default the library prints nothing; it logs to the
    "fastemb" logger). output: also save the model there (durably), and remove the run's checkpoint then.
    checkpoint / checkpoint_every ('1', '2epochs', '10min'): write the training state there (default
    OUTPUT.ckpt when output is given); a checkpoint of another run is never overwritten unless force.
    resume: continue the run saved in that checkpoint, with its own settings (only threads, memory,
    checkpoint_every and tmp_dir may differ; other options given must agree with it).
    """
    import contextlib
    from .files import output_lock
    with verbosity(verbose), (output_lock(output) if output is not None else contextlib.nullcontext()):
        plan = _plan(corpus, algo, cooc, options, corpus_options, seed, threads, callbacks, output, force,
                     checkpoint, checkpoint_every, resume, tmp_dir, params)
        return _execute(plan)


# ------------------------------------------------------------------------------------------ planning
def _plan(corpus, algo, cooc, options, corpus_options, seed, threads, callbacks, output, force, checkpoint,
          checkpoint_every, resume, tmp_dir, params) -> _Plan:
    """Every check that needs no corpus: options, inputs, outputs, checkpoint policy. Nothing is read
    but a checkpoint to resume."""
    from .checkpoint import Checkpoint, claim_checkpoint_path, parse_every
    from .files import check_work_dir
    from .store import check_output
    callbacks = as_callbacks(callbacks)
    if any(isinstance(cb, Checkpoint) for cb in callbacks):
        raise OptionError("callbacks", f"take no Checkpoint: give {param('checkpoint')} and "
                                       f"{param('checkpoint_every')}, which follow the checkpoint policy")
    RunOptions(threads=threads)  # threads are checked here, also when resuming
    if resume is not None:
        plan = _plan_resume(resume, corpus, algo, cooc, options, corpus_options, seed, threads, params)
    else:
        plan = _plan_new(corpus, algo, cooc, options, corpus_options, seed, threads, params)
    plan.callbacks, plan.output = callbacks, None if output is None else os.fspath(output)
    check_work_dir(tmp_dir)
    plan.tmp_dir = tmp_dir
    if output is not None:
        check_output(output, force)
    every = checkpoint_every if checkpoint_every is not None else (plan.checkpoint_every if resume else None)
    if every is not None or checkpoint is not None:
        parse_every(every or "1")
        if not plan.algorithm.iterative:
            raise OptionError("checkpoint_every" if every is not None else "checkpoint",
                              f"does not apply to {plan.algorithm.name}: it has no epochs")
        path = checkpoint or (resume if resume is not None else (None if output is None else f"{output}.ckpt"))
        if path is None:
            raise OptionError("checkpoint_every", f"needs a file: give {param('checkpoint')} or {param('output')}")
        if plan.sources is not None and "-" in plan.sources or plan.matrix is not None:
            raise OptionError("checkpoint_every", "needs an input that a resumed run can read again: give the "
                                                  "corpus (or the co-occurrence matrix) as files, not stdin or "
                                                  "an in-memory matrix")
        plan.checkpoint, plan.checkpoint_every = os.fspath(path), every or "1"
        if resume is None or os.path.abspath(plan.checkpoint) != os.path.abspath(resume):
            claim_checkpoint_path(plan.checkpoint, force)
    elif output is not None and resume is None and os.path.exists(f"{output}.ckpt"):
        log.warning(f"warning: {output}.ckpt holds an unfinished run; it is left alone (continue it with "
                    f"{param('resume')})")
    return plan


def _split(algorithm, params):
    """(algorithm params, corpus params) or an OptionError naming the first one that does not apply."""
    mine, corpus = {}, {}
    corpus_names = CorpusOptions.specs()
    names = algorithm.options.specs()
    for name, value in params.items():
        if name in names:
            mine[name] = value
        elif name in corpus_names:
            corpus[name] = value
        else:
            owners = registry.owners(name)
            if owners:
                raise OptionError(name, f"is an option of {', '.join(owners)}; it does not apply to "
                                        f"{param('algo')} {algorithm.name}")
            raise OptionError(name, "is not a parameter of fastemb.train")
    return mine, corpus


def _inputs(algorithm, corpus, cooc):
    """(corpus sources, co-occurrence file, in-memory CoocData): one of them."""
    if (corpus is None) == (cooc is None):
        raise OptionError("corpus", f"and {param('cooc')}: give one of them (a corpus, or a co-occurrence file)")
    if cooc is not None:
        if algorithm.input != "cooc":
            raise OptionError("cooc", f"feeds the co-occurrence algorithms; {algorithm.name} trains on the "
                                      f"corpus itself")
        if not isinstance(cooc, (str, os.PathLike)):
            return None, None, _matrix_input(cooc)
        if not os.path.isfile(cooc):
            raise FileError(f"{os.fspath(cooc)}: no such file")
        return None, os.path.abspath(cooc), None
    paths = list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]
    return [s if s == "-" else os.path.abspath(s) for s in resolve_sources(paths)], None, None


def _matrix_input(cooc) -> CoocData:
    """A co-occurrence matrix from Python: square, finite, non-negative (checked before any kernel)."""
    import numpy as np
    import scipy.sparse as sp
    words = None
    if isinstance(cooc, tuple) and len(cooc) == 2:
        words, cooc = cooc
    if not sp.issparse(cooc) or cooc.ndim != 2 or cooc.shape[0] != cooc.shape[1] or cooc.shape[0] == 0:
        raise OptionError("cooc", "must be a path, a square scipy.sparse matrix or (words, matrix)")
    X = sp.csr_matrix(cooc, dtype=np.float32)
    X.sum_duplicates()
    if not np.isfinite(X.data).all() or (X.data < 0).any():
        raise OptionError("cooc", "must hold finite, non-negative counts")
    words = [f"w{i}" for i in range(X.shape[0])] if words is None else [str(w) for w in words]
    if len(words) != X.shape[0] or len(set(words)) != len(words):
        raise OptionError("cooc", f"needs {X.shape[0]} distinct words for its rows (got {len(words)})")
    counts = np.maximum(np.rint(np.asarray(X.sum(axis=1)).ravel()), 1).astype(np.int64)
    return CoocData(words, counts, X, {"cooc_file": "<matrix>"})


def _plan_new(corpus, algo, cooc, options, corpus_options, seed, threads, params) -> _Plan:
    if options is not None and algo is None:
        algo = next((a.name for a in registry.all_algorithms() if type(options) is a.options), None)
        if algo is None:
            raise OptionError("options", f"is a {type(options).__name__}, not the options of an algorithm")
    algorithm = registry.get(algo or DEFAULT_ALGO)
    mine, corpus_params = _split(algorithm, params)
    if options is not None and type(options) is not algorithm.options:
        raise OptionError("options", f"must be {algorithm.options.__name__} for {algorithm.name} "
                                     f"(got {type(options).__name__})")
    model = (options or algorithm.options()).replace(**mine)
    copts = (corpus_options or CorpusOptions()).replace(**corpus_params)
    run = RunOptions(**({} if seed is None else {"seed": seed}), threads=threads)
    sources, cooc_file, matrix = _inputs(algorithm, corpus, cooc)
    if sources is None:
        counted = [n for n in mine if n in model.cooc.specs()] + list(corpus_params)
        if counted or corpus_options is not None:
            name = counted[0] if counted else "corpus_options"
            raise OptionError(name, "applies when counting a corpus; the co-occurrence matrix was counted "
                                    "already")
        copts = None
    return _Plan(algorithm, model, copts, run, sources, cooc_file, None, None, [], None, None, uuid.uuid4().hex,
                 matrix=matrix)


def _plan_resume(path, corpus, algo, cooc, options, corpus_options, seed, threads, params) -> _Plan:
    from .checkpoint import load_checkpoint, record_options
    if options is not None or corpus_options is not None:
        raise OptionError("resume", "takes its options from the checkpoint: give single options to check them")
    ck = load_checkpoint(path)
    record = ck.record
    algorithm, model = record_options(record, path)
    try:
        copts = CorpusOptions.from_dict(record["corpus_options"]) if record.get("corpus_options") else None
        run = RunOptions(seed=record["run"]["seed"], threads=record["run"].get("threads") if threads is None
                         else threads)
        sources, cooc_file = record["inputs"]["corpus"], record["inputs"]["cooc"]
        if sources is not None and (not isinstance(sources, list) or not all(isinstance(x, str) for x in sources)):
            raise TypeError("corpus")
    except (KeyError, TypeError, OptionError) as e:
        raise FileError(f"{path}: damaged checkpoint record ({e})") from None
    if (not sources or "-" in sources) and not isinstance(cooc_file, str):
        raise FileError(f"{path}: its run read no files (stdin or an in-memory matrix): it cannot be resumed")
    free = free_on_resume(CorpusOptions, RunOptions, algorithm.options)
    given = dict(params)
    if algo is not None:
        given["algo"] = algo
    if seed is not None:
        given["seed"] = seed
    for name, value in given.items():
        if name == "algo":
            saved, spec = algorithm.name, None
        elif name == "seed":
            saved, spec = run.seed, RunOptions.specs()["seed"][1]
        elif name in model.specs():
            saved, spec = model.get(name), model.specs()[name][1]
        elif copts is not None and name in CorpusOptions.specs():
            saved, spec = copts.get(name), CorpusOptions.specs()[name][1]
        else:
            _split(algorithm, {name: value})  # names the right problem
            raise OptionError(name, f"does not apply to this run: {path} trains on a co-occurrence file")
        if name in free:
            copts = copts.replace(**{name: value}) if name in CorpusOptions.specs() else copts
            continue
        value = spec.coerce(name, value) if spec is not None else value
        if value != saved:
            raise OptionError(name, f"is {value!r}, but the run in {path} was started with {saved!r}: a resumed "
                                    f"run keeps its settings (only {', '.join(sorted(free))} and "
                                    f"checkpoint_every can change)")
    if corpus is not None or cooc is not None:
        new_sources, new_cooc, _ = _inputs(algorithm, corpus, cooc)
        if (new_sources, new_cooc) != (sources, cooc_file):
            raise OptionError("corpus" if corpus is not None else "cooc",
                              f"differs from the input of the run in {path} "
                              f"({', '.join(sources) if sources else cooc_file})")
    for p in sources or [cooc_file]:
        if p != "-" and not os.path.exists(p):
            raise FileError(f"{p}: the input of the run in {path} is gone")
    plan = _Plan(algorithm, model, copts, run, sources, cooc_file, None, None, [], None,
                 record.get("checkpoint_every"), ck.run_id or uuid.uuid4().hex, resumed=ck)
    return plan


# ------------------------------------------------------------------------------------------ running
def _record(plan, fingerprint) -> dict:
    """The versioned options record a checkpoint carries (and the model file, as attr `options`)."""
    from .checkpoint import VERSION
    return {"version": VERSION, "algo": plan.algorithm.name, "options": plan.options.to_dict(),
            "corpus_options": None if plan.corpus_options is None else plan.corpus_options.to_dict(),
            "run": {"seed": plan.run.seed, "threads": plan.run.threads}, "inputs": {"corpus": plan.sources, "cooc": plan.cooc_file},
            "fingerprint": fingerprint, "checkpoint_every": plan.checkpoint_every}


def check_fits(algo, need, counted_here=True):
    from .files import available_memory
    have = available_memory()
    if have is not None and need > have:
        advice = f"lower {param('dim')}" + (f" or {param('max_vocab')}, or raise {param('min_count')}"
                                            if counted_here else "")
        raise FastembError(f"{algo} needs about {human(need)}B for its model but only {human(have)}B of memory "
                           f"is available: {advice}")


def _execute(plan: _Plan):
    from .parallel import resolve_threads
    from .vocab import build_vocab
    t0 = time.perf_counter()
    threads = resolve_threads(plan.run.threads)
    if plan.algorithm.input == "corpus":
        with build_vocab(plan.sources, plan.corpus_options, encode=True, work_dir=plan.tmp_dir) as enc:
            v = enc.vocab
            attrs = {"corpus_tokens": v.raw_tokens, "vocab_tokens": enc.n_tokens}
            log.info(f"vocabulary: {len(v):,} words, {enc.n_tokens:,} of {v.raw_tokens:,} tokens")
            fingerprint = {"tokens": enc.n_tokens}
            if plan.checkpoint or plan.resumed:  # what a resumed run must find again, byte for byte
                fingerprint["sha256"] = enc.digest()
            emb = _fit(plan, enc, v.words, v.counts, attrs, fingerprint, threads)
    else:
        data = _cooc_data(plan, threads)
        emb = _fit(plan, data, data.words, data.counts, data.attrs, _matrix_fingerprint(data.matrix), threads)
    emb.attrs["total_seconds"] = time.perf_counter() - t0
    if plan.output is not None:
        emb.save(plan.output)  # durable (fsync, rename, fsync of the directory) ...
        for done in {plan.checkpoint, plan.resumed.path if plan.resumed else None} - {None}:
            if os.path.exists(done):
                os.remove(done)  # ... before the checkpoints it supersedes go
    elif plan.checkpoint and os.path.exists(plan.checkpoint):
        log.info(f"checkpoint kept: {plan.checkpoint} (the model was not saved to a file)")
    return emb


def _check_room(plan, n_words):
    """The model and its checkpoints must fit on their disks: refused now rather than after training."""
    from .files import check_space
    if plan.output is not None:
        check_space(os.path.dirname(os.path.abspath(plan.output)),
                    plan.algorithm.saved_size(plan.options, n_words), plan.output)
    if plan.checkpoint is not None:
        import numpy as np
        specs = plan.algorithm.trainer.array_specs(plan.options, n_words)
        need = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in specs.values())
        check_space(os.path.dirname(os.path.abspath(plan.checkpoint)), need + 32 * n_words, plan.checkpoint)


def _matrix_fingerprint(X) -> dict:
    import hashlib
    h = hashlib.sha256()
    for a in (X.indptr, X.indices, X.data):
        h.update(a.tobytes())
    return {"nnz": int(X.nnz), "sha256": h.hexdigest()}


def _cooc_data(plan, threads) -> CoocData:
    if plan.matrix is not None:
        return plan.matrix
    if plan.cooc_file is not None:
        from .store import load_cooc
        words, counts, X, a = load_cooc(plan.cooc_file)
        attrs = {"cooc_file": plan.cooc_file, **{k: a[k] for k in ("window", "weighting", "symmetric", "sample",
                                                                  "corpus_tokens", "corpus") if k in a}}
        return CoocData(words, counts, X, attrs)
    from .cooc import CsrCollector, cooccurrence
    from .vocab import build_vocab
    with build_vocab(plan.sources, plan.corpus_options, encode=True, work_dir=plan.tmp_dir) as enc:
        sink = CsrCollector(len(enc.vocab))
        cooccurrence(enc, sink, plan.options.cooc, seed=plan.run.seed, memory=plan.corpus_options.memory_bytes,
                     threads=threads, spill_dir=plan.tmp_dir)
        v = enc.vocab
        return CoocData(v.words, v.counts, sink.matrix(), {"corpus_tokens": v.raw_tokens,
                                                           "vocab_tokens": enc.n_tokens})


def _fit(plan, data, words, counts, input_attrs, fingerprint, threads):
    from .checkpoint import Checkpoint, TrainState, check_same_vocab
    from .embeddings import Embeddings
    from .loop import TrainingRun, run_epochs
    from .parallel import numba_threads
    algorithm, options = plan.algorithm, plan.options
    nnz = getattr(getattr(data, "matrix", None), "nnz", 0)
    need = algorithm.memory(options, len(words), nnz)
    log.info(f"{algorithm.name}: {len(words):,} words" + (f", {nnz:,} co-occurrences" if nnz else "") +
             f"; the model needs about {human(need)}B")
    check_fits(algorithm.name, need, plan.corpus_options is not None)
    _check_room(plan, len(words))
    state, arrays = TrainState(), None
    if plan.resumed is not None:
        ck = plan.resumed
        check_same_vocab(words, counts, ck.words, ck.counts, ck.path)
        then = ck.record.get("fingerprint")
        if then != fingerprint:
            what = next((k for k in ("tokens", "nnz") if isinstance(then, dict) and then.get(k) != fingerprint.get(k)),
                        None)
            detail = f"{what} {fingerprint.get(what):,} now, {then.get(what)} then" if what else "its contents differ"
            raise FastembError(f"{ck.path}: the input changed since the checkpoint ({detail})")
        state, arrays = ck.state, ck.arrays
        log.info(f"resuming {ck.path}: {state.epoch} epoch(s) and {state.block} block(s) done")
    record = _record(plan, fingerprint)
    first_epoch, first_pos = state.epoch, state.pos
    trainer = algorithm.trainer(options, data, seed=plan.run.seed, threads=threads, state=state, arrays=arrays)
    if plan.resumed is not None and (state.pos > trainer.work_per_epoch or (state.block == 0) != (state.pos == 0)):
        raise FileError(f"{plan.resumed.path}: damaged checkpoint state (block {state.block} at position "
                        f"{state.pos:,} of {trainer.work_per_epoch:,})")

    def make_embeddings(copy=False):
        parts = trainer.result()
        extra = parts.pop("attrs", {})
        if copy:
            parts = {k: (v.copy() if hasattr(v, "copy") and not isinstance(v, dict) else v) for k, v in parts.items()}
        emb = Embeddings(words, parts.pop("vectors"), counts, attrs=_attrs(plan, input_attrs, record), **parts)
        emb.attrs.update(extra)
        return emb

    start = time.perf_counter()
    with numba_threads(threads):
        if algorithm.iterative:
            run = TrainingRun(algo=algorithm.name, options=options, trainer=trainer, state=state, words=words,
                              counts=counts, epochs=options.epochs, record=record, run_id=plan.run_id,
                              make_embeddings=make_embeddings)
            callbacks = list(plan.callbacks)
            if plan.checkpoint:
                callbacks.append(Checkpoint(plan.checkpoint, plan.checkpoint_every, plan.run_id))
            completed = run_epochs(run, callbacks)
        else:
            trainer.fit()
    wall = time.perf_counter() - start
    emb = make_embeddings()
    a = emb.attrs
    a["threads"] = threads
    a.setdefault("train_seconds", state.seconds + wall)
    if algorithm.iterative:
        a.update(loss=list(state.loss), loss_curve=list(state.curve), epochs_trained=state.epoch,
                 completed=bool(completed))
        done_now = (state.epoch - first_epoch) * trainer.work_per_epoch + state.pos - first_pos
        if trainer.unit == "words" and wall > 0:
            a["words_per_second"] = max(done_now, 0) / wall
        if plan.resumed is not None:
            a["resumed_from"] = plan.resumed.path
    return emb


def _attrs(plan, input_attrs, record) -> dict:
    """Every hyperparameter as a flat attribute, and the versioned record as `options` (JSON)."""
    a = {"algo": plan.algorithm.name, "seed": plan.run.seed, "threads": plan.run.threads or 0}
    a.update({k: v for k, v in plan.options.flat().items() if v is not None})
    if plan.corpus_options is not None:
        a.update({k: v for k, v in plan.corpus_options.flat().items() if v is not None})
    a.update(input_attrs)
    if plan.sources is not None:
        a["corpus"] = os.pathsep.join(plan.sources)
    a["options"] = json.dumps(record)
    return a
