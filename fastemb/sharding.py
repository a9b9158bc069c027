"""Shards of a corpus: byte ranges of files that start after a newline and end at one (compressed and
UTF-16/32 files are one shard each). `ShardReader` gives a shard's chunks exactly as the CorpusReader gives
the same bytes of the whole file, so counting shard by shard and merging equals counting the whole corpus.
Used by the local parallel counting pass (vocab.build_vocab with threads) and by the Dask tasks; local
paths need nothing more, URLs (s3://, gs://, file://, memory://...) are read with fsspec."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from fastemb.errors import FastembError, FileError, param

DEFAULT_SHARD_BYTES = 64 << 20
HEAD_BYTES = 4096        # the local reader sniffs this much of a file: a file's first shard is never shorter


@dataclass(frozen=True)
class Shard:
    """Bytes [start, end) of the file at `url`: whole lines (a compressed file: the whole file, end = its
    stored size). `index` orders the shards of a corpus (file, then offset); `file` numbers the files."""
    url: str
    start: int
    end: int
    index: int
    file: int = 0
    compressed: bool = False
    last: bool = True          # the file's last shard

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def is_url(p: str) -> bool:
    return "://" in p


def _compressed(path: str) -> bool:
    from fastemb.corpus import decompressor
    return decompressor(path) is not None


def _list_files(paths, storage_options):
    """[(url, size)] in the local reader's order: directories expanded recursively (sorted, files of a
    directory before its subdirectories, hidden entries skipped)."""
    from fastemb.corpus import Sentences, is_sentences, resolve_sources
    if is_sentences(paths) or isinstance(paths, Sentences):
        raise FastembError("distributed counting reads files (paths or fsspec URLs), not Python sentences")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise FastembError("no corpus given")
    out = []
    for p in paths:
        p = os.fspath(p)
        if p == "-":
            raise FastembError("distributed counting cannot read stdin: give files or URLs")
        if not is_url(p):
            out.extend((os.path.abspath(s), os.path.getsize(s)) for s in resolve_sources([p]))
            continue
        import fsspec
        try:
            fs, root = fsspec.core.url_to_fs(p, **(storage_options or {}))
            if fs.isdir(root):
                found = _walk(fs, root)
                if not found:
                    raise FileError(f"{p}: directory contains no text files")
                out.extend((fs.unstrip_protocol(name), size) for name, size in found)
            elif fs.exists(root):
                out.append((p, int(fs.size(root))))
            else:
                raise FileError(f"{p}: no such file or directory")
        except FastembError:
            raise
        except (OSError, ValueError, ImportError) as e:
            raise FileError(f"{p}: cannot open: {e}") from None
    return out


def _walk(fs, root):
    entries = sorted(fs.ls(root, detail=True), key=lambda e: os.path.basename(e["name"].rstrip("/")))
    files, dirs = [], []
    for e in entries:
        base = os.path.basename(e["name"].rstrip("/"))
        if base.startswith("."):
            continue
        (dirs if e["type"] == "directory" else files).append(e)
    out = [(e["name"], int(e["size"] or 0)) for e in files]
    for d in dirs:
        out.extend(_walk(fs, d["name"]))
    return out


def open_raw(url, storage_options=None):
    if not is_url(url):
        return open(url, "rb")
    import fsspec
    return fsspec.open(url, "rb", **(storage_options or {})).open()


def _cut_points(f, size, shard_bytes):
    """Offsets where shards start: 0, then after the first newline at or past each target. The first shard
    holds at least HEAD_BYTES (what the reader sniffs for an encoding)."""
    cuts = [0]
    target = max(shard_bytes, HEAD_BYTES)
    while target < size:
        f.seek(target - 1)
        pos, found = target - 1, -1
        while pos < size:
            block = f.read(min(1 << 16, size - pos))
            if not block:
                break
            i = block.find(b"\n")
            if i >= 0:
                found = pos + i
                break
            pos += len(block)
        if found < 0 or found + 1 >= size:
            break
        cuts.append(found + 1)
        target = found + 1 + shard_bytes
    return cuts


def shards(paths, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None) -> list:
    """The shards of a corpus: local paths, directories or fsspec URLs, in the local reader's order. Each
    file becomes byte ranges of about shard_bytes cut after a newline (found by reading a little past each
    target offset: a file is never read whole here); a compressed (.gz/.bz2/.xz) or UTF-16/32 file is
    one shard."""
    if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, (int, np.integer)) or shard_bytes < 1:
        raise FastembError(f"{param('shard_bytes')} must be a positive number of bytes (got {shard_bytes!r})")
    from fastemb.corpus import has_wide_bom
    out = []
    for file_no, (url, size) in enumerate(_list_files(paths, storage_options)):
        if _compressed(url) or size <= max(shard_bytes, HEAD_BYTES):
            cuts = [0]
        else:
            try:
                with open_raw(url, storage_options) as f:
                    head = f.read(4)
                    if has_wide_bom(head):
                        cuts = [0]
                    else:
                        cuts = _cut_points(f, size, int(shard_bytes))
            except OSError as e:
                raise FileError(f"{url}: cannot read: {e}") from None
        bounds = cuts + [size]
        for i in range(len(cuts)):
            out.append(Shard(url, bounds[i], bounds[i + 1], len(out), file_no, _compressed(url),
                             i == len(cuts) - 1))
    return out


class _Range:
    """Reads bytes [start, end) of a seekable binary file."""

    def __init__(self, f, start, end):
        self.f, self.left = f, end - start
        f.seek(start)

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def tell(self):
        return self.f.tell()


class _Prefixed:
    """A stream with bytes put in front: a UTF-8 byte-order mark in front of a shard that does not start
    its file makes the reader's sniffing settle on UTF-8 and skip exactly that mark."""

    def __init__(self, prefix, stream):
        self.prefix, self.stream = prefix, stream

    def read(self, n=-1):
        if self.prefix:
            head, self.prefix = self.prefix, b""
            return head + self.stream.read(max(1, n - len(head)) if n and n > 0 else n)
        return self.stream.read(n)


class ShardReader:
    """The normalised byte chunks of one shard, exactly as CorpusReader yields them for the same bytes of
    the whole file (decoding, BOM at the file's start only, lower-casing, token pattern), ending with the
    b"\\n" the reader puts after each file."""

    def __init__(self, shard, params):
        from fastemb.corpus import CHUNK_BYTES, CorpusReader, Sentences
        self.shard = shard
        self.storage_options = params.get("storage_options")
        self.reader = CorpusReader(Sentences(()), lowercase=params["lowercase"],
                                   token_pattern=params["token_pattern"],
                                   chunk_bytes=params.get("chunk_bytes") or CHUNK_BYTES)
        self.bytes_done = 0

    @property
    def invalid_bytes(self):
        return self.reader.invalid_bytes

    def __iter__(self):
        from fastemb.corpus import decompressor
        s = self.shard
        try:
            raw = open_raw(s.url, self.storage_options)
        except OSError as e:
            raise FileError(f"{s.url}: cannot open: {e.strerror or e}") from None
        with raw:
            if s.compressed:
                stream = decompressor(s.url)(raw)
            else:
                stream = _Range(raw, s.start, s.end)
                if s.start > 0:
                    stream = _Prefixed(b"\xef\xbb\xbf", stream)
            for chunk in self.reader.normalised_chunks(stream, s.url):
                self.bytes_done = raw.tell() - s.start if not s.compressed else 0
                yield chunk
        self.bytes_done = s.nbytes
        yield b"\n"
