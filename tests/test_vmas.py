"""Split VMAs: partial munmap, mprotect and mremap, with hand-computed VMA trees, page
tables and results, on the oracle and on the kernel ports."""

from __future__ import annotations

import pytest

from daxfuzz.core.runner import Runner
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import parse_op
from daxfuzz.vocab.world import ANON

G = Geometry()  # PMD = 4 pages; slot 0's window starts at vma_stride (24) pages
VA0 = G.vma_stride
VA1 = 2 * G.vma_stride


def run(target: str, *lines: str) -> Runner:
    r = Runner(target, G)
    for line in lines:
        text, _, want = line.partition("=>")
        div = r.step(parse_op(text))
        assert div is None, div.report()
        assert r.last_result == (want.strip() or "ok"), line
    return r


def tree(r: Runner, side: str, mm: int = 0) -> dict[int, list[tuple[int, int, int, bool]]]:
    """slot -> [(start, pgoff, pages, write)] of the oracle ("o") or target ("t")."""
    mmst = getattr(r, side).mms[mm]
    return {s: [(v.start, v.pgoff, v.pages, v.write) for v in vs]
            for s, vs in mmst.vmas.items()}


@pytest.mark.parametrize("target", ["7.2", "6.15", "legacy"])
def test_mprotect_splits_in_three_and_merges_back(target):
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=8", "fault mm=0 vma=0 pgoff=4 write=1",
            "mprotect mm=0 vma=0 pgoff=5 pages=1")
    want = {0: [(VA0, 0, 5, True), (VA0 + 5, 5, 1, False), (VA0 + 6, 6, 2, True)]}
    assert tree(r, "o") == tree(r, "t") == want
    # the split at page 5 cut through the PMD of pages 4..7: it is gone
    assert r.o.mms[0].pmd == r.t.mms[0].pmd == {}
    run_more(r, "fault mm=0 vma=0 pgoff=5 write=1 => SIGSEGV",
             "mprotect mm=0 vma=0 pgoff=5 pages=1 write=1")
    assert tree(r, "o") == tree(r, "t") == {0: [(VA0, 0, 8, True)]}


def run_more(r: Runner, *lines: str) -> None:
    for line in lines:
        text, _, want = line.partition("=>")
        assert r.step(parse_op(text)) is None
        assert r.last_result == (want.strip() or "ok"), line


@pytest.mark.parametrize("target", ["7.2", "legacy"])
def test_private_mapping_made_writable_stays_accountable(target):
    # MAP_PRIVATE, PROT_READ: no VM_ACCOUNT.  Page 1 made writable gets it and keeps it
    # when made read-only again, so it does not merge back with its neighbours.
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=4 shared=0 write=0",
            "mprotect mm=0 vma=0 pgoff=1 pages=1 write=1",
            "mprotect mm=0 vma=0 pgoff=1 pages=1")
    want = {0: [(VA0, 0, 1, False), (VA0 + 1, 1, 1, False), (VA0 + 2, 2, 2, False)]}
    assert tree(r, "o") == tree(r, "t") == want
    # a shared mapping is never accountable: the same two calls leave one VMA
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=4 write=0",
            "mprotect mm=0 vma=0 pgoff=1 pages=1 write=1",
            "mprotect mm=0 vma=0 pgoff=1 pages=1")
    assert tree(r, "o") == tree(r, "t") == {0: [(VA0, 0, 4, False)]}


@pytest.mark.parametrize("target", ["7.2", "6.15"])
def test_partial_munmap_frees_a_pte_table_with_its_last_vma(target):
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=4 huge=0",
            "fault mm=0 vma=0 pgoff=0", "fault mm=0 vma=0 pgoff=3",
            "munmap mm=0 vma=0 pgoff=0 pages=2")
    slot = VA0 >> G.pmd_order
    for side in (r.o, r.t):
        assert side.mms[0].tables == {slot}  # pages 2..3 still use the table
        assert set(side.mms[0].pte) == {VA0 + 3}
    run_more(r, "munmap mm=0 vma=0 pgoff=2 pages=2")
    for side in (r.o, r.t):
        assert side.mms[0].tables == set() and side.mms[0].pte == {}
        assert side.mms[0].vmas == {}
    run_more(r, "munmap mm=0 vma=0 => EINVAL", "mprotect mm=0 vma=0 => EINVAL")


@pytest.mark.parametrize("target", ["7.2", "6.15", "legacy"])
def test_mremap_moves_ptes_anon_and_pmd(target):
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=8 shared=0",
            "fault mm=0 vma=0 pgoff=1 write=1",   # a private copy: ANON, an anon_vma
            "fault mm=0 vma=0 pgoff=4",            # a read PMD over pages 4..7
            "mremap mm=0 vma=0 pgoff=0 pages=8 to=1")
    for side in (r.o, r.t):
        mm = side.mms[0]
        assert mm.pte == {VA1 + 1: (ANON, True)}
        assert set(mm.pmd) == {(VA1 + 4) >> G.pmd_order}
        assert mm.anon == {VA1}
        assert mm.tables == {VA1 >> G.pmd_order}
    assert tree(r, "o") == tree(r, "t") == {1: [(VA1, 0, 8, True)]}
    # to an address 1 page off the congruent one: the PMD cannot move whole
    run_more(r, "mremap mm=0 vma=1 pgoff=0 pages=8 to=0 aligned=0")
    for side in (r.o, r.t):
        assert side.mms[0].pmd == {} and side.mms[0].pte == {VA0 + 2: (ANON, True)}


def test_mremap_of_several_vmas_needs_6_17():
    steps = ("mmap mm=0 vma=0 ino=0 pages=4 huge=0", "mprotect mm=0 vma=0 pgoff=1 pages=1")
    assert run("7.2", *steps, "mremap mm=0 vma=0 pgoff=0 pages=4 to=1")
    assert run("6.15", *steps, "mremap mm=0 vma=0 pgoff=0 pages=4 to=1 => EFAULT")
    # a range starting in a hole is EFAULT on both
    steps += ("munmap mm=0 vma=0 pgoff=0 pages=1",)
    assert run("7.2", *steps, "mremap mm=0 vma=0 pgoff=0 pages=4 to=1 => EFAULT")


@pytest.mark.parametrize("target", ["7.2", "6.15"])
def test_holes_are_enomem_for_msync_and_dontneed(target):
    r = run(target, "mmap mm=0 vma=0 ino=0 pages=8 huge=0",
            "fault mm=0 vma=0 pgoff=0 write=1", "fault mm=0 vma=0 pgoff=5 write=1",
            "munmap mm=0 vma=0 pgoff=2 pages=2",
            "msync mm=0 vma=0 => ENOMEM",
            "dontneed mm=0 vma=0 pgoff=0 pages=8 => ENOMEM",
            "dontneed mm=0 vma=0 pgoff=4 pages=4",
            "mprotect mm=0 vma=0 pgoff=0 pages=8 => ENOMEM")
    for side in (r.o, r.t):
        assert side.mms[0].pte == {}
    # mprotect stopped at the hole: [0,2) changed, [4,8) not
    assert [v.write for v in r.t.mms[0].vmas[0]] == [False, True]


@pytest.mark.parametrize("target", ["7.2", "legacy"])
def test_dontneed_ending_or_lying_in_a_hole_is_enomem(target):
    # what 7.2.13 answered (madvise_walk_vmas: any unmapped part of the range), with
    # the range clipped to the slot's extent first: pages 0,1 and 3..7 mapped
    run(target, "mmap mm=0 vma=0 ino=0 pages=8 huge=0", "munmap mm=0 vma=0 pgoff=2 pages=1",
        "dontneed mm=0 vma=0 pgoff=0 pages=3 => ENOMEM",
        "dontneed mm=0 vma=0 pgoff=1 pages=2 => ENOMEM",
        "dontneed mm=0 vma=0 pgoff=2 pages=1 => ENOMEM",
        "dontneed mm=0 vma=0 pgoff=2 pages=2 => ENOMEM",
        "dontneed mm=0 vma=0 pgoff=3 pages=9",
        "dontneed mm=0 vma=0 pgoff=0 pages=2")
