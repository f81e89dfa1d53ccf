"""Targets as plugins: a patch author's package registers its target through the
"daxfuzz.targets" entry-point group (examples/mypatch), with no edit of daxfuzz."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "mypatch")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    """examples/mypatch installed (pip) into a folder
    of its own: on PYTHONPATH it is an installed distribution with its entry point
    (pip fetches its build backend from the package index, as any install would)."""
    import shutil

    d = str(tmp_path_factory.mktemp("site"))
    src = str(tmp_path_factory.mktemp("src") / "mypatch")
    shutil.copytree(EXAMPLE, src)  # setuptools builds in place: keep the checkout clean
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", d, src],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"pip could not build the example: {r.stderr[-400:]}")
    return d


def _daxfuzz(site: str, *argv: str, extra: str | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [extra, site, ROOT]))
    return subprocess.run([sys.executable, "-m", "daxfuzz", *argv], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=path), capture_output=True,
                          text=True, timeout=300)


def test_an_installed_plugin_is_a_target_and_fuzzes(site, tmp_path):
    r = _daxfuzz(site, "targets")
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("my-patch "))
    assert "[plugin: mypatch]" in line and "reworked dax_folio_put" in line
    # a behaviour-preserving rework of 7.2: whatever the campaign meets is 7.2's own
    r = _daxfuzz(site, "fuzz", "--engine", "random", "--target", "my-patch", "--time", "5",
                 "--seed", "1", "--findings", str(tmp_path / "f"), "--scenarios", "none",
                 "--no-report", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "my-patch is built on 7.2" in r.stderr and "findings: 0 new" in r.stdout
    r = _daxfuzz(site, "diff", "--from", "7.2", "--to", "my-patch", "--max-ops", "2")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_broken_plugin_is_reported_and_left_out(site, tmp_path):
    # a second distribution whose entry point names a module that does not import
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[daxfuzz.targets]\nbad-patch = nosuchmodule:X\n")
    r = _daxfuzz(site, "targets", extra=str(tmp_path))
    assert r.returncode == 0 and "my-patch " in r.stdout
    assert "'bad-patch' failed to load: nosuchmodule:X: ModuleNotFoundError" in r.stderr
    r = _daxfuzz(site, "replay", "--target", "bad-patch",
                 os.path.join(ROOT, "corpus", "pin-blocks-truncate.trace"), extra=str(tmp_path))
    assert r.returncode == 2 and "its plugin" in r.stderr and "failed to load" in r.stderr


def test_a_plugin_cannot_end_the_tool_or_take_a_built_in_name(site, tmp_path):
    # entry points of a third distribution: one exits at import, one names its class
    # "6.15" (a built-in), one puts a newline in its name
    dist = tmp_path / "rogue_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rogue-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[daxfuzz.targets]\nexits = rogue_exit:X\ntaken = rogue_names:Taken\n"
        "newline = rogue_names:Newline\n")
    (tmp_path / "rogue_exit.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "rogue_names.py").write_text(
        "from kdax.v7_2 import Kernel72\n\n\nclass Taken(Kernel72):\n    name = '6.15'\n\n\n"
        "class Newline(Kernel72):\n    name = 'a\\nb'\n")
    r = _daxfuzz(site, "targets", extra=str(tmp_path))
    assert r.returncode == 0 and "my-patch " in r.stdout, r.stderr
    assert "'exits' failed to load: rogue_exit:X: SystemExit" in r.stderr
    assert "'6.15' is taken by kdax." in r.stderr
    assert "'a\\nb' is not a target name" in r.stderr
    r = _daxfuzz(site, "replay", "-q", "--check", "--target", "6.15",
                 os.path.join(ROOT, "corpus", "divergence-stale-index-looks-shared.trace"),
                 extra=str(tmp_path))
    assert r.returncode == 0 and "(as expected) on 6.15" in r.stdout, r.stdout + r.stderr
