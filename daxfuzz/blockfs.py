"""An XFS-like block layer: block maps, reflink sharing, allocation, iomap.

This is the filesystem's *space* management, which daxfuzz does not test: the
oracle and each target own a separate instance of it and drive it from their own
logic, so a target that frees a block too early is still caught.  It models what
fs/xfs/xfs_iomap.c and fs/xfs/xfs_reflink.c hand to fs/dax.c:

- ``iomap_read``: the extent at a file offset, trimmed at the shared/unshared
  boundary as ``xfs_reflink_trim_around_shared`` does for DAX (IOMAP_F_SHARED).
- ``iomap_write``: allocates one extent over a hole (``xfs_iomap_write_direct``:
  one ``xfs_bmapi_write`` map, so possibly shorter than asked), or for a shared
  extent allocates copy-on-write blocks and remaps them at once (DAX converts and
  ends the CoW immediately: ``xfs_reflink_allocate_cow(convert_now)`` +
  ``xfs_dax_write_iomap_end``).
- allocation is deterministic: continue the file's previous block if free, else the
  lowest fully free PMD-aligned chunk at the file offset's colour (stripe
  alignment, ``mkfs.xfs -d su=2m``), else the lowest free block.
"""

from __future__ import annotations

from daxfuzz.geometry import Geometry

HOLE = -1


class BlockFS:
    """Block maps of every inode over the device, with per-block share counts."""

    __slots__ = ("g", "size", "bmap", "refcnt", "meta_dirty", "cow_undo", "cow_fork")

    def __init__(self, g: Geometry) -> None:
        self.g = g
        self.size = [g.file_pages] * g.inodes  # i_size in pages
        self.bmap: list[dict[int, int]] = [{} for _ in range(g.inodes)]  # idx -> pfn
        self.refcnt: dict[int, int] = {}  # allocated pfn -> number of file pages mapping it
        # inode metadata changed since the last fsync (XFS: IOMAP_F_DIRTY for MAP_SYNC)
        self.meta_dirty = [False] * g.inodes
        # the last iomap_write's copy-on-write, until cancel_cow() or the next write
        self.cow_undo: tuple[int, int, int, int, int, bool] | None = None
        # a write(2)'s CoW blocks not yet remapped into the file (defer_cow .. end_cow)
        self.cow_fork: tuple[int, int, int, int, int] | None = None

    # ---- queries -------------------------------------------------------------------
    def pfn(self, ino: int, idx: int) -> int:
        return self.bmap[ino].get(idx, HOLE)

    def shared(self, pfn: int) -> bool:
        return self.refcnt.get(pfn, 0) > 1

    def owners(self, pfn: int) -> list[tuple[int, int]]:
        """Reverse map: every (ino, idx) whose block is `pfn`, in rmap btree order."""
        return sorted((ino, idx) for ino, m in enumerate(self.bmap)
                      for idx, p in m.items() if p == pfn)

    def iomap_read(self, ino: int, idx: int, length: int) -> tuple[int, int, bool]:
        """(pfn or HOLE, pages, shared) of the extent at `idx`, at most `length` pages."""
        m = self.bmap[ino]
        p0 = m.get(idx, HOLE)
        n = 1
        if p0 == HOLE:
            while n < length and idx + n not in m:
                n += 1
            return HOLE, n, False
        sh = self.refcnt[p0] > 1
        while (n < length and m.get(idx + n, HOLE) == p0 + n
               and (self.refcnt[p0 + n] > 1) == sh):
            n += 1
        return p0, n, sh

    # ---- allocation ----------------------------------------------------------------
    def _goal(self, ino: int, idx: int, want_chunk: bool) -> int:
        g = self.g
        prev = self.bmap[ino].get(idx - 1, HOLE)
        if not want_chunk and prev != HOLE and prev + 1 < g.pages and prev + 1 not in self.refcnt:
            return prev + 1
        nr = g.pmd_nr
        for base in range(0, g.pages, nr):
            if all(base + i not in self.refcnt for i in range(nr)):
                return base + (idx & g.pmd_colour)
        for pfn in range(g.pages):
            if pfn not in self.refcnt:
                return pfn
        return HOLE

    def _alloc_extent(self, ino: int, idx: int, length: int) -> tuple[int, int]:
        """Allocate one contiguous extent of up to `length` free blocks for `idx`."""
        goal = self._goal(ino, idx, length == self.g.pmd_nr and not idx & self.g.pmd_colour)
        if goal == HOLE:
            return HOLE, 0
        n = 0
        while n < length and goal + n < self.g.pages and goal + n not in self.refcnt:
            self.refcnt[goal + n] = 1
            n += 1
        return goal, n

    def iomap_write(self, ino: int, idx: int, length: int) -> tuple[int, int, bool, list[int]]:
        """Map `idx` for writing: (pfn, pages, was_shared, freed pfns); pfn HOLE = ENOSPC.

        A hole gets one new extent; a shared extent gets new CoW blocks remapped into the
        file (the old blocks lose a reference, `freed` lists any that reached zero).
        """
        self.cow_undo = None
        p0, n, sh = self.iomap_read(ino, idx, length)
        if p0 != HOLE and not sh:
            return p0, n, False, []
        new, got = self._alloc_extent(ino, idx, n)
        if new == HOLE:
            return HOLE, 0, sh, []
        freed: list[int] = []
        m = self.bmap[ino]
        if p0 != HOLE:
            self.cow_undo = (ino, idx, p0, new, got, self.meta_dirty[ino])
        self.meta_dirty[ino] = True
        for i in range(got):
            if p0 != HOLE:
                freed += self._drop(p0 + i)
            m[idx + i] = new + i
        return new, got, sh, freed

    def cancel_cow(self) -> None:
        """Undo the last iomap_write's copy-on-write: the fault wrote nothing.

        fs/xfs/xfs_iomap.c xfs_dax_write_iomap_end() (6.15): with written == 0 (a PMD
        fault that fell back to PTEs) it calls xfs_reflink_cancel_cow_range(), so the
        CoW blocks go back and the file keeps its shared blocks.  Allocations over a
        hole are not CoW and stay.  The old blocks were shared, so none was freed.
        """
        if self.cow_undo is None:
            return
        ino, idx, p0, new, got, dirty = self.cow_undo
        self.cow_undo = None
        m = self.bmap[ino]
        for i in range(got):
            m[idx + i] = p0 + i
            self.refcnt[p0 + i] += 1
            del self.refcnt[new + i]
        self.meta_dirty[ino] = dirty

    def defer_cow(self) -> None:
        """Move the last iomap_write's copy-on-write back into the CoW fork: the new
        blocks stay allocated, the file keeps its shared blocks until end_cow().

        write(2) copies between xfs_direct_write_iomap_begin() (CoW blocks allocated and
        converted, convert_now) and xfs_dax_write_iomap_end() -> xfs_reflink_end_cow(),
        which only then remaps them into the data fork: a read of the range in between
        (a fault on the write's own source buffer) still sees the shared blocks.
        """
        if self.cow_undo is None:
            return
        ino, idx, p0, new, got, _dirty = self.cow_undo
        self.cow_undo = None
        m = self.bmap[ino]
        for i in range(got):
            m[idx + i] = p0 + i
            self.refcnt[p0 + i] += 1
        self.cow_fork = (ino, idx, p0, new, got)

    def end_cow(self) -> list[int]:
        """xfs_reflink_end_cow(): remap the deferred CoW blocks; returns freed pfns."""
        if self.cow_fork is None:
            return []
        ino, idx, p0, new, got = self.cow_fork
        self.cow_fork = None
        m = self.bmap[ino]
        freed: list[int] = []
        for i in range(got):
            freed += self._drop(m[idx + i])
            m[idx + i] = new + i
        self.meta_dirty[ino] = True
        return freed

    # ---- freeing and remapping -----------------------------------------------------
    def _drop(self, pfn: int) -> list[int]:
        c = self.refcnt[pfn] - 1
        if c:
            self.refcnt[pfn] = c
            return []
        del self.refcnt[pfn]
        return [pfn]

    def unmap_range(self, ino: int, start: int, end: int) -> list[int]:
        """Remove file pages [start, end) from the block map; returns freed pfns."""
        m = self.bmap[ino]
        freed: list[int] = []
        for idx in sorted(i for i in m if start <= i < end):
            freed += self._drop(m.pop(idx))
            self.meta_dirty[ino] = True
        return freed

    def remap(self, src: int, dst: int, src_idx: int, dst_idx: int, pages: int) -> list[int]:
        """FICLONERANGE block remapping (xfs_reflink_remap_blocks); returns freed pfns."""
        sm = self.bmap[src]
        new = [sm.get(src_idx + i, HOLE) for i in range(pages)]
        for p in new:
            if p != HOLE:
                self.refcnt[p] += 1
        freed = self.unmap_range(dst, dst_idx, dst_idx + pages)
        dm = self.bmap[dst]
        for i, p in enumerate(new):
            if p != HOLE:
                dm[dst_idx + i] = p
        self.size[dst] = max(self.size[dst], dst_idx + pages)
        self.meta_dirty[dst] = True
        return freed

    def exchange(self, ino1: int, ino2: int, idx1: int, idx2: int, pages: int) -> None:
        """Exchange the block maps of two ranges, holes included (xfs_exchrange_mappings,
        xfs_swap_extent_rmap): no block changes its share count."""
        m1, m2 = self.bmap[ino1], self.bmap[ino2]
        a = [m1.pop(idx1 + i, HOLE) for i in range(pages)]
        b = [m2.pop(idx2 + i, HOLE) for i in range(pages)]
        for i in range(pages):
            if b[i] != HOLE:
                m1[idx1 + i] = b[i]
            if a[i] != HOLE:
                m2[idx2 + i] = a[i]
        self.meta_dirty[ino1] = self.meta_dirty[ino2] = True

    def nextents(self, ino: int) -> int:
        """Data fork extent records: runs of consecutive blocks at consecutive offsets."""
        m = self.bmap[ino]
        return sum(1 for i, p in m.items() if m.get(i - 1, HOLE) != p - 1 or p == 0)

    def set_size(self, ino: int, pages: int) -> None:
        if self.size[ino] != pages:
            self.size[ino] = pages
            self.meta_dirty[ino] = True

    def fsync(self, ino: int) -> None:
        """The log is forced: the inode's metadata is stable (xfs_file_fsync)."""
        self.meta_dirty[ino] = False

    def facts(self) -> tuple:
        """Canonical comparable form: sizes and block maps."""
        return (tuple(self.size), tuple(tuple(sorted(m.items())) for m in self.bmap))
