"""Partial pages: a 4 KiB write of a group's last model page (which stands for the rest
of its 2 MiB) allocates or remaps only its first 4 KiB, so the group is no 2 MiB extent.

Default geometry: a group is 4 model pages, page 3 of a group is the big one."""

from __future__ import annotations

from daxfuzz.core.runner import Runner
from daxfuzz.vocab.blockfs import BlockFS
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import parse_trace


def pte_faulted_group() -> BlockFS:
    """ino0's pages 0..3 allocated one by one, as PTE write faults do (4 KiB each)."""
    fs = BlockFS(Geometry())
    for i in range(4):
        assert fs.iomap_write(0, i, 1, whole=False) == (i, 1, False, [])
        assert fs.end_write(0, i, 1, 1, whole=False) == []  # no CoW fork: nothing
    return fs


def test_a_pte_fault_allocates_a_big_page_partially():
    fs = pte_faulted_group()
    assert fs.bmap[0] == {0: 0, 1: 1, 2: 2, 3: 3}  # contiguous, as before
    assert fs.part[0] == {3}  # only page 3 stands for more than 4 KiB
    assert not fs.whole_group(0, 0)
    # the extent from the group's start ends before page 3: shorter than a PMD
    assert fs.iomap_read(0, 0, 4) == (0, 3, False)
    assert fs.iomap_read(0, 3, 1) == (3, 1, False)
    # and at page 3's first 4 KiB: page 4 (pfn 4, the next block) is another extent
    assert fs.iomap_write(0, 4, 1, whole=False) == (4, 1, False, [])
    assert fs.iomap_read(0, 3, 2) == (3, 1, False)
    assert fs.nextents(0) == 2  # [0, 16 KiB) and the next group's page


def test_a_whole_write_fills_the_rest():
    fs = pte_faulted_group()
    # a pwrite of page 3 (its whole real range): in place over the first 4 KiB, then
    # allocates the hole behind it; the group is one extent again
    assert fs.iomap_write(0, 3, 1) == (3, 1, False, [])
    assert fs.part[0] == set() and fs.whole_group(0, 0)
    assert fs.iomap_read(0, 0, 4) == (0, 4, False)


def test_a_pte_fault_in_place_leaves_the_state_alone():
    fs = pte_faulted_group()
    assert fs.iomap_write(0, 3, 1, whole=False) == (3, 1, False, [])
    assert fs.part[0] == {3}
    fs2 = BlockFS(Geometry())
    assert fs2.iomap_write(0, 0, 4) == (0, 4, False, [])  # a PMD write: 2 MiB
    assert fs2.iomap_write(0, 3, 1, whole=False) == (3, 1, False, [])
    assert fs2.part[0] == set()


def test_a_pmd_write_over_the_holes_before_a_partial_page_falls_short():
    fs = BlockFS(Geometry())
    fs.iomap_write(0, 3, 1, whole=False)  # page 3's first 4 KiB: pfn 3 (its colour)
    assert fs.bmap[0] == {3: 3} and fs.part[0] == {3}
    # xfs_direct_write_iomap_begin() allocates the 12 KiB hole; the iomap is short
    pfn, n, cow, _ = fs.iomap_write(0, 0, 4)
    assert (n, cow) == (3, False) and n < fs.g.pmd_nr
    assert fs.part[0] == {3}


def test_only_small_pmds_have_big_pages():
    fs = BlockFS(Geometry(pages=1024, pmd_order=9, file_pages=512, max_file_pages=1024))
    assert fs.iomap_write(0, 511, 1, whole=False) == (511, 1, False, [])
    assert fs.part[0] == set()  # with pmd_order=9 every model page is 4 KiB
    assert BlockFS(Geometry()).big(7) and not BlockFS(Geometry()).big(6)


def test_a_pte_fault_cow_of_a_big_page_remaps_4k():
    fs = BlockFS(Geometry())
    fs.iomap_write(1, 0, 4)  # ino1: one 2 MiB extent, pfns 0..3
    fs.remap(1, 0, 0, 0, 4)  # ino0 shares it (same phase: whole)
    assert fs.part == [set(), set()]
    # a PTE write fault on ino0's page 3: CoW fork blocks over the hint (pfns 4..7)
    assert fs.iomap_write(0, 3, 1, whole=False) == (7, 1, True, [])
    assert fs.end_write(0, 3, 1, 1, whole=False) == []  # pfn 3 is still ino1's
    # the file's page 3 is the CoW fork's first 4 KiB, then the old shared blocks
    assert fs.bmap[0] == {0: 0, 1: 1, 2: 2, 3: 7} and fs.part[0] == {3}
    # a pwrite of page 3: the rest is CoW'd too (the CoW fork still holds it in XFS)
    assert fs.iomap_write(0, 3, 1) == (7, 1, False, [])
    assert fs.part[0] == set()


def test_a_whole_cow_write_is_whole():
    fs = BlockFS(Geometry())
    fs.iomap_write(1, 0, 4)
    fs.remap(1, 0, 0, 0, 4)
    assert fs.iomap_write(0, 0, 4) == (4, 4, True, [])  # a PMD write fault's CoW
    assert fs.end_write(0, 0, 4, 4) == []
    assert fs.bmap[0] == {0: 4, 1: 5, 2: 6, 3: 7} and fs.part[0] == set()


def test_reflink_and_exchange_carry_or_make_partial_pages():
    fs = pte_faulted_group()
    fs.remap(0, 1, 0, 4, 4)  # same phase: one call, page 7 gets page 3's hole behind
    assert fs.part[1] == {7} and fs.bmap[1] == {4: 0, 5: 1, 6: 2, 7: 3}
    fs.remap(0, 1, 3, 6, 1)  # different phase, to a small page: 4 KiB is all it is
    assert fs.part[1] == {7}
    fs2 = BlockFS(Geometry())
    fs2.iomap_write(0, 0, 4)  # whole
    fs2.remap(0, 1, 0, 1, 3)  # different phases: 4 KiB per page; ino1's page 3 is big
    assert fs2.part[1] == {3}
    fs2.exchange(0, 1, 0, 0, 4)  # the same shape: the states go with the blocks
    assert fs2.part == [{3}, set()]
    fs2.exchange(0, 1, 2, 3, 1)  # different shapes: ino1's page 3 receives 4 KiB
    assert fs2.part == [{3}, {3}]  # (ino0's page 2 is small; its page 3 untouched)
    fs2.unmap_range(1, 0, 8)  # a punch or truncate forgets it
    assert fs2.part[1] == set()


TRACE = """\
mmap mm=1 vma=0 ino=0 pages=4 huge=0
fault mm=1 vma=0 pgoff=0 write=1
fault mm=1 vma=0 pgoff=1 write=1
fault mm=1 vma=0 pgoff=2 write=1
mmap mm=0 vma=0 ino=0 pages=4
fault mm=0 vma=0 pgoff=3 write=1
munmap mm=1 vma=0
dontneed mm=0 vma=0 pgoff=0 pages=4
truncate ino=0 pages=8
fault mm=0 vma=0 pgoff=0
"""


def test_the_oracle_and_the_port_map_a_pte_over_a_fault_allocated_group():
    tr = parse_trace(TRACE)
    r = Runner("7.2", tr.geometry)
    assert r.run(tr.ops) is None
    for side in (r.o, r.t):
        assert side.fs.part[0] == {3}
        assert not side.mms[0].pmd  # the PMD fault fell back
        assert len(side.mms[0].pte) == 1  # page 0 by a PTE
