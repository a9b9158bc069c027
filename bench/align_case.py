"""A real alignment case: two fastemb spaces trained on disjoint halves of the English benchmark corpus
(different seeds), lexicon = the frequent words they share (identity translations), test words held out.
Prints P@1/5/10 with NN and CSLS retrieval for every method."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def halves(path, work):
    a, b = os.path.join(work, "half_a.txt"), os.path.join(work, "half_b.txt")
    with open(path) as f, open(a, "w") as fa, open(b, "w") as fb:
        for i, line in enumerate(f):
            (fa if i % 2 == 0 else fb).write(line)
    return a, b


def main(corpus, out_json=None, algo="sgns", lexicon_size=5000, skip=100):
    import fastemb
    from fastemb import align as A
    with tempfile.TemporaryDirectory() as work:
        a, b = halves(corpus, work)
        src = fastemb.train(a, algo, seed=1)
        tgt = fastemb.train(b, algo, seed=2)
    shared = [w for w in src.words[skip:] if w in tgt.index][:lexicon_size]
    pairs = [(w, w) for w in shared]
    train_pairs, test_pairs = A.split_lexicon(pairs, 0.2, seed=1)
    rows = []
    for method, norm, center in (("gd", False, False), ("lstsq", False, False), ("procrustes", False, False),
                                 ("procrustes", True, True), ("cca", True, True)):
        t0 = time.perf_counter()
        al = A.fit(src, tgt, train_pairs, method, normalize=norm, center=center, steps=500)
        res = A.evaluate(al, src, tgt, test_pairs)
        res.update(method=method, normalize=norm, center=center, seconds=round(time.perf_counter() - t0, 2))
        rows.append(res)
        print(f"{method:10s} norm={norm!s:5s} center={center!s:5s}  NN P@1 {res['nn_p@1']:.3f} P@5 "
              f"{res['nn_p@5']:.3f} P@10 {res['nn_p@10']:.3f}   CSLS P@1 {res['csls_p@1']:.3f} P@5 "
              f"{res['csls_p@5']:.3f} P@10 {res['csls_p@10']:.3f}  ({res['seconds']}s)", flush=True)
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"corpus": corpus, "train_pairs": len(train_pairs), "test_pairs": len(test_pairs),
                       "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]))
