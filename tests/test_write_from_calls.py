"""write_from is one pwrite(2), or one per page when the runs' real shapes differ
(issue 14, docs/triage/kernel-fuzz-write-from-split-calls.md): expectations by hand."""

from __future__ import annotations

import itertools

from daxfuzz.core.runner import Runner
from daxfuzz.guest.translate import write_from_segments
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.blockfs import HOLE
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import parse_trace
from daxfuzz.vocab.world import HUGE_ZERO, ZERO_PFN, real_page, write_from_calls

G = Geometry()  # pmd_order=2: model page i is real page (i >> 2) * 512 + (i & 3)


def test_real_page_by_hand():
    assert [real_page(G, i) for i in (0, 1, 3, 4, 5, 7, 8)] == [0, 1, 3, 512, 513, 515, 1024]
    assert [real_page(Geometry(pmd_order=9, pages=512), i) for i in (0, 5, 511)] == [0, 5, 511]


def test_write_from_calls_by_hand():
    # same phase in their groups: one call
    assert write_from_calls(G, 1, 5, 2) == [(1, 5, 2)]
    assert write_from_calls(G, 4, 8, 4) == [(4, 8, 4)]  # a whole group onto a whole group
    assert write_from_calls(G, 3, 7, 1) == [(3, 7, 1)]  # both a group's last page
    # different phases: one call per model page, in order
    assert write_from_calls(G, 4, 2, 4) == [(4, 2, 1), (5, 3, 1), (6, 4, 1), (7, 5, 1)]
    assert write_from_calls(G, 0, 2, 3) == [(0, 2, 1), (1, 3, 1), (2, 4, 1)]
    assert write_from_calls(G, 3, 2, 1) == [(3, 2, 1)]  # last (2 MiB - 12 KiB) vs 4 KiB
    # pmd_order=9: the real geometry, always one call
    g9 = Geometry(pmd_order=9, pages=512, file_pages=16)
    assert write_from_calls(g9, 4, 2, 4) == [(4, 2, 4)]


def test_the_model_makes_the_calls_the_guest_makes():
    """translate.write_from_segments (what the guest runs) and the model agree on how
    many pwrite calls a write_from is, for every small source, destination, length."""
    for s, p, n in itertools.product(range(9), range(9), range(1, 6)):
        op = O.WriteFrom(mm=0, vma=0, src_pgoff=s, ino=0, pgoff=p, pages=n)
        assert len(write_from_segments(G, op)) == len(write_from_calls(G, s, p, n)), (s, p, n)


PROBE = """\
write ino=0 pgoff=2                                       => ok
mmap mm=1 vma=1 ino=0 pgoff=4 shared=0 write=0            => ok
write_from mm=1 vma=1 src_pgoff=4 ino=0 pgoff=2 pages=4   => ok
"""


def test_an_earlier_call_reads_through_the_zero_pmd():
    """Hand-computed, per call:  4->2: page 2 is written (no invalidation); the load of
    page 4 is a PMD read fault over group 1, all holes: the huge zero folio.  5->3: page
    3 allocated; page 5 is read through the zero PMD, no fault.  6->4: page 4 allocated,
    its invalidation zaps the zero PMD; the load of page 6 falls back to a PTE (group 1
    is not all written) over a hole: the zero page.  7->5: page 5 allocated, nothing
    maps it to zap; page 7 a zero PTE.  So page 5 -- allocated -- is mapped by no one
    (one call would have allocated 3..5 before reading 5 and mapped it by a PTE)."""
    tr = parse_trace(PROBE)
    r = Runner("7.2", tr.geometry)
    for op in tr.ops:
        assert r.step(op) is None
    for mm in (r.o.mms[1], r.t.mms[1]):
        vma = mm.find_vma(1, 4)
        assert not mm.pmd
        assert {i: mm.pte[vma.vaddr(i)][0] for i in range(4, 8) if vma.vaddr(i) in mm.pte} \
            == {6: ZERO_PFN, 7: ZERO_PFN}
        assert HUGE_ZERO not in {p for p, _w in mm.pte.values()}
    for fs in (r.o.fs, r.t.fs):
        assert all(fs.pfn(0, i) != HOLE for i in (2, 3, 4, 5))
        assert all(fs.pfn(0, i) == HOLE for i in (0, 1, 6, 7))
    pfn5 = r.t.fs.pfn(0, 5)
    assert r.t.pages[pfn5]._refcount == 0
    # a load of page 5 now maps it: one PTE, one reference
    assert r.step(O.parse_op("fault mm=1 vma=1 pgoff=5")) is None
    assert r.t.pages[pfn5]._refcount == 1
    assert r.t.mms[1].pte[r.t.mms[1].find_vma(1, 5).vaddr(5)][0] == pfn5
