"""Thread-count handling shared by every parallel pass."""
from __future__ import annotations

import contextlib

import numba

from .errors import FastembError


def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def resolve_threads(threads) -> int:
    if threads is None:
        return max_threads()
    if threads < 1:
        raise FastembError(f"--threads must be at least 1 (got {threads})")
    return min(int(threads), max_threads())


@contextlib.contextmanager
def numba_threads(threads: int):
    """Run a block with `threads` Numba threads, restoring the caller's setting afterwards."""
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
