"""The first-run notice: Numba compiles a kernel on its first call unless its on-disk cache holds it, which
makes a first run silent for tens of seconds. `notice(kernels, label)` looks into each kernel's cache index
(the `*.nbi` file Numba keeps beside the module, or under NUMBA_CACHE_DIR) before the first call and, when
one is missing or stale (another fastemb version, an edited kernel), logs once per process:

    compiling kernels (first run only, ~40 s)

The estimate is the sum of each kernel's compile time as last measured on this machine (kept in
compile-times.json beside the compiled word2vec kernels, see models/w2v_dims.py), or FIRST_GUESS seconds for
a kernel never measured here.
"""
from __future__ import annotations

import json
import os
import time

from fastemb.progress import log

# Seconds to compile one entry kernel never compiled on this machine before: the tokenizer took 15 s,
# GloVe's epoch kernel 9 s, on the 2-core development machine under load (2026-12-07).
FIRST_GUESS = 10.0
_ANNOUNCED: set = set()


def _key(dispatcher) -> str:
    py = getattr(dispatcher, "py_func", None)
    return f"{getattr(py, '__module__', '?')}.{getattr(py, '__qualname__', repr(dispatcher))}"


def is_cached(dispatcher) -> bool:
    """Does Numba's cache hold compiled code of this @njit(cache=True) kernel for its current source?
    (Any signature counts: fastemb calls each kernel with one set of types.) A kernel without a cache, or
    not compiled by Numba, counts as cached: nothing to announce."""
    if getattr(dispatcher, "overloads", None):
        return True  # compiled in this process already
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is None:
        return True
    try:
        return bool(cache_file._load_index())
    except Exception:  # an unreadable index is recompiled by Numba: say so
        return False


def _times_path():
    from fastemb.models.w2v_dims import kernel_dir
    try:
        return os.path.join(kernel_dir(), "compile-times.json")
    except OSError:
        return None


def _read_times() -> dict:
    path = _times_path()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and 0 <= v < 1e5}
    except (OSError, TypeError, ValueError, AttributeError):
        return {}


def _write_times(times: dict):
    path = _times_path()
    if path is None:
        return
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(times, f)
        os.replace(tmp, path)
    except OSError:
        pass


class notice:
    """Context manager around the first calls of `kernels`: announces their compilation (when their cache
    misses) before, and records how long it took after, for the next estimate."""

    def __init__(self, kernels, label="kernels"):
        self.missing = [k for k in kernels if not is_cached(k)]
        self.label = label

    @property
    def compiling(self) -> bool:
        return bool(self.missing)

    def begin(self):
        if self.missing:
            times = _read_times()
            estimate = sum(times.get(_key(k), FIRST_GUESS) for k in self.missing)
            keys = tuple(sorted(_key(k) for k in self.missing))
            if keys not in _ANNOUNCED:
                _ANNOUNCED.add(keys)
                log.info(f"compiling {self.label} (first run only, ~{max(1.0, estimate):.0f} s)")
        self.t0 = time.perf_counter()
        return self

    def end(self):
        """After the first calls: record their time (shared equally by the kernels compiled)."""
        if self.missing:
            share = (time.perf_counter() - self.t0) / len(self.missing)
            times = _read_times()
            times.update({_key(k): round(share, 1) for k in self.missing})
            _write_times(times)
            self.missing = []

    def __enter__(self):
        return self.begin()

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.end()
        return False
