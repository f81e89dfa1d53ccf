"""World primitives shared by the oracle and every target: storage, not kernel logic.

Both sides keep their own instances; only the shapes are common, so their facts
can be compared with plain ``==``.  Virtual addresses are in pages.  A VMA slot
owns a disjoint window of the address space (`Geometry.vma_stride` pages), so page
tables of two VMAs never share a PMD slot.
"""

from __future__ import annotations

from typing import NamedTuple

from daxfuzz.geometry import Geometry

# Special "PFNs" in page-table entries and GUP handles.  Device PFNs are >= 0.
ZERO_PFN = -1  # the shared zero page (PTE) -- special, no refcount
HUGE_ZERO = -2  # the huge zero folio (PMD) -- special, no refcount
ANON = -3  # an anonymous page made by copy-on-write in a private mapping

# Op results (what the syscall / access returned).
OK = "ok"
SIGBUS = "SIGBUS"
SIGSEGV = "SIGSEGV"
EINVAL = "EINVAL"
EBUSY = "EBUSY"
EEXIST = "EEXIST"
ENOENT = "ENOENT"
EFAULT = "EFAULT"
EOPNOTSUPP = "EOPNOTSUPP"
ENOSPC = "ENOSPC"
ENOTTY = "ENOTTY"


# DAX entry facts: ``pfn << ENTRY_SHIFT | flags`` -- the encoding fs/dax.c uses for its
# xarray values, so a target's raw entries compare with the oracle's by ``==``.
ENTRY_SHIFT = 4
ENTRY_PMD = 1 << 1
ENTRY_ZERO = 1 << 2
ENTRY_EMPTY = 1 << 3


def entry_code(kind: str, pmd: bool, pfn: int) -> int:
    """Encode an entry fact: kind 'real'/'zero'/'empty', PMD-sized or not, its pfn."""
    flags = ENTRY_PMD if pmd else 0
    if kind == "zero":
        flags |= ENTRY_ZERO
    elif kind == "empty":
        flags |= ENTRY_EMPTY
        pfn = 0
    return (pfn << ENTRY_SHIFT) | flags


def entry_kind(code: int) -> str:
    return "empty" if code & ENTRY_EMPTY else "zero" if code & ENTRY_ZERO else "real"


def entry_text(tie_order: int, code: int) -> str:
    """Human form of an entry fact."""
    kind = entry_kind(code)
    size = "PMD" if code & ENTRY_PMD else "PTE"
    pfn = "" if kind == "empty" else f" pfn {code >> ENTRY_SHIFT}"
    tie = f" (in a {1 << tie_order}-index slot)" if tie_order and not code & ENTRY_PMD else ""
    return f"{size} {kind}{pfn}{tie}"


def blocked(pfn: int) -> str:
    """Result of an op that must wait for `pfn` to become idle (modelled, never slept)."""
    return f"blocked pfn={pfn}"


class Vma(NamedTuple):
    """A file VMA: pages [pgoff, pgoff+pages) of `ino` at virtual page `start`.
    (A NamedTuple: compared on the hot path, where tuple equality is cheapest.)"""

    mm: int
    slot: int
    ino: int
    pgoff: int
    pages: int
    shared: bool
    write: bool
    huge: bool
    aligned: bool
    start: int
    sync: bool = False

    @property
    def end(self) -> int:
        return self.start + self.pages

    def vaddr(self, idx: int) -> int:
        """Virtual page of file page `idx` (linear_page_index inverse)."""
        return self.start + idx - self.pgoff

    def index(self, vaddr: int) -> int:
        """File page of virtual page `vaddr` (linear_page_index)."""
        return vaddr - self.start + self.pgoff

    def covers(self, idx: int) -> bool:
        return self.pgoff <= idx < self.pgoff + self.pages


def buffer_readable(vma: Vma | None, first: int, pages: int, size: int) -> bool:
    """Can a user buffer of file pages [first, first+pages) of `vma` be read whole?  The
    VMA must cover it and it must end before its file's EOF `size` (a load past EOF is
    SIGBUS).  The model's bound for write_from, checked before anything is written."""
    last = first + pages - 1
    return vma is not None and vma.covers(first) and vma.covers(last) and last < size


def make_vma(g: Geometry, mm: int, slot: int, ino: int, pgoff: int, pages: int,
             shared: bool, write: bool, huge: bool, aligned: bool, sync: bool = False) -> Vma:
    """Place a VMA in its slot's window; `aligned` makes vaddr % PMD == pgoff % PMD."""
    start = (slot + 1) * g.vma_stride + pgoff + (0 if aligned else 1)
    return Vma(mm, slot, ino, pgoff, pages, shared, write, huge, aligned, start, sync)


class MMState:
    """One process: VMAs, PTEs, huge PMDs, which PMD slots hold a PTE table, and which
    VMA slots have an anon_vma (a private VMA that made an anonymous copy: fork copies
    its page tables)."""

    __slots__ = ("vmas", "pte", "pmd", "tables", "anon")

    def __init__(self) -> None:
        self.vmas: dict[int, Vma] = {}
        self.pte: dict[int, tuple[int, bool]] = {}  # vaddr -> (pfn, writable)
        self.pmd: dict[int, tuple[int, bool]] = {}  # pmd slot -> (head pfn, writable)
        self.tables: set[int] = set()  # pmd slots with a PTE page table
        self.anon: set[int] = set()  # VMA slots with an anon_vma
