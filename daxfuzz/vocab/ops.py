"""The operation vocabulary: one frozen value per kernel-visible action.

Every op has a one-line text form, ``name key=value ...`` (fields at their default
are left out), and ``parse_op(str(op)) == op`` always holds.  Identifiers are small
integers: processes (``mm``), VMA slots (``vma``), files (``ino``), GUP handles
(``h``), device PFNs (``pfn``).  File offsets and lengths are in pages.

DESIGN.md's operations map onto these as follows: a PTE or PMD fault, a hole read
and a write after write-protect are all ``fault`` (what the kernel does depends on
the VMA, the page tables and the file: PMD when the VMA is huge-capable and aligned,
the zero page over a hole, ``pfn_mkwrite`` over a write-protected PTE);
``msync`` is the writeback that write-protects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

from daxfuzz.errors import InputError
from daxfuzz.textio import MAX_DIGITS, decimal, show
from daxfuzz.vocab.geometry import Geometry

# Field domains, used by validation and by the engines' generators.
MM, VMA, INO, IDX, LEN, LEN0, HANDLE, PFN, BOOL = (
    "mm", "vma", "ino", "idx", "len", "len0", "h", "pfn", "bool")


def domain_size(domain: str, g: Geometry) -> tuple[int, int]:
    """Inclusive (low, high) range of a field domain under geometry `g`."""
    if domain == MM:
        return 0, g.mms - 1
    if domain == VMA:
        return 0, g.vmas - 1
    if domain == INO:
        return 0, g.inodes - 1
    if domain == IDX:
        return 0, g.max_file_pages - 1
    if domain == LEN:
        return 1, g.max_file_pages
    if domain == LEN0:
        return 0, g.max_file_pages
    if domain == HANDLE:
        return 0, g.handles - 1
    if domain == PFN:
        return 0, g.pages - 1
    if domain == BOOL:
        return 0, 1
    raise ValueError(domain)


class Op:
    """Base of every operation.  Subclasses are frozen dataclasses."""

    name: ClassVar[str]
    domains: ClassVar[tuple[str, ...]]
    # every subclass is one (`_op`): for the type checker, an Op works with fields()
    # and replace() (an annotation only: no class attribute, nothing at run time)
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    __slots__ = ()

    def __str__(self) -> str:
        parts = [self.name]
        for f in fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                parts.append(f"{f.name}={v}")
        return " ".join(parts)

    def check(self, g: Geometry) -> None:
        """Raise ValueError if a field is outside the world `g`."""
        for f, dom in zip(fields(self), self.domains, strict=False):
            lo, hi = domain_size(dom, g)
            v = getattr(self, f.name)
            if not lo <= v <= hi:
                raise ValueError(f"{self.name}: {f.name}={v} outside {lo}..{hi} for this geometry")


_T = TypeVar("_T", bound=type)


@dataclass_transform(frozen_default=True)
def _op(name: str, *domains: str) -> Callable[[_T], _T]:
    def deco(cls: Any) -> Any:
        cls = dataclass(frozen=True, slots=True)(cls)
        cls.name = name
        cls.domains = domains
        return cls
    return deco


@_op("mmap", MM, VMA, INO, IDX, LEN, BOOL, BOOL, BOOL, BOOL, BOOL)
class Mmap(Op):
    """mmap(2) of pages [pgoff, pgoff+pages) of file `ino` into VMA slot `vma` of `mm`.

    shared: MAP_SHARED (else MAP_PRIVATE); write: PROT_WRITE; huge: THP allowed
    (else MADV_NOHUGEPAGE); aligned: virtual address PMD-congruent with the file offset;
    sync: MAP_SYNC (MAP_SHARED_VALIDATE), write faults flush metadata before mapping.
    """

    mm: int
    vma: int
    ino: int
    pgoff: int = 0
    pages: int = 4
    shared: int = 1
    write: int = 1
    huge: int = 1
    aligned: int = 1
    sync: int = 0


@_op("munmap", MM, VMA, IDX, LEN0)
class Munmap(Op):
    """munmap(2) of what VMA slot `vma` maps: every VMA in the slot when `pages` is 0
    (the default), else the virtual range of file pages [pgoff, pgoff+pages) as the
    slot places them -- a partial munmap splits the VMA (a PMD mapping across a split
    point is split first: zapped, for DAX), zaps the range and frees the page tables
    no VMA still uses.  Unmapping a range with nothing mapped is not an error."""

    mm: int
    vma: int
    pgoff: int = 0
    pages: int = 0


@_op("fault", MM, VMA, IDX, BOOL)
class Fault(Op):
    """A user load (write=0) or store (write=1) to file page `pgoff` through a VMA."""

    mm: int
    vma: int
    pgoff: int
    write: int = 0


@_op("msync", MM, VMA)
class Msync(Op):
    """msync(MS_SYNC) of a VMA: DAX writeback write-protects the dirty entries' mappings."""

    mm: int
    vma: int


@_op("reflink", INO, INO, IDX, IDX, LEN)
class Reflink(Op):
    """FICLONERANGE: share `pages` blocks of `src` at src_pgoff into `dst` at dst_pgoff."""

    src: int
    dst: int
    src_pgoff: int = 0
    dst_pgoff: int = 0
    pages: int = 4


@_op("pin", MM, VMA, IDX, HANDLE, BOOL, BOOL)
class Pin(Op):
    """pin_user_pages (FOLL_PIN) of one page into handle `h`, faulting it in as GUP does."""

    mm: int
    vma: int
    pgoff: int
    h: int = 0
    write: int = 1
    longterm: int = 0


@_op("get", MM, VMA, IDX, HANDLE, BOOL)
class Get(Op):
    """get_user_pages (FOLL_GET) of one page into handle `h`, faulting it in as GUP does."""

    mm: int
    vma: int
    pgoff: int
    h: int = 0
    write: int = 0


@_op("pin_pages", MM, VMA, IDX, LEN, HANDLE, BOOL)
class PinPages(Op):
    """pin_user_pages_fast (FOLL_PIN) of `pages` consecutive pages into handles h,
    h+1, ...: a long-lived multi-page pin (an O_DIRECT or io_uring buffer in a DAX
    mapping), all or nothing as io_pin_pages() does: a page that cannot be pinned
    releases the ones before it (EFAULT)."""

    mm: int
    vma: int
    pgoff: int
    pages: int = 4
    h: int = 0
    write: int = 1


@_op("unpin_pages", HANDLE, LEN)
class UnpinPages(Op):
    """unpin_user_pages of the pins in handles h .. h+pages-1, consecutive pages of one
    folio put together (gup_folio_next); EINVAL unless every one is a held pin."""

    h: int
    pages: int = 4


@_op("unpin", HANDLE)
class Unpin(Op):
    """unpin_user_page of the page held by pin handle `h`."""

    h: int


@_op("put", HANDLE)
class Put(Op):
    """put_page of the page held by get handle `h`."""

    h: int


@_op("truncate", INO, LEN0)
class Truncate(Op):
    """truncate(2) file `ino` to `pages` pages (break layouts, unmap, free blocks)."""

    ino: int
    pages: int = 0


@_op("punch", INO, IDX, LEN)
class Punch(Op):
    """fallocate(FALLOC_FL_PUNCH_HOLE) of [pgoff, pgoff+pages) in file `ino`."""

    ino: int
    pgoff: int = 0
    pages: int = 1


@_op("write", INO, IDX, LEN)
class Write(Op):
    """pwrite(2) of `pages` pages at file page `pgoff` of file `ino`, from a buffer
    outside any DAX mapping (xfs_file_dax_write -> dax_iomap_rw): over a hole it
    allocates, over a shared (reflinked) extent it copies on write, past EOF it
    extends the file.  No layout break: it neither waits for GUP nor takes a
    mapping."""

    ino: int
    pgoff: int = 0
    pages: int = 1


@_op("write_from", MM, VMA, IDX, INO, IDX, LEN)
class WriteFrom(Op):
    """pwrite(2) of `pages` pages to file `ino` at `pgoff` from a buffer that is the DAX
    mapping (mm, vma) at file page `src_pgoff` -- e.g. a file's own mapping written back
    over itself: the copy faults the source pages in while the write is in progress.
    A source page the VMA does not cover, or past its file's EOF, is EFAULT before
    anything is written (the model's bound).  When the source and destination runs
    have different real shapes in the guest it is one pwrite per page, in order
    (world.write_from_calls)."""

    mm: int
    vma: int
    src_pgoff: int
    ino: int
    pgoff: int = 0
    pages: int = 1


@_op("dontneed", MM, VMA, IDX, LEN)
class Dontneed(Op):
    """madvise(MADV_DONTNEED) over file pages [pgoff, pgoff+pages) of a VMA (clipped to
    it): zap the PTEs and PMDs there (a PMD partly inside goes whole), private COW
    copies too, keep the VMA; a PTE table the range covers whole is freed (7.2's
    page-table reclaim)."""

    mm: int
    vma: int
    pgoff: int = 0
    pages: int = 1


@_op("mprotect", MM, VMA, IDX, LEN, BOOL)
class Mprotect(Op):
    """mprotect(2) of file pages [pgoff, pgoff+pages) of slot `vma` to PROT_READ, or to
    PROT_READ|PROT_WRITE with write=1: VMAs are split at the range's ends (a PMD mapping
    across one is split: zapped, for DAX) and merged again where flags match; removing
    write write-protects the PTEs and PMDs; adding it makes writable again those the
    kernel may (MM_CP_TRY_CHANGE_WRITABLE: dirty shared, exclusive anonymous).  A hole in
    the range stops it there with ENOMEM."""

    mm: int
    vma: int
    pgoff: int = 0
    pages: int = 1
    write: int = 0


@_op("mremap", MM, VMA, IDX, LEN, VMA, BOOL)
class Mremap(Op):
    """mremap(2) MREMAP_MAYMOVE|MREMAP_FIXED of file pages [pgoff, pgoff+pages) of slot
    `vma` into slot `to` (which is unmapped whole first), at a virtual address PMD-
    congruent with the file offset when `aligned`: page tables move (a whole PTE table or
    a huge PMD when both ends are PMD-aligned, else the PMD is split and its PTEs moved),
    the source VMA is split around the range.  Since 6.17 (7.2) every VMA in the range
    moves, gaps kept, and only a range starting in a hole is EFAULT; before, EFAULT
    unless one VMA holds the range.  `to` == `vma` is EINVAL (the model's bound)."""

    mm: int
    vma: int
    pgoff: int = 0
    pages: int = 1
    to: int = 1
    aligned: int = 1


@_op("fork", MM, MM)
class Fork(Op):
    """fork(2) of process `mm` into process slot `child` (which must map nothing): the
    child gets every VMA; page tables are copied only for a private VMA that has an
    anon_vma (file PTEs shared read-only, one reference and mapcount each; anonymous
    pages write-protected in both); PMDs and every other VMA refault in the child."""

    mm: int
    child: int = 1


@_op("exchange", INO, INO, IDX, IDX, LEN)
class Exchange(Op):
    """XFS_IOC_EXCHANGE_RANGE: exchange `pages` pages of file `ino1` at pgoff1 with file
    `ino2` at pgoff2 (both within EOF, not overlapping in one file).  Both DAX layouts
    are broken first (it waits for GUP, as reflink does), then the ranges' page caches
    are dropped and the block maps exchanged.  Linux 6.10+."""

    ino1: int
    ino2: int
    pgoff1: int = 0
    pgoff2: int = 0
    pages: int = 4


@_op("swapext", INO, INO)
class Swapext(Op):
    """XFS_IOC_SWAPEXT (xfs_fsr's defragmenter): swap every block of file `ino` with file
    `tmp`, which must have the same size and no more extents.  No DAX layout break:
    both page caches are dropped (mappings zapped, entries deleted) without waiting for
    GUP, then the data forks are swapped."""

    ino: int
    tmp: int = 1


@_op("unmount")
class Unmount(Op):
    """umount: evict every inode (dax_break_layout_final, then delete entries)."""


@_op("mount")
class Mount(Op):
    """mount the filesystem again after an unmount (block maps persist)."""


@_op("memory_failure", PFN, MM, BOOL)
class MemoryFailure(Op):
    """memory_failure() on device PFN `pfn`, `mm` being current (MADV_HWPOISON's caller).

    holder=1: the pmem holder path (XFS rmap, mf_dax_kill_procs per owner);
    holder=0: the generic path (mf_generic_kill_procs, reads folio->mapping/index).
    """

    pfn: int
    mm: int = 0
    holder: int = 1


OP_TYPES: tuple[type[Op], ...] = (
    Mmap, Munmap, Fault, Msync, Reflink, Pin, Get, Unpin, Put, Truncate, Punch,
    Unmount, Mount, MemoryFailure, Write, Dontneed,
    Fork, Exchange, Swapext, PinPages, UnpinPages, WriteFrom, Mprotect, Mremap,
)
BY_NAME: dict[str, type[Op]] = {t.name: t for t in OP_TYPES}


def split_fields(text: str) -> list[str]:
    """The words of an op line: split on ASCII spaces and tabs only (str.split() also
    splits on a no-break space and other Unicode spaces, which a trace must not hold)."""
    return [w for w in text.replace("\t", " ").split(" ") if w]


def parse_op(text: str, *, path: str | None = None, line: int | None = None) -> Op:
    """Parse one op line (no comment).  Raises InputError naming `path` and `line`."""
    toks = split_fields(text)
    if not toks:
        raise InputError("empty op line", path=path, line=line)
    cls = BY_NAME.get(toks[0])
    if cls is None:
        raise InputError(
            f"unknown op {show(toks[0])}; known ops: {', '.join(BY_NAME)}", path=path, line=line)
    names = [f.name for f in fields(cls)]
    kw: dict[str, int] = {}
    for tok in toks[1:]:
        key, sep, val = tok.partition("=")
        if not sep:
            raise InputError(f"{cls.name}: expected key=value, got {show(tok)}",
                             path=path, line=line)
        if key not in names:
            raise InputError(
                f"{cls.name}: unknown field {show(key)}; fields are {', '.join(names) or '(none)'}",
                path=path, line=line)
        if key in kw:
            raise InputError(f"{cls.name}: field {key!r} given twice", path=path, line=line)
        n = decimal(val)
        if n is None:
            raise InputError(f"{cls.name}: {key}={show(val)} is not a decimal integer "
                             f"(ASCII digits 0-9, at most {MAX_DIGITS})",
                             path=path, line=line)
        kw[key] = n
    missing = [f.name for f in fields(cls) if f.name not in kw and f.default is MISSING]
    if missing:
        raise InputError(f"{cls.name}: missing field(s) {', '.join(missing)}",
                         path=path, line=line)
    return cls(**kw)
