"""Counting and encoding over byte ranges on several threads (vocab.build_vocab(threads=N)) against one
thread and against a slow Python reference: the same vocabulary, order, counts and ids, bit for bit."""
import gzip
import logging

import numpy as np
import pytest

from fastemb import vocab as V
from fastemb.vocab import build_vocab
from conftest import run_cli, sample_lines


@pytest.fixture
def small_ranges(monkeypatch):
    """Cut ranges of ~3 KB so that a test corpus of a few hundred KB makes dozens of them."""
    monkeypatch.setattr(V, "SHARD_MIN_BYTES", 3000)


def _encoded(paths, threads, **kw):
    with build_vocab(paths, encode=True, threads=threads, **kw) as enc:
        return (list(enc.vocab.words), enc.vocab.counts.tolist(), enc.vocab.raw_tokens, enc.vocab.distinct,
                np.array(enc.ids), np.array(enc.sentence_ends), enc.digest())


def _hostile_corpus(tmp_path):
    """Several files: a UTF-8 byte-order mark, CRLF and lone CR line ends, invalid UTF-8, Unicode spaces,
    long lines, empty lines, words that first occur late, a gzip file and an empty file."""
    lines = sample_lines(3000)
    a = tmp_path / "a.txt"
    a.write_bytes(b"\xef\xbb\xbf" + "".join(lines[:1000]).replace("\n", "\r\n").encode())
    b = tmp_path / "b.txt"
    body = "".join(lines[1000:2000]).encode()
    body += b"caf\xe9 na\xefve \xff\xfe broken\n\n\n" + b"long " * 700 + b"\n" + "late\u00a0word\u3000here\n".encode()
    body += b"lone\rcarriage\rreturns\n"
    b.write_bytes(body)
    c = tmp_path / "c.txt.gz"
    with gzip.open(c, "wt", encoding="utf-8") as f:
        f.write("".join(lines[2000:]) + "zebra zebra zebra\n")
    e = tmp_path / "empty.txt"
    e.write_bytes(b"")
    return [str(a), str(b), str(c), str(e)]


@pytest.mark.parametrize("opts", [{}, {"lowercase": True, "min_count": 2, "max_sentence_length": 9},
                                  {"token_pattern": r"\w+", "max_vocab": 300},
                                  {"min_count": 1}])
def test_threads_equal_one_thread(tmp_path, small_ranges, opts):
    paths = _hostile_corpus(tmp_path)
    assert len(V.local_shards(V.CorpusReader(paths), 3)) >= 8
    one = _encoded(paths, 1, **opts)
    for threads in (2, 3):
        many = _encoded(paths, threads, **opts)
        for x, y in zip(one, many):
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


def test_threads_match_python_reference(tmp_path, small_ranges):
    lines = [ln for ln in sample_lines(4000)]
    path = tmp_path / "kjv.txt"
    path.write_text("".join(lines), encoding="utf-8")
    words, counts, raw, distinct, ids, ends, _ = _encoded([str(path)], 2, min_count=3, max_sentence_length=11)
    from collections import Counter
    tokens = [t for ln in lines for t in ln.split()]
    c = Counter(tokens)
    first = {}
    for t in tokens:
        first.setdefault(t, len(first))
    expected = sorted((w for w in c if c[w] >= 3), key=lambda w: (-c[w], first[w]))
    assert words == expected and counts == [c[w] for w in expected] and raw == len(tokens)
    assert distinct == len(c)
    index = {w: i for i, w in enumerate(expected)}
    want_ids, want_ends = [], []
    for ln in lines:
        toks = ln.split()
        for k in range(0, len(toks), 11):
            kept = [index[t] for t in toks[k:k + 11] if t in index]
            if kept:
                want_ids += kept
                want_ends.append(len(want_ids))
    assert np.array_equal(ids, want_ids) and np.array_equal(ends, want_ends)


def test_continued_vocabulary_with_threads(tmp_path, small_ranges):
    paths = _hostile_corpus(tmp_path)
    base = build_vocab(paths[:1], min_count=5)
    for update in (False, True):
        one = build_vocab(paths, encode=True, threads=1, base=base, update=update)
        two = build_vocab(paths, encode=True, threads=2, base=base, update=update)
        with one, two:
            assert one.vocab.words == two.vocab.words and np.array_equal(one.vocab.counts, two.vocab.counts)
            assert one.digest() == two.digest()


def test_memory_budget_with_threads_warns(tmp_path, small_ranges, caplog):
    paths = _hostile_corpus(tmp_path)
    with caplog.at_level(logging.INFO, logger="fastemb"):
        with build_vocab(paths, encode=True, threads=2, memory_bytes=1 << 16, min_count=1) as enc:
            assert enc.vocab.pruned > 0
            assert enc.n_tokens == enc.vocab.total  # ids stay consistent with the (lower-bound) counts
            assert int(enc.ids.max()) < len(enc.vocab)
    assert "pruned" in caplog.text and "one-thread run" in caplog.text


def test_merge_tables_is_exact():
    """Three tables merged: counts add up, the smaller key wins, every entry is found again."""
    from fastemb.vocab import merge_tables, vocabulary_order
    texts = [b"a b c a\n", b"c d e e\n", b"f a zz b\n"]
    class Chunks(list):
        bytes_done = 0

    tables = []
    for t in texts:
        table, _ = V.scan_corpus(Chunks([t]), max_entries=1 << 10, max_sentence_length=100, progress=V.Progress("x", None))
        tables.append(table)
    keys = [(np.int64(k) << np.int64(V.FIRST_BITS)) | t.e_pid[:t.n] for k, t in enumerate(tables)]
    merged, wheres = merge_tables(tables, keys)
    words = [w.decode() for w in merged.raw_words()]
    counts = dict(zip(words, merged.e_count[:merged.n].tolist()))
    assert counts == {"a": 3, "b": 2, "c": 2, "d": 1, "e": 2, "f": 1, "zz": 1}
    order, _ = vocabulary_order(merged.e_count[:merged.n], merged.e_pid[:merged.n], 1, None)
    assert [words[i] for i in order] == ["a", "b", "c", "e", "d", "f", "zz"]
    for t, where in zip(tables, wheres):
        assert [words[e] for e in where] == [w.decode() for w in t.raw_words()]


def test_cli_vocab_threads_and_bad_threads(tmp_path, kjv_small):
    out1, out2 = tmp_path / "v1.tsv", tmp_path / "v2.tsv"
    assert run_cli("vocab", kjv_small, "-o", str(out1), "--threads", "1")[0] == 0
    assert run_cli("vocab", kjv_small, "-o", str(out2), "--threads", "2")[0] == 0
    assert out1.read_bytes() == out2.read_bytes()
    code, _, err = run_cli("vocab", kjv_small, "-o", str(tmp_path / "v3.tsv"), "--threads", "0")
    assert code != 0 and "threads" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
