"""Hostile and careless input on the newer surfaces (issue 28): nothing lost, every run stoppable, every value
read from a file checked, one-line errors."""
import os
import shutil

import numpy as np
import pytest

import fastemb
from conftest import assert_one_line_error, checkpointed_run, fuzz_commands, planted_corpus, run_cli, stop_at


# ------------------------------------------------------------------------------------------ data loss
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """`train -o out.h5` interrupted after 2 of 3 epochs: out.h5.ckpt (epoch 1) kept, no model."""
    d = tmp_path_factory.mktemp("resume")
    out = d / "out.h5"
    checkpointed_run(d, 400, KeyboardInterrupt, dim=8, epochs=3, output=str(out))
    assert not out.exists() and os.path.exists(f"{out}.ckpt")
    return d, out


def test_resume_keeps_a_copy_of_the_checkpoint(interrupted, tmp_path):
    d, out = interrupted
    keep = tmp_path / "keep.ckpt"
    shutil.copy(f"{out}.ckpt", keep)
    saved = keep.read_bytes()
    target = tmp_path / "out.h5"
    rc, _, err = run_cli("train", "--resume", keep, "-o", target, "--quiet")
    assert rc == 0, err
    assert keep.read_bytes() == saved            # the user's copy: never removed nor written over
    assert fastemb.load(target).attrs["epochs_trained"] == 3
    assert os.path.exists(f"{out}.ckpt")         # made for out.h5, not for this output


@pytest.mark.slow
def test_resume_removes_its_own_checkpoint_only_for_its_output(interrupted, tmp_path):
    d, out = interrupted
    work = tmp_path / "w"
    work.mkdir()
    own_out = work / "out.h5"
    own_ck = work / "out.h5.ckpt"
    # the run's own checkpoint, at its recorded place, for another output: kept
    rc, _, err = run_cli("train", "--resume", f"{out}.ckpt", "-o", own_out, "--quiet")
    assert rc == 0, err
    assert os.path.exists(f"{out}.ckpt") and not own_ck.exists()
    # ... and for its own output: superseded by the model, removed
    backup = tmp_path / "backup.ckpt"
    shutil.copy(f"{out}.ckpt", backup)
    try:
        rc, _, err = run_cli("train", "--resume", f"{out}.ckpt", "-o", out, "--quiet")
        assert rc == 0, err
        assert out.exists() and not os.path.exists(f"{out}.ckpt")
    finally:
        if out.exists():
            out.unlink()
        shutil.copy(backup, f"{out}.ckpt")


def test_export_side_files_obey_force(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=200)
    model = tmp_path / "m.h5"
    fastemb.train(str(tmp_path / "p.txt"), dim=4, epochs=1, output=str(model))
    out = tmp_path / "v.txt"
    side = tmp_path / "v.txt.vocab"
    side.write_text("mine\n")
    rc, _, err = run_cli("export", model, "-o", out, "--format", "word2vec")
    assert_one_line_error(rc, err, contains="v.txt.vocab")
    assert side.read_text() == "mine\n" and not out.exists()   # refused before anything was written
    rc, _, err = run_cli("export", model, "-o", out, "--format", "word2vec", "--force", "--quiet")
    assert rc == 0, err
    assert side.read_text() != "mine\n" and out.exists()


# --------------------------------------------------------------------------- every run stoppable
import signal
import subprocess
import sys
import threading
import time

from conftest import ROOT


_WARMED = set()


def _warm_kernels(args, corpus, tmp_path):
    """Compile (or load from Numba's cache) the kernels a signal test will call, with small sizes and one epoch:
    the test then measures how a training call answers a signal, not how a first compilation does."""
    from fastemb.models.w2v_dims import SPECIALISED_DIMS
    dim = args[args.index("--dim") + 1] if "--dim" in args else None
    keep_dim = dim is not None and int(dim) in SPECIALISED_DIMS  # word2vec kernels compiled for that dimension
    key = tuple(a for a in args if a in ("glove", "cbow", "nplm", "sampled", "nce", "hs")) + (keep_dim and dim,)
    if key in _WARMED:
        return
    small = {"--dim": dim if keep_dim else "8", "--hidden": "8", "--epochs": "1", "--negative": "5",
             "--samples": "5", "--context": "2", "--batch": "16"}
    warm = [small.get(prev, a) if prev in small else a for prev, a in zip([None] + list(args), args)]
    p = subprocess.run([sys.executable, "-m", "fastemb", warm[0], corpus, "-o", tmp_path / "warm.h5", "--force",
                        "--quiet", *warm[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr
    _WARMED.add(key)


def _stopped_within(args, ready, *, after=2.0, limit=2.5, sig=signal.SIGTERM, expected=143):
    """Start `fastemb ARGS`, wait for the stderr line containing `ready` and `after` seconds more (the run is in
    its kernel calls then), send `sig`: the exit status must be `expected` within `limit` seconds."""
    p = subprocess.Popen([sys.executable, "-m", "fastemb", *map(str, args)], cwd=ROOT, stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    lines = []
    deadline = time.monotonic() + 240
    try:
        for line in (p.stderr if ready is not None else ()):
            lines.append(line)
            if ready in line or time.monotonic() > deadline:
                break
        drain = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        drain.start()
        assert ready is None or any(ready in ln for ln in lines), "".join(lines)
        time.sleep(after)
        assert p.poll() is None, "".join(lines)  # still working: the signal arrives inside a kernel call
        cpu0 = _cpu_seconds(p.pid)
        t0 = time.monotonic()
        p.send_signal(sig)
        end = time.monotonic() + 120  # a signal that is never acted on fails the test instead of hanging it
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() < end, "no exit within 120 s of the signal:\n" + "".join(lines)
            time.sleep(0.01)
        took = time.monotonic() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime - cpu0  # what the run still computed (all threads), load-free
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == expected, "".join(lines)
    # CPU seconds after the signal do not depend on how loaded the machine is: at most about a second per
    # thread of the last kernel call, plus the interpreter's shutdown; wall-clock time does, so its limit is
    # scaled by the load (this machine is shared by several test runs)
    assert cpu < 2.5 * CORES + 1.0, f"{cpu:.2f} CPU seconds after the signal"
    load = max(1.0, os.getloadavg()[0] / CORES)
    assert took < limit * load, f"{took:.2f}s to stop (load {load:.1f} per core)"
    return took, cpu


CORES = os.cpu_count() or 1


def _cpu_seconds(pid) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    planted_corpus(d / "p.txt", sentences=3000)
    return d / "p.txt"


SIGNAL_RUNS = {
    # each at the top of a documented range, on a small vocabulary so that memory stays small
    "sgns-dim": ["train", "--dim", "100000", "--epochs", "100000", "--threads", "2"],
    "cbow-negative": ["train", "--algo", "cbow", "--negative", "1000", "--dim", "300", "--epochs", "100000"],
    "nplm-hidden": ["train", "--algo", "nplm", "--hidden", "100000", "--batch", "4", "--epochs", "50"],
    "nplm-samples": ["train", "--algo", "nplm", "--softmax", "sampled", "--samples", "30", "--hidden", "2000",
                     "--epochs", "50"],
    "nplm-context": ["train", "--algo", "nplm", "--context", "64", "--dim", "1000", "--hidden", "200",
                     "--batch", "4", "--epochs", "50"],
    "glove-dim": ["train", "--algo", "glove", "--dim", "100000", "--epochs", "100000"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SIGNAL_RUNS))
def test_sigterm_stops_training_at_the_top_of_its_ranges(name, small_corpus, tmp_path):
    args = SIGNAL_RUNS[name]
    _warm_kernels(args, small_corpus, tmp_path)
    _stopped_within([args[0], small_corpus, "-o", tmp_path / "m.h5", *args[1:]], ready="the model needs")


@pytest.mark.slow
def test_sigterm_stops_a_classifier_with_many_labels(tmp_path):
    data = tmp_path / "many.txt"
    data.write_text("".join(f"__label__l{i} w{i % 50} w{(i * 7) % 50} w{(i * 13) % 50}\n" for i in range(20000)))
    _stopped_within(["classify", "train", data, "-o", tmp_path / "c.h5", "--dim", "500", "--epochs", "1000"],
                    ready=None, after=15.0)


@pytest.mark.slow
def test_sigterm_stops_plot_at_its_top(tmp_path):
    pytest.importorskip("matplotlib")
    model = tmp_path / "e.h5"
    rng = np.random.default_rng(0)
    fastemb.Embeddings([f"w{i}" for i in range(6000)], rng.standard_normal((6000, 8)).astype(np.float32),
                       np.arange(6000, 0, -1)).save(model)
    _stopped_within(["plot", model, "-o", tmp_path / "m.png", "--top", "5000", "--method", "tsne",
                     "--iterations", "100000"], ready=None, after=12.0)


@pytest.mark.slow
def test_sigint_stops_the_language_model(small_corpus, tmp_path):
    _warm_kernels(SIGNAL_RUNS["nplm-hidden"], small_corpus, tmp_path)
    _stopped_within(["train", small_corpus, "-o", tmp_path / "m.h5", *SIGNAL_RUNS["nplm-hidden"][1:]],
                    ready="the model needs", sig=signal.SIGINT, expected=130)


# ------------------------------------------------------------------------------------ cluster failures
def test_a_peer_that_never_answers_is_one_line_within_the_timeout():
    """A 'scheduler' that accepts the connection and says nothing: the guard's timeout ends the wait with
    one line naming the cluster."""
    pytest.importorskip("distributed")
    import socket
    from fastemb.dask import cluster_guard, connect
    from fastemb.errors import FastembError
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []

    def accept():  # until the test closes the socket
        try:
            for _ in range(4):
                held.append(server.accept())
        except OSError:
            pass
    threading.Thread(target=accept, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    t0 = time.monotonic()
    with pytest.raises(FastembError) as e:
        with cluster_guard(address, timeout_s=3):
            connect(address)
    assert time.monotonic() - t0 < 30
    message = str(e.value)
    assert address in message and "\n" not in message
    server.close()


def test_local_cluster_size_is_bounded():
    pytest.importorskip("distributed")
    from fastemb.dask import connect
    from fastemb.errors import FastembError
    with pytest.raises(FastembError, match="at most"):
        connect("local:99999999999999999999")


# ------------------------------------------------------------------------------------------ fuzzing
FUZZ_PER_KIND = 40   # damaged copies of each file kind below (9 kinds: 360 runs, one worker process)


@pytest.mark.slow
def test_fuzzed_newer_file_kinds_succeed_or_fail_with_one_line(tmp_path):
    """Damaged classifiers, language models (full and hs softmax) and checkpoints of every algorithm and of the
    classifier fed to the commands that read them: 0 or 1 and at most one error line, never a traceback or a
    signal."""
    from fastemb.models.classify import train as train_classifier
    planted_corpus(tmp_path / "p.txt", sentences=300)
    corpus = str(tmp_path / "p.txt")
    labelled = tmp_path / "l.txt"
    labelled.write_text("".join(f"__label__{i % 3} g{i % 3}w1 g{i % 3}w2 w{i % 7}\n" for i in range(300)))
    text = tmp_path / "heldout.txt"
    text.write_text("g0w1 g0w2 g0w3\ng1w1 g1w4\n")
    clf = tmp_path / "c.h5"
    train_classifier(str(labelled), dim=8, epochs=1, output=str(clf))
    lm = {}
    for softmax in ("full", "hs"):
        lm[softmax] = tmp_path / f"lm-{softmax}.h5"
        fastemb.train(corpus, "nplm", softmax=softmax, dim=8, hidden=8, context=2, epochs=1, threads=1,
                      output=str(lm[softmax]))
    checkpoints = {}
    for algo, extra in (("cbow", {}), ("sgns", {"hs": True}), ("glove", {}), ("nplm", {"softmax": "hs", "hidden": 8})):
        ck = tmp_path / f"{algo}-{len(checkpoints)}.ckpt"
        fastemb.train(corpus, algo, dim=8, epochs=3, threads=1, checkpoint=str(ck), checkpoint_every="1",
                      callbacks=[stop_at(1)], **extra)
        checkpoints[ck] = algo
    clf_ck = tmp_path / "classify.ckpt"
    train_classifier(str(labelled), dim=8, epochs=3, ngrams=2, buckets=50, checkpoint=str(clf_ck),
                     checkpoint_every="1", callbacks=[stop_at(1)])
    kinds = [(clf, lambda p: ["classify", "predict", p, "g0w1 g0w2 w3", "-k", "2"]),
             (lm["full"], lambda p: ["predict", p, "g0w1", "g0w2"]),
             (lm["hs"], lambda p: ["eval", p, "--text", str(text)])]
    kinds += [(ck, lambda p: ["train", "--resume", p, "-o", str(p) + ".out.h5", "--force", "--quiet"])
              for ck in checkpoints]
    kinds.append((lm["full"], lambda p: ["eval", p, "--text", str(text)]))
    kinds.append((clf_ck, lambda p: ["classify", "train", "--resume", p, "-o", str(p) + ".out.h5", "--force",
                                     "--quiet"]))
    runs = fuzz_commands(tmp_path, [(source, FUZZ_PER_KIND, 100 + k, command) for k, (source, command)
                                    in enumerate(kinds)], timeout=1800)
    assert runs == FUZZ_PER_KIND * len(kinds)


# ------------------------------------------------------------------------------- options and values
from fastemb.errors import FastembError, FileError, OptionError  # noqa: E402


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    planted_corpus(d / "p.txt", sentences=300)
    return str(d / "p.txt")


def test_samples_above_the_vocabulary_and_huge_minibatches_are_refused(planted):
    with pytest.raises(OptionError, match="samples.*more than the 30 words"):
        fastemb.train(planted, "nplm", softmax="sampled", samples=100_000, dim=4, hidden=4, epochs=1)
    with pytest.raises(OptionError, match="minibatch"):
        fastemb.train(planted, "nplm", hidden=20_000, batch=4096, dim=4, epochs=1)
    rc, _, err = run_cli("train", planted, "--algo", "nplm", "--softmax", "nce", "--samples", "31", "--dim", "4",
                         "-o", "/tmp/never-written.h5")
    assert_one_line_error(rc, err, contains="--samples")


def test_work_sized_calls_leave_one_thread_results_unchanged(planted, monkeypatch):
    """Cutting a block into work-sized calls changes nothing a single thread computes: a run with calls of
    one chunk equals a run with calls of a whole block, bit for bit (word2vec and the language model)."""
    from fastemb import loop
    runs = {}
    for budget in (1 << 29, 1):
        monkeypatch.setattr(loop, "WORK_PER_CALL", budget)
        runs[budget] = [fastemb.train(planted, "sgns", dim=8, epochs=2, threads=1, seed=3),
                        fastemb.train(planted, "nplm", dim=8, hidden=8, batch=4, epochs=1, threads=1, seed=3),
                        fastemb.train(planted, "glove", dim=8, epochs=2, threads=1, seed=3)]
    for a, b in zip(runs[1 << 29], runs[1]):
        np.testing.assert_array_equal(a.vectors, b.vectors)


def test_work_sized_prediction_equals_one_call(tmp_path, planted, monkeypatch):
    """Classifier predictions and language-model log-probabilities in calls of one document / one token equal
    those of one call."""
    from fastemb import loop
    from fastemb.models.classify import train as train_classifier
    data = tmp_path / "l.txt"
    data.write_text("".join(f"__label__{i % 3} g{i % 3}w1 g{i % 3}w2 w{i % 7}\n" for i in range(300)))
    clf = train_classifier(str(data), dim=8, epochs=1)
    model = tmp_path / "lm.h5"
    fastemb.train(planted, "nplm", softmax="full", dim=8, hidden=8, epochs=1, threads=1, output=str(model))
    lm = fastemb.LanguageModel.load(model)
    texts = ["g0w1 g0w2", "w3 g1w1 g1w2 w4", "unknown words", "g2w1"]
    ids = np.array([lm.emb.index[w] for w in "g0w1 g0w2 g0w3 g1w1 g1w2".split()])
    ends = np.array([3, 5])
    whole = clf.predict_proba(texts), lm.sequence_log_probs(ids, ends)
    monkeypatch.setattr(loop, "WORK_PER_CALL", 1)
    np.testing.assert_array_equal(clf.predict_proba(texts), whole[0])
    np.testing.assert_allclose(lm.sequence_log_probs(ids, ends), whole[1], rtol=1e-12)  # BLAS may sum apart


def test_classifier_divergence_min_count_and_labels(tmp_path):
    from fastemb.models.classify import Classifier, train as train_classifier
    data = tmp_path / "l.txt"
    data.write_text("".join(f"__label__{i % 3} g{i % 3}w1 g{i % 3}w2 w{i % 7}\n" for i in range(600)))
    with pytest.raises(FastembError, match="training diverged.*lower --lr|training diverged.*lr"):
        train_classifier(str(data), lr=100, dim=50, epochs=5)
    with pytest.raises(FastembError, match="no word occurs at least 100,000 times"):
        train_classifier(str(data), min_count=100_000)
    # a crafted label: printed escaped, one line per text
    model = tmp_path / "c.h5"
    train_classifier(str(data), dim=8, epochs=1, output=str(model))
    import h5py
    with h5py.File(model, "a") as f:
        labels = [x.decode() if isinstance(x, bytes) else x for x in f["labels"][()]]
        labels[0] = "__label__\x1b[31mred"
        del f["labels"]
        f.create_dataset("labels", data=np.array(labels, dtype=h5py.string_dtype()))
    rc, out, err = run_cli("classify", "predict", model, "g0w1 g0w2", "g1w1 g1w2", "-k", "3")
    assert rc == 0, err
    assert "\x1b" not in out and "\\x1b" in out and len(out.splitlines()) == 2
    with h5py.File(model, "a") as f:
        labels[0] = "__label__a\nb"
        del f["labels"]
        f.create_dataset("labels", data=np.array(labels, dtype=h5py.string_dtype()))
    with pytest.raises(FileError, match="label 1"):
        Classifier.load(model)


def test_init_refuses_models_of_other_algorithms(planted, tmp_path):
    glove = tmp_path / "g.h5"
    fastemb.train(planted, "glove", dim=8, epochs=1, output=str(glove))
    with pytest.raises(OptionError, match="glove model"):
        fastemb.train(planted, "sgns", init=str(glove), epochs=1)


@pytest.mark.parametrize("value", ["1_0", "\u0661\u0662", "1e39", "\uff11"])
def test_text_vectors_take_only_c_numbers(tmp_path, value):
    import warnings
    path = tmp_path / "v.txt"
    path.write_text(f"2 2\na 0.5 {value}\nb 1 2\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning before the error
        with pytest.raises(FileError, match="v.txt:2"):
            fastemb.load(str(path))
    path.write_text("\u0662 2\na 0.5 1\nb 1 2\n", encoding="utf-8")  # a header in other digits is no header
    with pytest.raises(FileError):
        fastemb.load(str(path))


def test_hs_language_model_checks_its_tree_and_finite_perplexity(planted, tmp_path):
    import h5py
    model = tmp_path / "hs.h5"
    fastemb.train(planted, "nplm", softmax="hs", dim=8, hidden=8, epochs=1, threads=1, output=str(model))
    lm = fastemb.LanguageModel.load(model)
    assert np.isfinite(lm.perplexity("g0w1 g0w2 g0w3"))
    edited = tmp_path / "edited.h5"
    shutil.copy(model, edited)
    with h5py.File(edited, "a") as f:
        counts = f["vocab/counts"][()].copy()
        counts[0] *= 1000  # still in order, but another tree (the first word's code shortens)
        f["vocab/counts"][...] = counts
    with pytest.raises(FileError, match="another Huffman tree"):
        fastemb.LanguageModel.load(edited)
    with h5py.File(edited, "a") as f:
        del f["vocab/counts"]
    with pytest.raises(FileError):
        fastemb.LanguageModel.load(edited)
    full = tmp_path / "full.h5"
    fastemb.train(planted, "nplm", softmax="full", dim=8, hidden=8, epochs=1, threads=1, output=str(full))
    lm = fastemb.LanguageModel.load(full)
    words = "g0w1 g0w2 g0w3".split()
    by_predict = [lm.log_probs(words[:i])[lm.emb.index[words[i]]] for i in range(3)]  # float64
    assert lm.perplexity(" ".join(words)) == pytest.approx(np.exp(-np.mean(by_predict)), rel=1e-12)
    with h5py.File(full, "a") as f:
        b = np.full(f["model/output_bias"].shape, -3e38, np.float32)
        b[lm.emb.index["g1w1"]] = 3e38  # every other word gets probability exp(-6e38): perplexity overflows
        f["model/output_bias"][...] = b
    lm = fastemb.LanguageModel.load(full)
    with pytest.raises(FastembError, match="non-finite perplexity"):
        lm.perplexity(" ".join(words))
    rc, _, err = run_cli("eval", full, "--text", planted)
    assert_one_line_error(rc, err, contains="non-finite")


@pytest.mark.parametrize("pattern", [r"(?:a+)+b", r"(x+x+)+y", r"(?:\w*)*"])
def test_backtracking_token_patterns_are_refused_also_from_a_model(planted, tmp_path, pattern):
    import h5py
    import json as _json
    with pytest.raises(OptionError, match="token_pattern"):
        fastemb.CorpusOptions(token_pattern=pattern)
    model = tmp_path / "lm.h5"
    fastemb.train(planted, "nplm", softmax="full", dim=4, hidden=4, epochs=1, threads=1, output=str(model),
                  token_pattern=r"\w+")
    with h5py.File(model, "a") as f:
        record = _json.loads(f.attrs["options"])
        record["corpus_options"]["token_pattern"] = pattern
        f.attrs["options"] = _json.dumps(record)
        f.attrs["token_pattern"] = pattern
    t0 = time.monotonic()
    with pytest.raises(FileError, match="token pattern"):
        fastemb.LanguageModel.load(model).predict("a" * 40 + "c")
    assert time.monotonic() - t0 < 10


def test_utf16_lexicon_and_latin1_path_named_once(tmp_path):
    from fastemb.align import read_lexicon
    path = tmp_path / "lex.tsv"
    path.write_bytes("\ufeffa\tb\nc\td\n".encode("utf-16-le"))
    assert read_lexicon(str(path)) == [("a", "b"), ("c", "d")]
    path.write_bytes("a\tb\nc\u00e9\td\n".encode("latin-1"))
    with pytest.raises(FileError) as e:
        read_lexicon(str(path))
    assert str(e.value).count(str(path)) == 1


def test_resume_checks_input_checksums_before_reading(interrupted, tmp_path):
    d, out = interrupted
    work = tmp_path / "w"
    shutil.copytree(d, work)
    corpus = work / "p.txt"
    ck = work / "out.h5.ckpt"
    # the record names d/p.txt: point a copy's inputs elsewhere by editing the corpus it names
    original = (d / "p.txt").read_bytes()
    try:
        (d / "p.txt").write_bytes(b"SECRET-CONTENT " * 100)
        with pytest.raises(FastembError, match="SHA-256") as e:
            fastemb.train(resume=str(ck))
        assert "SECRET" not in str(e.value)
    finally:
        (d / "p.txt").write_bytes(original)
    assert corpus.exists()


def test_plot_top_is_bounded(tmp_path):
    model = tmp_path / "e.h5"
    fastemb.Embeddings([f"w{i}" for i in range(10)], np.ones((10, 2), np.float32)).save(model)
    rc, _, err = run_cli("plot", model, "-o", tmp_path / "m.png", "--top", "1000000")
    assert_one_line_error(rc, err, contains="--top")


@pytest.mark.slow
def test_local_cluster_leaves_no_scratch_space(tmp_path):
    """--dask local:1 keeps dask-scratch-space/ inside a fastemb work directory, removed at exit: nothing is
    left in the current directory nor in the temporary directory."""
    pytest.importorskip("distributed")
    corpus = tmp_path / "c.txt"
    planted_corpus(corpus, sentences=200)
    run_in = tmp_path / "cwd"
    tmp = tmp_path / "tmp"
    run_in.mkdir()
    tmp.mkdir()
    p = subprocess.run([sys.executable, "-m", "fastemb", "vocab", str(corpus), "-o", str(tmp_path / "v.tsv"),
                        "--dask", "local:1", "--quiet"], cwd=run_in, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT, "TMPDIR": str(tmp)})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "v.tsv").exists()
    assert os.listdir(run_in) == [] and [n for n in os.listdir(tmp) if "dask" in n or "fastemb" in n] == []
