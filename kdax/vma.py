"""mm/vma.c: splitting, merging and unmapping part of a process's address space.

The VMA tree itself is world bookkeeping (`MMState.split_vma` and friends); what is
ported here is what those steps do to page tables: the huge PMD a split point falls
inside, the zap of the unmapped range and the page tables freed after it.
"""

from __future__ import annotations

from daxfuzz.vocab.world import Vma
from kdax.api import KernelAPI


class Vmas(KernelAPI):
    """mm/vma.c and mm/huge_memory.c's VMA hooks, 6.15 and 7.2."""

    # mm/huge_memory.c split_huge_pmd_if_needed() (6.15, 7.2): a split point that is not
    # PMD-aligned, inside a PMD range the VMA holds whole, splits a huge PMD mapped there
    # (split_huge_pmd_address(); for a DAX file VMA: zapped)
    def split_huge_pmd_if_needed(self, mm: int, vma: Vma, va: int) -> None:
        if not va & self.PG_PMD_COLOUR:
            return
        s0 = va & ~self.PG_PMD_COLOUR
        if vma.start <= s0 and s0 + self.PG_PMD_NR <= vma.end:
            if va >> self.PMD_ORDER in self.mms[mm].pmd:
                self.split_huge_pmd(mm, vma, va)

    # mm/vma.c split_vma() -> __split_vma() (6.15, 7.2): vma_adjust_trans_huge(vma,
    # vm_start, addr), then the VMA becomes two, both with its anon_vma
    def split_vma(self, mm: int, slot: int, va: int) -> None:
        mmst = self.mms[mm]
        vma = mmst.vma_at(slot, va)
        if vma is None or vma.start == va:
            return
        self.split_huge_pmd_if_needed(mm, vma, vma.start)
        self.split_huge_pmd_if_needed(mm, vma, va)
        mmst.split_vma(slot, va)

    # mm/vma.c do_vmi_munmap() -> do_vmi_align_munmap() (6.15, 7.2): split at both ends
    # (vms_gather_munmap_vmas), then vms_clear_ptes(): unmap_vmas() over every detached
    # VMA (anon pages too) and free_pgtables() of what no remaining VMA still uses
    def do_vmi_munmap(self, mm: int, slot: int, lo: int, hi: int) -> None:
        mmst = self.mms[mm]
        if slot not in mmst.vmas:
            return
        self.split_vma(mm, slot, lo)
        self.split_vma(mm, slot, hi)
        gone = mmst.detach_vmas(slot, lo, hi)
        for vma in gone:
            self.zap_vma_range(mm, vma, vma.pgoff, vma.pgoff + vma.pages - 1, True)
        self.free_pgtables(mm, gone)

    # mm/memory.c free_pgtables() (6.15, 7.2): free_pgd_range() between the neighbours'
    # floor and ceiling frees each PTE table of the unmapped VMAs whose PMD range no
    # other VMA overlaps
    def free_pgtables(self, mm: int, gone: list[Vma]) -> None:
        mmst = self.mms[mm]
        for vma in gone:
            for pslot in range(vma.start >> self.PMD_ORDER,
                               ((vma.end - 1) >> self.PMD_ORDER) + 1):
                if pslot in mmst.tables and not mmst.pmd_in_use(pslot, self.PMD_ORDER):
                    mmst.tables.discard(pslot)
