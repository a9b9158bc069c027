"""fastemb among Python tools: corpora from Python, a gensim-style vectors API checked against gensim itself,
continued training, formats and counts both ways, package data in a wheel, every command's --json/--quiet,
plots and the align command's checks."""
import gzip
import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import fastemb
from conftest import ROOT, SAMPLE, assert_one_line_error, planted_corpus, run_cli


def kjv_lines(n=None):
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    return lines[:n] if n else lines


# ------------------------------------------------------------------------------ corpora from Python
def test_token_lists_strings_and_generators_train_like_the_file(tmp_path):
    lines = kjv_lines(3000)
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    kw = dict(dim=16, epochs=2, threads=1, seed=3)
    from_file = fastemb.train(str(tmp_path / "c.txt"), **kw)
    from_lists = fastemb.train([line.split() for line in lines], **kw)
    from_generator = fastemb.train((line for line in lines), **kw)  # read once
    assert from_lists.words == from_file.words
    np.testing.assert_array_equal(from_lists.vectors, from_file.vectors)  # same ids: the same model, bit for bit
    np.testing.assert_array_equal(from_generator.vectors, from_file.vectors)
    v = fastemb.build_vocab(iter(lines), min_count=2)
    assert v.words == fastemb.build_vocab(str(tmp_path / "c.txt"), min_count=2).words
    words, counts, X = fastemb.cooccurrences([line.split() for line in lines], window=3)
    w2, c2, X2 = fastemb.cooccurrences(str(tmp_path / "c.txt"), window=3)
    assert words == w2 and (X != X2).nnz == 0
    glove = fastemb.train(cooc=(words, counts, X), algo="glove", dim=8, epochs=2, threads=1)
    assert glove.words == words and np.array_equal(glove.counts, counts)


def test_python_corpus_errors_are_clear():
    with pytest.raises(fastemb.FastembError, match="token 'a b'"):
        fastemb.train([["a b", "c"]] * 10, min_count=1)
    with pytest.raises(fastemb.FastembError, match="is a int"):
        fastemb.train([["a", 3]] * 10, min_count=1)
    with pytest.raises(fastemb.FileError, match="token lists"):
        fastemb.train(["the cat sat on the mat"], min_count=1)  # a list of strings names files
    with pytest.raises(fastemb.OptionError, match="checkpoint_every"):
        fastemb.train([["a", "b"]] * 10, min_count=1, checkpoint="x.ckpt", checkpoint_every="1")


# ------------------------------------------------------------------------------ the vectors API
@pytest.fixture(scope="module")
def kjv_emb():
    return fastemb.train(SAMPLE, dim=32, epochs=2, threads=2)


def test_queries_agree_with_gensim(kjv_emb):
    pytest.importorskip("gensim")
    emb = kjv_emb
    kv = emb.to_gensim()
    for pos, neg in ((["moses"], []), (["gold", "sheep"], []), (["king", "woman"], ["man"]),
                     ([emb["gold"]], []), (["egypt"], ["pharaoh"])):
        ours = emb.most_similar(positive=pos, negative=neg, topn=10)
        theirs = kv.most_similar(positive=pos, negative=neg, topn=10)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb.most_similar("moses", topn=None), kv.most_similar("moses", topn=None),
                               rtol=1e-4, atol=1e-5)
    ours, theirs = emb.most_similar("moses", topn=5, restrict_vocab=500), kv.most_similar("moses", topn=5,
                                                                                         restrict_vocab=500)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    assert emb.similarity("gold", "silver") == pytest.approx(float(kv.similarity("gold", "silver")), rel=1e-5)
    assert emb.n_similarity(["gold", "silver"], ["sheep", "goats"]) == pytest.approx(
        float(kv.n_similarity(["gold", "silver"], ["sheep", "goats"])), rel=1e-4)
    group = ["gold", "silver", "brass", "sheep"]
    assert emb.doesnt_match(group) == kv.doesnt_match(group)
    assert emb.closer_than("moses", "aaron") == kv.closer_than("moses", "aaron")
    assert emb.rank("moses", "egypt") == kv.rank("moses", "egypt")
    np.testing.assert_allclose(emb.distances("moses", ["aaron", "gold"]), kv.distances("moses", ["aaron", "gold"]),
                               rtol=1e-4)
    assert emb.most_similar_cosmul(positive=["king", "woman"], negative=["man"], topn=3)[0][0] == \
        kv.most_similar_cosmul(positive=["king", "woman"], negative=["man"], topn=3)[0][0]
    np.testing.assert_allclose(emb.get_vector("moses", norm=True), kv.get_vector("moses", norm=True), rtol=1e-5)
    back = fastemb.Embeddings.from_gensim(kv)
    assert back.words == emb.words and np.array_equal(back.vectors, emb.vectors)
    assert np.array_equal(back.counts, emb.counts) and kv.get_vecattr("moses", "count") == emb.get_vecattr(
        "moses", "count")


def test_container_protocol_and_unknown_words(kjv_emb):
    emb = kjv_emb
    assert len(emb) == len(emb.words) and "moses" in emb and "zzzz" not in emb
    assert list(emb) == emb.words and np.asarray(emb).shape == (len(emb), 32)
    assert emb.index_to_key is emb.words and emb.key_to_index["moses"] == emb.words.index("moses")
    assert emb.vector_size == 32 and emb[["moses", "gold"]].shape == (2, 32)
    np.testing.assert_array_equal(emb[0], emb.vectors[0])
    for call in (lambda: emb["zzzz"], lambda: emb.most_similar("zzzz"), lambda: emb.similarity("a-b-c", "moses")):
        with pytest.raises(KeyError) as e:
            call()
        assert isinstance(e.value, fastemb.FastembError) and "zzzz" in str(e.value) or "a-b-c" in str(e.value)
    with pytest.raises(fastemb.OptionError, match="topn"):
        emb.most_similar("moses", topn=-1)
    with pytest.raises(fastemb.OptionError, match="restrict_vocab"):
        emb.most_similar("moses", restrict_vocab=0)


def test_batched_queries_equal_single_ones(kjv_emb):
    words = ["moses", "gold", "sheep", "jerusalem"]
    batch = kjv_emb.most_similar_batch(words, topn=7)
    for w, result in zip(words, batch):
        assert [x for x, _ in result] == [x for x, _ in kjv_emb.most_similar(w, topn=7)]


# ------------------------------------------------------------------------------ continued training
def test_continued_training_keeps_or_extends_the_vocabulary(tmp_path):
    lines = kjv_lines()
    old, new = [line.split() for line in lines[:15000]], [line.split() for line in lines[15000:]]
    base = fastemb.train(old, dim=24, epochs=2, threads=1)
    kept = fastemb.train(new, init=base, epochs=1, threads=1)
    assert kept.words == base.words and kept.attrs["words_added"] == 0
    assert kept.attrs["dim"] == 24 and kept.attrs["epochs"] == 1
    assert not np.array_equal(kept.vectors, base.vectors)  # trained further
    new_counts = fastemb.build_vocab(new, min_count=1)
    moses_new = dict(zip(new_counts.words, new_counts.counts.tolist())).get("moses", 0)
    assert kept.get_vecattr("moses", "count") == base.get_vecattr("moses", "count") + moses_new
    grown = fastemb.train(new, init=base, update_vocab=True, epochs=1, threads=1)
    assert grown.words[:len(base)] == base.words and grown.attrs["words_added"] == len(grown) - len(base) > 100
    assert "jesus" not in base and "jesus" in grown
    assert {w for w, _ in grown.most_similar("jesus", topn=10)} & {"peter", "paul", "christ", "disciples", "john"}
    with pytest.raises(fastemb.OptionError, match="dim"):
        fastemb.train(new, init=base, dim=50)
    with pytest.raises(fastemb.OptionError, match="init"):
        fastemb.train(new, "glove", init=base)


@pytest.mark.slow
def test_continued_training_cli_with_checkpoint_and_resume(tmp_path):
    planted_corpus(tmp_path / "a.txt", sentences=2000)
    planted_corpus(tmp_path / "b.txt", sentences=2000, seed=5)
    rc, _, err = run_cli("train", tmp_path / "a.txt", "-o", tmp_path / "a.h5", "--dim", "8", "--epochs", "1",
                         "--threads", "1", "--quiet")
    assert rc == 0, err
    out = tmp_path / "b.h5"

    def stopped(path):
        import fastemb as F
        F.train(str(tmp_path / "b.txt"), init=str(tmp_path / "a.h5"), epochs=3, threads=1, checkpoint=str(path),
                checkpoint_every="1", callbacks=[lambda run: (_ for _ in ()).throw(F.StopTraining())])
    stopped(tmp_path / "b.ckpt")
    rc, _, err = run_cli("train", "--resume", tmp_path / "b.ckpt", "-o", out, "--quiet")
    assert rc == 0, err
    straight = fastemb.train(str(tmp_path / "b.txt"), init=str(tmp_path / "a.h5"), epochs=3, threads=1)
    np.testing.assert_array_equal(fastemb.load(out).vectors, straight.vectors)


# ------------------------------------------------------------------------------ files both ways
@pytest.mark.slow
def test_counts_travel_with_export_and_import(tmp_path, kjv_emb):
    kjv_emb.save(tmp_path / "e.h5")
    for fmt in ("word2vec", "word2vec-binary", "glove"):
        out = tmp_path / f"e.{fmt}"
        rc, _, err = run_cli("export", tmp_path / "e.h5", "--format", fmt, "-o", out, "--quiet")
        assert rc == 0, err
        assert (tmp_path / f"e.{fmt}.vocab").read_text().splitlines()[0] == f"{kjv_emb.words[0]} {kjv_emb.counts[0]}"
        rc, _, err = run_cli("import", out, "-o", tmp_path / f"back-{fmt}.h5", "--quiet")
        assert rc == 0, err
        back = fastemb.load(tmp_path / f"back-{fmt}.h5")
        assert back.words == kjv_emb.words and np.array_equal(back.counts, kjv_emb.counts)


@pytest.mark.slow
def test_vocab_formats(tmp_path, kjv_small):
    for fmt, sep in (("tsv", "\t"), ("glove", " "), ("word2vec", " ")):
        rc, _, err = run_cli("vocab", kjv_small, "-o", tmp_path / fmt, "--format", fmt, "--quiet")
        assert rc == 0, err
        first = (tmp_path / fmt).read_text().splitlines()[0]
        word, count = first.split(sep)
        assert word == "," and int(count) > 100  # the most frequent token of the KJV sample


def test_any_hdf5_with_an_embedding_and_a_vocabulary_loads(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:  # another tool's file, in the documented minimum layout
        f["embedding"] = np.eye(3, dtype=np.float64)
        f["vocab/words"] = np.array(["a", "b", "c"], dtype=object).astype(h5py.string_dtype())
    emb = fastemb.load(path)
    assert emb.words == ["a", "b", "c"] and emb.vectors.dtype == np.float32
    rc, out, err = run_cli("neighbors", path, "a", "-k", "1")
    assert rc == 0 and "not written by fastemb" in err


@pytest.mark.slow
def test_evaluation_sets_ship_in_the_wheel(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w",
                        str(tmp_path / "dist"), ROOT], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot build a wheel here: {p.stderr[-300:]}")
    wheel = next((tmp_path / "dist").glob("fastemb-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"fastemb/data/wordsim353.tsv", "fastemb/data/simlex999.txt", "fastemb/data/questions-words.txt"} <= set(names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    emb = tmp_path / "e.h5"
    fastemb.Embeddings(["king", "queen", "man", "woman"], np.eye(4, dtype=np.float32)).save(emb)
    env = {**os.environ, "PYTHONPATH": str(target)}
    p = subprocess.run([sys.executable, "-m", "fastemb", "eval", str(emb), "--json"], capture_output=True, text=True,
                       cwd=tmp_path, env=env)  # not the checkout: the installed package only
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert str(target) in out["similarity"][0]["file"] and out["analogy"][0]["questions"] == 19544


# ------------------------------------------------------------------------------ the CLI
def test_every_command_has_json_and_quiet():
    import click
    from fastemb.cli.main import cli

    def commands(group, prefix=""):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):  # a group (classify): its subcommands
                yield from commands(command, f"{prefix}{name} ")
            else:
                yield prefix + name, command

    names = []
    for name, command in commands(cli):
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"--json", "--quiet"} <= opts, name
        names.append(name)
    assert {"classify train", "classify predict", "classify test", "predict", "train"} <= set(names)


@pytest.mark.slow
def test_neighbors_answers_known_words_and_names_unknown_ones(tmp_path, kjv_emb):
    kjv_emb.save(tmp_path / "e.h5")
    rc, out, err = run_cli("neighbors", tmp_path / "e.h5", "moses", "zzzz", "gold", "-k", "3")
    assert_one_line_error(rc, err, contains="zzzz")
    assert "moses:" in out and "gold:" in out
    rc, out, err = run_cli("neighbors", tmp_path / "e.h5", "moses", "zzzz", "--json")
    data = json.loads(out)
    assert len(data["moses"]) == 10 and data["zzzz"] is None and rc == 1


@pytest.mark.slow
def test_align_checks_options_before_work_and_prints_the_ranking_score(tmp_path, kjv_emb):
    kjv_emb.save(tmp_path / "e.h5")
    lex = tmp_path / "lex.tsv"
    lex.write_text("".join(f"{w}\t{w}\n" for w in kjv_emb.words[:400]))
    rc, _, err = run_cli("align", tmp_path / "e.h5", tmp_path / "e.h5", "--lexicon", lex, "--method", "lstsq",
                         "--plot", tmp_path / "l.png", "-o", tmp_path / "R.h5")
    assert_one_line_error(rc, err, contains="--plot")
    assert not (tmp_path / "R.h5").exists()
    rc, out, err = run_cli("align", tmp_path / "e.h5", tmp_path / "e.h5", "--lexicon", lex, "--translate", "moses",
                           "--json")
    assert rc == 0, err
    data = json.loads(out)
    from fastemb import align
    a = align.fit(kjv_emb, kjv_emb, align.split_lexicon(
        [(w, w) for w in kjv_emb.words[:400]], 0.2, 1)[0], "procrustes")
    expected = align.translate(a, kjv_emb, kjv_emb, "moses", k=10, method="csls")
    assert [w for w, _ in data["translations"]["moses"]] == [w for w, _ in expected]
    assert data["translations"]["moses"][0][1] == pytest.approx(expected[0][1], rel=1e-4)
    unit = kjv_emb.get_normed_vectors()
    cos = float(unit[kjv_emb.get_index("moses")] @ unit[kjv_emb.get_index(expected[0][0])])
    assert expected[0][1] != pytest.approx(cos)  # the CSLS score, not the cosine


def test_word_maps_leave_out_punctuation_and_label_axes(tmp_path, kjv_emb):
    pytest.importorskip("matplotlib")
    from fastemb.plot import default_words, word_map
    words = default_words([",", "the", ".", "moses", ";", "gold", "2", "--"], 10)
    assert words == ["the", "moses", "gold", "2"]
    info = word_map(kjv_emb, default_words(kjv_emb.words, 50), tmp_path / "m.png", method="pca")
    assert len(info["explained_variance"]) == 2 and 0 < sum(info["explained_variance"]) < 1
    assert (tmp_path / "m.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------ a notebook session
def test_notebook_style_session(tmp_path):
    """Train from a list, query, hand to gensim, continue training, save, load the file in gensim."""
    gensim = pytest.importorskip("gensim")
    verses = [line.split() for line in kjv_lines(12000)]
    emb = fastemb.train(verses, dim=32, epochs=3)
    assert emb.most_similar(positive=["gold"], topn=3)
    kv = emb.to_gensim()
    assert kv.most_similar("gold", topn=3)[0][0] == emb.most_similar("gold", topn=3)[0][0]
    more = fastemb.train([line.split() for line in kjv_lines()[12000:20000]], init=emb, update_vocab=True,
                         epochs=1)
    more.save(tmp_path / "more.h5")
    rc, _, err = run_cli("export", tmp_path / "more.h5", "--format", "word2vec-binary", "-o", tmp_path / "more.bin")
    assert rc == 0, err
    loaded = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "more.bin"), binary=True)
    assert loaded.index_to_key == more.words
    np.testing.assert_allclose(loaded.vectors, more.vectors)
