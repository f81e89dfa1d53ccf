"""mm/mremap.c: moving part of a mapping to another address (MREMAP_FIXED)."""

from __future__ import annotations

from daxfuzz.vocab.world import EFAULT, OK, Vma
from kdax.api import KernelAPI


class Mremap(KernelAPI):
    """mm/mremap.c, 6.15 (one VMA per call)."""

    # mm/mremap.c do_mremap() -> check_prep_vma() -> mremap_to() (6.15) for
    # MREMAP_MAYMOVE|MREMAP_FIXED and old_len == new_len: the range must lie in one VMA
    # (-EFAULT otherwise); the destination was unmapped by the caller
    def do_mremap(self, mm: int, slot: int, lo: int, hi: int, to: int, new: int,
                  aligned: bool) -> str:
        vma = self.mms[mm].vma_at(slot, lo)
        if vma is None or hi > vma.end:
            return EFAULT
        self.move_vma(mm, vma, lo, hi, to, new, aligned)
        return OK

    # mm/mremap.c move_vma() (6.15, 7.2): copy_vma() makes the new VMA (same file
    # offset, flags and anon_vma), move_page_tables() moves what is mapped, then
    # unmap_source_vma() unmaps the old range (splitting the old VMA around it)
    def move_vma(self, mm: int, vma: Vma, lo: int, hi: int, to: int, new: int,
                 aligned: bool) -> None:
        mmst = self.mms[mm]
        nvma = vma._replace(slot=to, start=new, pgoff=vma.pgoff + lo - vma.start,
                            pages=hi - lo, aligned=aligned)
        mmst.vmas[to] = tuple(sorted(mmst.vmas.get(to, ()) + (nvma,)))
        if vma.start in mmst.anon:
            mmst.anon.add(new)  # anon_vma_clone()
        self.move_page_tables(mm, vma, lo, hi, new)
        self.do_vmi_munmap(mm, vma.slot, lo, hi)

    # mm/mremap.c move_page_tables() (6.15, 7.2), PMD by PMD in extents that end at the
    # next PMD boundary of either address: a huge PMD with a whole-PMD extent moves
    # (move_huge_pmd), otherwise it is split (zapped, for DAX); a PTE table with a
    # whole-PMD extent moves as it is (move_normal_pmd); else a table is allocated at
    # the new address and the PTEs moved (move_ptes).  No reference or mapcount
    # changes: the same pages are mapped elsewhere.  (7.2's try_realign_addr() moves a
    # first table whole instead of its PTEs: the same tables and PTEs result.)
    def move_page_tables(self, mm: int, vma: Vma, lo: int, hi: int, new: int) -> None:
        mmst = self.mms[mm]
        nr, order = self.PG_PMD_NR, self.PMD_ORDER
        old = lo
        while old < hi:
            extent = min(nr - (old & (nr - 1)), nr - (new & (nr - 1)), hi - old)
            ps_old, ps_new = old >> order, new >> order
            if ps_old in mmst.pmd:
                if extent == nr:
                    mmst.pmd[ps_new] = mmst.pmd.pop(ps_old)  # move_huge_pmd()
                    old, new = old + extent, new + extent
                    continue
                self.split_huge_pmd(mm, vma, old)
            if ps_old in mmst.tables:
                if extent == nr:
                    mmst.tables.discard(ps_old)  # move_normal_pmd()
                mmst.tables.add(ps_new)
                for i in range(extent):
                    pte = mmst.pte.pop(old + i, None)
                    if pte is not None:
                        mmst.pte[new + i] = pte
            old, new = old + extent, new + extent
