"""Candidate kernel fixes as targets: each overrides the one function its patch changes,
beside the unified diff against the kernel source it was written for
(`docs/reports/<finding>/fix.diff`).  A fix target must agree with the oracle where the
stock kernel diverges, and everywhere else where the stock kernel agrees."""

from __future__ import annotations

from dataclasses import replace

from kdax.v7_2 import Kernel72
from kdax.vm_fault import Iomap, Vmf
from kdax.xarray import DAX_PMD, dax_is_pmd_entry, dax_make_entry


class Kernel72FixCowPmd(Kernel72):
    """7.2.13 + docs/reports/cow-pte-under-pmd-entry/fix.diff."""

    name = "7.2-fix-cow-pmd"
    base = "7.2"  # what 7.2 shows too on the same ops is 7.2's (daxfuzz.core.known)
    summary = ("7.2.13 with a candidate fix: a PTE entry replacing a real PMD entry "
               "undoes the PMD join first (docs/reports/cow-pte-under-pmd-entry)")
    oracle_rules = replace(Kernel72.oracle_rules, pte_entry_keeps_pmd_slot=False)

    # fs/dax.c dax_insert_entry() (7.2.13 + fix): when a PTE-sized entry replaces a real
    # PMD entry -- a PTE fault with IOMAP_F_SHARED under a PMD entry of the file -- the
    # PMD join is undone first, as grab_mapping_entry()'s pmd_downgrade does for zero
    # and empty PMD entries: NULL is stored over the PMD range, its PG_PMD_NR pages go
    # from nrpages, then the PTE entry is stored at its own index and counts one page.
    # Unfixed, dax_lock_entry() stores the order-0 entry into the multi-index entry,
    # which replaces all of it and keeps nrpages as if it were still PMD-sized.
    def dax_insert_entry(self, vmf: Vmf, iomap: Iomap, entry: int, pfn: int, flags: int) -> int:
        if not (iomap.shared and dax_is_pmd_entry(entry) and not flags & DAX_PMD):
            return super().dax_insert_entry(vmf, iomap, entry, pfn, flags)
        ino = vmf.vma.ino
        xa = self.i_pages[ino]
        new_entry = dax_make_entry(pfn, flags)
        write = vmf.write and not vmf.cow_page
        dirty = write and not self.dax_fault_is_synchronous(vmf, iomap)
        index = vmf.pgoff
        self.unmap_mapping_pages(ino, index & ~self.PG_PMD_COLOUR, self.PG_PMD_NR, False)
        self.dax_disassociate_entry(entry, ino, False)
        self.dax_associate_entry(new_entry, ino, vmf, True)
        xa.store(index, 0, None)  # undo the PMD join (the fix)
        self.nrpages[ino] -= self.PG_PMD_NR
        xa.store(index, 0, new_entry)
        self.nrpages[ino] += 1
        if dirty:
            xa.set_mark(index, xa.dirty)
        if write:
            xa.set_mark(index, xa.towrite)
        return new_entry
