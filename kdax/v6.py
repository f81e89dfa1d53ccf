"""The seed: "[PATCH v6 21/26] fs/dax: Properly refcount fs dax pages" (January 2025),
as overrides of the merged 6.15 code.  Read beside `kdax.dax`; each override names the
v6 function and says how 6.15 differs.

- v6 dax_folio_share_put() splits a PMD folio without resetting the order byte and
  _nr_pages in page[1] (6.15-rc fix "fs/dax: fix folio splitting issue by resetting
  old folio order + _nr_pages" added folio_reset_order()); its WARN_ON_ONCE(ref < 0)
  tests an unsigned long and can never fire.
- v6 dax_disassociate_entry() has no zero/empty-entry guard: it converts the entry to
  a folio and puts its share even for a zero or empty entry (6.15 returns early).
- v6 dax_associate_entry() has no zero/empty guard either; v6 dax_insert_entry() skips
  it for DAX_ZERO_PAGE instead.  The shared branch is dax_folio_share_get().
- Layout breaking (dax_break_mapping*, the XFS two-inode check `page_ref_count(page)
  != 0`, then dax_delete_mapping_range on the second inode) has the same effect as
  6.15's dax_break_layout(); those are not overridden.
"""

from __future__ import annotations

from kdax.kernel import Kernel615
from kdax.mm_types import Page
from kdax.vm_fault import Vmf
from kdax.xarray import DAX_ZERO_PAGE, dax_is_empty_entry, dax_is_zero_entry


class KernelV6(Kernel615):
    """The v6 posting of patch 21/26."""

    name = "v6"
    summary = "the seed: v6 of 'fs/dax: Properly refcount fs dax pages' (Jan 2025)"

    # fs/dax.c dax_folio_share_get() (v6)
    def dax_folio_share_get(self, entry: int) -> None:
        folio = self.dax_to_folio(entry)
        self.WARN_ON_ONCE(not folio.share, "!folio->share")
        self.WARN_ON_ONCE(folio.mapping is not None, "folio->mapping")
        self.WARN_ON_ONCE(self.dax_entry_order(entry) != self.folio_order(folio),
                          "dax_entry_order(entry) != folio_order(folio)")
        self.set_field(folio, "index", folio.share + 1)

    # fs/dax.c dax_folio_share_put() (v6): no folio_reset_order(); 6.15 resets it
    def dax_folio_put(self, folio: Page) -> int:
        if not self.dax_folio_is_shared(folio):
            ref = 0
        else:
            ref = (folio.share - 1) & 0xFFFFFFFFFFFFFFFF
            self.set_field(folio, "index", ref)
        # WARN_ON_ONCE(ref < 0): ref is an unsigned long, this never fires
        if not ref:
            self.set_field(folio, "mapping", None)
            order = self.folio_order(folio)
            if order:
                for i in range(1 << order):
                    page = self.pages[folio.pfn + i]
                    self.ClearPageHead(page)
                    self.clear_compound_head(page)
                    self.set_field(page, "pgmap", folio.pgmap)
                    self.set_field(page, "mapping", None)
                    self.set_field(page, "index", 0)
                    self.WARN_ON_ONCE(page._refcount, "page_ref_count(page)")
        return ref

    # fs/dax.c dax_device_folio_init() (v6) == 6.15 dax_folio_init()
    def dax_device_folio_init(self, entry: int) -> None:
        self.dax_folio_init(entry)

    # fs/dax.c dax_associate_entry() (v6): no zero/empty guard
    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        folio = self.dax_to_folio(entry)
        size = 1 << self.dax_entry_order(entry)
        index = vmf.vma.index(vmf.address & ~(size - 1))
        if shared and (folio.mapping is not None or self.dax_folio_is_shared(folio)):
            if folio.mapping is not None:
                self.set_field(folio, "mapping", None)
                self.set_field(folio, "index", 1)  # folio->share = 1
            self.dax_folio_share_get(entry)
        else:
            self.WARN_ON_ONCE(folio.mapping is not None, "folio->mapping")
            self.dax_device_folio_init(entry)
            folio = self.dax_to_folio(entry)
            self.set_field(folio, "mapping", mapping)
            self.set_field(folio, "index", index)

    # fs/dax.c dax_disassociate_entry() (v6): no zero/empty guard (6.15 has one)
    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        self.dax_folio_put(self.dax_to_folio(entry))

    # fs/dax.c dax_insert_entry() (v6): association skipped for DAX_ZERO_PAGE entries
    def dax_insert_entry(self, vmf, iomap, entry: int, pfn: int, flags: int) -> int:
        if flags & DAX_ZERO_PAGE:
            # this instance's method, swapped for the one call below (restored by del)
            _saved, self.dax_associate_entry = (  # type: ignore[method-assign]
                self.dax_associate_entry, _no_associate)
            try:
                return super().dax_insert_entry(vmf, iomap, entry, pfn, flags)
            finally:
                del self.dax_associate_entry
        return super().dax_insert_entry(vmf, iomap, entry, pfn, flags)


def _no_associate(entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
    """v6: `if (!(flags & DAX_ZERO_PAGE)) dax_associate_entry(...)`."""





class KernelV6Guarded(KernelV6):
    """v6 with only the zero/empty-entry guard of 6.15 added to dax_disassociate_entry():
    without it every first write fault trips the pfn-0 write, and nothing else in v6 can
    be seen.  Fuzz this to find what else v6 gets wrong (e.g. the stale folio order)."""

    name = "v6-guarded"
    summary = "v6 + the 6.15 zero/empty guard in dax_disassociate_entry (to see past it)"

    # fs/dax.c dax_disassociate_entry() (6.15 guard on v6)
    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        super().dax_disassociate_entry(entry, mapping, trunc)
