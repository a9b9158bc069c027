"""The `fastemb` command. Errors are one line on stderr with a documented exit code, never a traceback:
0 success, 1 bad input, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""
from __future__ import annotations

import json
import os
import signal
import sys

import click

from . import options as O
from .errors import FastembError, Interrupted


def _common(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(f)
    return f


def _corpus_options(f):
    for opt in reversed([
        click.option("--min-count", type=int, default=O.MIN_COUNT, show_default=True,
                     help="Drop words rarer than this."),
        click.option("--max-vocab", type=int, default=None, help="Keep only the N most frequent words."),
        click.option("--lowercase", is_flag=True, help="Lower-case the text before tokenizing."),
        click.option("--token-pattern", default=None, metavar="REGEX",
                     help="Tokens are the matches of REGEX (default: split on whitespace)."),
        click.option("--max-sentence-length", type=int, default=O.MAX_SENTENCE_LENGTH, show_default=True,
                     help="Split longer lines into sentences of this many tokens."),
        click.option("--memory", default=O.MEMORY, show_default=True,
                     help="Memory budget for counting (vocabulary pruning, co-occurrence spilling)."),
        click.option("--tmp-dir", type=click.Path(file_okay=False), default=None,
                     help="Where the encoded corpus and spilled runs go (default: system temp)."),
    ]):
        f = opt(f)
    return f


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")(f)


def _output_option(f):
    f = click.option("--force", is_flag=True, help="Overwrite an existing output file.")(f)
    return click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                        help="Output file.")(f)


def _check_tmp_dir(tmp_dir):
    if tmp_dir is not None and not (os.path.isdir(tmp_dir) and os.access(tmp_dir, os.W_OK)):
        raise FastembError(f"--tmp-dir {tmp_dir}: not a writable directory")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fastemb")
def cli():
    """fastemb: fast, streaming word embeddings (SGNS, CBOW, GloVe, PPMI-SVD)."""


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@_output_option
@_corpus_options
@_json_option
@_common
def vocab(corpus, output, force, min_count, max_vocab, lowercase, token_pattern, max_sentence_length, memory,
          tmp_dir, as_json, quiet):
    """Count the words of CORPUS (files, directories, '-' for stdin; .gz/.bz2/.xz) into word<TAB>count."""
    from .store import check_output
    from .vocab import build_vocab
    check_output(output, force)
    v = build_vocab(corpus, min_count=min_count, max_vocab=max_vocab, lowercase=lowercase,
                    token_pattern=token_pattern, max_sentence_length=max_sentence_length,
                    memory=O.parse_memory(memory), quiet=quiet)
    v.save_tsv(output)
    if as_json:
        click.echo(json.dumps({"output": output, "words": len(v), "distinct": v.distinct, "tokens": v.raw_tokens,
                               "vocab_tokens": v.total, "pruned": v.pruned}))
    if not quiet:
        click.echo(f"vocab: {len(v):,} words (of {v.distinct:,} distinct) covering {v.total:,} of "
                   f"{v.raw_tokens:,} tokens -> {output}", err=True)


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@_output_option
@click.option("--window", type=int, default=O.COOC_WINDOW, show_default=True, help="Context window.")
@click.option("--weighting", type=click.Choice(O.WEIGHTINGS), default=O.COOC_WEIGHTING, show_default=True,
              help="dynamic: word2vec's expected (w-d+1)/w; harmonic: GloVe's 1/d; uniform: 1.")
@click.option("--one-sided", is_flag=True, help="Count only the left context (default: symmetric).")
@click.option("--sample", type=float, default=0.0, show_default=True,
              help="Subsample frequent words before forming windows (word2vec formula; 0 = off).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the subsampling.")
@click.option("--threads", type=int, default=None, help="Threads (default: all cores).")
@_corpus_options
@_json_option
@_common
def cooc(corpus, output, force, window, weighting, one_sided, sample, seed, threads, min_count, max_vocab,
         lowercase, token_pattern, max_sentence_length, memory, tmp_dir, as_json, quiet):
    """Count windowed co-occurrences of CORPUS into a CSR matrix in HDF5."""
    from .cooc import cooccurrence
    from .parallel import resolve_threads
    from .store import CoocWriter, check_output
    from .vocab import build_vocab
    check_output(output, force)
    O.check_window(window)
    O.check_sample(sample)
    _check_tmp_dir(tmp_dir)
    threads = resolve_threads(threads)
    budget = O.parse_memory(memory)
    with build_vocab(corpus, min_count=min_count, max_vocab=max_vocab, lowercase=lowercase,
                     token_pattern=token_pattern, max_sentence_length=max_sentence_length, memory=budget,
                     quiet=quiet, encode=True, work_dir=tmp_dir) as enc:
        v = enc.vocab
        attrs = {"window": window, "weighting": weighting, "symmetric": not one_sided, "sample": sample,
                 "seed": seed, "min_count": min_count, "max_vocab": max_vocab or 0, "lowercase": lowercase,
                 "corpus_tokens": v.raw_tokens, "vocab_tokens": enc.n_tokens,
                 "corpus": json.dumps([os.path.abspath(c) if c != "-" else "-" for c in corpus])}
        writer = CoocWriter(output, v.words, v.counts, attrs)
        ok = False
        try:
            stats = cooccurrence(enc, writer, window=window, weighting=weighting, symmetric=not one_sided,
                                 sample=sample, seed=seed, memory=budget, threads=threads, quiet=quiet,
                                 spill_dir=tmp_dir)
            writer.f.attrs["nnz"] = stats["nnz"]
            ok = True
        finally:
            writer.close(ok)
    if as_json:
        click.echo(json.dumps({"output": output, "words": len(v), "tokens": v.raw_tokens, **stats}))
    if not quiet:
        click.echo(f"cooc: {len(v):,} x {len(v):,} matrix, {stats['nnz']:,} nonzeros -> {output}", err=True)


@cli.command()
@click.argument("corpus", nargs=-1)
@_output_option
@click.option("--algo", type=click.Choice(["sgns", "cbow", "glove", "ppmi-svd"]), default="sgns", show_default=True)
@click.option("--cooc", type=click.Path(dir_okay=False), default=None,
              help="glove / ppmi-svd: train on this file from `fastemb cooc` instead of a corpus.")
@click.option("--dim", type=int, default=100, show_default=True, help="Vector dimension.")
@click.option("--window", type=int, default=None, help="Context window [sgns/cbow 5, glove 10, ppmi-svd 2].")
@click.option("--epochs", type=int, default=None, help="Passes over the data [sgns/cbow 5, glove 15].")
@click.option("--alpha", type=float, default=None,
              help="sgns/cbow: initial learning rate [0.025 / 0.05]; glove: weighting exponent [0.75].")
@click.option("--sample", type=float, default=None,
              help="Subsampling threshold of frequent words, 0 = off [sgns/cbow 1e-3, glove/ppmi-svd 0].")
@click.option("--add-contexts/--no-add-contexts", default=None,
              help="Save word + context vectors as the embedding [glove: yes; others: no].")
@click.option("--negative", type=int, default=5, show_default=True, help="sgns/cbow: negatives per positive.")
@click.option("--ns-exponent", type=float, default=0.75, show_default=True,
              help="sgns/cbow: negatives drawn from unigram^ns_exponent.")
@click.option("--min-alpha", type=float, default=None, help="sgns/cbow: final learning rate [alpha * 1e-4].")
@click.option("--cbow-mean/--cbow-sum", default=True, show_default=True,
              help="cbow: hidden layer is the mean or the sum of the context vectors.")
@click.option("--shared-negatives/--per-pair-negatives", default=True, show_default=True,
              help="sgns: draw negatives once per window and share them across its contexts (HogBatch, "
                   "faster), or per (word, context) pair as word2vec.c does.")
@click.option("--init-width", type=float, default=4.0, show_default=True,
              help="sgns/cbow: input vectors start uniform in [-W/dim, W/dim] (word2vec.c: 0.5, gensim: 1.0).")
@click.option("--weighting", type=click.Choice(O.WEIGHTINGS), default=None,
              help="glove/ppmi-svd: distance weighting of the counts [glove harmonic, ppmi-svd dynamic].")
@click.option("--x-max", type=float, default=None,
              help="glove: weighting cutoff [min(100, 98th percentile of the counts)].")
@click.option("--eta", type=float, default=None, help="glove: AdaGrad learning rate [0.05].")
@click.option("--symmetric", is_flag=True, help="glove: one vector and bias per word (w_i·w_j + b_i + b_j).")
@click.option("--cds", type=float, default=None, help="ppmi-svd: context-distribution smoothing [0.75].")
@click.option("--neg", type=float, default=None, help="ppmi-svd: shift PMI by log(neg) [1: no shift].")
@click.option("--eig", type=float, default=None, help="ppmi-svd: eigenvalue weighting p of U·S^p [0.5].")
@click.option("--svd", type=click.Choice(["auto", "arpack", "randomized"]), default=None,
              help="ppmi-svd: SVD solver [auto: randomized above 5,000 words].")
@click.option("--threads", type=int, default=None, help="Threads (default: all cores).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--checkpoint-every", default=None, metavar="N",
              help="Write OUTPUT.ckpt every N epochs (1, 2epochs) or minutes (10min); kept if the run stops.")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue the run saved in this checkpoint (its corpus and settings; other options ignored).")
@_corpus_options
@_json_option
@_common
def train(corpus, output, force, algo, cooc, dim, window, epochs, alpha, sample, add_contexts, negative, ns_exponent,
          min_alpha, cbow_mean, shared_negatives, init_width, weighting, x_max, eta, symmetric, cds, neg, eig, svd,
          threads, seed, checkpoint_every, resume, min_count, max_vocab, lowercase, token_pattern,
          max_sentence_length, memory, tmp_dir, as_json, quiet):
    """Train word vectors on CORPUS (or --cooc FILE) and save them to HDF5."""
    from .store import check_output
    from .train import train as train_fn
    check_output(output, force)
    _check_tmp_dir(tmp_dir)
    checkpoint = output + ".ckpt" if (checkpoint_every or resume) else None
    if resume is not None:
        emb = train_fn(resume=resume, checkpoint=checkpoint, checkpoint_every=checkpoint_every, quiet=quiet,
                       tmp_dir=tmp_dir, threads=threads)
        algo, dim = emb.attrs["algo"], emb.attrs["dim"]
    else:
        if not corpus and cooc is None:
            raise click.UsageError("give a CORPUS (or --cooc FILE for glove and ppmi-svd)")
        emb = train_fn(list(corpus) or None, algo, cooc=cooc, dim=dim, window=window, negative=negative,
                       ns_exponent=ns_exponent, sample=sample, min_count=min_count, max_vocab=max_vocab,
                       epochs=epochs, alpha=alpha, min_alpha=min_alpha, cbow_mean=cbow_mean, threads=threads,
                       seed=seed, shared_negatives=shared_negatives, init_width=init_width,
                       add_contexts=add_contexts, weighting=weighting, x_max=x_max, eta=eta, symmetric=symmetric,
                       cds=cds, neg=neg, eig=eig, svd=svd, lowercase=lowercase, token_pattern=token_pattern,
                       max_sentence_length=max_sentence_length, memory=memory, quiet=quiet, tmp_dir=tmp_dir,
                       checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    emb.save(output)
    if checkpoint and os.path.exists(checkpoint):
        os.remove(checkpoint)  # the finished model supersedes it
    if as_json:
        keys = ("algo", "dim", "epochs", "corpus_tokens", "train_seconds", "total_seconds", "words_per_second",
                "loss")
        click.echo(json.dumps({"output": output, "words": len(emb), **{k: emb.attrs[k] for k in keys
                                                                        if k in emb.attrs}}, default=float))
    if not quiet:
        a = emb.attrs
        speed = f" ({a['words_per_second'] / 1e3:,.0f}k words/s)" if "words_per_second" in a else ""
        loss = f", final loss {a['loss'][-1]:.4f}" if a.get("loss") else ""
        click.echo(f"train: {algo}, {len(emb):,} words x {dim} dims, {a['train_seconds']:.1f}s training{speed}"
                   f"{loss} -> {output}", err=True)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(file, as_json):
    """Describe a fastemb HDF5 file: content, shapes, hyperparameters."""
    from .store import describe
    d = describe(file)
    if as_json:
        click.echo(json.dumps(d, indent=2, default=str))
        return
    datasets = d.pop("datasets")
    click.echo(f"{d.pop('path')}: fastemb {d.pop('content')} (format {d.pop('format_version')})")
    for name, spec in datasets.items():
        click.echo(f"  /{name:24s} {spec['dtype']:10s} {tuple(spec['shape'])}")
    for k in sorted(d):
        if k in ("encoding-type", "encoding-version"):
            continue
        v = d[k]
        if isinstance(v, list) and len(v) > 12:
            v = v[:12] + ["..."]
        click.echo(f"  {k}: {v}")


# ------------------------------------------------------------------------------------ using vectors
def _emb(path, fmt=None):
    from .embeddings import load
    return load(path, fmt)


def _print_table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    click.echo("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.argument("words", nargs=-1, required=True)
@click.option("-k", type=int, default=10, show_default=True, help="Neighbours per word.")
@click.option("--restrict", type=int, default=None, help="Search only the N most frequent words.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def neighbors(vectors, words, k, restrict, as_json):
    """Nearest neighbours (cosine) of each WORD in VECTORS (.h5, word2vec or GloVe file)."""
    O.require(k >= 1, f"-k must be at least 1 (got {k})")
    emb = _emb(vectors)
    results = emb.most_similar(list(words), k=k, restrict=restrict)
    if as_json:
        click.echo(json.dumps({w: [[x, round(s, 6)] for x, s in r] for w, r in zip(words, results)}))
        return
    for w, r in zip(words, results):
        click.echo(f"{w}:")
        _print_table([(i + 1, x, f"{s:.4f}") for i, (x, s) in enumerate(r)], ["rank", "word", "cosine"])


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.argument("a")
@click.argument("b")
@click.argument("c")
@click.option("-k", type=int, default=5, show_default=True)
@click.option("--method", type=click.Choice(["3cosadd", "3cosmul"]), default="3cosadd", show_default=True)
@click.option("--restrict", type=int, default=None, help="Answer among the N most frequent words.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def analogy(vectors, a, b, c, k, method, restrict, as_json):
    """A is to B as C is to ? (question words excluded from the answers)."""
    O.require(k >= 1, f"-k must be at least 1 (got {k})")
    result = _emb(vectors).analogy(a, b, c, k=k, method=method, restrict=restrict)
    if as_json:
        click.echo(json.dumps([[x, round(s, 6)] for x, s in result]))
        return
    click.echo(f"{a} : {b} :: {c} : ?   ({method})")
    _print_table([(i + 1, x, f"{s:.4f}") for i, (x, s) in enumerate(result)], ["rank", "word", "score"])


@cli.command(name="eval")
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.option("--similarity", "similarity_files", multiple=True, type=click.Path(dir_okay=False),
              help="Word-pair similarity file(s) (default: the WordSim-353 and SimLex-999 in corpora/).")
@click.option("--analogy", "analogy_files", multiple=True, type=click.Path(dir_okay=False),
              help="Analogy file(s) in questions-words format (default: corpora/questions-words.txt).")
@click.option("--restrict", type=int, default=30000, show_default=True,
              help="Analogies: candidates and questions among the N most frequent words.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(vectors, similarity_files, analogy_files, restrict, as_json):
    """Word similarity (Spearman) and analogy accuracy (3CosAdd, 3CosMul) of VECTORS."""
    from . import eval as E
    if not similarity_files and not analogy_files:
        similarity_files, analogy_files = E.default_sets()
    emb = _emb(vectors)
    out = {"similarity": [E.similarity(emb, f) for f in similarity_files],
           "analogy": [E.analogy(emb, f, restrict=restrict) for f in analogy_files]}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    if out["similarity"]:
        _print_table([(os.path.basename(r["file"]), f"{r['spearman']:.4f}", f"{r['covered']}/{r['pairs']}",
                       f"{100 * r['coverage']:.1f}%") for r in out["similarity"]],
                     ["similarity", "spearman", "pairs", "coverage"])
    for r in out["analogy"]:
        click.echo("")
        rows = [(name, f"{s['covered']}/{s['questions']}", f"{s['3cosadd']:.4f}", f"{s['3cosmul']:.4f}")
                for name, s in r["sections"].items() if s["covered"]]
        rows.append(("overall", f"{r['covered']}/{r['questions']}", f"{r['3cosadd']:.4f}", f"{r['3cosmul']:.4f}"))
        click.echo(f"{os.path.basename(r['file'])} (top {r['restrict']:,} words, coverage "
                   f"{100 * r['coverage']:.1f}%)")
        _print_table(rows, ["section", "covered", "3cosadd", "3cosmul"])


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@_output_option
@click.option("--format", "fmt", type=click.Choice(["word2vec", "word2vec-binary", "glove"]), required=True)
def export(vectors, output, force, fmt):
    """Write VECTORS as word2vec text/binary or GloVe text (readable by gensim's load_word2vec_format)."""
    from .formats import write_vectors
    from .store import check_output
    check_output(output, force)
    emb = _emb(vectors)
    write_vectors(output, emb.words, emb.vectors, fmt)


@cli.command(name="import")
@click.argument("vectors", type=click.Path(dir_okay=False))
@_output_option
@click.option("--format", "fmt", type=click.Choice(["word2vec", "word2vec-binary", "glove"]), default=None,
              help="Input format (default: guessed from the content).")
def import_cmd(vectors, output, force, fmt):
    """Convert word2vec (text/binary) or GloVe vectors to a fastemb HDF5 file."""
    from .store import check_output
    check_output(output, force)
    emb = _emb(vectors, fmt)
    emb.save(output)


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--lexicon", required=True, type=click.Path(dir_okay=False), help="TSV of source<TAB>target pairs.")
@click.option("--method", type=click.Choice(["gd", "lstsq", "procrustes", "cca"]), default="procrustes",
              show_default=True)
@click.option("--normalize", is_flag=True, help="Unit-length vectors before fitting (and after centring).")
@click.option("--center", is_flag=True, help="Mean-centre each space before fitting.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of source words held out for P@k.")
@click.option("--lr", type=float, default=None, help="gd: learning rate [0.9 / largest Hessian eigenvalue].")
@click.option("--steps", type=int, default=1000, show_default=True, help="gd: gradient steps.")
@click.option("--log-every", type=int, default=50, show_default=True, help="gd: log the loss every N steps.")
@click.option("--csls-k", type=int, default=10, show_default=True)
@click.option("--restrict", type=int, default=None, help="Retrieve among the N most frequent target words.")
@click.option("--translate", "to_translate", multiple=True, help="Print the top translations of this word.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the train/test split.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Save R to this HDF5 file.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="gd: draw the loss curve to this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_common
def align(source, target, lexicon, method, normalize, center, test_fraction, lr, steps, log_every, csls_k,
          restrict, to_translate, seed, output, force, plot_path, as_json, quiet):
    """Learn a translation matrix from SOURCE to TARGET embeddings and report P@1/5/10 (NN and CSLS)."""
    from . import align as A
    from .store import check_output
    if output:
        check_output(output, force)
    if plot_path:
        check_output(plot_path, force)
    O.require(steps >= 1 and log_every >= 1, "--steps and --log-every must be at least 1")
    src, tgt = _emb(source), _emb(target)
    pairs = A.read_lexicon(lexicon)
    usable = [(s, t) for s, t in pairs if s in src.index and t in tgt.index]
    if not usable:
        raise FastembError(f"{lexicon}: none of its {len(pairs)} pairs has both words in the vocabularies")
    train_pairs, test_pairs = A.split_lexicon(usable, test_fraction, seed)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    a = A.fit(src, tgt, train_pairs, method, normalize=normalize, center=center, lr=lr, steps=steps,
              log_every=log_every, log=log)
    result = {"method": method, "normalize": normalize, "center": center, "pairs": len(pairs),
              "usable_pairs": len(usable), "train_pairs": len(train_pairs), "test_pairs": len(test_pairs),
              **A.evaluate(a, src, tgt, test_pairs, csls_k=csls_k, restrict=restrict)}
    if a.loss:
        result["final_loss"] = a.loss[-1][1]
    result["translations"] = {w: A.translate(a, src, tgt, w, k=10, csls_k=csls_k, restrict=restrict)
                              for w in to_translate}
    if output:
        a.save(output)
    if plot_path:
        if not a.loss:
            raise FastembError("--plot draws the loss of --method gd")
        from .plot import draw_loss
        draw_loss(a.loss, plot_path)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{method}{' +normalize' if normalize else ''}{' +center' if center else ''}: "
               f"{len(train_pairs)} training pairs, {result['test_words']} test words")
    _print_table([(r, *(f"{result[f'{r}_p@{k}']:.3f}" for k in (1, 5, 10))) for r in ("nn", "csls")],
                 ["retrieval", "P@1", "P@5", "P@10"])
    for w, cands in result["translations"].items():
        click.echo(f"{w} -> " + ", ".join(f"{x} ({s:.3f})" for x, s in cands))


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@_output_option
@click.option("--words", "words_file", type=click.Path(dir_okay=False), default=None,
              help="Plot the words listed in this file (one per line).")
@click.option("--top", type=int, default=300, show_default=True, help="Otherwise the N most frequent words.")
@click.option("--skip", type=int, default=0, show_default=True, help="Skip the N most frequent words first.")
@click.option("--method", type=click.Choice(["pca", "tsne"]), default="tsne", show_default=True)
@click.option("--perplexity", type=float, default=30.0, show_default=True)
@click.option("--iterations", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@_common
def plot(vectors, output, force, words_file, top, skip, method, perplexity, iterations, seed, quiet):
    """Draw a labelled 2-D map of words (PCA or exact t-SNE) to a PNG."""
    from . import plot as P
    from .store import check_output
    check_output(output, force)
    P._pyplot()
    emb = _emb(vectors)
    if words_file:
        try:
            with open(words_file, encoding="utf-8") as f:
                wanted = [w.strip() for w in f if w.strip()]
        except OSError as e:
            raise FastembError(f"{words_file}: {e.strerror}") from None
        words = [w for w in wanted if w in emb.index]
        if not quiet and len(words) < len(wanted):
            click.echo(f"plot: {len(wanted) - len(words)} of {len(wanted)} words are not in the vocabulary",
                       err=True)
    else:
        O.require(top >= 2, f"--top must be at least 2 (got {top})")
        words = emb.words[skip:skip + top]
    if len(words) < 3:
        raise FastembError("fewer than 3 words to plot")
    X = emb.normalized()[[emb.index[w] for w in words]]
    if method == "pca":
        pts = P.pca_2d(X)
    else:
        pts, kl = P.tsne_2d(X, perplexity=perplexity, iterations=iterations, seed=seed)
        if not quiet:
            click.echo(f"t-SNE: {len(words)} words, KL divergence {kl:.3f}", err=True)
    P.draw_map(pts, words, output, title=f"{os.path.basename(vectors)}: {method.upper()} of {len(words)} words")


def _terminate(signum, frame):
    raise Interrupted("terminated")


def _return_freed_memory_to_the_os():
    """glibc raises its mmap threshold after big frees, keeping later large arrays on the heap where
    freed memory is not returned: fix it at 1 MB so --memory budgets describe the real peak RSS."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    _return_freed_memory_to_the_os()
    try:
        rv = cli.main(args=argv, prog_name="fastemb", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except Interrupted:
        print("fastemb: terminated", file=sys.stderr)
        return 143
    except FastembError as e:
        print(f"fastemb: error: {' '.join(str(e).split())}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        print("fastemb: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except BrokenPipeError:
        return 1
    except MemoryError:
        print("fastemb: error: out of memory (lower --memory, --max-vocab or the dimension)", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, the traceback on request
        if os.environ.get("FASTEMB_DEBUG"):
            raise
        print(f"fastemb: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              f"(set FASTEMB_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


def entry_point():
    sys.exit(main())
