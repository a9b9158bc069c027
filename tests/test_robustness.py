"""Hostile input, interruption and resume, numerical safety: nothing lost, nothing crashes.
Exit codes (README): 0 success, 1 bad input, 2 usage error, 130 interrupted, 143 terminated."""
import bz2
import collections
import gzip
import lzma
import os
import re
import signal
import sys

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastemb
from fastemb.errors import FastembError
from fastemb.vocab import build_vocab
from conftest import ROOT, assert_one_line_error, interrupt_cli, planted_corpus, run_cli

CORPUS_COMMANDS = [("vocab",), ("cooc",), ("train", "--dim", "4", "--epochs", "1")]


def outputs_in(d):
    return sorted(p for p in os.listdir(d) if not p.startswith("in"))


def run_on(tmp_path, command, path, *extra):
    out = tmp_path / "result.out"
    rc, _, err = run_cli(command[0], path, "-o", out, *command[1:], *extra)
    return rc, err, out


@pytest.mark.slow
@pytest.mark.parametrize("command", CORPUS_COMMANDS, ids=lambda c: c[0])
def test_zero_byte_and_whitespace_only(tmp_path, command):
    empty = tmp_path / "in.txt"
    empty.write_bytes(b"")
    rc, err, out = run_on(tmp_path, command, empty)
    assert_one_line_error(rc, err, contains="empty")
    assert str(empty) in err and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", CORPUS_COMMANDS, ids=lambda c: c[0])
def test_random_binary_and_nul_bytes_do_not_crash(tmp_path, command):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes() + b"\x00 \x00\x00 word\x00\n" * 50
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    rc, err, out = run_on(tmp_path, command, path, "--min-count", "1")
    assert "Traceback" not in err
    assert rc == 0 and out.exists(), err
    assert "invalid UTF-8" in err and str(path) in err


def test_latin1_and_mixed_encodings_are_replaced_and_counted(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("café naïve\n".encode("latin-1") + "café naïve\n".encode("utf-8"))
    v = build_vocab([str(path)], min_count=1)
    assert dict(zip(v.words, v.counts.tolist())) == {"caf\ufffd": 1, "na\ufffdve": 1, "café": 1, "naïve": 1}


@pytest.mark.slow
@pytest.mark.parametrize("ext,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_truncated_and_corrupt_compressed_files(tmp_path, ext, compress, kjv_small):
    data = compress(open(kjv_small, "rb").read())
    for name, payload in (("trunc", data[: len(data) // 2]), ("garbage", b"not compressed at all" * 100)):
        path = tmp_path / f"in-{name}.txt{ext}"
        path.write_bytes(payload)
        rc, err, out = run_on(tmp_path, ("vocab",), path)
        assert_one_line_error(rc, err, contains=str(path))
        assert not out.exists() and outputs_in(tmp_path) == []


def test_unreadable_file_in_directory(tmp_path):
    d = tmp_path / "in-dir"
    d.mkdir()
    (d / "good.txt").write_text("some words here\n" * 10)
    os.symlink(d / "vanished.txt", d / "broken.txt")
    rc, err, out = run_on(tmp_path, ("vocab",), d)
    assert_one_line_error(rc, err, contains="broken.txt")
    os.remove(d / "broken.txt")
    locked = d / "locked.txt"
    locked.write_text("secret\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user who can read anything")
        rc, err, out = run_on(tmp_path, ("vocab",), d)
        assert_one_line_error(rc, err, contains="locked.txt")
    finally:
        locked.chmod(0o600)


@pytest.mark.slow
def test_huge_line_without_newline_streams_in_bounded_memory(tmp_path):
    """200 MB of tokens and not one newline: split into sentences, read in bounded memory."""
    sys.path.insert(0, ROOT)
    from bench.harness import run_process
    path = tmp_path / "in-long.txt"
    block = (b"alpha beta gamma delta " * 50_000)
    n_blocks = 200_000_000 // len(block)
    with open(path, "wb") as f:
        for _ in range(n_blocks):
            f.write(block)
    wall, rss, rc, _, err = run_process(["fastemb", "vocab", str(path), "-o", str(tmp_path / "v.tsv"), "--quiet"])
    assert rc == 0, err
    assert rss < 400, f"peak RSS {rss:.0f} MB reading a 200 MB line"
    assert (tmp_path / "v.tsv").read_text().split("\n")[0] == f"alpha\t{n_blocks * 50_000}"
    with build_vocab([str(path)], encode=True, max_sentence_length=10_000) as enc:
        lengths = np.diff(np.concatenate(([0], enc.sentence_ends)))
        assert lengths.max() == 10_000 and enc.n_tokens == 4 * n_blocks * 50_000


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sgns", "cbow", "glove", "ppmi-svd"])
def test_single_word_vocabulary(tmp_path, algo):
    path = tmp_path / "in.txt"
    path.write_text("same same same same same\nsame same same\n")
    rc, err, out = run_on(tmp_path, ("train", "--algo", algo, "--dim", "4"), path)
    assert "Traceback" not in err
    if rc == 0:
        assert fastemb.load(out).vectors.shape == (1, 4)
    else:
        assert_one_line_error(rc, err)
        assert not out.exists()


@pytest.mark.slow
def test_hdf5_inputs_that_are_not_ours(tmp_path):
    emb_path = tmp_path / "in-good.h5"
    fastemb.Embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32)).save(emb_path)
    foreign = tmp_path / "in-foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    truncated = tmp_path / "in-trunc.h5"
    truncated.write_bytes(emb_path.read_bytes()[:2000])
    future = tmp_path / "in-future.h5"
    future.write_bytes(emb_path.read_bytes())
    with h5py.File(future, "a") as f:
        f.attrs["format_version"] = 99
    for path, words in ((foreign, "not a fastemb file"), (truncated, "in-trunc.h5"), (future, "newer")):
        for args in (("info", path), ("neighbors", path, "a"), ("eval", path), ("export", path, "--format",
                     "glove", "-o", tmp_path / "x.txt"), ("train", "--cooc", path, "--algo", "glove", "-o",
                                                          tmp_path / "x.h5")):
            rc, _, err = run_cli(*args)
            assert_one_line_error(rc, err, contains=words)
    rc, _, err = run_cli("train", "--cooc", emb_path, "--algo", "glove", "-o", tmp_path / "x.h5")
    assert_one_line_error(rc, err, contains="not cooccurrence")
    assert outputs_in(tmp_path) == []


@pytest.mark.slow
def test_outputs_missing_dir_readonly_dir_and_existing(tmp_path, kjv_small):
    emb_path = tmp_path / "in.h5"
    fastemb.Embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32)).save(emb_path)
    commands = [("vocab", kjv_small), ("cooc", kjv_small), ("train", kjv_small, "--epochs", "1"),
                ("export", emb_path, "--format", "word2vec"), ("import", emb_path)]
    for cmd in commands:
        rc, _, err = run_cli(*cmd, "-o", tmp_path / "missing" / "x")
        assert_one_line_error(rc, err, contains="does not exist")
        existing = tmp_path / "existing"
        existing.write_text("precious")
        rc, _, err = run_cli(*cmd, "-o", existing)
        assert_one_line_error(rc, err, contains="--force")
        assert existing.read_text() == "precious"


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    """Enough text (synthetic, 6M tokens) that every pass runs for seconds."""
    sys.path.insert(0, ROOT)
    from bench.corpus import write_zipf
    return write_zipf(str(tmp_path_factory.mktemp("big") / "in-zipf.txt"), 6_000_000, vocab=20_000, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("command", [("cooc", "--window", "15"), ("train", "--threads", "1", "--epochs", "20")],
                         ids=lambda c: c[0] if isinstance(c, tuple) else str(c))
def test_interrupt_exits_promptly_without_partial_output(tmp_path, big_corpus, command, sig, code):
    out = tmp_path / "out.h5"
    rc, err, seconds = interrupt_cli([command[0], big_corpus, "-o", out, *command[1:]], sig)
    assert rc == code, err
    assert "Traceback" not in err and seconds < 5
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_model(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=60_000, length=20)
    out = tmp_path / "v.h5"
    args = ["train", tmp_path / "p.txt", "-o", out, "--dim", "32", "--epochs", "6", "--threads", "1",
            "--checkpoint-every", "1", "--quiet"]
    rc, err, _ = interrupt_cli(args, signal.SIGINT, wait_for=str(out) + ".ckpt", delay=0.1)
    assert rc == 130, err
    assert not out.exists() and os.path.exists(str(out) + ".ckpt")
    rc, _, err = run_cli("train", "--resume", str(out) + ".ckpt", "-o", out, "--quiet")
    assert rc == 0, err
    assert not os.path.exists(str(out) + ".ckpt")  # the finished model supersedes it
    resumed = fastemb.load(out)
    assert resumed.attrs["resumed_from"].endswith(".ckpt")
    straight = fastemb.train(str(tmp_path / "p.txt"), dim=32, epochs=6, threads=1)
    np.testing.assert_array_equal(resumed.vectors, straight.vectors)  # 1 thread: bit for bit
    assert resumed.attrs["loss"] == pytest.approx(straight.attrs["loss"])


def test_glove_checkpoint_resume_equals_uninterrupted(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=2000)
    ck = tmp_path / "g.ckpt"
    kw = dict(dim=8, epochs=6, threads=1)
    fastemb.train(str(tmp_path / "p.txt"), "glove", checkpoint=str(ck), checkpoint_every="2", **kw)
    from fastemb.checkpoint import load_checkpoint
    state = load_checkpoint(ck).state
    assert state.epoch == 4  # the last one written before the end
    resumed = fastemb.train(resume=str(ck))
    straight = fastemb.train(str(tmp_path / "p.txt"), "glove", **kw)
    np.testing.assert_array_equal(resumed.vectors, straight.vectors)


def test_divergence_is_a_clear_error(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=500)
    with pytest.raises(FastembError, match="diverged in epoch 1"):
        fastemb.train(str(tmp_path / "p.txt"), "glove", eta=100, epochs=2)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5epochs"])
def test_bad_checkpoint_every(tmp_path, kjv_small, bad):
    rc, _, err = run_cli("train", kjv_small, "-o", tmp_path / "v.h5", "--checkpoint-every", bad)
    assert_one_line_error(rc, err, contains="--checkpoint-every")


# --------------------------------------------------------------------------------- property-based
def reference_tokens(data: bytes):
    """What the reader must produce: a byte-order mark's encoding (else UTF-8) with replacement, lines
    ended by LF, CR or CRLF, tokens split as str.split() (and on NUL)."""
    from fastemb.corpus import sniff_encoding
    codec, skip = sniff_encoding(data, "reference")
    text = data[skip:].decode(codec, errors="replace").replace("\x00", " ")
    return [line.split() for line in re.split("\r\n|\r|\n", text)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.lists(st.sampled_from(
    list("ab é\n\t\r\x0b\x0c\x1c\u00a0\u3000\u2028日\x00") + ["xyz", "\udc80"]), max_size=200).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")), chunk=st.integers(1, 64))
def test_reader_and_tokenizer_on_arbitrary_bytes(tmp_path, data, chunk):
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    try:
        lines = reference_tokens(data)
    except FastembError:  # NUL-filled text without a byte-order mark: refused, by the reader too
        with pytest.raises(FastembError, match="UTF-16"):
            build_vocab([str(path)], min_count=1, chunk_bytes=chunk)
        return
    counts = collections.Counter(t for line in lines for t in line)
    if not counts:
        with pytest.raises(FastembError, match="empty"):
            build_vocab([str(path)], min_count=1, chunk_bytes=chunk)
        return
    with build_vocab([str(path)], min_count=1, encode=True, chunk_bytes=chunk) as enc:
        assert dict(zip(enc.vocab.words, enc.vocab.counts.tolist())) == dict(counts)
        index = enc.vocab.index
        ids = [index[t] for line in lines for t in line]
        ends = np.cumsum([len(line) for line in lines if line])
        assert np.array_equal(enc.ids, ids) and np.array_equal(enc.sentence_ends, ends)
