"""The `fastemb` command. Errors are one line on stderr with a documented exit code, never a traceback:
0 success, 1 bad input, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

Options come from the options classes (their defaults, help and checks); this module only renders them.
Importing it loads neither numba nor the kernels: `fastemb --help` is fast.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

import click

from fastemb import registry
from fastemb.cooc import DEFAULT_FOR, CoocOptions
from fastemb.corpus import CorpusOptions
from fastemb.errors import FastembError, Interrupted, OptionError, param
from fastemb.options import RunOptions
from fastemb.phrasing import PhrasesOptions
from fastemb.cli.classify import classify as classify_group
from fastemb.cli.common import (algorithm_options, checkpoint_options, claim_output, counting_options_of, dask_option, echo_json, given, json_option, load_vectors, options_of, output_option, print_table, process_seconds, quiet_option, require, restrict_option, run_options, summary, tmp_dir_option, topn_option)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="fastemb")
def cli():
    """fastemb: fast, streaming word embeddings (SGNS, CBOW, GloVe, PPMI-SVD), a neural language model (NPLM)
    and a fastText-style text classifier (`fastemb classify`)."""


cli.add_command(classify_group)
COUNTING_ALGOS = tuple(a.name for a in registry.all_algorithms() if a.input == "cooc")


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@output_option
@click.option("--format", "fmt", type=click.Choice(["tsv", "glove", "word2vec"]), default="tsv", show_default=True,
              help="tsv: word<TAB>count; glove / word2vec: 'word count' lines (GloVe's vocab.txt, word2vec.c's "
                   "-save-vocab).")
@options_of(CorpusOptions)
@click.option("--threads", type=int, default=None, help="Count local files on this many threads (default: every "
                                                        "core); the vocabulary is the same on any number.")
@dask_option("Count")
@json_option
@quiet_option
def vocab(corpus, output, force, fmt, threads, dask_address, as_json, quiet, **params):
    """Count the words of CORPUS (files, directories, '-' for stdin; .gz/.bz2/.xz), most frequent first."""
    from fastemb.vocab import build_vocab
    options = CorpusOptions(**given(params))
    claim_output(output, force)
    if dask_address is not None:
        from fastemb.dask import cluster_guard, vocabulary
        with cluster_guard(dask_address):
            v = vocabulary(list(corpus), options, client=dask_address)
    else:
        v = build_vocab(corpus, options, threads=threads)
    v.save(output, fmt)
    summary(as_json, {"output": output, "words": len(v), "distinct": v.distinct, "tokens": v.raw_tokens,
                       "vocab_tokens": v.total, "pruned": v.pruned},
             f"vocab: {len(v):,} words (of {v.distinct:,} distinct) covering {v.total:,} of {v.raw_tokens:,} "
             f"tokens -> {output}", quiet)


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@output_option
@click.option("--for", "for_algo", type=click.Choice(list(COUNTING_ALGOS)), default=DEFAULT_FOR, show_default=True,
              help="Count as this algorithm does when it trains on a corpus (its window, weighting and "
                   "subsampling below); `train --cooc` warns when the file was counted otherwise.")
@counting_options_of
@options_of(CorpusOptions)
@run_options
@tmp_dir_option
@dask_option("Count")
@json_option
@quiet_option
def cooc(corpus, output, force, for_algo, seed, threads, tmp_dir, dask_address, as_json, quiet, **params):
    """Count windowed co-occurrences of CORPUS into a CSR matrix in HDF5, with the counting settings of the
    algorithm it is --for (recorded in the file)."""
    from fastemb.cooc import cooccurrence, counting_options
    from fastemb.files import check_work_dir
    from fastemb.options import split_known
    from fastemb.parallel import resolve_threads
    from fastemb.store import CoocWriter, corpus_attr
    from fastemb.vocab import build_vocab
    (cooc_params, corpus_params), _ = split_known(given(params), CoocOptions, CorpusOptions)
    options, copts = counting_options(for_algo, **cooc_params), CorpusOptions(**corpus_params)
    run = RunOptions(**given({"seed": seed, "threads": threads}))
    check_work_dir(tmp_dir)
    claim_output(output, force)
    if dask_address is not None:
        from fastemb.dask import cluster_guard, cooccurrences
        with cluster_guard(dask_address):
            stats = cooccurrences(list(corpus), copts, options, client=dask_address, seed=run.seed, output=output,
                                  force=True, attrs={"counted_for": for_algo})
        summary(as_json, stats,
                 f"cooc: {stats['words']:,} x {stats['words']:,} matrix, {stats['nnz']:,} nonzeros from "
                 f"{stats['shards']} shards on {stats['workers']} workers -> {output}", quiet)
        return
    threads = resolve_threads(run.threads)
    with build_vocab(corpus, copts, encode=True, work_dir=tmp_dir, threads=threads) as enc:
        v = enc.vocab
        attrs = {**options.flat(), **copts.flat(), "counted_for": for_algo, "seed": run.seed, "corpus_tokens": v.raw_tokens,
                 "vocab_tokens": enc.n_tokens,
                 "corpus": corpus_attr(corpus)}
        writer = CoocWriter(output, v.words, v.counts, attrs)
        ok = False
        try:
            stats = cooccurrence(enc, writer, options, seed=run.seed, memory=copts.memory_bytes, threads=threads,
                                 spill_dir=tmp_dir)
            writer.f.attrs["nnz"] = stats["nnz"]
            ok = True
        finally:
            writer.close(ok)
    summary(as_json, {"output": output, "words": len(v), "tokens": v.raw_tokens, **stats},
             f"cooc: {len(v):,} x {len(v):,} matrix, {stats['nnz']:,} nonzeros -> {output}", quiet)


class AlgoHelpCommand(click.Command):
    """`fastemb train --algo X --help` lists X's options only (and the options every algorithm shares)."""

    def parse_args(self, ctx, args):
        for i, a in enumerate(args):
            if a == "--algo" and i + 1 < len(args):
                ctx.meta["help_algo"] = args[i + 1]
            elif a.startswith("--algo="):
                ctx.meta["help_algo"] = a.split("=", 1)[1]
        return super().parse_args(ctx, args)

    def get_params(self, ctx):
        params = super().get_params(ctx)
        algo = ctx.meta.get("help_algo")
        if algo not in registry.names() or not ctx.meta.get("showing_help"):
            return params
        own = set(registry.get(algo).options.specs())
        others = {n for a in registry.all_algorithms() for n in a.options.specs()} - own
        return [p for p in params if p.name not in others]

    def get_help(self, ctx):
        ctx.meta["showing_help"] = True
        return super().get_help(ctx)


@cli.command(cls=AlgoHelpCommand,
             epilog="Give --algo with --help to list that algorithm's options only (fastemb train --algo glove "
                    "--help).")
@click.argument("corpus", nargs=-1)
@output_option
@click.option("--algo", type=click.Choice(list(registry.names())), default=None,
              help="Algorithm. [default: sgns]")
@click.option("--cooc", type=click.Path(dir_okay=False), default=None,
              help="glove / ppmi-svd: train on this file from `fastemb cooc` instead of a corpus.")
@algorithm_options
@options_of(CorpusOptions)
@run_options
@checkpoint_options("corpus", "--threads, --memory")
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="sgns/cbow: train this model further on CORPUS (its vectors, context vectors and options; "
                   "its vocabulary is kept: other words are skipped).")
@click.option("--update-vocab", is_flag=True, default=None,
              help="With --init: add the corpus's new words (min-count applies) to the vocabulary.")
@tmp_dir_option
@dask_option("glove / ppmi-svd: count the co-occurrences (and factor them, for ppmi-svd)")
@json_option
@quiet_option
def train(corpus, output, force, algo, cooc, seed, threads, checkpoint_every, resume, init, update_vocab, tmp_dir,
          dask_address, as_json, quiet, **params):
    """Train word vectors on CORPUS (or --cooc FILE) and save them to HDF5.

    Options of another algorithm than --algo are refused; each option lists its default per algorithm."""
    from fastemb.training import train as train_fn
    startup = process_seconds()  # interpreter, imports, option parsing: before any corpus work
    emb = train_fn(list(corpus) or None, algo, cooc=cooc, seed=seed, threads=threads, output=output, force=force,
                   checkpoint_every=checkpoint_every, resume=resume, tmp_dir=tmp_dir, init=init,
                   update_vocab=bool(update_vocab), client=dask_address, **given(params))
    a = emb.attrs
    keys = ("algo", "dim", "epochs", "epochs_trained", "corpus_tokens", "train_seconds", "total_seconds",
            "words_per_second", "loss", "read_seconds", "encode_seconds", "write_seconds")
    speed = f" ({a['words_per_second'] / 1e3:,.0f}k words/s)" if "words_per_second" in a else ""
    loss = f", final loss {a['loss'][-1]:.4f}" if a.get("loss") else ""
    summary(as_json, {"output": output, "words": len(emb), **{k: a[k] for k in keys if k in a},
                      **({"startup_seconds": startup} if startup is not None else {})},
             f"train: {a['algo']}, {len(emb):,} words x {emb.dim} dims, {a['train_seconds']:.1f}s training"
             f"{speed}{loss} -> {output}", quiet)


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@output_option
@click.option("--table", "table_path", type=click.Path(dir_okay=False), default=None,
              help="Save the learned phrase table here. [default: OUTPUT.phrases.tsv]")
@click.option("--apply", "apply_path", type=click.Path(dir_okay=False), default=None,
              help="Apply this phrase table (from an earlier run) instead of learning one.")
@options_of(PhrasesOptions, CorpusOptions)
@json_option
@quiet_option
def phrases(corpus, output, force, table_path, apply_path, as_json, quiet, **params):
    """Join phrases of CORPUS ("new york" -> "new_york"; gensim's Phrases, word2vec's word2phrase) into OUTPUT.

    Learns a phrase table (saved with --table) and writes the corpus phrased, one sentence per line; with
    --apply TABLE, applies a saved table instead. `fastemb train --phrases TABLE` joins them while reading."""
    from fastemb.phrasing import phrases as phrases_fn
    p = given(params)
    for name in ("phrases", "max_vocab"):
        require(name not in p, name, "does not apply to `fastemb phrases` (to apply a table, use --apply)")
    claim_output(output, force)
    if apply_path is None:
        table_path = table_path or output + ".phrases.tsv"
        claim_output(table_path, force)
    elif table_path is not None:
        raise OptionError("table", "is for learning a table: with --apply no table is written")
    t = phrases_fn(list(corpus), output, table=table_path, apply=apply_path, force=True, **p)
    counts = [len(x) for x in t.passes]
    summary(as_json, {"output": output, "table": table_path or apply_path, "phrases": counts,
                      "words": [x.words for x in t.passes]},
            (f"phrases: applied {apply_path} ({sum(counts):,} phrases) -> {output}" if apply_path else
             f"phrases: {' + '.join(f'{c:,}' for c in counts)} phrases in {t.passes[0].words:,} tokens -> "
             f"{output} (table: {table_path})"), quiet)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@quiet_option
def info(file, as_json, quiet):
    """Describe a fastemb HDF5 file: content, shapes, hyperparameters."""
    from fastemb.store import describe
    d = describe(file)
    if as_json:
        echo_json(d, indent=2)
        return
    datasets = d.pop("datasets")
    click.echo(f"{d.pop('path')}: fastemb {d.pop('content')} (format {d.pop('format_version')})")
    for name, spec in datasets.items():
        click.echo(f"  /{name:24s} {spec['dtype']:10s} {tuple(spec['shape'])}")
    for k in sorted(d):
        if k in ("encoding-type", "encoding-version", "options"):
            continue
        v = d[k]
        if isinstance(v, list) and len(v) > 12:
            v = v[:12] + ["..."]
        click.echo(f"  {k}: {v}")


@cli.command()
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False))
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@json_option
@quiet_option
def clean(directories, dry_run, as_json, quiet):
    """Remove what fastemb runs that are no longer running left behind: work directories (fastemb-PID-*) and
    partial outputs (.NAME.PID.*.part) in DIRECTORIES (default: the temporary directory and the current one).
    Every run also does this in the directories it uses."""
    import tempfile
    from fastemb.files import clean_stale, stale_entries
    dirs = list(directories) or [tempfile.gettempdir(), os.getcwd()]
    for d in dirs:
        if not os.path.isdir(d):
            raise FastembError(f"{d}: not a directory")
    found = [p for d in dirs for p in (stale_entries(d) if dry_run else clean_stale(d))]
    if as_json:
        echo_json({"removed" if not dry_run else "stale": found})
    if not quiet:
        for p in found:
            click.echo(("would remove " if dry_run else "removed ") + p, err=True)
        click.echo(f"clean: {len(found)} {'stale ' if dry_run else ''}entr{'y' if len(found) == 1 else 'ies'}"
                   f"{' found' if dry_run else ' removed'}", err=True)


# ------------------------------------------------------------------------------------ using vectors
@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.argument("words", nargs=-1, required=True)
@topn_option(10)
@restrict_option("Search only the N most frequent words.")
@json_option
@quiet_option
def neighbors(vectors, words, topn, restrict_vocab, as_json, quiet):
    """Nearest neighbours (cosine) of each WORD in VECTORS (.h5, fastText .bin, word2vec or GloVe file). A
    subword model (--maxn, or a fastText .bin) also answers words outside its vocabulary from their character
    n-grams. Words without a vector are reported after the others' answers (exit 1)."""
    require(topn >= 1, "topn", f"must be at least 1 (got {topn})")
    emb = load_vectors(vectors)
    known = [w for w in words if emb.has_vector(w)]
    unknown = [w for w in words if not emb.has_vector(w)]
    results = dict(zip(known, emb.most_similar_batch(known, topn=topn, restrict_vocab=restrict_vocab)))
    if as_json:
        echo_json({w: [[x, round(s, 6)] for x, s in results[w]] if w in results else None for w in words})
    else:
        for w in known:
            click.echo(f"{w}:")
            print_table([(i + 1, x, f"{s:.4f}") for i, (x, s) in enumerate(results[w])], ["rank", "word", "cosine"])
    if unknown:
        what = "no known character n-gram" if emb.subwords is not None else "not in vocabulary"
        raise FastembError(f"{what} ({vectors}): {', '.join(unknown)}")


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.argument("a")
@click.argument("b")
@click.argument("c")
@topn_option(5)
@click.option("--method", type=click.Choice(["3cosadd", "3cosmul"]), default="3cosadd", show_default=True)
@restrict_option("Answer among the N most frequent words.")
@json_option
@quiet_option
def analogy(vectors, a, b, c, topn, method, restrict_vocab, as_json, quiet):
    """A is to B as C is to ? (the question words are never answers)."""
    require(topn >= 1, "topn", f"must be at least 1 (got {topn})")
    result = load_vectors(vectors).analogy(a, b, c, topn=topn, method=method, restrict_vocab=restrict_vocab)
    if as_json:
        echo_json([[x, round(s, 6)] for x, s in result])
        return
    click.echo(f"{a} : {b} :: {c} : ?   ({method})")
    print_table([(i + 1, x, f"{s:.4f}") for i, (x, s) in enumerate(result)], ["rank", "word", "score"])


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("words", nargs=-1, required=True)
@topn_option(10)
@click.option("--skip-unknown", is_flag=True,
              help="Drop words outside the vocabulary from WORDS (as training dropped them) instead of failing.")
@json_option
@quiet_option
def predict(model, words, topn, skip_unknown, as_json, quiet):
    """The most probable next words after WORDS (one quoted text or several words) under a language model
    (--algo nplm), with their probabilities.

    The last --context words are the context; fewer are taken as the start of a sentence."""
    from fastemb.models.nplm import LanguageModel
    require(topn >= 1, "topn", f"must be at least 1 (got {topn})")
    lm = LanguageModel.load(model)
    text = " ".join(words)
    unknown = [w for w in lm.tokens(text) if w not in lm.emb.index]
    if unknown and not skip_unknown:
        raise FastembError(f"not in the vocabulary of {model}: {', '.join(dict.fromkeys(unknown))} "
                           f"({param('skip_unknown')} drops them)")
    result = lm.predict(text, k=topn, skip_unknown=True)
    if as_json:
        echo_json({"context": [lm.words[i] if i < lm.V else "<s>" for i in lm.context_ids(text, True)],
                    "predictions": [[w, p] for w, p in result]})
        return
    context = " ".join(lm.words[i] if i < lm.V else "<s>" for i in lm.context_ids(text, True))
    click.echo(f"{context} ...")
    print_table([(i + 1, w, f"{p:.4f}") for i, (w, p) in enumerate(result)], ["rank", "word", "probability"])


@cli.command(name="eval")
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.option("--similarity", "similarity_files", multiple=True, type=click.Path(dir_okay=False),
              help="Word-pair similarity file(s) (default: the WordSim-353 and SimLex-999 fastemb ships).")
@click.option("--analogy", "analogy_files", multiple=True, type=click.Path(dir_okay=False),
              help="Analogy file(s) in questions-words format (default: Google's, shipped).")
@restrict_option("Analogies: candidates and questions among the N most frequent words.", 30000)
@click.option("--text", "text_files", multiple=True, type=click.Path(dir_okay=False),
              help="Language models (--algo nplm): the perplexity of this held-out text (read as the training corpus "
                   "was; words outside the vocabulary are dropped and the coverage reported). Alone, it replaces "
                   "the default similarity and analogy sets.")
@click.option("--eos", is_flag=True,
              help="--text: score the end of each line as the word </s> (the model must have been trained on lines "
                   "ending with ' </s>'); without it the end of a sentence is not an event.")
@click.option("--unk", default=None, metavar="WORD",
              help="--text: score words outside the vocabulary as WORD (the model's unknown word) instead of "
                   "dropping them.")
@click.option("--per-token", "per_token", type=click.Path(dir_okay=False), default=None,
              help="--text (one file): write each scored event as 'sentence<TAB>word<TAB>log10 P' to this file.")
@click.option("--mix", "mix_arpa", type=click.Path(dir_okay=False), default=None, metavar="ARPA",
              help="--text: also score the text with this ARPA n-gram model (KenLM's lmplz, SRILM) and the "
                   "interpolation of the two (implies --eos).")
@click.option("--mix-valid", "mix_valid", type=click.Path(dir_okay=False), default=None,
              help="--mix: choose the mixture weight on this validation text (maximum likelihood, EM).")
@click.option("--mix-weight", "mix_weight", type=float, default=None,
              help="--mix: the language model's weight λ in λ·P_nplm + (1 − λ)·P_ngram (instead of --mix-valid).")
@json_option
@quiet_option
def eval_cmd(vectors, similarity_files, analogy_files, restrict_vocab, text_files, eos, unk, per_token, mix_arpa,
             mix_valid, mix_weight, as_json, quiet):
    """Word similarity (Spearman) and analogy accuracy (3CosAdd, 3CosMul) of VECTORS; the held-out perplexity of
    a language model (--text)."""
    from fastemb import eval as E
    from fastemb.files import check_readable
    require(restrict_vocab >= 1, "restrict_vocab", f"must be at least 1 (got {restrict_vocab})")
    if not similarity_files and not analogy_files and not text_files:
        similarity_files, analogy_files = E.default_sets()
    emb = load_vectors(vectors)
    lm = None
    if text_files:
        from fastemb.files import check_readable
        from fastemb.models.nplm import LanguageModel
        for f in text_files:
            check_readable(f, "text")
        if emb.attrs.get("algo") != "nplm":
            raise FastembError(f"{param('text')} measures the perplexity of a language model (--algo nplm); "
                               f"{vectors} holds {emb.attrs.get('algo', 'other')} vectors")
        lm = LanguageModel(emb, vectors)
    out = {"similarity": [E.similarity(emb, f) for f in similarity_files],
           "analogy": [E.analogy(emb, f, restrict_vocab=restrict_vocab) for f in analogy_files]}
    lm_options = eos or unk is not None or per_token or mix_arpa
    if not text_files and (lm_options or mix_valid or mix_weight is not None):
        raise FastembError(f"{param('eos')}, {param('unk')}, {param('per_token')} and {param('mix')} need "
                           f"{param('text')}")
    if per_token and len(text_files) != 1:
        raise OptionError("per_token", f"writes the events of one --text file (got {len(text_files)})")
    if (mix_valid or mix_weight is not None) and not mix_arpa:
        raise OptionError("mix", f"{param('mix_valid')} and {param('mix_weight')} need {param('mix')} ARPA")
    if mix_arpa and (mix_valid is None) == (mix_weight is None):
        raise OptionError("mix", f"give one of {param('mix_valid')} TEXT or {param('mix_weight')} W")
    if mix_weight is not None:
        require(0 <= mix_weight <= 1, "mix_weight", f"must be between 0 and 1 (got {mix_weight})")
    if mix_valid:
        check_readable(mix_valid, "text")
    arpa = None
    if mix_arpa:
        from fastemb.arpa import ArpaModel
        arpa = ArpaModel.load(mix_arpa)
    if lm is not None:
        rows = []
        for f in text_files:
            if not lm_options:
                r = lm.score(f)
                rows.append({"file": f, **r, "eos": False, "unknown_rate": 1 - r["coverage"]})
                continue
            r = lm.score_events(f, eos=eos or bool(mix_arpa), unk=unk)
            if per_token:
                lm.write_per_token(r, per_token)
            r = {k: v for k, v in r.items() if k not in ("log_probs", "ids", "sentence")}
            if arpa is not None:
                from fastemb.arpa import interpolate
                m = interpolate(lm, arpa, f, valid=mix_valid, weight=mix_weight, unk=unk)
                r["mix"] = {k: v for k, v in m.items() if k != "log_probs"}
            rows.append({"file": f, **r})
        out["perplexity"] = rows
    if as_json:
        echo_json(out, indent=1)
        return
    if lm is not None:
        print_table([(os.path.basename(r["file"]), f"{r['perplexity']:.2f}", f"{r['tokens']:,}",
                      f"{100 * r['coverage']:.1f}%", "yes" if r["eos"] else "no", f"{100 * r['unknown_rate']:.2f}%",
                      "as " + r["unk"] if r.get("unk") else "dropped")
                     for r in out["perplexity"]],
                    ["text", "perplexity", "tokens", "coverage", "end of sentence scored", "unknown words",
                     "unknown scored"])
        for r in out["perplexity"]:
            if "mix" in r:
                m = r["mix"]
                click.echo("")
                print_table([("nplm", f"{m['nplm']:.2f}"), (f"{m['order']}-gram (ARPA)", f"{m['ngram']:.2f}"),
                             (f"mixture, weight {m['weight']:.3f}", f"{m['mixture']:.2f}")],
                            [f"{os.path.basename(r['file'])} (with </s>)", "perplexity"])
    if out["similarity"]:
        print_table([(os.path.basename(r["file"]), f"{r['spearman']:.4f}", f"{r['covered']}/{r['pairs']}",
                       f"{100 * r['coverage']:.1f}%") for r in out["similarity"]],
                     ["similarity", "spearman", "pairs", "coverage"])
    for r in out["analogy"]:
        click.echo("")
        rows = [(name, f"{s['covered']}/{s['questions']}", f"{s['3cosadd']:.4f}", f"{s['3cosmul']:.4f}")
                for name, s in r["sections"].items() if s["covered"]]
        rows.append(("overall", f"{r['covered']}/{r['questions']}", f"{r['3cosadd']:.4f}", f"{r['3cosmul']:.4f}"))
        click.echo(f"{os.path.basename(r['file'])} (top {r['restrict_vocab']:,} words, coverage "
                   f"{100 * r['coverage']:.1f}%)")
        print_table(rows, ["section", "covered", "3cosadd", "3cosmul"])


VECTOR_FORMATS = ["word2vec", "word2vec-binary", "glove"]
IMPORT_FORMATS = VECTOR_FORMATS + ["fasttext"]


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@output_option
@click.option("--format", "fmt", type=click.Choice(VECTOR_FORMATS), required=True)
@click.option("--vocab/--no-vocab", "with_vocab", default=True, show_default=True,
              help="Also write the word counts to OUTPUT.vocab (word2vec.c's -save-vocab format), when known.")
@json_option
@quiet_option
def export(vectors, output, force, fmt, with_vocab, as_json, quiet):
    """Write VECTORS as word2vec text/binary or GloVe text (gensim's load_word2vec_format reads them), and
    their counts beside them."""
    from fastemb.formats import write_vectors, write_vocab_counts
    claim_output(output, force)
    emb = load_vectors(vectors)
    sidecar = f"{output}.vocab" if with_vocab and emb.counts.any() else None
    if sidecar is not None:
        claim_output(sidecar, force)  # every file written beside the output obeys --force like the output
    write_vectors(output, emb.words, emb.vectors, fmt)
    if sidecar is not None:
        write_vocab_counts(sidecar, emb.words, emb.counts)
    summary(as_json, {"output": output, "format": fmt, "words": len(emb), "dim": emb.dim, "vocab": sidecar},
             f"export: {len(emb):,} words x {emb.dim} -> {output}" + (f" (counts: {sidecar})" if sidecar else ""),
             quiet)


@cli.command(name="import")
@click.argument("vectors", type=click.Path(dir_okay=False))
@output_option
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), default=None,
              help="Input format (default: guessed from the content); fasttext: a fastText .bin model.")
@click.option("--vocab", "vocab_file", type=click.Path(dir_okay=False), default=None,
              help="Word counts ('word count' lines; default: VECTORS.vocab when it exists).")
@json_option
@quiet_option
def import_cmd(vectors, output, force, fmt, vocab_file, as_json, quiet):
    """Convert word2vec (text/binary) or GloVe vectors, or a fastText .bin model (with its n-gram vectors), to
    a fastemb HDF5 file, with their counts."""
    claim_output(output, force)
    emb = load_vectors(vectors, fmt, vocab_file)
    emb.save(output, "hdf5", overwrite=True)
    summary(as_json, {"output": output, "words": len(emb), "dim": emb.dim, "counts": bool(emb.counts.any())},
             f"import: {len(emb):,} words x {emb.dim} -> {output}", quiet)


ALIGN_METHODS = ["gd", "lstsq", "procrustes", "cca", "vecmap"]


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--lexicon", required=True, type=click.Path(dir_okay=False), help="TSV of source<TAB>target pairs.")
@click.option("--test-lexicon", type=click.Path(dir_okay=False), default=None,
              help="Evaluate on these pairs, training on all of --lexicon (otherwise --test-fraction of it is "
                   "held out).")
@click.option("--method", type=click.Choice(ALIGN_METHODS), default="procrustes", show_default=True,
              help="vecmap: Artetxe et al. 2018's whitening, orthogonal mapping, re-weighting, de-whitening "
                   "(implies --normalize --center).")
@click.option("--refine", type=int, default=0, show_default=True,
              help="Self-learning rounds: re-induce the dictionary from the mapped spaces (CSLS nearest neighbours"
                   " among the --refine-vocab most frequent words) and fit again.")
@click.option("--refine-vocab", type=int, default=20000, show_default=True)
@click.option("--direction", type=click.Choice(["union", "mutual", "forward", "backward"]), default="union",
              show_default=True, help="--refine: how the dictionary is induced (union: VecMap; mutual: MUSE).")
@click.option("--normalize", is_flag=True, help="Unit-length vectors before fitting (and after centring).")
@click.option("--center", is_flag=True, help="Mean-centre each space before fitting.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of source words held out for P@k.")
@click.option("--lr", type=float, default=None, help="gd: learning rate [0.9 / largest Hessian eigenvalue].")
@click.option("--steps", type=int, default=1000, show_default=True, help="gd: gradient steps.")
@click.option("--log-every", type=int, default=50, show_default=True, help="gd: log the loss every N steps.")
@click.option("--csls-k", type=int, default=10, show_default=True)
@restrict_option("Retrieve among the N most frequent target words.")
@click.option("--translate", "to_translate", multiple=True, help="Print the top translations of this word.")
@click.option("--retrieval", type=click.Choice(["csls", "nn"]), default="csls", show_default=True,
              help="--translate: rank by CSLS or by cosine (the score printed is the one ranked by).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the train/test split.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Save R to this HDF5 file.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="gd: draw the loss curve to this PNG.")
@json_option
@quiet_option
def align(source, target, lexicon, test_lexicon, method, refine, refine_vocab, direction, normalize, center,
          test_fraction, lr, steps, log_every, csls_k, restrict_vocab, to_translate, retrieval, seed, output, force,
          plot_path, as_json, quiet):
    """Learn a translation matrix from SOURCE to TARGET embeddings and report P@1/5/10 (NN and CSLS)."""
    from fastemb import align as A
    require(csls_k >= 1, "csls_k", f"must be at least 1 (got {csls_k})")
    require(restrict_vocab is None or restrict_vocab >= 1, "restrict_vocab",
             f"must be at least 1 (got {restrict_vocab})")
    require(lr is None or lr > 0, "lr", f"must be positive (got {lr})")
    require(0 < test_fraction < 1, "test_fraction", f"must be between 0 and 1 (got {test_fraction})")
    require(steps >= 1, "steps", f"must be at least 1 (got {steps})")
    require(log_every >= 1, "log_every", f"must be at least 1 (got {log_every})")
    require(plot_path is None or method == "gd", "plot", f"draws the loss of {param('method')} gd "
                                                          f"(not {method})")
    require(lr is None or method == "gd", "lr", f"applies to {param('method')} gd (not {method})")
    require(refine >= 0, "refine", f"must be 0 or more rounds (got {refine})")
    require(refine_vocab >= 1, "refine_vocab", f"must be at least 1 (got {refine_vocab})")
    require(not (refine and method == "gd"), "refine", f"does not combine with {param('method')} gd")
    if plot_path:
        from fastemb.plot import pyplot
        pyplot()  # matplotlib missing: one line before any work
    if output:
        claim_output(output, force)
    if plot_path:
        claim_output(plot_path, force)
    src, tgt = load_vectors(source), load_vectors(target)
    pairs = A.read_lexicon(lexicon)
    usable = [(s, t) for s, t in pairs if s in src.index and t in tgt.index]
    if not usable:
        raise FastembError(f"{lexicon}: none of its {len(pairs)} pairs has both words in the vocabularies")
    missing = [w for w in to_translate if w not in src]
    if missing:
        raise FastembError(f"{param('translate')}: not in the vocabulary of {source}: {', '.join(missing)}")
    if test_lexicon is not None:
        train_pairs, test_pairs = usable, A.read_lexicon(test_lexicon)
    else:
        train_pairs, test_pairs = A.split_lexicon(usable, test_fraction, seed)
    from fastemb.progress import log as logger
    if refine:
        a = A.refine(src, tgt, train_pairs, refine, method, vocab=refine_vocab, csls_k=csls_k, direction=direction,
                     normalize=normalize, center=center, log=logger.info)
    else:
        a = A.fit(src, tgt, train_pairs, method, normalize=normalize, center=center, lr=lr, steps=steps,
                  log_every=log_every, log=logger.info)
    result = {"method": method, "normalize": normalize, "center": center, "pairs": len(pairs),
              "usable_pairs": len(usable), "train_pairs": len(train_pairs), "test_pairs": len(test_pairs),
              **A.evaluate(a, src, tgt, test_pairs, csls_k=csls_k, restrict_vocab=restrict_vocab)}
    if a.loss:
        result["final_loss"] = a.loss[-1][1]
    if a.refinement:
        result["refinement"] = [{"round": int(r), "objective": o, "pairs": int(n)} for r, o, n in a.refinement]
    result["retrieval"] = retrieval
    result["translations"] = {w: A.translate(a, src, tgt, w, k=10, method=retrieval, csls_k=csls_k,
                                             restrict_vocab=restrict_vocab) for w in to_translate}
    if output:
        a.save(output)
    if plot_path:
        from fastemb.plot import draw_loss
        draw_loss(a.loss, plot_path)
    if as_json:
        echo_json(result, indent=1)
        return
    click.echo(f"{method}{' +normalize' if normalize else ''}{' +center' if center else ''}"
               f"{f' +refine {len(a.refinement)} rounds' if a.refinement else ''}: "
               f"{len(train_pairs)} training pairs, {result['test_words']} test words")
    print_table([(r, *(f"{result[f'{r}_p@{k}']:.3f}" for k in (1, 5, 10))) for r in ("nn", "csls")],
                 ["retrieval", "P@1", "P@5", "P@10"])
    for w, cands in result["translations"].items():
        click.echo(f"{w} -> ({'CSLS score' if retrieval == 'csls' else 'cosine'}) "
                   + ", ".join(f"{x} ({s:.3f})" for x, s in cands))


@cli.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@output_option
@click.option("--words", "words_file", type=click.Path(dir_okay=False), default=None,
              help="Plot the words listed in this file (one per line).")
@click.option("--top", type=int, default=300, show_default=True,
              help="Otherwise the N most frequent words that contain a letter or digit.")
@click.option("--skip", type=int, default=0, show_default=True, help="Skip the N most frequent words first.")
@click.option("--method", type=click.Choice(["pca", "tsne"]), default="tsne", show_default=True)
@click.option("--perplexity", type=float, default=30.0, show_default=True)
@click.option("--iterations", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@json_option
@quiet_option
def plot(vectors, output, force, words_file, top, skip, method, perplexity, iterations, seed, as_json, quiet):
    """Draw a labelled 2-D map of words (PCA or exact t-SNE) to a PNG."""
    from fastemb import plot as P
    from fastemb.progress import log as logger
    require(perplexity > 0, "perplexity", f"must be positive (got {perplexity})")
    require(iterations >= 1, "iterations", f"must be at least 1 (got {iterations})")
    require(skip >= 0, "skip", f"must be 0 or more (got {skip})")
    require(2 <= top <= P.MAX_MAP_WORDS, "top", f"must be 2 to {P.MAX_MAP_WORDS:,} (got {top:,}): more labels do "
                                                 f"not fit on one map")
    claim_output(output, force)
    P.pyplot()
    emb = load_vectors(vectors)
    if words_file:
        from fastemb.files import read_text_lines
        wanted = [w.strip() for _, w in read_text_lines(words_file, "word list") if w.strip()]
        words = [w for w in wanted if w in emb.index]
        if len(words) < len(wanted):
            logger.warning(f"plot: {len(wanted) - len(words)} of {len(wanted)} words are not in the vocabulary")
    else:
        words = P.default_words(emb.words, top, skip)
    info = P.word_map(emb, words, output, method=method, perplexity=perplexity, iterations=iterations, seed=seed,
                      title=os.path.basename(vectors))
    summary(as_json, {"output": output, "words": len(words), "method": method, **info},
             f"plot: {len(words)} words ({method}) -> {output}", quiet)




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


def _flags() -> dict:
    """API parameter name -> how the CLI spells it, from every command's declared parameters."""
    flags = {}
    commands = list(cli.commands.values())
    for command in commands:
        commands.extend(getattr(command, "commands", {}).values())  # a group's commands (classify train ...)
        for p in command.params:
            if isinstance(p, click.Argument):
                flags.setdefault(p.name, p.human_readable_name.upper())
            else:
                flags.setdefault(p.name, "/".join(sorted(p.opts, key=len)))
    flags["client"] = "--dask"  # the API's Dask client is the CLI's scheduler address
    return flags


def _configure_logging():
    """Log lines (and, in a terminal, progress bars) on stderr, parameters named as flags; a command's
    --quiet (see quiet_option) leaves only errors."""
    from fastemb.progress import PARAM_NAMES, bars_possible, log, set_bars, stderr_handler
    for h in list(log.handlers):
        if not isinstance(h, logging.NullHandler):
            log.removeHandler(h)
    log.addHandler(stderr_handler(logging.INFO))
    log.setLevel(logging.INFO)
    log.propagate = False
    PARAM_NAMES.flags = _flags()
    set_bars(bars_possible())


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    _return_freed_memory_to_the_os()
    _configure_logging()
    try:
        rv = cli.main(args=argv, prog_name="fastemb", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except Interrupted:
        print("fastemb: terminated", file=sys.stderr)
        return 143
    except FastembError as e:
        print(f"fastemb: error: {' '.join(e.render(_flags()).split())}", file=sys.stderr)
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
