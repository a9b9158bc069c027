"""fastemb.train: corpus (or co-occurrence file) -> Embeddings, for every algorithm."""
from __future__ import annotations

import math
import os
import time

import numpy as np

from . import options as O
from .embeddings import Embeddings
from .errors import FastembError
from .parallel import resolve_threads
from .progress import Progress, human
from .vocab import build_vocab

ALGOS = ("sgns", "cbow", "glove", "ppmi-svd")
MIN_ALPHA_RATIO = 1e-4  # word2vec.c decays the learning rate to alpha * 1e-4

# Half-width of the uniform initialisation of word2vec input vectors, in units of 1/dim. word2vec.c uses 0.5
# and gensim 1.0; with 5 epochs both under-train small and mid-sized corpora, and a wider start measured
# better everywhere here (benchmark corpus, 2 seeds each, WS353 / analogy; 1M-token prefix, 3 seeds):
#   width 0.5: sgns 0.606/0.195, cbow 0.604/0.199; 1M prefix sgns 0.255/0.010
#   width 2:   sgns 0.621/0.203, cbow 0.619/0.218; 1M prefix sgns 0.288/0.018
#   width 4:   sgns 0.628/0.206, cbow 0.626/0.222; 1M prefix sgns 0.312/0.027
# (gensim corpus_file, same settings: 0.608/0.200, cbow 0.621/0.217; 1M prefix 0.297/0.018).
DEFAULT_INIT_WIDTH = 4.0

# Every default in one place; None in train()'s arguments means "this algorithm's default".
DEFAULTS = {
    "sgns": dict(window=5, epochs=5, alpha=0.025, sample=1e-3, add_contexts=False),
    "cbow": dict(window=5, epochs=5, alpha=0.05, sample=1e-3, add_contexts=False),
    "glove": dict(window=10, epochs=15, alpha=0.75, sample=0.0, add_contexts=True, weighting="harmonic",
                  x_max=None, eta=0.05),
    "ppmi-svd": dict(window=2, sample=0.0, add_contexts=False, weighting="dynamic", cds=0.75, neg=1.0,
                     eig=0.5, svd="auto"),
}


def glove_x_max(X) -> float:
    """GloVe's x_max = 100 was set on billion-token corpora, where a few percent of the pairs reach it.
    On small corpora almost none do and f(x) starves the fit. fastemb takes min(100, the 98th percentile
    of the nonzero counts), which is 100 on large corpora and follows the counts on small ones (figures
    in README: GloVe)."""
    data = X.data[X.data > 0]
    if len(data) == 0:
        return 100.0
    return float(min(100.0, max(1.0, np.percentile(data, 98))))


def check_word2vec_options(dim, window, negative, ns_exponent, sample, epochs, alpha, min_alpha, init_width=1.0):
    O.require(dim >= 1, f"--dim must be at least 1 (got {dim})")
    O.check_window(window)
    O.require(negative >= 1, f"--negative must be at least 1 (got {negative}); fastemb trains with "
                             f"negative sampling only")
    O.require(math.isfinite(ns_exponent), f"--ns-exponent must be a number (got {ns_exponent})")
    O.check_sample(sample)
    O.require(epochs >= 1, f"--epochs must be at least 1 (got {epochs})")
    O.require(alpha > 0 and math.isfinite(alpha), f"--alpha must be positive (got {alpha})")
    O.require(0 <= min_alpha <= alpha, f"--min-alpha must be between 0 and --alpha (got {min_alpha})")
    O.require(init_width > 0 and math.isfinite(init_width), f"--init-width must be positive (got {init_width})")


def memory_estimate(algo, n_words, dim, nnz=0) -> int:
    """Bytes of the model during training: float32 matrices (and GloVe's AdaGrad state and nonzeros)."""
    if algo in ("sgns", "cbow"):
        return 2 * n_words * dim * 4
    if algo == "glove":
        return 4 * n_words * dim * 4 + 24 * nnz
    return 3 * n_words * (dim + 10) * 4 + 12 * nnz


def available_memory():
    """MemAvailable in bytes (Linux), or None when it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def check_fits(algo, need):
    have = available_memory()
    if have is not None and need > have:
        raise FastembError(f"{algo} needs about {human(need)}B for its model but only {human(have)}B of memory "
                           f"is available: lower --dim or --max-vocab, or raise --min-count")


def _paths(corpus):
    return list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]


def train(corpus=None, algo="sgns", *, cooc=None, dim=100, window=None, negative=5, ns_exponent=0.75,
          sample=None, min_count=O.MIN_COUNT, max_vocab=None, epochs=None, alpha=None, min_alpha=None,
          cbow_mean=True, threads=None, seed=1, shared_negatives=True, init_width=DEFAULT_INIT_WIDTH,
          add_contexts=None, weighting=None, x_max=None, eta=None, symmetric=False, cds=None, neg=None,
          eig=None, svd=None, lowercase=False, token_pattern=None, max_sentence_length=O.MAX_SENTENCE_LENGTH,
          memory=O.MEMORY, quiet=False, tmp_dir=None, checkpoint=None, checkpoint_every=None,
          resume=None) -> Embeddings:
    """Train word vectors on `corpus` (a path, a directory, '-' or a list of them), or, for glove and
    ppmi-svd, on a co-occurrence file written by `fastemb cooc` (`cooc=`).

    checkpoint / checkpoint_every ('1' or '2epochs' for epochs, '10min' for time): write the training
    state there, atomically; resume=FILE continues from such a file with its own settings."""
    if resume is not None:
        from .checkpoint import load_checkpoint
        args, state, arrays, words, counts = load_checkpoint(resume)
        args.update(quiet=quiet, tmp_dir=tmp_dir, checkpoint=checkpoint or resume,
                    checkpoint_every=checkpoint_every or args.get("checkpoint_every"))
        if threads is not None:
            args["threads"] = threads
        return _train(**args, _resumed=(resume, state, arrays, words, counts))
    return _train(**{k: v for k, v in locals().items() if k != "resume"})


def _train(corpus=None, algo="sgns", *, cooc=None, dim=100, window=None, negative=5, ns_exponent=0.75,
           sample=None, min_count=O.MIN_COUNT, max_vocab=None, epochs=None, alpha=None, min_alpha=None,
           cbow_mean=True, threads=None, seed=1, shared_negatives=True, init_width=DEFAULT_INIT_WIDTH,
           add_contexts=None, weighting=None, x_max=None, eta=None, symmetric=False, cds=None, neg=None,
           eig=None, svd=None, lowercase=False, token_pattern=None, max_sentence_length=O.MAX_SENTENCE_LENGTH,
           memory=O.MEMORY, quiet=False, tmp_dir=None, checkpoint=None, checkpoint_every=None, _resumed=None):
    train_args = {k: v for k, v in locals().items() if k not in ("quiet", "tmp_dir", "checkpoint", "_resumed")}
    if algo not in ALGOS:
        raise FastembError(f"unknown algorithm {algo!r} (one of {', '.join(ALGOS)})")
    d = DEFAULTS[algo]
    pick = (lambda value, name: d[name] if value is None else value)
    window, sample, add_contexts = pick(window, "window"), pick(sample, "sample"), pick(add_contexts, "add_contexts")
    O.require(dim >= 1, f"--dim must be at least 1 (got {dim})")
    O.check_window(window)
    O.check_sample(sample)
    O.check_corpus_options(min_count, max_vocab, max_sentence_length)
    threads = resolve_threads(threads)
    budget = O.parse_memory(memory)
    if (corpus is None) == (cooc is None):
        raise FastembError("give either a corpus or --cooc FILE")
    if cooc is not None and algo in ("sgns", "cbow"):
        raise FastembError(f"--cooc feeds glove and ppmi-svd; {algo} trains on the corpus itself")
    ckpt = None
    if checkpoint_every is not None or checkpoint is not None:
        from .checkpoint import parse_every
        if algo == "ppmi-svd":
            raise FastembError("ppmi-svd has no epochs to checkpoint")
        if checkpoint is None:
            raise FastembError("--checkpoint-every needs a checkpoint file")
        if corpus is not None and "-" in _paths(corpus):
            raise FastembError("a run reading stdin cannot be resumed: checkpoints need the corpus in files")
        parse_every(checkpoint_every or "1")
        if corpus is not None:
            train_args["corpus"] = [os.path.abspath(p) for p in _paths(corpus)]
        if cooc is not None:
            train_args["cooc"] = os.path.abspath(cooc)
        ckpt = {"path": checkpoint, "every": checkpoint_every or "1", "args": train_args,
                "log": None if quiet else Progress("train", None).log}
    t0 = time.perf_counter()
    attrs = dict(algo=algo, dim=dim, seed=seed, threads=threads, min_count=min_count, max_vocab=max_vocab or 0,
                 lowercase=lowercase, max_sentence_length=max_sentence_length, add_contexts=add_contexts)
    if algo in ("sgns", "cbow"):
        epochs, alpha = pick(epochs, "epochs"), pick(alpha, "alpha")
        min_alpha = alpha * MIN_ALPHA_RATIO if min_alpha is None else float(min_alpha)
        check_word2vec_options(dim, window, negative, ns_exponent, sample, epochs, alpha, min_alpha, init_width)
        emb = _train_word2vec(_paths(corpus), algo, attrs, dim=dim, window=window, negative=negative,
                              ns_exponent=ns_exponent, sample=sample, epochs=epochs, alpha=alpha,
                              min_alpha=min_alpha, cbow_mean=cbow_mean, threads=threads, seed=seed,
                              shared_negatives=shared_negatives, init_width=init_width, add_contexts=add_contexts,
                              min_count=min_count, max_vocab=max_vocab, lowercase=lowercase,
                              token_pattern=token_pattern, max_sentence_length=max_sentence_length, budget=budget,
                              quiet=quiet, tmp_dir=tmp_dir, ckpt=ckpt, resumed=_resumed)
    else:
        weighting = pick(weighting, "weighting")
        words, counts, X, cooc_attrs = _cooccurrences(corpus, cooc, window=window, weighting=weighting,
                                                      sample=sample, seed=seed, min_count=min_count,
                                                      max_vocab=max_vocab, lowercase=lowercase,
                                                      token_pattern=token_pattern,
                                                      max_sentence_length=max_sentence_length, budget=budget,
                                                      threads=threads, quiet=quiet, tmp_dir=tmp_dir)
        attrs.update(cooc_attrs)
        need = memory_estimate(algo, len(words), dim, X.nnz)
        if not quiet:
            Progress("train", None).log(f"{algo}: {len(words):,} words, {X.nnz:,} co-occurrences; the model "
                                        f"needs about {human(need)}B")
        check_fits(algo, need)
        if algo == "glove":
            emb = _train_glove(words, counts, X, attrs, dim=dim, epochs=pick(epochs, "epochs"),
                               x_max=x_max, alpha=pick(alpha, "alpha"), eta=pick(eta, "eta"), seed=seed,
                               threads=threads, symmetric=symmetric, add_contexts=add_contexts, quiet=quiet,
                               ckpt=ckpt, resumed=_resumed)
        else:
            emb = _train_ppmi(words, counts, X, attrs, dim=dim, cds=pick(cds, "cds"), neg=pick(neg, "neg"),
                              eig=pick(eig, "eig"), svd=pick(svd, "svd"), seed=seed, threads=threads,
                              add_contexts=add_contexts, quiet=quiet)
    emb.attrs["total_seconds"] = time.perf_counter() - t0
    return emb


def _resume_parts(ckpt, resumed, words, counts):
    """(Checkpointer or None, TrainState or None, arrays or None) for a run, checking a resumed run's
    vocabulary against its checkpoint's."""
    from .checkpoint import Checkpointer, check_same_vocab
    state = arrays = None
    if resumed is not None:
        path, state, arrays, ck_words, ck_counts = resumed
        check_same_vocab(words, counts, ck_words, ck_counts, path)
    checkpointer = None
    if ckpt is not None:
        checkpointer = Checkpointer(ckpt["path"], ckpt["every"], ckpt["args"], words, counts, ckpt["log"])
    return checkpointer, state, arrays


def _train_word2vec(paths, algo, attrs, *, budget, quiet, tmp_dir, min_count, max_vocab, lowercase, token_pattern,
                    max_sentence_length, add_contexts, ckpt, resumed, **kw):
    from .word2vec import train_word2vec
    with build_vocab(paths, min_count=min_count, max_vocab=max_vocab, lowercase=lowercase,
                     token_pattern=token_pattern, max_sentence_length=max_sentence_length, memory=budget,
                     quiet=quiet, encode=True, work_dir=tmp_dir) as enc:
        v = enc.vocab
        need = memory_estimate(algo, len(v), kw["dim"])
        if not quiet:
            Progress("train", None).log(f"vocabulary: {len(v):,} words, {enc.n_tokens:,} of {v.raw_tokens:,} "
                                        f"tokens; the vectors need about {human(need)}B")
        check_fits(algo, need)
        checkpointer, state, arrays = _resume_parts(ckpt, resumed, v.words, v.counts)
        init = (arrays["syn0"], arrays["syn1"]) if arrays is not None else None
        syn0, syn1, info = train_word2vec(enc, cbow=(algo == "cbow"), quiet=quiet, init=init, state=state,
                                          checkpointer=checkpointer, **kw)
        attrs.update({k: v for k, v in kw.items() if k not in ("threads", "seed")})
        attrs.update(corpus_tokens=v.raw_tokens, vocab_tokens=enc.n_tokens, loss=info["loss"],
                     loss_curve=info["loss_curve"], train_seconds=info["train_seconds"],
                     words_per_second=info["words_per_second"], corpus=os.pathsep.join(map(str, paths)),
                     resumed_from=resumed[0] if resumed else "")
        vectors = syn0 + syn1 if add_contexts else syn0
        return Embeddings(v.words, vectors, v.counts, context_vectors=syn1, attrs=attrs)


def _cooccurrences(corpus, cooc, *, window, weighting, sample, seed, min_count, max_vocab, lowercase,
                   token_pattern, max_sentence_length, budget, threads, quiet, tmp_dir):
    """(words, counts, CSR matrix, attrs) from a cooc file or counted from the corpus."""
    if cooc is not None:
        from .store import load_cooc
        words, counts, X, a = load_cooc(cooc)
        return words, counts, X, {"cooc_file": os.path.abspath(cooc), "window": a.get("window"),
                                  "weighting": a.get("weighting"), "sample": a.get("sample"),
                                  "corpus_tokens": a.get("corpus_tokens"), "corpus": a.get("corpus", "")}
    from .cooc import CsrCollector, cooccurrence
    paths = _paths(corpus)
    with build_vocab(paths, min_count=min_count, max_vocab=max_vocab, lowercase=lowercase,
                     token_pattern=token_pattern, max_sentence_length=max_sentence_length, memory=budget,
                     quiet=quiet, encode=True, work_dir=tmp_dir) as enc:
        sink = CsrCollector(len(enc.vocab))
        cooccurrence(enc, sink, window=window, weighting=weighting, sample=sample, seed=seed, memory=budget,
                     threads=threads, quiet=quiet, spill_dir=tmp_dir)
        v = enc.vocab
        return v.words, v.counts, sink.matrix(), {"window": window, "weighting": weighting, "sample": sample,
                                                  "corpus_tokens": v.raw_tokens, "vocab_tokens": enc.n_tokens,
                                                  "corpus": os.pathsep.join(map(str, paths))}


def _train_glove(words, counts, X, attrs, *, dim, epochs, x_max, alpha, eta, seed, threads, symmetric,
                 add_contexts, quiet, ckpt, resumed):
    from .glove import train_glove
    O.require(epochs >= 1, f"--epochs must be at least 1 (got {epochs})")
    O.require(alpha > 0 and math.isfinite(alpha), f"--alpha (GloVe's weighting exponent) must be positive "
                                                  f"(got {alpha})")
    O.require(eta > 0 and math.isfinite(eta), f"--eta must be positive (got {eta})")
    x_max = glove_x_max(X) if x_max is None else float(x_max)
    O.require(x_max > 0, f"--x-max must be positive (got {x_max})")
    checkpointer, state, arrays = _resume_parts(ckpt, resumed, words, counts)
    W, Wc, b, bc, info = train_glove(X, dim=dim, epochs=epochs, x_max=x_max, alpha=alpha, eta=eta, seed=seed,
                                     threads=threads, symmetric=symmetric, quiet=quiet, init=arrays, state=state,
                                     checkpointer=checkpointer)
    attrs.update(epochs=epochs, x_max=x_max, alpha=alpha, eta=eta, symmetric=symmetric, loss=info["loss"],
                 train_seconds=info["train_seconds"], nnz=info["nnz"])
    if symmetric:
        return Embeddings(words, W, counts, bias=b, attrs=attrs)
    vectors = W + Wc if add_contexts else W
    return Embeddings(words, vectors, counts, context_vectors=Wc, bias=b, context_bias=bc, attrs=attrs)


def _train_ppmi(words, counts, X, attrs, *, dim, cds, neg, eig, svd, seed, threads, add_contexts, quiet):
    from .ppmi import train_ppmi_svd
    O.require(cds > 0 and math.isfinite(cds), f"--cds must be positive (got {cds})")
    O.require(math.isfinite(eig), f"--eig must be a number (got {eig})")
    W, C, factors, info = train_ppmi_svd(X, dim=dim, cds=cds, neg=neg, eig=eig, svd=svd, seed=seed,
                                         threads=threads, quiet=quiet)
    attrs.update(cds=cds, neg=neg, eig=eig, svd=info["svd_method"], ppmi_nnz=info["ppmi_nnz"],
                 train_seconds=info["train_seconds"])
    vectors = W + C if add_contexts else W
    return Embeddings(words, vectors, counts, context_vectors=C, svd=factors, attrs=attrs)
