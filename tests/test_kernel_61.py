"""Debian 12's Linux 6.1 in the guest (marker `kernel`; skipped unless `daxfuzz kernel
setup --kernel 6.1` ran): one boot of one corpus trace, predicted by the legacy target."""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main
from daxfuzz.guest.apt import SetupError
from daxfuzz.guest.kernels import manifest, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.kernel


def test_a_pin_blocks_truncate_on_61(capsys):
    try:
        manifest(resolve("6.1"))
    except SetupError as e:
        pytest.skip(f"6.1 guest not set up: {e}")
    rc = main(["kernel", "run", "--kernel", "6.1",
               os.path.join(ROOT, "corpus/pin-blocks-truncate.trace")])
    out = capsys.readouterr().out
    assert "Linux 6.1 under QEMU" in out and "6.1.0-" in out
    assert "kernel: blocked" in out  # the truncate waited for the vmsplice'd page
    assert rc == 0, out
