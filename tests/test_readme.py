"""Every `bash` and `python` block of README.md runs, in order, in a scratch directory with the shipped
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
        line = re.sub(r"^pip install [^&]*&&\s*", "", line.strip())
        if not line or line.startswith("pip install") or "python -m pytest" in line:
            continue
        lines.append(line)
    return "\n".join(lines)


def test_readme_has_the_two_commands_and_blocks():
    blocks = readme_blocks()
    first = blocks[0][1]
    assert "fastemb train corpora/" in first and "python -m pytest" in first
    assert sum(lang == "python" for lang, _ in blocks) >= 2 and sum(lang == "bash" for lang, _ in blocks) >= 3


def test_every_readme_block_runs(tmp_path):
    pytest.importorskip("gensim")
    pytest.importorskip("matplotlib")
    os.symlink(os.path.join(ROOT, "corpora"), tmp_path / "corpora")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    for i, (lang, code) in enumerate(readme_blocks()):
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", runnable_bash(code)]
        else:
            cmd = [sys.executable, "-c", code]
        p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"README block {i + 1} ({lang}) failed:\n{code}\n--- stderr:\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "kjv-map.png").stat().st_size > 10_000 and (tmp_path / "kjv.vec.vocab").exists()
