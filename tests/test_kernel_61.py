"""Debian 12's Linux 6.1 in the guest (marker `kernel`; skipped unless `daxfuzz kernel
setup --kernel 6.1` ran): one boot of one corpus trace, predicted by the legacy target."""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main
from daxfuzz.guest.apt import SetupError
from daxfuzz.guest.kernels import manifest, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("guest_61")]


@pytest.fixture
def guest_61() -> None:
    """Skip unless `daxfuzz kernel setup --kernel 6.1` ran (CI does it, best effort)."""
    try:
        manifest(resolve("6.1"))
    except SetupError as e:
        pytest.skip(f"6.1 guest not set up: {e}")


def test_a_pin_blocks_truncate_on_61(capsys):
    rc = main(["kernel", "run", "--kernel", "6.1",
               os.path.join(ROOT, "corpus/pin-blocks-truncate.trace")])
    out = capsys.readouterr().out
    assert "Linux 6.1 under QEMU" in out and "6.1.0-" in out
    assert "kernel: blocked" in out  # the truncate waited for the vmsplice'd page
    # the raw struct pages beside the legacy port's (1-based refcounts): all 4 steps
    assert "raw pages: 4 of 4 steps agree" in out, out
    assert rc == 0, out


def test_a_leaked_dax_cow_page_does_not_reach_the_next_program_on_61(capsys):
    # the off-by-one trace leaves PAGE_MAPPING_DAX_COW on a freed page (the port says
    # so): the next trace runs in a fresh guest, so its fault-in does not warn at
    # fs/dax.c:380 (it did when both ran in one boot)
    rc = main(["kernel", "run", "--kernel", "6.1", "-q",
               os.path.join(ROOT, "corpus/divergence-legacy-dax-cow-off-by-one.trace"),
               os.path.join(ROOT, "tests/data/reuses-a-freed-cow-block.trace")])
    out = capsys.readouterr().out
    assert "2 boot(s)" in out, out
    assert "0 kernel warning line(s)" in out.splitlines()[-2], out
    assert rc == 0, out


def test_a_write_after_a_spinning_reflink_is_skipped_not_hung_on_61(capsys):
    # 6.1's reflink spins unkillably on a pinned second inode, holding both i_rwsem;
    # the pwrite(2) after it would wait with the guest: the helper skips it instead,
    # and nothing after the spin is compared
    rc = main(["kernel", "run", "--kernel", "6.1", "--trace-timeout", "60",
               os.path.join(ROOT, "docs/triage/killed-reflink-spins-on-61.reduced.trace")])
    out = capsys.readouterr().out
    assert "state=R" in out and "left pending" in out, out  # the reflink, step 4
    assert "a killed call from step 4 still runs" in out, out
    assert "1 after a killed call that ran on" in out, out
    assert "hung" not in out.splitlines()[-1], out
    assert rc == 0, out


def test_hwpoison_of_a_cow_copy_oopses_61_as_the_legacy_port_says(capsys):
    # 6.1 marks the page a CoW write fault copied to as PAGE_MAPPING_DAX_COW (0x1), and
    # the generic memory_failure path's dax_lock_page() reads mapping->host through it
    rc = main(["kernel", "run", "--kernel", "6.1",
               os.path.join(ROOT, "corpus/memory-failure-cow-copy-legacy-oops.trace")])
    out = capsys.readouterr().out
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000001" in out, out
    assert rc == 1, out
