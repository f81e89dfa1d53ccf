"""Target-independent safety properties (DESIGN.md, "Agreement"), over plain data.

Each check returns None when the property holds, else a one-line description of
the violation.  The runner feeds them a target's state; tests feed them hand-made
broken states.
"""

from __future__ import annotations

from collections.abc import Iterable

ULONG_SIGN = 1 << 63


def freed_while_in_use(freed: Iterable[int], mapped: set[int], held: set[int]) -> str | None:
    """No block is freed while a page in it is mapped or held by GUP."""
    for pfn in freed:
        if pfn in mapped:
            return f"block pfn={pfn} freed while still mapped"
        if pfn in held:
            return f"block pfn={pfn} freed while still held by GUP"
    return None


def completed_over_pin(result: str, held_before: set[int], gone: set[int]) -> str | None:
    """A truncate/punch/reflink/unmount never completes over a GUP-held page:
    `gone` are the PFNs whose address-space entries the op removed."""
    if not result.startswith("ok"):
        return None
    bad = sorted(held_before & gone)
    if bad:
        return f"completed although pfn={bad[0]} is held by GUP"
    return None


def not_idle(pfns: Iterable[int], refcount: dict[int, int], idle: int) -> str | None:
    """When nothing maps or holds any device page, every page is idle."""
    for pfn in pfns:
        if refcount[pfn] != idle:
            return (f"pfn={pfn} refcount {refcount[pfn]} with nothing mapped or held "
                    f"(idle is {idle})")
    return None


def bad_counter(pfn: int, refcount: int, mapcount: int, pincount: int,
                share: int | None) -> str | None:
    """No counter goes negative or wraps."""
    if refcount < 0:
        return f"pfn={pfn} refcount {refcount} < 0"
    if mapcount < -1:
        return f"pfn={pfn} raw _mapcount {mapcount} < -1"
    if pincount < 0:
        return f"pfn={pfn} _pincount {pincount} < 0"
    if share is not None and share >= ULONG_SIGN:
        return f"pfn={pfn} share {share:#x} wrapped below zero"
    return None


def nrpages_leak(ino: int, nrpages: int, entry_pages: int) -> str | None:
    """mapping->nrpages counts the pages of the inode's DAX entries: fs/dax.c adds
    1 << order for each entry it stores and takes 1 << dax_entry_order(entry) off for
    each it erases, so once the two differ, erasing every entry leaves nrpages non-zero
    and clear_inode() BUG()s when the inode is evicted (fs/inode.c, 6.15 and 7.2)."""
    if nrpages != entry_pages:
        return (f"ino{ino} mapping->nrpages={nrpages} but its entries hold {entry_pages} "
                f"page(s): clear_inode() will BUG() at eviction")
    return None
