"""The training core: declared options checked before any I/O, the registry, the shared epoch loop and its
callbacks, logging, the lazy package, checkpoints that cannot crash a kernel, and errors that name
parameters."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import fastemb
from fastemb import registry
from fastemb.errors import FastembError, FileError, OptionError
from conftest import ROOT, assert_one_line_error, checkpointed_run, planted_corpus, run_cli


def bad_values(spec):
    """Values each declared option must refuse, derived from its declaration."""
    if spec.kind is bool:
        return ["yes", 2]  # 0 and 1 are gensim's habit (hs=0, cbow_mean=1): taken as False and True
    if spec.kind == "size":
        return ["lots", "1KB"]
    if spec.choices:
        return ["bogus"]
    if spec.kind is str:
        return [3] if spec.check is None else ["(a)b"]
    out = ["7", float("nan")]
    if spec.kind is int:
        out.append(2.5)
    if spec.check is not None:
        for v in (0, -1, -1e9):
            v = int(v) if spec.kind is int else float(v)
            if spec.check(v):
                out.append(v)
                break
    return out


def every_option():
    from fastemb.corpus import CorpusOptions
    seen = set()
    for a in registry.all_algorithms():
        for name, (_, spec, _) in a.options.specs().items():
            for v in bad_values(spec):
                if (a.input, name, repr(v)) not in seen:
                    seen.add((a.input, name, repr(v)))
                    yield a.name, name, v
    for name, (_, spec, _) in CorpusOptions.specs().items():
        for v in bad_values(spec):
            yield "sgns", name, v


@pytest.fixture()
def no_reading(monkeypatch):
    """Any attempt to read a corpus fails the test: options must be refused before."""
    def forbidden(*a, **k):
        raise AssertionError("the corpus was read before the options were checked")
    monkeypatch.setattr("fastemb.corpus.CorpusReader.__iter__", forbidden)
    monkeypatch.setattr("fastemb.vocab.build_vocab", forbidden)


@pytest.mark.parametrize("algo,name,value", list(every_option()), ids=str)
def test_every_bad_option_is_refused_before_io(tmp_path, no_reading, algo, name, value):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    with pytest.raises(OptionError) as e:
        fastemb.train(str(corpus), algo, **{name: value})
    assert e.value.param == name and str(e.value).startswith(name)


@pytest.mark.parametrize("name,value", [("threads", 0), ("seed", -1), ("checkpoint_every", "1.5epochs")])
def test_run_settings_refused_before_io(tmp_path, no_reading, name, value):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    with pytest.raises(OptionError, match=name):
        fastemb.train(str(corpus), output=str(tmp_path / "v.h5"), **{name: value})


def test_a_bad_option_fails_at_once_on_a_big_corpus(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # 1 GB, sparse: reading it would take seconds, refusing takes none
        f.truncate(1 << 30)
    rc, _, err = run_cli("train", big, "--algo", "glove", "--eta", "0", "-o", tmp_path / "v.h5")
    assert_one_line_error(rc, err, contains="--eta must be positive")
    assert "read" not in err.replace("fastemb: error", "")


@pytest.mark.parametrize("args,flag", [(["--eta", "5"], "--eta"), (["--cds", "2"], "--cds"),
                                       (["--symmetric"], "--symmetric"), (["--tied"], "--tied"),
                                       (["--shift", "5"], "--shift"), (["--cbow-sum"], "--cbow-sum")])
def test_options_of_other_algorithms_are_refused(tmp_path, kjv_small, args, flag):
    rc, _, err = run_cli("train", kjv_small, "--algo", "sgns", "-o", tmp_path / "v.h5", *args)
    assert_one_line_error(rc, err, contains=flag.split("/")[0].replace("--cbow-sum", "--cbow-mean"))
    assert "--algo sgns" in err and not (tmp_path / "v.h5").exists()


def test_api_names_parameters_and_cli_renders_flags(tmp_path, kjv_small):
    with pytest.raises(OptionError) as e:
        fastemb.train(kjv_small, dim=0)
    assert str(e.value) == "dim must be between 1 and 100,000 (got 0)" and isinstance(e.value, ValueError)
    with pytest.raises(OptionError, match="eta is an option of glove; it does not apply to algo sgns"):
        fastemb.train(kjv_small, eta=0.1)
    with pytest.raises(OptionError, match="not a parameter"):
        fastemb.train(kjv_small, dimension=5)
    rc, _, err = run_cli("train", kjv_small, "-o", tmp_path / "v.h5", "--min-alpha", "1")
    assert_one_line_error(rc, err, contains="--min-alpha must not exceed --alpha")
    with pytest.raises(FileError) as e:
        fastemb.load(tmp_path / "missing.h5")
    assert isinstance(e.value, OSError) and isinstance(e.value, FastembError)


def test_one_name_one_meaning():
    from fastemb.options import Spec
    specs = {}
    for a in registry.all_algorithms():
        for name, (_, spec, _) in a.options.specs().items():
            assert specs.setdefault(name, spec) is spec, name
            assert isinstance(spec, Spec)
    # the old double meanings are gone
    assert "alpha" not in fastemb.GloveOptions.specs() and "neg" not in fastemb.PPMIOptions.specs()
    assert fastemb.GloveOptions().get("window") == 10 and fastemb.PPMIOptions().get("window") == 5


def test_callbacks_once_per_epoch_with_falling_loss(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=3000)
    seen = []

    class Watch(fastemb.Callback):
        steps = 0

        def on_step(self, run):
            self.steps += 1

        def on_epoch_end(self, run):
            seen.append((run.epoch, run.loss, run.words_per_second, run.vectors.copy()))

    watch = Watch()
    plain = []
    emb = fastemb.train(str(tmp_path / "p.txt"), dim=16, epochs=4, threads=1, sample=0,
                        callbacks=[watch, lambda run: plain.append(run.epoch)])
    assert [s[0] for s in seen] == [1, 2, 3, 4] and plain == [1, 2, 3, 4] and watch.steps >= 4
    losses = [s[1] for s in seen]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses == emb.attrs["loss"]
    assert all(s[2] > 0 for s in seen)
    assert not np.array_equal(seen[0][3], seen[-1][3])
    # run.vectors are the input vectors W; skip-gram saves W + C by default (add_contexts)
    assert emb.attrs["add_contexts"] and np.array_equal(seen[-1][3] + emb.context_vectors, emb.vectors)


def test_glove_callbacks_and_early_stop(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=1000)
    seen = []

    def stop_after_two(run):
        seen.append((run.epoch, run.loss, run.embeddings().most_similar("g0w0", topn=2)))
        if run.epoch == 2:
            raise fastemb.StopTraining()

    emb = fastemb.train(str(tmp_path / "p.txt"), "glove", dim=8, epochs=10, threads=1, callbacks=[stop_after_two])
    assert [s[0] for s in seen] == [1, 2] and seen[1][1] < seen[0][1]
    assert emb.attrs["epochs_trained"] == 2 and not emb.attrs["completed"] and len(emb.attrs["loss"]) == 2


def test_library_is_quiet_unless_asked(tmp_path, capfd):
    planted_corpus(tmp_path / "p.txt", sentences=300)
    fastemb.train(str(tmp_path / "p.txt"), dim=8, epochs=1, threads=1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    fastemb.train(str(tmp_path / "p.txt"), dim=8, epochs=1, threads=1, verbose=True)
    out, err = capfd.readouterr()
    assert out == "" and "epoch 1/1: loss" in err and "vocabulary" in err


def test_cli_quiet_prints_nothing_and_plain_lines_otherwise(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=300)
    rc, out, err = run_cli("train", tmp_path / "p.txt", "-o", tmp_path / "a.h5", "--dim", "8", "--epochs", "1",
                           "--quiet")
    assert rc == 0 and out == "" and err == ""
    rc, out, err = run_cli("train", tmp_path / "p.txt", "-o", tmp_path / "b.h5", "--dim", "8", "--epochs", "1")
    assert rc == 0 and "epoch 1/1: loss" in err and "\r" not in err  # not a terminal: lines, not a bar


def test_import_and_help_load_no_numba():
    code = ("import sys, fastemb; a = 'numba' in sys.modules; from fastemb.cli.main import main; "
            "main(['--help']); main(['train', '--help']); "
            "print(a, 'numba' in sys.modules, 'h5py' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "False False False"


# ------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A run stopped after 2 of 4 epochs, its checkpoint kept."""
    d = tmp_path_factory.mktemp("ck")
    ck = d / "run.ckpt"
    checkpointed_run(d, 2000, dim=16, epochs=4, checkpoint=str(ck))
    return d, ck


def _variant(checkpointed, tmp_path, edit):
    d, ck = checkpointed
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ck.read_bytes())
    edit(bad)
    return bad


def _replace(name, array, fix_checksum=True):
    def edit(path):
        from fastemb.checkpoint import digest
        with h5py.File(path, "a") as f:
            del f["arrays"][name]
            ds = f["arrays"].create_dataset(name, data=array)
            if fix_checksum:
                ds.attrs["sha256"] = digest(array)
    return edit


def _flip(n_bytes):
    def edit(path):
        with h5py.File(path, "r") as f:
            offset = f["arrays/syn0"].id.get_offset()
            size = f["arrays/syn0"].id.get_storage_size()
        rng = np.random.default_rng(0)
        data = bytearray(path.read_bytes())
        for pos in rng.choice(size, min(n_bytes, size // 2), replace=False):
            data[offset + pos] ^= 0xFF
        path.write_bytes(bytes(data))
    return edit


def _drop(name):
    def edit(path):
        with h5py.File(path, "a") as f:
            del f["arrays"][name]
    return edit


def _attr(name, value, reseal=True):
    """Change the record or state; reseal: recompute its checksum as a crafted file would."""
    def edit(path):
        from fastemb.checkpoint import _header_digest
        with h5py.File(path, "a") as f:
            f.attrs[name] = value
            if reseal:
                f.attrs["header_sha256"] = _header_digest(str(f.attrs["record"]), str(f.attrs["state"]))
    return edit


@pytest.mark.parametrize("edit,contains", [
    (_replace("syn0", np.zeros((10, 50), np.float32)), "array syn0"),
    (_replace("syn1", np.zeros((30, 8), np.float32)), "array syn1"),
    (_replace("syn0", np.zeros((30, 16), np.float64)), "array syn0"),
    (_replace("syn0", np.full((30, 16), np.nan, np.float32)), "non-finite"),
    (_replace("syn0", np.ones((30, 16), np.float32), fix_checksum=False), "checksum"),
    (_flip(4000), "checksum"),
    (_drop("syn1"), "arrays"),
    (_attr("state", json.dumps({"epoch": 1}), reseal=False), "checksum of its settings"),
    (_attr("state", "{not json"), "damaged"),
    (_attr("state", json.dumps({"epoch": -3})), "damaged"),
    (_attr("record", json.dumps({"version": 2, "algo": "sgns", "options": {"dim": 0}})), "dim"),
    (_attr("record", json.dumps({"version": 2, "algo": "nope", "options": {}})), "algo"),
], ids=["small-syn0", "narrow-syn1", "float64", "nan", "bad-checksum", "flipped-bytes", "missing", "unsealed",
        "state-json",
        "state-range", "record-dim", "record-algo"])
def test_damaged_checkpoints_are_refused_without_crash(checkpointed, tmp_path, edit, contains):
    bad = _variant(checkpointed, tmp_path, edit)
    rc, _, err = run_cli("train", "--resume", bad, "-o", tmp_path / "v.h5")
    assert_one_line_error(rc, err, contains=contains)
    assert str(bad) in err and not (tmp_path / "v.h5").exists()


@pytest.mark.slow
def test_resume_refuses_contradicting_options_and_allows_safe_ones(checkpointed, tmp_path):
    d, ck = checkpointed
    own = tmp_path / "own.ckpt"
    own.write_bytes(ck.read_bytes())
    for args, flag in ((["--epochs", "7"], "--epochs"), (["--dim", "50"], "--dim"), (["--algo", "cbow"], "--algo"),
                       (["--min-count", "2"], "--min-count"), (["--seed", "3"], "--seed")):
        rc, _, err = run_cli("train", "--resume", own, "-o", tmp_path / "v.h5", *args)
        assert_one_line_error(rc, err, contains=flag)
        assert "was started with" in err
    other = tmp_path / "other.txt"
    other.write_text("some other words\n" * 100)
    rc, _, err = run_cli("train", other, "--resume", own, "-o", tmp_path / "v.h5")
    assert_one_line_error(rc, err, contains="differs from the input")
    assert own.read_bytes() == ck.read_bytes()
    rc, _, err = run_cli("train", d / "p.txt", "--resume", own, "-o", tmp_path / "v.h5", "--epochs", "4",
                         "--dim", "16", "--threads", "2", "--memory", "1GB", "--quiet")
    assert rc == 0, err
    assert fastemb.load(tmp_path / "v.h5").attrs["epochs_trained"] == 4
    assert own.read_bytes() == ck.read_bytes()  # a copy, not this run's checkpoint for v.h5: never removed


def test_resume_api_equals_cli_policy(checkpointed, tmp_path):
    d, ck = checkpointed
    with pytest.raises(OptionError, match="epochs is 9, but the run"):
        fastemb.train(resume=str(ck), epochs=9)
    emb = fastemb.train(resume=str(ck))  # no output: the checkpoint is kept
    assert ck.exists() and emb.attrs["epochs_trained"] == 4
    straight = fastemb.train(str(d / "p.txt"), dim=16, epochs=4, threads=1)
    np.testing.assert_array_equal(emb.vectors, straight.vectors)


@pytest.mark.slow
def test_another_runs_checkpoint_is_never_clobbered(checkpointed, tmp_path):
    d, ck = checkpointed
    out = tmp_path / "v.h5"
    mine = tmp_path / "v.h5.ckpt"
    mine.write_bytes(ck.read_bytes())
    rc, _, err = run_cli("train", d / "p.txt", "-o", out, "--dim", "8", "--epochs", "2", "--checkpoint-every", "1")
    assert_one_line_error(rc, err, contains="--resume")
    assert mine.read_bytes() == ck.read_bytes() and not out.exists()
    rc, _, err = run_cli("train", d / "p.txt", "-o", out, "--dim", "8", "--epochs", "2")  # no checkpointing
    assert rc == 0 and "left alone" in err and mine.read_bytes() == ck.read_bytes()
    rc, _, err = run_cli("train", d / "p.txt", "-o", out, "--dim", "8", "--epochs", "2", "--checkpoint-every", "1",
                         "--force", "--quiet")
    assert rc == 0, err
    assert not mine.exists()  # discarded on request, then the finished run removed its own


def test_checkpoint_callback_refuses_a_file_another_run_wrote(checkpointed, tmp_path):
    d, ck = checkpointed
    target = tmp_path / "x.ckpt"

    def intruder(run):
        if run.epoch == 1:
            target.write_bytes(ck.read_bytes())  # another run's checkpoint appears meanwhile
    with pytest.raises(FileError, match="another run wrote"):
        fastemb.train(str(d / "p.txt"), dim=8, epochs=3, threads=1, checkpoint=str(target), checkpoint_every="1",
                      callbacks=[intruder])
    assert target.read_bytes() == ck.read_bytes()


def test_old_checkpoint_format_is_refused(tmp_path):
    old = tmp_path / "old.ckpt"
    with h5py.File(old, "w") as f:
        f.attrs.update({"encoding-type": "fastemb", "format_version": 1, "content": "checkpoint",
                        "train_args": "{}", "state": "{}"})
    rc, _, err = run_cli("train", "--resume", old, "-o", tmp_path / "v.h5")
    assert_one_line_error(rc, err, contains="older fastemb")


# ------------------------------------------------------------------------------- the registry
TOY = '''
from dataclasses import dataclass
import numpy as np
from fastemb.options import DIM, EPOCHS, Options
from fastemb.registry import Algorithm


@dataclass(frozen=True)
class ToyOptions(Options):
    dim: int = DIM(4)
    epochs: int = EPOCHS(3)


class ToyTrainer:
    """Pulls every word's vector towards its count's logarithm: a loss that halves every epoch."""
    unit = "words"
    advice = "dim"

    def __init__(self, options, corpus, *, seed, threads, state, arrays=None):
        self.target = np.log(corpus.vocab.counts.astype(np.float32))[:, None]
        self.W = arrays["W"] if arrays else np.zeros((len(self.target), options.dim), np.float32)
        self.work_per_epoch = corpus.n_tokens

    @staticmethod
    def array_specs(options, words):
        return {"W": ((len(words), options.dim), "float32")}

    def arrays(self):
        return {"W": self.W}

    def vectors(self):
        return self.W

    def reference_loss(self):
        return float(np.mean(self.target ** 2))

    def run_epoch(self, state):
        from fastemb.loop import Step
        self.W += (self.target - self.W) * np.float32(0.5)
        yield Step(work=self.work_per_epoch, loss=float(np.sum((self.W - self.target) ** 2)), count=self.W.size)

    def result(self):
        return {"vectors": self.W + np.arange(self.W.shape[1], dtype=np.float32)}


ALGORITHMS = (Algorithm("toy", ToyOptions, ToyTrainer, lambda o, n, nnz=0: 4 * n * o.dim),)
'''


def test_a_new_algorithm_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "toy_algo.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODULES", registry.MODULES + ("toy_algo",))
    monkeypatch.setattr(registry, "_ALGORITHMS", {})
    planted_corpus(tmp_path / "p.txt", sentences=200)
    epochs = []
    emb = fastemb.train(str(tmp_path / "p.txt"), "toy", dim=3, epochs=4, output=str(tmp_path / "t.h5"),
                        checkpoint_every="1", callbacks=[lambda run: epochs.append(run.loss)])
    assert emb.vectors.shape == (30, 3) and len(epochs) == 4 and epochs[-1] < epochs[0] / 50
    assert fastemb.load(tmp_path / "t.h5").attrs["algo"] == "toy" and not (tmp_path / "t.h5.ckpt").exists()
    with pytest.raises(OptionError, match="negative is an option of sgns, cbow"):
        fastemb.train(str(tmp_path / "p.txt"), "toy", negative=3)


# ---------------------------------------------------------------------------------- review findings
@pytest.mark.parametrize("name,value", [("seed", 2 ** 40), ("window", 10 ** 9), ("negative", 10 ** 6),
                                        ("memory", "1e999TB"), ("sample", 5.0), ("ns_exponent", 50.0)])
def test_upper_bounds_refused_before_io(tmp_path, no_reading, name, value):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    with pytest.raises(OptionError, match=name):
        fastemb.train(str(corpus), **{name: value})


def test_checkpoint_callbacks_go_through_the_policy(tmp_path):
    from fastemb.checkpoint import Checkpoint
    planted_corpus(tmp_path / "p.txt", sentences=100)
    with pytest.raises(OptionError, match="checkpoint_every"):
        fastemb.train(str(tmp_path / "p.txt"), callbacks=[Checkpoint(tmp_path / "x.ckpt")])


def test_resume_reports_speed_and_refuses_a_changed_corpus(checkpointed, tmp_path):
    d, ck = checkpointed
    own = tmp_path / "own.ckpt"
    own.write_bytes(ck.read_bytes())
    emb = fastemb.train(resume=str(own))
    assert emb.attrs["words_per_second"] > 0
    corpus = d / "p.txt"
    original = corpus.read_text()
    lines = original.splitlines(keepends=True)
    try:
        corpus.write_text("".join(lines[:-2] + [lines[-1], lines[-2]]))  # same vocabulary, another order
        with pytest.raises(FastembError, match="input changed"):
            fastemb.train(resume=str(own))
    finally:
        corpus.write_text(original)


def test_checkpoint_state_beyond_the_corpus_is_refused(checkpointed, tmp_path):
    bad = _variant(checkpointed, tmp_path, _attr("state", json.dumps(
        {"epoch": 2, "block": 5, "pos": 10 ** 9, "loss": [3.0, 2.0], "extra": {"chunk_counter": 3}})))
    rc, _, err = run_cli("train", "--resume", bad, "-o", tmp_path / "v.h5")
    assert_one_line_error(rc, err, contains="damaged checkpoint state")


def test_log_lines_name_flags_and_quiet_hides_warnings(tmp_path, checkpointed):
    d, ck = checkpointed
    out = tmp_path / "v.h5"
    (tmp_path / "v.h5.ckpt").write_bytes(ck.read_bytes())
    rc, _, err = run_cli("train", d / "p.txt", "-o", out, "--dim", "8", "--epochs", "1")
    assert rc == 0 and "continue it with --resume" in err and "\ue000" not in err
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 50 + b"\n")
    rc, _, err = run_cli("vocab", bad, "-o", tmp_path / "v.tsv", "--min-count", "1", "--quiet")
    assert rc == 0 and err == ""


def test_verbose_prints_also_when_logging_is_configured(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=100)
    code = ("import logging, fastemb; logging.basicConfig(); "
            f"fastemb.train({str(tmp_path / 'p.txt')!r}, dim=4, epochs=1, threads=1, verbose=True)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and "epoch 1/1" in p.stderr, p.stderr


def test_malformed_lexicon_and_similarity_files_name_the_line(tmp_path):
    emb = fastemb.Embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32))
    emb.save(tmp_path / "e.h5")
    (tmp_path / "lex.tsv").write_text("a\tb\nonlyone\n")
    rc, _, err = run_cli("align", tmp_path / "e.h5", tmp_path / "e.h5", "--lexicon", tmp_path / "lex.tsv")
    assert_one_line_error(rc, err, contains="lex.tsv:2: expected")
    (tmp_path / "sim.txt").write_text("a b 1.0\nc d\n")
    rc, _, err = run_cli("eval", tmp_path / "e.h5", "--similarity", tmp_path / "sim.txt")
    assert_one_line_error(rc, err, contains="sim.txt:2: expected")
