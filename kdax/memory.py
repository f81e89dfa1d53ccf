"""mm/memory.c: the fault dispatcher, PTE insertion, zapping and write-protect faults.

Only what an fs-DAX file VMA reaches is ported; anonymous copy-on-write pages are
modelled as opaque ANON PTEs (they are not device pages).
"""

from __future__ import annotations

from daxfuzz.vocab.world import ANON, ZERO_PFN, Vma
from kdax.api import KernelAPI
from kdax.vm_fault import (
    VM_FAULT_DONE_COW,
    VM_FAULT_ERROR,
    VM_FAULT_FALLBACK,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
    Vmf,
)


class Memory(KernelAPI):
    """mm/memory.c, 6.15."""

    # ---- the fault entry point -------------------------------------------------------
    # mm/memory.c __handle_mm_fault() (6.15): try a huge PMD when the PMD is none and
    # THP is allowed (for DAX: unless VM_NOHUGEPAGE); a write to a read-only huge PMD
    # goes to wp_huge_pmd(); everything else is a PTE fault.
    def handle_mm_fault(self, mm: int, vma: Vma, address: int, write: bool) -> int:
        if write and not vma.write:
            return VM_FAULT_SIGSEGV  # access_error() in the arch fault handler
        vmf = Vmf(mm, vma, address, write)
        mmst = self.mms[mm]
        slot = address >> self.PMD_ORDER
        pmd = mmst.pmd.get(slot)
        if pmd is None and slot not in mmst.tables:
            if vma.huge:
                ret = self.create_huge_pmd(vmf)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
        elif pmd is not None:
            if write and not pmd[1]:
                ret = self.wp_huge_pmd(vmf)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
            else:
                return 0  # huge_pmd_set_accessed()
        return self.handle_pte_fault(vmf)

    # mm/memory.c create_huge_pmd(): vma->vm_ops->huge_fault (xfs_filemap_huge_fault)
    def create_huge_pmd(self, vmf: Vmf) -> int:
        return self.xfs_filemap_huge_fault(vmf, self.PMD_ORDER)

    # mm/memory.c handle_pte_fault()
    def handle_pte_fault(self, vmf: Vmf) -> int:
        pte = self.mms[vmf.mm].pte.get(vmf.address)
        if pte is None:
            return self.do_fault(vmf)
        if vmf.write and not pte[1]:
            return self.do_wp_page(vmf, pte)
        return 0

    # mm/memory.c do_fault(): read, copy-on-write (private write) or shared write
    def do_fault(self, vmf: Vmf) -> int:
        if not vmf.write:
            return self.do_read_fault(vmf)
        if not vmf.vma.shared:
            return self.do_cow_fault(vmf)
        return self.do_shared_fault(vmf)

    def do_read_fault(self, vmf: Vmf) -> int:
        return self.__do_fault(vmf)

    def do_shared_fault(self, vmf: Vmf) -> int:
        return self.__do_fault(vmf)

    # mm/memory.c __do_fault(): vma->vm_ops->fault (xfs_filemap_fault)
    def __do_fault(self, vmf: Vmf) -> int:
        return self.xfs_filemap_fault(vmf)

    # mm/memory.c do_cow_fault(): the DAX handler copies into vmf->cow_page, then
    # finish_fault() installs that anonymous page.
    def do_cow_fault(self, vmf: Vmf) -> int:
        vmf.cow_page = True
        ret = self.__do_fault(vmf)
        if ret & VM_FAULT_ERROR or not ret & VM_FAULT_DONE_COW:
            return ret
        self.finish_fault_anon(vmf)
        return ret

    def finish_fault_anon(self, vmf: Vmf) -> None:
        mmst = self.mms[vmf.mm]
        mmst.anon.add(vmf.vma.start)  # do_cow_fault(): anon_vma_prepare()
        mmst.tables.add(vmf.address >> self.PMD_ORDER)
        mmst.pte[vmf.address] = (ANON, True)

    # mm/memory.c do_wp_page() (6.15): fs-DAX pages in shared mappings take
    # wp_pfn_shared() (pfn_mkwrite); private mappings copy.
    def do_wp_page(self, vmf: Vmf, pte: tuple[int, bool]) -> int:
        pfn = pte[0]
        if pfn == ANON:
            self.mms[vmf.mm].pte[vmf.address] = (ANON, True)  # wp_page_reuse()
            return 0
        if vmf.vma.shared:
            return self.wp_pfn_shared(vmf)
        self.mms[vmf.mm].anon.add(vmf.vma.start)  # wp_page_copy() starts with vmf_anon_prepare()
        return self.wp_page_copy(vmf, pfn)

    # mm/memory.c wp_pfn_shared(): ->pfn_mkwrite, then finish_mkwrite_fault()
    def wp_pfn_shared(self, vmf: Vmf) -> int:
        vmf.mkwrite = True
        ret = self.xfs_filemap_pfn_mkwrite(vmf)
        if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            return ret
        pte = self.mms[vmf.mm].pte.get(vmf.address)
        if pte is not None:
            self.mms[vmf.mm].pte[vmf.address] = (pte[0], True)
        return ret

    # mm/memory.c wp_page_copy(): new anon page; the old folio loses its mapcount and
    # the mapping's reference (the extra folio_get of do_wp_page is put again).
    def wp_page_copy(self, vmf: Vmf, old_pfn: int) -> int:
        mmst = self.mms[vmf.mm]
        if old_pfn >= 0:
            page = self.pages[old_pfn]
            folio = self.page_folio(page)
            self.folio_get(folio)  # do_wp_page: folio_get() before copying
            self.folio_remove_rmap_pte(folio, page)
            mmst.pte[vmf.address] = (ANON, True)
            self.folio_put(folio)  # "Free the old page.."
            self.folio_put(folio)  # do_wp_page's reference
        else:
            mmst.pte[vmf.address] = (ANON, True)
        return 0

    # ---- inserting pages -------------------------------------------------------------
    # mm/memory.c insert_page_into_pte_locked() (6.15): a new PTE takes a reference
    # and a mapcount; the zero page is special and takes neither; a present PTE with
    # mkwrite and the same pfn is only made writable.
    def insert_page_into_pte_locked(self, vmf: Vmf, pfn: int, mkwrite: bool) -> int:
        mmst = self.mms[vmf.mm]
        old = mmst.pte.get(vmf.address)
        if old is not None:
            if not mkwrite:
                return -16  # -EBUSY
            if old[0] != pfn:
                self.WARN_ON_ONCE(old[0] != ZERO_PFN, "!is_zero_pfn(pte_pfn(pteval))")
                return -14  # -EFAULT
            mmst.pte[vmf.address] = (pfn, vmf.vma.write)  # maybe_mkwrite()
            return 0
        if pfn == ZERO_PFN:
            mmst.pte[vmf.address] = (ZERO_PFN, False)
        else:
            page = self.pages[pfn]
            folio = self.page_folio(page)
            self.folio_get(folio)
            self.folio_add_file_rmap_pte(folio, page)
            mmst.pte[vmf.address] = (pfn, bool(mkwrite and vmf.vma.write))
        return 0

    # mm/memory.c validate_page_before_insert() (6.15, 7.2): a folio nobody holds a
    # reference on is refused (-EINVAL); the zero page is allowed in a DAX (mixed) VMA
    def validate_page_before_insert(self, pfn: int) -> int:
        if pfn != ZERO_PFN and not self.page_folio(self.pages[pfn])._refcount:
            return -22  # -EINVAL
        return 0

    # mm/memory.c insert_page() (6.15): validate, then get_locked_pte() allocates the
    # PTE table
    def insert_page(self, vmf: Vmf, pfn: int, mkwrite: bool) -> int:
        err = self.validate_page_before_insert(pfn)
        if err:
            return err
        if vmf.address >> self.PMD_ORDER in self.mms[vmf.mm].pmd:
            return -16  # a huge PMD is in the way: pte_alloc fails to map
        self.mms[vmf.mm].tables.add(vmf.address >> self.PMD_ORDER)
        return self.insert_page_into_pte_locked(vmf, pfn, mkwrite)

    # mm/memory.c vmf_insert_page_mkwrite() (6.15): -EBUSY counts as success
    def vmf_insert_page_mkwrite(self, vmf: Vmf, pfn: int, write: bool) -> int:
        if not vmf.vma.start <= vmf.address < vmf.vma.end:
            return VM_FAULT_SIGBUS
        err = self.insert_page(vmf, pfn, write)
        if err < 0 and err != -16:
            return VM_FAULT_SIGBUS
        return VM_FAULT_NOPAGE

    # ---- zapping ---------------------------------------------------------------------
    # mm/memory.c zap_present_ptes() (6.15): normal pages lose mapcount then (after the
    # TLB flush) their reference; the zero page is just cleared; anon COW pages are
    # skipped unless even_cows.
    def zap_pte(self, mm: int, vaddr: int, even_cows: bool) -> None:
        mmst = self.mms[mm]
        pfn, _w = mmst.pte[vaddr]
        if pfn == ANON:
            if even_cows:
                del mmst.pte[vaddr]
            return
        del mmst.pte[vaddr]
        if pfn == ZERO_PFN:
            return
        page = self.pages[pfn]
        folio = self.page_folio(page)
        self.folio_remove_rmap_pte(folio, page)
        self.tlb_remove_folio(folio)

    # mm/mmu_gather.c: the reference is dropped when the gathered pages are freed
    def tlb_remove_folio(self, folio) -> None:
        self.folio_put(folio)

    # mm/memory.c zap_page_range_single() over file pages [first, last] of one VMA;
    # with reclaim_pt, zap_pte_range() (6.14+) frees each PTE table the range covers
    # whole once nothing in it was skipped (pte_table_reclaim_possible()).
    def zap_vma_range(self, mm: int, vma: Vma, first: int, last: int, even_cows: bool,
                      reclaim_pt: bool = False) -> None:
        lo = max(first, vma.pgoff)
        hi = min(last, vma.pgoff + vma.pages - 1)
        if lo > hi:
            return
        mmst = self.mms[mm]
        va_lo, va_hi = vma.vaddr(lo), vma.vaddr(hi)
        # zap_pmd_range(): a huge PMD partly in range is split (zapped for DAX)
        for slot in range(va_lo >> self.PMD_ORDER, (va_hi >> self.PMD_ORDER) + 1):
            if slot in mmst.pmd:
                s0 = slot << self.PMD_ORDER
                if va_lo <= s0 and s0 + self.PG_PMD_NR - 1 <= va_hi:
                    self.zap_huge_pmd(mm, vma, slot)
                else:
                    self.split_huge_pmd(mm, vma, s0)
        for va in range(va_lo, va_hi + 1):
            if va in mmst.pte:
                self.zap_pte(mm, va, even_cows)
        if reclaim_pt:
            for slot in range(va_lo >> self.PMD_ORDER, (va_hi >> self.PMD_ORDER) + 1):
                s0 = slot << self.PMD_ORDER
                if (slot in mmst.tables and va_lo <= s0 and s0 + self.PG_PMD_NR - 1 <= va_hi
                        and not any(s0 + i in mmst.pte for i in range(self.PG_PMD_NR))):
                    mmst.tables.discard(slot)  # zap_empty_pte_table() + pte_free_tlb()

    # mm/memory.c unmap_mapping_pages(): every VMA of the file, all processes
    def unmap_mapping_pages(self, ino: int, start: int, nr: int, even_cows: bool) -> None:
        last = start + nr - 1
        for mm, mmst in enumerate(self.mms):
            for vmas in list(mmst.vmas.values()):
                for vma in vmas:
                    if vma.ino == ino:
                        self.zap_vma_range(mm, vma, start, last, even_cows)

    # mm/memory.c unmap_mapping_range(holebegin, holelen=0 -> to EOF, even_cows)
    def unmap_mapping_range(self, ino: int, start: int, nr: int, even_cows: bool) -> None:
        self.unmap_mapping_pages(ino, start, nr if nr else 1 << 40, even_cows)

    # ---- fork ------------------------------------------------------------------------
    # mm/memory.c vma_needs_copy() (6.15, 7.2): VM_COPY_ON_FORK (PFNMAP, MIXEDMAP,
    # UFFD_WP, MAYBE_GUARD: none on an fs-DAX VMA) or an anon_vma; "Don't copy ptes
    # where a page fault will fill them correctly"
    def vma_needs_copy(self, src_mm: int, src_vma: Vma) -> bool:
        return src_vma.start in self.mms[src_mm].anon

    # mm/memory.c copy_page_range() -> copy_pmd_range() -> copy_pte_range() (6.15, 7.2):
    # copy_huge_pmd() skips a file PMD ("Skip if can be re-fill on fault"); a PTE table
    # of the parent is allocated in the child, then each present PTE copied.
    def copy_page_range(self, dst_mm: int, src_mm: int, src_vma: Vma) -> None:
        if not self.vma_needs_copy(src_mm, src_vma):
            return
        src, dst = self.mms[src_mm], self.mms[dst_mm]
        for slot in range(src_vma.start >> self.PMD_ORDER,
                          ((src_vma.end - 1) >> self.PMD_ORDER) + 1):
            if slot in src.pmd or slot not in src.tables:
                continue
            dst.tables.add(slot)
            s0 = slot << self.PMD_ORDER
            for va in range(max(s0, src_vma.start), min(s0 + self.PG_PMD_NR, src_vma.end)):
                pte = src.pte.get(va)
                if pte is not None:
                    self.copy_present_pte(dst_mm, src_mm, va, pte)

    # mm/memory.c copy_present_ptes() (7.2) for one PTE of a COW mapping: a file folio
    # gets the child's reference and mapcount (folio_ref_add + folio_dup_file_rmap_ptes);
    # the zero page is special (vm_normal_page() is NULL); an anonymous page is shared
    # write-protected (folio_try_dup_anon_rmap_ptes; the copy for a maybe-pinned anon
    # page, page_needs_cow_for_dma(), is not modelled: anon pages are opaque here);
    # a writable PTE is write-protected in both.
    def copy_present_pte(self, dst_mm: int, src_mm: int, va: int, pte: tuple[int, bool]) -> None:
        pfn, w = pte
        if pfn >= 0:
            page = self.pages[pfn]
            folio = self.page_folio(page)
            self.folio_ref_add(folio, 1)
            self.folio_dup_file_rmap_pte(folio, page)
        if w:
            self.mms[src_mm].pte[va] = (pfn, False)
        self.mms[dst_mm].pte[va] = (pfn, False)

