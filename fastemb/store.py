"""HDF5 files of fastemb (layout: DESIGN.md, README.md) and atomic output.

Every file carries attrs on / : encoding-type="fastemb", encoding-version, format_version, content
("embeddings", "cooccurrence" or "alignment"). Everything is written to a temporary file beside the
target and renamed into place, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import tempfile

import numpy as np

from .errors import FastembError, FileError, param

FORMAT_VERSION = 1
ENCODING_TYPE = "fastemb"


def check_output(path, force=False):
    """Fail before any work when `path` cannot be written or exists (without --force)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise FileError(f"{path}: output is a directory")
    if not os.path.isdir(parent):
        raise FileError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FileError(f"{path}: output directory {parent} is not writable")
    if os.path.exists(path) and not force:
        raise FileError(f"{path}: output exists (use {param('force')} to overwrite)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path):
    """Flush a closed file's data (or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp, path):
    """Rename a finished temporary file onto `path`, with the permissions a plain open() would give;
    durable: the data reaches the disk before the rename, and the rename before this returns."""
    os.chmod(tmp, 0o666 & ~_umask())
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(os.path.dirname(os.path.abspath(path)))


def temp_beside(path) -> str:
    """A new empty temporary file in the directory of `path` (so the final rename is atomic)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=parent)
    except OSError as e:
        raise FileError(f"{path}: cannot write: {e.strerror or e}") from None
    os.close(fd)
    return tmp


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path in the target's directory; renames it onto `path` only on success."""
    tmp = temp_beside(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _h5py():
    import h5py
    return h5py


def _root_attrs(f, content, attrs):
    f.attrs["encoding-type"] = ENCODING_TYPE
    f.attrs["encoding-version"] = str(FORMAT_VERSION)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["content"] = content
    from . import __version__
    f.attrs["fastemb_version"] = __version__
    f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for k, v in (attrs or {}).items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            v = np.asarray(v)
        f.attrs[k] = v


def _write_vocab(f, words, counts):
    h5py = _h5py()
    g = f.create_group("vocab")
    g.create_dataset("words", data=np.array(words, dtype=object), dtype=h5py.string_dtype("utf-8"))
    g.create_dataset("counts", data=np.asarray(counts, dtype=np.int64))


def _read_vocab(f):
    words = [w.decode("utf-8") if isinstance(w, bytes) else w for w in f["vocab/words"].asstr()[()]]
    return words, np.asarray(f["vocab/counts"][()], dtype=np.int64)


@contextlib.contextmanager
def open_fastemb(path, content=None):
    """Open a fastemb HDF5 file for reading, with one-line errors for every way it can be wrong."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        kind = "not an HDF5 file" if not h5py.is_hdf5(path) else f"unreadable HDF5 file ({e})"
        raise FileError(f"{path}: {kind}") from None
    try:
        if f.attrs.get("encoding-type") != ENCODING_TYPE:
            raise FileError(f"{path}: not a fastemb file (no encoding-type=\"fastemb\" attribute)")
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise FileError(f"{path}: format_version {version} is newer than this fastemb reads "
                               f"({FORMAT_VERSION}); upgrade fastemb")
        if content is not None and f.attrs.get("content") != content:
            raise FileError(f"{path}: holds {f.attrs.get('content')}, not {content}")
        yield f
    except FastembError:
        raise
    except (KeyError, OSError, ValueError, TypeError) as e:
        raise FileError(f"{path}: damaged fastemb file ({e})") from None
    finally:
        f.close()


def attrs_dict(f):
    out = {}
    for k, v in f.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------ embeddings
def save_embeddings(path, words, counts, vectors, *, context=None, bias=None, context_bias=None,
                    svd=None, attrs=None):
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with atomic_output(path) as tmp, _h5py().File(tmp, "w") as f:
        _root_attrs(f, "embeddings", {"dim": vectors.shape[1], **(attrs or {})})
        f.create_dataset("embedding", data=vectors)
        if context is not None:
            f.create_dataset("context_embedding", data=np.asarray(context, dtype=np.float32))
        if bias is not None:
            f.create_dataset("bias", data=np.asarray(bias, dtype=np.float32))
        if context_bias is not None:
            f.create_dataset("context_bias", data=np.asarray(context_bias, dtype=np.float32))
        if svd is not None:
            g = f.create_group("svd")
            for name in ("u", "s", "vt"):
                g.create_dataset(name, data=np.asarray(svd[name], dtype=np.float32))
        _write_vocab(f, words, counts)


def load_embeddings(path) -> dict:
    with open_fastemb(path, "embeddings") as f:
        words, counts = _read_vocab(f)
        out = {"words": words, "counts": counts, "vectors": f["embedding"][()], "attrs": attrs_dict(f)}
        for name in ("context_embedding", "bias", "context_bias"):
            out[name] = f[name][()] if name in f else None
        out["svd"] = {k: f["svd"][k][()] for k in ("u", "s", "vt")} if "svd" in f else None
        if out["vectors"].shape[0] != len(words):
            raise FileError(f"{path}: {out['vectors'].shape[0]} vectors for {len(words)} words")
        return out


# --------------------------------------------------------------------------------------- co-occurrence
class CoocWriter:
    """Writes a CSR matrix row block by row block (so it never has to be whole in memory)."""

    def __init__(self, path, words, counts, attrs=None):
        self.path = path
        self.n_rows = len(words)
        self.tmp = temp_beside(path)
        self.f = _h5py().File(self.tmp, "w")
        _root_attrs(self.f, "cooccurrence", attrs)
        _write_vocab(self.f, words, counts)
        g = self.f.create_group("cooccurrence")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array([self.n_rows, self.n_rows], dtype=np.int64)
        chunk = 1 << 18
        self.data = g.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(chunk,))
        self.indices = g.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32,
                                        chunks=(chunk,))
        self.row_nnz = np.zeros(self.n_rows, np.int64)
        self.group = g
        self.nnz = 0

    def append(self, r0, r1, row_nnz, indices, data):
        n = len(indices)
        if n:
            for ds, arr in ((self.indices, indices), (self.data, data)):
                ds.resize((self.nnz + n,))
                ds[self.nnz:self.nnz + n] = arr
        self.row_nnz[r0:r1] += row_nnz  # a row may arrive in several consecutive pieces
        self.nnz += n

    def close(self, ok=True):
        """Finish and rename into place (ok) or throw the partial file away."""
        try:
            if ok:
                indptr = np.zeros(self.n_rows + 1, np.int64)
                np.cumsum(self.row_nnz, out=indptr[1:])
                self.group.create_dataset("indptr", data=indptr)
            self.f.close()
            if ok:
                publish(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def load_cooc(path):
    """(words, counts, scipy.sparse.csr_matrix float32, attrs)."""
    import scipy.sparse as sp
    with open_fastemb(path, "cooccurrence") as f:
        words, counts = _read_vocab(f)
        g = f["cooccurrence"]
        shape = tuple(int(x) for x in g.attrs["shape"])
        m = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=shape)
        return words, counts, m, attrs_dict(f)


# ----------------------------------------------------------------------------------------- alignment
def save_alignment(path, R, *, attrs=None, arrays=None):
    with atomic_output(path) as tmp, _h5py().File(tmp, "w") as f:
        _root_attrs(f, "alignment", None)
        g = f.create_group("alignment")
        g.create_dataset("R", data=np.asarray(R, dtype=np.float32))
        for k, v in (attrs or {}).items():
            if v is not None:
                g.attrs[k] = v
        for k, v in (arrays or {}).items():
            if v is not None:
                g.create_dataset(k, data=np.asarray(v, dtype=np.float32))


def load_alignment(path):
    with open_fastemb(path, "alignment") as f:
        g = f["alignment"]
        arrays = {k: g[k][()] for k in g.keys()}
        return arrays.pop("R"), attrs_dict(g), arrays


# ---------------------------------------------------------------------------------------------- info
def describe(path) -> dict:
    """What `fastemb info` prints: content, shapes, attributes."""
    with open_fastemb(path) as f:
        out = {"path": os.fspath(path), **attrs_dict(f)}
        datasets = {}

        def visit(name, obj):
            if hasattr(obj, "shape"):
                datasets[name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}
        f.visititems(visit)
        out["datasets"] = datasets
        if "vocab/words" in f:
            out["vocab_size"] = int(f["vocab/words"].shape[0])
            out["top_words"] = [w for w in f["vocab/words"].asstr()[:10]]
        if "cooccurrence" in f:
            out["nnz"] = int(f["cooccurrence/data"].shape[0])
        return out
