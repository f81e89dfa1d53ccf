"""Legacy fs-DAX (Linux <= 6.14), ported from Debian's linux-source-6.1 (6.1.192):
1-based refcounts, mappings that take no page reference, per-page association.

Read beside the 6.15 modules; each override names the 6.1 function it ports.

- Pages are never compound: fs-DAX pgmaps use vmemmap_shift 0; a PMD maps 2**order
  order-0 pages.
- An idle page has refcount 1 (mm/mm_init.c __init_zone_device_page leaves it at 1;
  free_zone_device_page() resets it).  PTEs are devmap pfn mappings
  (vmf_insert_mixed[_mkwrite]) and PMDs pfn PMDs (vmf_insert_pfn_pmd): no reference,
  no mapcount; zapping them touches no counter.
- GUP takes a reference per page (pin: +GUP_PIN_COUNTING_BIAS); releasing goes through
  put_devmap_managed_page_refs(), which wakes waiters when the count falls to 1.
- Busy means page_ref_count(page) > 1; waiters wait for == 1.
- dax_associate_entry() walks every pfn of the entry (for_each_mapped_pfn); a write
  fault of a shared (CoW) extent sets page->mapping = PAGE_MAPPING_DAX_COW and counts in
  page->index.  A read fault of a shared extent is a plain one (no IOMAP_F_SHARED for
  reads): it takes the page over, warning if another file's entry owns it.
- Layout breaking does not delete entries; truncate/punch/reflink delete their range
  (truncate_inode_pages_range), eviction deletes everything without waiting.  It finds
  no busy page in a file no VMA maps (mapping_mapped()): a pin outliving its mapping
  does not make truncate wait.
- write(2) invalidates only over newly allocated blocks, not over a CoW.
- MADV_DONTNEED keeps empty PTE tables (page-table reclaim came in 6.14).
- A long-term pin (io_uring fixed buffer) of an fs-DAX VMA is always EOPNOTSUPP: no
  GUP-fast path lets an anonymous copy through.
"""

from __future__ import annotations

from daxfuzz.vocab.blockfs import HOLE
from daxfuzz.vocab.rules import LEGACY_RULES
from daxfuzz.vocab.world import EFAULT, ENOTTY, EOPNOTSUPP, ZERO_PFN
from kdax.kernel import Kernel615
from kdax.mm import GUP_PIN_COUNTING_BIAS, Blocked
from kdax.mm_types import Page
from kdax.vm_fault import VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, Iomap, Vmf
from kdax.xarray import (
    DAX_PMD,
    dax_is_empty_entry,
    dax_is_zero_entry,
    dax_to_pfn,
)

PAGE_MAPPING_DAX_COW = "PAGE_MAPPING_DAX_COW"  # include/linux/page-flags.h: 0x1


class KernelLegacy(Kernel615):
    """Linux 6.1 fs-DAX."""

    name = "legacy"
    summary = "Linux <= 6.14 (ported from 6.1): idle refcount 1, maps take no reference"
    idle_refcount = 1
    convention = "legacy"
    oracle_rules = LEGACY_RULES

    # ---- fs/dax.c (6.1) ----------------------------------------------------------------
    def _mapped_pfns(self, entry: int) -> range:
        """for_each_mapped_pfn(): every pfn of a real entry; none for zero/empty."""
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return range(0)
        pfn = dax_to_pfn(entry)
        return range(pfn, pfn + (1 << self.dax_entry_order(entry)))

    # fs/dax.c dax_mapping_set_cow() (6.1)
    def dax_mapping_set_cow(self, page: Page) -> None:
        if page.mapping != PAGE_MAPPING_DAX_COW:
            # Reset the index if the page was already mapped regularly before.
            if page.mapping is not None:
                self.set_field(page, "index", 1)
            self.set_field(page, "mapping", PAGE_MAPPING_DAX_COW)
        self.set_field(page, "index", page.index + 1)

    # fs/dax.c dax_associate_entry() (6.1)
    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        size = 1 << self.dax_entry_order(entry)
        index = vmf.vma.index(vmf.address & ~(size - 1))
        for i, pfn in enumerate(self._mapped_pfns(entry)):
            page = self.pages[pfn]
            if shared:
                self.dax_mapping_set_cow(page)
            else:
                self.WARN_ON_ONCE(page.mapping is not None, "page->mapping")
                self.set_field(page, "mapping", mapping)
                self.set_field(page, "index", index + i)

    # fs/dax.c dax_disassociate_entry() (6.1)
    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        for pfn in self._mapped_pfns(entry):
            page = self.pages[pfn]
            self.WARN_ON_ONCE(trunc and page._refcount > 1, "trunc && page_ref_count(page) > 1")
            if page.mapping == PAGE_MAPPING_DAX_COW:
                # keep the CoW flag if this page is still shared
                old = page.index
                self.set_field(page, "index", (old - 1) & 0xFFFFFFFFFFFFFFFF)  # index--
                if old > 0:
                    continue
            else:
                self.WARN_ON_ONCE(page.mapping is not None and page.mapping != mapping,
                                  "page->mapping && page->mapping != mapping")
            self.set_field(page, "mapping", None)
            self.set_field(page, "index", 0)

    # fs/dax.c dax_busy_page() (6.1): the first page of the entry with a count above 1
    def dax_busy_page(self, entry: int) -> Page | None:
        for pfn in self._mapped_pfns(entry):
            if self.pages[pfn]._refcount > 1:
                return self.pages[pfn]
        return None

    # fs/dax.c dax_layout_busy_page_range() (6.1): "if (!dax_mapping(mapping) ||
    # !mapping_mapped(mapping)) return NULL;" -- a file no VMA maps has no busy page, so a
    # page pinned through a mapping since unmapped does not make truncate/punch wait
    # (6.15 dropped the check)
    def dax_layout_busy_page_range(self, ino: int, start: int, end: int) -> Page | None:
        if not any(vma.ino == ino for mmst in self.mms for vmas in mmst.vmas.values()
                   for vma in vmas):
            return None
        return super().dax_layout_busy_page_range(ino, start, end)

    def dax_page_is_idle(self, page: Page | None) -> bool:
        return page is not None and page._refcount == 1  # ___wait_var_event(... == 1)

    # fs/dax.c dax_fault_iter() (6.1): pfn mappings, no folio reference
    def dax_fault_iter(self, vmf: Vmf, iomap: Iomap, entry: int, pmd: bool) -> tuple[int, int]:
        write = vmf.write and not vmf.cow_page
        if not pmd and vmf.cow_page:
            return self.dax_fault_cow_page(vmf, iomap), entry
        if not write and iomap.type == Iomap.HOLE:
            if not pmd:
                return self.dax_load_hole(vmf, iomap, entry)
            return self.dax_pmd_load_hole(vmf, iomap, entry)
        if iomap.type != Iomap.MAPPED and not iomap.shared:
            self.WARN_ON_ONCE(True, "iomap->type != IOMAP_MAPPED")
            return VM_FAULT_SIGBUS, entry
        pfn = iomap.addr
        if pfn & ((self.PG_PMD_NR if pmd else 1) - 1):
            return (0x800 if pmd else VM_FAULT_SIGBUS), entry
        entry = self.dax_insert_entry(vmf, iomap, entry, pfn, DAX_PMD if pmd else 0)
        if self.dax_fault_is_synchronous(vmf, iomap):
            vmf.sync_pfn = pfn
            from kdax.vm_fault import VM_FAULT_NEEDDSYNC

            return VM_FAULT_NEEDDSYNC, entry
        if pmd:
            return self.vmf_insert_pfn_pmd(vmf, pfn, write), entry
        return self.vmf_insert_mixed(vmf, pfn, write), entry

    # fs/dax.c dax_insert_pfn_mkwrite() (6.1): no folio reference
    def dax_insert_pfn_mkwrite(self, vmf: Vmf, pfn: int, order: int) -> int:
        xa = self.i_pages[vmf.vma.ino]
        index = vmf.pgoff & ~((1 << order) - 1)
        entry = self.get_next_unlocked_entry(xa, index, order)
        if entry is None or entry == "conflict" or (order == 0 and entry & DAX_PMD):
            return VM_FAULT_NOPAGE
        xa.set_mark(index, xa.dirty)
        if order == 0:
            return self.vmf_insert_mixed(vmf, pfn, True)
        return self.vmf_insert_pfn_pmd(vmf, pfn, True)

    # ---- mm/memory.c, mm/huge_memory.c (6.1): pfn mappings -----------------------------
    # mm/memory.c vmf_insert_mixed[_mkwrite]() -> insert_pfn() (6.1): a devmap PTE
    def vmf_insert_mixed(self, vmf: Vmf, pfn: int, mkwrite: bool) -> int:
        mmst = self.mms[vmf.mm]
        old = mmst.pte.get(vmf.address)
        mmst.tables.add(vmf.address >> self.PMD_ORDER)
        if old is not None:
            if not mkwrite:
                return VM_FAULT_NOPAGE
            if old[0] != pfn:
                self.WARN_ON_ONCE(old[0] != ZERO_PFN, "!is_zero_pfn(pte_pfn(*pte))")
                return VM_FAULT_NOPAGE
            mmst.pte[vmf.address] = (pfn, vmf.vma.write)
            return VM_FAULT_NOPAGE
        mmst.pte[vmf.address] = (pfn, bool(mkwrite and vmf.vma.write))
        return VM_FAULT_NOPAGE

    # the zero page goes through vmf_insert_mixed() too (dax_load_hole, 6.1)
    def vmf_insert_page_mkwrite(self, vmf: Vmf, pfn: int, write: bool) -> int:
        return self.vmf_insert_mixed(vmf, pfn, write)

    # mm/huge_memory.c vmf_insert_pfn_pmd() -> insert_pfn_pmd() (6.1): a devmap PMD
    def vmf_insert_pfn_pmd(self, vmf: Vmf, pfn: int, write: bool) -> int:
        slot = vmf.address >> self.PMD_ORDER
        self.insert_pfn_pmd(vmf, slot, pfn, write)
        return VM_FAULT_NOPAGE

    # mm/memory.c zap_pte_range() (6.1): devmap PTEs are special, vm_normal_page() is
    # NULL: the PTE is cleared and no counter moves
    def zap_pte(self, mm: int, vaddr: int, even_cows: bool) -> None:
        mmst = self.mms[mm]
        pfn, _w = mmst.pte[vaddr]
        if pfn < 0 and pfn != ZERO_PFN and not even_cows:
            return  # an anon COW page in a private mapping
        del mmst.pte[vaddr]

    # mm/huge_memory.c zap_huge_pmd() (6.1): vma_is_special_huge() for DAX: just cleared
    def zap_huge_pmd(self, mm: int, vma, slot: int) -> None:
        del self.mms[mm].pmd[slot]

    def split_huge_pmd(self, mm: int, vma, address: int) -> None:
        self.mms[mm].pmd.pop(address >> self.PMD_ORDER, None)

    # mm/memory.c wp_page_copy() (6.1): old_page is NULL for a devmap PTE
    def wp_page_copy(self, vmf: Vmf, old_pfn: int) -> int:
        from daxfuzz.vocab.world import ANON

        self.mms[vmf.mm].pte[vmf.address] = (ANON, True)
        return 0

    # ---- mm/gup.c, mm/memremap.c (6.1) ------------------------------------------------
    # mm/memremap.c __put_devmap_managed_page_refs() (6.1): 1-based; wake at 1
    def folio_put_refs(self, folio: Page, refs: int) -> None:
        self.folio_ref_add(folio, -refs)
        if folio._refcount == 1:
            self.wake_up_var(folio)

    # mm/gup.c gup_put_folio() (6.1): order-0 devmap pages, bias for pins
    def gup_put_folio(self, folio: Page, refs: int, flags: int) -> None:
        from kdax.gup import FOLL_PIN

        if flags & FOLL_PIN:
            refs *= GUP_PIN_COUNTING_BIAS
        self.folio_put_refs(folio, refs)

    # fs/dax.c dax_iomap_iter() (6.1) for a write: only a new allocation (IOMAP_F_NEW,
    # a hole written) invalidates the range.  A CoW write leaves the entries and the
    # mappings of the old, shared block in place; "fsdax: invalidate pages when CoW"
    # (after 6.1) added the `|| cow`.
    def dax_iomap_iter(self, ino: int, pos: int, iomap: Iomap, src=None, off: int = 0) -> None:
        if iomap.new and not iomap.shared:
            self.invalidate_inode_pages2_range(ino, pos, pos + iomap.length - 1)
        if src is not None:
            self.dax_copy_from_iter(src, off, iomap.length)

    # mm/madvise.c madvise_dontneed_single_vma() (6.1): zap_page_range(); no PTE-table
    # reclaim before 6.14
    def madvise_dontneed_single_vma(self, mm: int, vma, first: int, last: int) -> None:
        self.zap_vma_range(mm, vma, first, last, True)

    # mm/truncate.c truncate_exceptional_pvec_entries() (6.1): a DAX entry is deleted
    # without a warning (layout breaking did not delete entries before 6.15)
    def truncate_folio_batch_exceptionals(self, ino: int, indices: list[int]) -> None:
        for index in indices:
            self.dax_delete_mapping_entry(ino, index)

    # mm/memory.c copy_present_pte() (6.1): an fs-DAX PTE is a special devmap pfn
    # mapping, vm_normal_page() is NULL: the PTE is copied, no page is touched
    def copy_present_pte(self, dst_mm: int, src_mm: int, va: int, pte: tuple[int, bool]) -> None:
        pfn, w = pte
        if w:
            self.mms[src_mm].pte[va] = (pfn, False)
        self.mms[dst_mm].pte[va] = (pfn, False)

    # ---- mm/gup.c, io_uring (6.1) -------------------------------------------------------
    # io_uring/rsrc.c io_pin_pages() (6.1): pin_user_pages(FOLL_WRITE | FOLL_LONGTERM),
    # no GUP-fast first, so check_vma_flags() (mm/gup.c, 6.1) refuses every page of an
    # fs-DAX VMA, an anonymous copy in a private mapping too
    def pin_user_pages_fast_longterm(self, mm: int, slot: int, pgoff: int) -> str:
        vma = self.mms[mm].find_vma(slot, pgoff)
        if vma is None:
            return EFAULT
        return EOPNOTSUPP

    # ---- fs/xfs (6.1) -----------------------------------------------------------------
    # fs/xfs/xfs_iomap.c xfs_read_iomap_begin() (6.1): xfs_reflink_trim_around_shared()
    # only `if (!error && (flags & IOMAP_REPORT))` -- not for a DAX read fault
    # (fs/xfs/xfs_file.c xfs_dax_fault() (6.1) passes &xfs_read_iomap_ops unless
    # `write_fault && !vmf->cow_page`): the data fork extent, untrimmed, without
    # IOMAP_F_SHARED.  So fs/dax.c dax_fault_is_cow() (6.1), `(iter->flags & IOMAP_WRITE)
    # && (iter->iomap.flags & IOMAP_F_SHARED)`, is just iomap.shared here: a read fault
    # of a reflinked extent is a plain one -- no unmap, a real entry kept, and
    # dax_associate_entry(cow=false) `WARN_ON_ONCE(page->mapping)` (fs/dax.c:380) when
    # the other file's entry already owns the page.  (Later kernels trim
    # `if (!error && ((flags & IOMAP_REPORT) || IS_DAX(inode)))`, 7.2's line 2204.)
    def xfs_dax_iomap_begin(self, ino: int, idx: int, length: int, write: bool,
                            whole: bool = True) -> Iomap | None:
        if write:
            return super().xfs_dax_iomap_begin(ino, idx, length, write, whole)
        pfn, n, _shared = self.fs.iomap_read(ino, idx, length, trim=False)
        if pfn == HOLE:
            return Iomap(Iomap.HOLE, 0, n, False, False)
        return Iomap(Iomap.MAPPED, pfn, n, False, False)

    # XFS_IOC_EXCHANGE_RANGE came in 6.10: xfs_file_ioctl() (6.1) does not know it
    def sys_exchange(self, op) -> str:
        return ENOTTY

    # fs/xfs/xfs_file.c xfs_break_dax_layouts() (6.1): wait for the busy page; no delete
    def xfs_break_dax_layouts(self, ino: int) -> int:
        page = self.dax_layout_busy_page_range(ino, 0, (1 << 63) - 1)
        if page is None:
            return 0
        raise Blocked(page.pfn)  # ___wait_var_event(&page->_refcount, == 1, ...)

    # fs/xfs/xfs_inode.c xfs_mmaplock_two_inodes_and_break_dax_layout() (6.1)
    def xfs_mmaplock_two_inodes_and_break_dax_layout(self, ip1: int, ip2: int) -> int:
        if ip1 > ip2:
            ip1, ip2 = ip2, ip1
        self.xfs_break_dax_layouts(ip1)
        if ip1 == ip2:
            return 0
        page = self.dax_layout_busy_page_range(ip2, 0, (1 << 63) - 1)
        if page is not None and page._refcount != 1:
            raise Blocked(page.pfn)  # goto again
        return 0

    # fs/xfs/xfs_super.c xfs_fs_evict_inode() (6.1): no dax_break_layout_final()
    def xfs_fs_evict_inode(self, ino: int) -> None:
        self.truncate_inode_pages_range(ino, 0, (1 << 63) - 1)
        self.clear_inode(ino)

    # ---- mm/memory-failure.c (6.1) ------------------------------------------------------
    # mm/memory-failure.c mf_generic_kill_procs() -> fs/dax.c dax_lock_page() (6.1):
    # dax_mapping(page->mapping) dereferences PAGE_MAPPING_DAX_COW (0x1) -> oops
    def dax_lock_folio(self, folio: Page) -> bool:
        if folio.mapping == PAGE_MAPPING_DAX_COW:
            raise RuntimeError("BUG: kernel NULL pointer dereference in dax_mapping() "
                               "(page->mapping == PAGE_MAPPING_DAX_COW)")
        return folio.mapping is not None
