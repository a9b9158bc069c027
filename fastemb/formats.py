"""Interchange formats: word2vec text and binary, GloVe text (byte-compatible with gensim's
KeyedVectors.save_word2vec_format; the readers also take word2vec.c's binary files, which end every vector
with a newline that gensim leaves out)."""
from __future__ import annotations

import numpy as np

from .errors import FastembError, FileError
from .store import atomic_output

FORMATS = ("word2vec", "word2vec-binary", "glove")


def _text_row(word, row):
    return f"{word} {' '.join(str(v) for v in row)}\n".encode("utf-8")


def write_vectors(path, words, vectors, fmt):
    """Write `vectors` (float32 rows) for `words` in format `fmt`, atomically."""
    if fmt not in FORMATS:
        raise FastembError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    vectors = np.asarray(vectors, dtype=np.float32)
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise FastembError(f"word {w!r} contains whitespace: it cannot be written in {fmt} format")
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        if fmt != "glove":
            f.write(f"{len(words)} {vectors.shape[1]}\n".encode("utf-8"))
        for w, row in zip(words, vectors):
            if fmt == "word2vec-binary":
                f.write(f"{w} ".encode("utf-8") + row.tobytes())
            else:
                f.write(_text_row(w, row))


def _read_binary(f, path, n, dim):
    words, vectors = [], np.empty((n, dim), np.float32)
    row_bytes = 4 * dim
    for i in range(n):
        chars = bytearray()
        while True:
            c = f.read(1)
            if not c:
                raise FileError(f"{path}: truncated after {i} of {n} vectors")
            if c == b" ":
                break
            if c != b"\n" or chars:  # word2vec.c puts a newline after each vector, gensim does not
                chars += c
        data = f.read(row_bytes)
        if len(data) != row_bytes:
            raise FileError(f"{path}: truncated in the vector of word {i}")
        words.append(chars.decode("utf-8", errors="replace"))
        vectors[i] = np.frombuffer(data, dtype=np.float32)
    return words, vectors


def read_vectors(path, fmt=None):
    """(words, float32 vectors) from a word2vec (text or binary) or GloVe file; fmt=None guesses."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise FileError(f"{path}: {e.strerror}") from None
    with f:
        first = f.readline()
        parts = first.split()
        has_header = len(parts) == 2 and all(p.isdigit() for p in parts)
        if fmt is None:
            if not has_header:
                fmt = "glove"
            else:
                pos = f.tell()
                sample = f.read(4096)
                f.seek(pos)
                fmt = "word2vec" if _is_text(sample) else "word2vec-binary"
        if fmt in ("word2vec", "word2vec-binary") and not has_header:
            raise FileError(f"{path}: no 'count dimension' header line: not a word2vec file")
        if fmt == "word2vec-binary":
            return _read_binary(f, path, int(parts[0]), int(parts[1]))
        lines = ([] if has_header else [first]) + f.readlines()
    words, rows = [], []
    dim = int(parts[1]) if has_header else None
    for n, line in enumerate(lines, 2 if has_header else 1):
        items = line.decode("utf-8", errors="replace").rstrip("\n").rstrip(" ").split(" ")
        if len(items) < 2:
            continue
        if dim is None:
            dim = len(items) - 1
        if len(items) - 1 != dim:
            raise FileError(f"{path}:{n}: {len(items) - 1} values, expected {dim}")
        words.append(items[0])
        try:
            rows.append(np.array(items[1:], dtype=np.float32))
        except ValueError:
            raise FileError(f"{path}:{n}: not a number in the vector of {items[0]!r}") from None
    if not words:
        raise FileError(f"{path}: no vectors")
    return words, np.vstack(rows)


def _is_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # a character cut by the sample's end is fine
            return False
    return b"\x00" not in sample
