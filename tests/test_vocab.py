import bz2
import collections
import gzip
import lzma

import numpy as np
import pytest

from fastemb.errors import FastembError
from fastemb.vocab import Vocab, build_vocab
from conftest import run_cli


def reference(text, min_count=1):
    """Counter reference, in fastemb's order: count descending, ties by first occurrence."""
    counts = collections.Counter()
    first = {}
    for tok in text.split():
        counts[tok] += 1
        first.setdefault(tok, len(first))
    return sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda x: (-x[1], first[x[0]]))


@pytest.mark.parametrize("ext,opener", [("", open), (".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_counts_equal_counter_on_real_text(kjv_small, tmp_path, ext, opener):
    text = open(kjv_small, encoding="utf-8").read()
    path = tmp_path / ("c.txt" + ext)
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(text)
    v = build_vocab([str(path)], min_count=3)
    assert list(zip(v.words, v.counts.tolist())) == reference(text, 3)
    assert v.raw_tokens == len(text.split())


def test_token_split_across_tiny_chunks_and_no_newline(tmp_path):
    words = ["alpha", "béta", "γάμμα", "d", "日本語"] * 50
    path = tmp_path / "one-line.txt"
    path.write_bytes(" ".join(words).encode("utf-8"))  # no newline at all
    v = build_vocab([str(path)], min_count=1, chunk_bytes=7)
    assert dict(zip(v.words, v.counts.tolist())) == dict(collections.Counter(words))


def test_directory_recursive_and_min_count_max_vocab(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("x y z x\n")
    (tmp_path / "sub" / "b.txt").write_text("x y w")  # no final newline: must not glue to the next file
    (tmp_path / "c.txt").write_text("y x\n")
    v = build_vocab([str(tmp_path)], min_count=1)
    assert dict(zip(v.words, v.counts.tolist())) == {"x": 4, "y": 3, "z": 1, "w": 1}
    assert build_vocab([str(tmp_path)], min_count=2).words == ["x", "y"]
    assert build_vocab([str(tmp_path)], min_count=1, max_vocab=1).words == ["x"]
    assert v.words[2:] == ["z", "w"]  # ties by first occurrence (files in sorted order)


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good \xff\xfebad good\nok\n")
    enc = build_vocab([str(path)], min_count=1, encode=True)
    with enc:
        assert enc.invalid_bytes == 2
        assert "\ufffd\ufffdbad" in enc.vocab.words


def test_lowercase_and_unicode_whitespace(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("The\u00a0THE the\u3000Été été\n", encoding="utf-8")
    v = build_vocab([str(path)], min_count=1, lowercase=True)
    assert dict(zip(v.words, v.counts.tolist())) == {"the": 3, "été": 2}


def test_regex_tokenizer(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("Hello, world! hello-world\n", encoding="utf-8")
    v = build_vocab([str(path)], min_count=1, lowercase=True, token_pattern=r"\w+")
    assert dict(zip(v.words, v.counts.tolist())) == {"hello": 2, "world": 2}


def test_overlong_token_truncated_on_character_boundary(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("é" * 5000 + " short\n", encoding="utf-8")
    v = build_vocab([str(path)], min_count=1, chunk_bytes=300)
    long_word = [w for w in v.words if w != "short"][0]
    assert set(long_word) == {"é"} and len(long_word.encode()) <= 1000


def test_memory_budget_prunes_rare_words_and_logs(tmp_path, caplog):
    rng = np.random.default_rng(0)
    rare = [f"r{i}" for i in range(5000)]
    tokens = []
    for i in range(5000):
        tokens += ["common", "frequent", rare[i]]
    rng.shuffle(tokens)
    path = tmp_path / "p.txt"
    path.write_text(" ".join(tokens) + "\n")
    with caplog.at_level("INFO", logger="fastemb"):
        v = build_vocab([str(path)], min_count=1, memory_bytes=1024 * 64)
    assert "pruned" in caplog.text
    assert v.pruned > 0
    assert v.words[:2] == ["common", "frequent"] or v.words[:2] == ["frequent", "common"]
    assert v.counts[0] <= 5000 and v.counts[0] > 4000


def test_encoding_matches_token_stream(kjv_small):
    lines = open(kjv_small, encoding="utf-8").read().splitlines()
    with build_vocab([kjv_small], min_count=5, encode=True, max_sentence_length=7) as enc:
        index = enc.vocab.index
        expected_ids, expected_ends = [], []
        for line in lines:
            toks = line.split()
            for k in range(0, len(toks), 7):  # long lines are split, then OOV tokens dropped
                kept = [index[t] for t in toks[k:k + 7] if t in index]
                if kept:
                    expected_ids += kept
                    expected_ends.append(len(expected_ids))
        assert np.array_equal(enc.ids, expected_ids)
        assert np.array_equal(enc.sentence_ends, expected_ends)
        assert enc.n_tokens == enc.vocab.total


def test_stdin_and_tsv_round_trip(tmp_path, kjv_small):
    data = open(kjv_small, "rb").read()
    out = tmp_path / "v.tsv"
    rc, _, err = run_cli("vocab", "-", "-o", out, "--min-count", "2", "--quiet", stdin=data)
    assert rc == 0, err
    v = Vocab.load_tsv(out)
    assert list(zip(v.words, v.counts.tolist())) == reference(data.decode(), 2)


def test_empty_and_all_rare(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("  \n\n")
    with pytest.raises(FastembError, match="empty"):
        build_vocab([str(empty)])
    rare = tmp_path / "r.txt"
    rare.write_text("a b c\n")
    with pytest.raises(FastembError, match="min_count"):
        build_vocab([str(rare)], min_count=2)
