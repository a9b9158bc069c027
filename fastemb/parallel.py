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


_BLAS = []


def _openblas_setters():
    """numpy's OpenBLAS thread-count functions (set, get), found by name in the library numpy ships, or None
    (another BLAS, or none found: then the thread count is left alone)."""
    if _BLAS:
        return _BLAS[0]
    found = None
    try:
        import ctypes
        import glob
        import os
        import numpy
        libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__) + ".libs", "*openblas*"))
        for path in libs:
            lib = ctypes.CDLL(path)
            for suffix in ("scipy_openblas_%s_num_threads64_", "openblas_%s_num_threads64_",
                           "openblas_%s_num_threads"):
                try:
                    found = (getattr(lib, suffix % "set"), getattr(lib, suffix % "get"))
                    break
                except AttributeError:
                    continue
            if found:
                break
    except OSError:
        found = None
    _BLAS.append(found)
    return found


@contextlib.contextmanager
def blas_threads(threads: int):
    """numpy's BLAS (OpenBLAS) runs `threads` threads inside the block: used by the NPLM's matrix products,
    outside any Numba parallel region (two thread pools spinning at once oversubscribe the cores)."""
    setters = _openblas_setters()
    if setters is None:
        yield
        return
    set_, get_ = setters
    before = int(get_())
    set_(int(threads))
    try:
        yield
    finally:
        set_(before)
