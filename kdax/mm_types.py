"""struct page / struct folio of an fs-DAX device page (include/linux/mm_types.h).

One `Page` per PFN.  A folio is its head page.  As in the kernel, the folio's order
and `_nr_pages` live in page[1] (`_flags_1`), so a split that forgets to reset them
leaves stale bits there; the large-folio counters (`_large_mapcount`,
`_entire_mapcount`, `_pincount`) are kept on the head object for simplicity.
`index` and `share` are one field (the union added by the fs-DAX series).
Counters hold the kernel's raw values: `_mapcount` and friends start at -1.
"""

from __future__ import annotations

PG_head = 1 << 0
PG_hwpoison = 1 << 1
TAIL_MAPPING = "TAIL_MAPPING"  # what prep_compound_tail() writes into tail->mapping
PGMAP_FSDAX = "fsdax"  # the device's dev_pagemap (MEMORY_DEVICE_FS_DAX)


class Page:
    """One struct page; raw kernel fields only."""

    __slots__ = ("pfn", "flags", "compound_head", "_flags_1", "_nr_pages", "_refcount",
                 "_mapcount", "_large_mapcount", "_entire_mapcount", "_pincount",
                 "mapping", "index", "pgmap")

    def __init__(self, pfn: int, refcount: int = 0) -> None:
        self.pfn = pfn
        self.flags = 0
        self.compound_head = -1  # head pfn when this is a tail page
        self._flags_1 = 0  # on page[1]: the folio order (low byte)
        self._nr_pages = 0  # on page[1]
        self._refcount = refcount  # 0 for fs-DAX since 6.15 (mm/mm_init.c)
        self._mapcount = -1
        self._large_mapcount = -1
        self._entire_mapcount = -1
        self._pincount = 0
        self.mapping: object = None  # an inode number, TAIL_MAPPING or None
        self.index = 0  # union { pgoff_t index; unsigned long share; }
        self.pgmap: object = PGMAP_FSDAX

    # folio->share is folio->index: one storage word.
    @property
    def share(self) -> int:
        return self.index

    @share.setter
    def share(self, v: int) -> None:
        self.index = v

    def __repr__(self) -> str:
        return (f"<page pfn={self.pfn} ref={self._refcount} map={self._mapcount + 1} "
                f"head={self.compound_head} mapping={self.mapping} index={self.index}>")
