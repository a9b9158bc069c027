"""Benchmark corpora: the real English corpus (Debian's dict-gcide + bible-kjv-text + wordnet-base,
following the recipe of the project's shared/corpus so figures stay comparable) and a synthetic Zipfian
generator for scaling curves."""
from __future__ import annotations

import collections
import glob
import gzip
import os
import random
import re
import subprocess
import sys
import tempfile
import unicodedata

import numpy as np

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache")
PACKAGES = ["dict-gcide", "bible-kjv-text", "bible-kjv", "wordnet-base"]
TOKEN_RE = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def tokenize(text):
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return TOKEN_RE.findall(text.lower().replace("\u2019", "'").replace("`", "'"))


# GCIDE markup: character entities, headword pronunciations, etymologies, citations, labels.
NAMED = {"imac": "i", "aum": "a", "eth": "th", "thorn": "th", "yogh": "y", "ng": "ng", "asl": "a", "udd": "u",
         "add": "a", "root": "", "sect": " ", "deg": " degrees ", "oo^": "oo", "=oo": "oo", "=ae": "ae",
         "ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "th": "th", "=oe": "oe", "cced": "c", "ccedil": "c",
         "hand": " ", "frac12": " ", "frac14": " ", "frac34": " ", "frac13": " ", "frac23": " ", "prime": "'",
         "minus": "-", "times": " ", "divide": " ", "ddagger": " ", "dagger": " ", "pound": " pound ",
         "cent": " cent ", "middot": " "}
ENT = re.compile(r"\[([`'\"=\-~^.,*]?)([A-Za-z]{1,2})([\^]?)\]")
NAMED_RE = re.compile(r"\[(" + "|".join(re.escape(k) for k in sorted(NAMED, key=len, reverse=True)) + r")\]")
BRACKET = re.compile(r"\[[^\[\]]*\]")
PRON = re.compile(r"\\[^\\\n]*\\")
CITE = re.compile(r"--\s?[A-Z0-9][^\n]*")
DOMAIN = re.compile(r"\((?:[A-Z][A-Za-z]*\.?\s*(?:&\s*)?)+\)")
SENSE = re.compile(r"(?m)^\s*(?:\d+\.|\([a-z]\))\s+")
LETTER = re.compile(r"\((?:[a-z]|[ivx]+)\)")
LABEL = re.compile(r"(?m)^\s*(?:Syn|Note|Usage|Specifically|Hence|See)\s*:")
POS_WORDS = (r"n|v|t|i|a|adj|adv|prep|conj|interj|pron|p|pr|pl|sing|imp|vb|superl|compar|"
             r"obs|fem|masc|prop|pref|suff|suffix|prefix|abbr|adjective|noun|verb|obj|poss|"
             r"dat|nom|interrog|rel|indef|def|art|num|ordinal|pers|dem|aux|imper|inf|subj")
POS = re.compile(r"^[\s,;]*(?:(?:" + POS_WORDS + r")\.?(?=[\s,;.&]|$)[\s,;&]*)+")
SYLL = re.compile(r"(?<=[A-Za-z])[*\"`](?=[A-Za-z])")
HEAD = re.compile(r"^([^\\\n]*?)\s*\\[^\\\n]*\\\s*(?:\([^()\n]*\))?")


def _gcide_entry(text):
    text = NAMED_RE.sub(lambda m: NAMED[m.group(1)], text)
    text = ENT.sub(lambda m: m.group(2), text)
    head = ""
    m = HEAD.match(text)
    if m:
        head, text = m.group(1), text[m.end():]
    prev = None
    while prev != text:
        prev, text = text, BRACKET.sub(" ", text)
    text = PRON.sub(" ", text.replace("[", " ").replace("]", " "))
    text = POS.sub("", SYLL.sub("", text), count=1)
    out = []
    for i, para in enumerate(re.split(r"\n\s*\n", text)):
        for rx in (CITE, LABEL, SENSE, DOMAIN, LETTER):
            para = rx.sub(" ", para)
        para = para.replace("{", " ").replace("}", " ")
        toks = tokenize((head + " " + para) if i == 0 and head else para)
        if toks:
            out.append(toks)
    return out


def _gcide(root):
    with gzip.open(os.path.join(root, "usr/share/dictd/gcide.dict.dz"), "rb") as f:
        data = f.read()
    spans = set()
    with open(os.path.join(root, "usr/share/dictd/gcide.index"), encoding="utf-8", errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 3 and not p[0].startswith("00-") and not p[0].startswith("00database"):
                num = lambda s: sum(B64[c] * 64 ** k for k, c in enumerate(reversed(s)))  # noqa: E731
                spans.add((num(p[1]), num(p[2])))
    out = []
    for off, ln in sorted(spans):
        out.extend(_gcide_entry(data[off:off + ln].decode("utf-8", errors="replace")))
    return out


def _bible(root):
    res = subprocess.run([os.path.join(root, "usr/bin/bible"), "-f", "-p", os.path.join(root, "usr/lib"),
                          "Gen1:1-Rev22:21"], check=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out = []
    for line in res.stdout.decode("utf-8", errors="replace").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and (toks := tokenize(parts[1])):
            out.append(toks)
    return out


def _wordnet(root):
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(root, "usr/share/wordnet/data." + pos), encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("  ") and "|" in line and (toks := tokenize(line.split("|", 1)[1])):
                    out.append(toks)
    return out


def english_corpus(cache=CACHE, seed=12345, prefix_tokens=1_000_000, quiet=False):
    """Paths of en.txt (5.96M tokens) and en1m.txt (its first million), built once and cached."""
    full, prefix = os.path.join(cache, "en.txt"), os.path.join(cache, "en1m.txt")
    if os.path.exists(full) and os.path.exists(prefix):
        return full, prefix
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        root = os.path.join(work, "root")
        for deb in sorted(glob.glob(os.path.join(work, "*.deb"))):
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        lines = _gcide(root) + _bible(root) + _wordnet(root)
    random.Random(seed).shuffle(lines)
    for path, limit in ((full, None), (prefix, prefix_tokens)):
        done = 0
        with open(path + ".part", "w") as f:
            for toks in lines:
                if limit is not None and done >= limit:
                    break
                f.write(" ".join(toks) + "\n")
                done += len(toks)
        os.replace(path + ".part", path)
    if not quiet:
        stats(full)
    return full, prefix


def stats(path):
    counts = collections.Counter()
    with open(path) as f:
        for line in f:
            counts.update(line.split())
    n = sum(counts.values())
    v5 = sum(1 for c in counts.values() if c >= 5)
    print(f"{path}: {n:,} tokens, {len(counts):,} types, {v5:,} with count >= 5", file=sys.stderr)
    return {"tokens": n, "types": len(counts), "types_min5": v5}


def zipf_tokens(tokens, vocab=100_000, exponent=1.0, seed=0, sentence=20, block=1 << 20):
    """Yields byte blocks of a synthetic corpus: word ranks drawn from p(k) ∝ k^-exponent, sentences of
    `sentence` tokens. Deterministic for a seed; O(vocab + block) memory whatever `tokens` is."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(p / p.sum())
    words = [f"w{k}".encode() for k in range(vocab)]
    done = 0
    while done < tokens:
        n = min(block, tokens - done)
        n -= n % sentence if n > sentence else 0
        n = max(n, 1)
        ids = np.searchsorted(cdf, rng.random(n), side="right").clip(max=vocab - 1)
        rows = ids.reshape(-1, min(sentence, n)) if n % min(sentence, n) == 0 else ids.reshape(1, -1)
        yield b"".join(b" ".join([words[i] for i in row]) + b"\n" for row in rows.tolist())
        done += n


def write_zipf(path, tokens, **kw):
    with open(path + ".part", "wb") as f:
        for chunk in zipf_tokens(tokens, **kw):
            f.write(chunk)
    os.replace(path + ".part", path)
    return path
