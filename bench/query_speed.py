"""Query throughput: most_similar for 10,000 query words against a 100,000 x 300 matrix, batched."""
import sys
import time

import numpy as np


def main(n_words=100_000, dim=300, n_queries=10_000, k=10):
    from fastemb.embeddings import Embeddings
    rng = np.random.default_rng(0)
    emb = Embeddings([f"w{i}" for i in range(n_words)], rng.standard_normal((n_words, dim), dtype=np.float32))
    t0 = time.perf_counter()
    emb.normalized()
    t1 = time.perf_counter()
    queries = [f"w{i}" for i in rng.choice(n_words, n_queries, replace=False)]
    res = emb.most_similar_batch(queries, topn=k)
    t2 = time.perf_counter()
    assert len(res) == n_queries and len(res[0]) == k
    print(f"most_similar: {n_queries:,} queries x {n_words:,} words x {dim} dims, top {k}: "
          f"{t2 - t1:.2f}s ({n_queries / (t2 - t1):,.0f} queries/s); normalising once: {t1 - t0:.2f}s")
    return {"queries": n_queries, "words": n_words, "dim": dim, "seconds": t2 - t1, "normalize_seconds": t1 - t0}


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
