"""Every `bash` and `python` block of README.md and then of the docs/ pages runs, in order, in one scratch directory with the shipped
corpora: the first thing a new user tries keeps working. The README's two setup commands are what CI runs
(`pip install ...` is already done here; the test suite does not run itself)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def readme_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return [(lang, code) for lang, code in BLOCK.findall(f.read())]


def runnable_bash(code):
    """Each command line, with the setup steps CI already did taken out."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"^pip install [^&]*&&\s*", "", line.rstrip())  # indentation kept (here-documents)
        if not line.strip() or line.startswith("pip install") or "python -m pytest" in line:
            continue
        lines.append(line)
    return "\n".join(lines)


def test_readme_has_the_two_commands_and_blocks():
    blocks = readme_blocks()
    first = blocks[0][1]
    assert "fastemb train corpora/" in first and "python -m pytest" in first
    assert sum(lang == "python" for lang, _ in blocks) >= 1 and sum(lang == "bash" for lang, _ in blocks) >= 3


# docs/ pages in reading order; pages not listed here run afterwards, alphabetically
DOC_ORDER = ["new-users", "training", "algorithms", "files", "python", "alignment", "language-model", "classifier", "dask",
             "errors", "benchmarks"]


def doc_pages():
    names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    return [n for n in DOC_ORDER if n in names] + [n for n in names if n not in DOC_ORDER]


def run_blocks(blocks, where, cwd):
    # as from the repository root: `python -m bench.X` imports the repository's bench/
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for i, (lang, code) in enumerate(blocks):
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", runnable_bash(code)]
        else:
            cmd = [sys.executable, "-c", code]
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{where} block {i + 1} ({lang}) failed:\n{code}\n--- stderr:\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, p.stderr


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A scratch directory where README.md's blocks ran: the docs pages start from what README made."""
    pytest.importorskip("gensim")
    pytest.importorskip("matplotlib")
    where = tmp_path_factory.mktemp("readme")
    os.symlink(os.path.join(ROOT, "corpora"), where / "corpora")
    run_blocks(readme_blocks(), "README", where)
    return where


@pytest.mark.slow
def test_every_readme_block_runs(scratch):
    assert (scratch / "kjv-map.png").stat().st_size > 10_000 and (scratch / "kjv.vec.vocab").exists()
    assert (scratch / "kjv-eval.json").stat().st_size > 0


def test_readme_is_short_and_links_every_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert len(text.splitlines()) <= 200
    for page in doc_pages():
        assert f"docs/{page}.md" in text, f"README does not link docs/{page}.md"


@pytest.mark.slow
@pytest.mark.parametrize("page", doc_pages())
def test_every_docs_block_runs(scratch, page):
    with open(os.path.join(ROOT, "docs", f"{page}.md"), encoding="utf-8") as f:
        blocks = BLOCK.findall(f.read())
    run_blocks(blocks, f"docs/{page}.md", scratch)
