"""Back-off n-gram language models in the ARPA text format (KenLM's `lmplz`, SRILM, ...): reading with every
line checked, and scoring sentences with the same events as the NPLM scored with an end-of-sentence word.

    lm = ArpaModel.load("kn5.arpa")
    lp = lm.sentence_log10_probs(["in", "the", "beginning"])   # log10 P of each word and of </s>

The format: a `\\data\\` header of `ngram N=COUNT` lines, then one `\\N-grams:` section per order whose lines
are `log10 P <whitespace> w1 ... wN [<whitespace> log10 back-off]`, then `\\end\\`. A word's probability
given its history h is the longest n-gram's: P(w | h) = P(h' w) · Π back-off(suffixes of h longer than h'),
where h' is the longest suffix of h with (h' w) in the model (Katz back-off; interpolated models such as
modified Kneser-Ney are stored in this form too). A sentence is scored from the context `<s>`, each word then
`</s>`; a word the model does not know is scored as `<unk>` (and counted).

Every number is parsed and checked (finite, log10 P ≤ 0), every section has exactly its declared count,
n-grams are unique, use only words of the unigram section, and the n-1 words before each n-gram's last word are
an n-gram of the order below (so that every back-off weight a score needs is in the model): a damaged or
crafted file is refused with one line naming the file and line.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from fastemb.errors import FastembError, FileError

MAX_ORDER = 16
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_SECTION = re.compile(r"^\\(\d+)-grams:$")
_COUNT = re.compile(r"^ngram (\d+)=(\d+)$")


def _float(text, path, n, what):
    try:
        x = float(text)
    except ValueError:
        raise FileError(f"{path}:{n}: {what} {text[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise FileError(f"{path}:{n}: {what} {text[:40]!r} is not finite")
    return x


class ArpaModel:
    """A back-off n-gram model: `order`, `vocab` (word -> id), and per order a dict from n-gram (a tuple of
    ids) to (log10 P, log10 back-off)."""

    def __init__(self, order, vocab, grams, where="<arpa>"):
        self.order, self.vocab, self.grams, self.where = order, vocab, grams, where
        self.unk = vocab.get(UNK)
        for word in (BOS, EOS):
            if word not in vocab:
                raise FileError(f"{where}: no {word} among the unigrams")
        self.bos, self.eos = vocab[BOS], vocab[EOS]

    @classmethod
    def load(cls, path) -> "ArpaModel":
        from fastemb.files import read_text_lines
        path = os.fspath(path)
        lines = read_text_lines(path, "ARPA file")
        declared, vocab, grams = {}, {}, []
        state, n_sec, want = "start", 0, 0
        for n, raw in lines:
            line = raw.strip()
            if state == "start":
                if not line:
                    continue
                if line != "\\data\\":
                    raise FileError(f"{path}:{n}: an ARPA file starts with \\data\\ (got {line[:40]!r})")
                state = "header"
            elif state == "header":
                if not line:
                    continue
                m = _COUNT.match(line)
                if m:
                    order, count = int(m.group(1)), int(m.group(2))
                    if order != len(declared) + 1 or order > MAX_ORDER:
                        raise FileError(f"{path}:{n}: ngram {order}= out of order (expected ngram "
                                        f"{len(declared) + 1}=, at most {MAX_ORDER})")
                    if count < 1 or count > 1 << 34:
                        raise FileError(f"{path}:{n}: ngram {order}={count}: the count must be positive")
                    declared[order] = count
                    continue
                if not declared:
                    raise FileError(f"{path}:{n}: expected ngram 1=COUNT after \\data\\ (got {line[:40]!r})")
                state = "section"
            if state == "section":
                if not line:
                    continue
                m = _SECTION.match(line)
                expected = n_sec + 1
                if line == "\\end\\" and n_sec == len(declared):
                    state = "end"
                    continue
                if not m or int(m.group(1)) != expected or expected > len(declared):
                    what = f"\\{expected}-grams:" if expected <= len(declared) else "\\end\\"
                    raise FileError(f"{path}:{n}: expected {what} (got {line[:40]!r})")
                n_sec, want = expected, declared[expected]
                table = {}
                grams.append(table)
                state = "grams" if want else "section"
                continue
            if state == "grams":
                if not line:
                    raise FileError(f"{path}:{n}: blank line inside the {n_sec}-grams: {len(table):,} of "
                                    f"{want:,} read")
                fields = line.split()
                if len(fields) not in (n_sec + 1, n_sec + 2):
                    raise FileError(f"{path}:{n}: a {n_sec}-gram line has log10 P, {n_sec} word(s) and an "
                                    f"optional back-off ({len(fields)} fields)")
                logp = _float(fields[0], path, n, "log10 P")
                if logp > 0:
                    raise FileError(f"{path}:{n}: log10 P {logp} is above 0")
                backoff = _float(fields[n_sec + 1], path, n, "back-off") if len(fields) == n_sec + 2 else 0.0
                words = fields[1:n_sec + 1]
                if n_sec == 1:
                    if words[0] in vocab:
                        raise FileError(f"{path}:{n}: the unigram {words[0][:40]!r} appears twice")
                    vocab[words[0]] = len(vocab)
                    key = (vocab[words[0]],)
                else:
                    try:
                        key = tuple(vocab[w] for w in words)
                    except KeyError as e:
                        raise FileError(f"{path}:{n}: {e.args[0][:40]!r} is not among the unigrams") from None
                    if key[:-1] not in grams[n_sec - 2]:
                        raise FileError(f"{path}:{n}: its context {' '.join(words[:-1])[:60]!r} is not a "
                                        f"{n_sec - 1}-gram of the model")
                    if key in table:
                        raise FileError(f"{path}:{n}: the {n_sec}-gram {' '.join(words)[:60]!r} appears twice")
                table[key] = (logp, backoff)
                if len(table) == want:
                    state = "section"
                continue
            if state == "end" and line:
                raise FileError(f"{path}:{n}: text after \\end\\ ({line[:40]!r})")
        if state != "end":
            what = {"start": "no \\data\\", "header": "no n-gram sections", "grams":
                    f"the {n_sec}-grams stop at {len(grams[-1]) if grams else 0:,} of {want:,}"}.get(state,
                                                                                              "no \\end\\")
            raise FileError(f"{path}: truncated ARPA file ({what})")
        return cls(len(declared), vocab, grams, path)

    def ids(self, words):
        """Ids of words (unknown ones as <unk>, or -1 when the model has none) and how many were unknown."""
        out, unknown = [], 0
        for w in words:
            i = self.vocab.get(w)
            if i is None:
                unknown += 1
                i = self.unk if self.unk is not None else -1
            out.append(i)
        return out, unknown

    def log10_prob(self, history, w) -> float:
        """log10 P(w | history) by back-off (history: a tuple of ids, the last order-1 used)."""
        if w < 0:
            raise FastembError(f"{self.where} has no {UNK}: it cannot score a word outside its vocabulary")
        h = tuple(history[max(0, len(history) - self.order + 1):]) if self.order > 1 else ()
        penalty = 0.0
        for k in range(len(h), -1, -1):
            ctx = h[len(h) - k:]
            hit = self.grams[k].get(ctx + (w,))
            if hit is not None:
                return hit[0] + penalty
            if k:
                penalty += self.grams[k - 1].get(ctx, (0.0, 0.0))[1]
        raise FastembError(f"{self.where}: word id {w} has no unigram")  # cannot happen: ids come from vocab

    def sentence_log10_probs(self, words, eos=True) -> np.ndarray:
        """log10 P of each word of a sentence (a list of words) from the context <s>, and of </s> with eos."""
        ids, _ = self.ids(words)
        hist, out = [self.bos], []
        for w in ids + ([self.eos] if eos else []):
            out.append(self.log10_prob(hist, w))
            hist.append(w)
        return np.asarray(out, np.float64)

    def score_lines(self, lines, eos=True) -> dict:
        """Perplexity of sentences (lists of words): log10 P per token, tokens, unknown words."""
        lps, unknown, words = [], 0, 0
        for s in lines:
            lps.append(self.sentence_log10_probs(s, eos))
            unknown += self.ids(s)[1]
            words += len(s)
        lp = np.concatenate(lps) if lps else np.zeros(0)
        if not len(lp):
            raise FastembError("no tokens to score")
        return {"perplexity": float(10 ** (-lp.mean())), "tokens": len(lp), "words": words,
                "unknown": unknown, "eos": eos, "log10_probs": lp}


def best_mixture_weight(lp_a, lp_b, iterations=200, tol=1e-10) -> float:
    """The weight λ maximising Σ log(λ·P_a + (1 − λ)·P_b) over tokens (natural log-probabilities of the same
    events under two models), by EM (the likelihood is concave in λ)."""
    a, b = np.asarray(lp_a, np.float64), np.asarray(lp_b, np.float64)
    if a.shape != b.shape or not len(a):
        raise FastembError("the two models must score the same, non-empty token sequence")
    lam = 0.5
    for _ in range(iterations):
        m = np.maximum(a, b)
        pa, pb = lam * np.exp(a - m), (1 - lam) * np.exp(b - m)
        new = float((pa / (pa + pb)).mean())
        if abs(new - lam) < tol:
            return new
        lam = new
    return lam


def mixture_log_probs(lp_a, lp_b, weight) -> np.ndarray:
    """log(λ·P_a + (1 − λ)·P_b) per token, from natural log-probabilities."""
    a, b = np.asarray(lp_a, np.float64), np.asarray(lp_b, np.float64)
    if weight <= 0:
        return b.copy()
    if weight >= 1:
        return a.copy()
    return np.logaddexp(a + math.log(weight), b + math.log1p(-weight))


def aligned_log_probs(lm, arpa, text, unk=None):
    """Natural log-probabilities of the same events (each sentence's words, then </s>) under an NPLM
    (fastemb.LanguageModel trained with the </s> word) and an ArpaModel: (nplm, n-gram, nplm result)."""
    sents = lm.sentences_of(text)
    r = lm.score_events(sents, eos=True, unk=unk)
    if r["dropped"]:
        raise FastembError(f"{r['dropped']:,} words of the text are outside the language model's vocabulary: "
                           f"give --unk WORD (the model's unknown word) so both models score every word")
    ng = np.concatenate([arpa.sentence_log10_probs(s) for s in sents]) * math.log(10)
    if len(ng) != len(r["log_probs"]):  # cannot happen: one event per word and one </s> per sentence
        raise FastembError("the two models scored different numbers of events")
    return r["log_probs"], ng, r


def interpolate(lm, arpa, text, valid=None, weight=None, unk=None) -> dict:
    """Perplexities of an NPLM, an ARPA n-gram model and their linear interpolation λ·P_nplm + (1 − λ)·P_ngram
    on `text`; λ is `weight` or, with `valid` (a text), the one that maximises the likelihood of the
    validation text (EM), as Bengio et al. chose theirs."""
    if weight is None and valid is None:
        raise FastembError("give the mixture weight or a validation text to choose it on")
    if weight is None:
        a, b, _ = aligned_log_probs(lm, arpa, valid, unk)
        weight = best_mixture_weight(a, b)
    elif not 0 <= weight <= 1:
        from fastemb.errors import OptionError
        raise OptionError("weight", f"must be between 0 and 1 (got {weight})")
    a, b, r = aligned_log_probs(lm, arpa, text, unk)
    mix = mixture_log_probs(a, b, weight)
    return {"weight": float(weight), "nplm": math.exp(-a.mean()), "ngram": math.exp(-b.mean()),
            "mixture": math.exp(-mix.mean()), "tokens": len(a), "unknown": r["unknown"],
            "unknown_rate": r["unknown_rate"], "eos": True, "order": arpa.order, "log_probs": mix}
