"""fastText's .bin model files (unsupervised skip-gram or CBOW), read into Embeddings with their n-gram
vectors, so every word, in the vocabulary or not, gets the vector fastText's get_word_vector gives.

The layout (fastText 0.9, FastText::saveModel; little-endian):
    int32 magic 793712314, int32 version (11 or 12)
    Args: 12 int32 (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
          lrUpdateRate) and a float64 (t)
    Dictionary: int32 size, nwords, nlabels; int64 ntokens, pruneidx_size; `size` entries of
          (NUL-terminated word, int64 count, int8 type); pruneidx_size pairs of int32
    uint8 quant_input; input matrix: int64 m, n, then m·n float32 (m = nwords + bucket, n = dim)
    uint8 quant_output; output matrix: int64 m, n, then m·n float32
Every declared size is checked against the file's size before anything is allocated; quantized (.ftz) and
supervised models are refused in one line.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from fastemb.errors import FileError

MAGIC = 793712314
VERSIONS = (11, 12)
ARGS = struct.Struct("<12id")
DICT_HEAD = struct.Struct("<3i2q")
MATRIX_HEAD = struct.Struct("<2q")
MODELS = {1: "cbow", 2: "skipgram", 3: "supervised"}
LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
MAX_DIM = 1 << 16


def is_fasttext_bin(path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and struct.unpack("<i", head)[0] == MAGIC


def read_header(path):
    """(args dict, words, counts, offset of the input matrix's quantisation flag), everything checked."""
    from fastemb.files import check_readable
    path = check_readable(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        def take(n, what):
            b = f.read(n)
            if len(b) != n:
                raise FileError(f"{path}: truncated fastText model (in its {what})")
            return b

        magic, version = struct.unpack("<2i", take(8, "header"))
        if magic != MAGIC:
            raise FileError(f"{path}: not a fastText .bin model (magic {magic:#x})")
        if version not in VERSIONS:
            raise FileError(f"{path}: fastText model version {version}; fastemb reads versions 11 and 12")
        names = ("dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket", "minn", "maxn",
                 "lr_update_rate", "t")
        args = dict(zip(names, ARGS.unpack(take(ARGS.size, "arguments"))))
        model = MODELS.get(args["model"])
        if model is None:
            raise FileError(f"{path}: unknown fastText model type {args['model']}")
        if model == "supervised":
            raise FileError(f"{path}: a supervised fastText model (a classifier): fastemb reads unsupervised "
                            f"(skipgram, cbow) models")
        if not 1 <= args["dim"] <= MAX_DIM:
            raise FileError(f"{path}: dimension {args['dim']} out of range (1..{MAX_DIM})")
        if not 0 <= args["bucket"] <= 2**31 - 1:
            raise FileError(f"{path}: bucket count {args['bucket']} out of range")
        if not (0 <= args["maxn"] <= 100 and 0 <= args["minn"] <= 100) or \
                (args["maxn"] > 0 and not 1 <= args["minn"] <= args["maxn"]):
            raise FileError(f"{path}: n-gram lengths minn {args['minn']}, maxn {args['maxn']} out of range")
        if args["maxn"] > 0 and args["bucket"] == 0:
            raise FileError(f"{path}: n-grams (maxn {args['maxn']}) but no buckets")
        n_size, nwords, nlabels, ntokens, prune = DICT_HEAD.unpack(take(DICT_HEAD.size, "dictionary header"))
        if nwords < 0 or nlabels < 0 or n_size != nwords + nlabels or ntokens < 0:
            raise FileError(f"{path}: damaged dictionary header (size {n_size}, {nwords} words, {nlabels} labels)")
        if nwords == 0:
            raise FileError(f"{path}: the model has no words")
        if prune != -1 and prune != 0:
            raise FileError(f"{path}: a pruned (quantized) fastText model: fastemb reads unquantized .bin models")
        pos = f.tell()
        # after the dictionary: two matrices (a flag byte, an int64 shape, the floats) and nothing else, so the
        # dictionary's length is known before it is read; each entry takes at least 10 bytes
        matrices = 2 * (1 + MATRIX_HEAD.size) + 4 * dim_rows(nwords, args) * args["dim"]
        dict_len = size - pos - matrices
        if dict_len < 10 * n_size:
            raise FileError(f"{path}: truncated fastText model: its header declares {pos + matrices + 10 * n_size:,} "
                            f"bytes or more, the file has {size:,}")
        words, counts = [], np.empty(nwords, np.int64)
        blob = f.read(dict_len)
        q = 0
        for i in range(n_size):
            end = blob.find(b"\0", q)
            if end < 0 or end + 10 > len(blob):
                raise FileError(f"{path}: truncated fastText model (in dictionary entry {i})")
            raw = blob[q:end]
            count, kind = struct.unpack("<qb", blob[end + 1:end + 10])
            q = end + 10
            if kind != (0 if i < nwords else 1):
                raise FileError(f"{path}: dictionary entry {i} has type {kind} (words first, then labels)")
            if count < 0:
                raise FileError(f"{path}: dictionary entry {i} has a negative count")
            if i < nwords:
                try:
                    words.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise FileError(f"{path}: dictionary entry {i} is not UTF-8") from None
                counts[i] = count
        if q != dict_len:
            raise FileError(f"{path}: {dict_len - q:,} bytes between the dictionary and the matrices (a damaged or "
                            f"unknown fastText layout)")
        if len(set(words)) != len(words):
            raise FileError(f"{path}: the dictionary holds a word twice")
        return path, size, args, model, words, counts, pos + q


def dim_rows(nwords, args) -> int:
    """Rows of both matrices together: input nwords + bucket, output nwords (unsupervised models)."""
    return 2 * nwords + args["bucket"]


def _matrix(path, size, offset, rows, dim, what):
    """(matrix, offset after it): the quantisation flag, the int64 shape (must be rows × dim) and the floats,
    their size checked against the file's before reading."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(1 + MATRIX_HEAD.size)
    if len(head) != 1 + MATRIX_HEAD.size:
        raise FileError(f"{path}: truncated fastText model (before its {what} matrix)")
    if head[0] != 0:
        raise FileError(f"{path}: a quantized fastText model (.ftz): fastemb reads unquantized .bin models")
    m, n = MATRIX_HEAD.unpack(head[1:])
    if (m, n) != (rows, dim):
        raise FileError(f"{path}: the {what} matrix is {m}×{n}, expected {rows}×{dim}")
    start = offset + 1 + MATRIX_HEAD.size
    end = start + 4 * rows * dim
    if end > size:
        raise FileError(f"{path}: truncated fastText model: the {what} matrix needs {end:,} bytes, the file has "
                        f"{size:,}")
    a = np.fromfile(path, dtype="<f4", count=rows * dim, offset=start).reshape(rows, dim)
    if not np.isfinite(a).all():
        raise FileError(f"{path}: the {what} matrix holds non-finite values")
    return np.ascontiguousarray(a, np.float32), end


def read_bin(path):
    """Embeddings of a fastText .bin model: in-vocabulary vectors as get_word_vector gives them (the mean of
    the word's row and its n-gram rows), the n-gram rows for any other word, the output matrix as context
    vectors (negative sampling)."""
    from fastemb.embeddings import Embeddings
    from fastemb.kernels import subword as KS
    from fastemb.subwords import SubwordVectors, word_rows
    path, size, args, model, words, counts, offset = read_header(path)
    from fastemb.files import available_memory
    nwords, dim, bucket = len(words), args["dim"], args["bucket"]
    need = 4 * (2 * nwords + bucket) * dim
    have = available_memory()
    if have is not None and need > have // 2:
        raise FileError(f"{path}: the model needs {need / 2**30:.1f} GiB, more than half the memory available")
    inputs, offset = _matrix(path, size, offset, nwords + bucket, dim, "input")
    output, offset = _matrix(path, size, offset, nwords, dim, "output")  # one row per word (hs: per tree node)
    context = output if LOSSES.get(args["loss"]) == "ns" else None
    minn, maxn = args["minn"], args["maxn"]
    subwords = maxn > 0
    indptr, indices = word_rows(words, minn, maxn if subwords else 0, max(bucket, 1))
    vectors = np.empty((nwords, dim), np.float32)
    KS.mean_rows(inputs, indptr, indices, vectors)
    sub = SubwordVectors(words, minn, maxn, bucket, inputs[nwords:], word_vectors=inputs[:nwords]) if subwords \
        else None
    attrs = {"source_file": path, "source": "fasttext", "algo": {"skipgram": "sgns", "cbow": "cbow"}[model],
             "fasttext_model": model, "fasttext_loss": LOSSES.get(args["loss"], str(args["loss"])),
             "dim": dim, "window": args["ws"], "epochs": args["epoch"], "negative": args["neg"],
             "min_count": args["min_count"], "minn": minn, "maxn": maxn, "buckets": bucket, "add_contexts": False}
    return Embeddings(words, vectors, counts, context_vectors=context, attrs=attrs, subwords=sub)
