"""ruff is clean over the project, the import contracts hold and the type checker passes
(each skipped where its tool is not installed: pip install -e '.[test]')."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(__file__))


def _tool(name: str) -> str:
    exe = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(exe):
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return exe


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)


def test_ruff_clean():
    r = _run([_tool("ruff"), "check", "daxfuzz", "oracle", "kdax", "fuzz", "tests"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_contracts():
    """The layers of CONTRIBUTING.md's picture ([tool.importlinter] in pyproject.toml)."""
    r = _run([_tool("lint-imports"), "--no-cache"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_types():
    """mypy over the vocabulary, oracle, core and targets ([tool.mypy] in pyproject.toml)."""
    r = _run([_tool("mypy"), "--no-incremental"])
    assert r.returncode == 0, r.stdout + r.stderr
