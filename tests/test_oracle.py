"""The reference oracle's facts after hand-made sequences (no target involved)."""

from __future__ import annotations

from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import parse_op
from daxfuzz.vocab.world import (
    ANON,
    HUGE_ZERO,
    ZERO_PFN,
    entry_code,
)
from oracle import Oracle

PTE_MAP = "mmap mm=0 vma=0 ino=0 pages=4 huge=0"
PMD_MAP = "mmap mm=0 vma=0 ino=0 pages=4"
VA0 = Geometry().vma_stride


def oracle(*lines: str) -> Oracle:
    o = Oracle(Geometry())
    run(o, *lines)
    return o


def run(o: Oracle, *lines: str) -> None:
    for line in lines:
        text, _, want = line.partition("=>")
        assert o.apply(parse_op(text)) == (want.strip() or "ok"), line


def test_pte_write_fault_facts():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1")
    assert o.pte_maps[0] == 1 and sum(o.pte_maps) == 1
    assert sum(o.pmd_maps) == 0
    assert o.mms[0].pte == {VA0: (0, True)}
    assert o.entries[0] == {0: (0, entry_code("real", False, 0))}
    assert (o.head[0], o.forder[0], o.assoc[0], o.owner[0]) == (0, 0, 1, (0, 0))
    assert o.fs.bmap[0] == {0: 0}
    assert o.changed == {0}


def test_hole_read_zero_page_then_write():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=1")
    assert o.mms[0].pte == {VA0 + 1: (ZERO_PFN, False)}
    assert o.entries[0] == {1: (0, entry_code("zero", False, ZERO_PFN))}
    assert sum(o.pte_maps) == 0 and o.fs.bmap[0] == {}
    run(o, "fault mm=0 vma=0 pgoff=1 write=1")
    assert o.mms[0].pte == {VA0 + 1: (1, True)}
    assert o.entries[0] == {1: (0, entry_code("real", False, 1))}
    assert o.owner[1] == (0, 1)


def test_pmd_fault_builds_folio_and_truncate_splits():
    o = oracle(PMD_MAP, "fault mm=0 vma=0 pgoff=2 write=1")
    assert o.mms[0].pmd == {VA0 >> 2: (0, True)}
    assert o.pmd_maps[0] == 1 and sum(o.pte_maps) == 0
    assert o.head[:5] == [0, 0, 0, 0, 4]
    assert o.forder[0] == 2
    assert list(o.folio_pfns(0)) == [0, 1, 2, 3]
    assert o.entries[0] == {0: (2, entry_code("real", True, 0))}
    run(o, "truncate ino=0")
    assert o.head[:4] == [0, 1, 2, 3] and o.forder[0] == 0
    assert o.entries[0] == {} and o.fs.bmap[0] == {} and o.assoc[0] == 0
    assert o.mms[0].pmd == {}


def test_pmd_hole_read_is_huge_zero():
    o = oracle(PMD_MAP, "fault mm=0 vma=0 pgoff=0")
    assert o.mms[0].pmd == {VA0 >> 2: (HUGE_ZERO, False)}
    assert o.entries[0] == {0: (2, entry_code("zero", True, HUGE_ZERO))}


def test_pte_entries_make_pmd_fault_fall_back():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=1 write=1", "munmap mm=0 vma=0", PMD_MAP,
               "fault mm=0 vma=0 pgoff=0 write=1")
    assert o.mms[0].pmd == {}
    assert set(o.mms[0].pte) == {VA0}
    assert o.forder[o.head[o.mms[0].pte[VA0][0]]] == 0
    assert all(tie == 0 for tie, _ in o.entries[0].values())


def test_reflink_share_and_unshare():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=0 dst=1",
               "mmap mm=1 vma=0 ino=1 pages=4 huge=0", "fault mm=0 vma=0 pgoff=0")
    assert o.fs.owners(0) == [(0, 0), (1, 0)]
    assert o.owner[0] == (0, 0) and 0 not in o.shared
    run(o, "fault mm=1 vma=0 pgoff=0")
    assert 0 in o.shared and o.owner[0] is None and o.assoc[0] == 2
    assert o.pte_maps[0] == 2
    run(o, "truncate ino=1")
    assert 0 in o.shared and o.assoc[0] == 1  # stays shared until the last entry goes
    run(o, "truncate ino=0")
    assert 0 not in o.shared and o.assoc[0] == 0


def test_write_to_shared_block_copies_on_write():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "reflink src=0 dst=1",
               "mmap mm=1 vma=0 ino=1 pages=4 huge=0", "fault mm=1 vma=0 pgoff=0",
               "fault mm=1 vma=0 pgoff=0 write=1")
    new = o.fs.bmap[1][0]
    assert new != 0 and o.fs.bmap[0] == {0: 0}
    assert o.mms[1].pte == {VA0: (new, True)}
    assert o.assoc[0] == 0 and o.owner[new] == (1, 0)


def test_gup_handles_and_longterm():
    o = oracle(PTE_MAP, "pin mm=0 vma=0 pgoff=0 h=0 longterm=1 => EOPNOTSUPP")
    assert o.handles == {}
    run(o, "pin mm=0 vma=0 pgoff=0 h=0", "get mm=0 vma=0 pgoff=0 h=1",
        "pin mm=0 vma=0 pgoff=1 h=0 => EEXIST", "put h=0 => EINVAL")
    assert o.handles == {0: (0, "pin"), 1: (0, "get")}
    assert (o.pins[0], o.gets[0], o.gup_refs(0)) == (1, 1, 2)
    run(o, "unpin h=0", "put h=1")
    assert o.handles == {} and o.gup_refs(0) == 0


def test_gup_refs_count_the_whole_folio():
    o = oracle(PMD_MAP, "pin mm=0 vma=0 pgoff=3 h=0")
    assert o.pins[3] == 1 and o.gup_refs(0) == 1
    assert o.handles == {0: (3, "pin")}


def test_truncate_blocks_on_pinned_pfn():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "pin mm=0 vma=0 pgoff=2 h=0",
               "truncate ino=0 => blocked pfn=6")
    # index 2 got pfn 6: chunk 0 is partly used, so the next free chunk at colour 2;
    # the layout was broken (everything unmapped) but no entry or block went
    assert o.mms[0].pte == {}
    assert set(o.entries[0]) == {0, 2} and o.fs.bmap[0] == {0: 0, 2: 6}
    run(o, "unpin h=0", "truncate ino=0")
    assert o.entries[0] == {} and o.fs.bmap[0] == {}


def test_reflink_blocked_on_second_inode():
    o = oracle("mmap mm=1 vma=0 ino=1 pages=4 huge=0", "pin mm=1 vma=0 pgoff=0 h=0",
               "reflink src=0 dst=1 => blocked pfn=0")
    assert o.fs.bmap[1] == {0: 0}
    run(o, "unpin h=0", "reflink src=0 dst=1")
    assert o.fs.bmap[1] == {}  # ino0 had a hole there


def test_unmount_mount():
    o = oracle(PTE_MAP, "pin mm=0 vma=0 pgoff=0 h=0", "unmount => EBUSY",
               "munmap mm=0 vma=0", "unmount => blocked pfn=0", "unpin h=0", "unmount",
               "unmount => EINVAL", "truncate ino=0 => ENOENT", PTE_MAP + " => ENOENT")
    assert not o.mounted and o.entries[0] == {}
    run(o, "mount", "mount => EBUSY", PTE_MAP, "fault mm=0 vma=0 pgoff=0")
    assert o.mms[0].pte == {VA0: (0, False)}  # the block map survived


def test_private_cow_and_msync():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1", "msync mm=0 vma=0")
    assert o.mms[0].pte == {VA0: (0, False)} and not o.dirty[0]
    run(o, "fault mm=0 vma=0 pgoff=0 write=1")
    assert o.mms[0].pte == {VA0: (0, True)} and o.dirty[0] == {0}
    run(o, "mmap mm=1 vma=0 ino=0 pages=4 shared=0", "fault mm=1 vma=0 pgoff=0 write=1")
    assert o.mms[1].pte == {VA0: (ANON, True)}
    assert o.pte_maps[0] == 1


def test_memory_failure_results():
    o = oracle(PTE_MAP, "fault mm=0 vma=0 pgoff=0 write=1",
               "memory_failure pfn=0 mm=1 holder=0",
               "memory_failure pfn=0 mm=0 holder=0 => ok killed=0")
    assert o.mms[0].pte == {}
    run(o, "reflink src=0 dst=1", "fault mm=0 vma=0 pgoff=0",
        "mmap mm=1 vma=0 ino=1 pages=4 huge=0", "fault mm=1 vma=0 pgoff=0",
        "memory_failure pfn=0 holder=0 => EBUSY", "memory_failure pfn=0 mm=1 => ok killed=1",
        "memory_failure pfn=5 => ok")
    assert o.mms[1].pte == {}


def test_memory_failure_needs_a_mapping_not_a_vma():
    o = oracle(PTE_MAP, "mmap mm=1 vma=0 ino=0 pages=4 huge=0",
               "fault mm=1 vma=0 pgoff=0 write=1", "memory_failure pfn=0 mm=0 holder=0 => ok")
    assert o.mms[1].pte == {VA0: (0, True)} and not o.killed
    run(o, "memory_failure pfn=0 mm=1 holder=0 => ok killed=1")
    assert o.mms[1].pte == {}


def test_defined_errors():
    o = oracle("munmap mm=0 vma=0 => EINVAL", "fault mm=0 vma=0 pgoff=0 => SIGSEGV",
               "msync mm=1 vma=1 => EINVAL", "unpin h=3 => EINVAL",
               "get mm=0 vma=0 pgoff=0 => EFAULT",
               "mmap mm=0 vma=0 ino=0 pgoff=14 pages=4 => EINVAL",
               PTE_MAP, PTE_MAP + " => EEXIST",
               "fault mm=0 vma=0 pgoff=4 => SIGSEGV",
               "mmap mm=0 vma=1 ino=0 pgoff=8 pages=2 write=0",
               "fault mm=0 vma=1 pgoff=8 => SIGBUS",
               "fault mm=0 vma=1 pgoff=9 write=1 => SIGSEGV",
               "reflink src=0 dst=1 src_pgoff=6 pages=4 => EINVAL")
    assert all(not e for e in o.entries)


def test_a_write_from_buffer_must_be_mapped_and_within_eof():
    from daxfuzz.vocab.geometry import Geometry
    from daxfuzz.vocab.world import buffer_readable, make_vma

    vma = make_vma(Geometry(), 0, 0, 0, 2, 4, True, True, True, True)  # pages 2..5
    assert buffer_readable((vma,), 2, 4, 8)
    assert not buffer_readable((vma,), 1, 2, 8)  # page 1 is not mapped
    assert not buffer_readable((vma,), 4, 3, 8)  # page 6 is not mapped
    assert not buffer_readable((vma,), 2, 4, 5)  # page 5 is past EOF (size 5)
    assert not buffer_readable((), 2, 1, 8)
    # pages 2 and 5 in two VMAs: page 3 (munmapped) is a hole
    a = vma._replace(pages=1)
    b = vma._replace(pgoff=4, start=vma.start + 2, pages=2)
    assert buffer_readable((a, b), 4, 2, 8)
    assert not buffer_readable((a, b), 2, 3, 8)


def test_longterm_pin_is_refused_before_the_write_check():
    # mm/gup.c check_vma_flags(): FOLL_LONGTERM on fs-DAX is EOPNOTSUPP before a write
    # to a read-only VMA is EFAULT (7.2.13 answered so in `kernel fuzz`)
    from daxfuzz.core.runner import Runner

    lines = ("mmap mm=0 vma=0 ino=0 write=0",
             "pin mm=0 vma=0 pgoff=0 write=1 longterm=1 => EOPNOTSUPP",
             "pin mm=0 vma=0 pgoff=0 write=1 => EFAULT")
    oracle(*lines)
    for target in ("7.2", "legacy"):
        r = Runner(target, Geometry())
        for line in lines:
            text, _, want = line.partition("=>")
            want = want.strip() or "ok"
            if target == "legacy" and "longterm=1" in text and want == "ok":
                # 6.1's io_uring pins with pin_user_pages(): check_vma_flags() refuses
                # the fs-DAX VMA, anon copy or not (confirmed on Debian 12's 6.1.0-57)
                want = "EOPNOTSUPP"
            assert r.step(parse_op(text)) is None
            assert r.last_result == want


def test_a_longterm_pin_takes_only_a_writable_anonymous_copy():
    # io_uring's pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM): GUP-fast pins an anon
    # page without looking at the VMA (7.2.13 said ok where the model said EOPNOTSUPP in
    # `kernel fuzz`); DAX pages and holes take the slow path and are refused.  Tried and
    # released at once: no handle is taken, so a busy handle does not matter.
    from daxfuzz.core.runner import Runner

    lines = ("mmap mm=0 vma=0 ino=0 shared=0",
             "fault mm=0 vma=0 pgoff=1 write=1",
             "pin mm=0 vma=0 pgoff=1 longterm=1",
             "pin mm=0 vma=0 pgoff=2 longterm=1 => EOPNOTSUPP",
             "fault mm=0 vma=0 pgoff=2",
             "pin mm=0 vma=0 pgoff=2 longterm=1 => EOPNOTSUPP",
             "pin mm=0 vma=0 pgoff=9 longterm=1 => EFAULT",
             "pin mm=0 vma=0 pgoff=1 h=0",
             "pin mm=0 vma=0 pgoff=1 h=0 longterm=1",
             "unpin h=0")
    o = oracle(*lines)
    assert o.handles == {}
    for target in ("7.2", "legacy"):
        r = Runner(target, Geometry())
        for line in lines:
            text, _, want = line.partition("=>")
            want = want.strip() or "ok"
            if target == "legacy" and "longterm=1" in text and want == "ok":
                # 6.1's io_uring pins with pin_user_pages(): check_vma_flags() refuses
                # the fs-DAX VMA, anon copy or not (confirmed on Debian 12's 6.1.0-57)
                want = "EOPNOTSUPP"
            assert r.step(parse_op(text)) is None
            assert r.last_result == want
