"""Shards of a corpus for Dask tasks: fastemb.sharding's byte ranges (shared with the local parallel
counting pass), checked for dask before use, and what a task uses in place of progress and id files."""
from __future__ import annotations

import numpy as np

from fastemb import sharding
from fastemb.dask.cluster import require
from fastemb.sharding import DEFAULT_SHARD_BYTES, HEAD_BYTES, Shard, ShardReader

__all__ = ["DEFAULT_SHARD_BYTES", "HEAD_BYTES", "Shard", "ShardReader", "shards", "NoProgress", "Collect"]


def shards(paths, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None) -> list:
    """fastemb.sharding.shards, after checking that dask is installed (files are checked before a cluster
    starts)."""
    require()
    return sharding.shards(paths, shard_bytes, storage_options)


class NoProgress:
    def update(self, *a, **k):
        pass


class Collect:
    """A stand-in for the id files of vocab._scan_corpus: keeps what is written in memory."""
    name = ""

    def __init__(self):
        self.parts = []

    def write(self, view):
        self.parts.append(bytes(view))

    def array(self, dtype):
        return np.frombuffer(b"".join(self.parts), dtype=dtype)
