"""fastText's subword model: n-grams and hashing against fastText's own, the kernel's gradient against finite
differences, vectors for unknown words, the HDF5 layout, and fastText .bin files (read, and refused when
crafted or truncated)."""
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import run_cli, sample_lines

fasttext = pytest.importorskip("fasttext")

import fastemb  # noqa: E402
from fastemb import subwords as S  # noqa: E402
from fastemb.errors import FileError, OptionError  # noqa: E402

# multi-byte UTF-8 (2, 3 and 4 bytes), bytes >= 0x80 (the signed-char case), short words, the end-of-line
# word
WORDS = ["ab", "a", "naïve", "café", "日本語", "straße", "ŝuĝo", "zz", "Ünïcødé\x80", "\u00ff\u00fe", "𝔘𝔫𝔦",
         "the", "</s>", "kingdoms", "x" * 12]
EXTRA = "naïve café 日本語 straße ŝuĝo naïve café 𝔘𝔫𝔦 ÿþ\n"


@pytest.fixture(scope="module")
def ft_model(tmp_path_factory):
    """A tiny fastText skip-gram model trained by fasttext-numpy2 in a child process (fastText's training
    reports 'Encountered NaN' in a process where Numba has compiled code: see the report), and its corpus."""
    d = tmp_path_factory.mktemp("ft")
    corpus = d / "corpus.txt"
    corpus.write_text("".join(sample_lines(1500)) + EXTRA * 20, encoding="utf-8")
    path = d / "model.bin"
    code = ("import fasttext, sys\n"
            "for attempt in range(3):\n"
            "    try:\n"
            "        m = fasttext.train_unsupervised(sys.argv[1], model='skipgram', dim=12, minn=2, maxn=5,\n"
            "                                        bucket=5003, minCount=2, epoch=1, thread=1, verbose=0)\n"
            "        break\n"
            "    except RuntimeError:\n"
            "        pass\n"
            "m.save_model(sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", code, str(corpus), str(path)], check=True, timeout=300)
    return str(path), str(corpus)


# ------------------------------------------------------------------------------------------ hashing
def test_fnv1a_signed_chars():
    """fastText sign-extends each byte: FNV-1a with bytes >= 0x80 differs from the textbook hash there."""
    def reference(b, signed):
        h = 2166136261
        for c in b:
            x = (c - 256 if c >= 128 else c) & 0xFFFFFFFF if signed else c
            h = ((h ^ x) * 16777619) & 0xFFFFFFFF
        return h
    for w in ["ab", "<naïve>", "日本", "\x7f", "\x80", "ÿ"]:
        b = w.encode("utf-8")
        assert S.fnv1a(w) == reference(b, True)
        if any(c >= 128 for c in b):
            assert S.fnv1a(w) != reference(b, False)
    assert S.fnv1a("") == 2166136261


def test_ngrams_and_buckets_match_fasttext(ft_model):
    m = fasttext.load_model(ft_model[0])
    nwords = len(m.words)
    assert m.get_input_matrix().shape[0] == nwords + 5003
    for w in WORDS:
        grams, ids = m.get_subwords(w)
        mine = S.ngram_spans(w, 2, 5, 5003)
        k = len(mine)
        assert [g for g, _ in mine] == list(grams[len(grams) - k:]), w
        assert [nwords + b for _, b in mine] == ids[len(ids) - k:].tolist(), w
        assert len(grams) - k == (1 if w in m.words else 0), w  # the word's own row, when it has one
    # the CSR of rows per vocabulary word: the word's row, then its n-grams, as fastText's getSubwords
    indptr, indices = S.word_rows(m.words, 2, 5, 5003)
    for i, w in enumerate(m.words[:200]):
        assert indices[indptr[i]:indptr[i + 1]].tolist() == m.get_subwords(w)[1].tolist(), w


def test_ngram_rules():
    assert S.ngrams("ab", 3, 6) == ["<ab", "<ab>", "ab>"]
    assert S.ngrams("a", 1, 2) == ["<a", "a", "a>"]      # '<' and '>' alone are never n-grams
    assert S.ngrams("日本", 2, 2) == ["<日", "日本", "本>"]  # n counts characters, not bytes
    assert S.ngrams("</s>", 3, 6) == []
    assert S.ngrams("abc", 3, 0) == []


# ------------------------------------------------------------------------------------------ gradient
def _softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("shared,negative,grouped", [(True, 1, False), (False, 1, False), (True, 5, False),
                                                     (True, 5, True), (False, 1, True)])
def test_kernel_gradient_against_finite_differences(shared, negative, grouped):
    """One epoch with a tiny learning rate moves every input row by -alpha * n * dL/drow (n = the word's row
    count: fastText gives each row the hidden layer's whole gradient) and every output row by
    -alpha * dL/drow, L the skip-gram loss with the mean of the word's rows as its input vector. grouped: the
    rows train as RowGroups ("abc" and "abd" share "<a" and "ab" and no one else has them: one group; each
    word's own row and its own n-grams: one group)."""
    from fastemb.kernels import subword as K
    from fastemb.kernels import w2v as W
    from fastemb.models.word2vec import RowGroups
    if grouped:
        words = ["abc", "abd", "x"]                # 1 + 4 rows each, 2 of them shared
        indptr, indices, buckets = S.compact_rows(words, np.ones(3), 2, 2, 10007)
        n_in = 3 + len(buckets)
    else:
        words = ["ab", "ba", "x"]                  # "ab" and "ba": 1 + 3 rows each; 3 buckets force sharing
        indptr, indices = S.word_rows(words, 2, 2, 3)
        n_in = 3 + 3
    n_rows = np.diff(indptr)
    n = n_rows[0]
    assert n_rows[0] == n_rows[1]
    rng = np.random.default_rng(3)
    dim = 5
    syn0 = (rng.standard_normal((n_in, dim)) * 0.4).astype(np.float32)
    syn1 = (rng.standard_normal((3, dim)) * 0.4).astype(np.float32)
    sent = np.array([0, 1, 0, 0, 1, 1, 0, 1], np.int64)  # longer than the ring of live positions (window 1: 4)
    alias_prob, alias_idx = W.alias_table(np.array([0.0, 0.0, 1.0]))  # every negative is word 2
    sig, nls = W.sigmoid_tables()

    def loss(s0, s1):
        h = np.array([s0[indices[indptr[w]:indptr[w + 1]]].mean(axis=0) for w in range(3)], np.float64)
        total = 0.0
        for p in range(len(sent)):
            for j in (p - 1, p + 1):
                if 0 <= j < len(sent):
                    hc = h[sent[j]]
                    total += _softplus(-hc @ s1[sent[p]]) + negative * _softplus(hc @ s1[2])
        return total

    def numeric(which):
        base = [syn0.astype(np.float64), syn1.astype(np.float64)]
        grad = np.zeros_like(base[which])
        eps = 1e-5
        for idx in np.ndindex(grad.shape):
            hi = [b.copy() for b in base]
            lo = [b.copy() for b in base]
            hi[which][idx] += eps
            lo[which][idx] -= eps
            grad[idx] = (loss(*hi) - loss(*lo)) / (2 * eps)
        return grad

    g0, g1 = numeric(0), numeric(1)
    alpha = 2e-4 if grouped else 1e-3  # 5-row words: a window's updates change the next window's values more
    s1 = syn1.copy()
    lo = np.zeros(1, np.float64)
    pairs = np.zeros(1, np.int64)
    g = RowGroups(indptr, indices, len(syn0), grouped=grouped)
    assert g.n_groups == (3 + 1 if grouped else n_in)
    sums = np.zeros((g.n_groups, dim), np.float32)
    K.group_sums(syn0, g.group_of, sums)
    K.train_chunks(sent, np.array([len(sent)], np.int64), np.array([0, 1], np.int64), sums, s1, g.indptr, g.indices,
                   g.spread, g.n_rows, np.zeros(0, np.float32), alias_prob, alias_idx, sig, nls, False, shared,
                   True, 1, negative, np.float32(alpha), np.float32(alpha), 0.0, 1.0, 7, 0, lo, pairs)
    s0 = g.ungroup(syn0, sums)
    assert pairs[0] == 2 * (len(sent) - 1)
    assert abs(lo[0] - loss(syn0.astype(np.float64), syn1.astype(np.float64))) < 0.02 * lo[0]
    expect0 = -alpha * n * g0
    expect1 = -alpha * g1
    # tolerance: the sigmoid is read from a 1024-entry table (word2vec.c's), and the updates of one window
    # change the next window's values by O(alpha^2)
    assert np.abs((s0 - syn0) - expect0).max() < 0.03 * np.abs(expect0).max()
    assert np.abs((s1 - syn1) - expect1).max() < 0.03 * np.abs(expect1).max()
    touched = np.unique(indices[indptr[0]:indptr[2]])
    assert np.abs(s0 - syn0)[touched].min(axis=1).max() > 0  # every row of the inputs moved


# ------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def sub_model(tmp_path_factory, kjv_small):
    d = tmp_path_factory.mktemp("sub")
    out = d / "sub.h5"
    rc, _, err = run_cli("train", kjv_small, "-o", out, "--maxn", 5, "--minn", 3, "--buckets", 20000, "--epochs", 3,
                         "--threads", 2, "-q", "--seed", 3)
    assert rc == 0, err
    return str(out), d


def test_subword_model_file_and_oov_queries(sub_model):
    path, d = sub_model
    with h5py.File(path) as f:
        g = f["subword"]
        assert (g.attrs["minn"], g.attrs["maxn"], g.attrs["buckets"]) == (3, 5, 20000)
        assert g.attrs["hash"] == S.HASH_NAME
        stored = g["ngram_buckets"][()]
        assert g["ngrams"].shape == (len(stored), 100) and g["words"].shape == f["embedding"].shape
        assert not f.attrs["add_contexts"]
    e = fastemb.load(path)
    assert e.subwords is not None and "watersz" not in e
    # rows for exactly the buckets the vocabulary's n-grams use (a slow reference), each once
    used = {b for w in e.words for _, b in S.ngram_spans(w, 3, 5, 20000)}
    assert sorted(stored.tolist()) == sorted(used) and len(used) < 20000
    assert e.subwords.known.tolist() == sorted(used)  # the load's check computed it: passed on, the same set
    # an in-vocabulary vector is the mean of the word's own row and its n-gram rows
    i = e.index["waters"]
    rows = [e.subwords.word_vectors[i]] + [e.subwords.ngram_vectors[int(np.flatnonzero(stored == b)[0])]
                                           for _, b in S.ngram_spans("waters", 3, 5, 20000)]
    np.testing.assert_allclose(e["waters"], np.mean(rows, axis=0), atol=1e-6)
    # words outside the vocabulary: from their n-grams, close to the word they are spelt like; an n-gram no
    # vocabulary word has has no row and counts as zero in the mean
    v = e["watersz"]
    grams = [b for _, b in S.ngram_spans("watersz", 3, 5, 20000)]
    expect = sum(e.subwords.ngram_vectors[int(np.flatnonzero(stored == b)[0])] for b in grams if b in used)
    np.testing.assert_allclose(v, expect / len(grams), atol=1e-6)
    assert v.shape == (100,) and np.isfinite(v).all()
    assert e.similarity("watersz", "waters") > e.similarity("watersz", "son") + 0.1
    assert e.most_similar("watersz", topn=5)
    # no n-gram known to the model (none of its buckets is used by a vocabulary word): KeyError, as gensim
    unknown = next(w for w in (f"q{i}j" for i in range(1000))
                   if not used & {b for _, b in S.ngram_spans(w, 3, 5, 20000)})
    assert e.has_vector("watersz") and not e.has_vector(unknown)
    with pytest.raises(KeyError):
        e[unknown]
    assert e[["waters", "watersz"]].shape == (2, 100)


@pytest.mark.slow
def test_subword_cli_neighbors_eval_export(sub_model, tmp_path):
    path, _ = sub_model
    rc, out, err = run_cli("neighbors", path, "watersz", "--json")
    assert rc == 0, err
    assert "waters" in out
    used = {b for w in fastemb.load(path).words for _, b in S.ngram_spans(w, 3, 5, 20000)}
    unknown = next(w for w in (f"q{i}j" for i in range(1000))
                   if not used & {b for _, b in S.ngram_spans(w, 3, 5, 20000)})
    rc, out, err = run_cli("neighbors", path, unknown)
    assert rc == 1 and err.strip().startswith("fastemb: error: no known character n-gram")
    assert len(err.strip().splitlines()) == 1
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"waters watersz 10\nson sons 9\nland landsz 1\nland lands 9\n{unknown} son 1\n")
    rc, out, err = run_cli("eval", path, "--similarity", pairs, "--json")
    assert rc == 0, err
    import json
    sim = json.loads(out)["similarity"][0]
    assert sim["covered"] == 4 and sim["oov_pairs"] >= 2
    w2v = tmp_path / "out.txt"
    rc, _, err = run_cli("export", path, "-o", w2v, "--format", "word2vec", "--no-vocab")
    assert rc == 0, err
    lines = w2v.read_text(encoding="utf-8").splitlines()
    e = fastemb.load(path)
    assert lines[0].split() == [str(len(e)), "100"] and len(lines) == len(e) + 1


@pytest.mark.slow
def test_subword_continue_and_resume(sub_model, tmp_path, kjv_small):
    path, d = sub_model
    out = tmp_path / "more.h5"
    rc, _, err = run_cli("train", kjv_small, "-o", out, "--init", path, "--epochs", 1, "--threads", 2, "-q")
    assert rc == 0, err
    e = fastemb.load(out)
    assert e.subwords.buckets == 20000 and e.attrs["continued_from"]
    rc, _, err = run_cli("train", kjv_small, "-o", tmp_path / "bad.h5", "--init", path, "--buckets", 1000, "-q")
    assert rc == 1 and "buckets" in err and len(err.strip().splitlines()) == 1


def _uninterrupted_and_stopped(corpus, tmp_path):
    """(a 2-epoch 1-thread subword run, the checkpoint of the same run stopped after its first epoch)."""
    opts = dict(maxn=4, buckets=3000, epochs=2, threads=1, seed=5, dim=16)
    full = fastemb.train(corpus, **opts)
    ck = tmp_path / "run.ckpt"

    def stop(run):
        if run.epoch == 1:
            raise fastemb.StopTraining()
    fastemb.train(corpus, checkpoint=str(ck), checkpoint_every="1", callbacks=[stop], **opts)
    return full, ck


@pytest.mark.slow
def test_subword_resume_equals_uninterrupted(tmp_path, kjv_small):
    """A 1-thread run stopped after an epoch and resumed from its checkpoint ends where an uninterrupted
    run ends (n-gram rows included)."""
    full, ck = _uninterrupted_and_stopped(kjv_small, tmp_path)
    resumed = fastemb.train(resume=str(ck))
    np.testing.assert_array_equal(resumed.vectors, full.vectors)
    np.testing.assert_array_equal(resumed.subwords.ngram_vectors, full.subwords.ngram_vectors)
    np.testing.assert_array_equal(resumed["watersz"], full["watersz"])


@pytest.mark.slow
def test_subword_checkpoint_of_an_earlier_layout_resumes(tmp_path, kjv_small):
    """A checkpoint written before rows trained in groups holds the rows as trained in syn0 and no
    syn0_groups: it still resumes (the groups are summed from those rows), ending where an uninterrupted run
    ends up to float rounding; a checkpoint with an array of neither layout is refused in one line."""
    from types import SimpleNamespace
    from fastemb.checkpoint import algorithm_reader, digest, load_checkpoint
    from fastemb.models.word2vec import RowGroups, subword_layout
    full, ck = _uninterrupted_and_stopped(kjv_small, tmp_path)
    r = load_checkpoint(str(ck))
    options, _ = algorithm_reader(r.record, str(ck))
    indptr, indices, _ = subword_layout(SimpleNamespace(words=r.words, counts=r.counts), options)
    base = r.arrays["syn0"]
    rows = RowGroups(indptr, indices, len(base)).ungroup(base, r.arrays["syn0_groups"])
    assert not np.allclose(rows, base)
    with h5py.File(ck, "r+") as f:
        a = f["arrays"]
        del a["syn0"], a["syn0_groups"]
        a.create_dataset("syn0", data=rows).attrs["sha256"] = digest(rows)
    resumed = fastemb.train(resume=str(ck))
    scale = np.abs(full.subwords.ngram_vectors).max()
    np.testing.assert_allclose(resumed.vectors, full.vectors, atol=1e-4 * scale)
    np.testing.assert_allclose(resumed.subwords.ngram_vectors, full.subwords.ngram_vectors, atol=1e-4 * scale)
    with h5py.File(ck, "r+") as f:
        f["arrays"].create_dataset("syn2", data=np.zeros(3, np.float32))
    with pytest.raises(FileError, match="damaged checkpoint: arrays"):
        fastemb.train(resume=str(ck))


def test_options():
    from fastemb.models.word2vec import CBOWOptions, SGNSOptions
    assert SGNSOptions().maxn == 0 and SGNSOptions().ngram_rows_bound(1000) == 0   # off by default: as before
    assert SGNSOptions(maxn=6).ngram_rows_bound(10**6) == 2_000_000 and CBOWOptions(maxn=6).minn == 3
    assert SGNSOptions(maxn=6).ngram_rows_bound(1000) == 24_000
    with pytest.raises(OptionError, match="minn"):
        SGNSOptions(minn=5, maxn=4)
    with pytest.raises(OptionError, match="hs"):
        SGNSOptions(maxn=6, hs=True)
    with pytest.raises(OptionError, match="buckets"):
        SGNSOptions(maxn=6, buckets=0)


def test_cbow_subwords_train(kjv_small):
    e = fastemb.train(kjv_small, algo="cbow", maxn=4, buckets=5000, epochs=2, threads=2, seed=1)
    assert e.subwords is not None and np.isfinite(e.vectors).all()
    assert e.similarity("sons", "son") > e.similarity("sons", "land")
    # the trained model's known buckets (passed on by the trainer) are those its vocabulary's n-grams use
    assert e.subwords.known.tolist() == S.used_buckets(list(e.words), 3, 4, 5000).tolist()


def test_first_run_notice_checks_the_subword_kernel(kjv_small, monkeypatch):
    """The compile notice looks at the kernel a subword run calls (not skip-gram's, which such a run never
    compiles: it announced "compiling kernels" on every run)."""
    from fastemb import compiling
    from fastemb.kernels import subword
    seen = []
    real = compiling.notice

    def spy(kernels, *a, **k):
        seen.extend(kernels)
        return real(kernels, *a, **k)
    monkeypatch.setattr(compiling, "notice", spy)
    fastemb.train(kjv_small, maxn=4, buckets=3000, epochs=1, threads=1, seed=1, dim=16)
    trainers = [k for k in seen if k.py_func.__name__ == "train_chunks"]
    assert len(trainers) == 1  # the generic subword kernel (dim 16 has no specialised copy)
    assert trainers[0].py_func.__code__.co_filename == subword.train_chunks.py_func.__code__.co_filename


# ------------------------------------------------------------------------------------------ the HDF5 layout
def test_crafted_subword_groups_refused(sub_model, tmp_path):
    path, _ = sub_model
    import shutil

    def crafted(edit):
        p = tmp_path / "c.h5"
        shutil.copy(path, p)
        with h5py.File(p, "r+") as f:
            edit(f["subword"])
        return p
    def ids(g, values):
        del g["ngram_buckets"]
        g.create_dataset("ngram_buckets", data=values)

    def drop_row(g):
        keep_ids, keep_rows = g["ngram_buckets"][1:], g["ngrams"][1:]
        del g["ngram_buckets"], g["ngrams"]
        g.create_dataset("ngram_buckets", data=keep_ids)
        g.create_dataset("ngrams", data=keep_rows)
    cases = [
        (lambda g: g.attrs.__setitem__("buckets", 19999), "ngram_buckets"),
        (lambda g: g.attrs.__setitem__("buckets", 100), "ngram_buckets lists .* rows for 100 buckets"),
        (lambda g: ids(g, np.r_[g["ngram_buckets"][:-1], g["ngram_buckets"][0]]), "twice"),
        (lambda g: ids(g, np.r_[g["ngram_buckets"][:-1], 20000]), "outside"),
        (lambda g: ids(g, np.r_[g["ngram_buckets"][:-1], -1]), "outside"),
        (lambda g: ids(g, np.r_[g["ngram_buckets"][:-1].astype(np.uint64), np.uint64(2**63 + 5)]), "outside"),
        (lambda g: (lambda rows: (g.__delitem__("ngrams"), g.create_dataset("ngrams", data=rows)))(
            g["ngrams"][:-1]), "shape"),
        (lambda g: ids(g, g["ngram_buckets"][()].astype(np.float64)), "integers"),
        (drop_row, "no row for"),
        (lambda g: g.attrs.__setitem__("hash", "md5"), "hashes"),
        (lambda g: g.attrs.__setitem__("minn", 0), "n-gram settings"),
        (lambda g: g.attrs.__setitem__("maxn", 2), "n-gram settings"),
        (lambda g: g["ngrams"].__setitem__((5, 5), np.nan), "non-finite"),
        (lambda g: (g.__delitem__("words"), g.create_dataset("words", data=np.zeros((3, 100), np.float32))), "shape"),
    ]
    for edit, message in cases:
        p = crafted(edit)
        with pytest.raises(FileError, match=message):
            fastemb.load(p)


def test_dense_subword_layout_still_loads(sub_model, tmp_path):
    """A file with a row per bucket and no /subword/ngram_buckets (files before 2026-12-07's compact layout,
    and fastText's own) gives the same vectors, the buckets without a row of the compact file being zero."""
    path, _ = sub_model
    import shutil
    p = tmp_path / "dense.h5"
    shutil.copy(path, p)
    with h5py.File(p, "r+") as f:
        g = f["subword"]
        dense = np.zeros((20000, 100), np.float32)
        dense[g["ngram_buckets"][()]] = g["ngrams"][()]
        del g["ngram_buckets"], g["ngrams"]
        g.create_dataset("ngrams", data=dense)
    a, b = fastemb.load(path), fastemb.load(p)
    assert b.subwords.ngram_buckets is None
    for w in ("watersz", "kingdomz", "sons"):
        np.testing.assert_allclose(a[w], b[w], atol=1e-7)


def test_compact_rows_against_word_rows():
    """compact_rows names the same buckets as word_rows, row by row, with one row per used bucket, ordered by
    the summed weight of the words using it."""
    words = ["the", "then", "there", "naïve", "café", "日本語", "a", "</s>", "kingdoms", "kingdom"]
    weights = np.array([100.0, 7, 5, 3, 3, 2, 50, 1, 4, 6])
    n = len(words)
    indptr0, idx0 = S.word_rows(words, 2, 5, 5003)
    indptr, idx, ids = S.compact_rows(words, weights, 2, 5, 5003)
    np.testing.assert_array_equal(indptr, indptr0)
    back = np.where(idx >= n, n + ids[np.maximum(idx - n, 0)], idx)
    np.testing.assert_array_equal(back, idx0)
    assert len(set(ids.tolist())) == len(ids) == len(set((idx0[idx0 >= n] - n).tolist()))
    total = {}
    for w in range(n):
        for r in set(idx0[indptr0[w]:indptr0[w + 1]].tolist()) - {w}:
            total[r - n] = total.get(r - n, 0.0) + weights[w] * sum(idx0[indptr0[w]:indptr0[w + 1]] == r)
    order = sorted(total, key=lambda b: (-total[b], b))
    assert ids.tolist() == order


@pytest.mark.parametrize("buckets", [7, 5003])
def test_row_groups_against_a_slow_reference(buckets):
    """Rows that every word uses alike train as one group (row_groups against naive.row_groups): with 7
    buckets most rows are shared, with 5003 rare words keep many rows to themselves; "banana" uses "ana" twice
    (its group is named twice). The groups' sums give the words' means, and ungroup undoes group_sums."""
    import naive
    from fastemb.kernels import subword as K
    from fastemb.models.word2vec import RowGroups
    words = ["the", "then", "there", "naïve", "café", "日本語", "a", "banana", "bananas", "kingdoms", "kingdom",
             "zygote", "zygotes"]
    n = len(words)
    indptr, idx, ids = S.compact_rows(words, np.arange(n, 0, -1.0), 2, 5, buckets)
    n_rows = n + len(ids)
    g = RowGroups(indptr, idx, n_rows)
    group_of, sizes, entries = naive.row_groups(indptr, idx, n_rows)
    assert g.group_of.tolist() == group_of and g.size.tolist() == sizes and g.n_groups == len(sizes)
    assert (g.n_groups < n_rows) == (buckets > 7)  # 7 buckets: every n-gram row is shared differently
    for w in range(n):
        mine = g.indices[g.indptr[w]:g.indptr[w + 1]].tolist()
        assert {x: mine.count(x) for x in mine} == entries[w]
        np.testing.assert_array_equal(g.spread[g.indptr[w]:g.indptr[w + 1]], [sizes[x] for x in mine])
    assert g.n_rows.tolist() == np.diff(indptr).tolist()
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n_rows, 6)).astype(np.float32)
    sums = np.zeros((g.n_groups, 8), np.float32)  # wider than the rows, as padded rows are
    K.group_sums(base, g.group_of, sums)
    means, expect = np.empty((n, 6), np.float32), np.empty((n, 6), np.float32)
    K.mean_groups(sums, g.indptr, g.indices, g.n_rows, means)
    K.mean_rows(base, indptr, idx, expect)
    np.testing.assert_allclose(means, expect, atol=1e-6)
    np.testing.assert_allclose(g.ungroup(base, sums), base, atol=1e-6)
    moved = sums.copy()
    moved[:, :6] += np.arange(g.n_groups)[:, None] * g.size[:, None]  # every row of group k moves by k
    np.testing.assert_allclose(g.ungroup(base, moved), base + g.group_of[:, None], atol=1e-5)
    inplace = base.copy()
    g.ungroup(inplace, moved, out=inplace)
    np.testing.assert_array_equal(inplace, g.ungroup(base, moved))


def test_finished_subword_trainer_holds_plain_rows(kjv_small):
    """After a run, its trainer holds the rows as trained: finish() again changes nothing, vectors() and
    arrays() give the result's vectors and rows (a checkpoint of them resumes as rows without groups), and
    training further is refused."""
    seen = []
    e = fastemb.train(kjv_small, maxn=4, buckets=3000, epochs=1, threads=1, dim=8, seed=2,
                      callbacks=[lambda run: seen.append(run.trainer)])
    t = seen[0]
    assert t.finished
    t.finish()
    np.testing.assert_array_equal(t.vectors(), e.vectors)
    a = t.arrays()
    assert set(a) == {"syn0", "syn1"}
    n = len(e.vectors)
    np.testing.assert_array_equal(a["syn0"][n:], e.subwords.ngram_vectors)
    with pytest.raises(RuntimeError, match="finished"):
        t._train(None, None, None, True, True, 0.0, 0.0, 0.0, 1.0, 1, 0, None, None)


def test_subword_init_rows_are_uniform_and_per_row():
    """The subword model's initial rows (kernels.rng.uniform_rows, one stream per row, drawn on every thread):
    uniform in [-w/2, w/2) with the uniform's spread, the same rows whatever the matrix's size, the thread
    count or the layout (a padded matrix's view), different for another seed."""
    from fastemb.kernels.rng import uniform_rows
    import numba
    big = np.empty((4000, 100), np.float32)
    uniform_rows(big, np.float32(0.02), np.uint64(7))
    assert np.abs(big).max() <= 0.01 and abs(big.mean()) < 2e-4
    assert abs(big.std() - 0.02 / np.sqrt(12)) < 1e-4
    assert abs(np.corrcoef(big[:, :-1].ravel(), big[:, 1:].ravel())[0, 1]) < 0.01  # neighbours independent
    small = np.empty((10, 112), np.float32)[:, :100]
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        uniform_rows(small, np.float32(0.02), np.uint64(7))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(small, big[:10])
    other = np.empty((10, 100), np.float32)
    uniform_rows(other, np.float32(0.02), np.uint64(8))
    assert not np.allclose(other, big[:10])


def test_grouped_rows_train_the_model_of_single_rows(kjv_small, monkeypatch):
    """Training rows in groups is the same model as training every row: a 1-thread run gives the same words'
    vectors, own rows and n-gram rows up to float rounding, for skip-gram and CBOW."""
    from fastemb.models import word2vec
    for algo in ("sgns", "cbow"):
        opts = dict(algo=algo, maxn=5, buckets=20000, epochs=1, threads=1, seed=4, dim=16, min_count=2)
        grouped = fastemb.train(kjv_small, **opts)
        monkeypatch.setattr(word2vec, "GROUP_ROWS", False)
        single = fastemb.train(kjv_small, **opts)
        monkeypatch.setattr(word2vec, "GROUP_ROWS", True)
        scale = np.abs(single.subwords.ngram_vectors).max()
        assert scale > 0.05  # trained, not the initial values
        np.testing.assert_allclose(grouped.vectors, single.vectors, atol=1e-4 * scale)
        np.testing.assert_allclose(grouped.subwords.ngram_vectors, single.subwords.ngram_vectors, atol=1e-4 * scale)
        np.testing.assert_allclose(grouped.subwords.word_vectors, single.subwords.word_vectors, atol=1e-4 * scale)
        np.testing.assert_allclose(grouped.context_vectors, single.context_vectors, atol=1e-4 * scale)


def test_continued_subword_rows_carry_over(sub_model, kjv_small):
    """Continuing a subword model on a larger vocabulary keeps every n-gram row it had (rows follow their
    bucket, not their position) and starts the new buckets' rows at random."""
    from fastemb.models.word2vec import SGNSOptions, continue_arrays
    from fastemb.vocab import Vocab
    path, _ = sub_model
    e = fastemb.load(path)
    words = list(e.words) + ["zzyzx", "quokkas"]
    vocab = Vocab(words, np.r_[np.asarray(e.counts), [5, 5]].astype(np.int64))
    o = SGNSOptions(maxn=5, minn=3, buckets=20000)
    syn0 = continue_arrays(o, e, vocab, 1)["syn0"]
    from fastemb.models.word2vec import subword_layout
    _, _, ids = subword_layout(vocab, o)
    n = len(words)
    assert syn0.shape == (n + len(ids), 100)
    old = e.subwords
    rows = old.rows_of(ids)
    assert (rows >= 0).sum() == len(old.ngram_buckets) and (rows < 0).any()
    np.testing.assert_array_equal(syn0[n + np.flatnonzero(rows >= 0)], old.ngram_vectors[rows[rows >= 0]])
    np.testing.assert_array_equal(syn0[:len(e)], old.word_vectors)


# ------------------------------------------------------------------------------------------ fastText .bin
def test_fasttext_bin_vectors_equal_fasttext(ft_model):
    m = fasttext.load_model(ft_model[0])
    e = fastemb.load(ft_model[0])
    assert e.words == list(m.words) and e.dim == 12
    assert e.attrs["minn"] == 2 and e.attrs["maxn"] == 5 and e.subwords.buckets == 5003
    np.testing.assert_allclose(e.vectors, np.array([m.get_word_vector(w) for w in m.words]), atol=2e-6, rtol=1e-5)
    oov = ["kingdomz", "naïvety", "日本語x", "Ünïcødé\x80", "𝔘𝔫𝔦𝔫", "zebra", "ÿþÿ"]
    for w in oov:
        assert w not in e
        np.testing.assert_allclose(e[w], m.get_word_vector(w), atol=2e-6, rtol=1e-5, err_msg=w)
    np.testing.assert_allclose(e.context_vectors, m.get_output_matrix(), atol=0)


@pytest.mark.slow
def test_fasttext_bin_import_cli(ft_model, tmp_path):
    out = tmp_path / "ft.h5"
    rc, _, err = run_cli("import", ft_model[0], "-o", out)
    assert rc == 0, err
    m = fasttext.load_model(ft_model[0])
    e = fastemb.load(out)
    np.testing.assert_allclose(e["kingdomz"], m.get_word_vector("kingdomz"), atol=2e-6, rtol=1e-5)
    rc, out_text, err = run_cli("neighbors", ft_model[0], "kingdomz", "-k", 3)
    assert rc == 0, err


def _bin_parts(path):
    """(offset of the dictionary's first entry, offset of the input matrix's flag, nwords, dim, bucket)."""
    from fastemb.fasttext_bin import read_header
    _, size, args, _, words, _, flag = read_header(path)
    return 8 + 12 * 4 + 8 + 12 + 16, flag, len(words), args["dim"], args["bucket"], size


def test_crafted_fasttext_bin_refused(ft_model, tmp_path):
    src = open(ft_model[0], "rb").read()
    first_entry, flag, nwords, dim, bucket, size = _bin_parts(ft_model[0])
    assert size == len(src)

    def variant(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    def patch(data, offset, fmt, value):
        b = bytearray(data)
        struct.pack_into(fmt, b, offset, value)
        return bytes(b)
    cases = [
        ("version", patch(src, 4, "<i", 13), "version 13"),
        ("supervised", patch(src, 8 + 7 * 4, "<i", 3), "supervised"),
        ("dim", patch(src, 8, "<i", 1 << 30), "dimension"),
        ("bucket", patch(src, 8 + 8 * 4, "<i", -5), "bucket"),
        ("nwords", patch(patch(src, 8 + 56, "<i", 2**31 - 1), 8 + 60, "<i", 2**31 - 1), "truncated"),
        ("size", patch(src, 8 + 56, "<i", nwords + 1), "dictionary header"),
        ("pruned", patch(src, 8 + 56 + 20, "<q", 7), "quantized"),
        ("quant", patch(src, flag, "<B", 1), "quantized"),
        ("rows", patch(src, flag + 1, "<q", nwords + bucket + 1), "matrix"),
        ("minn", patch(src, 8 + 9 * 4, "<i", 9), "n-gram"),
        ("nan", patch(src, flag + 17 + 40, "<f", float("nan")), "non-finite"),
        ("trailing", src + b"\0" * 10, "between the dictionary"),
    ]
    cases += [(f"trunc{n}", src[:n], "truncated") for n in (20, 70, first_entry + 5, flag - 3, flag + 9,
                                                              size - 4)]
    for name, data, message in cases:
        p = variant(name, data)
        with pytest.raises(FileError, match=message):
            fastemb.load(p)
    # the CLI: one line, exit 1
    rc, _, err = run_cli("import", tmp_path / "nwords", "-o", tmp_path / "x.h5")
    assert rc == 1 and err.startswith("fastemb: error:") and len(err.strip().splitlines()) == 1
