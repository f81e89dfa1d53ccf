"""Safety checks (oracle/safety.py): each fires on a hand-made broken state and is
silent on a good one; and the runner catches targets with planted safety bugs."""

from __future__ import annotations

import pytest

from daxfuzz.core.runner import Runner, run_ops
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import Truncate, parse_op
from kdax.kernel import Kernel615
from kdax.mm import GUP_PIN_COUNTING_BIAS
from kdax.v7_2 import Kernel72
from oracle import safety

# ---------------------------------------------------------------- the checks ------


def test_freed_while_in_use():
    assert safety.freed_while_in_use([], {1}, {2}) is None
    assert safety.freed_while_in_use([0, 3], {1}, {2}) is None
    assert safety.freed_while_in_use([3, 1], {1}, set()) == "block pfn=1 freed while still mapped"
    assert (safety.freed_while_in_use([2], set(), {2})
            == "block pfn=2 freed while still held by GUP")


def test_completed_over_pin():
    assert safety.completed_over_pin("ok", {4}, {5}) is None  # the held page's entry stayed
    assert safety.completed_over_pin("blocked pfn=4", {4}, {4}) is None  # did not complete
    assert safety.completed_over_pin("ok", set(), {4}) is None
    assert (safety.completed_over_pin("ok", {7, 4}, {4, 7, 9})
            == "completed although pfn=4 is held by GUP")
    assert safety.completed_over_pin("ok killed=0", {4}, {4}) is not None


def test_not_idle():
    assert safety.not_idle([0, 1], {0: 0, 1: 0}, 0) is None
    assert safety.not_idle([0], {0: 1}, 1) is None  # legacy: idle at 1
    assert (safety.not_idle([0, 1], {0: 0, 1: 1024}, 0)
            == "pfn=1 refcount 1024 with nothing mapped or held (idle is 0)")
    assert safety.not_idle([0], {0: 0}, 1) is not None


def test_bad_counter():
    assert safety.bad_counter(0, 0, -1, 0, None) is None
    assert safety.bad_counter(0, 1025, 0, 0, 0) is None
    assert safety.bad_counter(0, 0, -1, 0, (1 << 63) - 1) is None
    assert safety.bad_counter(3, -1, -1, 0, None) == "pfn=3 refcount -1 < 0"
    assert safety.bad_counter(3, 0, -2, 0, None) == "pfn=3 raw _mapcount -2 < -1"
    assert safety.bad_counter(3, 0, -1, -1, None) == "pfn=3 _pincount -1 < 0"
    assert "wrapped" in safety.bad_counter(3, 0, -1, 0, (1 << 64) - 1)


def test_nrpages_leak():
    assert safety.nrpages_leak(0, 0, 0) is None
    assert safety.nrpages_leak(1, 5, 5) is None  # a PMD entry (4 pages) and a PTE entry
    assert safety.nrpages_leak(1, 4, 1) == (
        "ino1 mapping->nrpages=4 but its entries hold 1 page(s): clear_inode() will BUG() "
        "at eviction")


# ------------------------------------------------------- planted-bug targets ------


class DeletesWithoutWaiting(Kernel615):
    """dax_break_layout() that 'waits' without sleeping (wait_page_idle returns 0)
    and deletes the entries over a busy page: the freed blocks are still pinned."""

    name = "test-deletes-without-waiting"

    def wait_page_idle(self, page, cb, ino):
        return 0

    def dax_break_layout(self, ino, start, end, cb):
        page = self.dax_layout_busy_page_range(ino, start, end)
        if page is not None and cb is not None:
            self.wait_page_idle(page, cb, ino)
        self.dax_delete_mapping_range(ino, start, end)
        return 0


class BusyNeverSeen(Kernel72):
    """dax_busy_page() that never reports a page (GUP references ignored)."""

    name = "test-busy-never-seen"

    def dax_busy_page(self, entry):
        return None


class FreesMappedBlock(Kernel615):
    """A filesystem that reports freeing the block a fault just mapped."""

    name = "test-frees-mapped-block"

    # (Syscalls._dispatch binds the sys_* functions, so hook below them.)
    def handle_mm_fault(self, mm, vma, address, write):
        ret = super().handle_mm_fault(mm, vma, address, write)
        self.freed.extend(p for p, _w in self.mms[mm].pte.values() if p >= 0)
        return ret


class PincountOnSmallFolios(Kernel615):
    """gup_put_folio() that decrements _pincount without folio_has_pincount()."""

    name = "test-pincount-small"

    def gup_put_folio(self, folio, refs, flags):
        folio._pincount -= refs
        self._wrote_pincount(folio)
        if not self.folio_has_pincount(folio):
            refs *= GUP_PIN_COUNTING_BIAS
        self.folio_put_refs(folio, refs)


def ops(*lines: str):
    return [parse_op(x) for x in lines]


PIN_THEN_TRUNCATE = ops("mmap mm=0 vma=0 ino=0 pages=4 huge=0",
                        "pin mm=0 vma=0 pgoff=0 h=0", "truncate ino=0")
FAULT = ops("mmap mm=0 vma=0 ino=0 pages=4 huge=0", "fault mm=0 vma=0 pgoff=0 write=1")
PIN_UNPIN = ops("mmap mm=0 vma=0 ino=0 pages=4 huge=0", "pin mm=0 vma=0 pgoff=0 h=0",
                "unpin h=0")


@pytest.mark.parametrize("target", ["6.15", "7.2"])
@pytest.mark.parametrize("seq", [PIN_THEN_TRUNCATE, FAULT, PIN_UNPIN])
def test_real_targets_are_silent(target, seq):
    div, results = run_ops(target, Geometry(), seq)
    assert div is None, div and div.report()
    assert len(results) == len(seq)


@pytest.mark.parametrize("cls", [DeletesWithoutWaiting, BusyNeverSeen])
def test_truncate_over_pin_is_caught(cls):
    div, results = run_ops(cls, Geometry(), PIN_THEN_TRUNCATE)
    assert div is not None
    assert (div.step, div.field) == (3, "result")
    assert (div.expected, div.actual) == ("blocked pfn=0", "ok")
    assert results == ["ok", "ok", "ok"]
    assert div.target == cls.name


def test_freed_in_use_is_caught():
    div, _ = run_ops(FreesMappedBlock, Geometry(), FAULT)
    assert div is not None
    assert (div.step, div.field) == (2, "safety:freed-in-use")
    assert div.actual == "block pfn=0 freed while still mapped"


def test_negative_pincount_is_caught():
    div, _ = run_ops(PincountOnSmallFolios, Geometry(), PIN_UNPIN)
    assert div is not None
    assert (div.step, div.field, div.pfn) == (3, "safety:counter", 0)
    assert div.actual == "pfn=0 _pincount -1 < 0"


def test_runner_layout_check_on_hand_made_state():
    """A layout op that reports ok although a GUP-held folio lost its entry."""
    r = Runner("6.15", Geometry())
    for op in ops("mmap mm=0 vma=0 ino=0 pages=4 huge=0", "pin mm=0 vma=0 pgoff=0 h=0"):
        assert r.step(op) is None
    before = r._held_associated()
    assert before == ({0}, {0})
    assert r._check_layout(Truncate(0), "ok", before) is None  # nothing removed yet
    r.t.i_pages[0].ties.clear()  # hand-made breakage: the entry vanished under the pin
    d = r._check_layout(Truncate(0), "ok", before)
    assert d is not None and d.field == "safety:completed-over-pin"
    assert d.actual == "completed although pfn=0 is held by GUP"
    assert r._check_layout(Truncate(0), "blocked pfn=0", before) is None


class TruncateKeepsNrpages(Kernel72):
    """dax_delete_mapping_range() erases the entries but forgets nrpages: the inode
    leaks pages that clear_inode() finds at eviction."""

    name = "test-truncate-keeps-nrpages"

    def dax_delete_mapping_range(self, ino: int, start: int, end: int) -> None:
        nr = list(self.nrpages)
        super().dax_delete_mapping_range(ino, start, end)
        self.nrpages[:] = nr


def test_nrpages_leak_is_caught_where_it_is_made():
    seq = ops("mmap mm=0 vma=0 ino=0 pages=4 huge=0", "fault mm=0 vma=0 pgoff=1 write=1",
              "munmap mm=0 vma=0", "truncate ino=0", "unmount")
    assert run_ops(Kernel72, Geometry(), seq)[0] is None
    div, _ = run_ops(TruncateKeepsNrpages, Geometry(), seq)
    assert div is not None  # at the truncate, not at the unmount's clear_inode() BUG
    assert (div.step, div.field) == (4, "safety:nrpages")
    assert div.actual.startswith("ino0 mapping->nrpages=1 but its entries hold 0 page(s)")
