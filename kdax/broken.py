"""TEST ONLY: deliberately broken targets that the engines must find.

Never a model of a real kernel.  Each plants one bug in an otherwise faithful
port, so the fuzz engines, the reducer and the emitters can be tested against a
known answer (atheris's own tests plant bugs the same way).
"""

from __future__ import annotations

from daxfuzz.vocab.world import ANON, ZERO_PFN
from kdax.kernel import Kernel615


class BrokenUnmapRef(Kernel615):
    """6.15 whose zap_pte() forgets the folio_put() of the mapping's reference.

    Known-minimal reproducer (3 ops)::

        mmap mm=0 vma=0 ino=0 huge=0
        fault mm=0 vma=0 pgoff=0 write=1
        munmap mm=0 vma=0
    """

    name = "test-broken-unmap-ref"
    summary = "TEST ONLY: 6.15 with one reference dropped on unmap"

    # mm/memory.c zap_present_ptes() with tlb_remove_folio() left out: the PTE and
    # the mapcount go, the reference taken by insert_page_into_pte_locked() stays.
    def zap_pte(self, mm: int, vaddr: int, even_cows: bool) -> None:
        mmst = self.mms[mm]
        pfn, _w = mmst.pte[vaddr]
        if pfn == ANON:
            if even_cows:
                del mmst.pte[vaddr]
            return
        del mmst.pte[vaddr]
        if pfn == ZERO_PFN:
            return
        page = self.pages[pfn]
        self.folio_remove_rmap_pte(self.page_folio(page), page)


def _register() -> None:
    from kdax.targets import register

    register(BrokenUnmapRef)


_register()
