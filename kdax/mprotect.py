"""mm/mprotect.c: changing the protection of part of a mapping."""

from __future__ import annotations

from daxfuzz.vocab.world import ENOMEM, OK, Vma
from kdax.api import KernelAPI


class Mprotect(KernelAPI):
    """mm/mprotect.c, 6.15 and 7.2."""

    # mm/mprotect.c do_mprotect_pkey() (6.15, 7.2) over virtual pages [lo, hi) of one
    # slot: ENOMEM if lo is in a hole; else mprotect_fixup() on each VMA in turn,
    # stopping with ENOMEM at the first hole (what came before it stays changed)
    def do_mprotect_pkey(self, mm: int, slot: int, lo: int, hi: int, write: bool) -> str:
        mmst = self.mms[mm]
        vmas = [v for v in mmst.vmas[slot] if v.end > lo and v.start < hi]  # vma_find()
        if not vmas or vmas[0].start > lo:
            return ENOMEM
        tmp = vmas[0].start
        for vma in vmas:
            if vma.start != tmp:
                return ENOMEM
            tmp = min(vma.end, hi)
            self.mprotect_fixup(mm, vma, max(lo, vma.start), tmp, write)
        return ENOMEM if tmp < hi else OK

    # mm/mprotect.c mprotect_fixup() (6.15, 7.2): nothing if the flags stay the same;
    # a private mapping made writable is VM_ACCOUNT from then on; vma_modify_flags()
    # splits the VMA at start/end (split_vma: a huge PMD across an unaligned end is
    # split) and merges it with equal neighbours; then change_protection()
    def mprotect_fixup(self, mm: int, vma: Vma, start: int, end: int, write: bool) -> None:
        if vma.write == write:
            return
        account = vma.account or (write and not vma.shared)
        slot = vma.slot
        self.split_vma(mm, slot, start)
        self.split_vma(mm, slot, end)
        mmst = self.mms[mm]
        mmst.vmas[slot] = tuple(
            v._replace(write=write, account=account) if start <= v.start and v.end <= end
            else v for v in mmst.vmas[slot])
        mmst.merge_vmas(slot)
        self.change_protection(mm, start, end, write)

    # mm/mprotect.c change_protection() -> change_pmd_range() (6.15, 7.2): a huge PMD
    # the range covers whole is change_huge_pmd()'d, PTEs change_pte_range()'d.
    # Removing write write-protects them.  Adding it (MM_CP_TRY_CHANGE_WRITABLE) makes
    # writable at once a dirty shared PTE or an exclusive anonymous one: not modelled
    # (no dirty bit); they stay read-only until the next store, whose write fault
    # reaches the same entry and counts (the DAX entry of a dirty PTE is already dirty).
    def change_protection(self, mm: int, start: int, end: int, write: bool) -> None:
        if write:
            return
        mmst = self.mms[mm]
        for pslot in range(start >> self.PMD_ORDER, ((end - 1) >> self.PMD_ORDER) + 1):
            pmd = mmst.pmd.get(pslot)
            if pmd is not None and pmd[1]:
                mmst.pmd[pslot] = (pmd[0], False)
        for va in range(start, end):
            pte = mmst.pte.get(va)
            if pte is not None and pte[1]:
                mmst.pte[va] = (pte[0], False)
