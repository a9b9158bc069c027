"""Numba kernels of the text classifier (fastText's supervised mode): a document is the mean of its rows of
the input matrix (its words, and hashed word n-grams), a linear layer gives one score per label, a softmax
turns them into probabilities; SGD updates the output layer and, through the mean, every input row.

Documents are token arrays: `tok` holds indices into a table of word types (`type_row`: the input row of
the word, -1 when it is not in the vocabulary; `type_hash`: the FNV-1a hash of its UTF-8 bytes, which the
n-gram buckets are computed from, so they do not depend on the vocabulary), `doc_ends` the end offset of
each document. Only arrays and scalars cross this module's boundary; every index a kernel reads was
checked by the caller (classify.py) against the matrices' shapes.

Floating-point kernels use numpy's error model: a diverging run gives inf/nan (which the caller detects after
every call: "training diverged"), never an exception inside a parallel region.

Hogwild over chunks of documents with `prange`: each chunk owns its RNG, seeded from (seed, epoch, chunk),
and computes its learning rate from the tokens trained before it, so a 1-thread run is reproducible bit for
bit and an n-thread run differs only by Hogwild races.
"""
import numpy as np
from numba import njit, prange

from fastemb.kernels.rng import stream as _stream
from fastemb.kernels.rng import xorshift as _next

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
NGRAM_MULT = np.uint64(116049371)  # fastText's multiplier when it folds word hashes into an n-gram's hash


@njit(cache=True, nogil=True)
def fnv1a(data, offsets):
    """64-bit FNV-1a of each string data[offsets[i]:offsets[i+1]] (UTF-8 bytes): the same on every platform."""
    n = offsets.shape[0] - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = FNV_OFFSET
        for p in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[p])) * FNV_PRIME
        out[i] = h
    return out


@njit(cache=True, nogil=True, inline="always")
def _mix(h):
    """splitmix64's finaliser: every bit of an n-gram's hash reaches the low bits the bucket is taken from."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def ngram_bucket(hashes, buckets):
    """The bucket (0..buckets-1) of the n-gram whose words have these FNV-1a hashes, in order."""
    h = hashes[0]
    for j in range(1, hashes.shape[0]):
        h = h * NGRAM_MULT + hashes[j]
    return np.int64(_mix(h) % np.uint64(buckets))


@njit(cache=True, nogil=True, inline="always")
def _hash_at(tok, i, a1, type_hash, eos_hash):
    """The hash of the document's i-th token; position a1 is the end-of-line word."""
    return type_hash[tok[i]] if i < a1 else eos_hash


@njit(cache=True, nogil=True)
def doc_rows(tok, a0, a1, type_row, type_hash, n_words, buckets, ngrams, eos_row, eos_hash, rows):
    """Input rows of the document tok[a0:a1] into rows[]: its in-vocabulary words, the end-of-line word
    (fastText's </s>, when eos_row >= 0: it ends every line, a learned offset of every mean), then (ngrams > 1)
    the bucket of every word n-gram of 2..ngrams words over the words and the end-of-line word (out-of-
    vocabulary words take part, as in fastText), at n_words + bucket. rows must hold (a1 - a0 + 1) * ngrams
    entries. Returns how many were written."""
    n = 0
    for i in range(a0, a1):
        r = type_row[tok[i]]
        if r >= 0:
            rows[n] = r
            n += 1
    end = a1
    if eos_row >= 0:
        rows[n] = eos_row
        n += 1
        end = a1 + 1
    if ngrams > 1:
        nb = np.uint64(buckets)
        for i in range(a0, end):
            h = _hash_at(tok, i, a1, type_hash, eos_hash)
            stop = min(end, i + ngrams)
            for j in range(i + 1, stop):
                h = h * NGRAM_MULT + _hash_at(tok, j, a1, type_hash, eos_hash)
                rows[n] = n_words + np.int64(_mix(h) % nb)
                n += 1
    return n


@njit(cache=True, nogil=True, fastmath=True, inline="always", error_model="numpy")
def _forward(emb, out, rows, n, hidden, scores):
    """hidden = mean of emb[rows[:n]] (zero when n == 0); scores = exp(out·hidden - max); returns
    (sum of scores, the max subtracted)."""
    d = hidden.shape[0]
    for k in range(d):
        hidden[k] = 0.0
    for j in range(n):
        e = emb[rows[j]]
        for k in range(d):
            hidden[k] += e[k]
    if n > 0:
        inv = np.float32(1.0) / np.float32(n)
        for k in range(d):
            hidden[k] *= inv
    top = np.float32(-np.inf)
    for l in range(out.shape[0]):
        o = out[l]
        s = np.float32(0.0)
        for k in range(d):
            s += o[k] * hidden[k]
        scores[l] = s
        if s > top:
            top = s
    z = np.float32(0.0)
    for l in range(out.shape[0]):
        scores[l] = np.exp(scores[l] - top)
        z += scores[l]
    return z, top


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def sgd_step(emb, out, rows, n, label, lr, hidden, grad, scores):
    """One SGD step on one document (rows[:n], n >= 1) of class `label`: softmax cross-entropy, its gradient
    taken with the values before the step. out[l] += lr·(1[l = label] − p_l)·hidden; every input row
    (once per occurrence in rows) += (1/n)·Σ_l lr·(1[l = label] − p_l)·out_before[l]. Returns −log p_label."""
    d = hidden.shape[0]
    z, _ = _forward(emb, out, rows, n, hidden, scores)
    loss = np.log(z) - np.log(max(scores[label], np.float32(1e-30)))
    for k in range(d):
        grad[k] = 0.0
    inv_z = np.float32(1.0) / z
    for l in range(out.shape[0]):
        target = np.float32(1.0) if l == label else np.float32(0.0)
        g = lr * (target - scores[l] * inv_z)
        o = out[l]
        for k in range(d):
            grad[k] += g * o[k]
        for k in range(d):
            o[k] += g * hidden[k]
    inv = np.float32(1.0) / np.float32(n)
    for k in range(d):
        grad[k] *= inv
    for j in range(n):
        e = emb[rows[j]]
        for k in range(d):
            e[k] += grad[k]
    return loss


@njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
def train_chunks(tok, doc_ends, lab, lab_ends, type_row, type_hash, n_words, buckets, ngrams, eos_row, eos_hash, order,
                 chunk_starts, tokens_before, emb, out, lr0, total_tokens, seed, epoch, chunk_base, max_rows,
                 loss_out, count_out):
    """Train on the documents order[chunk_starts[0]:chunk_starts[-1]]; chunk q covers
    order[chunk_starts[q]:chunk_starts[q+1]] and starts after tokens_before[q] tokens of the whole run (all
    epochs), its learning rate lr0·(1 − tokens so far / total_tokens) decaying document by document. A
    document with several labels is trained on one of them drawn at random (fastText's rule); one with no
    input row (every word out of the vocabulary, no end-of-line word, no n-gram) is skipped. loss_out[q],
    count_out[q]: summed loss and documents trained of chunk q."""
    d = emb.shape[1]
    n_labels = out.shape[0]
    n_chunks = chunk_starts.shape[0] - 1
    for q in prange(n_chunks):
        state = _stream(seed, np.uint64(epoch) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(chunk_base + q))
        rows = np.empty(max_rows, np.int64)
        hidden = np.empty(d, np.float32)
        grad = np.empty(d, np.float32)
        scores = np.empty(n_labels, np.float32)
        done = tokens_before[q]
        loss = 0.0
        count = 0
        for p in range(chunk_starts[q], chunk_starts[q + 1]):
            doc = order[p]
            a0 = doc_ends[doc - 1] if doc > 0 else 0
            a1 = doc_ends[doc]
            lr = np.float32(lr0 * max(0.0, 1.0 - done / total_tokens))
            done += a1 - a0
            n = doc_rows(tok, a0, a1, type_row, type_hash, n_words, buckets, ngrams, eos_row, eos_hash, rows)
            if n == 0:
                continue
            b0 = lab_ends[doc - 1] if doc > 0 else 0
            b1 = lab_ends[doc]
            y = lab[b0]
            if b1 - b0 > 1:
                state, r = _next(state)
                y = lab[b0 + np.int64(r % np.uint64(b1 - b0))]
            loss += sgd_step(emb, out, rows, n, y, lr, hidden, grad, scores)
            count += 1
        loss_out[q] = loss
        count_out[q] = count


@njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
def predict_docs(tok, doc_ends, type_row, type_hash, n_words, buckets, ngrams, eos_row, eos_hash, emb, out, max_rows,
                 probs):
    """probs[i] = the softmax over labels of document i; a document with no input row gets the uniform
    distribution (its mean vector is zero; never with the end-of-line word). Parallel over blocks of
    documents."""
    n_docs = doc_ends.shape[0]
    d = emb.shape[1]
    n_labels = out.shape[0]
    block = 256
    n_blocks = (n_docs + block - 1) // block
    for b in prange(n_blocks):
        rows = np.empty(max_rows, np.int64)
        hidden = np.empty(d, np.float32)
        scores = np.empty(n_labels, np.float32)
        for i in range(b * block, min(n_docs, (b + 1) * block)):
            a0 = doc_ends[i - 1] if i > 0 else 0
            n = doc_rows(tok, a0, doc_ends[i], type_row, type_hash, n_words, buckets, ngrams, eos_row, eos_hash,
                         rows)
            z, _ = _forward(emb, out, rows, n, hidden, scores)
            inv_z = np.float32(1.0) / z
            for l in range(n_labels):
                probs[i, l] = scores[l] * inv_z
