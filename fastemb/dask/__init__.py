"""Scale-out on a Dask cluster (the optional `dask` extra): the vocabulary, co-occurrence counting and
PPMI-SVD, each task running the local code on a shard of the corpus, so the results equal the local ones.

- cluster: connecting (`connect`: an address, local:N or a Client), worker checks, shared task results
- shards: line-aligned byte ranges of files and URLs, read exactly as the local reader reads them
- vocab: exact per-shard counts merged in a tree (`vocabulary`)
- cooc: fixed-point co-occurrences by row range (`cooccurrences`, `cooccurrence_blocks`)
- svd: PPMI and a blockwise randomized SVD (`ppmi_svd`)

Tasks are pure functions of their arguments, so Dask recomputes whatever a dead worker held and the result is
the same. Importing this package loads neither dask nor numba: without dask every entry point fails with one
line (`pip install 'fastemb[dask]'`).
"""
from fastemb.dask.cluster import DASK_MISSING, cluster_guard, connect, release
from fastemb.dask.cooc import cooccurrence_blocks, cooccurrences
from fastemb.dask.shards import DEFAULT_SHARD_BYTES, HEAD_BYTES, Shard, shards
from fastemb.dask.svd import ppmi_blocks, ppmi_svd, randomized_svd_blocks
from fastemb.dask.vocab import vocabulary

__all__ = ["DASK_MISSING", "cluster_guard", "DEFAULT_SHARD_BYTES", "HEAD_BYTES", "Shard", "connect", "release", "cooccurrence_blocks",
           "cooccurrences", "ppmi_blocks", "ppmi_svd", "randomized_svd_blocks", "shards", "vocabulary"]
