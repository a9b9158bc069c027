"""Intrinsic evaluation: word similarity (Spearman) and analogies (3CosAdd / 3CosMul), batched."""
from __future__ import annotations

import numpy as np

from fastemb.errors import FastembError, FileError

ANALOGY_RESTRICT = 30_000   # word2vec's compute-accuracy convention


# The evaluation sets fastemb ships as package data (sources and licences: fastemb/data/README.md).
DATASETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "questions-words": "questions-words.txt"}


def dataset(name) -> str:
    """The path of a shipped evaluation set: 'wordsim353', 'simlex999' or 'questions-words'."""
    import os
    if name not in DATASETS:
        raise FastembError(f"no evaluation set {name!r} is shipped (one of {', '.join(DATASETS)})")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", DATASETS[name])


def _resolve(path):
    """A file path, or the name of a shipped set when no such file exists."""
    import os
    return dataset(path) if isinstance(path, str) and path in DATASETS and not os.path.exists(path) else path


def default_sets():
    """The shipped evaluation sets: ([similarity files], [analogy files])."""
    return [dataset("wordsim353"), dataset("simlex999")], [dataset("questions-words")]


def word_lookup(emb, word):
    """The row of `word`, or of its lower-case form, or None."""
    if word in emb.index:
        return emb.index[word]
    return emb.index.get(word.lower())


_lookup = word_lookup


def read_pairs(path):
    """Similarity file: `word1 word2 score` per line (tabs or spaces), '#' comments and a header skipped."""
    from fastemb.files import read_text_lines
    path = _resolve(path)
    pairs = []
    for n, line in read_text_lines(path, "similarity file"):
        parts = line.split()
        if not parts or line.startswith("#"):
            continue
        if len(parts) < 3:
            raise FileError(f"{path}:{n}: expected 'word1 word2 score', got {line.strip()[:60]!r}")
        try:
            score = float(parts[2])
        except ValueError:
            if pairs:
                raise FileError(f"{path}:{n}: the score {parts[2][:20]!r} is not a number") from None
            continue  # a header line
        if not np.isfinite(score):
            raise FileError(f"{path}:{n}: the score is not finite")
        pairs.append((parts[0], parts[1], score))
    return pairs


def similarity(emb, path) -> dict:
    """Spearman rho between cosine similarity and human scores on the pairs both words of which have a vector
    (a subword model gives words outside its vocabulary vectors from their n-grams: `oov_pairs` counts them)."""
    from scipy.stats import spearmanr
    pairs = read_pairs(path)
    unit = emb.normalized()
    model, human = [], []
    from_subwords = 0
    for a, b, score in pairs:
        ia, ib = _lookup(emb, a), _lookup(emb, b)
        if ia is not None and ib is not None:
            model.append(float(unit[ia] @ unit[ib]))
            human.append(score)
            continue
        va, vb = _unit_vector(emb, unit, a, ia), _unit_vector(emb, unit, b, ib)
        if va is None or vb is None:
            continue
        model.append(float(va @ vb))
        human.append(score)
        from_subwords += 1
    rho = float(spearmanr(model, human).correlation) if len(model) > 2 else float("nan")
    out = {"file": str(path), "spearman": rho, "pairs": len(pairs), "covered": len(model),
           "coverage": len(model) / max(len(pairs), 1)}
    if emb.subwords is not None:
        out["oov_pairs"] = from_subwords  # pairs with a word outside the vocabulary, answered by its n-grams
    return out


def _unit_vector(emb, unit, word, i):
    """A word's unit vector: its row, or (a subword model) the vector of its n-grams; None when it has none."""
    if i is not None:
        return unit[i]
    if emb.subwords is None:
        return None
    v = emb.subwords.vector(word)
    if v is None:
        v = emb.subwords.vector(word.lower())
    if v is None:
        return None
    return v / max(float(np.linalg.norm(v)), 1e-12)


def read_analogies(path):
    """questions-words.txt format: ': section' headers, then `a b c d` lines."""
    from fastemb.files import read_text_lines
    path = _resolve(path)
    sections, section = [], None
    for n, line in read_text_lines(path, "analogy file"):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == ":":
            section = " ".join(parts[1:])
            sections.append((section, []))
        elif len(parts) == 4:
            if section is None:
                sections.append(("questions", []))
                section = "questions"
            sections[-1][1].append(tuple(p.lower() for p in parts))
        else:
            raise FileError(f"{path}:{n}: expected ': section' or four words, got {line.strip()[:60]!r}")
    return sections


def analogy_scores(unit, abc, method):
    """Scores of every candidate (rows of `unit`) for questions abc [q, 3, dim] (unit vectors)."""
    a, b, c = abc[:, 0], abc[:, 1], abc[:, 2]
    if method == "3cosadd":
        return (b - a + c) @ unit.T
    if method == "3cosmul":  # Levy & Goldberg 2014: cosines shifted to [0, 1], eps = 0.001
        sa = (a @ unit.T + 1) / 2
        sb = (b @ unit.T + 1) / 2
        sc = (c @ unit.T + 1) / 2
        return sb * sc / (sa + 1e-3)
    raise FastembError(f"unknown analogy method {method!r} (3cosadd or 3cosmul)")


def analogy(emb, path, restrict_vocab=ANALOGY_RESTRICT, methods=("3cosadd", "3cosmul")) -> dict:
    """Accuracy per section and overall; questions with a word outside the `restrict_vocab` most frequent
    words are not counted (coverage says how many were)."""
    n = min(restrict_vocab, len(emb)) if restrict_vocab else len(emb)
    unit = emb.normalized()[:n]
    index = {w: i for i, w in enumerate(emb.words[:n])}
    sections = read_analogies(path)
    out = {"file": str(path), "restrict_vocab": n, "sections": {}}
    totals = {m: 0 for m in methods}
    seen = covered = 0
    for name, questions in sections:
        ids = [[index.get(w) for w in q] for q in questions]
        ok = np.array([q for q in ids if None not in q], dtype=np.int64).reshape(-1, 4)
        seen += len(questions)
        covered += len(ok)
        sec = {"questions": len(questions), "covered": len(ok)}
        for m in methods:
            correct = 0
            for b0 in range(0, len(ok), 512):
                q = ok[b0:b0 + 512]
                scores = analogy_scores(unit, unit[q[:, :3]], m)
                rows = np.arange(len(q))
                for j in range(3):
                    scores[rows, q[:, j]] = -np.inf
                correct += int(np.sum(np.argmax(scores, axis=1) == q[:, 3]))
            sec[m] = correct / len(ok) if len(ok) else float("nan")
            totals[m] += correct
        out["sections"][name] = sec
    for m in methods:
        out[m] = totals[m] / covered if covered else float("nan")
    out.update(questions=seen, covered=covered, coverage=covered / max(seen, 1))
    return out
