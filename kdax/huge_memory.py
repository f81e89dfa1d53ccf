"""mm/huge_memory.c: PMD mappings of fs-DAX folios."""

from __future__ import annotations

from daxfuzz.vocab.world import HUGE_ZERO, Vma
from kdax.api import KernelAPI
from kdax.mm_types import Page
from kdax.vm_fault import VM_FAULT_FALLBACK, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, Vmf


class HugeMemory(KernelAPI):
    """mm/huge_memory.c, 6.15."""

    # mm/huge_memory.c vmf_insert_folio_pmd() (6.15): reference + PMD mapcount only if
    # the PMD was none; a present PMD with the same pfn is made writable on write.
    def vmf_insert_folio_pmd(self, vmf: Vmf, folio: Page, write: bool) -> int:
        vma = vmf.vma
        addr = vmf.address & ~self.PG_PMD_COLOUR
        if addr < vma.start or addr >= vma.end:
            return VM_FAULT_SIGBUS
        if self.WARN_ON_ONCE(self.folio_order(folio) != self.PMD_ORDER,
                             "folio_order(folio) != PMD_ORDER"):
            return VM_FAULT_SIGBUS
        mmst = self.mms[vmf.mm]
        slot = vmf.address >> self.PMD_ORDER
        old = mmst.pmd.get(slot)
        if old is None:
            self.folio_get(folio)
            self.folio_add_file_rmap_pmd(folio, folio)
        self.insert_pfn_pmd(vmf, slot, folio.pfn, write)
        return VM_FAULT_NOPAGE

    # mm/huge_memory.c insert_pfn_pmd() (6.15)
    def insert_pfn_pmd(self, vmf: Vmf, slot: int, pfn: int, write: bool) -> None:
        mmst = self.mms[vmf.mm]
        old = mmst.pmd.get(slot)
        if old is not None:
            if write:
                if old[0] != pfn:
                    self.WARN_ON_ONCE(old[0] != HUGE_ZERO, "!is_huge_zero_pmd(*pmd)")
                    return
                mmst.pmd[slot] = (pfn, vmf.vma.write)
            return
        mmst.pmd[slot] = (pfn, bool(write and vmf.vma.write))

    # mm/huge_memory.c zap_huge_pmd() (6.15): the huge zero PMD is just cleared; a
    # DAX folio loses its PMD mapcount, then its reference via the mmu_gather.
    def zap_huge_pmd(self, mm: int, vma: Vma, slot: int) -> None:
        pfn, _w = self.mms[mm].pmd.pop(slot)
        if pfn == HUGE_ZERO:
            return
        page = self.pages[pfn]
        folio = self.page_folio(page)
        self.folio_remove_rmap_pmd(folio, page)
        self.WARN_ON_ONCE(self.folio_mapcount(folio) < 0, "folio_mapcount(folio) < 0")
        self.VM_BUG_ON(page is not folio, "!PageHead(page)")
        self.tlb_remove_folio(folio)

    # mm/huge_memory.c __split_huge_pmd_locked() (6.15) for a file VMA: the PMD is
    # cleared and, for a DAX folio, its mapcount and reference are dropped.
    def split_huge_pmd(self, mm: int, vma: Vma, address: int) -> None:
        mmst = self.mms[mm]
        slot = address >> self.PMD_ORDER
        old = mmst.pmd.pop(slot, None)
        if old is None or old[0] == HUGE_ZERO:
            return
        page = self.pages[old[0]]
        folio = self.page_folio(page)
        self.folio_remove_rmap_pmd(folio, page)
        self.folio_put(folio)

    # mm/memory.c wp_huge_pmd() (6.15): shared VMAs retry ->huge_fault for write,
    # otherwise (or on fallback) split and fall back to PTEs.
    def wp_huge_pmd(self, vmf: Vmf) -> int:
        if vmf.vma.shared:
            ret = self.xfs_filemap_huge_fault(vmf, self.PMD_ORDER)
            if not ret & VM_FAULT_FALLBACK:
                return ret
        self.split_huge_pmd(vmf.mm, vmf.vma, vmf.address)
        return VM_FAULT_FALLBACK
