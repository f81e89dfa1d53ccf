"""Every corpus trace replays as its header expects on both targets, every `=> result`
annotation matches, and the corpus together uses every op kind and hard path."""

from __future__ import annotations

import glob
import os

import pytest

from daxfuzz.cli.replay import outcome_ok
from daxfuzz.core.runner import run_ops
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.trace import read_trace

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "corpus")
FILES = sorted(glob.glob(os.path.join(CORPUS, "*.trace")))
TARGETS = ["6.15", "7.2"]  # the kernels the corpus is written for: annotations hold here
HISTORY = ["legacy", "v6"]  # older kernels: each trace states its outcome there too


def test_corpus_is_there():
    assert len(FILES) >= 22


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_trace_replays_as_expected(path, target):
    trace = read_trace(path)
    div, results = run_ops(target, trace.geometry, trace.ops)
    report = div.report() if div else "agree"
    assert outcome_ok(trace, target, div), (
        f"{os.path.basename(path)} on {target}: header expects "
        f"{trace.expectation(target)!r}, got {report}")
    for i, (want, got) in enumerate(zip(trace.results, results, strict=False), 1):
        if want is not None:
            assert want == got, f"step {i}: {trace.ops[i - 1]}: annotated {want!r}, got {got!r}"


@pytest.mark.parametrize("target", HISTORY)
@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_trace_outcome_on_older_kernels(path, target):
    trace = read_trace(path)
    div, _ = run_ops(target, trace.geometry, trace.ops)
    assert outcome_ok(trace, target, div), (
        f"{os.path.basename(path)} on {target}: header expects "
        f"{trace.expectation(target)!r}, got {div.report() if div else 'agree'}")


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_trace_header(path):
    trace = read_trace(path)
    assert trace.description, "every corpus trace says what a kernel developer should see"
    assert trace.target in (None, *TARGETS, *HISTORY)
    assert any(r is not None for r in trace.results), "annotate the key ops with => result"
    name = os.path.basename(path)
    diverges = any(trace.expectation(t) != "agree" for t in TARGETS)
    if name.startswith("divergence-legacy-"):
        assert trace.expectation("legacy") != "agree"
    else:
        assert diverges == name.startswith("divergence-")
    for t in TARGETS:  # a documented divergence names its signature
        exp = trace.expectation(t).split()
        assert exp[0] == "agree" or len(exp) == 2


def test_corpus_uses_every_op_kind():
    used = {type(op) for p in FILES for op in read_trace(p).ops}
    assert used == set(O.OP_TYPES), {t.name for t in set(O.OP_TYPES) - used}
    holders = {op.holder for p in FILES for op in read_trace(p).ops
               if isinstance(op, O.MemoryFailure)}
    assert holders == {0, 1}


def test_corpus_covers_the_hard_results():
    """Blocking, errors and kills appear as annotated results somewhere."""
    results = {r.split()[0] if r.startswith("blocked") else r
               for p in FILES for r in read_trace(p).results if r is not None}
    for want in ("blocked", "EBUSY", "SIGBUS", "EOPNOTSUPP", "ENOENT", "ok killed=0",
                 "ok killed=1"):
        assert want in results, want
    blocked_by = {type(op) for p in FILES
                  for op, r in zip(read_trace(p).ops, read_trace(p).results, strict=True)
                  if r is not None and r.startswith("blocked")}
    assert {O.Truncate, O.Punch, O.Reflink, O.Unmount} <= blocked_by


#: the corpus traces after which 7.2 and 6.15 keep a mapping->nrpages its entries do
#: not account for, and the step that makes the gap: the CoW PTE fault that stores an
#: order-0 entry over a real PMD entry (nrpages 4, entries 1 page), and the fork variant
NRPAGES_GAP = {
    "divergence-cow-fork-leftover-unshared-write.trace": 6,
    "divergence-cow-pte-under-pmd-entry-gup.trace": 7,
    "divergence-cow-pte-under-pmd-entry-misaligned-write.trace": 6,
    "divergence-cow-pte-under-pmd-entry-nrpages.trace": 6,
    "divergence-cow-pte-under-pmd-entry-read.trace": 6,
    "divergence-cow-pte-under-pmd-entry-sigbus.trace": 6,
    "divergence-cow-pte-under-pmd-entry-swapext.trace": 6,
}


@pytest.mark.parametrize("target", TARGETS)
def test_nrpages_matches_the_entries_but_where_the_cow_pmd_bug_leaks_it(target):
    from daxfuzz.core.runner import Runner

    gaps = {}
    for path in FILES:
        trace = read_trace(path)
        r = Runner(target, trace.geometry)
        for i, op in enumerate(trace.ops, 1):
            d = r.step(op)
            if d is not None:
                if d.field == "safety:nrpages":
                    gaps[os.path.basename(path)] = (i, r.nrpages_gaps())
                break
    assert {n: s for n, (s, _g) in gaps.items()} == NRPAGES_GAP
    assert gaps["divergence-cow-pte-under-pmd-entry-nrpages.trace"][1] == [(1, 4, 1)]
    assert gaps["divergence-cow-pte-under-pmd-entry-swapext.trace"][1] == [(0, 4, 1)]


def test_replay_shows_the_nrpages_leak_at_the_step_that_makes_it(capsys):
    from daxfuzz.cli import main as cli

    path = os.path.join(CORPUS, "divergence-cow-pte-under-pmd-entry-nrpages.trace")
    assert cli(["replay", path]) == 1
    out = capsys.readouterr().out
    assert "DIVERGENCE at step 6: fault mm=0 vma=0 pgoff=0 write=1" in out
    assert ("actual:   ino1 mapping->nrpages=4 but its entries hold 1 page(s): "
            "clear_inode() will BUG() at eviction") in out
    assert "\n   7  " not in out  # the replay stops there, before the munmap and unmount
