"""The legacy (6.1) and v6 (the seed) targets: hand-computed struct-page state, and
the known differences from 6.15 they must show."""

from __future__ import annotations

from daxfuzz.core.runner import run_ops
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry
from kdax.targets import get_target

G = Geometry()


def kernel(name: str, ops):
    k = get_target(name)(G)
    results = [k.apply(op) for op in ops]
    return k, results


def test_legacy_pte_fault_takes_no_reference_pin_adds_bias():
    k, res = kernel("legacy", [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1),
                               O.Pin(0, 0, 0, 0)])
    assert res == ["ok", "ok", "ok"]
    p = k.pages[0]
    assert p._refcount == 1 + 1024  # idle at 1; the PTE takes nothing; pin bias
    assert p._mapcount == -1  # pfn mappings have no mapcount
    assert (p.mapping, p.index) == (0, 0)
    assert k.apply(O.Munmap(0, 0)) == "ok" and p._refcount == 1025
    # no VMA maps the file now: 6.1 finds no busy page (mapping_mapped()) and truncates
    # the pinned page, warning (confirmed on Debian 12's 6.1.0-57)
    assert k.apply(O.Truncate(0, 0)) == "ok" and p.mapping is None
    assert "WARN_ON_ONCE(trunc && page_ref_count(page) > 1) in dax_disassociate_entry" \
        in k.events
    assert k.apply(O.Unpin(0)) == "ok" and p._refcount == 1


def test_legacy_pin_blocks_truncate_while_the_file_is_mapped():
    # fs/dax.c dax_layout_busy_page_range() (6.1): !mapping_mapped() -> no busy page
    k, res = kernel("legacy", [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1),
                               O.Pin(0, 0, 0, 0), O.Mmap(0, 1, 0, huge=0),
                               O.Munmap(0, 0)])
    assert res == ["ok"] * 5
    assert k.apply(O.Truncate(0, 0)) == "blocked pfn=0"  # vma 1 still maps file 0
    assert k.apply(O.Munmap(0, 1)) == "ok"
    assert k.apply(O.Truncate(0, 0)) == "ok"


def test_legacy_pmd_entry_associates_every_page():
    k, _ = kernel("legacy", [O.Mmap(0, 0, 0, pages=4), O.Fault(0, 0, 2, 1)])
    assert k.mms[0].pmd  # a PMD mapping ...
    for i in range(4):  # ... of order-0 pages, each with its own mapping/index
        p = k.pages[i]
        assert (p.compound_head, k.folio_order(p), p._refcount) == (-1, 0, 1)
        assert (p.mapping, p.index) == (0, i)


def test_legacy_read_fault_of_shared_extent_is_plain_and_warns():
    # fs/xfs/xfs_iomap.c xfs_read_iomap_begin() (6.1) reports IOMAP_F_SHARED only for
    # IOMAP_REPORT, and fs/dax.c dax_fault_is_cow() (6.1) needs IOMAP_WRITE: a read
    # fault of a reflinked page associates it with cow=false, so the second file's
    # fault hits dax_associate_entry()'s WARN_ON_ONCE(page->mapping) (fs/dax.c:380,
    # confirmed on Debian 12's 6.1.0-57) and takes the page over
    ops = [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1), O.Reflink(0, 1, 0, 0, 1),
           O.Fault(0, 0, 0, 0), O.Mmap(0, 1, 1, huge=0)]
    k, res = kernel("legacy", ops)
    assert res == ["ok"] * 5 and not k.events
    assert (k.pages[0].mapping, k.pages[0].index) == (0, 0)  # not PAGE_MAPPING_DAX_COW
    assert k.apply(O.Fault(0, 1, 0, 0)) == "ok"
    assert k.events == ["WARN_ON_ONCE(page->mapping) in dax_associate_entry"]
    assert (k.pages[0].mapping, k.pages[0].index) == (1, 0)
    assert k.mms[0].pte[k.mms[0].vmas[0][0].vaddr(0)][0] == 0  # ino0's PTE not unmapped
    d, _ = run_ops("legacy", G, [*ops, O.Fault(0, 1, 0, 0)])
    assert d is not None and d.signature() == "fault:warning@dax_associate_entry"
    assert run_ops("6.15", G, [*ops, O.Fault(0, 1, 0, 0)])[0] is None


def test_legacy_write_cow_marks_the_new_block_dax_cow():
    # the write fault is dax_fault_is_cow(): the CoW fork block is associated with
    # cow=true (PAGE_MAPPING_DAX_COW, index 1); the old block's plain entry goes
    ops = [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1), O.Reflink(0, 1, 0, 0, 1),
           O.Fault(0, 0, 0, 0), O.Fault(0, 0, 0, 1)]
    k, res = kernel("legacy", ops)
    assert res == ["ok"] * 5 and not k.events
    new = k.fs.pfn(0, 0)
    assert new != 0
    assert (k.pages[new].mapping, k.pages[new].index) == ("PAGE_MAPPING_DAX_COW", 1)
    assert k.pages[0].mapping is None


def test_legacy_unmount_over_pin_completes_and_warns():
    ops = [O.Mmap(0, 0, 0, huge=0), O.Pin(0, 0, 0, 0), O.Munmap(0, 0), O.Unmount()]
    d, res = run_ops("legacy", G, ops)
    assert res[-1] == "ok"  # 6.1 evicts without waiting for the pin
    assert d is not None and d.signature() == "unmount:warning@dax_disassociate_entry"
    d615, res615 = run_ops("6.15", G, ops)
    assert d615 is None and res615[-1] == "blocked pfn=0"  # dax_break_layout_final


def test_v6_split_leaves_stale_order_in_page1():
    ops = [O.Mmap(0, 0, 0, pages=4), O.Fault(0, 0, 0, 1), O.Munmap(0, 0), O.Truncate(0, 0)]
    k, res = kernel("v6", ops)
    assert res == ["ok"] * 4
    assert not k.folio_test_large(k.pages[0])
    assert k.pages[1]._flags_1 & 0xFF == 2  # no folio_reset_order() in v6
    k615, _ = kernel("6.15", ops)
    assert k615.pages[1]._flags_1 & 0xFF == 0


def test_v6_disassociate_without_guard_writes_pfn0_page():
    d, _ = run_ops("v6", G, [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1)])
    assert d is not None and d.field == "warning"
    assert "pfn 0 (not an fs-DAX page)" in str(d.actual)
    assert run_ops("6.15", G, [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1)])[0] is None


def test_legacy_longterm_pin_refuses_an_anon_copy_too():
    # io_uring/rsrc.c io_pin_pages() (6.1) uses pin_user_pages(): check_vma_flags()
    # refuses FOLL_LONGTERM on the fs-DAX VMA before looking at the page (confirmed on
    # Debian 12's 6.1.0-57); 7.2 pins the anonymous copy through GUP-fast
    ops = [O.Mmap(0, 0, 0, huge=0, shared=0), O.Fault(0, 0, 0, 1),
           O.Pin(0, 0, 0, 0, longterm=1)]
    _k, res = kernel("legacy", ops)
    assert res == ["ok", "ok", "EOPNOTSUPP"]
    _k, res = kernel("7.2", ops)
    assert res == ["ok", "ok", "ok"]
