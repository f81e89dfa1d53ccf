"""A target step that never returns is reported as the op's `hang` divergence."""

from __future__ import annotations

import time

import pytest

from daxfuzz.core import watchdog
from daxfuzz.core.reduce import reduce
from daxfuzz.core.runner import Runner, run_ops
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT
from kdax.v7_2 import Kernel72


class LoopingTruncate(Kernel72):
    """7.2 with a truncate to page 1 that loops for ever (a patch's off-by-one)."""

    name = "test-looping-truncate"

    def sys_truncate(self, op):
        while op.pages == 1:
            pass
        return super().sys_truncate(op)


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(watchdog, "LIMIT", 0.5)
    watchdog.enable()


def test_a_looping_step_is_a_hang_divergence_and_the_runner_goes_on(quick):
    r = Runner(LoopingTruncate, DEFAULT)
    assert r.step(O.Mmap(0, 0, 0)) is None
    t0 = time.monotonic()
    d = r.step(O.Truncate(0, 1))
    assert 0.5 <= time.monotonic() - t0 < 3
    assert d is not None and d.signature() == "truncate:hang" and d.step == 2
    assert "loop that never ends" in str(d.actual)
    # a fresh sequence on the same runner runs normally: the watchdog fired once
    r.reset()
    assert r.step(O.Truncate(0, 2)) is None and r.step(O.Mmap(0, 0, 0)) is None


def test_a_hang_reduces_to_the_looping_op(quick):
    ops = [O.Mmap(0, 0, 0), O.Fault(0, 0, 0, 1), O.Truncate(0, 2), O.Truncate(0, 1),
           O.Munmap(0, 0)]
    div, _ = run_ops(LoopingTruncate, DEFAULT, ops)
    assert div is not None and div.signature() == "truncate:hang"

    def hangs(cand) -> bool:
        d, _ = run_ops(LoopingTruncate, DEFAULT, cand)
        return d is not None and d.signature() == "truncate:hang"

    assert reduce(ops, hangs, DEFAULT) == [O.Truncate(0, 1)]


def test_without_enable_no_watchdog_thread_starts(monkeypatch):
    monkeypatch.setattr(watchdog, "_enabled", False)
    monkeypatch.setattr(watchdog, "_pid", 0)
    Runner("7.2", DEFAULT)
    assert watchdog._pid == 0
