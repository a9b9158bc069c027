"""HDF5 files of fastemb (layout: README.md, Files) and atomic, durable output.

Reading goes through one checked door, `open_h5`: the path must be a regular file; the whole file is walked
before anything is read, and anything that reaches outside it (external links, soft links, external
storage, virtual datasets), filters other than the standard ones, and reference types are refused. Every
loader then checks each dataset's shape, dtype and values (vocabulary length = rows, CSR structure, finite
floats, a size that fits in memory) before returning arrays a kernel may see. Errors are one line naming
the file and the problem.

Writing goes to a temporary file beside the target (.NAME.PID.RANDOM.part), fsynced, renamed into place,
and the directory fsynced: an interrupted or failed run never leaves a partial output, and a finished one
survives a crash. HDF5 writes go through files.SafeFile, so a full disk is a clean error, not a crash.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re

import numpy as np

from fastemb.errors import FastembError, FileError, param
from fastemb.files import (SafeFile, available_memory, check_name_fits, check_readable, clean_stale, describe_os_error,
                    part_name, probe_writable)
from fastemb.progress import log

FORMAT_VERSION = 1
ENCODING_TYPE = "fastemb"
# deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf: decoded by the HDF5 library h5py ships
STANDARD_FILTERS = {1, 2, 3, 4, 5, 6, 32000}
MAX_OBJECTS = 10_000


def _h5py():
    import h5py
    return h5py


# ------------------------------------------------------------------------------------------ output
def check_output(path, force=False):
    """Fail before any work when `path` cannot be written (directory, permissions, name length, a file
    system that takes no new file) or exists (without force). Leftovers of dead runs there are removed."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise FileError(f"{path}: output is a directory")
    if not os.path.isdir(parent):
        raise FileError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FileError(f"{path}: output directory {parent} is not writable")
    check_name_fits(path)
    if os.path.lexists(path) and not force:
        raise FileError(f"{path}: output exists (use {param('force')} to overwrite)")
    for removed in clean_stale(parent):
        log.info(f"removed {removed}, left by a fastemb run that is no longer running")
    probe_writable(path)


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


def _write_error(path, e: OSError) -> FileError:
    path = os.fspath(path)
    return FileError(f"{os.path.dirname(os.path.abspath(path))}: cannot write {os.path.basename(path)}: "
                     f"{describe_os_error(e)}")


def publish(tmp, path):
    """Rename a finished temporary file onto `path`, with the permissions a plain open() would give;
    durable: the data reaches the disk before the rename, and the rename before this returns."""
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        raise _write_error(path, e) from None


def temp_beside(path) -> str:
    """A new empty temporary file in the directory of `path` (so the final rename is atomic)."""
    tmp = part_name(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise _write_error(path, e) from None
    return tmp


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path in the target's directory; renames it onto `path` only on success. A failed
    write (full disk, quota) becomes one FileError naming the directory and the cause."""
    tmp = temp_beside(path)
    try:
        try:
            yield tmp
        except OSError as e:
            if isinstance(e, FastembError):
                raise
            raise _write_error(path, e) from None
        publish(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_h5(path):
    """An HDF5 file open for writing, published onto `path` when the block succeeds."""
    tmp = temp_beside(path)
    raw = SafeFile(tmp)
    try:
        f = _h5py().File(raw, "w")
        f.fastemb_raw = raw  # lets long writers (CoocWriter) stop at the first failed write
        ok = False
        try:
            yield f
            ok = True
        finally:
            f.close()
            raw.sync()
        if raw.error is not None:
            raise _write_error(path, raw.error)
        if ok:
            raw.close()
            publish(tmp, path)
    finally:
        raw.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _attr_value(v):
    if isinstance(v, str):  # a path that is not valid UTF-8 must not fail the save after the work
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(v, (list, tuple)):
        return np.asarray(v)
    return v


def corpus_attr(sources) -> str:
    """The `corpus` attribute every file records, written one way: a JSON list of the inputs, local files as
    absolute paths, URLs and stdin ("-") as given, Python sentences as "<python sentences>"."""
    import json
    if isinstance(sources, (str, bytes, os.PathLike)):
        sources = [sources]
    out = []
    for s in sources:
        if isinstance(s, bytes):
            s = os.fsdecode(s)
        if not isinstance(s, (str, os.PathLike)):
            out.append("<python sentences>")
            continue
        s = os.fspath(s)
        out.append(s if s == "-" or "://" in s else os.path.abspath(s))
    return json.dumps(out, ensure_ascii=False)


def root_attrs(f, content, attrs):
    f.attrs["encoding-type"] = ENCODING_TYPE
    f.attrs["encoding-version"] = str(FORMAT_VERSION)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["content"] = content
    from fastemb import __version__
    f.attrs["fastemb_version"] = __version__
    f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for k, v in (attrs or {}).items():
        if v is not None:
            f.attrs[k] = _attr_value(v)


def write_vocab(f, words, counts):
    h5py = _h5py()
    g = f.create_group("vocab")
    g.create_dataset("words", data=np.array([_attr_value(w) for w in words], dtype=object),
                     dtype=h5py.string_dtype("utf-8"))
    g.create_dataset("counts", data=np.asarray(counts, dtype=np.int64))


# ------------------------------------------------------------------------------------- the checked door
def _walk(path, f):
    """Every object reachable from the root by hard links, checked: nothing that points outside the file."""
    h5py = _h5py()
    seen, stack, count = set(), [("", f)], 0
    while stack:
        prefix, group = stack.pop()
        for name in group.keys():
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise FileError(f"{path}: {full} is an external link (to {link.filename}): refused")
            if isinstance(link, h5py.SoftLink):
                raise FileError(f"{path}: {full} is a soft link: refused")
            obj = group[name]
            key = hash(obj.id)  # the object's identity in the file (a group linked twice is walked once)
            if key in seen:
                continue
            seen.add(key)
            count += 1
            if count > MAX_OBJECTS:
                raise FileError(f"{path}: more than {MAX_OBJECTS:,} objects: not a fastemb file")
            if isinstance(obj, h5py.Group):
                stack.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(path, full, obj)
            else:
                raise FileError(f"{path}: {full} is a {type(obj).__name__}: refused")


def _check_dataset(path, name, ds):
    if ds.is_virtual:
        raise FileError(f"{path}: {name} is a virtual dataset (its data lives in other files): refused")
    plist = ds.id.get_create_plist()
    if plist.get_external_count() > 0:
        raise FileError(f"{path}: {name} keeps its data in an external file: refused")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in STANDARD_FILTERS:
            raise FileError(f"{path}: {name} needs HDF5 filter {code}, which fastemb does not load")
    kind = ds.dtype.kind
    if kind in "OV" and _h5py().check_string_dtype(ds.dtype) is None:
        raise FileError(f"{path}: {name} has an unsupported data type ({ds.dtype})")


PROBE_SECONDS = 10.0          # the probe's time limit: this much (env FASTEMB_PROBE_SECONDS), plus a second per 20 MB
PROBE_BYTES_PER_SECOND = 20e6


def _read_everything_risky(f):
    """What the HDF5 library decodes from heaps and B-trees: the walk, every attribute's value and every
    variable-length dataset (the vocabulary's strings)."""
    h5py = _h5py()
    objects = [f]
    _walk(f.filename, f)
    f.visititems(lambda name, obj: objects.append(obj))
    for obj in objects:
        for name in obj.attrs:
            obj.attrs[name]
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O":
            obj[()]


def _probe(path):
    """A damaged file can make the HDF5 C library loop forever or crash the process (a corrupted global
    heap under a string attribute did, in fuzzing), which no Python check can catch once inside it. So a
    forked child reads first what could do that, under a time limit; a child that hangs or dies by a
    signal means a damaged file and a one-line error, and the parent never touches it. Any Python error
    in the child is left to the parent's own checks, which report it. Not done where fork is missing."""
    if not hasattr(os, "fork") or os.environ.get("FASTEMB_NO_PROBE"):
        return
    import time
    h5py = _h5py()
    try:
        base = float(os.environ.get("FASTEMB_PROBE_SECONDS", PROBE_SECONDS))
    except ValueError:
        base = PROBE_SECONDS
    limit = base + os.path.getsize(path) / PROBE_BYTES_PER_SECOND
    pid = os.fork()
    if pid == 0:  # the child: read, and leave without running any of the parent's exit handlers
        code = 0
        try:
            import faulthandler
            faulthandler.disable()  # a crash here is reported by the parent, in one line
            with h5py.File(path, "r", locking=False) as f:
                _read_everything_risky(f)
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + limit
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise FileError(f"{path}: damaged HDF5 file (the HDF5 library did not finish reading its metadata "
                            f"in {limit:.0f}s)")
        time.sleep(delay)
        delay = min(delay * 2, 0.002)
    if os.WIFSIGNALED(status):
        raise FileError(f"{path}: damaged HDF5 file (the HDF5 library crashed reading it: signal "
                        f"{os.WTERMSIG(status)})")


@contextlib.contextmanager
def open_h5(path, content=None, foreign_ok=False):
    """Open an HDF5 file for reading through the checked door. `content` is what a fastemb file must hold
    ("embeddings", "cooccurrence", "alignment", "checkpoint"); with `foreign_ok` a file not written by
    fastemb is accepted (the loader then checks that what it needs is there)."""
    h5py = _h5py()
    path = check_readable(path)
    if _is_hdf5(path):
        _probe(path)
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        kind = "not an HDF5 file" if not _is_hdf5(path) else f"unreadable HDF5 file ({e})"
        raise FileError(f"{path}: {kind}") from None
    try:
        _walk(path, f)
        ours = text_attr(f.attrs.get("encoding-type")) == ENCODING_TYPE
        if not ours and not foreign_ok:
            raise FileError(f"{path}: not a fastemb file (no encoding-type=\"fastemb\" attribute)")
        if ours:
            try:
                version = int(f.attrs.get("format_version", FORMAT_VERSION))
            except (TypeError, ValueError):
                raise FileError(f"{path}: damaged fastemb file (format_version)") from None
            if version > FORMAT_VERSION:
                raise FileError(f"{path}: format_version {version} is newer than this fastemb reads "
                                f"({FORMAT_VERSION}); upgrade fastemb")
            held = text_attr(f.attrs.get("content"))
            if content is not None and held not in (None, content):
                raise FileError(f"{path}: holds {held}, not {content}")
        yield f
    except FastembError:
        raise
    except (KeyError, OSError, ValueError, TypeError, RuntimeError) as e:
        raise FileError(f"{path}: damaged HDF5 file ({' '.join(str(e).split())[:200]})") from None
    finally:
        f.close()


def _is_hdf5(path) -> bool:
    try:
        return bool(_h5py().is_hdf5(path))
    except Exception:
        return False


def text_attr(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else (v if isinstance(v, str) else None)


def read_array(path, f, name, *, ndim=None, shape=None, kinds="f", finite=True, dtype=None):
    """A dataset's values, checked: present, a dataset, of `ndim`/`shape` (None = any), dtype kind in
    `kinds` ('f' float, 'i'/'u' integers), a size that fits in memory, finite floats; cast to `dtype`."""
    if name not in f:
        raise FileError(f"{path}: no dataset /{name}")
    ds = f[name]
    if not hasattr(ds, "shape") or not hasattr(ds, "dtype"):
        raise FileError(f"{path}: /{name} is not a dataset")
    if ndim is not None and len(ds.shape) != ndim:
        raise FileError(f"{path}: /{name} has {len(ds.shape)} dimensions, expected {ndim}")
    if shape is not None and any(s is not None and s != d for s, d in zip(shape, ds.shape)):
        want = "×".join("?" if s is None else str(s) for s in shape)
        raise FileError(f"{path}: /{name} has shape {'×'.join(map(str, ds.shape))}, expected {want}")
    if ds.dtype.kind not in kinds:
        raise FileError(f"{path}: /{name} holds {ds.dtype}, expected {'floats' if kinds == 'f' else 'integers'}")
    nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
    have = available_memory()
    if have is not None and nbytes > have // 2:
        raise FileError(f"{path}: /{name} declares {nbytes / 2**30:.1f} GiB, more than half the memory available")
    a = np.asarray(ds[()])
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        raise FileError(f"{path}: /{name} holds non-finite values (NaN or infinity)")
    return a.astype(dtype, copy=False) if dtype is not None else a


def read_words(path, f, n=None, name="vocab/words") -> list:
    """The vocabulary: UTF-8 strings, distinct, `n` of them when given."""
    h5py = _h5py()
    if name not in f or not hasattr(f[name], "dtype"):
        raise FileError(f"{path}: no dataset /{name} (the vocabulary)")
    ds = f[name]
    if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None and ds.dtype.kind not in "SU":
        raise FileError(f"{path}: /{name} is not a list of strings")
    if n is not None and ds.shape[0] != n:
        raise FileError(f"{path}: {ds.shape[0]:,} words in /{name} for {n:,} rows")
    raw = ds[()]
    try:
        words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in raw]
    except UnicodeDecodeError:
        raise FileError(f"{path}: /{name} holds words that are not UTF-8") from None
    if len(set(words)) != len(words):
        seen, dup = set(), None
        for w in words:
            if w in seen:
                dup = w
                break
            seen.add(w)
        raise FileError(f"{path}: /{name} holds the word {dup!r} twice")
    return words


def read_counts(path, f, n, name="vocab/counts", required=True):
    if name not in f and not required:
        return np.zeros(n, np.int64)
    counts = read_array(path, f, name, ndim=1, shape=(n,), kinds="iu", finite=False).astype(np.int64)
    if (counts < 0).any():
        raise FileError(f"{path}: /{name} holds negative counts")
    return counts


def read_vocab(f, path=None, n=None):
    path = path or f.filename
    words = read_words(path, f, n)
    return words, read_counts(path, f, len(words))


def attrs_dict(f):
    out = {}
    for k, v in f.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------ embeddings
MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def save_embeddings(path, words, counts, vectors, *, context=None, bias=None, context_bias=None,
                    svd=None, attrs=None, model=None, subwords=None):
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    model = _model_arrays(model)
    with atomic_h5(path) as f:
        root_attrs(f, "embeddings", {"dim": vectors.shape[1], **(attrs or {})})
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
        if model:
            g = f.create_group("model")
            for name, a in model.items():
                g.create_dataset(name, data=a)
        if subwords is not None:
            write_subwords(f, subwords)
        write_vocab(f, words, counts)


def write_subwords(f, sub):
    """/subword: the n-gram rows ([buckets, d], or [U, d] with /subword/ngram_buckets [U] naming each row's
    bucket) and (a model trained here) the words' own input rows [V, d]; attrs minn, maxn, buckets, hash
    (docs/subwords.md)."""
    g = f.create_group("subword")
    for k, v in sub.attrs().items():
        g.attrs[k] = v
    g.create_dataset("ngrams", data=np.ascontiguousarray(sub.ngram_vectors, np.float32))
    if sub.ngram_buckets is not None:
        g.create_dataset("ngram_buckets", data=np.ascontiguousarray(sub.ngram_buckets, np.int64))
    if sub.word_vectors is not None:
        g.create_dataset("words", data=np.ascontiguousarray(sub.word_vectors, np.float32))


def read_subwords(path, f, words, d):
    """The /subword group checked against its attrs and the vocabulary (n words, d dimensions): the n-gram
    settings in range, the hash the one fastemb computes, /subword/ngrams [buckets, d] (or [U, d] with
    /subword/ngram_buckets: U distinct buckets in range, among them every bucket the vocabulary `words`' n-grams
    fall in) and /subword/words [n, d] (optional) finite float32. None when the file has no /subword."""
    n = len(words)
    if "subword" not in f:
        return None
    g = f["subword"]
    if not isinstance(g, _h5py().Group):
        raise FileError(f"{path}: /subword is not a group")
    from fastemb.subwords import HASH_NAME, check_settings
    a = {k: g.attrs.get(k) for k in ("minn", "maxn", "buckets", "hash")}
    if text_attr(a["hash"]) != HASH_NAME:
        raise FileError(f"{path}: /subword hashes n-grams with {text_attr(a['hash'])!r}; fastemb computes "
                        f"{HASH_NAME!r}")
    minn, maxn, buckets = (int(a[k]) if isinstance(a[k], np.integer) else a[k] for k in ("minn", "maxn", "buckets"))
    check_settings(minn, maxn, buckets, f"{path}: /subword")
    ids = used = None
    if "subword/ngram_buckets" in f:
        ds = f["subword/ngram_buckets"]
        if hasattr(ds, "shape") and len(ds.shape) == 1 and ds.shape[0] > buckets:
            raise FileError(f"{path}: /subword/ngram_buckets lists {ds.shape[0]:,} rows for {buckets:,} buckets")
        ids = read_array(path, f, "subword/ngram_buckets", ndim=1, kinds="iu")
        if len(ids) and (ids.min() < 0 or ids.max() >= buckets):  # before any cast: uint64 cannot wrap
            raise FileError(f"{path}: /subword/ngram_buckets holds buckets outside [0, {buckets})")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            raise FileError(f"{path}: /subword/ngram_buckets lists a bucket twice")
        from fastemb.subwords import used_buckets
        used = used_buckets(words, minn, maxn, buckets)
        missing = np.setdiff1d(used, ids, assume_unique=True)
        if len(missing):
            raise FileError(f"{path}: /subword/ngram_buckets has no row for {len(missing):,} buckets the "
                            f"vocabulary's n-grams use (minn {minn}, maxn {maxn}, buckets {buckets})")
    rows = buckets if ids is None else len(ids)
    ngrams = read_array(path, f, "subword/ngrams", ndim=2, shape=(rows, d), dtype=np.float32)
    words = read_array(path, f, "subword/words", ndim=2, shape=(n, d), dtype=np.float32) if "subword/words" in f \
        else None
    for name, arr in (("ngrams", ngrams), ("words", words)):
        if arr is not None and arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
            raise FileError(f"{path}: /subword/{name} holds values beyond float32's range")
    return {"minn": minn, "maxn": maxn, "buckets": buckets, "ngrams": ngrams, "words": words, "ngram_buckets": ids,
            "known": used}


def _model_arrays(model) -> dict:
    """A model's named arrays as they are written under /model/: floats as float32, integers as int64, 1 or 2
    dimensions, names that are identifiers."""
    out = {}
    for name, a in (model or {}).items():
        a = np.asarray(a)
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise FastembError(f"model array name {name!r} is not an identifier")
        if a.ndim not in (1, 2) or a.dtype.kind not in "fiu":
            raise FastembError(f"model array {name} must be a 1-D or 2-D array of numbers (got {a.dtype} {a.shape})")
        out[name] = np.ascontiguousarray(a, np.float32 if a.dtype.kind == "f" else np.int64)
    return out


def read_model(path, f, expected=None, expected_what="model") -> dict | None:
    """The named arrays under /model/ (None when there is none): each a 1-D or 2-D dataset of numbers, floats
    finite and read as float32, integers as int64; nothing else may be in the group. What the arrays must be
    for a given model is checked by its owner (e.g. nplm.LanguageModel) before any kernel sees them; `expected`
    (name -> (shape, how to say it)), when the owner can tell from the attributes, is compared with every
    array's declared shape before its data is read (a crafted file declaring a huge array is refused unread)."""
    if "model" not in f:
        return None
    g = f["model"]
    if not isinstance(g, _h5py().Group):
        raise FileError(f"{path}: /model is not a group")
    out = {}
    for name in g.keys():
        if not MODEL_NAME.match(name):
            raise FileError(f"{path}: /model/{name[:40]!r} is not a model array name")
        if not isinstance(g[name], _h5py().Dataset):
            raise FileError(f"{path}: /model/{name} is not a dataset")
        ndim = len(g[name].shape)
        if ndim not in (1, 2):
            raise FileError(f"{path}: /model/{name} has {ndim} dimensions, expected 1 or 2")
        if g[name].dtype.kind not in "fiu":
            raise FileError(f"{path}: /model/{name} holds {g[name].dtype}, expected numbers")
        if expected is not None:  # the owner's shapes, compared before any data is read
            if name not in expected:
                raise FileError(f"{path}: damaged {expected_what} (/model/{name} is not one of its arrays)")
            shape, label = expected[name]
            if tuple(g[name].shape) != tuple(shape):
                raise FileError(f"{path}: damaged {expected_what} (/model/{name} is "
                                f"{'×'.join(map(str, g[name].shape))}, expected {label})")
        a = read_array(path, f, f"model/{name}", kinds="fiu")
        if a.dtype.kind == "f" and a.size and np.abs(a).max() > np.finfo(np.float32).max:
            raise FileError(f"{path}: /model/{name} holds values beyond float32's range")
        out[name] = np.ascontiguousarray(a, np.float32 if a.dtype.kind == "f" else np.int64)
    return out


def mapped_array(path, f, name):
    """A read-only np.memmap of dataset `name` when HDF5 stores it as one contiguous block of little-endian
    float32 or float16 (as fastemb writes /embedding), else None. Nothing is read but the metadata."""
    ds = f[name]
    if ds.chunks is not None or ds.compression is not None or ds.dtype not in (np.dtype("<f4"), np.dtype("<f2")):
        return None
    offset = ds.id.get_offset()
    if offset is None:
        return None
    size = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
    if offset + size > os.path.getsize(path):
        raise FileError(f"{path}: /{name} lies beyond the end of the file")
    return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)


def load_embeddings(path, *, limit=None, dtype=np.float32, mmap=False) -> dict:
    """Any HDF5 file with an `embedding` matrix [V, d] and `vocab/words` [V] (fastemb's own files, or another
    tool's in the documented layout: then a warning); every optional part checked against V and d.
    limit: the first `limit` words only (their rows are all that is read); dtype: float32 or float16
    storage; mmap: map /embedding read-only instead of reading it (its values are checked when the first
    query computes the norms; the other parts are not loaded)."""
    path = os.fspath(path)
    with open_h5(path, "embeddings", foreign_ok=True) as f:
        ours = text_attr(f.attrs.get("encoding-type")) == ENCODING_TYPE
        if not ours:
            if "embedding" not in f or "vocab/words" not in f:
                raise FileError(f"{path}: not a fastemb file, nor embeddings in the documented layout (an "
                                f"/embedding matrix and its /vocab/words)")
            log.warning(f"warning: {path} was not written by fastemb; reading its /embedding and /vocab/words")
        if limit is not None or mmap:
            return _load_part(path, f, ours, limit, dtype, mmap)
        vectors = read_array(path, f, "embedding", ndim=2, dtype=dtype)
        n, d = vectors.shape
        if n == 0 or d == 0:
            raise FileError(f"{path}: /embedding is empty ({n}×{d})")
        words = read_words(path, f, n)
        out = {"words": words, "counts": read_counts(path, f, n, required=False), "vectors": vectors,
               "attrs": attrs_dict(f) if ours else {"source_file": path}}
        for name, shape in (("context_embedding", (n, d)), ("bias", (n,)), ("context_bias", (n,))):
            out[name] = read_array(path, f, name, ndim=len(shape), shape=shape, dtype=np.float32) if name in f \
                else None
        out["svd"] = None
        if "svd" in f:
            s = read_array(path, f, "svd/s", ndim=1, dtype=np.float32)
            k = s.shape[0]
            u = read_array(path, f, "svd/u", ndim=2, shape=(n, k), dtype=np.float32)
            vt = read_array(path, f, "svd/vt", ndim=2, shape=(k, None), dtype=np.float32)
            out["svd"] = {"u": u, "s": s, "vt": vt}
        expected = None
        if "model" in f and isinstance(f["model"], _h5py().Group) and out["attrs"].get("algo") == "nplm":
            from fastemb.models.nplm import model_shapes
            expected = model_shapes(path, out["attrs"], n, d, f["model"])
        out["model"] = read_model(path, f, expected, "language model")
        out["subwords"] = read_subwords(path, f, words, d)
        return out


def _load_part(path, f, ours, limit, dtype, mmap) -> dict:
    """The first `limit` rows of /embedding (read, or mapped), their words and counts; no other part."""
    if "embedding" not in f or not hasattr(f["embedding"], "shape") or len(f["embedding"].shape) != 2:
        raise FileError(f"{path}: no 2-d dataset /embedding")
    ds = f["embedding"]
    if ds.dtype.kind != "f":
        raise FileError(f"{path}: /embedding holds {ds.dtype}, expected floats")
    n, d = ds.shape
    if n == 0 or d == 0:
        raise FileError(f"{path}: /embedding is empty ({n}×{d})")
    words = read_words(path, f, n)
    take = n if limit is None else min(n, limit)
    counts = read_counts(path, f, n, required=False)[:take]
    if mmap:
        vectors = mapped_array(path, f, "embedding")
        if vectors is None:
            raise FileError(f"{path}: /embedding is chunked, compressed or not float32/float16: it cannot be "
                            f"memory-mapped (load it without mmap, or save it again with fastemb)")
        vectors = vectors[:take]
        if vectors.dtype != np.dtype(dtype):
            raise FileError(f"{path}: /embedding holds {vectors.dtype}: a memory map keeps the file's type (give "
                            f"dtype={vectors.dtype.name})")
    else:
        have = available_memory()
        if have is not None and take * d * np.dtype(dtype).itemsize > have // 2:
            raise FileError(f"{path}: {take:,} × {d:,} values are more than half the memory available")
        vectors = np.empty((take, d), dtype)
        step = max(1, (64 << 20) // (4 * d))
        for r0 in range(0, take, step):
            block = np.asarray(ds[r0:min(take, r0 + step)])
            if not np.isfinite(block).all():
                raise FileError(f"{path}: /embedding holds non-finite values (NaN or infinity)")
            vectors[r0:r0 + len(block)] = block
        if not np.isfinite(vectors).all():
            raise FileError(f"{path}: /embedding holds values beyond {np.dtype(dtype).name}'s range")
    attrs = attrs_dict(f) if ours else {"source_file": path}
    return {"words": words[:take], "counts": counts, "vectors": vectors, "attrs": attrs, "context_embedding": None,
            "bias": None, "context_bias": None, "svd": None, "model": None}


# --------------------------------------------------------------------------------------- co-occurrence
class CoocWriter:
    """Writes a CSR matrix row block by row block (so it never has to be whole in memory)."""

    def __init__(self, path, words, counts, attrs=None):
        self.path = path
        self.n_rows = len(words)
        self._ctx = atomic_h5(path)
        self.f = self._ctx.__enter__()
        root_attrs(self.f, "cooccurrence", attrs)
        write_vocab(self.f, words, counts)
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
        if self.f.fastemb_raw.error is not None:
            raise _write_error(self.path, self.f.fastemb_raw.error)
        n = len(indices)
        if n:
            for ds, arr in ((self.indices, indices), (self.data, data)):
                ds.resize((self.nnz + n,))
                ds[self.nnz:self.nnz + n] = arr
        self.row_nnz[r0:r1] += row_nnz  # a row may arrive in several consecutive pieces
        self.nnz += n

    def close(self, ok=True):
        """Finish and rename into place (ok) or throw the partial file away."""
        if ok:
            indptr = np.zeros(self.n_rows + 1, np.int64)
            np.cumsum(self.row_nnz, out=indptr[1:])
            self.group.create_dataset("indptr", data=indptr)
            self.data = self.indices = self.group = None
            self._ctx.__exit__(None, None, None)
        else:
            self.data = self.indices = self.group = None
            with contextlib.suppress(Exception):
                self._ctx.__exit__(RuntimeError, RuntimeError("abandoned"), None)


def load_cooc(path):
    """(words, counts, scipy.sparse.csr_matrix float32, attrs), the CSR structure checked."""
    import scipy.sparse as sp
    path = os.fspath(path)
    with open_h5(path, "cooccurrence") as f:
        words, counts = read_vocab(f, path)
        n = len(words)
        if "cooccurrence" not in f:
            raise FileError(f"{path}: no /cooccurrence group")
        try:
            shape = tuple(int(x) for x in f["cooccurrence"].attrs["shape"])
        except (KeyError, TypeError, ValueError):
            raise FileError(f"{path}: /cooccurrence has no valid shape attribute") from None
        if shape != (n, n):
            raise FileError(f"{path}: /cooccurrence is {shape}, the vocabulary has {n:,} words")
        indptr = read_array(path, f, "cooccurrence/indptr", ndim=1, shape=(n + 1,), kinds="iu", finite=False)
        indptr = indptr.astype(np.int64)
        if indptr[0] != 0 or (np.diff(indptr) < 0).any():
            raise FileError(f"{path}: /cooccurrence/indptr does not start at 0 and rise")
        nnz = int(indptr[-1])
        indices = read_array(path, f, "cooccurrence/indices", ndim=1, shape=(nnz,), kinds="iu", finite=False)
        if nnz and (indices.min() < 0 or indices.max() >= n):
            raise FileError(f"{path}: /cooccurrence/indices holds a column outside 0..{n - 1}")
        data = read_array(path, f, "cooccurrence/data", ndim=1, shape=(nnz,), dtype=np.float32)
        if (data < 0).any():
            raise FileError(f"{path}: /cooccurrence/data holds negative counts")
        m = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=shape)
        return words, counts, m, attrs_dict(f)


# ----------------------------------------------------------------------------------------- alignment
def save_alignment(path, R, *, attrs=None, arrays=None):
    with atomic_h5(path) as f:
        root_attrs(f, "alignment", None)
        g = f.create_group("alignment")
        g.create_dataset("R", data=np.asarray(R, dtype=np.float32))
        for k, v in (attrs or {}).items():
            if v is not None:
                g.attrs[k] = v
        for k, v in (arrays or {}).items():
            if v is not None:
                g.create_dataset(k, data=np.asarray(v, dtype=np.float32))


def load_alignment(path):
    """(R, attrs, arrays): the matrix and its preprocessing, every shape consistent with R's."""
    path = os.fspath(path)
    with open_h5(path, "alignment") as f:
        R = read_array(path, f, "alignment/R", ndim=2, dtype=np.float32)
        d_src, d_out = R.shape
        proj = read_array(path, f, "alignment/tgt_projection", ndim=2, shape=(None, d_out), dtype=np.float32) \
            if "alignment/tgt_projection" in f else None
        d_tgt = d_out if proj is None else proj.shape[0]
        shapes = {"src_mean": (d_src,), "tgt_mean": (d_tgt,), "src_offset": (d_src,), "tgt_offset": (d_tgt,),
                  "loss": (None, 2), "refinement": (None, 3)}
        arrays = {"tgt_projection": proj} if proj is not None else {}
        for name, shape in shapes.items():
            if f"alignment/{name}" in f:
                arrays[name] = read_array(path, f, f"alignment/{name}", ndim=len(shape), shape=shape,
                                          dtype=np.float32)
        return R, attrs_dict(f["alignment"]), arrays


# ---------------------------------------------------------------------------------------------- info
def describe(path) -> dict:
    """What `fastemb info` prints: content, shapes, attributes."""
    path = os.fspath(path)
    with open_h5(path, foreign_ok=True) as f:
        if text_attr(f.attrs.get("encoding-type")) != ENCODING_TYPE:
            if "embedding" not in f or "vocab/words" not in f:
                raise FileError(f"{path}: not a fastemb file (no encoding-type=\"fastemb\" attribute), nor "
                                f"embeddings in the documented layout")
        out = {"path": path, "content": "embeddings (not written by fastemb)", "format_version": "-",
               **attrs_dict(f)}
        datasets = {}

        def visit(name, obj):
            if hasattr(obj, "shape"):
                datasets[name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}
        f.visititems(visit)
        out["datasets"] = datasets
        if "vocab/words" in f and hasattr(f["vocab/words"], "shape") and f["vocab/words"].ndim == 1:
            out["vocab_size"] = int(f["vocab/words"].shape[0])
            try:
                out["top_words"] = [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w)
                                    for w in f["vocab/words"][:10]]
            except (TypeError, ValueError, OSError):
                pass
        if "cooccurrence/data" in f and hasattr(f["cooccurrence/data"], "shape"):
            out["nnz"] = int(f["cooccurrence/data"].shape[0])
        return out
