import gzip
import os
import subprocess
import sys

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
