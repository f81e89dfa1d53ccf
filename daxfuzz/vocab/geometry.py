"""World geometry: the size of the modelled pmem device, filesystem and processes.

`pmd_order` is the real 9 on x86-64; small values (default 2, a "PMD" of 4 pages)
keep fuzzing fast while exercising the same compound-folio paths.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from daxfuzz.errors import ConfigError
from daxfuzz.textio import decimal, show

#: the largest value of each field: the model allocates per page, inode, process, slot
#: and handle, and the runner compares every inode after every op, so an unbounded
#: header line (`inodes=100000000`) could take all of memory.  Measured worst case, all
#: at once, with pmd_order=9: see README "Limits".
LIMITS = {"pages": 8192, "pmd_order": 9, "inodes": 64, "mms": 16, "vmas": 16,
          "handles": 256, "file_pages": 4096, "max_file_pages": 4096}


@dataclass(frozen=True, slots=True)
class Geometry:
    """Sizes of everything in the world; all counts, in pages where a size."""

    pages: int = 32  # PFNs on the pmem device (the fs-DAX pgmap)
    pmd_order: int = 2  # log2 of pages per PMD (PG_PMD_NR = 1 << pmd_order)
    inodes: int = 2  # files on the filesystem
    mms: int = 2  # processes (struct mm_struct)
    vmas: int = 2  # VMA slots per process
    handles: int = 4  # GUP reference handles that can be live at once
    file_pages: int = 8  # initial i_size of every file, in pages (all holes)
    max_file_pages: int = 16  # largest i_size an op may ask for

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"geometry {f.name}={v!r}: must be a non-negative integer")
            if v > LIMITS[f.name]:
                raise ConfigError(f"geometry {f.name}={v}: the limit is {LIMITS[f.name]}")
        if not 1 <= self.pmd_order <= 9:
            raise ConfigError(f"geometry pmd_order={self.pmd_order}: must be 1..9")
        if self.pages < self.pmd_nr or self.pages % self.pmd_nr:
            raise ConfigError(
                f"geometry pages={self.pages}: must be a positive multiple of the PMD size "
                f"({self.pmd_nr} pages for pmd_order={self.pmd_order})"
            )
        if min(self.inodes, self.mms, self.vmas, self.handles) < 1:
            raise ConfigError("geometry: inodes, mms, vmas and handles must each be at least 1")
        if self.file_pages > self.max_file_pages or self.max_file_pages < 1:
            raise ConfigError("geometry: need 1 <= max_file_pages and file_pages <= max_file_pages")

    @property
    def pmd_nr(self) -> int:
        """PG_PMD_NR: pages per PMD."""
        return 1 << self.pmd_order

    @property
    def pmd_colour(self) -> int:
        """PG_PMD_COLOUR: mask of the page index within a PMD."""
        return (1 << self.pmd_order) - 1

    @property
    def vma_stride(self) -> int:
        """Virtual pages between two VMA slots: room for the largest file, PMD aligned."""
        nr = self.pmd_nr
        return ((self.max_file_pages + 2 * nr) + nr - 1) // nr * nr

    def text(self) -> str:
        """One-line `key=value` form used in trace headers."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> Geometry:
        """Inverse of :meth:`text`; missing keys take their defaults."""
        kw: dict[str, int] = {}
        names = {f.name for f in fields(cls)}
        for tok in text.replace("\t", " ").split(" "):
            if not tok:
                continue
            key, sep, val = tok.partition("=")
            if not sep or key not in names:
                known = ", ".join(sorted(names))
                raise ConfigError(f"geometry: unknown item {show(tok)} (known: {known})")
            if key in kw:
                raise ConfigError(f"geometry: {key} given twice")
            n = decimal(val)
            if n is None:
                raise ConfigError(f"geometry: {key}={show(val)} is not an integer "
                                  "(ASCII digits 0-9 only)")
            kw[key] = n
        return cls(**kw)


DEFAULT = Geometry()
