"""The benchmark harness's own logic, on tiny inputs (the benchmarks themselves are not run here)."""
import collections
import json
import sys

import numpy as np
import pytest

from bench import corpus as C
from bench import harness as H


def test_zipf_generator_statistics():
    data = b"".join(C.zipf_tokens(200_000, vocab=1000, exponent=1.0, seed=3, sentence=20))
    lines = data.decode().splitlines()
    assert all(len(line.split()) == 20 for line in lines)
    tokens = data.split()
    assert len(tokens) == 200_000
    counts = collections.Counter(tokens)
    ranks = np.array([counts[f"w{k}".encode()] for k in range(1, 50)], dtype=float)
    # log-log slope of frequency against rank is about -exponent
    slope = np.polyfit(np.log(np.arange(2, 51)), np.log(ranks), 1)[0]
    assert -1.15 < slope < -0.85
    again = b"".join(C.zipf_tokens(200_000, vocab=1000, exponent=1.0, seed=3, sentence=20))
    assert again == data
    assert b"".join(C.zipf_tokens(200_000, vocab=1000, seed=4)) != data


def test_run_process_measures_wall_and_rss():
    wall, rss, rc, out, _ = H.run_process([sys.executable, "-c",
                                           "import numpy as np; a = np.ones(50_000_000); print(a.sum())"])
    assert rc == 0 and out.strip() == "50000000.0"
    assert rss > 350 and wall > 0  # 400 MB of float64 ones were resident


def test_missing_peer_is_reported_as_skipped(monkeypatch):
    monkeypatch.setattr(H.shutil, "which", lambda name: None)
    ok, reason = H.availability("word2vec.c")
    assert not ok and "not on PATH" in reason
    r = H.run_case({"tool": "word2vec.c", "task": "sgns", "corpus": "x.txt", "threads": 2}, "/tmp")
    assert r["available"] is False and "not on PATH" in r["skipped"]
    rows = H.summarise([r], {"x.txt": 10})
    assert "skipped" in rows[0]
    assert "skipped: the word2vec binary" in H.markdown(rows, {"date": "d", "cpu": "c", "cores": 2,
                                                               "memory_mb": 1, "profile": "quick",
                                                               "corpus_tokens": {"x.txt": 10}})


def test_ratios_medians_and_words_per_second():
    base = {"task": "sgns", "corpus": "/c/en.txt", "threads": 2, "epochs": 5, "available": True}
    q = {"ws353": 0.6, "analogy": 0.2, "simlex999": 0.3}
    records = [
        {**base, "tool": "fastemb", "wall": 10.0, "train_seconds": 8.0, "rss_mb": 100, "quality": q},
        {**base, "tool": "fastemb", "wall": 12.0, "train_seconds": 9.0, "rss_mb": 110, "quality": q},
        {**base, "tool": "fastemb", "wall": 11.0, "train_seconds": 10.0, "rss_mb": 105, "quality": q},
        {**base, "tool": "gensim", "mode": "corpus_file", "wall": 44.0, "train_seconds": 36.0, "rss_mb": 160,
         "quality": {**q, "ws353": 0.61}},
        {**base, "tool": "word2vec.c", "wall": 60.0, "rss_mb": 550, "quality": q},
        {**base, "tool": "word2vec.c", "task": "vocab", "wall": 1.0, "rss_mb": 50},
    ]
    rows = {(r["tool"], r["task"]): r for r in H.summarise(records, {"/c/en.txt": 1_000_000})}
    fe = rows["fastemb", "sgns"]
    assert fe["wall"] == 11.0 and fe["wall_spread"] == [10.0, 12.0] and fe["repeats"] == 3
    assert fe["words_per_second"] == pytest.approx(5_000_000 / 9.0)
    g = rows["gensim", "sgns"]
    assert g["speedup_wall"] == pytest.approx(4.0) and g["speedup_train"] == pytest.approx(4.0)
    assert g["quality_delta"]["ws353"] == pytest.approx(-0.01)
    w = rows["word2vec.c", "sgns"]
    assert w["train_seconds"] == pytest.approx(59.0)  # whole run minus its vocabulary pass
    assert w["speedup_train"] == pytest.approx(59.0 / 9.0)


def test_runner_output_is_parsed(tmp_path, monkeypatch):
    """run_case takes the runner's last stdout line as its JSON report."""
    def fake_run_process(argv, env=None, stdin_source=None):
        case = json.loads(argv[-1])
        assert case["out_dir"].startswith(str(tmp_path))
        return 1.5, 42.0, 0, "some log line\n" + json.dumps({"train_seconds": 1.0}) + "\n", ""
    monkeypatch.setattr(H, "run_process", fake_run_process)
    r = H.run_case({"tool": "fastemb", "task": "vocab", "corpus": "x"}, str(tmp_path))
    assert r["wall"] == 1.5 and r["rss_mb"] == 42.0 and r["train_seconds"] == 1.0
