"""The XFS-like block layer: CoW over a partly shared extent, and its cancellation."""

from __future__ import annotations

from daxfuzz.blockfs import HOLE, BlockFS
from daxfuzz.geometry import Geometry


def shared_then_split() -> BlockFS:
    """ino1 owns pfns 0..3; ino0 shares them; ino0's page 1 then points at pfn 0 too."""
    fs = BlockFS(Geometry())
    assert fs.iomap_write(1, 0, 4) == (0, 4, False, [])  # a hole: one new extent
    assert fs.remap(1, 0, 0, 0, 4) == []
    assert fs.remap(0, 0, 0, 1, 1) == []  # pfn 1 loses ino0's reference
    assert fs.refcnt == {0: 3, 1: 1, 2: 2, 3: 2}
    return fs


def test_cow_is_trimmed_to_the_shared_run():
    fs = shared_then_split()
    assert fs.iomap_read(1, 0, 4) == (0, 1, True)  # shared, then unshared pfn 1
    pfn, n, was_shared, freed = fs.iomap_write(1, 0, 4)
    assert (pfn, n, was_shared, freed) == (4, 1, True, [])
    assert fs.bmap[1] == {0: 4, 1: 1, 2: 2, 3: 3}
    assert fs.refcnt == {0: 2, 1: 1, 2: 2, 3: 2, 4: 1}


def test_cancel_cow_restores_blocks_and_share_counts():
    fs = shared_then_split()
    before = ([dict(m) for m in fs.bmap], dict(fs.refcnt), list(fs.meta_dirty))
    fs.meta_dirty[1] = False
    fs.iomap_write(1, 0, 4)
    assert fs.meta_dirty[1]
    fs.cancel_cow()
    assert [dict(m) for m in fs.bmap] == before[0]
    assert fs.refcnt == before[1]
    assert not fs.meta_dirty[1]
    fs.cancel_cow()  # nothing left to cancel
    assert fs.refcnt == before[1]


def test_cancel_cow_keeps_allocations_over_holes():
    fs = BlockFS(Geometry())
    # the lowest fully free PMD chunk, at the offset's colour (0): pfns 0..3
    assert fs.iomap_write(0, 4, 4)[:3] == (0, 4, False)
    fs.cancel_cow()
    assert fs.bmap[0] == {4: 0, 5: 1, 6: 2, 7: 3}
    assert fs.pfn(0, 0) == HOLE
