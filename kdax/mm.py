"""Folio and page-reference helpers (include/linux/mm.h, include/linux/page_ref.h,
mm/page_alloc.c prep_compound_page, mm/swap.c folio_put) and the kernel's state.

`KernelBase` holds the modelled kernel state and the primitive mutators.  Every
mutator of a counter notes the PFN in `touched` (so the runner compares only what
changed) and, when provenance is on (explaining a divergence), the kernel function
that wrote the field.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from daxfuzz.vocab.blockfs import BlockFS
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.world import GUP_PIN_COUNTING_BIAS, ZERO_PFN, MMState  # noqa: F401 - kdax.mm.GUP_PIN_COUNTING_BIAS is the ports' name
from kdax.mm_types import TAIL_MAPPING, Page, PG_head
from kdax.xarray import XArray

if TYPE_CHECKING:
    from types import FrameType

PFN0 = -100  # the struct page of real pfn 0 (what an empty DAX entry's pfn field holds)
INT_MAX = (1 << 31) - 1
ULONG_MASK = (1 << 64) - 1

# Helpers whose frames are skipped when naming the kernel function that wrote a field.
_PLUMBING = frozenset({
    "_wrote", "folio_ref_add", "folio_ref_sub", "folio_ref_inc", "folio_ref_dec",
    "folio_get", "folio_put", "folio_put_refs", "folio_ref_sub_and_test", "set_field",
    "folio_set_count",
})


class Blocked(Exception):
    """The task sleeps waiting for `pfn` to become idle; the op stops here."""

    def __init__(self, pfn: int) -> None:
        super().__init__(pfn)
        self.pfn = pfn


class KernelBase:
    """Modelled kernel state for one fs-DAX device, one XFS filesystem, N processes."""

    #: short name used by `daxfuzz targets` and trace headers
    name = "base"
    #: one line for `daxfuzz targets`
    summary = ""
    #: refcount of an idle fs-DAX page under this kernel's convention
    idle_refcount = 0

    def __init__(self, g: Geometry) -> None:
        self.g = g
        self.PMD_ORDER = g.pmd_order
        self.PG_PMD_NR = g.pmd_nr
        self.PG_PMD_COLOUR = g.pmd_colour
        self.pages = [Page(pfn, self.idle_refcount) for pfn in range(g.pages)]
        # struct pages that are not fs-DAX device pages but that fs/dax.c can reach by
        # converting a zero or empty entry to a folio: the zero page, and the page of
        # real pfn 0 that an empty entry encodes (device PFNs here are device-relative).
        self.zero_page = Page(ZERO_PFN)
        self.zero_page.pgmap = None
        self.pfn0_page = Page(PFN0)
        self.pfn0_page.pgmap = None
        self.mms = [MMState() for _ in range(g.mms)]
        self.i_pages = [XArray(g) for _ in range(g.inodes)]  # inode->i_mapping->i_pages
        # mapping->nrpages: fs/dax.c adds 1 << order when it stores a new entry and
        # subtracts 1 << dax_entry_order(entry) when it erases one; clear_inode()
        # BUG()s unless it is back to 0
        self.nrpages = [0] * g.inodes
        self.fs = BlockFS(g)
        self.handles: dict[int, tuple[int, str]] = {}  # GUP handle -> (pfn, "pin"|"get")
        self.mounted = True
        self.detached = False  # an unmount waits in the teardown: no path reaches the files
        self.holder_registered = True  # fs_dax_get_by_bdev holder ops (XFS rmap path)
        self.events: list[str] = []  # WARN_ON_ONCE / VM_BUG_ON hits of the current op
        self.touched: set[int] = set()  # PFNs whose struct page changed in the current op
        self.freed: list[int] = []  # blocks the filesystem freed during the current op
        self.killed: set[int] = set()  # mms sent SIGBUS by memory failure in the current op
        self.provenance: dict[tuple[int, str], str] | None = None

    # ---- events and provenance -----------------------------------------------------
    def WARN_ON_ONCE(self, cond: object, what: str) -> bool:
        """Record a warning (the kernel prints it and goes on); returns `cond`."""
        if cond:
            self.events.append(f"WARN_ON_ONCE({what}) in {sys._getframe(1).f_code.co_name}")
        return bool(cond)

    def VM_BUG_ON(self, cond: object, what: str) -> None:
        if cond:
            self.events.append(f"VM_BUG_ON({what}) in {sys._getframe(1).f_code.co_name}")

    def _wrote(self, pfn: int, fld: str) -> None:
        f: FrameType | None = sys._getframe(1)
        while f is not None and f.f_code.co_name in _PLUMBING:
            f = f.f_back
        chain: list[str] = []
        while f is not None and len(chain) < 3 and f.f_code.co_name not in ("apply", "step"):
            chain.append(f.f_code.co_name)
            f = f.f_back
        # called only while provenance is on (its callers test it): not None
        self.provenance[(pfn, fld)] = " < ".join(chain)  # type: ignore[index]

    def set_field(self, page: Page, fld: str, value: object) -> None:
        """Write a struct page field other than a counter (mapping, index, flags...)."""
        if page.pfn < 0:  # any write: fs/dax does not own that struct page
            what = "the zero page" if page.pfn == ZERO_PFN else "pfn 0 (not an fs-DAX page)"
            self.events.append(f"BUG(wrote {fld} of the struct page of {what}) in "
                               f"{sys._getframe(1).f_code.co_name}")
        setattr(page, fld, value)
        self.touched.add(page.pfn)
        if self.provenance is not None:
            self._wrote(page.pfn, fld)

    # ---- page <-> folio (include/linux/mm.h, page-flags.h) ---------------------------
    def pfn_to_page(self, pfn: int) -> Page:
        return self.pages[pfn]

    def page_folio(self, page: Page) -> Page:
        """page_folio(): the head page of the compound page `page` belongs to."""
        h = page.compound_head
        return page if h < 0 else self.pages[h]

    def pfn_folio(self, pfn: int) -> Page:
        return self.page_folio(self.pages[pfn])

    def folio_test_large(self, folio: Page) -> bool:
        return bool(folio.flags & PG_head)

    def folio_order(self, folio: Page) -> int:
        """folio_order(): 0 unless PG_head, else the order byte in page[1]'s _flags_1."""
        if not folio.flags & PG_head:
            return 0
        return self.pages[folio.pfn + 1]._flags_1 & 0xFF

    def folio_nr_pages(self, folio: Page) -> int:
        return 1 << self.folio_order(folio)

    def folio_has_pincount(self, folio: Page) -> bool:
        """folio_has_pincount(): large folios on 64-bit keep a separate _pincount."""
        return self.folio_test_large(folio)

    def folio_mapcount(self, folio: Page) -> int:
        """folio_mapcount() (6.15): small: _mapcount+1; large: _large_mapcount+1."""
        if not self.folio_test_large(folio):
            return folio._mapcount + 1
        return folio._large_mapcount + 1

    def folio_ref_count(self, folio: Page) -> int:
        return folio._refcount

    def page_ref_count(self, page: Page) -> int:
        return page._refcount

    # ---- reference counting (include/linux/page_ref.h, mm/swap.c) --------------------
    def folio_ref_add(self, folio: Page, nr: int) -> None:
        v = folio._refcount + nr
        if v > INT_MAX:  # atomic_t wraps
            v -= 1 << 32
        folio._refcount = v
        self.touched.add(folio.pfn)
        if self.provenance is not None:
            self._wrote(folio.pfn, "refcount")

    def folio_ref_sub(self, folio: Page, nr: int) -> None:
        self.folio_ref_add(folio, -nr)

    def folio_ref_inc(self, folio: Page) -> None:
        self.folio_ref_add(folio, 1)

    def folio_get(self, folio: Page) -> None:
        """folio_get(): VM_BUG_ON a zero-or-overflowing count, then +1."""
        self.VM_BUG_ON(((folio._refcount + 127) & 0xFFFFFFFF) <= 127,
                       "folio_ref_zero_or_close_to_overflow(folio)")
        self.folio_ref_add(folio, 1)

    def folio_ref_sub_and_test(self, folio: Page, nr: int) -> bool:
        self.folio_ref_add(folio, -nr)
        return folio._refcount == 0

    def folio_put_refs(self, folio: Page, refs: int) -> None:
        """folio_put_refs(): drop `refs`; at zero, __folio_put -> free_zone_device_folio."""
        if self.folio_ref_sub_and_test(folio, refs):
            self.__folio_put(folio)

    def folio_put(self, folio: Page) -> None:
        self.folio_put_refs(folio, 1)

    def __folio_put(self, folio: Page) -> None:
        # mm/swap.c __folio_put(): zone-device folios go to free_zone_device_folio()
        self.free_zone_device_folio(folio)

    def put_page(self, page: Page) -> None:
        self.folio_put(self.page_folio(page))

    def free_zone_device_folio(self, folio: Page) -> None:  # pragma: no cover - mixin
        raise NotImplementedError

    # ---- compound pages (mm/page_alloc.c, mm/internal.h) -----------------------------
    def prep_compound_page(self, head: Page, order: int) -> None:
        """prep_compound_page() (6.15): PG_head, tails point at head, order in page[1]."""
        nr = 1 << order
        self.set_field(head, "flags", head.flags | PG_head)
        for i in range(1, nr):
            p = self.pages[head.pfn + i]
            # prep_compound_tail(): mapping = TAIL_MAPPING, compound_head = head
            self.set_field(p, "mapping", TAIL_MAPPING)
            self.set_field(p, "compound_head", head.pfn)
        # prep_compound_head(): folio_set_order, mapcounts -1, _pincount 0
        p1 = self.pages[head.pfn + 1]
        self.set_field(p1, "_flags_1", (p1._flags_1 & ~0xFF) | order)
        self.set_field(p1, "_nr_pages", nr)
        self.set_field(head, "_large_mapcount", -1)
        self.set_field(head, "_entire_mapcount", -1)
        self.set_field(head, "_pincount", 0)

    def folio_reset_order(self, folio: Page) -> None:
        """folio_reset_order(): clear the order byte and _nr_pages in page[1]."""
        if not self.folio_test_large(folio):
            return
        p1 = self.pages[folio.pfn + 1]
        self.set_field(p1, "_flags_1", p1._flags_1 & ~0xFF)
        self.set_field(p1, "_nr_pages", 0)

    def ClearPageHead(self, page: Page) -> None:
        self.set_field(page, "flags", page.flags & ~PG_head)

    def clear_compound_head(self, page: Page) -> None:
        self.set_field(page, "compound_head", -1)



class TargetView:
    """What the runner reads from a target: `pages`, `mms`, `fs`, `handles`, `i_pages`
    (raw DAX entries, comparable with the oracle's entry facts), `events`, `touched`,
    `freed`, and the refcount convention."""

    #: "folio": 0-based, one reference per mapping (6.15+); "legacy": 1-based, maps take none
    convention = "folio"
