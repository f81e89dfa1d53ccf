"""Emitted pytest reproducers: red on the broken target, green on the real one."""

from __future__ import annotations

import os
import subprocess
import sys

from daxfuzz.core.emit import emit_pytest, known_signatures, save_finding, slug
from daxfuzz.core.runner import run_ops
from daxfuzz.vocab.trace import parse_trace, read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISY = """\
target: test-broken-unmap-ref
geometry: pages=32 pmd_order=2 inodes=2 mms=2 vmas=2 handles=4 file_pages=8 max_file_pages=16

mmap mm=1 vma=1 ino=0 pages=8 huge=0
msync mm=1 vma=1
fault mm=1 vma=1 pgoff=2 write=1
munmap mm=1 vma=1
"""


def _pytest(path: str, **env: str) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", os.path.dirname(path), path],
                          env=e, capture_output=True, text=True, timeout=60)


def test_save_finding_writes_reduced_trace_and_test(tmp_path):
    raw = parse_trace(NOISY)
    saved = save_finding(str(tmp_path), raw, engine="unit")
    assert saved["signature"] == "munmap:refcount" and saved["ops"] == 3
    assert os.path.basename(saved["trace_path"]) == slug(raw.target, "munmap:refcount") + ".trace"
    assert read_trace(saved["raw_path"]).ops == raw.ops
    assert known_signatures(str(tmp_path), raw.target) == {"munmap:refcount"}
    # the same bug again is a duplicate: nothing rewritten
    again = save_finding(str(tmp_path), raw, engine="unit")
    assert again["new"] is False

    test = saved["test_path"]
    red = _pytest(test)
    assert red.returncode == 1, red.stdout
    assert "DIVERGENCE at step 3: munmap mm=0 vma=0" in red.stdout
    green = _pytest(test, DAXFUZZ_TARGET="6.15")
    assert green.returncode == 0, green.stdout

    # flipping the one expectation pins the bug: green on broken, red on the real one
    text = open(test, encoding="utf-8").read()
    assert text.count("EXPECT_DIVERGENCE = False") == 1
    with open(test, "w", encoding="utf-8") as f:
        f.write(text.replace("EXPECT_DIVERGENCE = False", "EXPECT_DIVERGENCE = True"))
    assert _pytest(test).returncode == 0
    assert _pytest(test, DAXFUZZ_TARGET="6.15").returncode == 1


def test_emitted_text_holds_the_trace():
    t = parse_trace(NOISY)
    div, _ = run_ops(t.target, t.geometry, t.ops)
    text = emit_pytest(t, div)
    assert text.startswith('"""daxfuzz reproducer: munmap:refcount on target '
                           'test-broken-unmap-ref.\n')
    assert 'TRACE = """\\\n' + str(t) + '"""\n' in text
    assert "def test_test_broken_unmap_ref__munmap_refcount():" in text
    compile(text, "<emitted>", "exec")
