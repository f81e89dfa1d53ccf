"""mm/memory-failure.c for fs-DAX pages, and the XFS holder path
(fs/xfs/xfs_notify_failure.c) that finds owners by reverse map."""

from __future__ import annotations

from daxfuzz.vocab.world import EBUSY, OK, Vma
from kdax.api import KernelAPI
from kdax.mm_types import PG_hwpoison


class MemoryFailure(KernelAPI):
    """memory_failure() on an fs-DAX pfn, current = process `mm`."""

    # mm/memory-failure.c memory_failure_dev_pagemap() (6.15): the holder first;
    # -EOPNOTSUPP (no holder) falls back to mf_generic_kill_procs().
    def memory_failure(self, pfn: int, mm: int, holder: bool) -> str:
        if holder and self.holder_registered:
            return self.xfs_dax_notify_failure(pfn, mm)
        return self.mf_generic_kill_procs(pfn, mm)

    # fs/xfs/xfs_notify_failure.c: every rmap owner of the block -> mf_dax_kill_procs()
    def xfs_dax_notify_failure(self, pfn: int, mm: int) -> str:
        for ino, idx in self.fs.owners(pfn):
            if self.mf_dax_kill_procs(ino, idx, 1, mm):
                return EBUSY
        return self._killed_result()

    # mm/memory-failure.c mf_dax_kill_procs() (6.15)
    def mf_dax_kill_procs(self, ino: int, index: int, count: int, mm: int) -> int:
        for idx in range(index, index + count):
            page = self.dax_lock_mapping_entry(ino, idx)
            if page is None:
                continue
            self.set_field(page, "flags", page.flags | PG_hwpoison)  # SetPageHWPoison
            to_kill = self.collect_procs_fsdax(ino, idx, mm)
            self.unmap_and_kill(to_kill, ino, idx)
        return 0

    # mm/memory-failure.c mf_generic_kill_procs() (6.15): dax_lock_folio() needs
    # folio->mapping, then collect_procs() and unmap_and_kill() use folio->index.
    def mf_generic_kill_procs(self, pfn: int, mm: int) -> str:
        folio = self.pfn_folio(pfn)
        if not self.dax_lock_folio(folio):
            return EBUSY
        self.set_field(folio, "flags", folio.flags | PG_hwpoison)
        # locked (dax_lock_folio): a DAX folio's mapping is its inode number
        ino: int = folio.mapping  # type: ignore[assignment]
        to_kill = self.collect_procs_fsdax(ino, folio.index, mm)
        self.unmap_and_kill(to_kill, ino, folio.index)
        return self._killed_result()

    # mm/memory-failure.c collect_procs_fsdax() with force_early (7.2; collect_procs_file()
    # alike): current's VMAs of the file covering index, each with the size it is mapped
    # at; __add_to_kill() frees the entry of a VMA that maps nothing there (size_shift 0)
    def collect_procs_fsdax(self, ino: int, index: int, mm: int) -> list[tuple[int, int]]:
        to_kill = []
        mmst = self.mms[mm]
        for vma in mmst.each_vma():
            if vma.ino == ino and vma.covers(index):
                shift = self.dev_pagemap_mapping_shift(mm, vma, index)
                if shift:
                    to_kill.append((mm, shift))
        return to_kill

    # mm/memory-failure.c dev_pagemap_mapping_shift() (7.2): a leaf PMD, else a present
    # PTE (6.1 also wants pte_devmap(): an anonymous copy's PTE is 0 there, which no
    # expressible memory_failure can see -- current maps the page where it poisons it)
    def dev_pagemap_mapping_shift(self, mm: int, vma: Vma, index: int) -> int:
        va = vma.vaddr(index)
        mmst = self.mms[mm]
        if va >> self.PMD_ORDER in mmst.pmd:
            return self.PG_PMD_NR
        return 1 if va in mmst.pte else 0

    # mm/memory-failure.c unmap_and_kill(): unmap the largest mapping size, then signal
    def unmap_and_kill(self, to_kill: list[tuple[int, int]], ino: int, index: int) -> None:
        size = max((s for _mm, s in to_kill), default=0)
        if size:
            start = index & ~(size - 1)
            self.unmap_mapping_range(ino, start, size, False)
        for mm, _s in to_kill:
            self.killed.add(mm)

    def _killed_result(self) -> str:
        if not self.killed:
            return OK
        return OK + " killed=" + ",".join(map(str, sorted(self.killed)))
