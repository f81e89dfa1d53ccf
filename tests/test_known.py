"""Known means the same bug, not the same signature (daxfuzz/core/known.py)."""
from __future__ import annotations

import json
import os

from daxfuzz.core.known import (
    BASE,
    DOCUMENTED,
    DUP,
    NEW,
    Known,
    documented_known,
    fault_in_divergence,
    own_divergence,
)
from daxfuzz.core.reduce import reduce_divergence
from daxfuzz.core.runner import Runner, run_ops
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import parse_trace, read_trace
from fuzz import random_engine
from kdax.gup import FOLL_GET
from kdax.v7_2 import Kernel72

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")
# zoo-cow-no-unmap (7.2 without the unmap before a CoW): its bug shows as fault:result,
# a signature the corpus documents for 7.2 itself (a CoW fault after a failed reflink)
COW = read_trace(os.path.join(CORPUS, "zoo", "zoo-cow-no-unmap.trace"))
# zoo-fault-forgot-put: its leaked reference shows as fault:refcount, a signature the
# corpus documents for 7.2 itself (the mixed PTE-then-PMD share)
FORGOT = read_trace(os.path.join(CORPUS, "zoo", "zoo-fault-forgot-put.trace"))
# 7.2's own CoW/PTE-under-PMD-entry bug (its nrpages leak; the BUG at unmount)
NRPAGES = read_trace(os.path.join(CORPUS, "divergence-cow-pte-under-pmd-entry-nrpages.trace"))


def test_a_patch_bug_with_a_documented_base_signature_is_news():
    documented = documented_known(CORPUS, "7.2", DEFAULT)
    d, _ = run_ops(FORGOT.target, FORGOT.geometry, FORGOT.ops)
    assert d is not None and d.signature() in documented  # the same signature as 7.2's...
    assert run_ops("7.2", FORGOT.geometry, FORGOT.ops)[0] is None  # ...but 7.2 agrees here
    k = Known(FORGOT.target, FORGOT.geometry, documented=documented)
    assert k.verdict(FORGOT.ops, d) == NEW
    assert k.verdict(FORGOT.ops, d) == DUP  # then it is the variant's own, seen
    # by signature alone (a kernel target), the same divergence would have been hidden
    assert Known("7.2", FORGOT.geometry, documented=documented).verdict(FORGOT.ops, d) == DOCUMENTED


def test_the_base_s_own_bug_on_a_patch_is_the_base_s():
    d, _ = run_ops("7.2-fix-cow-pmd", NRPAGES.geometry, NRPAGES.ops)
    assert d is None  # the fix fixes it...
    d, _ = run_ops(COW.target, NRPAGES.geometry, NRPAGES.ops)
    assert d is not None and d.signature() == "fault:safety:nrpages"
    k = Known(COW.target, NRPAGES.geometry)  # ...a variant of 7.2 without it shows it
    assert k.verdict(NRPAGES.ops, d) == BASE and k.base_found == {d.signature(): 1}
    assert own_divergence(COW.target, NRPAGES.geometry, NRPAGES.ops)[0] is None


def test_a_reduction_on_a_based_target_keeps_the_target_s_own_divergence():
    # the reduced trace stays the variant's own: never one its base shows too
    red = reduce_divergence(COW.target, COW.geometry, list(COW.ops))
    assert red is not None
    d = red.divergence
    assert not Known(COW.target, COW.geometry).base_shows(red.trace.ops, d)
    assert len(red.trace.ops) <= len(COW.ops)


def test_random_engine_reports_the_patch_s_bug_past_documented_signatures():
    documented = documented_known(CORPUS, COW.target, DEFAULT)
    # a based target inherits nothing by signature from the corpus's 7.2 lines
    assert "fault:result" not in documented or documented["fault:result"].endswith(
        "zoo-cow-no-unmap.trace")
    k = Known(COW.target, DEFAULT, own=(), documented={"fault:result": "7.2's"})
    st = random_engine.run(COW.target, DEFAULT, seconds=60, seed=1, known=k,
                           stop_at_first=True)
    assert st.findings, "the variant's own bug was not reported"
    ops, d = st.findings[0]
    assert not Known(COW.target, DEFAULT).base_shows(ops, d)


def test_deep_rows_time_one_real_bug_from_scratch():
    from daxfuzz.campaign.zoo import attempt, deep_rows

    rows = deep_rows()
    assert {(r.target, r.want) for r in rows.values()} >= {
        ("7.2", "fault:safety:nrpages"), ("6.15", "fault:mapping")}
    stale = next(r for r in rows.values() if r.target == "6.15")
    a = attempt(stale.name, "random", 1, 60)
    # found, and reduced to the documented 4-op trace's length with its signature
    assert a.found and a.signature == "fault:mapping" and a.reduced_len == stale.minimal


def test_deep_rows_refuse_exhaust_and_unknown_rows(capsys):
    from daxfuzz.cli import main

    assert main(["zoo", "--deep", "--engine", "exhaust"]) == 2
    assert "--deep" in capsys.readouterr().err
    # a zoo variant is not a deep row: the error names the rows there are
    assert main(["zoo", "--deep", "--variant", "zoo-missing-put"]) == 2
    assert "deep:6.15:divergence-stale-index-looks-shared" in capsys.readouterr().err


def test_deep_rows_select_one_row(tmp_path, capsys):
    from daxfuzz.cli import main

    row = "deep:6.15:divergence-stale-index-looks-shared"
    assert main(["zoo", "--deep", "--variant", row, "--engine", "random", "--seeds", "1",
                 "--budget", "60", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "zoo.json").read_text())
    assert list(summary["variants"]) == [row]


class TwoRefBugs72(Kernel72):
    """7.2 with two reference bugs of the same signature through GUP: FOLL_GET forgets
    its reference on the folio at file index 1 (GUP's own bug), and a write fault that
    maps index 0 takes its reference twice (a fault bug GUP reaches by faulting in)."""

    name = "test-two-ref-bugs-72"

    def try_grab_folio(self, folio, refs: int, flags: int) -> int:
        if flags & FOLL_GET and folio.index == 1:
            return 0
        return super().try_grab_folio(folio, refs, flags)

    def insert_page_into_pte_locked(self, vmf, pfn: int, mkwrite: bool) -> int:
        ret = super().insert_page_into_pte_locked(vmf, pfn, mkwrite)
        if not ret and mkwrite and 0 <= pfn < len(self.pages) and self.pages[pfn].index == 0:
            self.folio_get(self.page_folio(self.pages[pfn]))
        return ret


def test_reducing_a_gup_own_divergence_never_slips_into_a_fault_bug(monkeypatch):
    ops = parse_trace("mmap mm=0 vma=0 ino=0 huge=0\nfault mm=0 vma=0 pgoff=1 write=1\n"
                      "get mm=0 vma=0 pgoff=1 write=1\n").ops
    d, _ = run_ops(TwoRefBugs72, DEFAULT, ops)
    assert d is not None and d.signature() == "get:refcount"
    assert fault_in_divergence(Runner(TwoRefBugs72, DEFAULT), ops) is None  # GUP's own
    red = reduce_divergence(TwoRefBugs72, DEFAULT, list(ops))
    assert red is not None and red.divergence.signature() == "get:refcount"
    assert [str(o) for o in red.trace.ops] == ["mmap mm=0 vma=0 ino=0 huge=0",
                                               "get mm=0 vma=0 pgoff=1 write=1"]
    assert fault_in_divergence(Runner(TwoRefBugs72, DEFAULT), red.trace.ops) is None
    # without the guard the same reduction simplifies pgoff 1 -> 0, where the get's
    # fault-in double-counts: the same signature, the other bug
    import daxfuzz.core.known as known

    monkeypatch.setattr(known, "fault_in", lambda ops: None)
    slipped = reduce_divergence(TwoRefBugs72, DEFAULT, list(ops))
    assert slipped is not None and slipped.divergence.signature() == "get:refcount"
    assert str(slipped.trace.ops[-1]) == "get mm=0 vma=0 pgoff=0 write=1"
