"""The raw page comparison sets apart differences on a group the kernel's XFS placed
where no PMD can map it (guest/pages.py misplaced_groups, docs/triage/
kernel-fuzz-unaligned-xfs-placement.md).  No guest: the guest's answers are written
by hand."""

from __future__ import annotations

from daxfuzz.guest.pages import (
    Expect,
    GuestPages,
    GuestStep,
    PagePlan,
    compare,
    misplaced_groups,
    placed_steps,
    totals,
)
from daxfuzz.vocab.geometry import Geometry

G = Geometry(pages=32, pmd_order=2, inodes=2, mms=2, vmas=2, handles=4,
             file_pages=8, max_file_pages=16)
# only order and head_delta are expected: guest_fields() is not under test here
LAYOUT: dict[str, int] = {}


def _plan(port_pfns: dict[int, int]) -> PagePlan:
    """One step asking about file 0's pages with the port's pfns; the port expects
    a PMD folio (order 2 at the head)."""
    pp = PagePlan(G)
    pp.steps.append([Expect((0, i), 0, p, {"x": 1}) for i, p in port_pfns.items()])
    return pp


def _step(kernel_pfns: dict[int, int]) -> GuestStep:
    st = GuestStep(done=True)
    for i, k in kernel_pfns.items():
        st.keys[(0, i, 0)] = (k, "ok", 0)
    return st


def test_misaligned_head_is_placement():
    # model pages 4..7 are group 1; the kernel's group starts at pfn 263174: 263174 =
    # 514 * 512 + 6, not a multiple of 512 (fs/dax.c dax_iomap_direct_access())
    pp = _plan({4: 8, 5: 9, 6: 10, 7: 11})
    st = _step({4: 263174, 5: 263175, 6: 263176, 7: 263177})
    why = misplaced_groups(G, pp.steps[0], st)
    assert why == {(0, 4): "f0:4 at kernel pfn 263174, not 2 MiB aligned"}


def test_pieces_are_placement():
    # aligned head 263168 = 514 * 512, but model page 9 (real page 1 of the group) at
    # 263680, not 263168 + 1: the extent ends after one block (iomap_length < PMD_SIZE)
    pp = _plan({8: 0, 9: 1, 10: 2, 11: 3})
    st = _step({8: 263168, 9: 263680, 10: 263681, 11: 263682})
    why = misplaced_groups(G, pp.steps[0], st)
    assert why == {(0, 8): "f0:8 in pieces (f0:9 at kernel pfn 263680, not 263169)"}


def test_aligned_contiguous_group_is_not_placement():
    # the last model page of a group stands at real page 3 (translate.py off())
    pp = _plan({0: 4, 1: 5, 2: 6, 3: 7})
    st = _step({0: 264192, 1: 264193, 2: 264194, 3: 264195})
    assert misplaced_groups(G, pp.steps[0], st) == {}


def test_port_misaligned_too_is_not_placement():
    # the port's own group is not PMD-mappable (model pfn 5 = 1 * 4 + 1): both sides
    # map PTEs, so a difference there is the port's, not the placement's
    pp = _plan({0: 5, 1: 6, 2: 7, 3: 8})
    st = _step({0: 263174, 1: 263175, 2: 263176, 3: 263177})
    assert misplaced_groups(G, pp.steps[0], st) == {}


def _compare_two_steps(monkeypatch, second_kernel: dict[int, int], ino2: int = 0):
    """Step 1: group 0 misplaced in the kernel; step 2: the same group, now placed
    as given; every asked page differs (the port expects x=1, the dump has none)."""
    import daxfuzz.guest.pages as pages

    pp = PagePlan(G)
    pp.steps.append([Expect((0, i), 0, 4 + i, {"x": 1}) for i in range(4)])
    pp.steps.append([Expect((ino2, i), 0, 4 + i, {"x": 1}) for i in range(4)])
    gp = GuestPages(ok=True)
    gp.steps[1] = _step({i: 263173 + i for i in range(4)})
    st2 = GuestStep(done=True)
    for i, k in second_kernel.items():
        st2.keys[(ino2, i, 0)] = (k, "ok", 0)
    gp.steps[2] = st2
    monkeypatch.setattr(pages, "guest_fields", lambda *_a: {})
    return compare(pp, gp, LAYOUT, 2)


def test_a_misplaced_group_stays_apart_in_later_steps(monkeypatch):
    # step 2: the kernel's group is aligned now (a CoW moved it), but its PTE table
    # from step 1 is still there: the difference is step 1's placement
    raw = _compare_two_steps(monkeypatch, {i: 264192 + i for i in range(4)})
    assert raw[1].verdict() == raw[2].verdict() == "placement"
    assert "[after step 1: f0:0 at kernel pfn 263173, not 2 MiB aligned]" in raw[2].placed[0]
    assert totals(raw) == (2, 0) and placed_steps(raw) == 2


def test_another_files_difference_is_still_a_model_gap(monkeypatch):
    # step 2 asks about file 1's group 0, aligned and contiguous in the kernel: its
    # difference is the port's (a model gap), file 0's misplacement explains nothing
    raw = _compare_two_steps(monkeypatch, {i: 264192 + i for i in range(4)}, ino2=1)
    assert raw[1].verdict() == "placement" and raw[2].verdict() == "DIFFER"
    assert totals(raw) == (2, 0) and placed_steps(raw) == 1
