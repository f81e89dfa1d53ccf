"""mm/madvise.c: the advice that zaps a range of a VMA and keeps the VMA."""

from __future__ import annotations

from daxfuzz.vocab.world import Vma
from kdax.api import KernelAPI


class Madvise(KernelAPI):
    """mm/madvise.c, 6.15 and 7.2."""

    # mm/madvise.c madvise_dontneed_single_vma() (6.15, 7.2): zap the range with
    # details.reclaim_pt (private COW copies go too: should_zap_cows() is true), so a
    # PTE table the range covers whole is freed when it ends up empty (CONFIG_PT_RECLAIM,
    # "mm: pgtable: reclaim empty PTE page in madvise(MADV_DONTNEED)", 6.14).
    def madvise_dontneed_single_vma(self, mm: int, vma: Vma, first: int, last: int) -> None:
        self.zap_vma_range(mm, vma, first, last, True, reclaim_pt=True)
