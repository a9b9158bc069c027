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

from fastemb import registry
from fastemb.callbacks import as_callbacks
from fastemb.corpus import CorpusOptions, resolve_sources
from fastemb.errors import FastembError, FileError, OptionError, param
from fastemb.options import RunOptions, free_on_resume
from fastemb.progress import human, log, verbosity

DEFAULT_ALGO = "sgns"


@dataclass
class CoocData:
    """The input of a co-occurrence algorithm."""
    words: list
    counts: object
    matrix: object           # scipy.sparse.csr_matrix (float32); None when the matrix stays on a cluster
    attrs: dict = field(default_factory=dict)
    factorize: object = None    # ... then: (dim, cds, shift, seed) -> (U, s, vt) computed where the matrix is


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
    init: object = None                 # continued training: the Embeddings trained further
    init_path: str | None = None        # ... and the file they came from
    update_vocab: bool = False          # ... with the new corpus's words appended
    client: object = None               # count the co-occurrences on this Dask cluster (Client or address)
    input_sha256: dict | None = None    # a checkpointed run's input files -> SHA-256 (checked before a resume reads)
    init_file_sha256: str | None = None  # ... and its init model file's


@dataclass
class _Request:
    """What the caller asked for, before any check."""
    corpus: object
    algo: object
    cooc: object
    options: object
    corpus_options: object
    seed: object
    threads: object
    init: object
    update_vocab: bool
    params: dict
    client: object = None


def train(corpus=None, algo=None, *, cooc=None, options=None, corpus_options=None, seed=None, threads=None,
          callbacks=None, verbose=False, output=None, force=False, checkpoint=None, checkpoint_every=None,
          resume=None, tmp_dir=None, init=None, update_vocab=False, client=None, **params):
    """Train word vectors and return `fastemb.Embeddings`.

    corpus: a path, a directory, '-' (stdin) or a list of them; or sentences from Python: a list of token
    lists, or any iterable (a generator too) of token lists or strings of text, read once, in bounded memory.
    cooc: a file from `fastemb cooc` (glove, ppmi-svd) instead of a corpus, or a square scipy.sparse matrix,
    or (words, matrix). algo: one of `fastemb.registry.names()` (default sgns).
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
    init: train an earlier sgns/cbow model (Embeddings, or its file) further on this corpus, starting from
    its vectors and context vectors and, unless given otherwise, its options; its vocabulary is kept (other
    words are skipped) or, with update_vocab=True, extended by the corpus's new words (counts add up).
    client: count the co-occurrences (glove, ppmi-svd) on a Dask cluster: a dask.distributed Client, a
    scheduler address or "local:N" (`pip install 'fastemb[dask]'`). The matrix is bit-identical to the local
    one; GloVe then trains here on the matrix streamed back row block by row block, PPMI-SVD factors it on
    the cluster. sgns/cbow train on one machine (Hogwild shared memory) and take no client.
    """
    import contextlib
    from fastemb.files import output_lock
    with verbosity(verbose), (output_lock(output) if output is not None else contextlib.nullcontext()):
        req = _Request(corpus, algo, cooc, options, corpus_options, seed, threads, init, bool(update_vocab), params,
                       client)
        plan = _plan(req, callbacks, output, force, checkpoint, checkpoint_every, resume, tmp_dir)
        if plan.client is None:
            return _execute(plan)
        from fastemb.dask import cluster_guard, connect, release
        with cluster_guard(plan.client):
            plan.client, owned = connect(plan.client)
            try:
                return _execute(plan)
            finally:
                if owned:
                    release(plan.client)


# ------------------------------------------------------------------------------------------ planning
def _plan(req: _Request, callbacks, output, force, checkpoint, checkpoint_every, resume, tmp_dir) -> _Plan:
    """Every check that needs no corpus: options, inputs, outputs, checkpoint policy. Nothing is read
    but a checkpoint to resume."""
    from fastemb.checkpoint import Checkpoint, checkpoint_target, claim_checkpoint_path, parse_every
    from fastemb.files import check_work_dir
    from fastemb.store import check_output
    callbacks = as_callbacks(callbacks)
    if any(isinstance(cb, Checkpoint) for cb in callbacks):
        raise OptionError("callbacks", f"take no Checkpoint: give {param('checkpoint')} and "
                                       f"{param('checkpoint_every')}, which follow the checkpoint policy")
    RunOptions(threads=req.threads)  # threads are checked here, also when resuming
    if req.update_vocab and req.init is None and resume is None:
        raise OptionError("update_vocab", f"extends the vocabulary of {param('init')}, which is not given")
    plan = _plan_resume(resume, req) if resume is not None else _plan_new(req)
    if hasattr(plan.algorithm.trainer, "check_device"):
        plan.algorithm.trainer.check_device(plan.options)  # e.g. --device cuda without a GPU: one line, now
    plan.callbacks, plan.output = callbacks, None if output is None else os.fspath(output)
    if req.client is not None:
        _check_client(plan, req.client)
    check_work_dir(tmp_dir)
    plan.tmp_dir = tmp_dir
    if output is not None:
        check_output(output, force)
    if checkpoint_every is not None or checkpoint is not None:
        parse_every(checkpoint_every or "1")
        if not plan.algorithm.iterative:
            raise OptionError("checkpoint_every" if checkpoint_every is not None else "checkpoint",
                              f"does not apply to {plan.algorithm.name}: it has no epochs")
    path, every = checkpoint_target(checkpoint, checkpoint_every, output, plan.resumed)
    if path is not None:
        if plan.sources is not None and not _files_only(plan.sources) or plan.matrix is not None or \
                plan.init is not None and plan.init_path is None:
            raise OptionError("checkpoint_every", "needs inputs that a resumed run can read again: give the "
                                                  "corpus (or the co-occurrence matrix, or the init model) as "
                                                  "files, not stdin or Python objects")
        plan.checkpoint, plan.checkpoint_every = path, every
        if plan.input_sha256 is None:  # what a resumed run must find again, checked before it parses anything
            from fastemb.files import file_sha256
            plan.input_sha256 = {p: file_sha256(p) for p in (plan.sources or [plan.cooc_file])}
            if plan.init_path is not None:
                plan.init_file_sha256 = file_sha256(plan.init_path)
        if resume is None or os.path.abspath(plan.checkpoint) != os.path.abspath(resume):
            claim_checkpoint_path(plan.checkpoint, force, run_id=plan.run_id if resume is not None else None)
    return plan


def _check_client(plan, client):
    """A Dask cluster counts co-occurrences of a corpus read from files (or URLs)."""
    if isinstance(client, bool) or not (isinstance(client, str) or hasattr(client, "submit")):
        raise OptionError("client", f"must be a dask.distributed Client, a scheduler address or local:N "
                                    f"(got {client!r})")
    if plan.algorithm.input != "cooc":
        raise OptionError("client", f"distributes the counting of glove and ppmi-svd; {plan.algorithm.name} "
                                    f"trains on one machine (Hogwild updates in shared memory, see README: Dask)")
    if plan.sources is None:
        raise OptionError("client", "counts a corpus on a cluster; the co-occurrence matrix given was counted "
                                    "already")
    if not _files_only(plan.sources):
        raise OptionError("client", "reads the corpus on the workers: give files, directories or URLs, not stdin "
                                    "or Python sentences")
    if hasattr(plan.algorithm.trainer, "check_cluster"):
        plan.algorithm.trainer.check_cluster(plan.options)
    plan.client = client


def _files_only(sources) -> bool:
    """Can a resumed run read these sources again (files, not stdin or a Python iterable)?"""
    return all(isinstance(s, str) and s != "-" for s in sources)


# Parameter names gensim (Word2Vec, FastText), fastText and glove-python users type by habit, and what
# fastemb calls them. Names fastemb shares (window, negative, sample, alpha, min_alpha, min_count, epochs,
# hs, cbow_mean, ns_exponent, seed) are accepted as they are.
OTHER_TOOLS_NAMES = {
    "vector_size": ("gensim", "dim"), "size": ("gensim", "dim"), "workers": ("gensim", "threads"),
    "sg": ("gensim", "algo='sgns' (sg=1) or algo='cbow' (sg=0)"), "iter": ("gensim", "epochs"),
    "max_vocab_size": ("gensim", "max_vocab"), "max_final_vocab": ("gensim", "max_vocab"),
    "sentences": ("gensim", "corpus (a list of token lists, an iterable of them, or files)"),
    "corpus_file": ("gensim", "corpus (a path or a list of paths)"),
    "compute_loss": ("gensim", "callbacks=[fastemb.LossHistory()]"),
    "epoch": ("fastText", "epochs"), "lr": ("fastText", "alpha"), "ws": ("fastText", "window"),
    "minCount": ("fastText", "min_count"), "neg": ("fastText", "negative"), "thread": ("fastText", "threads"),
    "t": ("fastText", "sample"), "no_components": ("glove-python", "dim"), "learning_rate": ("glove-python", "eta"),
}


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
            if name in OTHER_TOOLS_NAMES:
                tool, hint = OTHER_TOOLS_NAMES[name]
                raise OptionError(name, f"is {tool}'s name: use {hint}")
            raise OptionError(name, "is not a parameter of fastemb.train")
    return mine, corpus


def _inputs(algorithm, corpus, cooc, remote=False, glob=None):
    """(corpus sources, co-occurrence file, in-memory CoocData): one of them. remote: the corpus is read on
    a Dask cluster, so URLs (s3://...) are kept as they are for its workers to open."""
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
    def url(s):
        return remote and isinstance(s, str) and "://" in s
    items = [corpus] if isinstance(corpus, (str, os.PathLike)) else corpus
    if isinstance(items, (list, tuple)) and any(url(s) for s in items):  # the workers open the URLs
        return [s for item in items for s in ([item] if url(item) else _local(resolve_sources([item], glob)))], \
            None, None
    return _local(resolve_sources(corpus, glob)), None, None


def _local(sources):
    return [os.path.abspath(s) if isinstance(s, str) and s != "-" else s for s in sources]


def _matrix_input(cooc) -> CoocData:
    """A co-occurrence matrix from Python: square, finite, non-negative (checked before any kernel)."""
    import numpy as np
    import scipy.sparse as sp
    words, counts = None, None
    if isinstance(cooc, tuple) and len(cooc) == 2:
        words, cooc = cooc
    elif isinstance(cooc, tuple) and len(cooc) == 3:  # what fastemb.cooccurrences returns
        words, counts, cooc = cooc
    if not sp.issparse(cooc) or cooc.ndim != 2 or cooc.shape[0] != cooc.shape[1] or cooc.shape[0] == 0:
        raise OptionError("cooc", "must be a path, a square scipy.sparse matrix, (words, matrix) or (words, "
                                  "counts, matrix)")
    X = sp.csr_matrix(cooc, dtype=np.float32)
    X.sum_duplicates()
    if not np.isfinite(X.data).all() or (X.data < 0).any():
        raise OptionError("cooc", "must hold finite, non-negative counts")
    words = [f"w{i}" for i in range(X.shape[0])] if words is None else [str(w) for w in words]
    if len(words) != X.shape[0] or len(set(words)) != len(words):
        raise OptionError("cooc", f"needs {X.shape[0]} distinct words for its rows (got {len(words)})")
    if counts is None:
        counts = np.maximum(np.rint(np.asarray(X.sum(axis=1)).ravel()), 1).astype(np.int64)
    counts = np.asarray(counts)
    if counts.shape != (X.shape[0],) or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise OptionError("cooc", f"needs {X.shape[0]} non-negative integer counts")
    return CoocData(words, counts.astype(np.int64), X, {"cooc_file": "<matrix>"})


def _plan_new(req: _Request) -> _Plan:
    options, algo = req.options, req.algo
    if options is not None and algo is None:
        algo = next((a.name for a in registry.all_algorithms() if type(options) is a.options), None)
        if algo is None:
            raise OptionError("options", f"is a {type(options).__name__}, not the options of an algorithm")
    algorithm = registry.get(algo or DEFAULT_ALGO)
    mine, corpus_params = _split(algorithm, req.params)
    if options is not None and type(options) is not algorithm.options:
        raise OptionError("options", f"must be {algorithm.options.__name__} for {algorithm.name} "
                                     f"(got {type(options).__name__})")
    init = init_path = None
    base_model, base_corpus = algorithm.options(), CorpusOptions()
    if req.init is not None:
        init, init_path, base_model, base_corpus = _init_model(algorithm, req.init, mine)
    model = (options or base_model).replace(**mine)
    copts = (req.corpus_options or base_corpus).replace(**corpus_params)
    run = RunOptions(**({} if req.seed is None else {"seed": req.seed}), threads=req.threads)
    sources, cooc_file, matrix = _inputs(algorithm, req.corpus, req.cooc, remote=req.client is not None,
                                         glob=copts.glob)
    if sources is None:
        counted = [n for n in mine if n in model.cooc.specs()] + list(corpus_params)
        if counted or req.corpus_options is not None:
            name = counted[0] if counted else "corpus_options"
            raise OptionError(name, "applies when counting a corpus; the co-occurrence matrix was counted "
                                    "already")
        copts = None
    return _Plan(algorithm, model, copts, run, sources, cooc_file, None, None, [], None, None, uuid.uuid4().hex,
                 matrix=matrix, init=init, init_path=init_path, update_vocab=req.update_vocab)


def _init_model(algorithm, init, given):
    """(Embeddings, its path or None, base options, base corpus options) for continued training: the model's
    own options when it records them (the dimension must agree), else the defaults with its dimension."""
    from fastemb.embeddings import Embeddings, load
    if algorithm.init_arrays is None:
        able = [a.name for a in registry.all_algorithms() if a.init_arrays is not None]
        raise OptionError("init", f"continues {', '.join(able)} models; {algorithm.name} trains from scratch")
    path = None
    if not isinstance(init, Embeddings):
        path = os.path.abspath(os.fspath(init))
        init = load(path)
    trained_by = init.attrs.get("algo")
    known = {a.name: a for a in registry.all_algorithms()}
    if init.attrs.get("language_model") or (isinstance(trained_by, str) and trained_by in known
                                            and known[trained_by].init_arrays is None):
        able = [a.name for a in registry.all_algorithms() if a.init_arrays is not None]
        raise OptionError("init", f"is a {trained_by or 'language'} model: continued training takes a model of "
                                  f"{', '.join(able)} (or vectors from a text file), whose vectors and context "
                                  f"vectors mean what {algorithm.name}'s do")
    base_model, base_corpus = algorithm.options(dim=init.dim), CorpusOptions()
    try:
        record = json.loads(init.attrs.get("options") or "null")
    except (TypeError, ValueError):
        record = None
    if isinstance(record, dict) and record.get("algo") == algorithm.name:
        try:
            base_model = algorithm.options.from_dict(record["options"])
            base_corpus = CorpusOptions.from_dict(record.get("corpus_options") or {})
        except (OptionError, KeyError, TypeError):
            log.warning("warning: the init model's recorded options cannot be read; using the defaults")
    if "dim" in given and given["dim"] != init.dim:
        raise OptionError("dim", f"is {given['dim']}, but {param('init')} has {init.dim} dimensions")
    return init, path, base_model, base_corpus


def _plan_resume(path, req: _Request) -> _Plan:
    from fastemb.checkpoint import check_input_digests, load_checkpoint, must_agree, record_options
    corpus, algo, cooc, seed, threads, params = req.corpus, req.algo, req.cooc, req.seed, req.threads, req.params
    if req.options is not None or req.corpus_options is not None:
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
            if name in CorpusOptions.specs():
                copts = copts.replace(**{name: value})
            elif name in model.specs():
                model = model.replace(**{name: value})  # e.g. the device a resumed run trains on
            continue
        must_agree(name, spec.coerce(name, value) if spec is not None else value, saved, path, free)
    if corpus is not None or cooc is not None:
        new_sources, new_cooc, _ = _inputs(algorithm, corpus, cooc, glob=copts.glob if copts is not None else None)
        if (new_sources, new_cooc) != (sources, cooc_file):
            raise OptionError("corpus" if corpus is not None else "cooc",
                              f"differs from the input of the run in {path} "
                              f"({', '.join(sources) if sources else cooc_file})")
    for p in sources or [cooc_file]:
        if p != "-" and not os.path.exists(p):
            raise FileError(f"{p}: the input of the run in {path} is gone")
    digests = check_input_digests(record, sources or [cooc_file], path)
    init, init_path, init_sha = _resume_init(record, path, req)
    plan = _Plan(algorithm, model, copts, run, sources, cooc_file, None, None, [], None,
                 record.get("checkpoint_every"), ck.run_id or uuid.uuid4().hex, resumed=ck, init=init,
                 init_path=init_path, update_vocab=bool(record.get("update_vocab")), input_sha256=digests,
                 init_file_sha256=init_sha)
    return plan


def _resume_init(record, path, req):
    """The init model of a resumed continued-training run: the file its record names, unchanged."""
    from fastemb.embeddings import load
    saved = record.get("init")
    if req.init is not None and (saved is None or os.path.abspath(os.fspath(req.init)) != saved.get("path")):
        raise OptionError("init", f"differs from the run in {path}")
    if req.update_vocab and not record.get("update_vocab"):
        raise OptionError("update_vocab", f"is True, but the run in {path} was started without it")
    if saved is None:
        return None, None, None
    if not isinstance(saved, dict) or not isinstance(saved.get("path"), str) or \
            not isinstance(saved.get("file_sha256"), str):
        raise FileError(f"{path}: damaged checkpoint record (init)")
    from fastemb.files import file_sha256
    if not os.path.exists(saved["path"]):
        raise FileError(f"{saved['path']}: the init model of the run in {path} is gone")
    if file_sha256(saved["path"]) != saved["file_sha256"]:  # compared before the file is parsed
        raise FastembError(f"{path}: its init model {saved['path']} changed since the checkpoint")
    init = load(saved["path"])
    if _embeddings_digest(init) != saved.get("sha256"):
        raise FastembError(f"{path}: its init model {saved['path']} changed since the checkpoint")
    return init, saved["path"], saved["file_sha256"]


def _embeddings_digest(emb) -> str:
    import hashlib
    h = hashlib.sha256(emb.vectors.tobytes())
    if emb.context_vectors is not None:
        h.update(emb.context_vectors.tobytes())
    h.update("\n".join(emb.words).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ running
def _record(plan, fingerprint) -> dict:
    """The versioned options record a checkpoint carries (and the model file, as attr `options`)."""
    from fastemb.checkpoint import VERSION
    return {"version": VERSION, "algo": plan.algorithm.name, "options": plan.options.to_dict(),
            "corpus_options": None if plan.corpus_options is None else plan.corpus_options.to_dict(),
            "run": {"seed": plan.run.seed, "threads": plan.run.threads},
            "inputs": {"corpus": None if plan.sources is None else [str(s) for s in plan.sources],
                       "cooc": plan.cooc_file, "sha256": plan.input_sha256},
            "fingerprint": fingerprint, "checkpoint_every": plan.checkpoint_every,
            "output": None if plan.output is None else os.path.abspath(plan.output),
            "checkpoint": None if plan.checkpoint is None else os.path.abspath(plan.checkpoint),
            "init": None if plan.init is None else {"path": plan.init_path, "sha256": _embeddings_digest(plan.init)
                                                    if plan.init_path else None,
                                                    "file_sha256": plan.init_file_sha256},
            "update_vocab": plan.update_vocab}


def check_fits(algo, need, counted_here=True):
    from fastemb.files import available_memory
    have = available_memory()
    if have is not None and need > have:
        advice = f"lower {param('dim')}" + (f" or {param('max_vocab')}, or raise {param('min_count')}"
                                            if counted_here else "")
        raise FastembError(f"{algo} needs about {human(need)}B for its model but only {human(have)}B of memory "
                           f"is available: {advice}")


def _execute(plan: _Plan):
    from fastemb.parallel import resolve_threads
    from fastemb.vocab import build_vocab
    t0 = time.perf_counter()
    threads = resolve_threads(plan.run.threads)
    if plan.algorithm.input == "corpus":
        with build_vocab(plan.sources, plan.corpus_options, encode=True, work_dir=plan.tmp_dir, base=plan.init,
                         update=plan.update_vocab, threads=threads) as enc:
            v = enc.vocab
            if enc.n_tokens == 0:
                raise FastembError("none of the corpus's tokens is in the vocabulary of the model trained further"
                                   f" (give {param('update_vocab')} to add its words)")
            attrs = {"corpus_tokens": v.raw_tokens, "vocab_tokens": enc.n_tokens,
                     **{f"{k}_seconds": s for k, s in enc.seconds.items()}}
            if plan.init is not None:
                attrs.update(continued_from=plan.init_path or "<Embeddings>", update_vocab=plan.update_vocab,
                             words_added=len(v) - len(plan.init))
            log.info(f"vocabulary: {len(v):,} words, {enc.n_tokens:,} of {v.raw_tokens:,} tokens")
            fingerprint = {"tokens": enc.n_tokens}
            if plan.checkpoint or plan.resumed:  # what a resumed run must find again, byte for byte
                fingerprint["sha256"] = enc.digest()
            emb = _fit(plan, enc, v.words, v.counts, attrs, fingerprint, threads)
    else:
        data = _cooc_data(plan, threads)
        fingerprint = _matrix_fingerprint(data.matrix) if data.matrix is not None else {}
        emb = _fit(plan, data, data.words, data.counts, data.attrs, fingerprint, threads)
    emb.attrs["total_seconds"] = time.perf_counter() - t0
    if plan.output is not None:
        t_write = time.perf_counter()
        emb.save(plan.output, "hdf5", overwrite=True)  # durable (fsync, rename, fsync of the directory) ...
        emb.attrs["write_seconds"] = time.perf_counter() - t_write  # not in the file: known after writing it
    from fastemb.checkpoint import finish_checkpoints  # ... before the checkpoints it supersedes go
    finish_checkpoints(plan.output, plan.run_id, [plan.checkpoint, plan.resumed.path if plan.resumed else None])
    return emb


def _check_room(plan, words):
    """The model and its checkpoints must fit on their disks: refused now rather than after training."""
    from fastemb.files import check_space
    n_words = len(words)
    if plan.output is not None:
        check_space(os.path.dirname(os.path.abspath(plan.output)),
                    plan.algorithm.saved_size(plan.options, n_words), plan.output)
    if plan.checkpoint is not None:
        import numpy as np
        specs = plan.algorithm.trainer.array_specs(plan.options, words)
        need = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype, *_ in specs.values())
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
        from fastemb.store import load_cooc
        from fastemb.cooc import counting_mismatch
        words, counts, X, a = load_cooc(plan.cooc_file)
        differs = counting_mismatch(a, plan.algorithm.name)
        if differs:
            log.warning(f"warning: {plan.cooc_file} was counted with {differs}; {plan.algorithm.name} trains "
                        f"best on its own counting (fastemb cooc --for {plan.algorithm.name})")
        attrs = {"cooc_file": plan.cooc_file, **{k: a[k] for k in ("window", "weighting", "symmetric", "sample",
                                                                  "corpus_tokens", "corpus") if k in a}}
        return CoocData(words, counts, X, attrs)
    if plan.client is not None:
        return _cooc_on_cluster(plan)
    from fastemb.cooc import CsrCollector, cooccurrence
    from fastemb.vocab import build_vocab
    with build_vocab(plan.sources, plan.corpus_options, encode=True, work_dir=plan.tmp_dir, threads=threads) as enc:
        sink = CsrCollector(len(enc.vocab))
        cooccurrence(enc, sink, plan.options.cooc, seed=plan.run.seed, memory=plan.corpus_options.memory_bytes,
                     threads=threads, spill_dir=plan.tmp_dir)
        v = enc.vocab
        return CoocData(v.words, v.counts, sink.matrix(), {"corpus_tokens": v.raw_tokens,
                                                           "vocab_tokens": enc.n_tokens})


def _cooc_on_cluster(plan) -> CoocData:
    """The co-occurrences counted on plan.client: streamed back range by range into one CSR matrix (GloVe
    trains here), or left on the cluster as row blocks when the algorithm factors them there (PPMI-SVD)."""
    import functools
    from fastemb import dask as D
    stats = {}
    if getattr(plan.algorithm.trainer, "factors_on_cluster", False):
        v, blocks = D.cooccurrence_blocks(plan.sources, plan.corpus_options, plan.options.cooc, plan.client,
                                          seed=plan.run.seed, stats=stats)
        return CoocData(v.words, v.counts, None, {"corpus_tokens": v.raw_tokens, "dask_shards": stats["shards"]},
                        factorize=functools.partial(D.ppmi_svd, blocks, plan.client))
    words, counts, X = D.cooccurrences(plan.sources, plan.corpus_options, plan.options.cooc, plan.client,
                                       seed=plan.run.seed, stats=stats)
    return CoocData(words, counts, X, {"corpus_tokens": stats["tokens"], "vocab_tokens": stats["vocab_tokens"],
                                       "dask_shards": stats["shards"]})


def _fit(plan, data, words, counts, input_attrs, fingerprint, threads):
    from fastemb.checkpoint import Checkpoint, TrainState, check_same_vocab, check_state_fits
    from fastemb.embeddings import Embeddings
    from fastemb.loop import TrainingRun, run_epochs
    from fastemb.parallel import numba_threads
    algorithm, options = plan.algorithm, plan.options
    nnz = getattr(getattr(data, "matrix", None), "nnz", 0)
    need = algorithm.memory(options, len(words), nnz)
    log.info(f"{algorithm.name}: {len(words):,} words" + (f", {nnz:,} co-occurrences" if nnz else "") +
             f"; the model needs about {human(need)}B")
    check_fits(algorithm.name, need, plan.corpus_options is not None)
    _check_room(plan, words)
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
    if arrays is None and plan.init is not None:
        arrays = algorithm.init_arrays(options, plan.init, data.vocab, plan.run.seed)
    record = _record(plan, fingerprint)
    first_epoch, first_pos = state.epoch, state.pos
    trainer = algorithm.trainer(options, data, seed=plan.run.seed, threads=threads, state=state, arrays=arrays)
    if plan.resumed is not None:
        check_state_fits(state, trainer.work_per_epoch, plan.resumed.path)

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
    finish = getattr(trainer, "finish", None)
    if finish is not None:
        finish()  # the run is over: a trainer may hand its arrays over without copying them
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
        from fastemb.store import corpus_attr
        a["corpus"] = corpus_attr(plan.sources)
    a["options"] = json.dumps(record)
    return a
