"""The repository's own checks, run by the test command so CI runs them: the linter's rule set (pyproject.toml)
passes, the API reference builds from the docstrings with warnings as errors, and the package keeps its
layering (no import circles, no module importing another's private names)."""
import ast
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "fastemb")


def test_ruff_passes():
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    p = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_api_reference_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "site" / "api" / "index.html").stat().st_size > 10_000


def _modules():
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield (rel[:-len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(path):
    """(module, names) for every `from fastemb... import names` and `import fastemb...` in a file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastemb") and not node.level:
            yield node.module, [a.name for a in node.names], node
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield None, [a.name for a in node.names], node
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fastemb"):
                    yield a.name, [], node


def test_no_private_names_across_modules():
    """No module imports another module's private (_x) names; relative imports are not used."""
    bad = []
    for mod, path in _modules():
        for target, names, node in _imports(path):
            if target is None:
                bad.append(f"{mod}:{node.lineno} relative import")
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__") and target != mod:
                    bad.append(f"{mod}:{node.lineno} imports {target}.{n}")
    assert not bad, "\n".join(bad)


def test_no_import_circles_at_module_level():
    """Module-level imports between fastemb's modules form no circle (imports inside functions are lazy loads)."""
    modules = dict(_modules())
    graph = {m: set() for m in modules}
    for mod, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastemb"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("fastemb")]
            else:
                continue
            for t in targets:
                if t in modules and t != mod and t != "fastemb":
                    graph[mod].add(t)
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
