"""The word2vec kernels for a given vector dimension.

`fastemb.kernels.w2v` reads a row's length from the arrays (`DIM = None`). For the common dimensions, `kernels(dim)`
loads a copy of that same source with `DIM = <dim>`: every row loop then has a compile-time trip count, which
LLVM unrolls into whole vector instructions (24% faster at dim 100, 2 threads, on this project's machine).
The copy is written once to a cache directory (the `FASTEMB_KERNEL_DIR` variable, else
~/.cache/fastemb/kernels, else a temporary directory) and imported as the module
`fastemb.kernels._w2v_kernels_d<dim>`, so Numba caches its compiled code beside it like any module's. Where nothing
can be written, the generic kernels are used.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile

import numpy as np

from fastemb.progress import log

LINE_FLOATS = 16  # float32 values in a 64-byte cache line
SPECIALISED_DIMS = (50, 64, 100, 128, 200, 256, 300)
_LOADED: dict = {}


def kernels(dim: int, generic=None):
    """The kernel module for vectors of `dim` floats: a copy of `generic` (default fastemb.kernels.w2v; any
    kernel module that defines `DIM = None` once, e.g. fastemb.kernels.subword)."""
    if generic is None:
        from fastemb.kernels import w2v as generic
    dim = int(dim)
    if dim not in SPECIALISED_DIMS:
        return generic
    key = (generic.__name__, dim)
    if key not in _LOADED:
        try:
            _LOADED[key] = _load(dim, generic)
        except OSError as e:
            log.info(f"kernels for dim {dim}: cannot write a compiled copy ({e.strerror or e}); generic kernels")
            _LOADED[key] = generic
    return _LOADED[key]


def row_width(dim: int, module) -> int:
    """Floats per stored row for `module`'s kernels: `dim` rounded up to whole cache lines for a copy compiled
    for `dim` (its row loops run over the first dim values only), else `dim` (the generic kernels run over
    the whole row). Rows that start on cache lines keep the kernels' 64-byte vector loads and stores within
    one line each: 7-13% less training time at dim 100 (skip-gram and the subword model, 2026-12-08)."""
    if getattr(module, "DIM", None) is None:
        return int(dim)
    return padded_width(dim)


def padded_width(dim: int) -> int:
    """`dim` rounded up to whole cache lines (16 floats)."""
    return -(-int(dim) // LINE_FLOATS) * LINE_FLOATS


def stored_width(dim: int, device: str = "cpu") -> int:
    """The row width training will use for `dim` (for memory estimates, before any kernel is loaded): padded
    for the specialised dimensions on the CPU."""
    return padded_width(dim) if int(dim) in SPECIALISED_DIMS and device != "cuda" else int(dim)


def row_matrix(rows: int, dim: int, width: int, data=None):
    """(view, matrix): a zeroed float32 matrix of `rows` rows of `width` values, C-contiguous, its rows
    starting on 64-byte boundaries when width is a multiple of 16, and its (rows, dim) view holding `data`
    when given. The kernels take the matrix; everything else sees the view."""
    raw = np.zeros(rows * width + LINE_FLOATS, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    matrix = raw[start:start + rows * width].reshape(rows, width)
    view = matrix[:, :dim]
    if data is not None:
        view[...] = data
    return view, matrix


def unpadded(matrix, dim: int):
    """The (rows, dim) C-contiguous matrix of a row_matrix's values, made in place in its memory (the padded
    matrix is no longer valid afterwards); the matrix itself when it has no padding."""
    rows, width = matrix.shape
    if width == dim:
        return matrix
    flat = matrix.reshape(-1)  # C-contiguous: a view
    from fastemb.kernels.prefetch import pack_rows
    pack_rows(flat, rows, dim, width)
    return flat[:rows * dim].reshape(rows, dim)


def kernel_dir() -> str:
    for d in (os.environ.get("FASTEMB_KERNEL_DIR"),
              os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fastemb", "kernels"),
              os.path.join(tempfile.gettempdir(), f"fastemb-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}")):
        if not d:
            continue
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK | os.X_OK):
            return d
    raise OSError("no writable directory for compiled kernels")


def _load(dim, generic):
    with open(generic.__file__, encoding="utf-8") as f:
        source = f.read()
    marker = "\nDIM = None  #"
    if source.count(marker) != 1:
        raise AssertionError(f"{generic.__name__} must define DIM = None once")
    source = source.replace(marker, f"\nDIM = {dim}  #", 1)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    base = generic.__name__.rsplit(".", 1)[-1]
    name = "_w2v_kernels_d{}".format(dim) if base == "w2v" else f"_{base}_kernels_d{dim}"
    path = os.path.join(kernel_dir(), f"{name}_{digest}.py")  # a new source (a new fastemb) gets a new file
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
    qualified = f"fastemb.kernels.{name}"
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module
