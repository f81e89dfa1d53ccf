"""The page-cache xarray of one DAX inode (lib/xarray.c semantics we rely on) and the
DAX entry encoding (fs/dax.c: DAX_SHIFT, DAX_LOCKED, DAX_PMD, DAX_ZERO_PAGE, DAX_EMPTY).

An entry is an int: ``pfn << DAX_SHIFT | flags``.  A PMD entry is a multi-index entry
covering PG_PMD_NR indices; storing into one index of it replaces the whole tie, and
storing NULL into any index erases the whole tie, as the xarray does.  Entry locks
are not modelled: every op runs to completion or blocks outside entry-lock sections.
Marks: PAGECACHE_TAG_DIRTY and PAGECACHE_TAG_TOWRITE, per tie.
"""

from __future__ import annotations

from collections.abc import Iterator

from daxfuzz.vocab.geometry import Geometry

DAX_SHIFT = 4
DAX_LOCKED = 1 << 0
DAX_PMD = 1 << 1
DAX_ZERO_PAGE = 1 << 2
DAX_EMPTY = 1 << 3


def dax_make_entry(pfn: int, flags: int) -> int:
    return flags | (pfn << DAX_SHIFT)


def dax_to_pfn(entry: int) -> int:
    return entry >> DAX_SHIFT


def dax_is_pmd_entry(entry: int) -> bool:
    return bool(entry & DAX_PMD)


def dax_is_pte_entry(entry: int) -> bool:
    return not entry & DAX_PMD


def dax_is_zero_entry(entry: int) -> bool:
    return bool(entry & DAX_ZERO_PAGE)


def dax_is_empty_entry(entry: int) -> bool:
    return bool(entry & DAX_EMPTY)


class XArray:
    """Ties keyed by their first index: base -> (order, entry), plus marks."""

    __slots__ = ("order", "colour", "ties", "dirty", "towrite")

    def __init__(self, g: Geometry) -> None:
        self.order = g.pmd_order
        self.colour = g.pmd_colour
        self.ties: dict[int, tuple[int, int]] = {}
        self.dirty: set[int] = set()
        self.towrite: set[int] = set()

    def tie_base(self, index: int) -> int | None:
        """First index of the tie holding `index`, or None if `index` is empty."""
        t = self.ties.get(index)
        if t is not None:
            return index
        b = index & ~self.colour
        t = self.ties.get(b)
        if t is not None and t[0]:
            return b
        return None

    def load(self, index: int) -> int | None:
        b = self.tie_base(index)
        return None if b is None else self.ties[b][1]

    def find_conflict(self, index: int, order: int) -> int | None:
        """xas_find_conflict(): the first entry overlapping [index, index + 2**order)."""
        if not order:
            return self.load(index)
        b = index & ~self.colour
        t = self.ties.get(b)
        if t is not None:
            return t[1]
        for i in range(b + 1, b + self.colour + 1):
            t = self.ties.get(i)
            if t is not None:
                return t[1]
        return None

    def store(self, index: int, order: int, entry: int | None) -> None:
        """xas_store() at (index, order)."""
        b = self.tie_base(index)
        if entry is None:
            if b is not None:
                del self.ties[b]
                self.dirty.discard(b)
                self.towrite.discard(b)
            return
        if b is not None and self.ties[b][0] >= order:
            # Storing into one index of a multi-index entry replaces the whole tie.
            self.ties[b] = (self.ties[b][0], entry)
            return
        if order:
            base = index & ~self.colour
            for i in range(base, base + self.colour + 1):
                if i in self.ties:
                    del self.ties[i]
                    self.dirty.discard(i)
                    self.towrite.discard(i)
            self.ties[base] = (order, entry)
        else:
            self.ties[index] = (0, entry)

    def set_mark(self, index: int, marks: set[int]) -> None:
        b = self.tie_base(index)
        if b is not None:
            marks.add(b)

    def for_each(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """xas_for_each(): (index, entry) of each tie with first index in [start, end]."""
        snap = [(b, t) for b, t in sorted(self.ties.items())
                if b <= end and b + (1 << t[0]) - 1 >= start]
        for b, t in snap:
            if self.ties.get(b) == t:  # not erased meanwhile by the caller
                yield b, t[1]

    def facts(self) -> tuple:
        return tuple(sorted(self.ties.items()))
