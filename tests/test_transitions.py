"""Abstract folio-state transitions."""

from __future__ import annotations

import os

from daxfuzz.core.runner import Runner
from daxfuzz.explore.transitions import IDLE, Transitions, folio_state
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_folio_states_along_a_pmd_life():
    r = Runner("7.2", Geometry())
    tr = Transitions()
    seen = []
    for op in (O.Mmap(0, 0, 0), O.Fault(0, 0, 0, 1), O.Pin(0, 0, 1, 0), O.Munmap(0, 0),
               O.Unpin(0), O.Truncate(0, 0)):
        assert r.step(op) is None
        tr.after_step(r, op)
        seen.append(folio_state(r, 0))
    assert seen == [
        IDLE,
        ("pmd", "pmd", "-", "one", "pmd", "owned"),
        ("pmd", "pmd", "held", "one", "pmd", "owned"),
        ("pmd", "unmapped", "held", "one", "pmd", "owned"),
        ("pmd", "unmapped", "-", "one", "pmd", "owned"),
        IDLE,
    ]
    assert (IDLE, "fault", seen[1]) in tr.seen
    assert (seen[4], "truncate", IDLE) in tr.seen


def test_new_transitions_reported_once():
    tr = Transitions()
    r = Runner("7.2", Geometry())
    r.step(O.Mmap(0, 0, 0, huge=0))
    op = O.Fault(0, 0, 0, 1)
    r.step(op)
    assert len(tr.after_step(r, op)) == 1
    r.reset()
    tr.reset()
    r.step(O.Mmap(0, 0, 0, huge=0))
    r.step(op)
    assert tr.after_step(r, op) == [] and len(tr.last) == 1


def test_a_reachable_set_cut_by_its_time_limit_says_so():
    from daxfuzz.explore.transitions import exhaust_transitions

    said: list[str] = []
    whole = exhaust_transitions("7.2", 2, said=said.append)
    assert whole and said == []  # complete: nothing to say
    part = exhaust_transitions("7.2", 3, seconds=0.01, said=said.append)
    assert len(said) == 1 and "the reachable set is partial" in said[0]
    assert len(part) < len(exhaust_transitions("7.2", 3))
