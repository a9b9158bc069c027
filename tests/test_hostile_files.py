"""Crafted files and faults: nothing read from outside a file, nothing unchecked reaches a kernel, a full disk
or a second run is one clear line, and no run leaves anything behind."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import fastemb
from conftest import ROOT, assert_one_line_error, fuzz_commands, planted_corpus, run_cli, stop_at

SECRET = b"TOP-SECRET-" * 400  # 4,400 bytes: 11 rows of 100 float32


@pytest.fixture()
def good(tmp_path):
    words = [f"w{i}" for i in range(11)]
    emb = fastemb.Embeddings(words, np.random.default_rng(0).standard_normal((11, 100)).astype(np.float32))
    path = tmp_path / "good.h5"
    emb.save(path)
    return path, words


def _commands_reading(path, tmp_path):
    return [("export", path, "--format", "word2vec-binary", "-o", tmp_path / "out.bin"),
            ("import", path, "-o", tmp_path / "out.h5"), ("info", path), ("neighbors", path, "w1"),
            ("eval", path)]


def _assert_refused(tmp_path, path, contains):
    for args in _commands_reading(path, tmp_path):
        rc, out, err = run_cli(*args)
        assert_one_line_error(rc, err, contains=contains)
        assert "TOP-SECRET" not in out + err
    assert not (tmp_path / "out.bin").exists() and not (tmp_path / "out.h5").exists()


def test_external_storage_is_not_followed(tmp_path, good):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    evil = tmp_path / "evil.h5"
    _, words = good
    with h5py.File(evil, "w") as f:
        f.attrs.update({"encoding-type": "fastemb", "format_version": 1, "content": "embeddings"})
        f.create_dataset("embedding", shape=(11, 100), dtype=np.float32, external=[(str(secret), 0, len(SECRET))])
        f.create_dataset("vocab/words", data=np.array(words, dtype=object), dtype=h5py.string_dtype())
    _assert_refused(tmp_path, evil, "external")


@pytest.mark.slow
def test_external_soft_links_and_virtual_datasets_are_refused(tmp_path, good):
    path, words = good
    elink, soft, virtual = tmp_path / "elink.h5", tmp_path / "soft.h5", tmp_path / "virtual.h5"
    for target in (elink, soft, virtual):
        target.write_bytes(path.read_bytes())
    with h5py.File(elink, "a") as f:
        del f["embedding"]
        f["embedding"] = h5py.ExternalLink(str(path), "/embedding")
    with h5py.File(soft, "a") as f:
        f.move("embedding", "hidden")
        f["embedding"] = h5py.SoftLink("/hidden")
    with h5py.File(virtual, "a") as f:
        del f["embedding"]
        layout = h5py.VirtualLayout(shape=(11, 100), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(path), "embedding", shape=(11, 100))
        f.create_virtual_dataset("embedding", layout)
    _assert_refused(tmp_path, elink, "external link")
    _assert_refused(tmp_path, soft, "soft link")
    _assert_refused(tmp_path, virtual, "virtual dataset")


def _edit_copy(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def _set(name, value):
    def edit(f):
        if name in f:
            del f[name]
        f[name] = value
    return edit


@pytest.mark.slow
@pytest.mark.parametrize("edit,contains", [
    (_set("embedding", np.zeros((10, 100), np.float32)), "10 rows"),
    (_set("embedding", np.full((11, 100), np.nan, np.float32)), "non-finite"),
    (_set("embedding", np.zeros((11, 100, 2), np.float32)), "dimensions"),
    (_set("embedding", np.zeros((11, 100), np.int32)), "expected floats"),
    (_set("vocab/words", np.array(["a"] * 11, dtype=object).astype(h5py.string_dtype())), "twice"),
    (_set("vocab/counts", -np.ones(11, np.int64)), "negative"),
    (_set("context_embedding", np.zeros((11, 7), np.float32)), "shape"),
])
def test_crafted_embeddings_are_checked(tmp_path, good, edit, contains):
    bad = _edit_copy(good[0], tmp_path / "bad.h5", edit)
    rc, _, err = run_cli("neighbors", bad, "w1")
    assert_one_line_error(rc, err, contains=contains)


@pytest.fixture(scope="module")
def cooc_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cooc")
    planted_corpus(d / "p.txt", sentences=300)
    rc, _, err = run_cli("cooc", d / "p.txt", "-o", d / "c.h5", "--window", "3", "--quiet")
    assert rc == 0, err
    return d / "c.h5"


@pytest.mark.slow
@pytest.mark.parametrize("edit,contains", [
    (_set("cooccurrence/indices", np.full(10, 99999, np.int32)), "expected"),
    (lambda f: f["cooccurrence/indices"].__setitem__(0, 1 << 30), "outside"),
    (lambda f: f["cooccurrence/indptr"].__setitem__(5, 10 ** 9), "rise"),
    (lambda f: f["cooccurrence/data"].__setitem__(0, np.inf), "non-finite"),
    (lambda f: f["cooccurrence/data"].__setitem__(0, -5), "negative"),
    (lambda f: f["cooccurrence"].attrs.__setitem__("shape", np.array([3, 3])), "vocabulary has"),
])
def test_crafted_cooccurrence_files_never_reach_a_kernel(tmp_path, cooc_file, edit, contains):
    bad = _edit_copy(cooc_file, tmp_path / "bad.h5", edit)
    for algo in ("glove", "ppmi-svd"):
        rc, _, err = run_cli("train", "--cooc", bad, "--algo", algo, "--dim", "4", "-o", tmp_path / "v.h5")
        assert_one_line_error(rc, err, contains=contains)


def test_crafted_alignment_is_checked(tmp_path):
    from fastemb.align import Alignment
    a = Alignment(R=np.eye(4, dtype=np.float32), method="procrustes", center=True,
                  src_mean=np.zeros(4, np.float32), tgt_mean=np.zeros(4, np.float32))
    a.save(tmp_path / "r.h5")
    bad = _edit_copy(tmp_path / "r.h5", tmp_path / "bad.h5", _set("alignment/src_mean", np.zeros(9, np.float32)))
    with pytest.raises(fastemb.FileError, match="src_mean"):
        Alignment.load(bad)


# ------------------------------------------------------------------------------------------ faults
@pytest.fixture()
def full_disk(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root?)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.fixture(scope="module")
def corpus_3m(tmp_path_factory):
    path = tmp_path_factory.mktemp("c3") / "in.txt"
    planted_corpus(path, groups=400, per_group=20, sentences=40_000, length=20)
    return path


@pytest.mark.slow
def test_full_disk_is_one_line_and_leaves_nothing(full_disk, corpus_3m, tmp_path):
    rc, _, err = run_cli("cooc", corpus_3m, "-o", full_disk / "c.h5", "--window", "5")
    assert_one_line_error(rc, err, contains=str(full_disk))
    assert "no space" in err and os.listdir(full_disk) == []
    rc, _, err = run_cli("train", corpus_3m, "-o", full_disk / "v.h5", "--epochs", "1", "--dim", "300")
    assert_one_line_error(rc, err, contains=str(full_disk))
    assert os.listdir(full_disk) == []
    rc, _, err = run_cli("cooc", corpus_3m, "-o", tmp_path / "c.h5", "--tmp-dir", full_disk, "--memory", "16MB")
    assert_one_line_error(rc, err, contains=str(full_disk))
    assert "no space" in err and os.listdir(full_disk) == [] and not (tmp_path / "c.h5").exists()


@pytest.mark.slow
def test_long_output_names_and_non_utf8_paths_save(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=300)
    name = "v" * 247 + ".h5"  # 250 bytes: the temporary name must still fit
    rc, _, err = run_cli("train", tmp_path / "p.txt", "-o", tmp_path / name, "--dim", "8", "--epochs", "1", "--quiet")
    assert rc == 0, err
    assert (tmp_path / name).exists()
    rc, _, err = run_cli("train", tmp_path / "p.txt", "-o", tmp_path / ("v" * 300), "--dim", "8")
    assert_one_line_error(rc, err, contains="too long")
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(odd, "wb") as f:
        f.write((tmp_path / "p.txt").read_bytes())
    p = subprocess.run([sys.executable, "-m", "fastemb", "train", odd, "-o", str(tmp_path / "odd.h5"), "--dim", "8",
                        "--epochs", "1", "--quiet"], capture_output=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "caf" in fastemb.load(tmp_path / "odd.h5").attrs["corpus"]


def test_two_runs_on_one_output(tmp_path, corpus_3m):
    out = tmp_path / "v.h5"
    first = subprocess.Popen([sys.executable, "-m", "fastemb", "train", str(corpus_3m), "-o", str(out), "--epochs",
                              "100000", "--threads", "1", "--quiet"], cwd=ROOT, stderr=subprocess.PIPE)
    lock = tmp_path / ".v.h5.fastemb-lock"
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    try:
        rc, _, err = run_cli("train", corpus_3m, "-o", out, "--epochs", "1", "--force")
        assert_one_line_error(rc, err, contains=f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(180)  # a first run may be compiling kernels, which defers the signal
    assert not out.exists() and not lock.exists()


def test_exploding_loss_stops_glove(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=2000)
    rc, _, err = run_cli("train", tmp_path / "p.txt", "--algo", "glove", "--eta", "10", "-o", tmp_path / "v.h5",
                         "--dim", "20")
    assert_one_line_error(rc, err, contains="diverged in epoch")
    assert "--eta" in err and not (tmp_path / "v.h5").exists()


# ------------------------------------------------------------------------------------------ inputs
@pytest.mark.slow
def test_word2vec_files_are_checked_against_their_header(tmp_path):
    emb = fastemb.Embeddings([f"w{i}" for i in range(20)], np.random.default_rng(0).random((20, 8), np.float32))
    emb.save(tmp_path / "e.h5")
    for fmt in ("word2vec", "word2vec-binary"):
        rc, _, err = run_cli("export", tmp_path / "e.h5", "--format", fmt, "-o", tmp_path / fmt)
        assert rc == 0, err
    binary = (tmp_path / "word2vec-binary").read_bytes()
    cases = {
        "wrong-dim.bin": (binary.replace(b"20 8\n", b"20 6\n", 1), "header"),
        "wrong-count.bin": (binary.replace(b"20 8\n", b"25 8\n", 1), "truncated"),
        "short.bin": (binary[:-10], "truncated"),
    }
    text = (tmp_path / "word2vec").read_text().splitlines(keepends=True)
    cases["truncated.txt"] = ("".join(text[:-3]).encode(), "truncated: 17 of the 20")
    cases["ragged.txt"] = ("".join(text[:5] + [text[5].rsplit(" ", 1)[0] + "\n"] + text[6:]).encode(), ":6: 7 values")
    cases["duplicate.txt"] = ("".join(text[:4] + [text[2]] + text[5:]).encode(), "again (first at line 3)")
    cases["nan.txt"] = ("".join(text[:2] + ["w99 " + " ".join(["nan"] * 8) + "\n"] + text[3:]).encode(), "non-finite")
    for name, (data, contains) in cases.items():
        (tmp_path / name).write_bytes(data)
        rc, _, err = run_cli("import", tmp_path / name, "-o", tmp_path / "x.h5")
        assert_one_line_error(rc, err, contains=contains)
        assert str(tmp_path / name) in err and not (tmp_path / "x.h5").exists()


def test_pickles_and_fasttext_models_are_named(tmp_path):
    import pickle
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    (tmp_path / "model.bin").write_bytes(b"\xba\x16\x4f\x2f" + bytes(100))
    for name, contains in (("model.pkl", "pickle"), ("model.bin", "fastText")):
        rc, _, err = run_cli("import", tmp_path / name, "-o", tmp_path / "x.h5")
        assert_one_line_error(rc, err, contains=contains)


def _vocab(path):
    return dict(zip(*(lambda v: (v.words, v.counts.tolist()))(fastemb.build_vocab([str(path)], min_count=1))))


def test_byte_order_marks_and_line_ends(tmp_path):
    text = "".join(f"wörd{i % 7} und {i}\n" for i in range(800))
    (tmp_path / "utf8.txt").write_text(text, encoding="utf-8")
    reference = _vocab(tmp_path / "utf8.txt")
    for codec in ("utf-8-sig", "utf-16", "utf-16-le", "utf-32"):
        data = text.encode(codec)
        if codec == "utf-16-le":
            data = b"\xff\xfe" + data
        (tmp_path / f"{codec}.txt").write_bytes(data)
        assert _vocab(tmp_path / f"{codec}.txt") == reference, codec
    (tmp_path / "nobom.txt").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(fastemb.FileError, match="UTF-16"):
        fastemb.build_vocab([str(tmp_path / "nobom.txt")])
    for name, ending in (("cr.txt", "\r"), ("crlf.txt", "\r\n")):
        (tmp_path / name).write_bytes(text.replace("\n", ending).encode())
        with fastemb.build_vocab([str(tmp_path / name)], min_count=1, encode=True) as enc:
            assert len(enc.sentence_ends) == 800 and enc.vocab.words[0] != ""


def test_token_pattern_with_groups_is_refused(tmp_path, kjv_small):
    rc, _, err = run_cli("vocab", kjv_small, "-o", tmp_path / "v.tsv", "--token-pattern", r"(\w)\w+")
    assert_one_line_error(rc, err, contains="--token-pattern")
    assert "(?:" in err


@pytest.mark.slow
def test_query_options_and_answers(tmp_path, good):
    path, _ = good
    rc, _, err = run_cli("neighbors", path, "w1", "--restrict", "0")
    assert_one_line_error(rc, err, contains="--restrict")
    rc, _, err = run_cli("neighbors", path, "w1", "-k", "0")
    assert_one_line_error(rc, err, contains="-k")
    rc, out, err = run_cli("analogy", path, "w1", "w2", "w3", "-k", "50", "--json")
    assert rc == 0, err
    answers = [w for w, _ in json.loads(out)]
    assert len(answers) == 8 and not {"w1", "w2", "w3"} & set(answers)
    rc, out, err = run_cli("eval", path, "--json")  # no evaluation pair is covered: NaN scores
    assert rc == 0, err
    data = json.loads(out)  # valid JSON: NaN became null
    assert data["similarity"][0]["spearman"] is None and "NaN" not in out


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--analogy", "--similarity"])
def test_missing_and_latin1_evaluation_files(tmp_path, good, option):
    path, _ = good
    rc, _, err = run_cli("eval", path, option, tmp_path / "missing.txt")
    assert_one_line_error(rc, err, contains="missing.txt: no such")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 na\u00efve 3.0\n".encode("latin-1"))
    rc, _, err = run_cli("eval", path, option, latin)
    assert_one_line_error(rc, err, contains="latin.txt:1: not UTF-8")


def test_missing_and_latin1_lexicon_and_word_list(tmp_path, good):
    path, _ = good
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9\tcoffee\n".encode("latin-1"))
    for lexicon in (tmp_path / "missing.tsv", latin):
        rc, _, err = run_cli("align", path, path, "--lexicon", lexicon)
        assert_one_line_error(rc, err, contains=str(lexicon))
    pytest.importorskip("matplotlib")
    rc, _, err = run_cli("plot", path, "--words", latin, "-o", tmp_path / "m.png", "--method", "pca")
    assert_one_line_error(rc, err, contains="not UTF-8")


def test_fifos_are_refused_without_hanging(tmp_path, good):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for args in (("info", fifo), ("neighbors", fifo, "a"), ("vocab", fifo, "-o", tmp_path / "v.tsv"),
                 ("eval", good[0], "--analogy", fifo)):
        p = subprocess.run([sys.executable, "-m", "fastemb", *map(str, args)], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
        assert_one_line_error(p.returncode, p.stderr, contains="not a regular file")


# ------------------------------------------------------------------------------------------ leftovers
def test_leftovers_of_killed_runs_are_removed(tmp_path, corpus_3m):
    work, out_dir = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out_dir.mkdir()
    for i, command in enumerate((["cooc", "--window", "10", "--memory", "16MB"], ["train", "--epochs", "50"])):
        before = set(os.listdir(work))
        p = subprocess.Popen([sys.executable, "-m", "fastemb", command[0], str(corpus_3m), "-o",
                              str(out_dir / f"o{i}.h5"), "--tmp-dir", str(work), "--quiet", *command[1:]], cwd=ROOT)
        deadline = time.time() + 60
        while not set(os.listdir(work)) - before and time.time() < deadline:
            time.sleep(0.005)
        p.kill()
        p.wait()
        assert not before & set(os.listdir(work))  # the new run removed what the one killed before left
    assert len(os.listdir(work)) == 1  # the last dead run's work directory
    rc, _, err = run_cli("clean", work, out_dir, "--dry-run")
    assert rc == 0 and "would remove" in err and os.listdir(work)
    planted_corpus(tmp_path / "p.txt", sentences=200)
    rc, _, err = run_cli("train", tmp_path / "p.txt", "-o", out_dir / "fresh.h5", "--tmp-dir", work, "--dim", "4",
                         "--epochs", "1", "--quiet")
    assert rc == 0, err
    assert os.listdir(work) == [] and sorted(os.listdir(out_dir)) == ["fresh.h5"]


def _work_dir(path):
    """A directory as fastemb's work_dir makes it: the name and the marker file inside."""
    from fastemb.files import WORK_MARKER
    path.mkdir()
    (path / WORK_MARKER).write_text(f"fastemb work directory {path.name}\n")
    return path


def test_clean_leaves_live_runs_alone(tmp_path):
    live = _work_dir(tmp_path / f"fastemb-{os.getpid()}-abcd1234")
    dead = _work_dir(tmp_path / "fastemb-999999999-abcd1234")
    part = tmp_path / ".x.h5.999999999.0123abcd.part"
    part.write_text("x")
    rc, _, err = run_cli("clean", tmp_path)
    assert rc == 0, err
    assert live.exists() and not dead.exists() and not part.exists()


def test_clean_removes_only_what_fastemb_made(tmp_path):
    """A user's folder that merely looks like a work directory is never removed: only a directory with the
    marker file fastemb writes into each work directory it makes, naming it."""
    from fastemb.files import WORK_MARKER, work_dir
    kept = []
    for name in ("fastemb-2024-results", "fastemb-999999999-abcd1234", "fastemb-cooc-999999999-x",
                 "fastemb-999999999-abcd12345"):
        d = tmp_path / name
        d.mkdir()
        (d / "results.csv").write_text("precious\n")
        kept.append(d)
    wrong = tmp_path / "fastemb-999999999-zzzz1234"   # a marker naming another directory (copied)
    wrong.mkdir()
    (wrong / WORK_MARKER).write_text("fastemb work directory fastemb-1-abcd1234\n")
    kept.append(wrong)
    linked = tmp_path / "fastemb-999999999-link1234"  # a link to a marked directory
    target = _work_dir(tmp_path / "elsewhere")
    (target / WORK_MARKER).write_text("fastemb work directory fastemb-999999999-link1234\n")
    linked.symlink_to(target)
    kept += [linked, target]
    a_dir_part = tmp_path / ".x.h5.999999999.0123abcd.part"   # only files are partial outputs
    a_dir_part.mkdir()
    kept.append(a_dir_part)
    dead = _work_dir(tmp_path / "fastemb-dask-999999999-abcd1234")
    mine = work_dir(str(tmp_path), "cooc")                    # made by this (live) process
    rc, _, err = run_cli("clean", tmp_path)
    assert rc == 0, err
    assert all(os.path.lexists(p) for p in kept) and not dead.exists() and os.path.isdir(mine)
    assert (kept[0] / "results.csv").read_text() == "precious\n"


HANGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "hdf5-hangs-reading-an-attribute.h5")


def test_a_file_that_hangs_the_hdf5_library_is_refused(tmp_path, monkeypatch):
    """Found by the fuzzer below: flipped bytes in the global heap under a string attribute make the HDF5
    C library loop forever on reading `encoding-type`. The forked probe gives up and says so in one line."""
    from fastemb import store
    monkeypatch.setattr(store, "PROBE_SECONDS", 1.0)
    t = time.monotonic()
    with pytest.raises(fastemb.FileError, match="damaged HDF5 file"):
        fastemb.load(HANGS)
    assert time.monotonic() - t < 30
    rc, _, err = run_cli("export", HANGS, "--format", "glove", "-o", tmp_path / "x.txt", env={"FASTEMB_PROBE_SECONDS": "1"})
    assert_one_line_error(rc, err, contains="damaged HDF5 file")
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize("failure, contains", [("loop", "did not finish"), ("crash", "crashed")])
def test_probe_survives_a_library_that_loops_or_crashes(good, monkeypatch, failure, contains):
    from fastemb import store
    path, _ = good

    def misbehave(f):
        if failure == "loop":
            while True:
                pass
        os.kill(os.getpid(), signal.SIGSEGV)
    monkeypatch.setattr(store, "_read_everything_risky", misbehave)
    monkeypatch.setattr(store, "PROBE_SECONDS", 0.5)
    with pytest.raises(fastemb.FileError, match=contains) as e:
        fastemb.load(path)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ fuzzing
@pytest.mark.slow
def test_fuzzed_files_succeed_or_fail_with_one_line(tmp_path, cooc_file):
    """Hundreds of damaged embeddings, co-occurrence and checkpoint files, fed to the commands that read
    them in one worker process: every run ends with 0 or 1 and at most one error line, never a traceback;
    a crash (a signal) would end the worker and fail the test."""
    planted_corpus(tmp_path / "p.txt", sentences=300)
    emb = tmp_path / "e.h5"
    fastemb.train(str(tmp_path / "p.txt"), dim=8, epochs=1, threads=1, output=str(emb))
    ck = tmp_path / "ck.ckpt"
    fastemb.train(str(tmp_path / "p.txt"), dim=8, epochs=3, threads=1, checkpoint=str(ck), checkpoint_every="1",
                  callbacks=[stop_at(1)])
    fuzz_commands(tmp_path, [
        (emb, 120, 0, lambda p: ["export", p, "--format", "glove", "-o", str(p) + ".txt", "--force"]),
        (cooc_file, 100, 120, lambda p: ["train", "--cooc", p, "--algo", "ppmi-svd", "--dim", "3", "-o",
                                         str(p) + ".out.h5", "--force", "--quiet"]),
        (ck, 100, 220, lambda p: ["train", "--resume", p, "-o", str(p) + ".out.h5", "--force", "--quiet"])],
        timeout=900)
