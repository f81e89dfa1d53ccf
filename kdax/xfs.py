"""fs/xfs: the DAX fault handlers, iomap, and the layout-break callers
(xfs_file.c, xfs_iomap.c, xfs_inode.c, xfs_iops.c, xfs_bmap_util.c, xfs_reflink.c,
xfs_super.c) -- as far as they reach fs/dax.c.  Block management itself is
`daxfuzz.vocab.blockfs` (not under test)."""

from __future__ import annotations

from daxfuzz.vocab.blockfs import HOLE
from daxfuzz.vocab.world import EFAULT, EINVAL, OK
from kdax.api import KernelAPI
from kdax.dax import LLONG_MAX
from kdax.mm import Blocked
from kdax.vm_fault import VM_FAULT_NEEDDSYNC, Iomap, Vmf

EBUSY_ERR = -16  # -EBUSY: an entry invalidate_inode_pages2_range() left in place


class Xfs(KernelAPI):
    """XFS, 6.15."""

    # ---- iomap -----------------------------------------------------------------------
    # fs/xfs/xfs_iomap.c xfs_read_iomap_begin() / xfs_direct_write_iomap_begin() for
    # IS_DAX: reads report IOMAP_F_SHARED (trimmed around shared extents); writes
    # allocate over holes and write shared extents -- and anything the CoW fork already
    # holds -- to CoW fork blocks (xfs_reflink_allocate_cow).  None means -ENOSPC.
    # fs/xfs/xfs_iomap.c xfs_direct_write_iomap_begin() (7.2): a hole is allocated over
    # the request (xfs_iomap_write_direct(ip, offset_fsb, end_fsb - offset_fsb)), so
    # not `whole` (a PTE fault's PAGE_SIZE) allocates a big page's first 4 KiB only;
    # an extent ends 4 KiB into such a page (the length blockfs reports).
    def xfs_dax_iomap_begin(self, ino: int, idx: int, length: int, write: bool,
                            whole: bool = True) -> Iomap | None:
        fs = self.fs
        if not write:
            pfn, n, shared = fs.iomap_read(ino, idx, length)
            if pfn == HOLE:
                return Iomap(Iomap.HOLE, 0, n, False, False)
            return Iomap(Iomap.MAPPED, pfn, n, shared, False)
        old, _n, _sh = fs.iomap_read(ino, idx, length)
        pfn, n, was_shared, freed = fs.iomap_write(ino, idx, length, whole)
        self.freed += freed
        if pfn == HOLE:
            return None
        return Iomap(Iomap.MAPPED, pfn, n, was_shared, old == HOLE or was_shared,
                     fs.meta_dirty[ino])

    # fs/xfs/xfs_iomap.c xfs_dax_write_iomap_end() (6.1 .. 7.2): nothing written cancels
    # the iomap's range of the CoW fork, else xfs_reflink_end_cow() of what was written
    # (7.2: `written` bytes; not `whole`, 4 KiB of a big page)
    def xfs_dax_write_iomap_end(self, ino: int, idx: int, length: int, written: int,
                                whole: bool = True) -> None:
        self.freed += self.fs.end_write(ino, idx, length, written, whole)

    # ---- fault handlers (fs/xfs/xfs_file.c) ------------------------------------------
    def xfs_filemap_fault(self, vmf: Vmf) -> int:
        return self.xfs_dax_fault_locked(vmf, 0)

    def xfs_filemap_huge_fault(self, vmf: Vmf, order: int) -> int:
        return self.xfs_dax_fault_locked(vmf, order)

    # fs/xfs/xfs_file.c xfs_filemap_pfn_mkwrite() -> xfs_write_fault(vmf, 0): a full DAX
    # write fault over the write-protected PTE.
    def xfs_filemap_pfn_mkwrite(self, vmf: Vmf) -> int:
        return self.xfs_dax_fault_locked(vmf, 0)

    # fs/xfs/xfs_file.c xfs_dax_fault_locked(): a MAP_SYNC write fault comes back with
    # VM_FAULT_NEEDDSYNC and is finished by dax_finish_sync_fault().
    def xfs_dax_fault_locked(self, vmf: Vmf, order: int) -> int:
        ret = self.dax_iomap_fault(vmf, order)
        if ret & VM_FAULT_NEEDDSYNC:
            ret = self.dax_finish_sync_fault(vmf, order, vmf.sync_pfn)
        return ret

    # fs/xfs/xfs_file.c xfs_file_fsync() over [start, end] (vfs_fsync_range): DAX
    # writeback of the range, then the log force that makes the metadata stable.
    def vfs_fsync_range(self, ino: int, start: int, end: int) -> int:
        self.dax_writeback_mapping_range(ino, start, end)
        self.fs.fsync(ino)
        return 0

    # ---- layout breaking (fs/xfs/xfs_inode.c, xfs_file.c) -----------------------------
    # fs/xfs/xfs_file.c xfs_wait_dax_page(): drop MMAPLOCK, schedule, retake it
    def xfs_wait_dax_page(self, ino: int) -> None:
        """The callback passed to wait_page_idle()."""

    # fs/xfs/xfs_inode.c xfs_break_dax_layouts() (6.15)
    def xfs_break_dax_layouts(self, ino: int) -> int:
        return self.dax_break_layout_inode(ino, self.xfs_wait_dax_page)

    # fs/xfs/xfs_file.c xfs_break_layouts(BREAK_UNMAP) (pNFS leases are not modelled)
    def xfs_break_layouts(self, ino: int) -> int:
        return self.xfs_break_dax_layouts(ino)

    # fs/xfs/xfs_inode.c xfs_mmaplock_two_inodes_and_break_dax_layout() (6.15): the
    # second inode is broken without a wait callback; a busy page there makes the
    # whole thing retry (here: blocked on that page until it is idle).
    def xfs_mmaplock_two_inodes_and_break_dax_layout(self, ip1: int, ip2: int) -> int:
        if ip1 > ip2:
            ip1, ip2 = ip2, ip1
        error = self.xfs_break_dax_layouts(ip1)
        if error:
            return error
        if ip1 == ip2:
            return 0
        error = self.dax_break_layout(ip2, 0, -1, None)
        if error:
            page = self.dax_layout_busy_page_range(ip2, 0, LLONG_MAX)
            raise Blocked(page.pfn if page is not None else -1)  # goto again, forever
        return 0

    # ---- syscalls ----------------------------------------------------------------------
    # fs/xfs/xfs_iops.c xfs_vn_setattr(ATTR_SIZE) -> xfs_setattr_size()
    def xfs_setattr_size(self, ino: int, newsize: int) -> str:
        error = self.xfs_break_layouts(ino)
        if error:
            return EINVAL
        oldsize = self.fs.size[ino]
        self.fs.set_size(ino, newsize)
        if newsize < oldsize:
            self.truncate_pagecache(ino, newsize)
        if newsize <= oldsize:
            # xfs_itruncate_extents(): the data fork, then "Remove all pending CoW
            # reservations" past the new EOF (xfs_reflink_cancel_cow_blocks)
            self.freed += self.fs.unmap_range(ino, newsize, 1 << 40)
            self.fs.cancel_cow_range(ino, newsize, 1 << 40)
        return OK

    # mm/truncate.c truncate_pagecache(): unmap to EOF (private COWs too), drop entries
    def truncate_pagecache(self, ino: int, newsize: int) -> None:
        self.unmap_mapping_range(ino, newsize, 0, True)
        self.truncate_inode_pages_range(ino, newsize, LLONG_MAX)
        self.unmap_mapping_range(ino, newsize, 0, True)

    # mm/truncate.c truncate_inode_pages_range() for a DAX mapping: the value entries it
    # finds go to truncate_folio_batch_exceptionals() (all of them, in one batch here)
    def truncate_inode_pages_range(self, ino: int, start: int, end: int) -> None:
        indices = [index for index, _e in self.i_pages[ino].for_each(start, self._end_idx(end))]
        if indices:
            self.truncate_folio_batch_exceptionals(ino, indices)

    # mm/truncate.c truncate_folio_batch_exceptionals() (6.15, 7.2): "File systems should
    # already have called dax_break_layout_entry() to remove all DAX entries [...]
    # Therefore we shouldn't find any here": WARN_ON_ONCE(1), then delete the entry "so
    # truncate_pagecache() doesn't loop forever".  Added with the refcount series.
    def truncate_folio_batch_exceptionals(self, ino: int, indices: list[int]) -> None:
        for index in indices:
            self.WARN_ON_ONCE(True, "1")
            self.dax_delete_mapping_entry(ino, index)

    # mm/truncate.c invalidate_inode_pages2_range() (6.15, 7.2) for a DAX mapping: each
    # value entry goes through dax_invalidate_mapping_entry_sync(); "For DAX we
    # invalidate page tables after invalidating page cache": the unmap comes last.
    def invalidate_inode_pages2_range(self, ino: int, start: int, end: int) -> int:
        xa = self.i_pages[ino]
        if not xa.ties:  # mapping_empty(): nothing to invalidate, nothing unmapped
            return 0
        ret = 0
        for index, _entry in xa.for_each(start, end):
            # find_get_entries() reports a multi-index entry at the first index it
            # covers in the range
            if not self.dax_invalidate_mapping_entry_sync(ino, max(index, start)):
                ret = EBUSY_ERR
        self.unmap_mapping_pages(ino, start, end - start + 1, False)
        return ret

    # mm/truncate.c truncate_pagecache_range() (6.15, 7.2): unmap (not private COWs),
    # then delete the range's entries
    def truncate_pagecache_range(self, ino: int, start: int, end: int) -> None:
        self.unmap_mapping_range(ino, start, end - start + 1, False)
        self.truncate_inode_pages_range(ino, start, end)

    # fs/xfs/xfs_bmap_util.c xfs_flush_unmap_range() (6.15, 7.2): write back (for DAX,
    # dax_writeback_mapping_range) and drop the page cache of the range
    def xfs_flush_unmap_range(self, ino: int, start: int, nr: int) -> None:
        self.dax_writeback_mapping_range(ino, start, start + nr - 1)
        self.truncate_pagecache_range(ino, start, start + nr - 1)

    # fs/xfs/xfs_exchrange.c xfs_exchrange_contents() (7.2): xfs_ilock2_io_mmap() breaks
    # both DAX layouts (both files are DAX: xfs_mmaplock_two_inodes_and_break_dax_layout),
    # xfs_exchange_range_checks(), xfs_exchrange_prep() flushes and unmaps both ranges
    # (file2 first), then xfs_exchrange_mappings() exchanges the blocks.
    def xfs_exchange_range(self, ino1: int, ino2: int, off1: int, off2: int, nr: int) -> str:
        self.xfs_mmaplock_two_inodes_and_break_dax_layout(ino1, ino2)
        size1, size2 = self.fs.size[ino1], self.fs.size[ino2]
        if off1 + nr > size1 or off2 + nr > size2:
            return EINVAL  # "we require both ranges to end within EOF"
        if ino1 == ino2 and off2 + nr > off1 and off1 + nr > off2:
            return EINVAL  # "Don't allow overlapped exchanges within the same file."
        self.xfs_flush_unmap_range(ino2, off2, nr)
        self.xfs_flush_unmap_range(ino1, off1, nr)
        # "Cancel CoW fork preallocations for the ranges of both files."
        self.fs.cancel_cow_range(ino1, off1, off1 + nr)
        self.fs.cancel_cow_range(ino2, off2, off2 + nr)
        self.fs.exchange(ino1, ino2, off1, off2, nr)
        return OK

    # fs/xfs/xfs_bmap_util.c xfs_swap_extent_flush() (6.1 .. 7.2): write back, then
    # truncate_pagecache_range(0, -1) -- no DAX layout break, nothing waits for GUP;
    # "Verify O_DIRECT for ftmp": a page cache left behind is -EINVAL
    def xfs_swap_extent_flush(self, ino: int) -> int:
        self.dax_writeback_mapping_range(ino, 0, LLONG_MAX)
        self.truncate_pagecache_range(ino, 0, LLONG_MAX)
        return -22 if self.nrpages[ino] else 0

    # fs/xfs/xfs_bmap_util.c xfs_swap_extents() (6.1 .. 7.2): flush both, then check that
    # all data is swapped (sx_length == both sizes: -EFAULT) and the extent counts, then
    # swap the data forks whole
    def xfs_swap_extents(self, ino: int, tmp: int) -> str:
        if self.xfs_swap_extent_flush(ino) or self.xfs_swap_extent_flush(tmp):
            return EINVAL
        fs = self.fs
        if fs.size[ino] != fs.size[tmp]:
            return EFAULT
        if fs.nextents(ino) < fs.nextents(tmp):  # xfs_swap_extents_check_format()
            return EINVAL
        fs.cancel_cow_range(tmp, 0, 1 << 40)
        fs.exchange(ino, tmp, 0, 0, self.g.max_file_pages)
        fs.cow[ino], fs.cow[tmp] = fs.cow[tmp], fs.cow[ino]  # "Swap the cow forks."
        return OK


    def xfs_free_file_space(self, ino: int, start: int, nr: int) -> str:
        error = self.xfs_break_layouts(ino)
        if error:
            return EINVAL
        size = self.fs.size[ino]
        if start >= size:
            return OK
        end = min(start + nr, size)
        # xfs_flush_unmap_range() -> truncate_pagecache_range(): no even_cows
        self.unmap_mapping_range(ino, start, end - start, False)
        self.truncate_inode_pages_range(ino, start, end - 1)
        self.freed += self.fs.unmap_range(ino, start, end)
        return OK

    # fs/xfs/xfs_reflink.c xfs_reflink_remap_prep() + xfs_reflink_remap_blocks():
    # lock and break both inodes first, then check the ranges, then share the blocks.
    def xfs_file_remap_range(self, src: int, dst: int, src_idx: int, dst_idx: int,
                             nr: int) -> str:
        self.xfs_mmaplock_two_inodes_and_break_dax_layout(src, dst)
        fs = self.fs
        if (src_idx + nr > fs.size[src] or dst_idx + nr > self.g.max_file_pages
                or (src == dst and dst_idx + nr > src_idx and dst_idx < src_idx + nr)):
            return EINVAL  # generic_remap_file_range_prep()
        # "Zap any page cache for the destination file's range."
        self.truncate_inode_pages_range(dst, dst_idx, dst_idx + nr - 1)
        self.freed += fs.remap(src, dst, src_idx, dst_idx, nr)
        return OK

    # fs/xfs/xfs_file.c xfs_file_dax_write() (6.15, 7.2): xfs_file_write_checks() breaks
    # only leased layouts (BREAK_WRITE), never DAX pins; zeroing the gap past EOF finds
    # only holes here (blocks past EOF are freed by truncate); dax_iomap_rw(); then
    # i_size_write() + xfs_setfilesize() when the write went past EOF.
    def xfs_file_dax_write(self, ino: int, pos: int, count: int, src=None) -> str:
        done, err = self.dax_iomap_rw(ino, pos, count, src)
        if done and pos + done > self.fs.size[ino]:
            self.fs.set_size(ino, pos + done)
        return OK if done else err  # a short write returns what it wrote

    # fs/xfs/xfs_super.c xfs_fs_evict_inode()
    def xfs_fs_evict_inode(self, ino: int) -> None:
        self.dax_break_layout_final(ino)
        self.truncate_inode_pages_range(ino, 0, LLONG_MAX)  # truncate_inode_pages_final
        self.clear_inode(ino)

    # fs/inode.c clear_inode() (6.15, 7.2): BUG_ON(inode->i_data.nrpages)
    def clear_inode(self, ino: int) -> None:
        if self.nrpages[ino]:
            self.events.append(f"BUG(inode->i_data.nrpages == {self.nrpages[ino]}) in "
                               "clear_inode")
        self.nrpages[ino] = 0
