"""A seeded pseudo-random op stream, biased toward ops that do something.

Used by `daxfuzz bench` (a fixed stream) and as the plain random baseline; the
fuzzing engines have their own generators.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from daxfuzz import ops as O
from daxfuzz.geometry import Geometry

# op kind -> weight
DEFAULT_WEIGHTS: dict[str, int] = {
    "mmap": 6, "munmap": 2, "fault": 30, "msync": 3, "reflink": 4, "pin": 6, "get": 4,
    "unpin": 5, "put": 4, "truncate": 3, "punch": 3, "unmount": 1, "mount": 1,
    "memory_failure": 2, "write": 4, "dontneed": 2, "fork": 1,
    "exchange": 1, "swapext": 1, "pin_pages": 2, "unpin_pages": 2,
    "write_from": 2, "mprotect": 1, "mremap": 1,
}


class Live:
    """What the generator believes is live (from the ops it made, not their results)."""

    def __init__(self) -> None:
        self.vmas: dict[tuple[int, int], tuple[int, int]] = {}  # (mm, vma) -> (pgoff, pages)
        self.handles: dict[int, str] = {}

    def note(self, op: O.Op) -> None:
        if isinstance(op, O.Mmap):
            self.vmas.setdefault((op.mm, op.vma), (op.pgoff, op.pages))
        elif isinstance(op, O.Munmap):
            self.vmas.pop((op.mm, op.vma), None)
        elif isinstance(op, (O.Pin, O.Get)):
            self.handles.setdefault(op.h, op.name)
        elif isinstance(op, (O.Unpin, O.Put)):
            self.handles.pop(op.h, None)


def random_op(rng: random.Random, g: Geometry, weights: dict[str, int] = DEFAULT_WEIGHTS,
              live: Live | None = None) -> O.Op:
    """One op with fields drawn from the geometry's domains (small values favoured);
    with `live`, faults and GUP mostly aim inside mapped VMAs and releases at live
    handles."""
    kinds = list(weights)
    name = rng.choices(kinds, [weights[k] for k in kinds])[0]
    r = rng.randrange
    mm, vma, ino = r(g.mms), r(g.vmas), r(g.inodes)
    m = g.max_file_pages
    idx = r(min(m, g.file_pages + g.pmd_nr))
    if live is not None and live.vmas and name in ("fault", "pin", "get", "msync", "munmap",
                                                    "dontneed", "pin_pages", "write_from",
                                                    "mprotect", "mremap"):
        if rng.random() < 0.9:
            (mm, vma), (pgoff, pages) = rng.choice(sorted(live.vmas.items()))
            idx = pgoff + r(pages)
    if live is not None and live.handles and name in ("unpin", "put") and rng.random() < 0.9:
        want = "pin" if name == "unpin" else "get"
        hs = sorted(h for h, k in live.handles.items() if k == want)
        if hs:
            return (O.Unpin if want == "pin" else O.Put)(rng.choice(hs))
    if name == "mmap":
        pgoff = rng.choice((0, 0, g.pmd_nr, r(m)))
        pages = max(1, min(m - pgoff, rng.choice((g.pmd_nr, 2 * g.pmd_nr, r(1, m + 1)))))
        return O.Mmap(mm, vma, ino, pgoff, pages, int(rng.random() < 0.8),
                      int(rng.random() < 0.85), int(rng.random() < 0.8),
                      int(rng.random() < 0.85), int(rng.random() < 0.2))
    if name == "munmap":
        if rng.random() < 0.5:
            return O.Munmap(mm, vma)
        return O.Munmap(mm, vma, idx, max(1, min(m - idx, rng.choice((1, g.pmd_nr)))))
    if name == "mprotect":
        return O.Mprotect(mm, vma, idx, max(1, min(m - idx, rng.choice((1, g.pmd_nr)))),
                          int(rng.random() < 0.5))
    if name == "mremap":
        return O.Mremap(mm, vma, idx, max(1, min(m - idx, rng.choice((1, g.pmd_nr)))),
                        (vma + 1 + r(max(1, g.vmas - 1))) % g.vmas, int(rng.random() < 0.7))
    if name == "fault":
        return O.Fault(mm, vma, idx, int(rng.random() < 0.5))
    if name == "msync":
        return O.Msync(mm, vma)
    if name == "reflink":
        n = rng.choice((1, g.pmd_nr, r(1, g.file_pages + 1)))
        return O.Reflink(ino, r(g.inodes), rng.choice((0, r(m))), rng.choice((0, r(m))), n)
    if name == "pin":
        return O.Pin(mm, vma, idx, r(g.handles), int(rng.random() < 0.7),
                     int(rng.random() < 0.05))
    if name == "get":
        return O.Get(mm, vma, idx, r(g.handles), int(rng.random() < 0.3))
    if name == "unpin":
        return O.Unpin(r(g.handles))
    if name == "put":
        return O.Put(r(g.handles))
    if name == "truncate":
        return O.Truncate(ino, rng.choice((0, g.pmd_nr, r(m + 1), g.file_pages)))
    if name == "punch":
        return O.Punch(ino, idx, rng.choice((1, g.pmd_nr, r(1, m + 1))))
    if name == "write_from":
        return O.WriteFrom(mm, vma, idx, ino, idx if rng.random() < 0.5 else r(m), 1)
    if name == "pin_pages":
        n = max(1, min(m - idx, g.handles, rng.choice((1, 2, g.pmd_nr))))
        return O.PinPages(mm, vma, idx, n, r(max(1, g.handles - n + 1)),
                          int(rng.random() < 0.7))
    if name == "unpin_pages":
        n = rng.choice((1, 2, g.pmd_nr))
        return O.UnpinPages(r(g.handles), max(1, min(n, g.max_file_pages)))
    if name == "exchange":
        n = rng.choice((1, g.pmd_nr, r(1, g.file_pages + 1)))
        return O.Exchange(ino, r(g.inodes), rng.choice((0, r(m))), rng.choice((0, r(m))), n)
    if name == "swapext":
        return O.Swapext(ino, r(g.inodes))
    if name == "fork":
        return O.Fork(mm, (mm + 1 + r(max(1, g.mms - 1))) % g.mms)
    if name == "dontneed":
        return O.Dontneed(mm, vma, idx, rng.choice((1, g.pmd_nr, r(1, m + 1))))
    if name == "write":
        return O.Write(ino, idx, max(1, min(m - idx, rng.choice((1, 1, g.pmd_nr)))))
    if name == "unmount":
        return O.Unmount()
    if name == "mount":
        return O.Mount()
    return O.MemoryFailure(r(g.pages), mm, int(rng.random() < 0.7))


def random_ops(seed: int, g: Geometry, n: int,
               weights: dict[str, int] = DEFAULT_WEIGHTS) -> Iterator[O.Op]:
    rng = random.Random(seed)
    live = Live()
    for _ in range(n):
        op = random_op(rng, g, weights, live)
        live.note(op)
        yield op
