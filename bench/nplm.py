"""The NPLM on the shipped KJV sample: training speed (words/s) per output layer and held-out perplexity after
every epoch, against an interpolated modified Kneser-Ney trigram (bench/ngram.py) on the same token ids.

    python -m bench.nplm [--epochs 3] [--max-vocab N] [--softmax full,sampled,nce,hs] [--json OUT] [-- OPTION=VALUE ...]

Split: every 20th verse (0, 20, 40, ...) is held out, the others train. Words outside the vocabulary are
dropped from both (as fastemb does), each sentence starts with boundary tokens, no end-of-sentence event.
Words/s are per epoch (the perplexity measured after each epoch is not timed), medians over epochs.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "corpora", "kjv.txt.gz")


def split(directory, held_every=20):
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    train, held = os.path.join(directory, "train.txt"), os.path.join(directory, "held.txt")
    with open(train, "w", encoding="utf-8") as t, open(held, "w", encoding="utf-8") as h:
        for i, line in enumerate(lines):
            (h if i % held_every == 0 else t).write(line)
    return train, held


def sentences(path, emb):
    """A text as the models see it: its sentences as ids of `emb`'s vocabulary, other words dropped."""
    from fastemb.vocab import build_vocab, iter_blocks
    out = []
    with build_vocab([path], encode=True, base=emb) as enc:
        for ids, ends, _ in iter_blocks(enc):
            out += np.split(ids.astype(np.int64), ends[:-1])
    return out


def run(softmax, train, held, epochs, options, seed=1):
    import fastemb
    from fastemb.models.nplm import LanguageModel
    per_epoch = []

    def measure(run_):
        t = time.perf_counter()
        score = LanguageModel(run_.embeddings()).score(held)
        per_epoch.append({"epoch": run_.epoch, "words_per_second": run_.rate, "train_loss": run_.loss,
                          "perplexity": score["perplexity"], "eval_seconds": time.perf_counter() - t})
        print(f"  {softmax} epoch {run_.epoch}: {run_.rate:,.0f} words/s, held-out perplexity "
              f"{score['perplexity']:.2f}", flush=True)
    t0 = time.perf_counter()
    emb = fastemb.train(train, "nplm", softmax=softmax, epochs=epochs, seed=seed, callbacks=[measure], **options)
    wall = time.perf_counter() - t0
    return emb, {"softmax": softmax, "words": len(emb), "epochs": per_epoch, "wall_seconds": wall,
                 "train_seconds": emb.attrs["train_seconds"] - sum(e["eval_seconds"] for e in per_epoch),
                 "words_per_second": statistics.median(e["words_per_second"] for e in per_epoch),
                 "perplexity": per_epoch[-1]["perplexity"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="default: the nplm default")
    p.add_argument("--max-vocab", type=int, default=None)
    p.add_argument("--softmax", default="full,sampled,nce,hs")
    p.add_argument("--json", default=None)
    p.add_argument("options", nargs="*", help="more nplm options as NAME=VALUE (context=4 alpha=0.15 ...)")
    a = p.parse_args(argv)
    from fastemb.models.nplm import NPLMOptions
    from bench.ngram import KneserNeyTrigram
    options = {"max_vocab": a.max_vocab} if a.max_vocab else {}
    for item in a.options:
        name, value = item.split("=", 1)
        kind = NPLMOptions.specs()[name][1].kind
        options[name] = kind(value)
    epochs = a.epochs or NPLMOptions().epochs
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "date": time.strftime("%Y-%m-%d %H:%M"), "epochs": epochs, "options": options, "runs": []}
    with tempfile.TemporaryDirectory() as d:
        train, held = split(d)
        emb = None
        for softmax in a.softmax.split(","):
            print(f"nplm --softmax {softmax} ({epochs} epochs, {options}):", flush=True)
            emb, r = run(softmax, train, held, epochs, options)
            results["runs"].append(r)
        t = time.perf_counter()
        train_ids, held_ids = sentences(train, emb), sentences(held, emb)
        kn = KneserNeyTrigram(len(emb)).fit(train_ids)
        results["kneser_ney_trigram"] = {"perplexity": kn.perplexity(held_ids), "seconds": time.perf_counter() - t,
                                         "train_tokens": int(sum(map(len, train_ids))),
                                         "held_out_tokens": int(sum(map(len, held_ids)))}
    results["words"] = len(emb)
    print(f"\n{len(emb):,} words; {results['kneser_ney_trigram']['train_tokens']:,} training tokens, "
          f"{results['kneser_ney_trigram']['held_out_tokens']:,} held-out tokens")
    print("| model | words/s | held-out perplexity by epoch |")
    print("|---|---|---|")
    for r in results["runs"]:
        curve = ", ".join(f"{e['perplexity']:.1f}" for e in r["epochs"])
        print(f"| nplm {r['softmax']} | {r['words_per_second']:,.0f} | {curve} |")
    print(f"| Kneser-Ney trigram | | {results['kneser_ney_trigram']['perplexity']:.1f} |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
