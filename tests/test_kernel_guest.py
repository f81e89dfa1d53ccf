"""The real kernel under QEMU (marker `kernel`; skipped unless `daxfuzz kernel setup` ran).

One guest boot (about 20-30 s under software emulation) runs two corpus traces: a pin
makes truncate wait and the unpin lets it complete; a long-term pin is refused.
"""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main
from daxfuzz.guest.apt import SetupError
from daxfuzz.guest.build import load_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.kernel


def _manifest():
    try:
        return load_manifest()
    except SetupError as e:
        pytest.skip(f"guest not set up: {e}")


def test_corpus_traces_agree_on_the_kernel(capsys):
    _manifest()
    rc = main(["kernel", "run", os.path.join(ROOT, "corpus/pin-blocks-truncate.trace"),
               os.path.join(ROOT, "corpus/longterm-pin-refused.trace")])
    out = capsys.readouterr().out
    assert "kernel: blocked" in out  # the truncate waited for the vmsplice'd page
    assert "EOPNOTSUPP" in out
    assert rc == 0, out


def test_bad_trace_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.trace"
    bad.write_text("frobnicate mm=0\n")
    assert main(["kernel", "run", str(bad)]) == 2


def test_a_kernel_bug_reboots_the_guest_for_the_next_trace(capsys):
    # the CoW-under-PMD trace oopses the kernel at unmount (kernel BUG at fs/inode.c:777);
    # the trace after it must run in a fresh guest, not on the wedged pmem device
    _manifest()
    rc = main(["kernel", "run", "-q",
               os.path.join(ROOT, "corpus/divergence-cow-pte-under-pmd-entry-nrpages.trace"),
               os.path.join(ROOT, "corpus/pin-blocks-truncate.trace")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "cow-pte-under-pmd-entry-nrpages.trace: DIFFER" in out
    assert "pin-blocks-truncate.trace: agree on the kernel" in out, out
    assert "2 boot(s)" in out
