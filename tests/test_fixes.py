"""Candidate kernel fixes (kdax/fixes.py) against the corpus: the bug a fix is for is
gone, every other trace behaves exactly as on the kernel the fix applies to."""

from __future__ import annotations

import glob
import os

import pytest

from daxfuzz.core.runner import run_ops
from daxfuzz.vocab.trace import read_trace

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "corpus")
FILES = sorted(glob.glob(os.path.join(CORPUS, "*.trace")))

# the traces of the CoW-PTE-under-PMD-entry bug, and what the fixed kernel shows instead
COW_PMD = {
    "divergence-cow-pte-under-pmd-entry-nrpages.trace": None,
    "divergence-cow-pte-under-pmd-entry-sigbus.trace": None,
    "divergence-cow-pte-under-pmd-entry-read.trace": None,
    "divergence-cow-pte-under-pmd-entry-misaligned-write.trace": None,
    "divergence-cow-fork-leftover-unshared-write.trace": None,
    "divergence-cow-pte-under-pmd-entry-gup.trace": None,
    # the swapext bug, which this trace also reaches, is a different one
    "divergence-cow-pte-under-pmd-entry-swapext.trace":
        "swapext:warning@truncate_folio_batch_exceptionals",
}


def signature(target: str, path: str) -> str | None:
    trace = read_trace(path)
    div, _ = run_ops(target, trace.geometry, trace.ops)
    return div.signature() if div else None


def test_every_bug_trace_is_in_the_corpus():
    names = {os.path.basename(p) for p in FILES}
    assert set(COW_PMD) <= names


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_fix_cow_pmd(path):
    name = os.path.basename(path)
    fixed = signature("7.2-fix-cow-pmd", path)
    if name in COW_PMD:
        assert signature("7.2", path) is not None  # the bug is there unfixed
        assert fixed == COW_PMD[name]
    else:
        assert fixed == signature("7.2", path)
