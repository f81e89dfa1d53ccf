"""The XFS-like block layer: CoW over a partly shared extent, and its cancellation."""

from __future__ import annotations

from daxfuzz.vocab.blockfs import HOLE, BlockFS
from daxfuzz.vocab.geometry import Geometry


def shared_then_split() -> BlockFS:
    """ino1 owns pfns 0..3; ino0 shares them; ino0's page 1 then points at pfn 0 too."""
    fs = BlockFS(Geometry())
    assert fs.iomap_write(1, 0, 4) == (0, 4, False, [])  # a hole: one new extent
    assert fs.remap(1, 0, 0, 0, 4) == []
    assert fs.remap(0, 0, 0, 1, 1) == []  # pfn 1 loses ino0's reference
    assert fs.refcnt == {0: 3, 1: 1, 2: 2, 3: 2}
    return fs


def test_cow_fills_the_hint_and_remaps_only_what_was_written():
    fs = shared_then_split()
    assert fs.iomap_read(1, 0, 4) == (0, 1, True)  # shared, then unshared pfn 1
    # 6.1's xfs_read_iomap_begin(): the data extent as it is, not trimmed, not shared
    assert fs.iomap_read(1, 0, 4, trim=False) == (0, 4, False)
    # the CoW fork gets the whole PMD-sized hint around page 0: a free chunk, pfns 4..7;
    # the write is trimmed to the shared run, and the file keeps pfn 0 until the end
    assert fs.iomap_write(1, 0, 4) == (4, 1, True, [])
    assert fs.cow[1] == {0: 4, 1: 5, 2: 6, 3: 7}
    assert fs.bmap[1] == {0: 0, 1: 1, 2: 2, 3: 3}
    assert fs.end_write(1, 0, 1, 1) == []  # pfn 0 still has two owners
    assert fs.bmap[1] == {0: 4, 1: 1, 2: 2, 3: 3}
    assert fs.cow[1] == {1: 5, 2: 6, 3: 7}  # the hint's padding stays
    assert fs.refcnt == {0: 2, 1: 1, 2: 2, 3: 2, 4: 1, 5: 1, 6: 1, 7: 1}


def test_a_leftover_cow_block_makes_an_unshared_write_a_cow_write():
    fs = shared_then_split()
    fs.iomap_write(1, 0, 4)
    fs.end_write(1, 0, 1, 1)
    assert fs.iomap_read(1, 1, 1) == (1, 1, False)  # pfn 1 is ino1's alone...
    assert fs.iomap_write(1, 1, 1) == (5, 1, True, [])  # ... but the CoW fork has page 1
    assert fs.end_write(1, 1, 1, 1) == [1]  # and the old block is freed
    assert fs.bmap[1][1] == 5 and 1 not in fs.refcnt
    # a hole under a CoW fork block is a CoW write too
    fs.unmap_range(1, 2, 3)
    assert fs.iomap_write(1, 2, 1) == (6, 1, True, [])


def test_nothing_written_cancels_the_iomaps_range_only():
    fs = shared_then_split()
    fs.iomap_write(1, 0, 4)
    before = dict(fs.refcnt)
    assert fs.end_write(1, 0, 1, 0) == []
    assert fs.cow[1] == {1: 5, 2: 6, 3: 7}
    assert fs.bmap[1] == {0: 0, 1: 1, 2: 2, 3: 3}
    del before[4]
    assert fs.refcnt == before
    fs.cancel_cow_range(1, 2, 1 << 40)  # a truncate to 2 pages
    assert fs.cow[1] == {1: 5} and 6 not in fs.refcnt and 7 not in fs.refcnt


def test_hole_allocation_is_not_cow():
    fs = BlockFS(Geometry())
    # the lowest fully free PMD chunk, at the offset's colour (0): pfns 0..3
    assert fs.iomap_write(0, 4, 4) == (0, 4, False, [])
    assert fs.end_write(0, 4, 4, 0) == []
    assert fs.bmap[0] == {4: 0, 5: 1, 6: 2, 7: 3}
    assert fs.cow[0] == {}
    assert fs.pfn(0, 0) == HOLE
