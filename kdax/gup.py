"""mm/gup.c: get_user_pages / pin_user_pages of one page, and their release."""

from __future__ import annotations

from daxfuzz.vocab.world import ANON, EFAULT, EOPNOTSUPP, HUGE_ZERO, OK, ZERO_PFN
from kdax.api import KernelAPI
from kdax.mm import GUP_PIN_COUNTING_BIAS
from kdax.mm_types import Page
from kdax.vm_fault import VM_FAULT_ERROR

FOLL_WRITE = 0x01
FOLL_GET = 0x04
FOLL_LONGTERM = 0x100
FOLL_PIN = 0x40000


class Gup(KernelAPI):
    """mm/gup.c, 6.15."""

    # mm/gup.c try_grab_folio() (6.15)
    def try_grab_folio(self, folio: Page, refs: int, flags: int) -> int:
        if self.WARN_ON_ONCE(self.folio_ref_count(folio) <= 0, "folio_ref_count(folio) <= 0"):
            return -12  # -ENOMEM
        if flags & FOLL_GET:
            self.folio_ref_add(folio, refs)
        elif flags & FOLL_PIN:
            if self.folio_has_pincount(folio):
                self.folio_ref_add(folio, refs)
                folio._pincount += refs  # atomic_add(refs, &folio->_pincount)
                self._wrote_pincount(folio)
            else:
                self.folio_ref_add(folio, refs * GUP_PIN_COUNTING_BIAS)
        return 0

    def _wrote_pincount(self, folio: Page) -> None:
        self.touched.add(folio.pfn)
        if self.provenance is not None:
            self._wrote(folio.pfn, "pincount")

    # mm/gup.c gup_put_folio() (6.15)
    def gup_put_folio(self, folio: Page, refs: int, flags: int) -> None:
        if flags & FOLL_PIN:
            if self.folio_has_pincount(folio):
                folio._pincount -= refs  # atomic_sub(refs, &folio->_pincount)
                self._wrote_pincount(folio)
            else:
                refs *= GUP_PIN_COUNTING_BIAS
        self.folio_put_refs(folio, refs)

    # mm/gup.c check_vma_flags() (6.1 .. 7.2): FOLL_LONGTERM on fs-DAX is refused
    # before the write permission is looked at
    def check_vma_flags(self, vma, gup_flags: int) -> int:
        if gup_flags & FOLL_LONGTERM:
            return -95  # -EOPNOTSUPP: vma_is_fsdax()
        if gup_flags & FOLL_WRITE and not vma.write:
            return -14  # -EFAULT
        return 0

    # mm/gup.c follow_page_mask() (6.15): the page mapped at `address`, or None when a
    # fault is needed (not present, or FOLL_WRITE over a read-only entry).
    def follow_page_mask(self, mm: int, address: int, flags: int) -> int | None:
        mmst = self.mms[mm]
        pmd = mmst.pmd.get(address >> self.PMD_ORDER)
        if pmd is not None:
            if flags & FOLL_WRITE and not pmd[1]:
                return None
            if pmd[0] == HUGE_ZERO:
                return HUGE_ZERO
            return pmd[0] + (address & self.PG_PMD_COLOUR)
        pte = mmst.pte.get(address)
        if pte is None or (flags & FOLL_WRITE and not pte[1]):
            return None
        return pte[0]

    # mm/gup.c __get_user_pages() for one page: follow, else faultin_page() and retry;
    # grab the page with try_grab_folio().  The zero page and anon pages are not
    # device pages: their references are not modelled (a pin skips the zero folio).
    def get_user_page(self, mm: int, slot: int, pgoff: int, flags: int, h: int) -> str:
        vma = self.mms[mm].find_vma(slot, pgoff)
        if vma is None:
            return EFAULT
        err = self.check_vma_flags(vma, flags)
        if err == -95:
            return EOPNOTSUPP
        if err:
            return EFAULT
        address = vma.vaddr(pgoff)
        for _ in range(4):
            pfn = self.follow_page_mask(mm, address, flags)
            if pfn is not None:
                break
            ret = self.handle_mm_fault(mm, vma, address, bool(flags & FOLL_WRITE))
            if ret & VM_FAULT_ERROR:
                return EFAULT
        else:
            self.WARN_ON_ONCE(True, "faultin_page() did not resolve the fault")
            return EFAULT
        if pfn not in (ZERO_PFN, HUGE_ZERO, ANON):
            if self.try_grab_folio(self.pfn_folio(pfn), 1, flags):
                return EFAULT
        self.handles[h] = (pfn, "pin" if flags & FOLL_PIN else "get")
        return OK

    # mm/gup.c pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) (6.15, 7.2) of one page,
    # released at once: gup_fast_pte_range() pins a present, writable PTE whose folio
    # folio_fast_pin_allowed() -- for FOLL_LONGTERM, folio_is_longterm_pinnable(): an
    # anonymous page, never an fs-DAX (ZONE_DEVICE) folio; a PMD mapping here is always
    # DAX or the huge zero folio.  Anything else takes the slow path, where
    # check_vma_flags() refuses FOLL_LONGTERM on an fs-DAX VMA.
    def pin_user_pages_fast_longterm(self, mm: int, slot: int, pgoff: int) -> str:
        vma = self.mms[mm].find_vma(slot, pgoff)
        if vma is None:
            return EFAULT
        mmst = self.mms[mm]
        address = vma.vaddr(pgoff)
        if address >> self.PMD_ORDER not in mmst.pmd:
            pte = mmst.pte.get(address)
            if pte is not None and pte[1] and pte[0] == ANON:
                return OK  # gup_fast: pinned, and unpinned by the unregister
        if self.check_vma_flags(vma, FOLL_PIN | FOLL_WRITE | FOLL_LONGTERM) == -95:
            return EOPNOTSUPP
        return EFAULT

    # mm/gup.c pin_user_pages_fast() (6.15, 7.2) of `nr` pages, all or nothing as
    # io_uring's io_pin_pages() wants them.  GUP-fast grabs the subpages a PMD maps with
    # one try_grab_folio_fast(folio, refs) -- the same counts as one grab per page --
    # and the slow path faults in the rest, page by page; a failure part-way unpins
    # what was pinned (unpin_user_pages) and is -EFAULT.
    def pin_user_pages_fast(self, mm: int, slot: int, pgoff: int, nr: int, flags: int,
                            h: int) -> str:
        for i in range(nr):
            r = self.get_user_page(mm, slot, pgoff + i, flags, h + i)
            if r != OK:
                self.unpin_user_pages(range(h, h + i))
                return r
        return OK

    # mm/gup.c unpin_user_pages() (6.15, 7.2): gup_folio_next() groups consecutive pages
    # of one folio (as they are *now*), then one gup_put_folio(folio, nr, FOLL_PIN) each
    def unpin_user_pages(self, hs: range) -> None:
        pfns = [self.handles.pop(h)[0] for h in hs]
        i = 0
        while i < len(pfns):
            if pfns[i] < 0:  # the zero page and anon copies: not device pages
                i += 1
                continue
            folio = self.pfn_folio(pfns[i])
            nr = 1
            while (i + nr < len(pfns) and pfns[i + nr] >= 0
                   and self.pfn_folio(pfns[i + nr]) is folio):
                nr += 1
            self.gup_put_folio(folio, nr, FOLL_PIN)
            i += nr

    # mm/gup.c unpin_user_page() / mm.h put_page()
    def put_user_page(self, h: int, pin: bool) -> None:
        pfn, _kind = self.handles.pop(h)
        if pfn < 0:
            return
        folio = self.pfn_folio(pfn)
        if pin:
            self.gup_put_folio(folio, 1, FOLL_PIN)
        else:
            self.folio_put(folio)
