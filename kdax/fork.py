"""kernel/fork.c: duplicating a process's address space."""

from __future__ import annotations

from kdax.api import KernelAPI


class Fork(KernelAPI):
    """kernel/fork.c, 6.15 and 7.2."""

    # kernel/fork.c dup_mmap() (6.15, 7.2): every VMA is duplicated (vm_area_dup), a
    # private VMA's anon_vma too (anon_vma_fork), then copy_page_range() per VMA
    def dup_mmap(self, mm: int, child: int) -> None:
        src, dst = self.mms[mm], self.mms[child]
        for slot, vmas in sorted(src.vmas.items()):
            dst.vmas[slot] = tuple(v._replace(mm=child) for v in vmas)
            for vma in vmas:
                if vma.start in src.anon:
                    dst.anon.add(vma.start)
                self.copy_page_range(child, mm, vma)
