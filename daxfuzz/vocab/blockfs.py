"""An XFS-like block layer: block maps, reflink sharing, allocation, iomap.

This is the filesystem's *space* management, which daxfuzz does not test: the
oracle and each target own a separate instance of it and drive it from their own
logic, so a target that frees a block too early is still caught.  It models what
fs/xfs/xfs_iomap.c and fs/xfs/xfs_reflink.c hand to fs/dax.c:

- ``iomap_read``: the extent at a file offset, trimmed at the shared/unshared
  boundary as ``xfs_reflink_trim_around_shared`` does for DAX (IOMAP_F_SHARED).
- ``iomap_write``: allocates one extent over a hole (``xfs_iomap_write_direct``:
  one ``xfs_bmapi_write`` map, so possibly shorter than asked); over a shared
  extent, or wherever the CoW fork already holds blocks, it writes to CoW fork
  blocks (``xfs_reflink_allocate_cow``).  ``end_write`` is
  ``xfs_dax_write_iomap_end``: the written part of the CoW fork is remapped into the
  file (``xfs_reflink_end_cow``); nothing written cancels the iomap's range of it
  (``xfs_reflink_cancel_cow_range``).
- the CoW fork: a CoW allocation covers the whole CoW extent size hint around the
  write (``xfs_bmap_extsize_align`` with ``xfs_get_cowextsz_hint``), here one PMD
  (the guest sets the same 2 MiB hint on its files; XFS's default is 32 blocks,
  which model pages cannot express).  What the write did not cover stays in the CoW
  fork, and a later write there -- to a block no longer shared, or to a hole -- is a
  copy-on-write too, until a truncate, punch, exchange or eviction cancels it.
- allocation is deterministic: continue the file's previous block if free, else the
  lowest fully free PMD-aligned chunk at the file offset's colour (stripe
  alignment, ``mkfs.xfs -d su=2m``), else the lowest free block.
- partial pages: the last model page of a PMD group stands for the rest of its 2 MiB
  (daxfuzz/guest/translate.py), but a 4 KiB write there -- a PTE write fault or a GUP
  fault-in (fs/dax.c dax_iomap_pte_fault(): ``.len = PAGE_SIZE``), a write_from,
  reflink or exchange issued per 4 KiB page by the guest -- allocates or remaps only
  its first 4 KiB (xfs_direct_write_iomap_begin() -> xfs_iomap_write_direct() of the
  request, no extent size hint on the data fork; xfs_reflink_end_cow() of what was
  written).  Such a page is in ``part``: its block is a 4 KiB extent followed by a
  hole (or by blocks the model does not track), so an extent ends at it and a PMD
  fault over its group falls back (dax_iomap_pmd_fault(): ``iomap_length() <
  PMD_SIZE``).  A write covering the page (write(2) of it, a PMD write fault) fills
  the rest and makes it whole again; reflink and exchange of the same shape carry it.
"""

from __future__ import annotations

from daxfuzz.vocab.geometry import Geometry

HOLE = -1


class BlockFS:
    """Block maps of every inode over the device, with per-block share counts."""

    __slots__ = ("g", "size", "bmap", "refcnt", "meta_dirty", "cow", "part")

    def __init__(self, g: Geometry) -> None:
        self.g = g
        self.size = [g.file_pages] * g.inodes  # i_size in pages
        self.bmap: list[dict[int, int]] = [{} for _ in range(g.inodes)]  # idx -> pfn
        self.refcnt: dict[int, int] = {}  # allocated pfn -> file pages (or CoW fork) using it
        # inode metadata changed since the last fsync (XFS: IOMAP_F_DIRTY for MAP_SYNC)
        self.meta_dirty = [False] * g.inodes
        # the CoW fork (ip->i_cowfp): idx -> allocated block not yet remapped into the file
        self.cow: list[dict[int, int]] = [{} for _ in range(g.inodes)]
        # mapped pages whose block covers only the first 4 KiB of their real range
        self.part: list[set[int]] = [set() for _ in range(g.inodes)]

    # ---- queries -------------------------------------------------------------------
    def pfn(self, ino: int, idx: int) -> int:
        return self.bmap[ino].get(idx, HOLE)

    def big(self, idx: int) -> bool:
        """Model page `idx` stands for more than 4 KiB: the last of its group, when a
        group is less than 2 MiB of model pages (daxfuzz/guest/translate.py off())."""
        g = self.g
        return g.pmd_order < 9 and idx & g.pmd_colour == g.pmd_colour

    def whole_group(self, ino: int, base: int) -> bool:
        """No page of the group at `base` is partial (see the module docstring)."""
        return base | self.g.pmd_colour not in self.part[ino]

    def shared(self, pfn: int) -> bool:
        return self.refcnt.get(pfn, 0) > 1

    def owners(self, pfn: int) -> list[tuple[int, int]]:
        """Reverse map: every (ino, idx) whose block is `pfn`, in rmap btree order."""
        return sorted((ino, idx) for ino, m in enumerate(self.bmap)
                      for idx, p in m.items() if p == pfn)

    def iomap_read(self, ino: int, idx: int, length: int,
                   trim: bool = True) -> tuple[int, int, bool]:
        """(pfn or HOLE, pages, shared) of the extent at `idx`, at most `length` pages.
        A partial page is an extent of its own: the real extent ends 4 KiB into it, so
        one reaching it from before is shorter than the pages up to its end.
        `trim=False`: the data fork extent as xfs_bmapi_read() returns it, not trimmed
        at the shared/unshared boundary and never reported shared (6.1's
        xfs_read_iomap_begin() trims only for IOMAP_REPORT)."""
        m, part = self.bmap[ino], self.part[ino]
        p0 = m.get(idx, HOLE)
        n = 1
        if p0 == HOLE:
            while n < length and idx + n not in m:
                n += 1
            return HOLE, n, False
        sh = self.refcnt[p0] > 1
        while (n < length and idx + n - 1 not in part and idx + n not in part
               and m.get(idx + n, HOLE) == p0 + n
               and (not trim or (self.refcnt[p0 + n] > 1) == sh)):
            n += 1
        return p0, n, sh and trim

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

    def iomap_write(self, ino: int, idx: int, length: int,
                    whole: bool = True) -> tuple[int, int, bool, list[int]]:
        """xfs_direct_write_iomap_begin() for DAX: (pfn, pages, cow, []) for writing
        `idx`; pfn HOLE = ENOSPC.  `cow` (IOMAP_F_SHARED): the pages are CoW fork blocks,
        remapped into the file by end_write(); the file keeps its old blocks until then.
        `whole`: the write covers its pages' real ranges; else only their first 4 KiB
        (a PTE fault), so a big page it allocates is partial.  A whole write in place
        fills a partial page's rest.

        xfs_reflink_allocate_cow(): a CoW fork extent at `idx` is used as it is
        (xfs_find_trim_cow_extent: even over a block no longer shared, or a hole);
        else the data extent, trimmed before the next CoW fork extent, is written in
        place if unshared, allocated if a hole (one xfs_bmapi_write extent), and if
        shared gets CoW fork blocks over the hint-aligned range around it
        (xfs_reflink_fill_cow_hole), up to the neighbouring CoW fork extents.
        """
        cf = self.cow[ino]
        if idx in cf:
            p0, n, _sh = self.iomap_read(ino, idx, length)  # imap: the data extent
            c0 = cf[idx]
            k = 1
            while k < n and cf.get(idx + k) == c0 + k:
                k += 1
            return c0, k, True, []
        p0, n, sh = self.iomap_read(ino, idx, length)
        if cf:
            for k in range(1, n):
                if idx + k in cf:
                    n = k
                    break
        if p0 == HOLE:
            new, got = self._alloc_extent(ino, idx, n)
            if new == HOLE:
                return HOLE, 0, False, []
            m = self.bmap[ino]
            for i in range(got):
                m[idx + i] = new + i
                if not whole and self.big(idx + i):
                    self.part[ino].add(idx + i)
            self.meta_dirty[ino] = True
            return new, got, False, []
        if not sh:
            if whole:
                self.part[ino].difference_update(range(idx, idx + n))
            return p0, n, False, []
        hint = self.g.pmd_nr
        lo, hi = idx & ~(hint - 1), (idx + n + hint - 1) & ~(hint - 1)
        lo = max([lo] + [i + 1 for i in cf if lo <= i < idx])
        hi = min([hi] + [i for i in cf if idx < i < hi])
        new, got = self._alloc_extent(ino, lo, hi - lo)
        if new == HOLE or lo + got <= idx:
            for i in range(got):
                del self.refcnt[new + i]
            return HOLE, 0, True, []
        for i in range(got):
            cf[lo + i] = new + i
        return cf[idx], min(n, lo + got - idx), True, []

    def end_write(self, ino: int, idx: int, length: int, written: int,
                  whole: bool = True) -> list[int]:
        """xfs_dax_write_iomap_end(): `written` pages of the iomap [idx, idx+length)
        went out.  None: xfs_reflink_cancel_cow_range() of the iomap's range (the hint's
        padding around it stays); else xfs_reflink_end_cow() of the written range: its
        CoW fork blocks replace the file's (which lose a reference).  Returns freed
        pfns.  Nothing happens where the CoW fork has no blocks.  Not `whole` (4 KiB
        written, see iomap_write): a big page remapped gets only its first 4 KiB from
        the CoW fork, the rest keeps the file's old blocks: it is partial."""
        cf, m = self.cow[ino], self.bmap[ino]
        if not cf:
            return []
        if not written:
            self.cancel_cow_range(ino, idx, idx + length)
            return []
        freed: list[int] = []
        for i in range(idx, idx + written):
            new = cf.pop(i, None)
            if new is None:
                continue
            old = m.get(i, HOLE)
            if old != HOLE:
                freed += self._drop(old)
            m[i] = new
            if not whole and self.big(i):
                self.part[ino].add(i)
            else:
                self.part[ino].discard(i)
            self.meta_dirty[ino] = True
        return freed

    def cancel_cow_range(self, ino: int, start: int, end: int) -> None:
        """xfs_reflink_cancel_cow_range(): free the CoW fork's blocks in [start, end)."""
        cf = self.cow[ino]
        if cf:
            for i in [i for i in cf if start <= i < end]:
                del self.refcnt[cf.pop(i)]

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
            self.part[ino].discard(idx)
            self.meta_dirty[ino] = True
        return freed

    def _same_shape(self, a: int, b: int, pages: int) -> bool:
        """Model ranges at `a` and `b` are the same real shape (translate.py: one call
        over the whole range rather than one per model page's first 4 KiB)."""
        o, c = self.g.pmd_order, self.g.pmd_colour
        if o == 9:
            return True
        def off(i: int) -> int:
            return (i >> o << 9) + (i & c)
        return all(off(a + k) - off(a) == off(b + k) - off(b) for k in range(1, pages + 1))

    def remap(self, src: int, dst: int, src_idx: int, dst_idx: int, pages: int) -> list[int]:
        """FICLONERANGE block remapping (xfs_reflink_remap_blocks); returns freed pfns.
        Same phase in the group: one call, a page's partial state goes with it; else the
        guest clones each page's first 4 KiB, so a big destination page is partial."""
        sm = self.bmap[src]
        new = [sm.get(src_idx + i, HOLE) for i in range(pages)]
        one = not (src_idx ^ dst_idx) & self.g.pmd_colour
        part = {dst_idx + i for i in range(pages) if new[i] != HOLE and (
            src_idx + i in self.part[src] if one else self.big(dst_idx + i))}
        for p in new:
            if p != HOLE:
                self.refcnt[p] += 1
        freed = self.unmap_range(dst, dst_idx, dst_idx + pages)
        dm = self.bmap[dst]
        for i, p in enumerate(new):
            if p != HOLE:
                dm[dst_idx + i] = p
        self.part[dst] |= part
        self.size[dst] = max(self.size[dst], dst_idx + pages)
        self.meta_dirty[dst] = True
        return freed

    def exchange(self, ino1: int, ino2: int, idx1: int, idx2: int, pages: int) -> None:
        """Exchange the block maps of two ranges, holes included (xfs_exchrange_mappings,
        xfs_swap_extent_rmap): no block changes its share count.  Partial states go with
        the blocks when the ranges have the same real shape; else the guest exchanges
        each page's first 4 KiB, so a big page receiving a block is partial."""
        m1, m2 = self.bmap[ino1], self.bmap[ino2]
        a = [m1.pop(idx1 + i, HOLE) for i in range(pages)]
        b = [m2.pop(idx2 + i, HOLE) for i in range(pages)]
        one = self._same_shape(idx1, idx2, pages)
        pa = [idx1 + i in self.part[ino1] for i in range(pages)]
        pb = [idx2 + i in self.part[ino2] for i in range(pages)]
        self.part[ino1].difference_update(range(idx1, idx1 + pages))
        self.part[ino2].difference_update(range(idx2, idx2 + pages))
        for i in range(pages):
            if b[i] != HOLE:
                m1[idx1 + i] = b[i]
                if pb[i] if one else self.big(idx1 + i):
                    self.part[ino1].add(idx1 + i)
            if a[i] != HOLE:
                m2[idx2 + i] = a[i]
                if pa[i] if one else self.big(idx2 + i):
                    self.part[ino2].add(idx2 + i)
        self.meta_dirty[ino1] = self.meta_dirty[ino2] = True

    def nextents(self, ino: int) -> int:
        """Data fork extent records: runs of consecutive blocks at consecutive offsets."""
        m, part = self.bmap[ino], self.part[ino]
        return sum(1 for i, p in m.items()
                   if m.get(i - 1, HOLE) != p - 1 or p == 0 or i - 1 in part)

    def set_size(self, ino: int, pages: int) -> None:
        if self.size[ino] != pages:
            self.size[ino] = pages
            self.meta_dirty[ino] = True

    def fsync(self, ino: int) -> None:
        """The log is forced: the inode's metadata is stable (xfs_file_fsync)."""
        self.meta_dirty[ino] = False

    def facts(self) -> tuple:
        """Canonical comparable form: sizes, block maps, CoW forks and partial pages."""
        return (tuple(self.size), tuple(tuple(sorted(m.items())) for m in self.bmap),
                tuple(tuple(sorted(c.items())) for c in self.cow),
                tuple(tuple(sorted(p)) for p in self.part))
