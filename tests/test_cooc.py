import random

import h5py
import numpy as np
import pytest

from fastemb.cooc import CsrCollector, cooccurrence, distance_weights
from fastemb.sampling import keep_probabilities
from fastemb.store import load_cooc
from fastemb.vocab import build_vocab
from conftest import run_cli


def reference_cooc(sentences, n, window, weighting, symmetric):
    """Slow, obvious reference: every pair at distance 1..window inside a sentence."""
    X = np.zeros((n, n))
    for s in sentences:
        for i in range(len(s)):
            for j in range(i + 1, min(len(s), i + window + 1)):
                d = j - i
                w = {"harmonic": 1.0 / d, "uniform": 1.0, "dynamic": (window - d + 1) / window}[weighting]
                X[s[j], s[i]] += w  # the later word sees its left context
                if symmetric:
                    X[s[i], s[j]] += w
    return X


def id_sentences(enc):
    ends = np.asarray(enc.sentence_ends)
    starts = np.concatenate(([0], ends[:-1]))
    return [list(np.asarray(enc.ids[a:b])) for a, b in zip(starts, ends)]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from conftest import sample_lines
    path = tmp_path_factory.mktemp("c") / "small.txt"
    path.write_text("".join(sample_lines(300)))
    enc = build_vocab([str(path)], min_count=3, encode=True)
    yield enc
    enc.close()


def dense(enc, **kw):
    sink = CsrCollector(len(enc.vocab))
    cooccurrence(enc, sink, **kw)
    return sink.matrix()


@pytest.mark.parametrize("weighting", ["harmonic", "uniform", "dynamic"])
@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_slow_reference(small, weighting, window, symmetric):
    got = dense(small, window=window, weighting=weighting, symmetric=symmetric, sample=0.0, threads=2).toarray()
    ref = reference_cooc(id_sentences(small), len(small.vocab), window, weighting, symmetric)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_threads_and_spilling_give_identical_matrices(small):
    a = dense(small, window=5, threads=1)
    b = dense(small, window=5, threads=2)
    c = dense(small, window=5, threads=2, memory=1 << 15, block_tokens=1000)  # spills many runs to disk
    for m in (b, c):
        assert np.array_equal(a.indptr, m.indptr)
        assert np.array_equal(a.indices, m.indices)
        assert np.array_equal(a.data, m.data)


def test_spill_reports_runs_on_disk(small):
    sink = CsrCollector(len(small.vocab))
    stats = cooccurrence(small, sink, window=5, threads=2, memory=1 << 15, block_tokens=1000)
    assert stats["spilled_runs"] > 0


def test_subsampling_expected_counts(small):
    """Average over seeds equals a Python simulation of word2vec subsampling, within sampling error."""
    sample = 1e-3
    keep = keep_probabilities(small.vocab.counts, sample)
    assert keep.min() < 0.5 and keep.max() == 1.0
    n = len(small.vocab)
    reps = 60
    got = np.zeros((n, n))
    for seed in range(reps):
        got += dense(small, window=3, weighting="uniform", sample=sample, seed=seed).toarray()
    got /= reps
    rng = random.Random(0)
    sents = id_sentences(small)
    ref = np.zeros((n, n))
    for _ in range(reps):
        kept = [[t for t in s if rng.random() < keep[t]] for s in sents]
        ref += reference_cooc(kept, n, 3, "uniform", True)
    ref /= reps
    # row totals are sums of many pairs: compare them with a tolerance of a few standard errors
    tot_got, tot_ref = got.sum(1), ref.sum(1)
    full = reference_cooc(sents, n, 3, "uniform", True).sum(1)
    assert abs(got.sum() - ref.sum()) / ref.sum() < 0.02
    big = full > 200
    rel = np.abs(tot_got[big] - tot_ref[big]) / tot_ref[big]
    assert np.median(rel) < 0.05
    # and subsampling really removed pairs of the most frequent words
    assert tot_got[0] < 0.7 * full[0]


def test_same_seed_same_matrix_different_seed_differs(small):
    a = dense(small, window=3, sample=1e-3, seed=7)
    b = dense(small, window=3, sample=1e-3, seed=7)
    c = dense(small, window=3, sample=1e-3, seed=8)
    assert (a != b).nnz == 0 and (a != c).nnz > 0


def test_distance_weights():
    assert np.allclose(distance_weights(4, "harmonic")[1:], [1, 1 / 2, 1 / 3, 1 / 4])
    assert np.allclose(distance_weights(4, "dynamic")[1:], [1, 3 / 4, 1 / 2, 1 / 4])
    # the dynamic weight is the expectation of word2vec's window b ~ U{1..w}: P(b >= d)
    w = 5
    assert np.allclose(distance_weights(w, "dynamic")[1:], [sum(b >= d for b in range(1, w + 1)) / w
                                                            for d in range(1, w + 1)])


def test_cli_hdf5_round_trip_with_plain_h5py(kjv_small, tmp_path):
    out = tmp_path / "c.h5"
    rc, _, err = run_cli("cooc", kjv_small, "-o", out, "--window", "4", "--quiet")
    assert rc == 0, err
    with build_vocab([kjv_small], encode=True) as enc:
        expected = dense(enc, window=4)
        words, counts, m, attrs = load_cooc(out)
        assert words == enc.vocab.words and np.array_equal(counts, enc.vocab.counts)
        assert (m != expected).nnz == 0
        assert attrs["window"] == 4 and attrs["weighting"] == "dynamic" and attrs["counted_for"] == "glove"
    with h5py.File(out, "r") as f:  # nothing but h5py
        g = f["cooccurrence"]
        assert g.attrs["encoding-type"] == "csr_matrix"
        assert list(g.attrs["shape"]) == [len(words)] * 2
        assert g["indptr"][-1] == len(g["data"]) == m.nnz
        assert f["vocab/words"].asstr()[0] == words[0]
