"""Phrase detection (issue 22 item 4): kernel scores against a slow Python reference, the phrase set against
gensim's Phrases on real text, the table's round trip and application, bad tables refused, CLI errors."""
import logging
import math
import random

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

from fastemb.errors import FastembError, FileError, OptionError
from fastemb.phrasing import PhraseTable, PhrasesOptions, load_table, phrases


# ------------------------------------------------------------------------------------- slow references
def ref_learn(sentences, min_count, threshold, scoring="default", delimiter="_", connectors=()):
    """gensim's learn_vocab + score_candidate, one candidate per (word, connectors, word) sequence."""
    uni, pairs, total = {}, {}, 0
    for s in sentences:
        start, between = None, []
        for w in s:
            if w not in connectors:
                uni[w] = uni.get(w, 0) + 1
                if start is not None:
                    key = (start, *between, w)
                    pairs[key] = pairs.get(key, 0) + 1
                start, between = w, []
            elif start is not None:
                between.append(w)
            total += 1
    len_vocab = len(uni) + len(pairs)
    out = {}
    for key, c in pairs.items():
        a, b = uni[key[0]], uni[key[-1]]
        if scoring == "default":
            s = (c - min_count) / float(a * b) * len_vocab
        elif c >= min_count:
            n = float(total)
            pa, pb, pab = a / n, b / n, c / n
            s = math.log(pab / (pa * pb)) / -math.log(pab)
        else:
            s = -math.inf
        if s > threshold:
            out[delimiter.join(key)] = (s, c)
    return out


def ref_apply(sentence, table, delimiter="_", connectors=()):
    """gensim's FrozenPhrases.analyze_sentence + __getitem__."""
    out, start, between = [], None, []
    for w in sentence:
        if w not in connectors:
            if start is not None:
                phrase = delimiter.join([start, *between, w])
                if phrase in table:
                    out.append(phrase)
                    start, between = None, []
                else:
                    out += [start, *between]
                    start, between = w, []
            else:
                start, between = w, []
        elif start is not None:
            between.append(w)
        else:
            out.append(w)
    if start is not None:
        out += [start, *between]
    return out


def zipf_sentences(n, vocab=60, seed=0):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)] + ["the", "of"]
    weights = [1 / (i + 1) for i in range(len(words))]
    sents = []
    for _ in range(n):
        s = rng.choices(words, weights, k=rng.randint(1, 12))
        if rng.random() < 0.3:  # planted collocations
            k = rng.randrange(len(s) + 1)
            s[k:k] = rng.choice([["new", "york"], ["san", "the", "francisco"], ["new", "york", "city"]])
        sents.append(s)
    return sents


def write_lines(path, sents):
    path.write_text("".join(" ".join(s) + "\n" for s in sents), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------- scores
@pytest.mark.parametrize("scoring,threshold", [("default", 0.0), ("npmi", 0.0)])
@pytest.mark.parametrize("connectors", [(), ("the", "of")])
def test_scores_equal_the_python_reference(tmp_path, scoring, threshold, connectors):
    sents = zipf_sentences(3000)
    path = write_lines(tmp_path / "c.txt", sents)
    want = ref_learn(sents, 3, threshold, scoring, "_", connectors)
    t = phrases(path, min_count=3, threshold=threshold, scoring=scoring, connector_words=list(connectors))
    got = {w: (s, c) for w, s, c in zip(t.passes[0].phrases, t.passes[0].scores.tolist(),
                                         t.passes[0].counts.tolist())}
    assert len(want) > 20
    assert got == want  # same phrases, same counts, same scores bit for bit
    assert list(t.passes[0].scores) == sorted(t.passes[0].scores, reverse=True)


def test_pruning_keeps_memory_bounded_and_says_so(tmp_path, caplog):
    sents = zipf_sentences(6000, vocab=3000, seed=1)
    path = write_lines(tmp_path / "c.txt", sents)
    with caplog.at_level(logging.INFO, logger="fastemb"):
        t = phrases(path, min_count=3, threshold=0.5, memory_bytes=64 * 2048)
    assert t.passes[0].pruned > 0
    assert "memory budget" in caplog.text and "pruned" in caplog.text
    assert "new_york" in t.passes[0].phrases  # the planted, frequent collocation survives pruning


def candidate_counts(table):
    """Every candidate of a phrasing.PairTable as {pid tuple: count}."""
    live = np.nonzero(table.pairs[:, 0])[0]
    chosen = np.concatenate((live, table.pairs.shape[0] + np.arange(table.longs.n))).astype(np.int64)
    seqs, counts = table.sequences(chosen)
    return {tuple(s): c for s, c in zip(seqs, counts.tolist())}


def test_candidate_table_counts_grows_and_prunes_as_a_dict():
    """The pair table (two-word keys) and the long-candidate table against a dict, across buffers, many
    doublings from 16 rows, a prune and counting after it."""
    from fastemb.kernels import phrases as P
    from fastemb.phrasing import PairTable
    rng = np.random.default_rng(0)
    conn = {3, 4}
    is_conn = np.zeros(64, np.uint8)
    is_conn[list(conn)] = 1
    n = 20000
    ids = np.minimum(rng.zipf(1.3, n) - 1, 63).astype(np.uint32)
    ends = np.unique(np.concatenate((rng.integers(1, n, 1500), [n]))).astype(np.int64)
    want = {}
    for sent in np.split(ids.tolist(), ends[:-1]):
        start, between = None, []
        for p in sent.tolist():
            if p in conn:
                if start is not None:
                    between.append(p)
                continue
            if start is not None:
                key = (start, *between, p)
                want[key] = want.get(key, 0) + 1
            start, between = p, []
    table = PairTable(16)
    for lo, hi in ((0, 7000), (7000, 7001), (7001, n)):  # a candidate spans each buffer boundary
        table.state[P.C_POS] = table.state[P.C_END] = 0
        part = ends[(ends > lo) & (ends <= hi)]
        while table.count(ids[lo:hi], part, lo, True, is_conn, 1 << 40) != P.DONE:
            table.grow()
    assert any(len(k) > 2 for k in want) and table.pairs.shape[0] >= 1024
    assert candidate_counts(table) == want
    dropped = table.prune(2)
    kept = {k: c for k, c in want.items() if c > 2}
    assert dropped == len(want) - len(kept) > 0 and candidate_counts(table) == kept
    table.state[P.C_POS] = table.state[P.C_END] = table.state[P.C_KEY_LEN] = 0
    while table.count(ids, ends, 0, True, is_conn, 1 << 40) != P.DONE:  # every kept key is found again
        table.grow()
    assert candidate_counts(table) == {k: kept.get(k, 0) + c for k, c in want.items()}


@pytest.mark.parametrize("scoring,threshold,connectors", [("default", 10.0, None), ("npmi", 0.5, None),
                                                          ("default", 10.0, "english")])
def test_same_phrases_as_gensim_on_real_text(kjv_small, scoring, threshold, connectors):
    gensim_phrases = pytest.importorskip("gensim.models.phrases")
    sents = [line.split() for line in open(kjv_small, encoding="utf-8")]
    kw = {"connector_words": gensim_phrases.ENGLISH_CONNECTOR_WORDS} if connectors else {}
    g = gensim_phrases.Phrases(sents, min_count=5, threshold=threshold, scoring=scoring, **kw)
    want = g.export_phrases()
    t = phrases(kjv_small, min_count=5, threshold=threshold, scoring=scoring,
                connector_words=connectors or "none")
    got = t.as_dict()
    assert len(want) > 50
    assert set(got) == set(want)
    assert all(got[w] == pytest.approx(want[w], rel=1e-12) for w in want)
    assert t.passes[0].vocab == len(g.vocab) and t.passes[0].words == g.corpus_word_count


# ------------------------------------------------------------------------------------- tables and applying
def test_table_round_trip_and_apply_equals_the_reference(kjv_small, tmp_path):
    out, tab = str(tmp_path / "out.txt"), str(tmp_path / "t.tsv")
    t = phrases(kjv_small, out, table=tab, min_count=5, threshold=10.0, passes=2, connector_words="english")
    u = PhraseTable.load(tab)
    assert [p.phrases for p in u.passes] == [p.phrases for p in t.passes]
    assert all(np.array_equal(p.scores, q.scores) and np.array_equal(p.counts, q.counts)
               for p, q in zip(t.passes, u.passes))
    assert u.delimiter == "_" and set(u.connector_words) == set(t.connector_words) and "of" in u.connector_words
    assert any(w.count("_") >= 2 for w in t.passes[1].phrases)  # the second pass finds longer phrases
    sents = [line.split() for line in open(kjv_small, encoding="utf-8")]
    want = []
    for s in sents:
        for p in u.passes:
            s = ref_apply(s, set(p.phrases), "_", u.connector_words)
        if s:
            want.append(" ".join(s))
    got = open(out, encoding="utf-8").read().splitlines()
    assert got == want
    # applying the saved table to the text again gives the same file (--apply)
    again = str(tmp_path / "again.txt")
    phrases(kjv_small, again, apply=tab)
    assert open(again, encoding="utf-8").read() == open(out, encoding="utf-8").read()


def test_apply_across_chunks_and_table_resets_equals_the_reference(kjv_small, monkeypatch):
    """The applier's word table emptied between small chunks (every few words) while a start word and its
    connectors wait for the next chunk: the same text as the reference."""
    from fastemb.phrasing import _Applier
    t = phrases(kjv_small, min_count=5, threshold=5.0, connector_words="english")
    data = open(kjv_small, "rb").read()
    want = []
    for line in data.decode("utf-8").splitlines():
        s = ref_apply(line.split(), set(t.passes[0].phrases), "_", t.connector_words)
        if s:
            want.append(" ".join(s))
    monkeypatch.setattr(_Applier, "RESET_ENTRIES", 3)
    chunks = [data[k:k + 97] for k in range(0, len(data), 97)]
    got = b"".join(t.stream(iter(chunks))).decode("utf-8").splitlines()
    assert len(t.passes[0]) > 50 and any(w.count("_") >= 2 for w in t.passes[0].phrases)
    assert got == want


def test_apply_on_new_text_and_while_reading(tmp_path):
    tab = str(tmp_path / "t.tsv")
    PhraseTable([__import__("fastemb.phrasing", fromlist=["PhrasePass"]).PhrasePass(
        ["new_york", "of_the_best"], np.array([50.0, 20.0]), np.array([7, 6]))], "_", ()).save(tab)
    text = tmp_path / "new.txt"
    text.write_text("i love new york\nnew new york york of the best\nnew\nyork\n", encoding="utf-8")
    out = str(tmp_path / "o.txt")
    phrases(str(text), out, apply=tab)
    assert open(out).read() == "i love new_york\nnew new_york york of the best\nnew\nyork\n"
    from fastemb.vocab import build_vocab
    v = build_vocab(str(text), min_count=1, phrases=tab)
    assert "new_york" in v.words and v.counts[v.words.index("new_york")] == 2 and v.total == 11


BAD_TABLES = {
    "magic": ("new_york\t1.0\t3\n", 1, "not a phrase table"),
    "fields": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\nnew_york\t1.0\n", 5,
               "expected phrase<TAB>score<TAB>count"),
    "score": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\nnew_york\tx\t3\n", 5,
              "is not a number"),
    "count": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\nnew_york\t1.0\t-3\n", 5,
              "not a positive integer"),
    "no_delimiter": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\nnewyork\t1.0\t3\n",
                     5, "not two or more words"),
    "before_pass": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\nnew_york\t1.0\t3\n", 4,
                    "phrase before"),
    "pass_order": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t2\n", 4, "expected '# pass"),
    "duplicate": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\na_b\t1.0\t3\n"
                  "a_b\t2.0\t3\n", 6, "listed twice"),
    "delimiter": ("# fastemb phrases table\n# delimiter\t\n", 2, "delimiter must not be empty"),
    "binary": ("# fastemb phrases table\n# delimiter\t_\n# connector_words\n# pass\t1\na_\xff\t1\t1\n", 5, "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table_refused_naming_file_and_line(tmp_path, case):
    text, line, message = BAD_TABLES[case]
    path = tmp_path / "bad.tsv"
    raw = text.encode("utf-8")
    if case == "binary":
        raw = raw.replace("\xff".encode("utf-8"), b"\xff")
    path.write_bytes(raw)
    with pytest.raises(FileError) as e:
        PhraseTable.load(str(path))
    assert f"{path}:{line}:" in str(e.value) and message in str(e.value)


def test_settings_with_tabs_and_newlines_keep_the_table_readable(tmp_path):
    from fastemb.phrasing import PhrasePass
    path = str(tmp_path / "t.tsv")
    PhraseTable([PhrasePass(["a_b"], np.array([3.0]), np.array([4]))], "_", ("of",),
                {"corpus": "odd\tname\nnew_york\t1\t1"}).save(path)
    t = PhraseTable.load(path)
    assert t.passes[0].phrases == ["a_b"] and t.connector_words == ("of",)


def test_dask_refuses_phrases():
    from fastemb.dask.vocab import corpus_options_of
    with pytest.raises(OptionError, match="phrases"):
        corpus_options_of(None, {"phrases": "t.tsv"})


def test_incomplete_table_refused(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("# fastemb phrases table\n# delimiter\t_\n", encoding="utf-8")
    with pytest.raises(FileError, match="incomplete phrase table"):
        load_table(str(path))


def test_options_checked_before_work(tmp_path):
    with pytest.raises(OptionError, match="threshold"):
        PhrasesOptions(scoring="npmi", threshold=5.0)
    with pytest.raises(OptionError, match="delimiter"):
        PhrasesOptions(delimiter=" ")
    with pytest.raises(OptionError, match="passes"):
        PhrasesOptions(passes=0)
    with pytest.raises(OptionError, match="connector_words"):
        phrases(["a b"], connector_words=["a b"])
    with pytest.raises(FastembError, match="read only once"):
        phrases(iter([["a", "b"]]), str(tmp_path / "o.txt"))


# ------------------------------------------------------------------------------------- CLI
def test_cli_learns_applies_and_trains_with_a_table(kjv_small, tmp_path):
    out, tab = tmp_path / "p.txt", tmp_path / "p.tsv"
    rc, so, err = run_cli("phrases", kjv_small, "-o", out, "--table", tab, "--min-count", 5, "--json", "-q")
    assert rc == 0, err
    t = PhraseTable.load(str(tab))
    assert __import__("json").loads(so)["phrases"] == [len(t.passes[0])] and len(t.passes[0]) > 50
    top = t.passes[0].phrases[0]
    assert top in open(out, encoding="utf-8").read().split()
    rc, so, err = run_cli("vocab", kjv_small, "-o", tmp_path / "v.tsv", "--phrases", tab, "--min-count", 1, "-q")
    assert rc == 0, err
    assert top in {line.split("\t")[0] for line in open(tmp_path / "v.tsv", encoding="utf-8")}


@pytest.mark.parametrize("args,contains", [
    (["phrases", "/nonexistent.txt", "-o", "{tmp}/o.txt"], "no such file"),
    (["phrases", "{corpus}", "-o", "{tmp}/o.txt", "--scoring", "npmi", "--threshold", "3"], "threshold"),
    (["phrases", "{corpus}", "-o", "{tmp}/o.txt", "--apply", "{tmp}/bad.tsv"], "bad.tsv:1:"),
    (["phrases", "{corpus}", "-o", "{tmp}/o.txt", "--apply", "{tmp}/bad.tsv", "--threshold", "3"], "threshold"),
    (["phrases", "-", "-o", "{tmp}/o.txt"], "standard input"),
    (["phrases", "{tmp}/empty.txt", "-o", "{tmp}/o.txt"], "corpus is empty"),
    (["phrases", "{corpus}", "-o", "{tmp}/o.txt", "--delimiter", "a b"], "delimiter"),
    (["vocab", "{corpus}", "-o", "{tmp}/v.tsv", "--phrases", "{tmp}/bad.tsv"], "bad.tsv:1:"),
    (["train", "{corpus}", "-o", "{tmp}/m.h5", "--phrases", "{tmp}/missing.tsv"], "missing.tsv"),
])
def test_cli_one_line_errors(tmp_path, args, contains):
    (tmp_path / "bad.tsv").write_text("hello\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text(" \n\n", encoding="utf-8")
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n", encoding="utf-8")
    argv = [a.format(tmp=tmp_path, corpus=corpus) for a in args]
    rc, so, err = run_cli(*argv, stdin=b"a b\n")
    assert_one_line_error(rc, err, contains=contains)
