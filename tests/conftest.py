import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

# A test run started as a background job of a non-interactive shell (`bash .ci/run &`, nohup) inherits SIGINT
# ignored, and so does every process it starts: the tests that interrupt a `fastemb` process with SIGINT would
# see it go on. A handler here (not "ignored") is reset to the default in the children, which then install
# Python's KeyboardInterrupt as usual.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def central_differences(loss, arr, eps=1e-6):
    """(loss() with arr[i] + eps − loss() with arr[i] − eps) / 2 eps for every element of arr (changed in place and
    restored): the finite-difference gradient the kernels' analytic gradients are checked against."""
    flat = arr.reshape(-1)
    out = np.empty(flat.size)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = loss()
        flat[i] = old - eps
        down = loss()
        flat[i] = old
        out[i] = (up - down) / (2 * eps)
    return out
CORPORA = os.path.join(ROOT, "corpora")
SAMPLE = os.path.join(CORPORA, "kjv.txt.gz")


def sample_lines(n):
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


@pytest.fixture(scope="session")
def kjv_small(tmp_path_factory):
    """The first 2,000 verses of the shipped sample corpus as plain text (~60k tokens)."""
    path = tmp_path_factory.mktemp("corpus") / "kjv2000.txt"
    path.write_text("".join(sample_lines(2000)), encoding="utf-8")
    return str(path)


def run_cli(*args, stdin=None, env=None):
    """Run `python -m fastemb ARGS` in a fresh process: (returncode, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "fastemb", *map(str, args)], input=stdin, capture_output=True,
                       env={**os.environ, **(env or {})}, cwd=ROOT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def assert_one_line_error(rc, err, *, expected_rc=1, contains=None):
    assert rc == expected_rc, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("fastemb: ")]
    assert len(lines) == 1, err
    if contains:
        assert contains in lines[0], lines[0]


# Common Bible words of six categories, for quality floors on the shipped corpus (tests/test_quality_floors.py)
CATEGORIES = {
    "metal": "gold silver brass iron tin lead".split(),
    "animal": "sheep oxen goats camels asses horses bullocks lambs rams".split(),
    "number": "two three four five six seven eight nine ten twenty thirty forty fifty hundred thousand".split(),
    "kin": "father mother brother sister son daughter wife husband".split(),
    "place": "jerusalem samaria bethel damascus egypt babylon hebron gilgal shechem".split(),
    "body": "hand eyes head feet mouth heart face ear".split(),
}


def category_purity(emb) -> float:
    """Share of the listed words whose nearest other listed word (cosine) shares its category."""
    words = [(w, c) for c, ws in CATEGORIES.items() for w in ws]
    unit = emb.normalized()[[emb.index[w] for w, _ in words]]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1)
    return float(np.mean([words[j][1] == c for (_, c), j in zip(words, nearest)]))


# ------------------------------------------------------------------------------ runs several test files make
def planted_corpus(path, groups=5, per_group=6, sentences=3000, length=12, seed=0):
    """Sentences drawn from one group each: words co-occur only with their group mates."""
    rng = np.random.default_rng(seed)
    vocab = [[f"g{g}w{i}" for i in range(per_group)] for g in range(groups)]
    with open(path, "w") as f:
        for _ in range(sentences):
            g = rng.integers(groups)
            f.write(" ".join(rng.choice(vocab[g], length)) + "\n")
    return vocab


def stop_at(epoch, *, midway=False, raising=None):
    """A callback that stops a run at the end of epoch `epoch` or, midway, once more than half of epoch `epoch` is
    done; by raising `raising` (default fastemb.StopTraining, the run ends early and cleanly; KeyboardInterrupt is
    Ctrl-C: nothing is saved but the checkpoints already written)."""
    import fastemb
    raising = raising or fastemb.StopTraining

    class Stop(fastemb.Callback):
        def on_epoch_end(self, run):
            if not midway and run.epoch == epoch:
                raise raising

        def on_step(self, run):
            if midway and run.epoch == epoch - 1 and 2 * run.state.pos > run.work_per_epoch:
                raise raising
    return Stop()


def checkpointed_run(directory, sentences, raising=None, **train_kw):
    """A planted corpus (directory/p.txt) and a 1-thread run on it that checkpoints every epoch, stopped at the end of
    epoch 2 (see stop_at; a KeyboardInterrupt is expected to come out)."""
    import fastemb
    planted_corpus(directory / "p.txt", sentences=sentences)
    with pytest.raises(raising) if raising is not None else contextlib.nullcontext():
        fastemb.train(str(directory / "p.txt"), threads=1, checkpoint_every="1",
                      callbacks=[stop_at(2, raising=raising)], **train_kw)


def interrupt_cli(args, sig, wait_for=None, delay=1.5):
    """Start `fastemb ARGS`, wait until `wait_for` exists (if given) and `delay` seconds more, send `sig`:
    (returncode, stderr, seconds it took to end)."""
    proc = subprocess.Popen([sys.executable, "-m", "fastemb", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 60
    while wait_for is not None and not os.path.exists(wait_for) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "finished before it could be interrupted"
    t0 = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode(), time.time() - t0


# ------------------------------------------------------------------------------------------ fuzzing
FUZZ_WORKER = r'''
import io, sys, json, contextlib
from fastemb.cli.main import main
results = []
for line in sys.stdin:
    args = json.loads(line)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(args)
        except SystemExit as e:
            rc = e.code
        except BaseException as e:
            rc = "escaped " + type(e).__name__
    print(json.dumps([rc, err.getvalue()]), flush=True)
'''


def mutations(data: bytes, seed: int, n: int):
    """`n` damaged copies of `data`: bytes flipped, truncated, a run overwritten, a region set to 0xff."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        b = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:  # flip bytes anywhere
            for pos in rng.integers(0, len(b), rng.integers(1, 64)):
                b[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:  # truncate
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 2:  # overwrite a run with random bytes
            pos = int(rng.integers(0, len(b)))
            run = rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
            b[pos:pos + len(run)] = run
        else:  # set a region to 0xff (sizes, addresses)
            pos = int(rng.integers(0, len(b)))
            b[pos:pos + 8] = b"\xff" * 8
        yield bytes(b)


def fuzz_commands(tmp_path, cases, timeout) -> int:
    """Damaged copies of files fed to the commands that read them, all in one worker process (a crash, a signal,
    ends it and fails the test). cases: (file, copies, seed, command: path -> args). Every run ends with 0 or 1,
    with one error line exactly when 1, never a traceback; most damage is noticed. Returns the number of runs."""
    jobs = []
    for source, n, seed, command in cases:
        for data in mutations(source.read_bytes(), seed=seed, n=n):
            path = tmp_path / f"m{len(jobs)}{source.suffix}"
            path.write_bytes(data)
            jobs.append([str(x) for x in command(path)])
    p = subprocess.run([sys.executable, "-c", FUZZ_WORKER], input="\n".join(json.dumps(j) for j in jobs) + "\n",
                       capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert p.returncode == 0, f"the worker died (signal {-p.returncode}): {p.stderr[-2000:]}"
    results = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("[")]
    assert len(results) == len(jobs)
    refused = 0
    for job, (rc, err) in zip(jobs, results):
        assert rc in (0, 1), (job, rc, err)
        assert "Traceback" not in err and "internal error" not in err, (job, err)
        assert len([ln for ln in err.splitlines() if ln.startswith("fastemb:")]) == (1 if rc else 0), (job, err)
        refused += rc == 1
    assert refused > len(jobs) // 2  # most damage is noticed
    return len(jobs)
