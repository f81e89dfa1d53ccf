"""Per-op unit tests of the kernel targets' raw struct-page counters.

Every expected value below is computed by hand from the kernel rules (KERNEL.md), not
taken from the oracle: raw `_mapcount`/`_large_mapcount`/`_entire_mapcount` start at
-1, an idle fs-DAX page has refcount 0, each PTE/PMD mapping takes one reference, a
pin adds GUP_PIN_COUNTING_BIAS (1024) to a small folio and 1 (+ `_pincount`) to a
large one.  Default geometry: a "PMD" is 4 pages; a PMD-aligned write allocates the
extent pfn 0..3 for file index 0.
"""

from __future__ import annotations

import pytest

from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import parse_op
from daxfuzz.vocab.world import ANON, HUGE_ZERO, ZERO_PFN
from kdax.mm_types import TAIL_MAPPING
from kdax.targets import get_target

TARGETS = ["6.15", "7.2"]
pytestmark = pytest.mark.parametrize("name", TARGETS)

PTE_MAP = "mmap mm=0 vma=0 ino=0 pages=4 huge=0"
PMD_MAP = "mmap mm=0 vma=0 ino=0 pages=4"
VA0 = Geometry().vma_stride  # virtual page of file index 0 in vma slot 0 (aligned)


def kernel(name: str):
    return get_target(name)(Geometry())


def do(t, *lines: str) -> None:
    """Apply op lines `op ... => result`; every op must raise no WARN/BUG."""
    for line in lines:
        text, _, want = line.partition("=>")
        res = t.apply(parse_op(text))
        assert res == (want.strip() or "ok"), line
        assert t.events == [], (line, t.events)


def small(t, pfn: int, ref: int, mapcount: int, mapping, index: int = 0) -> None:
    """An order-0 folio: raw refcount, raw _mapcount (= mappings - 1), mapping, index."""
    p = t.pages[pfn]
    assert t.folio_order(p) == 0
    assert p.compound_head == -1
    assert not t.folio_test_large(p)
    assert p._refcount == ref
    assert p._mapcount == mapcount - 1
    assert p.mapping == mapping
    assert p.index == index


def pmd_folio(t, head: int, ref: int, entire: int, large: int, pincount: int, mapping,
              index: int = 0) -> None:
    """An order-2 folio at `head`: tails point at it, order in page[1]._flags_1."""
    h = t.pages[head]
    assert t.folio_order(h) == 2
    assert t.folio_test_large(h)
    assert h.compound_head == -1
    assert t.pages[head + 1]._flags_1 & 0xFF == 2
    for tail in range(head + 1, head + 4):
        assert t.pages[tail].compound_head == head
        assert t.page_folio(t.pages[tail]) is h
        assert t.pages[tail]._refcount == 0
        assert t.pages[tail].mapping == TAIL_MAPPING
    assert h._refcount == ref
    assert h._entire_mapcount == entire - 1
    assert h._large_mapcount == large - 1
    assert h._pincount == pincount
    assert h.mapping == mapping
    assert h.index == index


def split(t, head: int) -> None:
    """Back to order-0 idle pages with no owner (after dax_folio_put's split)."""
    for pfn in range(head, head + 4):
        small(t, pfn, 0, 0, None)
        assert t.pages[pfn]._flags_1 == 0
        assert t.pages[pfn]._nr_pages == 0


def test_idle_device(name):
    t = kernel(name)
    assert t.idle_refcount == 0
    for p in t.pages:
        assert (p._refcount, p._mapcount, p._pincount, p.mapping, p.index) == (0, -1, 0, None, 0)


def test_pte_write_fault(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1")
    small(t, 0, ref=1, mapcount=1, mapping=0, index=0)  # raw _mapcount -1 + 1 = 0
    assert t.mms[0].pte == {VA0: (0, True)}
    assert t.i_pages[0].ties == {0: (0, 0 << 4)}


def test_pte_read_fault_of_hole_maps_zero_page(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=1")
    assert t.mms[0].pte == {VA0 + 1: (ZERO_PFN, False)}
    for p in t.pages:
        assert (p._refcount, p._mapcount, p.mapping) == (0, -1, None)


def test_pte_fault_then_munmap(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "munmap mm=0 vma=0")
    small(t, 0, ref=0, mapcount=0, mapping=0, index=0)  # the entry keeps the association


def test_two_processes_map_one_page(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1",
       "mmap mm=1 vma=0 ino=0 pages=4 huge=0", "fault mm=1 vma=0 pgoff=0")
    small(t, 0, ref=2, mapcount=2, mapping=0)
    do(t, "munmap mm=0 vma=0")
    small(t, 0, ref=1, mapcount=1, mapping=0)


def test_pmd_write_fault(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=1 write=1")
    pmd_folio(t, 0, ref=1, entire=1, large=1, pincount=0, mapping=0, index=0)
    assert t.pages[0]._mapcount == -1  # the head page's own PTE mapcount is untouched
    assert t.mms[0].pmd == {VA0 >> 2: (0, True)}


def test_pmd_read_fault_of_hole_maps_huge_zero(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0")
    assert t.mms[0].pmd == {VA0 >> 2: (HUGE_ZERO, False)}
    assert all(p._refcount == 0 and t.folio_order(p) == 0 for p in t.pages)


def test_pmd_fault_then_munmap(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "munmap mm=0 vma=0")
    pmd_folio(t, 0, ref=0, entire=0, large=0, pincount=0, mapping=0)


def test_pmd_fault_then_truncate_splits(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "truncate ino=0")
    split(t, 0)
    assert t.i_pages[0].ties == {}
    assert t.mms[0].pmd == {}


def test_pin_small_folio_adds_bias(name):
    t = kernel(name)
    do(t, PTE_MAP, "pin mm=0 vma=0 pgoff=0 h=0")
    small(t, 0, ref=1 + 1024, mapcount=1, mapping=0)
    assert t.pages[0]._pincount == 0
    do(t, "unpin h=0")
    small(t, 0, ref=1, mapcount=1, mapping=0)


def test_pin_pmd_folio_uses_pincount(name):
    t = kernel(name)
    do(t, PMD_MAP, "pin mm=0 vma=0 pgoff=2 h=0")
    pmd_folio(t, 0, ref=2, entire=1, large=1, pincount=1, mapping=0)
    do(t, "pin mm=0 vma=0 pgoff=3 h=1")
    pmd_folio(t, 0, ref=3, entire=1, large=1, pincount=2, mapping=0)
    do(t, "unpin h=0", "unpin h=1")
    pmd_folio(t, 0, ref=1, entire=1, large=1, pincount=0, mapping=0)


def test_get_adds_one(name):
    t = kernel(name)
    do(t, PTE_MAP, "get mm=0 vma=0 pgoff=0 h=0 write=1")
    small(t, 0, ref=2, mapcount=1, mapping=0)
    do(t, "get mm=0 vma=0 pgoff=0 h=1")
    small(t, 0, ref=3, mapcount=1, mapping=0)
    do(t, "put h=0", "put h=1")
    small(t, 0, ref=1, mapcount=1, mapping=0)


def test_get_pmd_folio_adds_one_no_pincount(name):
    t = kernel(name)
    do(t, PMD_MAP, "get mm=0 vma=0 pgoff=1 h=0 write=1")
    pmd_folio(t, 0, ref=2, entire=1, large=1, pincount=0, mapping=0)


def test_pin_outlives_munmap_and_blocks_truncate(name):
    t = kernel(name)
    do(t, PTE_MAP, "pin mm=0 vma=0 pgoff=2 h=0", "munmap mm=0 vma=0")
    small(t, 2, ref=1024, mapcount=0, mapping=0, index=2)
    do(t, "truncate ino=0 => blocked pfn=2")
    small(t, 2, ref=1024, mapcount=0, mapping=0, index=2)  # entry and block kept
    assert t.fs.bmap[0] == {2: 2}
    do(t, "unpin h=0")
    small(t, 2, ref=0, mapcount=0, mapping=0, index=2)
    do(t, "truncate ino=0")
    assert t.pages[2].mapping is None
    assert t.fs.bmap[0] == {}


def test_zero_page_read_takes_no_reference_even_when_pinned(name):
    t = kernel(name)
    do(t, PTE_MAP, "pin mm=0 vma=0 pgoff=0 h=0 write=0", "get mm=0 vma=0 pgoff=1 h=1")
    assert t.handles == {0: (ZERO_PFN, "pin"), 1: (ZERO_PFN, "get")}
    assert all(p._refcount == 0 for p in t.pages)
    do(t, "truncate ino=0")  # zero entries are never busy


def test_reflink_pte_share(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=0 dst=1",
       "mmap mm=1 vma=0 ino=1 pages=4 huge=0", "fault mm=0 vma=0 pgoff=0")
    small(t, 0, ref=1, mapcount=1, mapping=0)  # first association is never "shared"
    do(t, "fault mm=1 vma=0 pgoff=0")
    small(t, 0, ref=2, mapcount=2, mapping=None, index=2)  # share 2 (index is share)
    assert t.pages[0].share == 2
    do(t, "munmap mm=0 vma=0", "munmap mm=1 vma=0", "truncate ino=0")
    small(t, 0, ref=0, mapcount=0, mapping=None, index=1)
    do(t, "truncate ino=1")
    small(t, 0, ref=0, mapcount=0, mapping=None, index=0)


def test_reflink_pmd_share(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=0 dst=1")
    split(t, 0)  # the reflink deleted ino0's entry
    do(t, "mmap mm=1 vma=0 ino=1 pages=4", "fault mm=0 vma=0 pgoff=0",
       "fault mm=1 vma=0 pgoff=1")
    pmd_folio(t, 0, ref=2, entire=2, large=2, pincount=0, mapping=None, index=2)
    assert t.pages[0].share == 2
    do(t, "munmap mm=1 vma=0", "truncate ino=1")
    pmd_folio(t, 0, ref=1, entire=1, large=1, pincount=0, mapping=None, index=1)
    do(t, "munmap mm=0 vma=0", "truncate ino=0")
    split(t, 0)


def test_write_after_msync_reuses_reference(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "msync mm=0 vma=0")
    assert t.mms[0].pte == {VA0: (0, False)}
    small(t, 0, ref=1, mapcount=1, mapping=0)
    do(t, "fault mm=0 vma=0 pgoff=0 write=1")
    assert t.mms[0].pte == {VA0: (0, True)}
    small(t, 0, ref=1, mapcount=1, mapping=0)


def test_private_cow_drops_device_mapping(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1",
       "mmap mm=1 vma=0 ino=0 pages=4 shared=0", "fault mm=1 vma=0 pgoff=0")
    small(t, 0, ref=2, mapcount=2, mapping=0)
    do(t, "fault mm=1 vma=0 pgoff=0 write=1")
    small(t, 0, ref=1, mapcount=1, mapping=0)
    assert t.mms[1].pte[VA0] == (ANON, True)


def test_longterm_pin_refused(name):
    t = kernel(name)
    do(t, PTE_MAP, "pin mm=0 vma=0 pgoff=0 longterm=1 => EOPNOTSUPP")
    assert t.handles == {}
    assert t.mms[0].pte == {}


def test_pte_inside_pmd_folio(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0 write=1",
       "mmap mm=1 vma=0 ino=0 pages=4 huge=0", "fault mm=1 vma=0 pgoff=1")
    pmd_folio(t, 0, ref=2, entire=1, large=2, pincount=0, mapping=0)
    assert t.pages[1]._mapcount == 0  # page 1's own PTE mapcount
    assert t.pages[0]._mapcount == -1


def test_unmount_waits_for_pin_then_mount(name):
    t = kernel(name)
    do(t, PTE_MAP, "pin mm=0 vma=0 pgoff=0 h=0", "unmount => EBUSY", "munmap mm=0 vma=0",
       "unmount => blocked pfn=0")
    small(t, 0, ref=1024, mapcount=0, mapping=0)
    do(t, "unpin h=0", "unmount", "mmap mm=0 vma=0 ino=0 => ENOENT", "mount")
    small(t, 0, ref=0, mapcount=0, mapping=None)


def test_memory_failure_shared_generic_vs_holder(name):
    t = kernel(name)
    do(t, PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=0 dst=1",
       "mmap mm=1 vma=0 ino=1 pages=4 huge=0", "fault mm=0 vma=0 pgoff=0",
       "fault mm=1 vma=0 pgoff=0", "memory_failure pfn=0 holder=0 => EBUSY")
    small(t, 0, ref=2, mapcount=2, mapping=None, index=2)
    do(t, "memory_failure pfn=0 mm=1 => ok killed=1")
    small(t, 0, ref=1, mapcount=1, mapping=None, index=2)


def test_memory_failure_spares_a_covering_vma_that_maps_nothing(name):
    """__add_to_kill() (7.2, 6.1) frees the entry of a VMA whose page-table walk finds
    nothing (size_shift 0): current is not signalled and nothing is unmapped, though
    its VMA covers the page; another process's mapping stays."""
    t = kernel(name)
    do(t, PTE_MAP, "mmap mm=1 vma=0 ino=0 pages=4 huge=0", "fault mm=1 vma=0 pgoff=0 write=1",
       "memory_failure pfn=0 mm=0 holder=0 => ok")
    small(t, 0, ref=1, mapcount=1, mapping=0)
    do(t, "memory_failure pfn=0 mm=1 holder=0 => ok killed=1")
    small(t, 0, ref=0, mapcount=0, mapping=0)


def test_stale_index_after_order0_put_differs_by_version(name):
    """6.15 dax_folio_put() returns before clearing ->share for order-0 folios;
    7.2's dax_folio_reset_order() clears it."""
    t = kernel(name)
    do(t, "mmap mm=0 vma=1 ino=1 pgoff=4 huge=0", "fault mm=0 vma=1 pgoff=5 write=1")
    small(t, 1, ref=1, mapcount=1, mapping=1, index=5)
    do(t, "reflink src=1 dst=0 pages=8")
    assert t.pages[1].mapping is None
    assert t.pages[1].index == {"6.15": 5, "7.2": 0}[name]


def test_nrpages_counts_entries_by_order(name):
    t = kernel(name)
    do(t, PMD_MAP, "fault mm=0 vma=0 pgoff=0 write=1")
    assert t.nrpages[0] == 4  # one PMD entry: 1 << 2
    do(t, "mmap mm=0 vma=1 ino=1 pages=2 huge=0", "fault mm=0 vma=1 pgoff=1")
    assert t.nrpages[1] == 1  # ino1 page 1 is a hole: one zero-page PTE entry
    do(t, "munmap mm=0 vma=0", "truncate ino=0")
    assert t.nrpages[0] == 0
    do(t, "munmap mm=0 vma=1", "unmount")  # clear_inode() finds 0 everywhere: no BUG
    assert t.nrpages == [0, 0]


def test_cow_pte_fault_under_pmd_entry_leaks_nrpages(name):
    # corpus/divergence-cow-pte-under-pmd-entry-nrpages.trace, by hand: the CoW PTE
    # entry replaces the whole PMD tie, so deleting it gives back 1 page of 4
    t = kernel(name)
    do(t, "mmap mm=0 vma=0 ino=1", "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=1 dst=0",
       "fault mm=0 vma=0 pgoff=0", "reflink src=0 dst=0 dst_pgoff=1 pages=1")
    assert t.i_pages[1].ties == {0: (2, 2)}  # a real PMD entry of pfn 0
    assert t.nrpages[1] == 4
    do(t, "fault mm=0 vma=0 pgoff=0 write=1")
    # the PMD attempt preallocated the CoW fork's hint (pfns 4..7, a free chunk) and,
    # falling back, cancelled page 0's block only; the PTE fault's CoW block for page 0
    # is then pfn 8 (the next fully free chunk, at colour 0).  The tie keeps order 2
    # but holds an order-0 entry
    assert t.fs.cow[1] == {1: 5, 2: 6, 3: 7}
    assert t.i_pages[1].ties == {0: (2, 8 << 4)}
    assert t.fs.bmap[1] == {0: 8, 1: 1, 2: 2, 3: 3}
    assert t.apply(parse_op("fault mm=0 vma=0 pgoff=1")) == "SIGBUS"  # pfn 1: refcount 0
    do(t, "munmap mm=0 vma=0")
    t.apply(parse_op("unmount"))
    assert t.events == ["BUG(inode->i_data.nrpages == 3) in clear_inode"]
