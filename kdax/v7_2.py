"""Linux 7.2 (current mainline, 7.2.13): what changed since 6.15, as overrides.

Read side by side with `kdax.dax` (6.15); every override names its 7.2 function.
Differences found by diffing fs/dax.c, mm/huge_memory.c and mm/memremap.c of
linux-source-7.2 (7.2.13) against the 6.15 port:

- dax_folio_put() moved the split into dax_folio_reset_order(), which clears
  mapping *and* share for every folio, order-0 included (6.15 left ->index stale
  on an order-0 folio);
- dax_associate_entry()/dax_disassociate_entry()/dax_busy_page() convert the entry
  to a folio only after the zero/empty check ("fs/dax: check zero or empty entry
  before converting xarray entry");
- dax_pmd_load_hole() inserts the huge zero folio through vmf_insert_folio_pmd()
  (insert_pmd(): special, no reference; a present PMD is left alone) instead of
  open-coding set_pmd_at with a fallback when the PMD is not none;
- vmf_insert_folio_pmd() goes through insert_pmd(): the reference and PMD mapcount
  are taken only when the PMD is none (same effect as 6.15 for DAX folios);
- wait_entry_unlocked_exclusive() uses xas_reset() (entry locks are not modelled);
- mremap(MREMAP_FIXED) of an unchanged length moves every VMA in the range, gaps
  kept (remap_move(), "mm/mremap: permit mremap() move of multiple VMAs", 6.17).
"""

from __future__ import annotations

from daxfuzz.vocab.rules import Rules
from daxfuzz.vocab.world import EFAULT, HUGE_ZERO, OK
from kdax.kernel import Kernel615
from kdax.mm_types import Page
from kdax.vm_fault import VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, Iomap, Vmf
from kdax.xarray import DAX_PMD, DAX_ZERO_PAGE, dax_is_empty_entry, dax_is_zero_entry


class Kernel72(Kernel615):
    """Linux 7.2.13."""

    name = "7.2"
    summary = "Linux 7.2.13 (current mainline): 6.15 plus dax_folio_reset_order() and fixes"
    oracle_rules = Rules(mremap_moves_many=True)

    # mm/mremap.c remap_move() (7.2): MREMAP_FIXED with old_len == new_len moves each
    # VMA in the range in turn (XFS's thp_get_unmapped_area allows several), each at
    # its offset from the start, so gaps are kept; -EFAULT for a gap at the start
    def do_mremap(self, mm: int, slot: int, lo: int, hi: int, to: int, new: int,
                  aligned: bool) -> str:
        vmas = [v for v in self.mms[mm].vmas[slot] if v.end > lo and v.start < hi]
        if not vmas or vmas[0].start > lo:
            return EFAULT
        for vma in vmas:
            a, b = max(vma.start, lo), min(vma.end, hi)
            self.move_vma(mm, vma, a, b, to, new + a - lo, aligned)
        return OK

    # fs/dax.c dax_folio_reset_order() (7.2)
    def dax_folio_reset_order(self, folio: Page) -> int:
        pgmap = folio.pgmap
        order = self.folio_order(folio)
        self.set_field(folio, "mapping", None)
        self.set_field(folio, "index", 0)  # folio->share = 0
        if not order:
            self.set_field(folio, "pgmap", pgmap)
            return 0
        self.folio_reset_order(folio)
        for i in range(1 << order):
            page = self.pages[folio.pfn + i]
            self.ClearPageHead(page)
            self.clear_compound_head(page)
            self.set_field(page, "mapping", None)
            self.set_field(page, "index", 0)
            self.set_field(page, "pgmap", pgmap)
        return order

    # fs/dax.c dax_folio_put() (7.2)
    def dax_folio_put(self, folio: Page) -> int:
        if not self.dax_folio_is_shared(folio):
            ref = 0
        else:
            ref = (folio.share - 1) & 0xFFFFFFFFFFFFFFFF
            self.set_field(folio, "index", ref)
        if ref:
            return ref
        order = self.dax_folio_reset_order(folio)
        # Debug check: verify refcounts are zero for all sub-folios
        for i in range(1 << order):
            self.WARN_ON_ONCE(self.pages[folio.pfn + i]._refcount, "folio_ref_count(page)")
        return ref

    # fs/dax.c dax_associate_entry() (7.2): dax_to_folio() after the zero/empty check
    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        super().dax_associate_entry(entry, mapping, vmf, shared)

    # fs/dax.c dax_disassociate_entry() (7.2)
    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        self.dax_folio_put(self.dax_to_folio(entry))

    # fs/dax.c dax_busy_page() (7.2)
    def dax_busy_page(self, entry: int) -> Page | None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return None
        folio = self.dax_to_folio(entry)
        if self.folio_ref_count(folio) - self.folio_mapcount(folio):
            return folio
        return None

    # fs/dax.c dax_pmd_load_hole() (7.2): vmf_insert_folio_pmd(vmf, zero_folio, false)
    def dax_pmd_load_hole(self, vmf: Vmf, iomap: Iomap, entry: int) -> tuple[int, int]:
        entry = self.dax_insert_entry(vmf, iomap, entry, HUGE_ZERO, DAX_PMD | DAX_ZERO_PAGE)
        return self.insert_pmd_zero(vmf), entry

    # mm/huge_memory.c insert_pmd() (7.2) for the huge zero folio: special, no
    # reference, no rmap; a present PMD is left as it is.
    def insert_pmd_zero(self, vmf: Vmf) -> int:
        vma = vmf.vma
        addr = vmf.address & ~self.PG_PMD_COLOUR
        if addr < vma.start or addr >= vma.end:
            return VM_FAULT_SIGBUS
        mmst = self.mms[vmf.mm]
        slot = vmf.address >> self.PMD_ORDER
        if slot not in mmst.pmd:
            mmst.pmd[slot] = (HUGE_ZERO, False)
        return VM_FAULT_NOPAGE
