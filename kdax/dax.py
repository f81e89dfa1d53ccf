"""fs/dax.c: DAX entries, folio association and sharing, layout breaking, faults.

Ported from the merged series as stored for Linux 6.15 (torvalds/linux fs/dax.c at
commit 00c010e130e5, the "Properly refcount fs dax pages" series plus the 6.15-rc
folio_reset_order() fix).  `kdax.v7_2` overrides what changed since.
"""

from __future__ import annotations

import sys

from daxfuzz.vocab.world import ENOSPC, HUGE_ZERO, OK, ZERO_PFN
from kdax.api import KernelAPI
from kdax.mm import Blocked
from kdax.mm_types import Page
from kdax.vm_fault import (
    VM_FAULT_DONE_COW,
    VM_FAULT_ERROR,
    VM_FAULT_FALLBACK,
    VM_FAULT_MAJOR,
    VM_FAULT_NEEDDSYNC,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    Iomap,
    Vmf,
)
from kdax.xarray import (
    DAX_EMPTY,
    DAX_PMD,
    DAX_ZERO_PAGE,
    dax_is_empty_entry,
    dax_is_pmd_entry,
    dax_is_zero_entry,
    dax_make_entry,
    dax_to_pfn,
)

ERESTARTSYS = -512
LIVELOCK = 64  # iterations after which a wait loop is reported as a livelock
LLONG_MAX = (1 << 63) - 1
FALLBACK = "fallback"  # xa_mk_internal(VM_FAULT_FALLBACK) from grab_mapping_entry


class FsDax(KernelAPI):
    """The fs/dax.c functions, 6.15."""

    # ---- entries and folios ----------------------------------------------------------
    def dax_entry_order(self, entry: int) -> int:
        return self.PMD_ORDER if entry & DAX_PMD else 0

    # fs/dax.c dax_to_folio() (6.15): page_folio(pfn_to_page(dax_to_pfn(entry)))
    # An empty entry holds pfn 0 and a zero entry the zero page: neither is a device
    # page (device PFNs are device-relative here), so they map to those struct pages.
    def dax_to_folio(self, entry: int) -> Page:
        if entry & DAX_EMPTY:
            return self.pfn0_page
        pfn = dax_to_pfn(entry)
        if not 0 <= pfn < len(self.pages):
            return self.zero_page
        return self.page_folio(self.pages[pfn])

    # fs/dax.c dax_folio_is_shared() (6.15)
    def dax_folio_is_shared(self, folio: Page) -> bool:
        return folio.mapping is None and folio.share != 0

    # fs/dax.c dax_folio_make_shared() (6.15)
    def dax_folio_make_shared(self, folio: Page) -> None:
        self.set_field(folio, "mapping", None)
        self.set_field(folio, "index", 1)  # folio->share = 1

    # fs/dax.c dax_folio_put() (6.15, with the 6.15-rc folio_reset_order() fix)
    def dax_folio_put(self, folio: Page) -> int:
        if not self.dax_folio_is_shared(folio):
            ref = 0
        else:
            ref = (folio.share - 1) & 0xFFFFFFFFFFFFFFFF  # --folio->share, unsigned long
            self.set_field(folio, "index", ref)
        if ref:
            return ref
        self.set_field(folio, "mapping", None)
        order = self.folio_order(folio)
        if not order:
            return 0
        self.folio_reset_order(folio)
        for i in range(1 << order):
            page = self.pages[folio.pfn + i]
            self.ClearPageHead(page)
            self.clear_compound_head(page)
            self.set_field(page, "mapping", None)
            self.set_field(page, "pgmap", folio.pgmap)  # reset pgmap overwritten by prep
            self.set_field(page, "index", 0)  # new_folio->share = 0
            self.WARN_ON_ONCE(page._refcount, "folio_ref_count(new_folio)")
        return ref

    # fs/dax.c dax_folio_init() (6.15)
    def dax_folio_init(self, entry: int) -> None:
        folio = self.dax_to_folio(entry)
        order = self.dax_entry_order(entry)
        # Folio should have been split back to order-0 pages in dax_folio_put().
        self.WARN_ON_ONCE(self.folio_order(folio), "folio_order(folio)")
        if order > 0:
            self.prep_compound_page(folio, order)
            self.WARN_ON_ONCE(folio._refcount, "folio_ref_count(folio)")

    # fs/dax.c dax_associate_entry() (6.15)
    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        folio = self.dax_to_folio(entry)
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        size = 1 << self.dax_entry_order(entry)
        index = vmf.vma.index(vmf.address & ~(size - 1))  # linear_page_index()
        if shared and (folio.mapping is not None or self.dax_folio_is_shared(folio)):
            if folio.mapping is not None:
                self.dax_folio_make_shared(folio)
            self.WARN_ON_ONCE(not folio.share, "!folio->share")
            self.WARN_ON_ONCE(self.dax_entry_order(entry) != self.folio_order(folio),
                              "dax_entry_order(entry) != folio_order(folio)")
            self.set_field(folio, "index", folio.share + 1)  # folio->share++
        else:
            self.WARN_ON_ONCE(folio.mapping is not None, "folio->mapping")
            self.dax_folio_init(entry)
            folio = self.dax_to_folio(entry)
            self.set_field(folio, "mapping", mapping)
            self.set_field(folio, "index", index)

    # fs/dax.c dax_disassociate_entry() (6.15)
    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        folio = self.dax_to_folio(entry)
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        self.dax_folio_put(folio)

    # fs/dax.c dax_busy_page() (6.15): a reference that is not a mapping is GUP's
    def dax_busy_page(self, entry: int) -> Page | None:
        folio = self.dax_to_folio(entry)
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return None
        if self.folio_ref_count(folio) - self.folio_mapcount(folio):
            return folio
        return None

    # include/linux/dax.h dax_page_is_idle() (6.15)
    def dax_page_is_idle(self, page: Page | None) -> bool:
        return page is not None and self.page_ref_count(page) == 0

    # ---- grabbing entries ------------------------------------------------------------
    # fs/dax.c get_next_unlocked_entry() (6.15), minus the lock wait: a smaller
    # conflicting entry is reported as a conflict (XA_RETRY_ENTRY).
    def get_next_unlocked_entry(self, xa, index: int, order: int):
        entry = xa.find_conflict(index, order)
        if entry is None:
            return None
        if self.dax_entry_order(entry) < order:
            return "conflict"
        return entry

    # fs/dax.c grab_mapping_entry() (6.15): PMD request falls back over PTE entries;
    # PTE request downgrades a zero/empty PMD entry but keeps a real one.
    def grab_mapping_entry(self, ino: int, index: int, order: int):
        xa = self.i_pages[ino]
        if order:
            index &= ~self.PG_PMD_COLOUR
        entry = self.get_next_unlocked_entry(xa, index, order)
        pmd_downgrade = False
        if entry is not None:
            if entry == "conflict":
                return FALLBACK
            if order == 0 and dax_is_pmd_entry(entry) and (
                    dax_is_zero_entry(entry) or dax_is_empty_entry(entry)):
                pmd_downgrade = True
        if pmd_downgrade:
            # Besides huge zero pages the only other thing that gets downgraded are
            # empty entries which don't need to be unmapped.
            if dax_is_zero_entry(entry):
                self.unmap_mapping_pages(ino, index & ~self.PG_PMD_COLOUR,
                                         self.PG_PMD_NR, False)
            self.dax_disassociate_entry(entry, ino, False)
            xa.store(index, 0, None)  # undo the PMD join
            self.nrpages[ino] -= self.PG_PMD_NR
            entry = None
        if entry is None:
            flags = DAX_EMPTY | (DAX_PMD if order > 0 else 0)
            entry = dax_make_entry(0, flags)
            xa.store(index, order, entry)
            self.nrpages[ino] += 1 << order
        return entry

    # ---- busy pages and layout breaking ------------------------------------------------
    def _end_idx(self, end: int) -> int:
        # "If end == LLONG_MAX, all pages from start to till end of file"; -1 >> PAGE_SHIFT
        # is ULONG_MAX as a pgoff_t too.
        return 1 << 62 if end in (LLONG_MAX, -1) else end

    # fs/dax.c dax_layout_busy_page_range() (6.15): unmap the range, return the first
    # entry's folio that holds a non-mapping reference.
    def dax_layout_busy_page_range(self, ino: int, start: int, end: int) -> Page | None:
        end_idx = self._end_idx(end)
        self.unmap_mapping_pages(ino, start, end_idx - start + 1, False)
        for _index, entry in self.i_pages[ino].for_each(start, end_idx):
            page = self.dax_busy_page(entry)
            if page is not None:
                return page
        return None

    # fs/dax.c dax_delete_mapping_range() (6.15)
    def dax_delete_mapping_range(self, ino: int, start: int, end: int) -> None:
        xa = self.i_pages[ino]
        for index, entry in xa.for_each(start, self._end_idx(end)):
            self.dax_disassociate_entry(entry, ino, True)
            xa.store(index, 0, None)
            self.nrpages[ino] -= 1 << self.dax_entry_order(entry)

    # fs/dax.c wait_page_idle(): sleeps until dax_page_is_idle(); modelled as Blocked.
    def wait_page_idle(self, page: Page, cb, ino: int) -> int:
        if self.dax_page_is_idle(page):
            return 0
        raise Blocked(page.pfn)

    def wait_page_idle_uninterruptible(self, page: Page, ino: int) -> None:
        if not self.dax_page_is_idle(page):
            raise Blocked(page.pfn)

    # fs/dax.c dax_break_layout() (6.15)
    def dax_break_layout(self, ino: int, start: int, end: int, cb) -> int:
        error = 0
        for _spin in range(LIVELOCK):
            page = self.dax_layout_busy_page_range(ino, start, end)
            if page is None:
                break
            if cb is None:
                error = ERESTARTSYS
                break
            error = self.wait_page_idle(page, cb, ino)
            if error:
                break
        else:
            self.livelock(page)
        if page is None:
            self.dax_delete_mapping_range(ino, start, end)
        return error

    def livelock(self, page: Page | None) -> None:
        """A wait loop that never finishes: the task spins (or sleeps) forever."""
        self.events.append("LIVELOCK(the layout break loops forever) in "
                           + sys._getframe(1).f_code.co_name)
        raise Blocked(page.pfn if page is not None else -1)

    # include/linux/dax.h dax_break_layout_inode() (6.15)
    def dax_break_layout_inode(self, ino: int, cb) -> int:
        return self.dax_break_layout(ino, 0, LLONG_MAX, cb)

    # fs/dax.c dax_break_layout_final() (6.15)
    def dax_break_layout_final(self, ino: int) -> None:
        for _spin in range(LIVELOCK):
            page = self.dax_layout_busy_page_range(ino, 0, LLONG_MAX)
            if page is None:
                break
            self.wait_page_idle_uninterruptible(page, ino)
        else:
            self.livelock(page)
        if page is None:
            self.dax_delete_mapping_range(ino, 0, LLONG_MAX)

    # ---- inserting entries -----------------------------------------------------------
    # fs/dax.c dax_insert_entry() (6.15)
    def dax_insert_entry(self, vmf: Vmf, iomap: Iomap, entry: int, pfn: int, flags: int) -> int:
        ino = vmf.vma.ino
        xa = self.i_pages[ino]
        new_entry = dax_make_entry(pfn, flags)
        write = vmf.write and not vmf.cow_page
        dirty = write and not self.dax_fault_is_synchronous(vmf, iomap)
        shared = iomap.shared
        index = vmf.pgoff & ~self.PG_PMD_COLOUR if flags & DAX_PMD else vmf.pgoff
        if shared or (dax_is_zero_entry(entry) and not flags & DAX_ZERO_PAGE):
            # we are replacing a zero page with block mapping
            if dax_is_pmd_entry(entry):
                self.unmap_mapping_pages(ino, index & ~self.PG_PMD_COLOUR, self.PG_PMD_NR, False)
            else:
                self.unmap_mapping_pages(ino, index, 1, False)
        if shared or dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            self.dax_disassociate_entry(entry, ino, False)
            self.dax_associate_entry(new_entry, ino, vmf, shared)
            # Only swap our new entry in if the current entry is zero or empty; a real
            # PTE or PMD entry already in the cache is left alone.
            xa.store(index, self.dax_entry_order(new_entry), new_entry)
            entry = new_entry
        if dirty:
            xa.set_mark(index, xa.dirty)
        if write and shared:
            xa.set_mark(index, xa.towrite)
        return entry

    # fs/dax.c dax_load_hole() (6.15): the zero page, special PTE, no reference
    def dax_load_hole(self, vmf: Vmf, iomap: Iomap, entry: int) -> tuple[int, int]:
        entry = self.dax_insert_entry(vmf, iomap, entry, ZERO_PFN, DAX_ZERO_PAGE)
        return self.vmf_insert_page_mkwrite(vmf, ZERO_PFN, False), entry

    # fs/dax.c dax_pmd_load_hole() (6.15): the huge zero folio, set_pmd_at directly
    def dax_pmd_load_hole(self, vmf: Vmf, iomap: Iomap, entry: int) -> tuple[int, int]:
        entry = self.dax_insert_entry(vmf, iomap, entry, HUGE_ZERO, DAX_PMD | DAX_ZERO_PAGE)
        mmst = self.mms[vmf.mm]
        slot = vmf.address >> self.PMD_ORDER
        if slot in mmst.pmd or slot in mmst.tables:
            return VM_FAULT_FALLBACK, entry
        mmst.pmd[slot] = (HUGE_ZERO, False)
        return VM_FAULT_NOPAGE, entry

    # fs/dax.c dax_fault_iter() (6.15)
    def dax_fault_iter(self, vmf: Vmf, iomap: Iomap, entry: int, pmd: bool) -> tuple[int, int]:
        write = vmf.write and not vmf.cow_page
        if not pmd and vmf.cow_page:
            return self.dax_fault_cow_page(vmf, iomap), entry
        # if we are reading UNWRITTEN and HOLE, return a hole.
        if not write and iomap.type == Iomap.HOLE:
            if not pmd:
                return self.dax_load_hole(vmf, iomap, entry)
            return self.dax_pmd_load_hole(vmf, iomap, entry)
        if iomap.type != Iomap.MAPPED and not iomap.shared:
            self.WARN_ON_ONCE(True, "iomap->type != IOMAP_MAPPED")
            return (VM_FAULT_FALLBACK if pmd else VM_FAULT_SIGBUS), entry
        # dax_iomap_direct_access(): the pfn must be aligned to the fault size
        size = self.PG_PMD_NR if pmd else 1
        pfn = iomap.addr  # the iomap starts at the faulting (PMD-aligned) offset
        if pfn & (size - 1):
            return (VM_FAULT_FALLBACK if pmd else VM_FAULT_SIGBUS), entry
        entry = self.dax_insert_entry(vmf, iomap, entry, pfn, DAX_PMD if pmd else 0)
        # (write && IOMAP_F_SHARED: dax_iomap_copy_around() copies the old data)
        folio = self.dax_to_folio(entry)
        if self.dax_fault_is_synchronous(vmf, iomap):
            vmf.sync_pfn = pfn  # dax_fault_synchronous_pfnp()
            return VM_FAULT_NEEDDSYNC, entry
        self.folio_ref_inc(folio)
        if pmd:
            ret = self.vmf_insert_folio_pmd(vmf, self.pfn_folio(pfn), write)
        else:
            ret = self.vmf_insert_page_mkwrite(vmf, pfn, write)
        self.folio_put(folio)
        return ret, entry

    # fs/dax.c dax_fault_is_synchronous(): a MAP_SYNC write while metadata is dirty
    def dax_fault_is_synchronous(self, vmf: Vmf, iomap: Iomap) -> bool:
        return vmf.write and not vmf.cow_page and vmf.vma.sync and iomap.dirty

    # fs/dax.c dax_finish_sync_fault() (6.15): fsync the faulting range, then map
    def dax_finish_sync_fault(self, vmf: Vmf, order: int, pfn: int) -> int:
        start = vmf.pgoff
        if self.vfs_fsync_range(vmf.vma.ino, start, start + (1 << order) - 1):
            return VM_FAULT_SIGBUS
        return self.dax_insert_pfn_mkwrite(vmf, pfn, order)

    # fs/dax.c dax_insert_pfn_mkwrite() (6.15): dirty the entry, then map the pfn
    # writable, holding a temporary folio reference around the insert.
    def dax_insert_pfn_mkwrite(self, vmf: Vmf, pfn: int, order: int) -> int:
        xa = self.i_pages[vmf.vma.ino]
        index = vmf.pgoff & ~((1 << order) - 1)
        entry = self.get_next_unlocked_entry(xa, index, order)
        # Did we race with someone splitting entry or so?
        if entry is None or entry == "conflict" or (order == 0 and dax_is_pmd_entry(entry)):
            return VM_FAULT_NOPAGE
        xa.set_mark(index, xa.dirty)
        folio = self.pfn_folio(pfn)
        self.folio_ref_inc(folio)
        if order == 0:
            ret = self.vmf_insert_page_mkwrite(vmf, pfn, True)
        elif order == self.PMD_ORDER:
            ret = self.vmf_insert_folio_pmd(vmf, folio, True)
        else:
            ret = VM_FAULT_FALLBACK
        self.folio_put(folio)
        return ret

    # fs/dax.c dax_fault_cow_page(): copy (or zero) into the private COW page
    def dax_fault_cow_page(self, vmf: Vmf, iomap: Iomap) -> int:
        return VM_FAULT_DONE_COW

    # fs/dax.c dax_iomap_pte_fault() (6.15, 7.2): the iomap_iter's `.len = PAGE_SIZE`,
    # 4 KiB of a model page that stands for more (not `whole`)
    def dax_iomap_pte_fault(self, vmf: Vmf) -> int:
        ino = vmf.vma.ino
        if vmf.pgoff >= self.fs.size[ino]:
            return VM_FAULT_SIGBUS
        write = vmf.write and not vmf.cow_page
        entry = self.grab_mapping_entry(ino, vmf.pgoff, 0)
        if entry == FALLBACK:
            return VM_FAULT_FALLBACK
        slot = vmf.address >> self.PMD_ORDER
        if slot in self.mms[vmf.mm].pmd:  # raced with a PMD fault
            return VM_FAULT_NOPAGE
        iomap = self.xfs_dax_iomap_begin(ino, vmf.pgoff, 1, write, False)
        if iomap is None:
            return VM_FAULT_SIGBUS  # -ENOSPC: dax_fault_return()
        ret, entry = self.dax_fault_iter(vmf, iomap, entry, False)
        if ret != VM_FAULT_SIGBUS and iomap.new:
            ret |= VM_FAULT_MAJOR
        if write:  # iomap_iter() -> ->iomap_end(): one page written unless an error
            self.xfs_dax_write_iomap_end(ino, vmf.pgoff, 1, 0 if ret & VM_FAULT_ERROR else 1,
                                         False)
        return ret

    # fs/dax.c dax_fault_check_fallback() (6.15)
    def dax_fault_check_fallback(self, vmf: Vmf, max_pgoff: int) -> bool:
        vma = vmf.vma
        pmd_addr = vmf.address & ~self.PG_PMD_COLOUR
        if (vmf.pgoff & self.PG_PMD_COLOUR) != (vmf.address & self.PG_PMD_COLOUR):
            return True
        if vmf.write and not vma.shared:  # fall back to PTEs if we're going to COW
            return True
        if pmd_addr < vma.start or pmd_addr + self.PG_PMD_NR > vma.end:
            return True
        if (vmf.pgoff | self.PG_PMD_COLOUR) >= max_pgoff:
            return True
        return False

    # fs/dax.c dax_iomap_pmd_fault() (6.15, 7.2): `iomap_length(&iter) < PMD_SIZE` falls
    # back -- a group whose last page's block covers only its first 4 KiB (allocated
    # by a PTE fault) is a shorter extent, followed by a hole
    def dax_iomap_pmd_fault(self, vmf: Vmf) -> int:
        ino = vmf.vma.ino
        index = vmf.pgoff & ~self.PG_PMD_COLOUR
        max_pgoff = self.fs.size[ino]
        if index >= max_pgoff:
            return VM_FAULT_SIGBUS
        ret = VM_FAULT_FALLBACK
        if not self.dax_fault_check_fallback(vmf, max_pgoff):
            entry = self.grab_mapping_entry(ino, index, self.PMD_ORDER)
            if entry != FALLBACK:
                mmst = self.mms[vmf.mm]
                slot = vmf.address >> self.PMD_ORDER
                if slot in mmst.tables and slot not in mmst.pmd:
                    return 0  # raced with a PTE fault; retried
                iomap = self.xfs_dax_iomap_begin(ino, index, self.PG_PMD_NR, vmf.write)
                if iomap is not None and iomap.length >= self.PG_PMD_NR:
                    ret, entry = self.dax_fault_iter(vmf, iomap, entry, True)
                if iomap is not None and vmf.write:
                    # iomap_iter() -> xfs_dax_write_iomap_end(): a PMD written unless it
                    # fell back; the end covers the iomap, at most the PMD
                    self.xfs_dax_write_iomap_end(
                        ino, index, min(iomap.length, self.PG_PMD_NR),
                        0 if ret == VM_FAULT_FALLBACK else self.PG_PMD_NR)
        if ret == VM_FAULT_FALLBACK:
            self.split_huge_pmd(vmf.mm, vmf.vma, vmf.address)
        return ret

    # fs/dax.c dax_iomap_fault()
    def dax_iomap_fault(self, vmf: Vmf, order: int) -> int:
        if order == 0:
            return self.dax_iomap_pte_fault(vmf)
        if order == self.PMD_ORDER:
            return self.dax_iomap_pmd_fault(vmf)
        return VM_FAULT_FALLBACK

    # ---- writeback -------------------------------------------------------------------
    # fs/dax.c dax_writeback_mapping_range() + dax_writeback_one() (6.15):
    # tag DIRTY -> TOWRITE, then write-protect every mapping of each entry, clear tags.
    def dax_writeback_mapping_range(self, ino: int, start: int, end: int) -> None:
        xa = self.i_pages[ino]
        for index, _entry in xa.for_each(start, end):
            if index in xa.dirty:
                xa.towrite.add(index)  # tag_pages_for_writeback()
        for index, entry in xa.for_each(start, end):
            if index not in xa.towrite:
                continue
            if self.WARN_ON_ONCE(dax_is_zero_entry(entry) or dax_is_empty_entry(entry),
                                 "dax_is_zero_entry(entry) || dax_is_empty_entry(entry)"):
                continue
            self.dax_entry_mkclean(ino, index, dax_to_pfn(entry),
                                   1 << self.dax_entry_order(entry))
            xa.towrite.discard(index)
            xa.dirty.discard(index)

    # mm/rmap.c pfn_mkclean_range() via dax_entry_mkclean(): write-protect the PTEs and
    # PMDs of every VMA of the file that map [pfn, pfn + nr) at file offsets [index..).
    def dax_entry_mkclean(self, ino: int, index: int, pfn: int, nr: int) -> None:
        for _mm, mmst in enumerate(self.mms):
            for vma in mmst.each_vma():
                if vma.ino != ino:
                    continue
                for i in range(index, index + nr):
                    if not vma.covers(i):
                        continue
                    va = vma.vaddr(i)
                    pte = mmst.pte.get(va)
                    if pte is not None and pfn <= pte[0] < pfn + nr and pte[1]:
                        mmst.pte[va] = (pte[0], False)
                    slot = va >> self.PMD_ORDER
                    pmd = mmst.pmd.get(slot)
                    if pmd is not None and pmd[0] == pfn and pmd[1]:
                        mmst.pmd[slot] = (pmd[0], False)

    # ---- write(2) -------------------------------------------------------------------
    # fs/dax.c dax_iomap_rw() (6.15, 7.2) for a write: one dax_iomap_iter() per iomap the
    # filesystem hands back; returns (pages written, error of the iomap that stopped it)
    # `src` is a source buffer in a DAX mapping, (mm, vma, first source page), or None.
    def dax_iomap_rw(self, ino: int, pos: int, count: int, src=None) -> tuple[int, str]:
        done = 0
        while done < count:
            # a CoW iomap's blocks are in the CoW fork (xfs_reflink_allocate_cow with
            # convert_now); the data fork keeps the old ones until ->iomap_end
            iomap = self.xfs_dax_iomap_begin(ino, pos + done, count - done, True)
            if iomap is None:
                return done, ENOSPC
            self.dax_iomap_iter(ino, pos + done, iomap, src, done)
            self.xfs_dax_write_iomap_end(ino, pos + done, iomap.length, iomap.length)
            done += iomap.length
        return done, OK

    # fs/dax.c dax_iomap_iter() (6.15, 7.2) for a write.  "Write can allocate block for an
    # area which has a hole page mapped into page tables", and since "fsdax: invalidate
    # pages when CoW" (6.6) a CoW write drops the range's entries too: dirty marks
    # cleared first, then invalidate_inode_pages2_range(), which disassociates each
    # entry and only afterwards unmaps the range.  The data is copied straight to pmem
    # (dax_iomap_copy_around + dax_copy_from_iter): no struct page is touched.
    def dax_iomap_iter(self, ino: int, pos: int, iomap: Iomap, src=None, off: int = 0) -> None:
        end = pos + iomap.length
        cow = iomap.shared
        if iomap.new or cow:
            if cow:
                self.dax_clear_dirty_range(ino, pos, end - 1)
            self.invalidate_inode_pages2_range(ino, pos, end - 1)
        if src is not None:
            self.dax_copy_from_iter(src, off, iomap.length)

    # fs/dax.c dax_copy_from_iter() from a user buffer in a DAX mapping (`src`: mm, slot,
    # first source page): copy_from_user() faults each source page in that is not mapped
    def dax_copy_from_iter(self, src, off: int, nr: int) -> None:
        mm, slot, first = src
        for j in range(nr):
            self.copy_from_user(mm, slot, first + off + j)

    # fs/dax.c __dax_clear_dirty_range() (6.15, 7.2)
    def dax_clear_dirty_range(self, ino: int, start: int, end: int) -> None:
        xa = self.i_pages[ino]
        for index, _entry in xa.for_each(start, end):
            xa.dirty.discard(index)
            xa.towrite.discard(index)

    # fs/dax.c __dax_invalidate_entry() (6.15, 7.2): a clean entry is disassociated and
    # erased (whole, if multi-index); a dirty one stays unless truncating.  1 if erased.
    def dax_invalidate_entry(self, ino: int, index: int, trunc: bool) -> int:
        xa = self.i_pages[ino]
        entry = self.get_next_unlocked_entry(xa, index, 0)
        if entry is None:
            return 0
        base = xa.tie_base(index)
        if not trunc and (base in xa.dirty or base in xa.towrite):
            return 0
        self.dax_disassociate_entry(entry, ino, trunc)
        xa.store(index, 0, None)
        self.nrpages[ino] -= 1 << self.dax_entry_order(entry)
        return 1

    # fs/dax.c dax_delete_mapping_entry() (6.1 .. 7.2): "This should only be called from
    # truncate": WARN_ON_ONCE(!ret) when there was nothing to delete
    def dax_delete_mapping_entry(self, ino: int, index: int) -> int:
        ret = self.dax_invalidate_entry(ino, index, True)
        self.WARN_ON_ONCE(not ret, "!ret")
        return ret

    # fs/dax.c dax_invalidate_mapping_entry_sync() (6.15, 7.2)
    def dax_invalidate_mapping_entry_sync(self, ino: int, index: int) -> int:
        return self.dax_invalidate_entry(ino, index, False)

    # ---- memory failure helpers ------------------------------------------------------
    # fs/dax.c dax_lock_folio() (6.15): needs folio->mapping; a shared folio has none
    def dax_lock_folio(self, folio: Page) -> bool:
        return folio.mapping is not None

    # fs/dax.c dax_lock_mapping_entry(): (cookie, page) for the entry at index
    def dax_lock_mapping_entry(self, ino: int, index: int) -> Page | None:
        entry = self.i_pages[ino].load(index)
        if entry is None or dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return None
        return self.pages[dax_to_pfn(entry)]

