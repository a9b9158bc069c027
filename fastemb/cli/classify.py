"""`fastemb classify train|predict|test`: the text classifier's commands (fastemb.models.classify), a click group
that fastemb.cli.main attaches to `fastemb`. They follow the other commands' conventions: options from the options
class, --json, --quiet, --force, -o, and errors as one line (cli.main)."""
from __future__ import annotations

import math

import click

from fastemb.models.classify import ClassifierOptions
from fastemb.cli.common import (checkpoint_options, echo_json, given, json_option, output_option, print_table,
                                printable, quiet_option, require, summary, tmp_dir_option, topn_option, options_of)

CONFUSION_MAX_LABELS = 20  # wider matrices are left to --json


@click.group()
def classify():
    """Text classification: an embedding bag of words (and word n-grams) with a softmax, fastText's supervised
    mode. Labelled text is fastText's format: one document a line, its labels the tokens that start with
    __label__ (--label-prefix), anywhere in the line."""


@classify.command("train")
@click.argument("data", required=False)
@output_option
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="Start the words it knows from these vectors (a fastemb .h5, word2vec or GloVe file); its "
                   "dimension is used.")
@options_of(ClassifierOptions)
@checkpoint_options("data", "--threads")
@tmp_dir_option
@json_option
@quiet_option
def train_cmd(data, output, force, init, checkpoint_every, resume, tmp_dir, as_json, quiet, **params):
    """Train a classifier on DATA (a labelled text file, '-' for stdin; .gz/.bz2/.xz) and save it to HDF5."""
    from fastemb.models.classify import train
    clf = train(data, init=init, output=output, force=force, tmp_dir=tmp_dir, checkpoint_every=checkpoint_every,
                resume=resume, **given(params))
    a = clf.attrs
    result = {"output": output, "examples": a["examples"], "labels": len(clf.labels), "words": len(clf.words),
               "dim": clf.dim, "ngrams": clf.options.ngrams, "epochs": clf.options.epochs,
               "train_seconds": a["train_seconds"], "total_seconds": a["total_seconds"],
               "examples_per_second": a["examples_per_second"], "loss": a["loss"],
               "skipped_no_text": a["skipped_no_text"], "skipped_no_label": a["skipped_no_label"]}
    summary(as_json, result,
             f"classify train: {a['examples']:,} examples, {len(clf.labels)} labels, {len(clf.words):,} words, "
             f"{clf.options.epochs} epochs in {a['train_seconds']:.2f}s ({a['examples_per_second'] / 1e3:,.0f}k "
             f"examples/s; {a['total_seconds']:.2f}s in all), final loss {a['loss'][-1]:.4f} -> {output}", quiet)


def _stdin_lines():
    from fastemb.models.classify import text_lines
    return list(text_lines("-"))


@classify.command("predict")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("texts", nargs=-1, required=True)
@topn_option(1)
@json_option
@quiet_option
def predict_cmd(model, texts, topn, as_json, quiet):
    """The most probable labels of each TEXT ('-': every line of stdin) by MODEL, with their probabilities:
    one line per text, 'label probability' pairs, the labels as written in the data (__label__NAME), as
    fastText prints them. A text without a known word gets the labels' prior, with a warning."""
    from fastemb.models.classify import Classifier
    require(topn >= 1, "topn", f"must be at least 1 (got {topn})")
    clf = Classifier.load(model)
    lines = []
    for t in texts:
        lines.extend(_stdin_lines() if t == "-" else [t])
    labels, probs = clf.predict(lines, k=topn)
    prefix = clf.options.label_prefix  # labels as written in the data, as fastText prints them
    if as_json:
        echo_json([{"text": t, "labels": [prefix + x for x in ls], "probabilities": [round(float(p), 6) for p in ps]}
                    for t, ls, ps in zip(lines, labels, probs)])
        return
    for ls, ps in zip(labels, probs):
        click.echo(" ".join(f"{printable(prefix + x)} {p:.4f}" for x, p in zip(ls, ps)))


def _fmt(x):
    return "-" if math.isnan(x) else f"{x:.4f}"


@classify.command("test")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data")
@topn_option(1)
@tmp_dir_option
@json_option
@quiet_option
def test_cmd(model, data, topn, tmp_dir, as_json, quiet):
    """Evaluate MODEL on DATA (labelled text, '-' for stdin): N, accuracy (precision@1; a line is right when
    the top label is one of its labels), precision@k and recall@k with -k, per-label precision/recall/F1 and
    the confusion matrix (rows: true labels, columns: predicted)."""
    from fastemb.models.classify import Classifier
    require(topn >= 1, "topn", f"must be at least 1 (got {topn})")
    clf = Classifier.load(model)
    r = clf.test(data, k=topn, tmp_dir=tmp_dir)
    if as_json:
        echo_json(r, indent=1)
        return
    click.echo(f"N\t{r['examples']}")
    click.echo(f"accuracy\t{r['accuracy']:.4f}")
    if topn > 1:
        click.echo(f"P@{topn}\t{r['precision_at_k']:.4f}")
        click.echo(f"R@{topn}\t{r['recall_at_k']:.4f}")
    rows = [(printable(name), _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]), s["support"], s["predicted"])
            for name, s in r["per_label"].items()]
    click.echo("")
    print_table(rows, ["label", "precision", "recall", "F1", "support", "predicted"])
    if r["unknown_labels"]:
        click.echo("labels the model has never seen (lines): "
                   + ", ".join(f"{printable(x)} ({n})" for x, n in r["unknown_labels"].items()))
    click.echo("")
    if len(clf.labels) > CONFUSION_MAX_LABELS:
        click.echo(f"confusion matrix: {len(r['labels'])} x {len(clf.labels)} (with --json)")
        return
    click.echo("confusion matrix (rows: true label, columns: predicted)")
    cols = [str(i + 1) for i in range(len(clf.labels))]
    print_table([(f"{i + 1} {printable(name)}" if i < len(clf.labels) else f"- {printable(name)}", *map(str, row))
                  for i, (name, row) in enumerate(zip(r["labels"], r["confusion"].tolist()))], ["true", *cols])
