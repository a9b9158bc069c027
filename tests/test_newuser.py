"""What a new user trips on (issue 23): counting defaults per algorithm, save formats and gensim's names,
first-run compile notice, directories as corpora, Dask from Python, the classifier's labels, large files."""
import os

import h5py
import numpy as np
import pytest

import fastemb
from fastemb.errors import FileError, OptionError
from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def toy_emb():
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "gold", "silver", "iron", "sheep"]
    return fastemb.Embeddings(words, rng.normal(size=(len(words), 6)).astype(np.float32),
                              np.arange(len(words), 0, -1) * 10)


# ------------------------------------------------------------------ 1: one count, many trainings
@pytest.mark.slow
def test_cooc_records_the_counting_of_the_algorithm_it_is_for(kjv_small, tmp_path):
    for algo, window in (("glove", 10), ("ppmi-svd", 5)):
        out = tmp_path / f"{algo}.h5"
        rc, _, err = run_cli("cooc", kjv_small, "-o", out, "--for", algo, "--quiet")
        assert rc == 0, err
        with h5py.File(out, "r") as f:
            a = dict(f.attrs)
        assert a["counted_for"] == algo and a["window"] == window
        assert a["weighting"] == "dynamic" and a["sample"] == 1e-4 and a["symmetric"]
    rc, _, err = run_cli("cooc", kjv_small, "-o", tmp_path / "x.h5", "--for", "sgns")
    assert rc == 2 and "Traceback" not in err


@pytest.mark.slow
def test_train_cooc_warns_in_one_line_when_counted_otherwise(kjv_small, tmp_path):
    odd, good = tmp_path / "odd.h5", tmp_path / "good.h5"
    assert run_cli("cooc", kjv_small, "-o", odd, "--window", "3", "--weighting", "harmonic", "--quiet")[0] == 0
    assert run_cli("cooc", kjv_small, "-o", good, "--quiet")[0] == 0
    rc, _, err = run_cli("train", "--cooc", odd, "--algo", "glove", "--epochs", "1", "--dim", "8", "-o",
                         tmp_path / "v1.h5")
    assert rc == 0, err
    warn = [ln for ln in err.splitlines() if "counted with" in ln]
    assert len(warn) == 1 and "window 3 (glove: 10)" in warn[0] and "weighting harmonic (glove: dynamic)" in warn[0]
    assert "--for glove" in warn[0]
    rc, _, err = run_cli("train", "--cooc", good, "--algo", "glove", "--epochs", "1", "--dim", "8", "-o",
                         tmp_path / "v2.h5")
    assert rc == 0 and "counted with" not in err, err
    rc, _, err = run_cli("train", "--cooc", good, "--algo", "ppmi-svd", "--dim", "8", "-o", tmp_path / "v3.h5")
    assert rc == 0 and "window 10 (ppmi-svd: 5)" in err, err


@pytest.mark.parametrize("algo, extra", [("glove", dict(epochs=2)), ("ppmi-svd", dict(svd="arpack"))])
def test_one_count_many_trainings_equals_training_on_the_corpus(kjv_small, algo, extra):
    """The README recipe: counting once with the algorithm's counting gives the very vectors that training
    on the corpus gives."""
    direct = fastemb.train(kjv_small, algo, dim=10, threads=1, seed=3, **extra)
    counted = fastemb.cooccurrences(kjv_small, algo=algo, threads=1, seed=3)
    again = fastemb.train(cooc=counted, algo=algo, dim=10, threads=1, seed=3, **extra)
    assert direct.words == again.words
    np.testing.assert_allclose(direct.vectors, again.vectors, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ 2: save by extension, gensim's names
@pytest.mark.parametrize("name, fmt", [("v.h5", "hdf5"), ("v.hdf5", "hdf5"), ("v.vec", "word2vec"),
                                       ("v.txt", "word2vec"), ("v.bin", "word2vec-binary")])
def test_save_picks_the_format_from_the_extension(toy_emb, tmp_path, name, fmt):
    path = tmp_path / name
    toy_emb.save(path)
    head = path.read_bytes()[:8]
    assert (head == b"\x89HDF\r\n\x1a\n") == (fmt == "hdf5")
    back = fastemb.load(path)
    assert back.words == toy_emb.words
    np.testing.assert_allclose(back.vectors, toy_emb.vectors, rtol=1e-6)
    if fmt == "word2vec":
        assert head.startswith(b"8 6\n")


def test_save_refuses_an_existing_file_unless_overwrite(toy_emb, tmp_path):
    path = tmp_path / "v.vec"
    path.write_text("precious\n")
    with pytest.raises(FileError, match="overwrite=True"):
        toy_emb.save(path)
    assert path.read_text() == "precious\n"
    toy_emb.save(path, overwrite=True)
    assert fastemb.load(path).words == toy_emb.words
    with pytest.raises(OptionError, match="format"):
        toy_emb.save(tmp_path / "v.model")
    toy_emb.save(tmp_path / "v.model", format="glove")
    assert fastemb.load(tmp_path / "v.model", "glove").words == toy_emb.words


def test_gensim_names(toy_emb, tmp_path):
    from gensim.models import KeyedVectors
    path, vocab = tmp_path / "g.bin", tmp_path / "g.vocab"
    toy_emb.save_word2vec_format(path, fvocab=vocab, binary=True)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    assert list(kv.index_to_key) == toy_emb.words
    back = fastemb.Embeddings.load_word2vec_format(path, fvocab=vocab, binary=True)
    assert back.words == toy_emb.words and list(back.counts) == list(toy_emb.counts)
    assert toy_emb.wv is toy_emb


def test_gensim_evaluation_names_agree_with_gensim(kjv_small):
    emb = fastemb.train(kjv_small, "cbow", dim=20, epochs=1, threads=2, min_count=2)
    kv = emb.to_gensim()
    from fastemb.eval import dataset
    ws = dataset("wordsim353")
    for case in (True, False):
        (p, _), (s, _), oov = emb.evaluate_word_pairs(ws, case_insensitive=case)
        (gp, _), (gs, _), goov = kv.evaluate_word_pairs(ws, case_insensitive=case)
        assert abs(p - gp) < 1e-4 and abs(s - gs) < 1e-4 and abs(oov - goov) < 1e-6
    qw = dataset("questions-words")
    score, sections = emb.evaluate_word_analogies(qw)
    gscore, gsections = kv.evaluate_word_analogies(qw)
    assert abs(score - gscore) < 1e-9
    assert sections[-1]["correct"] == len(gsections[-1]["correct"])
    assert sections[-1]["incorrect"] == len(gsections[-1]["incorrect"])


# ------------------------------------------------------------------ 5: gensim's parameter names
@pytest.mark.parametrize("name, value, hint", [("vector_size", 10, "use dim"), ("workers", 2, "use threads"),
                                               ("sg", 1, "use algo='sgns'"), ("iter", 2, "use epochs"),
                                               ("minCount", 2, "use min_count")])
def test_other_tools_names_get_a_hint(name, value, hint):
    with pytest.raises(OptionError, match=f"{name} is .*'s name: {hint}"):
        fastemb.train([["a", "b"]] * 10, **{name: value})


def test_hs_zero_means_off():
    assert fastemb.SGNSOptions(hs=0).hs is False
    assert fastemb.SGNSOptions(hs=1, negative=0).hs is True
    with pytest.raises(OptionError, match="hs must be True or False"):
        fastemb.SGNSOptions(hs=2)
    emb = fastemb.train([["a", "b", "c"]] * 50, hs=0, dim=4, epochs=1, min_count=1, threads=1)
    assert emb.attrs["algo"] == "sgns" and len(emb) == 3


# ------------------------------------------------------------------ 9: small things
def test_most_similar_takes_an_integer_key(toy_emb):
    assert toy_emb.most_similar(3, topn=3) == toy_emb.most_similar("woman", topn=3)
    assert toy_emb.most_similar(positive=[0, 3], negative=[2], topn=2) == \
        toy_emb.most_similar(positive=["king", "woman"], negative=["man"], topn=2)


# ------------------------------------------------------------------ 3: the first run says it compiles
KERNEL_SOURCE = "from numba import njit\n\n\n@njit(cache=True)\ndef plus_one(x):\n    return x + {}\n"


def _cached_in_fresh_process(directory):
    import subprocess
    import sys
    code = (f"import sys; sys.path.insert(0, {str(directory)!r}); import kmod; from fastemb.compiling import "
            f"is_cached; c = is_cached(kmod.plus_one); kmod.plus_one(1); print(c)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_is_cached_reads_numbas_index(tmp_path):
    src = tmp_path / "kmod.py"
    src.write_text(KERNEL_SOURCE.format(1))
    assert not _cached_in_fresh_process(tmp_path)   # never compiled: the notice is due
    assert _cached_in_fresh_process(tmp_path)       # compiled and cached by the run before
    src.write_text(KERNEL_SOURCE.format(22))        # an edited kernel: the cache is stale
    os.utime(src, (1, 1))
    assert not _cached_in_fresh_process(tmp_path)


@pytest.mark.slow
def test_first_run_announces_compilation(kjv_small, tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    rc, _, err = run_cli("vocab", kjv_small, "-o", tmp_path / "v1.tsv", env=env)
    assert rc == 0, err
    notices = [ln for ln in err.splitlines() if "compiling kernels (first run only, ~" in ln]
    assert len(notices) == 1 and err.index(notices[0]) < err.index("vocab:"), err
    rc, _, err = run_cli("vocab", kjv_small, "-o", tmp_path / "v2.tsv", env=env)
    assert rc == 0 and "compiling" not in err, err


def test_eta_starts_after_compilation(monkeypatch, caplog):
    import logging
    from fastemb import progress as P
    clock = [0.0]
    monkeypatch.setattr(P.time, "perf_counter", lambda: clock[0])
    caplog.set_level(logging.INFO, logger=P.log.name)
    p = P.Progress("sgns", 100, unit="words", interval=0)
    clock[0] = 30.0                  # the first step: 30 s compiling, 1 word of work
    p.rebase(1, 1)
    clock[0] = 31.0                  # then 10 words a second
    p.update(11, 11, force=True)
    line = caplog.records[-1].getMessage()
    assert "ETA 9s" in line and "10 words/s" in line, line


def test_train_help_per_algorithm_and_tagline():
    from click.testing import CliRunner
    from fastemb.cli.main import cli
    r = CliRunner()
    everything = r.invoke(cli, ["train", "--help"]).output
    glove = r.invoke(cli, ["train", "--algo", "glove", "--help"]).output
    sgns = r.invoke(cli, ["train", "--algo=sgns", "--help"]).output
    assert "--eta" in everything and "--negative" in everything and "--algo glove --help" in everything
    assert "--eta" in glove and "--x-max" in glove and "--negative" not in glove and "--hidden" not in glove
    assert "--negative" in sgns and "--eta" not in sgns and "--min-count" in sgns and "--threads" in sgns
    assert len(glove.splitlines()) < 0.7 * len(everything.splitlines())
    top = r.invoke(cli, ["--help"]).output
    assert "language model" in top and "classifier" in top


# ------------------------------------------------------------------ 6: a directory as the corpus
@pytest.fixture
def mixed_dir(tmp_path, kjv_small):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    text = open(kjv_small, encoding="utf-8").read()
    (d / "a.txt").write_text(text[:20000])
    (d / "sub" / "b.txt").write_text(text[20000:40000])
    (d / "README.md").write_text("zzreadme zzreadme zzreadme zzreadme zzreadme zzreadme\n")
    (d / ".hidden.txt").write_text("zzhidden " * 20)
    np.save(d / "arr.npy", np.arange(10))
    with h5py.File(d / "vectors.h5", "w") as f:
        f["x"] = np.arange(3)
    (d / "picture").write_bytes(b"\x89PNG\r\n\x1a\n" + b"zzpng " * 20)
    return d


def test_directory_skips_non_text_with_a_notice_and_logs_sizes(mixed_dir, tmp_path):
    out = tmp_path / "v.tsv"
    rc, _, err = run_cli("vocab", mixed_dir, "-o", out, "--min-count", "1")
    assert rc == 0, err
    skipped = [ln for ln in err.splitlines() if "skipped 3 files that are not text" in ln]
    assert len(skipped) == 1 and "arr.npy (NumPy)" in skipped[0] and "vectors.h5 (HDF5)" in skipped[0] \
        and "picture (image)" in skipped[0], err
    assert "reading 3 files" in err and "a.txt (20.0 kB)" in err and "README.md (54 B)" in err, err
    words = {ln.split("\t")[0] for ln in out.read_text().splitlines()}
    assert "zzreadme" in words and "zzhidden" not in words and "zzpng" not in words


@pytest.mark.slow
def test_glob_selects_files_in_every_corpus_command(mixed_dir, tmp_path):
    rc, _, err = run_cli("vocab", mixed_dir, "-o", tmp_path / "v.tsv", "--min-count", "1", "--glob", "*.txt")
    assert rc == 0 and "reading 2 files" in err, err
    assert "zzreadme" not in (tmp_path / "v.tsv").read_text()
    rc, _, err = run_cli("cooc", mixed_dir, "-o", tmp_path / "c.h5", "--glob", "*.txt", "--quiet")
    assert rc == 0, err
    emb = fastemb.train(str(mixed_dir), "sgns", glob="sub/*.txt", dim=8, epochs=1, min_count=1, threads=1)
    assert "zzreadme" not in emb and emb.attrs["corpus_tokens"] == len(
        (mixed_dir / "sub" / "b.txt").read_text().split())
    rc, _, err = run_cli("vocab", mixed_dir, "-o", tmp_path / "w.tsv", "--glob", "*.csv")
    assert_one_line_error(rc, err, contains="no text files matching --glob '*.csv'")


# ------------------------------------------------------------------ 8: Dask from Python
@pytest.mark.slow
def test_dask_counting_from_python(kjv_small, capfd):
    pytest.importorskip("distributed")
    from fastemb.dask import connect
    from fastemb.progress import verbosity
    with verbosity(True):
        client, _ = connect("local:1")
        try:
            v = fastemb.build_vocab(kjv_small, client=client, min_count=3)
            local = fastemb.build_vocab(kjv_small, min_count=3)
            assert v.words == local.words and list(v.counts) == list(local.counts)
            words, counts, X = fastemb.cooccurrences(kjv_small, client=client, min_count=3, window=3)
            lw, lc, LX = fastemb.cooccurrences(kjv_small, min_count=3, window=3)
            assert words == lw and (X != LX).nnz == 0
            with pytest.raises(OptionError, match="client"):
                fastemb.build_vocab([["a", "b"]], client=client)
        finally:
            client.close()
    err = capfd.readouterr().err
    assert err.count("dask: dashboard at") == 1, err


def test_build_vocab_refuses_unknown_parameters_in_one_line():
    with pytest.raises(OptionError, match="clinet is not a parameter of fastemb.build_vocab"):
        fastemb.build_vocab([["a", "b"]], clinet="local:1")


# ------------------------------------------------------------------ 7: the classifier's labels and blind texts
def _skewed_lines():
    lines = []
    for i in range(120):  # pos is 3 times as frequent as neg
        lines.append("__label__neg bad awful sad" if i % 4 == 0 else "__label__pos good great happy")
    return lines


def test_texts_without_a_known_word_get_the_prior_with_a_warning(caplog):
    import logging
    import fastemb.models.classify as C
    clf = C.train(_skewed_lines(), dim=6, epochs=10, threads=1)
    np.testing.assert_allclose(clf.prior()[[clf.labels.index("pos"), clf.labels.index("neg")]], [0.75, 0.25])
    with caplog.at_level(logging.WARNING, logger="fastemb"):
        p = clf.predict_proba(["good great", "", "zzz qqq", "bad awful"])
    np.testing.assert_allclose(p[1], clf.prior(), rtol=1e-6)
    np.testing.assert_allclose(p[2], clf.prior(), rtol=1e-6)
    assert p[0][clf.labels.index("pos")] > 0.9 and p[3][clf.labels.index("neg")] > 0.9
    warn = [r.getMessage() for r in caplog.records if "no word the model knows" in r.getMessage()]
    assert len(warn) == 1 and "2 of 4 text(s) (text 2, 3)" in warn[0] and "prior" in warn[0]


@pytest.mark.slow
def test_cli_predict_prints_labels_as_written(tmp_path):
    import json
    data = tmp_path / "train.txt"
    data.write_text("\n".join(_skewed_lines()) + "\n")
    model = tmp_path / "m.h5"
    assert run_cli("classify", "train", data, "-o", model, "--dim", "6", "--epochs", "10", "--quiet")[0] == 0
    rc, out, err = run_cli("classify", "predict", model, "good great", "-k", "2")
    assert rc == 0 and out.startswith("__label__pos ") and " __label__neg " in out, out
    rc, out, err = run_cli("classify", "predict", model, "bad awful", "", "--json")
    r = json.loads(out)
    assert r[0]["labels"][0] == "__label__neg" and r[1]["labels"] == ["__label__pos"]
    assert abs(r[1]["probabilities"][0] - 0.75) < 1e-5 and "prior" in err


@pytest.mark.slow
def test_docs_classifier_example_is_predicted_right(tmp_path):
    """The docs' `classify predict` example names texts the docs' model labels right."""
    import re
    import shlex
    import fastemb.datasets as D
    import fastemb.models.classify as C
    from conftest import ROOT
    page = open(os.path.join(ROOT, "docs", "classifier.md"), encoding="utf-8").read()
    line = next(ln for ln in page.splitlines() if ln.startswith("fastemb classify predict kjv-group.h5"))
    texts = [t for t in shlex.split(line)[4:] if not t.startswith("-") and not re.fullmatch(r"\d+", t)]
    files = D.kjv_task("group", str(tmp_path / "kjv-group"), corpora=os.path.join(ROOT, "corpora"))
    clf = C.train(files["train"], ngrams=2, epochs=25, seed=1)
    labels, probs = clf.predict(texts)
    assert [ls[0] for ls in labels] == ["gospels-acts", "minor-prophets"], (texts, labels, probs)


# ------------------------------------------------------------------ 10: large pretrained files
@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(3000)]
    emb = fastemb.Embeddings(words, rng.standard_normal((3000, 16)).astype(np.float32), np.arange(3000, 0, -1))
    paths = {"vec": d / "v.vec", "bin": d / "v.bin", "h5": d / "v.h5"}
    for p in paths.values():
        emb.save(p)
    return emb, paths


@pytest.mark.parametrize("kind", ["vec", "bin", "h5"])
def test_limit_reads_the_first_words_as_gensim(big_files, kind):
    from gensim.models import KeyedVectors
    emb, paths = big_files
    part = fastemb.load(paths[kind], limit=250)
    assert part.words == emb.words[:250] and list(part.counts) == list(emb.counts[:250])
    np.testing.assert_array_equal(part.vectors, emb.vectors[:250])
    if kind != "h5":
        kv = KeyedVectors.load_word2vec_format(str(paths[kind]), binary=kind == "bin", limit=250)
        np.testing.assert_array_equal(kv.vectors, part.vectors)
    assert len(fastemb.load(paths[kind], limit=10 ** 6)) == 3000
    with pytest.raises(OptionError, match="limit"):
        fastemb.load(paths[kind], limit=0)


@pytest.mark.parametrize("kind", ["vec", "bin", "h5"])
def test_float16_storage_answers_as_float32(big_files, kind):
    emb, paths = big_files
    half = fastemb.load(paths[kind], dtype=np.float16)
    assert half.vectors.dtype == np.float16 and half.vectors.nbytes == emb.vectors.nbytes // 2
    full = [w for w, _ in emb.most_similar("w5", topn=5)]
    got = half.most_similar("w5", topn=5)
    assert [w for w, _ in got][:3] == full[:3]
    assert abs(half.similarity("w1", "w2") - emb.similarity("w1", "w2")) < 2e-3
    with pytest.raises(OptionError, match="dtype"):
        fastemb.load(paths[kind], dtype=np.int8)


def test_mmap_maps_the_embedding_and_queries_agree(big_files, tmp_path):
    emb, paths = big_files
    mapped = fastemb.load(paths["h5"], mmap=True)
    assert isinstance(mapped.vectors, np.memmap) and not mapped.vectors.flags.writeable
    got, want = mapped.most_similar("w5", topn=5), emb.most_similar("w5", topn=5)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], rtol=1e-5)
    assert mapped.words == emb.words and len(fastemb.load(paths["h5"], mmap=True, limit=7)) == 7
    with pytest.raises(OptionError, match="mmap"):
        fastemb.load(paths["vec"], mmap=True)
    chunked = tmp_path / "chunked.h5"
    import shutil
    shutil.copy(paths["h5"], chunked)
    with h5py.File(chunked, "a") as f:
        data = f["embedding"][()]
        del f["embedding"]
        f.create_dataset("embedding", data=data, chunks=(100, 16), compression="gzip")
    with pytest.raises(FileError, match="cannot be memory-mapped"):
        fastemb.load(chunked, mmap=True)
    assert fastemb.load(chunked).words == emb.words
    nan = tmp_path / "nan.h5"
    shutil.copy(paths["h5"], nan)
    with h5py.File(nan, "a") as f:
        f["embedding"][3, 2] = np.nan
    lazy = fastemb.load(nan, mmap=True)
    with pytest.raises(fastemb.FastembError, match="non-finite"):
        lazy.most_similar("w1")


# ------------------------------------------------------------------ 4: anndata users
def test_docs_anndata_block_reads_a_cooc_file(kjv_small, tmp_path):
    """docs/new-users.md's h5py/scipy (and, where installed, anndata) code reads a co-occurrence file."""
    import re
    from conftest import ROOT
    text = open(os.path.join(ROOT, "docs", "new-users.md"), encoding="utf-8").read()
    block = [code for code in re.findall(r"```python\n(.*?)```", text, re.S) if "anndata" in code][-1]
    out = tmp_path / "c.h5"
    assert run_cli("cooc", kjv_small, "-o", out, "--quiet")[0] == 0
    from fastemb.store import load_cooc
    words, _, m, _ = load_cooc(out)
    seen = {}
    exec(block.replace("/tmp/kjv-cooc-ppmi.h5", str(out)).replace("print(X.shape", "seen.update(X=X, w=words); print(X.shape"),
         {"seen": seen})
    assert (seen["X"] != m).nnz == 0 and list(seen["w"]) == words
