import h5py
import numpy as np
import pytest

from fastemb.errors import FastembError
from fastemb.store import (describe, load_alignment, load_embeddings, save_alignment, save_embeddings,
                           atomic_output)


def test_embeddings_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    words = ["a", "été", "日本", "x y"]
    vec = rng.standard_normal((4, 7)).astype(np.float32)
    ctx = rng.standard_normal((4, 7)).astype(np.float32)
    path = tmp_path / "e.h5"
    save_embeddings(path, words, [9, 5, 3, 1], vec, context=ctx, bias=vec[:, 0],
                    attrs={"algo": "sgns", "loss": [1.5, 1.2], "window": 5})
    d = load_embeddings(path)
    assert d["words"] == words and d["counts"].tolist() == [9, 5, 3, 1]
    assert np.array_equal(d["vectors"], vec) and np.array_equal(d["context_embedding"], ctx)
    assert d["attrs"]["algo"] == "sgns" and d["attrs"]["loss"] == [1.5, 1.2]
    with h5py.File(path, "r") as f:  # the documented layout, readable with plain h5py
        assert f["embedding"].dtype == np.float32 and f["embedding"].shape == (4, 7)
        assert f.attrs["encoding-type"] == "fastemb"
    assert describe(path)["vocab_size"] == 4


def test_alignment_round_trip(tmp_path):
    R = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_alignment(tmp_path / "r.h5", R, attrs={"method": "procrustes"}, arrays={"src_mean": [1, 2]})
    R2, attrs, arrays = load_alignment(tmp_path / "r.h5")
    assert np.array_equal(R, R2) and attrs["method"] == "procrustes" and arrays["src_mean"].tolist() == [1, 2]


def test_foreign_truncated_and_future_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(FastembError, match="not a fastemb file"):
        load_embeddings(foreign)
    good = tmp_path / "good.h5"
    save_embeddings(good, ["a"], [1], np.ones((1, 2)))
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(FastembError):
        load_embeddings(trunc)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(FastembError, match="not an HDF5 file"):
        load_embeddings(text)
    with h5py.File(good, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FastembError, match="newer"):
        load_embeddings(good)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
