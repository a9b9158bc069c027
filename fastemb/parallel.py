"""Thread-count handling shared by every parallel pass (numba is imported only when threads are used)."""
from __future__ import annotations

import contextlib

from fastemb.errors import OptionError


def max_threads() -> int:
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def resolve_threads(threads) -> int:
    """None -> all cores; otherwise at least 1 and at most what Numba was started with."""
    if threads is None:
        return max_threads()
    if threads < 1:
        raise OptionError("threads", f"must be at least 1 (got {threads})")
    return min(int(threads), max_threads())


@contextlib.contextmanager
def numba_threads(threads: int):
    """Run a block with `threads` Numba threads, restoring the caller's setting afterwards."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
