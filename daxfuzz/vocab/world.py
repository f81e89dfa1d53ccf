"""World primitives shared by the oracle and every target: storage, not kernel logic.

Both sides keep their own instances; only the shapes are common, so their facts
can be compared with plain ``==``.  Virtual addresses are in pages.  A VMA slot
owns a disjoint window of the address space (`Geometry.vma_stride` pages), so page
tables of two slots never share a PMD slot.  A slot holds the VMAs one mmap made:
one, or more once munmap, mprotect or mremap split it (the VMA bookkeeping below:
__split_vma, vma_merge, vms_gather_munmap_vmas -- without their page-table side,
which each side models itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from daxfuzz.vocab.geometry import Geometry

# Special "PFNs" in page-table entries and GUP handles.  Device PFNs are >= 0.
ZERO_PFN = -1  # the shared zero page (PTE) -- special, no refcount
HUGE_ZERO = -2  # the huge zero folio (PMD) -- special, no refcount
ANON = -3  # an anonymous page made by copy-on-write in a private mapping
#: what a FOLL_PIN adds to an order-0 page's refcount (include/linux/mm.h)
GUP_PIN_COUNTING_BIAS = 1 << 10

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
ENOMEM = "ENOMEM"


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
    account: bool = False  # VM_ACCOUNT: a private mapping that was ever writable

    @property
    def end(self) -> int:
        return self.start + self.pages

    def vaddr(self, idx: int) -> int:
        """Virtual page of file page `idx` (linear_page_index inverse)."""
        return self.start + idx - self.pgoff

    # shadows tuple.index (a Vma is a NamedTuple for speed), which nothing here calls
    def index(self, vaddr: int) -> int:  # type: ignore[override]
        """File page of virtual page `vaddr` (linear_page_index)."""
        return vaddr - self.start + self.pgoff

    def covers(self, idx: int) -> bool:
        return self.pgoff <= idx < self.pgoff + self.pages

    def mergeable(self, nxt: Vma) -> bool:
        """is_mergeable_vma() + contiguity: `nxt` starts where this ends, same file at
        the next offset, same flags.  (Anon_vmas are taken as compatible: within a slot
        they come from one split, or one of them is NULL.)"""
        return (self.end == nxt.start and self.pgoff + self.pages == nxt.pgoff
                and self.ino == nxt.ino and self.shared == nxt.shared
                and self.write == nxt.write and self.huge == nxt.huge
                and self.sync == nxt.sync and self.account == nxt.account)


def buffer_readable(vmas: tuple[Vma, ...], first: int, pages: int, size: int) -> bool:
    """Can a user buffer of file pages [first, first+pages) of a slot's VMAs be read
    whole?  VMAs must cover every page and it must end before the file's EOF `size` (a
    load past EOF is SIGBUS).  The model's bound for write_from, checked before
    anything is written."""
    last = first + pages - 1
    return last < size and all(any(v.covers(i) for v in vmas) for i in range(first, last + 1))


#: pages of 4 KiB in the guest's 2 MiB PMD (x86-64), whatever the model's pmd_order
REAL_PMD_PAGES = 512


def real_page(g: Geometry, i: int) -> int:
    """The guest's 4 KiB page standing for (the start of) model page `i`: model PMD
    group ``i >> pmd_order`` is the real 2 MiB extent of that number (see
    daxfuzz/guest/translate.py ``off()``, which is this times 4 KiB)."""
    return (i >> g.pmd_order) * REAL_PMD_PAGES + (i & g.pmd_colour)


def write_from_calls(g: Geometry, src_pgoff: int, pgoff: int,
                     pages: int) -> list[tuple[int, int, int]]:
    """The pwrite(2) calls (source page, destination page, pages) a write_from is, in
    order.  One call when the source and destination runs have the same real shape
    (each page as far from the run's first in the guest on both sides; always so with
    pmd_order=9): the source bytes are contiguous in the mapping.  Otherwise one call
    per model page, in order -- what the guest runs (translate.write_from_segments),
    and it differs: an earlier call's copy may read a source page through a mapping
    (e.g. the huge zero page) before a later call allocates that page, where one call
    would have allocated it first and faulted it in mapped by a PTE (issue 14,
    docs/triage/kernel-fuzz-write-from-split-calls.md)."""
    s0, p0 = real_page(g, src_pgoff), real_page(g, pgoff)
    if all(real_page(g, src_pgoff + k) - s0 == real_page(g, pgoff + k) - p0
           for k in range(1, pages + 1)):
        return [(src_pgoff, pgoff, pages)]
    return [(src_pgoff + k, pgoff + k, 1) for k in range(pages)]


def make_vma(g: Geometry, mm: int, slot: int, ino: int, pgoff: int, pages: int,
             shared: bool, write: bool, huge: bool, aligned: bool, sync: bool = False) -> Vma:
    """Place a VMA in its slot's window; `aligned` makes vaddr % PMD == pgoff % PMD."""
    start = (slot + 1) * g.vma_stride + pgoff + (0 if aligned else 1)
    # mm/vma.c accountable_mapping(): a private writable mapping is VM_ACCOUNT
    return Vma(mm, slot, ino, pgoff, pages, shared, write, huge, aligned, start, sync,
               write and not shared)


class MMState:
    """One process: VMAs by slot, PTEs, huge PMDs, which PMD slots hold a PTE table,
    and which VMAs have an anon_vma (a private VMA that made an anonymous copy: fork
    copies its page tables), named by their start (VMAs of one mm never overlap)."""

    __slots__ = ("vmas", "pte", "pmd", "tables", "anon")

    def __init__(self) -> None:
        self.vmas: dict[int, tuple[Vma, ...]] = {}  # slot -> its VMAs, by address
        self.pte: dict[int, tuple[int, bool]] = {}  # vaddr -> (pfn, writable)
        self.pmd: dict[int, tuple[int, bool]] = {}  # pmd slot -> (head pfn, writable)
        self.tables: set[int] = set()  # pmd slots with a PTE page table
        self.anon: set[int] = set()  # vm_start of each VMA with an anon_vma

    def find_vma(self, slot: int, idx: int) -> Vma | None:
        """The VMA of `slot` that maps file page `idx` (find_vma() at its address)."""
        for v in self.vmas.get(slot, ()):
            if v.pgoff <= idx < v.pgoff + v.pages:
                return v
        return None

    def each_vma(self) -> Iterator[Vma]:
        """Every VMA, slot by slot (in the order the slots were mapped), by address."""
        for vmas in self.vmas.values():
            yield from vmas

    def vma_at(self, slot: int, va: int) -> Vma | None:
        """The VMA of `slot` containing virtual page `va`."""
        for v in self.vmas.get(slot, ()):
            if v.start <= va < v.end:
                return v
        return None

    # mm/vma.c __split_vma() (7.2), the VMA-tree half: the VMA of `slot` around `va`
    # becomes [start, va) and [va, end); both keep its flags and anon_vma
    def split_vma(self, slot: int, va: int) -> None:
        out: list[Vma] = []
        for v in self.vmas[slot]:
            if v.start < va < v.end:
                n = va - v.start
                out += [v._replace(pages=n),
                        v._replace(start=va, pgoff=v.pgoff + n, pages=v.pages - n)]
                if v.start in self.anon:
                    self.anon.add(va)
            else:
                out.append(v)
        self.vmas[slot] = tuple(out)

    def detach_vmas(self, slot: int, lo: int, hi: int) -> list[Vma]:
        """vms_gather_munmap_vmas() after its splits: take the VMAs of `slot` inside
        virtual pages [lo, hi) out of the tree; return them."""
        keep: list[Vma] = []
        gone: list[Vma] = []
        for v in self.vmas[slot]:
            (gone if lo <= v.start and v.end <= hi else keep).append(v)
        for v in gone:
            self.anon.discard(v.start)
        if keep:
            self.vmas[slot] = tuple(keep)
        else:
            del self.vmas[slot]
        return gone

    # mm/vma.c vma_merge_existing_range() (7.2), the VMA-tree half: neighbours that
    # mprotect left with the same flags become one VMA again
    def merge_vmas(self, slot: int) -> None:
        out: list[Vma] = []
        for v in self.vmas[slot]:
            if out and out[-1].mergeable(v):
                prev = out[-1]
                if v.start in self.anon:
                    self.anon.discard(v.start)
                    self.anon.add(prev.start)
                out[-1] = prev._replace(pages=prev.pages + v.pages)
            else:
                out.append(v)
        self.vmas[slot] = tuple(out)

    def pmd_in_use(self, pslot: int, order: int) -> bool:
        """Does any VMA still overlap PMD `pslot`?  free_pgtables() keeps its table."""
        s0 = pslot << order
        s1 = s0 + (1 << order)
        return any(v.start < s1 and s0 < v.end for v in self.each_vma())
