"""English -> German word translation: every alignment method, with 200, 1,000 and all seed pairs.

    python -m bench.bilingual                      # builds bench/cache/bilingual/ from Debian packages
    python -m bench.align_bilingual [--dim 300] [--epochs 10] [--refine 5] [--json OUT]

Trains skip-gram vectors on en.txt and de.txt (fastemb defaults unless given), then for each seed lexicon
(train-200.tsv, train-1000.tsv, train.tsv) fits every method, with and without self-learning refinement,
and reports P@1/5/10 on test.tsv (1,500 English words, split from the FreeDict lexicon by source word) with
nearest-neighbour and CSLS retrieval. A query counts as correct when any of its gold translations is found.
"""
from __future__ import annotations

import argparse
import json
import os
import time

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache", "bilingual")
SEEDS = (("200", "train-200.tsv"), ("1000", "train-1000.tsv"), ("all", "train.tsv"))
# (method, normalize, center): plain Procrustes and the best preprocessing of Artetxe et al. 2016 beside it
METHODS = (("gd", True, True), ("lstsq", True, True), ("cca", True, True), ("procrustes", False, False),
           ("procrustes", True, True), ("vecmap", True, True))


def vectors(lang, args):
    import fastemb
    path = os.path.join(args.cache, f"{lang}.h5")
    if not os.path.exists(path):
        t = time.perf_counter()
        fastemb.train(os.path.join(args.cache, f"{lang}.txt"), dim=args.dim, epochs=args.epochs, seed=args.seed,
                      output=path)
        print(f"{lang}: trained in {time.perf_counter() - t:.0f}s")
    return fastemb.load(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=CACHE)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--refine", type=int, default=5, help="self-learning rounds for the refined rows")
    ap.add_argument("--refine-vocab", type=int, default=20000)
    ap.add_argument("--json", default=None, help="write the results here as JSON")
    args = ap.parse_args()
    from fastemb import align
    en, de = vectors("en", args), vectors("de", args)
    test = align.read_lexicon(os.path.join(args.cache, "test.tsv"))
    rows = []
    header = (f"{'seed pairs':>10}  {'method':<22} {'NN P@1':>7} {'P@5':>6} {'P@10':>6}  {'CSLS P@1':>8} {'P@5':>6} "
              f"{'P@10':>6}  {'seconds':>7}")
    print(header)
    for seed_name, seed_file in SEEDS:
        pairs = align.read_lexicon(os.path.join(args.cache, seed_file))
        for method, norm, cent in METHODS:
            for rounds in (0, args.refine) if method in ("procrustes", "vecmap") and norm else (0,):
                t = time.perf_counter()
                if rounds:
                    a = align.refine(en, de, pairs, rounds, method, vocab=args.refine_vocab, normalize=norm,
                                     center=cent)
                else:
                    a = align.fit(en, de, pairs, method, normalize=norm, center=cent)
                r = align.evaluate(a, en, de, test)
                seconds = time.perf_counter() - t
                name = method + (" +norm+center" if norm and method != "vecmap" else "") + (
                    f" +refine {len(a.refinement)}" if rounds else "")
                rows.append({"seed": seed_name, "method": name, "seconds": round(seconds, 1), **r})
                print(f"{seed_name:>10}  {name:<22} {r['nn_p@1']:7.3f} {r['nn_p@5']:6.3f} {r['nn_p@10']:6.3f}  "
                      f"{r['csls_p@1']:8.3f} {r['csls_p@5']:6.3f} {r['csls_p@10']:6.3f}  {seconds:7.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "test_words": rows[0]["test_words"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
