"""ARPA back-off models (fastemb/arpa.py) against a hand-computed model, crafted files refused, and the NPLM's
event scoring: `eval --text --eos/--unk/--per-token` (the mean per-token log-probability gives the reported
perplexity) and `--mix` (weight 0 or 1 gives back each model's perplexity; the chosen weight is the best)."""
import collections
import math

import numpy as np
import pytest

import fastemb
from fastemb.arpa import ArpaModel, best_mixture_weight, interpolate, mixture_log_probs
from fastemb.errors import FastembError, FileError
from conftest import assert_one_line_error, run_cli, sample_lines

# A bigram model written by hand: P(w) for the unigrams, P(b | a) = 10^-0.3 for the one bigram "a b", and
# back-off(a) = 10^-0.2, so P(c | a) = 10^-0.2 · P(c) and P(a | b) = P(a) (b has no back-off: 10^0).
HAND = """
\\data\\
ngram 1=6
ngram 2=3

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.1
-0.5\t</s>
-0.7\ta\t-0.2
-0.9\tb
-1.2\tc

\\2-grams:
-0.3\ta b
-0.4\t<s> a
-0.6\tb </s>

\\end\\
"""


@pytest.fixture()
def hand(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND, encoding="utf-8")
    return ArpaModel.load(path)


def test_arpa_back_off_by_hand(hand):
    v = hand.vocab
    assert hand.order == 2 and len(v) == 6
    assert hand.log10_prob((v["a"],), v["b"]) == pytest.approx(-0.3)          # a seen bigram
    assert hand.log10_prob((v["a"],), v["c"]) == pytest.approx(-0.2 - 1.2)    # back-off(a) · P(c)
    assert hand.log10_prob((v["b"],), v["a"]) == pytest.approx(-0.7)          # no back-off weight: 1
    assert hand.log10_prob((v["<s>"],), v["c"]) == pytest.approx(-0.1 - 1.2)
    # "a b zzz": <s> a (bigram), a b (bigram), b <unk> (back-off 0 + P(<unk>)), <unk> </s> (P(</s>))
    lp = hand.sentence_log10_probs(["a", "b", "zzz"])
    np.testing.assert_allclose(lp, [-0.4, -0.3, -1.0, -0.5])
    np.testing.assert_allclose(hand.sentence_log10_probs(["a", "b"], eos=False), [-0.4, -0.3])
    r = hand.score_lines([["a", "b", "zzz"]])
    assert r["unknown"] == 1 and r["tokens"] == 4
    assert r["perplexity"] == pytest.approx(10 ** ((0.4 + 0.3 + 1.0 + 0.5) / 4))


def test_arpa_trigram_at_a_sentence_start(tmp_path):
    """A history shorter than order − 1 (the sentence start) is used whole: "<s> a b" is a trigram here."""
    text = HAND.replace("ngram 2=3\n", "ngram 2=3\nngram 3=1\n").replace("\\end\\", "\\3-grams:\n-0.05\t<s> a b\n\n\\end\\")
    path = tmp_path / "tri.arpa"
    path.write_text(text, encoding="utf-8")
    m = ArpaModel.load(path)
    assert m.order == 3
    np.testing.assert_allclose(m.sentence_log10_probs(["a", "b", "c"]), [-0.4, -0.05, -1.2, -0.5])


CRAFTED = [
    ("no header", lambda t: t.replace("\\data\\", "data"), "starts with \\data\\"),
    ("count", lambda t: t.replace("ngram 2=3", "ngram 2=4"), "3 of 4"),
    ("order", lambda t: t.replace("ngram 2=3", "ngram 3=3"), "out of order"),
    ("nan", lambda t: t.replace("-0.3\ta b", "nan\ta b"), "not finite"),
    ("positive", lambda t: t.replace("-0.3\ta b", "0.5\ta b"), "above 0"),
    ("text", lambda t: t.replace("-0.3\ta b", "x\ta b"), "not a number"),
    ("fields", lambda t: t.replace("-0.3\ta b", "-0.3\ta b c d"), "fields"),
    ("unknown word", lambda t: t.replace("-0.3\ta b", "-0.3\ta q"), "not among the unigrams"),
    ("duplicate", lambda t: t.replace("-0.6\tb </s>", "-0.6\ta b"), "appears twice"),
    ("duplicate unigram", lambda t: t.replace("-1.2\tc", "-1.2\ta"), "appears twice"),
    ("no end", lambda t: t.replace("\\end\\", ""), "truncated"),
    ("after end", lambda t: t + "junk\n", "after \\end\\"),
    ("section", lambda t: t.replace("\\2-grams:", "\\3-grams:"), "expected \\2-grams:"),
    ("no eos", lambda t: t.replace("</s>", "s"), "no </s>"),
]


@pytest.mark.parametrize("what,edit,message", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_arpa_is_refused(tmp_path, what, edit, message):
    path = tmp_path / "bad.arpa"
    path.write_text(edit(HAND), encoding="utf-8")
    with pytest.raises(FileError, match=None) as e:
        ArpaModel.load(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_mixture_weight_is_the_maximum_likelihood_one():
    rng = np.random.default_rng(0)
    a, b = np.log(rng.random(500)), np.log(rng.random(500))
    w = best_mixture_weight(a, b)
    grid = np.linspace(0, 1, 1001)
    ll = [mixture_log_probs(a, b, g).sum() for g in grid]
    assert abs(w - grid[int(np.argmax(ll))]) < 2e-3
    np.testing.assert_array_equal(mixture_log_probs(a, b, 0.0), b)
    np.testing.assert_array_equal(mixture_log_probs(a, b, 1.0), a)


# -------------------------------------------------------------------- an NPLM with </s> and a real ARPA file
def _corpus(n_lines, vocab_size):
    lines = [ln.split() for ln in sample_lines(n_lines)]
    counts = collections.Counter(w for s in lines for w in s)
    keep = {w for w, _ in counts.most_common(vocab_size)}
    return [[w if w in keep else "<oov>" for w in s] for s in lines]


def _write_arpa(path, train):
    """A correct back-off bigram model of `train` (absolute discounting D = 0.5, unigrams add-one over the
    vocabulary and </s>), written as ARPA with its back-off weights computed so every P(· | v) sums to 1."""
    uni, bi = collections.Counter(), collections.Counter()
    for s in train:
        toks = ["<s>"] + s + ["</s>"]
        uni.update(toks[1:])
        bi.update(zip(toks[:-1], toks[1:]))
    words = sorted(uni) + ["<unk>"]
    total = sum(uni.values()) + len(words)
    p1 = {w: (uni[w] + 1) / total for w in words}
    by_ctx = collections.defaultdict(dict)
    for (v, w), c in bi.items():
        by_ctx[v][w] = c
    p2, bo = {}, {}
    for v, row in by_ctx.items():
        n = sum(row.values())
        for w, c in row.items():
            p2[v, w] = (c - 0.5) / n
        seen = sum(p2[v, w] for w in row)
        bo[v] = (1 - seen) / (1 - sum(p1[w] for w in row))
    lines = ["\\data\\", f"ngram 1={len(words) + 1}", f"ngram 2={len(p2)}", "", "\\1-grams:"]
    lines.append(f"-99\t<s>\t{math.log10(bo['<s>']):.10f}")
    for w in words:
        lines.append(f"{math.log10(p1[w]):.10f}\t{w}" + (f"\t{math.log10(bo[w]):.10f}" if w in bo else ""))
    lines += ["", "\\2-grams:"] + [f"{math.log10(p):.10f}\t{v} {w}" for (v, w), p in p2.items()] + ["", "\\end\\"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmmix")
    data = _corpus(1500, 150)
    train, valid, test = data[:1300], data[1300:1400], data[1400:]
    (d / "train.txt").write_text("".join(" ".join(s) + " </s>\n" for s in train), encoding="utf-8")
    for name, part in (("valid.txt", valid), ("test.txt", test)):
        (d / name).write_text("".join(" ".join(s) + "\n" for s in part), encoding="utf-8")
    _write_arpa(d / "bigram.arpa", train)
    fastemb.train(str(d / "train.txt"), "nplm", softmax="full", min_count=1, dim=8, hidden=16, context=2, epochs=1,
                  threads=1, seed=1, output=str(d / "lm.h5"))
    return d


def test_hand_written_bigram_is_normalised(lm_files):
    m = ArpaModel.load(lm_files / "bigram.arpa")
    targets = [i for w, i in m.vocab.items() if w != "<s>"]
    for v in ("<s>", "the", "lord", "<oov>"):
        total = sum(10 ** m.log10_prob((m.vocab[v],), w) for w in targets)
        assert total == pytest.approx(1.0, abs=1e-9), v


def test_per_token_log_probs_give_the_reported_perplexity(lm_files, tmp_path):
    out = tmp_path / "tokens.tsv"
    rc, stdout, err = run_cli("eval", lm_files / "lm.h5", "--text", lm_files / "test.txt", "--eos", "--unk", "<oov>",
                              "--per-token", out, "--json")
    assert rc == 0, err
    import json
    r = json.loads(stdout)["perplexity"][0]
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == r["tokens"] == r["words"] + 100          # every word and one </s> per line
    assert sum(row[1] == "</s>" for row in rows) == 100 and r["eos"] is True
    mean = np.mean([float(row[2]) for row in rows])
    assert 10 ** -mean == pytest.approx(r["perplexity"], rel=1e-5)
    assert r["unknown"] == 0 and r["unknown_rate"] == 0
    # without --unk a word outside the vocabulary is dropped and counted
    lm = fastemb.LanguageModel.load(lm_files / "lm.h5")
    s = lm.score_events("the lord zzzq said", eos=True)
    assert s["unknown"] == 1 and s["dropped"] == 1 and s["tokens"] == 4 and s["unknown_rate"] == 0.25
    with pytest.raises(FastembError, match="no end-of-sentence word"):
        fastemb.LanguageModel(fastemb.train(str(lm_files / "test.txt"), "nplm", min_count=1, dim=4, hidden=4,
                                            epochs=1, threads=1)).score_events("the lord", eos=True)


def test_mixture_weights_0_and_1_give_each_model(lm_files):
    lm = fastemb.LanguageModel.load(lm_files / "lm.h5")
    arpa = ArpaModel.load(lm_files / "bigram.arpa")
    test = str(lm_files / "test.txt")
    nplm_alone = lm.score_events(test, eos=True, unk="<oov>")["perplexity"]
    ngram_alone = arpa.score_lines(lm.sentences_of(test))["perplexity"]
    one = interpolate(lm, arpa, test, weight=1.0, unk="<oov>")
    zero = interpolate(lm, arpa, test, weight=0.0, unk="<oov>")
    assert one["mixture"] == pytest.approx(nplm_alone, rel=1e-12) and one["nplm"] == pytest.approx(nplm_alone)
    assert zero["mixture"] == pytest.approx(ngram_alone, rel=1e-9) and zero["ngram"] == pytest.approx(ngram_alone)
    chosen = interpolate(lm, arpa, test, valid=str(lm_files / "valid.txt"), unk="<oov>")
    assert 0 < chosen["weight"] < 1 and chosen["mixture"] < min(nplm_alone, ngram_alone)


@pytest.mark.slow
def test_eval_mix_cli_and_crafted_arpa_in_one_line(lm_files, tmp_path):
    rc, out, err = run_cli("eval", lm_files / "lm.h5", "--text", lm_files / "test.txt", "--unk", "<oov>",
                           "--mix", lm_files / "bigram.arpa", "--mix-valid", lm_files / "valid.txt")
    assert rc == 0, err
    assert "mixture, weight" in out and "2-gram (ARPA)" in out and "yes" in out
    bad = tmp_path / "bad.arpa"
    bad.write_text(HAND.replace("-0.3\ta b", "inf\ta b"), encoding="utf-8")
    rc, out, err = run_cli("eval", lm_files / "lm.h5", "--text", lm_files / "test.txt", "--unk", "<oov>",
                           "--mix", bad, "--mix-weight", "0.5")
    assert_one_line_error(rc, err, contains="not finite")
    novel = tmp_path / "novel.txt"
    novel.write_text("the lord zzzq said\n", encoding="utf-8")
    rc, out, err = run_cli("eval", lm_files / "lm.h5", "--text", novel, "--mix", lm_files / "bigram.arpa",
                           "--mix-weight", "0.5")
    assert_one_line_error(rc, err, contains="--unk")
