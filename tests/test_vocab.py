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


def test_scan_kernel_resumes_exactly_against_a_reference():
    """The tokenizer kernel fed random pieces, with output buffers of a few ids and a table of four entries
    (so that it stops for room or a drain inside its batches again and again), against a Python reference:
    line ends (LF, CR, CRLF), other separators, over-long tokens cut on a character boundary and their tails
    skipped across pieces, long lines split."""
    import re
    from fastemb.kernels import tokenize as K
    from fastemb.vocab import StringTable
    rng = np.random.default_rng(3)
    words = [b"a", b"bb", b"the", "\u00e9t\u00e9".encode(), "\u65e5\u672c".encode(), "\u00e9".encode() * 9,
             b"x" * 30, b"w" + bytes(range(0x41, 0x5b))]
    seps = [b" ", b" ", b" ", b"  ", b"\t", b"\n", b"\r", b"\r\n", b"\x00", b"\n\n", b"\x0c"]
    data = b"".join(words[rng.integers(len(words))] + seps[rng.integers(len(seps))] for _ in range(3000))
    max_token, max_sentence = 12, 7
    want, want_ends, truncated = [], [], 0
    for line in re.split(rb"[\r\n]", data):
        sent = 0
        for tok in re.split(rb"[\x00\t\x0b\x0c\x1c-\x1f ]+", line):
            if not tok:
                continue
            if len(tok) > max_token:
                cut = max_token
                while cut > 1 and tok[cut] & 0xC0 == 0x80:
                    cut -= 1
                tok, truncated = tok[:cut], truncated + 1
            want.append(tok)
            sent += 1
            if sent == max_sentence:
                want_ends.append(len(want))
                sent = 0
        if sent:
            want_ends.append(len(want))
    table = StringTable(4)
    out_ids, out_sents = np.empty(5, np.uint32), np.empty(3, np.int64)
    got_pids, got_ends = [], []
    cuts = np.sort(rng.integers(0, len(data), 200))
    pieces = [data[a:b] for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(data)])))]
    carry = b""
    for piece in pieces + [b"\n"]:
        buf = np.frombuffer(carry + piece, np.uint8)
        pos = 0
        while True:
            code, pos = K.scan(buf, pos, False, max_sentence, max_token, True, 1 << 62, table.slots, table.e_hash,
                               table.e_off, table.e_len, table.e_count, table.e_pid, table.arena, table.state,
                               out_ids, out_sents)
            if code == K.NEED_ROOM:
                table.grow(max_token)
                continue
            got_pids += out_ids[:table.state[K.S_OUT]].tolist()
            got_ends += out_sents[:table.state[K.S_SENTS]].tolist()
            table.state[K.S_OUT] = table.state[K.S_SENTS] = 0
            if code == K.DONE:
                break
        carry = bytes(buf[pos:])
    assert carry == b""
    word = {int(table.e_pid[e]): bytes(table.arena[table.e_off[e]:table.e_off[e] + table.e_len[e]])
            for e in range(table.n)}
    assert [word[p] for p in got_pids] == want and got_ends == want_ends
    assert {word[int(table.e_pid[e])]: int(table.e_count[e]) for e in range(table.n)} == \
        dict(collections.Counter(want))
    assert int(table.state[K.S_TRUNCATED]) == truncated > 0 and int(table.state[K.S_TOKENS]) == len(want)
