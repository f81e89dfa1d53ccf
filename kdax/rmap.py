"""File rmap accounting (mm/rmap.c, 6.15): mapcounts of file folios."""

from __future__ import annotations

from kdax.api import KernelAPI
from kdax.mm_types import Page


class Rmap(KernelAPI):
    """folio_add_file_rmap_{pte,pmd} and folio_remove_rmap_{pte,pmd}."""

    def _mapcount_add(self, page: Page, fld: str, d: int) -> None:
        setattr(page, fld, getattr(page, fld) + d)
        self.touched.add(page.pfn)
        if self.provenance is not None:
            self._wrote(page.pfn, "mapcount")

    # mm/rmap.c folio_add_file_rmap_pte() (6.15): page->_mapcount++, large: _large_mapcount++
    def folio_add_file_rmap_pte(self, folio: Page, page: Page) -> None:
        self._mapcount_add(page, "_mapcount", 1)
        if self.folio_test_large(folio):
            self._mapcount_add(folio, "_large_mapcount", 1)

    # include/linux/rmap.h folio_dup_file_rmap_ptes() (6.15, 7.2) for one PTE: fork's
    # duplicate of a file PTE counts like a new one
    def folio_dup_file_rmap_pte(self, folio: Page, page: Page) -> None:
        self._mapcount_add(page, "_mapcount", 1)
        if self.folio_test_large(folio):
            self._mapcount_add(folio, "_large_mapcount", 1)

    # mm/rmap.c folio_add_file_rmap_pmd() (6.15): _entire_mapcount++, _large_mapcount++
    def folio_add_file_rmap_pmd(self, folio: Page, page: Page) -> None:
        self.WARN_ON_ONCE(not self.folio_test_large(folio), "!folio_test_large(folio)")
        self._mapcount_add(folio, "_entire_mapcount", 1)
        self._mapcount_add(folio, "_large_mapcount", 1)

    # mm/rmap.c folio_remove_rmap_pte() (6.15)
    def folio_remove_rmap_pte(self, folio: Page, page: Page) -> None:
        self._mapcount_add(page, "_mapcount", -1)
        if self.folio_test_large(folio):
            self._mapcount_add(folio, "_large_mapcount", -1)

    # mm/rmap.c folio_remove_rmap_pmd() (6.15)
    def folio_remove_rmap_pmd(self, folio: Page, page: Page) -> None:
        self._mapcount_add(folio, "_entire_mapcount", -1)
        self._mapcount_add(folio, "_large_mapcount", -1)
