"""`--device cuda`: the CUDA kernels run under Numba's CUDA simulator (no GPU needed) against the CPU kernels,
the host's span cutting and subsampling against slow references, the one-line errors; tests that need a
real GPU are marked `gpu` and skipped without one.

This module switches Numba's CUDA target to the simulator for this process (before numba.cuda is first
imported); if something imported the real target earlier, the simulator tests are skipped.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, assert_one_line_error, run_cli


def _simulated_cuda():
    """numba.cuda in simulator mode, or None (no numba.cuda, or the real target was imported already)."""
    from numba.core import config
    if "numba.cuda" not in sys.modules:
        before = os.environ.get("NUMBA_ENABLE_CUDASIM")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        try:
            config.reload_config()
        finally:  # subprocesses started by other tests see the environment as it was
            if before is None:
                del os.environ["NUMBA_ENABLE_CUDASIM"]
            else:
                os.environ["NUMBA_ENABLE_CUDASIM"] = before
    try:
        from numba import cuda
    except Exception:  # noqa: BLE001 - no numba.cuda, or one that does not import here: skip
        return None
    from fastemb.kernels.cuda_w2v import simulator
    return cuda if simulator() else None


CUDA = _simulated_cuda()
sim = pytest.mark.skipif(CUDA is None, reason="numba.cuda's simulator is not available in this process")
NO_SIM_ENV = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}


def _real_gpu() -> bool:
    code = "from numba import cuda; import sys; sys.exit(0 if cuda.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], env=NO_SIM_ENV, capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _gpu_mark():
    return pytest.mark.skipif(not _real_gpu(), reason="no usable CUDA GPU")


from fastemb.kernels import w2v as K  # noqa: E402
from fastemb.models.w2v_cuda import make_spans, subsample  # noqa: E402

SIG, NLS = K.sigmoid_tables()


# ------------------------------------------------------------------------------- host-side pieces
def test_spans_cover_each_sentence_and_never_cross_its_end():
    ends = np.array([3, 3, 4, 11, 12, 20])   # sentences of 3, 0, 1, 7, 1, 8 tokens
    lo, hi, s_lo, s_hi, sent = make_spans(ends, 3)
    starts = np.concatenate(([0], ends[:-1]))
    covered = []
    for a, b, sl, sh, s in zip(lo, hi, s_lo, s_hi, sent):
        assert (sl, sh) == (starts[s], ends[s])
        assert sl <= a < b <= sh and b - a <= 3
        covered.extend(range(a, b))
    expect = [p for s in range(len(ends)) if ends[s] - starts[s] >= 2 for p in range(starts[s], ends[s])]
    assert covered == expect   # in corpus order, once each; one-token sentences (no context) get none


def test_subsampling_keeps_sentence_ends_and_the_kept_share():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 20000)
    ends = np.array([5000, 5000, 12000, 20000])
    keep = np.array([1.0, 0.5, 0.25, 0.0])
    sub, new_ends = subsample(ids, ends, keep, np.random.default_rng(1))
    assert new_ends[-1] == len(sub) and np.all(np.diff(new_ends) >= 0)
    assert new_ends[0] == new_ends[1]   # the empty sentence stays empty
    for w, k in enumerate(keep):
        share = (sub == w).sum() / max((ids == w).sum(), 1)
        assert share == pytest.approx(k, abs=0.03)
    sub2, ends2 = subsample(ids, ends, np.zeros(0), None)   # sample 0: everything kept
    assert np.array_equal(sub2, ids) and np.array_equal(ends2, ends)


# ------------------------------------------------------------------------- kernels vs CPU kernels
def _sequential_reference(sentences, syn0, syn1, *, cbow, mean, window, negative, seed, alpha, prob, idx):
    """Every window in corpus order through the CPU kernels (fastemb.kernels.w2v), with the draws the CUDA
    kernel makes (the host twin of its hash). Returns the summed loss and whether two output rows of a
    window coincided."""
    from fastemb.kernels.cuda_w2v import alias_draw, hash_bits
    loss, clash, pos = 0.0, False, 0
    dim = syn0.shape[1]
    for sent in sentences:
        for p in range(len(sent)):
            gp = pos + p
            reduced = int(hash_bits(seed, gp, 0) % np.uint64(window))
            lo, hi = max(0, p - window + reduced), min(len(sent), p + window - reduced + 1)
            ctx = np.array([sent[j] for j in range(lo, hi) if j != p], np.int64)
            if len(ctx) == 0:
                continue
            draws = alias_draw(hash_bits(seed, gp, np.arange(1, negative + 1)), prob, idx)
            out = np.array([sent[p]] + [t for t in draws if t != sent[p]], np.int64)
            clash |= len(set(out.tolist())) < len(out)
            if cbow:
                loss += K.cbow_window(syn0, syn1, np.zeros((1, dim), np.float32), ctx, len(ctx), out, len(out),
                                      np.zeros(1, np.int32), np.zeros(1, np.uint8), 0, np.float32(alpha), mean,
                                      SIG, NLS, np.zeros(dim, np.float32), np.zeros(dim, np.float32))
            else:
                codes = np.array([0] + [1] * (len(out) - 1), np.uint8)
                loss += K.sg_window_shared(syn0, syn1, ctx, len(ctx), out, len(out), codes, np.float32(alpha),
                                           SIG, NLS, np.zeros((len(ctx), len(out)), np.float32),
                                           np.zeros((len(ctx), dim), np.float32),
                                           np.zeros((len(out), dim), np.float32))
        pos += len(sent)
    return loss, clash


def _run_kernel(sentences, syn0, syn1, *, cbow, mean, window, negative, seed, alpha, prob, idx, span, warps,
                grid):
    from fastemb.kernels import cuda_w2v as CK
    from fastemb.models.w2v_cuda import quiet_simulator
    ids = np.concatenate([np.asarray(s, np.int32) for s in sentences])
    ends = np.cumsum([len(s) for s in sentences])
    lo, hi, s_lo, s_hi, _ = make_spans(ends, span)
    kernel = CK.build(syn0.shape[1], window, negative, span, warps, cbow, mean, True)
    loss, pairs = np.zeros(grid), np.zeros(grid, np.int64)
    with quiet_simulator(True):
        kernel[grid, 32 * warps](ids, lo, hi, s_lo, s_hi, np.full(len(lo), alpha, np.float32), len(lo),
                                 np.int64(0), np.uint64(seed), syn0, syn1, prob, idx, SIG, NLS, loss, pairs,
                                 np.zeros((grid, span + 2 * window, syn0.shape[1]), np.float32))
    return loss.sum(), pairs.sum()


# Sentences with repeated words (one cached row), one longer than a span (rows written back and reloaded),
# one without context; words 0..9.
SENTENCES = [[1, 2, 3, 2, 4, 5, 1], [6, 7], [8], [9, 0, 3, 3]]


def _model(dim, seed=0, n=10):
    rng = np.random.default_rng(seed)
    return ((rng.random((n, dim), dtype=np.float32) - 0.5) * 0.8,
            (rng.random((n, dim), dtype=np.float32) - 0.5) * 0.8)


@sim
@pytest.mark.parametrize("cbow,mean,warps,span,grid", [
    (False, True, 1, 3, 2),     # skip-gram: spans shorter than the sentence, two blocks
    (False, True, 2, 64, 1),    # two warps share the (context, output) pairs
    (True, True, 1, 3, 2),      # CBOW, mean of the contexts
    (True, False, 2, 4, 3),     # CBOW, sum
])
def test_kernel_matches_the_cpu_kernels_window_by_window(cbow, mean, warps, span, grid):
    """Under the simulator blocks run one after another, so the CUDA kernel's result must equal the CPU
    kernels run window by window in corpus order, with the same draws (up to float summation order)."""
    from fastemb.kernels.cuda_w2v import alias_draw, hash_bits
    dim, window, negative, alpha = 40, 2, 3, 0.3   # dim 40 > 32 lanes: a lane sums two dimensions
    prob, idx = K.alias_table(np.linspace(1.0, 3.0, 10))
    for seed in range(1, 200):   # CBOW updates its output rows in turn: draws whose rows coincide differ
        clash = False
        if cbow:
            pos = 0
            for s in SENTENCES:
                for p in range(len(s)):
                    out = [s[p]] + [t for t in alias_draw(hash_bits(seed, pos + p, np.arange(1, negative + 1)),
                                                          prob, idx) if t != s[p]]
                    clash |= len(set(out)) < len(out)
                pos += len(s)
        if not clash:
            break
    syn0, syn1 = _model(dim)
    r0, r1 = syn0.copy(), syn1.copy()
    kw = dict(cbow=cbow, mean=mean, window=window, negative=negative, seed=seed, alpha=alpha, prob=prob, idx=idx)
    loss, pairs = _run_kernel(SENTENCES, syn0, syn1, span=span, warps=warps, grid=grid, **kw)
    ref_loss, _ = _sequential_reference(SENTENCES, r0, r1, **kw)
    assert not np.allclose(r0, _model(dim)[0])   # training moved the reference
    np.testing.assert_allclose(syn0, r0, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(syn1, r1, rtol=1e-4, atol=2e-5)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    assert pairs > 0


@sim
def test_kernel_keeps_windows_inside_sentences():
    """Two sentences trained together give what each gives alone, in turn: no window reaches across a sentence
    end, and the reference that ignores the bounds differs."""
    dim, window, negative, alpha = 8, 3, 2, 0.3
    prob, idx = K.alias_table(np.ones(10))
    kw = dict(cbow=False, mean=True, window=window, negative=negative, seed=7, alpha=alpha, prob=prob, idx=idx)
    a, b = [1, 2, 3], [4, 5, 6]
    syn0, syn1 = _model(dim)
    _run_kernel([a, b], syn0, syn1, span=64, warps=1, grid=1, **kw)
    r0, r1 = _model(dim)
    _sequential_reference([a, b], r0, r1, **kw)
    np.testing.assert_allclose(syn0, r0, rtol=1e-4, atol=2e-5)
    joined0, joined1 = _model(dim)
    _sequential_reference([a + b], joined0, joined1, **kw)
    assert not np.allclose(joined0, r0, atol=1e-4)


# ------------------------------------------------------------------------------ through fastemb.train
@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("cuda") / "tiny.txt"
    groups = [[f"a{i}" for i in range(4)], [f"b{i}" for i in range(4)]]
    path.write_text("".join(" ".join(rng.choice(groups[k % 2], 5)) + "\n" for k in range(16)))
    return str(path)


@sim
@pytest.mark.slow
def test_train_on_the_simulated_device_writes_a_model_with_its_timings(tiny_corpus, tmp_path):
    import fastemb
    out = tmp_path / "m.h5"
    emb = fastemb.train(tiny_corpus, "sgns", device="cuda", dim=8, window=2, negative=2, epochs=2, min_count=1,
                        sample=0, seed=3,
                        output=str(out), checkpoint_every="1")
    a = emb.attrs
    assert a["device"] == "cuda" and "simulator" in a["cuda_device"]
    assert a["cuda_kernel_seconds"] > 0 and a["cuda_transfer_seconds"] > 0 and a["epochs_trained"] == 2
    assert np.all(np.isfinite(a["loss"])) and a["loss"][-1] < 3 * np.log(2)   # below the untrained model's
    back = fastemb.load(str(out))
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    assert back.attrs["device"] == "cuda"
    assert not os.path.exists(f"{out}.ckpt")   # written each epoch, removed once the model is saved


@sim
def test_cbow_on_the_simulated_device_and_a_cpu_run_resumed_there(tiny_corpus, tmp_path):
    import fastemb
    from fastemb.callbacks import StopTraining

    def stop_after_one(run):
        raise StopTraining

    ck = tmp_path / "run.ckpt"
    first = fastemb.train(tiny_corpus, "cbow", dim=8, epochs=2, min_count=1, seed=2, checkpoint=str(ck),
                          callbacks=[stop_after_one], threads=1)
    assert first.attrs["epochs_trained"] == 1 and ck.exists()
    emb = fastemb.train(resume=str(ck), device="cuda")   # the device may change on resume
    assert emb.attrs["epochs_trained"] == 2 and emb.attrs["device"] == "cuda"
    assert np.all(np.isfinite(emb.vectors)) and not np.allclose(emb.vectors, first.vectors)


_PTX = """
import sys
import numpy as np
from numba import cuda, types
def probe(a):
    cuda.atomic.add(a, 0, cuda.shfl_xor_sync(0xFFFFFFFF, a[1], 1))


try:   # can this numba.cuda compile shuffles and atomics without a GPU (NVVM, NVRTC installed)?
    cuda.compile_ptx(probe, (types.float32[:],), cc=(9, 0))
except Exception as e:
    print("no compiler:", type(e).__name__, e)
    sys.exit(3)
from fastemb.kernels import cuda_w2v as CK
A1, A2 = (lambda t: types.Array(t, 1, "C")), (lambda t: types.Array(t, 2, "C"))
sig = (A1(types.int32), A1(types.int64), A1(types.int64), A1(types.int64), A1(types.int64), A1(types.float32),
       types.int64, types.int64, types.uint64, A2(types.float32), A2(types.float32), A1(types.float32),
       A1(types.int64), A1(types.float32), A1(types.float32), A1(types.float64), A1(types.int64),
       types.Array(types.float32, 3, "C"))
for dim, cbow in ((100, False), (100, True), (300, False)):
    k = CK.build(dim, 5, 5, CK.choose_span(dim, 5, 5, 4), 4, cbow, True, False)
    ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=(9, 0))
    assert "shfl.sync.bfly" in ptx and "atom.global.add.f32" in ptx, dim
print("ok")
"""


def test_kernels_compile_for_a_real_gpu():
    """The GPU build of the kernels (shuffles, atomics; not what the simulator runs) compiles to PTX for an
    H100 (sm_90). Needs the CUDA compiler libraries (NVVM, NVRTC: numba-cuda[cu12]), not a GPU."""
    p = subprocess.run([sys.executable, "-c", _PTX], capture_output=True, cwd=ROOT, env=NO_SIM_ENV, timeout=600)
    if p.returncode == 3:
        pytest.skip(p.stdout.decode().strip()[:200])
    assert p.returncode == 0 and p.stdout.decode().strip().endswith("ok"), p.stderr.decode()[-2000:]


def test_cuda_refuses_what_it_does_not_train():
    from fastemb.errors import OptionError
    from fastemb.models.word2vec import CBOWOptions, SGNSOptions
    with pytest.raises(OptionError, match="hs"):
        SGNSOptions(device="cuda", hs=True)
    with pytest.raises(OptionError, match="shared_negatives"):
        SGNSOptions(device="cuda", shared_negatives=False)
    with pytest.raises(OptionError, match="device"):
        CBOWOptions(device="tpu")
    with pytest.raises(OptionError, match="cuda_blocks"):
        SGNSOptions(device="cuda", cuda_blocks=0)


def test_no_gpu_is_one_line_and_exit_1(tmp_path):
    """Without a GPU (this process's real CUDA target) training refuses before reading the corpus."""
    if _real_gpu():
        pytest.skip("a GPU is present")
    rc, _, err = run_cli("train", SAMPLE, "--device", "cuda", "-o", tmp_path / "m.h5", env=NO_SIM_ENV)
    assert_one_line_error(rc, err, contains="--device cuda: no usable GPU")
    assert not (tmp_path / "m.h5").exists()


def test_a_window_cache_too_large_for_shared_memory_is_one_line_before_reading(tmp_path):
    rc, _, err = run_cli("train", SAMPLE, "--device", "cuda", "--dim", "600", "--window", "10", "-o",
                         tmp_path / "m.h5", env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert_one_line_error(rc, err, contains="shared memory")
    assert "--dim 600" in err and "read" not in err.split("fastemb: error")[0]


def test_without_numba_cuda_is_one_line_and_exit_1(tmp_path):
    code = ("import sys; sys.modules['numba.cuda'] = None; from fastemb.cli.main import entry_point; "
            f"sys.argv = ['fastemb', 'train', {SAMPLE!r}, '--device', 'cuda', '-o', {str(tmp_path / 'm.h5')!r}]; "
            "entry_point()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, env=NO_SIM_ENV)
    assert_one_line_error(p.returncode, p.stderr.decode(), contains="pip install 'fastemb[cuda]'")


@pytest.mark.gpu
@_gpu_mark()
def test_real_gpu_trains_to_cpu_quality(tmp_path):
    """On a GPU: sgns on the sample corpus reaches the CPU run's analogy and similarity scores (within 0.03)."""
    import json
    code = ("import fastemb, json; from fastemb import eval as E\n"
            "r = {}\n"
            "for dev in ('cpu', 'cuda'):\n"
            f"    e = fastemb.train({SAMPLE!r}, 'sgns', device=dev, seed=1)\n"
            "    r[dev] = {'ws353': E.similarity(e, E.dataset('wordsim353'))['spearman'],\n"
            "              'analogy': E.analogy(e, E.dataset('questions-words'))['3cosadd']}\n"
            "print(json.dumps(r))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, env=NO_SIM_ENV, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    r = json.loads(p.stdout.decode().strip().splitlines()[-1])
    for key, value in r["cpu"].items():
        assert r["cuda"][key] >= value - 0.03, (key, r)


@pytest.mark.slow
def test_bench_gpu_smoke_runs_end_to_end(tmp_path):
    """`python -m bench.gpu --smoke`: the GPU benchmark's whole path under the simulator, in one process."""
    import json
    out = tmp_path / "gpu.json"
    p = subprocess.run([sys.executable, "-m", "bench.gpu", "--smoke", "--seeds", "1", "--json", str(out)],
                       capture_output=True, cwd=ROOT, env=NO_SIM_ENV, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    text = p.stdout.decode()
    assert "kernel" in text and "mean over seeds" in text
    rows = json.loads(out.read_text())["rows"]
    assert {r["device"] for r in rows} == {"cuda", "cpu"}
    gpu = next(r for r in rows if r["device"] == "cuda")
    assert gpu["words_per_second"] > 0 and gpu["kernel_seconds"] > 0 and np.isfinite(gpu["final_loss"])
