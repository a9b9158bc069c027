import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = os.path.join(ROOT, "corpora")
SAMPLE = os.path.join(CORPORA, "kjv.txt.gz")


def sample_lines(n):
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


@pytest.fixture(scope="session")
def kjv_small(tmp_path_factory):
    """The first 2,000 verses of the shipped sample corpus as plain text (~60k tokens)."""
    path = tmp_path_factory.mktemp("corpus") / "kjv2000.txt"
    path.write_text("".join(sample_lines(2000)), encoding="utf-8")
    return str(path)


def run_cli(*args, stdin=None, env=None):
    """Run `python -m fastemb ARGS` in a fresh process: (returncode, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "fastemb", *map(str, args)], input=stdin, capture_output=True,
                       env={**os.environ, **(env or {})}, cwd=ROOT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def assert_one_line_error(rc, err, *, expected_rc=1, contains=None):
    assert rc == expected_rc, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("fastemb: ")]
    assert len(lines) == 1, err
    if contains:
        assert contains in lines[0], lines[0]


# Common Bible words of six categories, for quality floors on the shipped corpus (tests/test_quality_floors.py)
CATEGORIES = {
    "metal": "gold silver brass iron tin lead".split(),
    "animal": "sheep oxen goats camels asses horses bullocks lambs rams".split(),
    "number": "two three four five six seven eight nine ten twenty thirty forty fifty hundred thousand".split(),
    "kin": "father mother brother sister son daughter wife husband".split(),
    "place": "jerusalem samaria bethel damascus egypt babylon hebron gilgal shechem".split(),
    "body": "hand eyes head feet mouth heart face ear".split(),
}


def category_purity(emb) -> float:
    """Share of the listed words whose nearest other listed word (cosine) shares its category."""
    words = [(w, c) for c, ws in CATEGORIES.items() for w in ws]
    unit = emb.normalized()[[emb.index[w] for w, _ in words]]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1)
    return float(np.mean([words[j][1] == c for (_, c), j in zip(words, nearest)]))
