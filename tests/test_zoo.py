"""The bug zoo: every variant has a stored minimal trace of its declared length that
diverges on the variant and agrees on its base."""

from __future__ import annotations

import glob
import os

import pytest

from daxfuzz.core.reduce import remove_each
from daxfuzz.core.runner import run_ops
from daxfuzz.vocab.trace import read_trace
from kdax.targets import TARGETS
from kdax.zoo import ZOO

ROOT = os.path.dirname(os.path.dirname(__file__))
ZOO_DIR = os.path.join(ROOT, "corpus", "zoo")


def test_at_least_25_variants_all_registered():
    assert len(ZOO) >= 25
    assert len({c.name for c in ZOO}) == len(ZOO)
    for c in ZOO:
        assert TARGETS[c.name] is c and c.summary and c.base in ("6.15", "7.2")


def test_every_variant_has_a_trace():
    names = {os.path.basename(p)[:-6] for p in glob.glob(os.path.join(ZOO_DIR, "*.trace"))}
    assert names == {c.name for c in ZOO}


@pytest.mark.parametrize("cls", ZOO, ids=lambda c: c.name)
def test_minimal_trace(cls):
    t = read_trace(os.path.join(ZOO_DIR, cls.name + ".trace"))
    assert len(t.ops) == cls.minimal
    d, _ = run_ops(cls, t.geometry, t.ops)
    assert d is not None and d.step == len(t.ops)
    assert t.expectation(cls.name) == f"divergence {d.signature()}"
    base, _ = run_ops(cls.base, t.geometry, t.ops)
    assert base is None
    # 1-minimal: dropping any single op loses this divergence
    sig = d.signature()

    def fails(ops):
        dd, _ = run_ops(cls, t.geometry, ops)
        return dd is not None and dd.signature() == sig

    assert remove_each(list(t.ops), fails) == list(t.ops)


def test_base_divergences_are_the_base_s_by_replay_not_by_signature():
    # the stale-index divergence is 6.15's own: a 6.15-based variant shows it too, and
    # it is the base's; the same signature where 6.15 agrees is the variant's own
    from daxfuzz.core.known import BASE, DOCUMENTED, NEW, Known, own_divergence
    from daxfuzz.vocab import ops as O
    from daxfuzz.vocab.geometry import Geometry

    g = Geometry()
    stale = [O.Mmap(0, 1, 1, 4, 4, huge=0), O.Fault(0, 1, 5, 1), O.Reflink(1, 0, 0, 0, 8),
             O.Fault(0, 1, 5, 0)]
    base_d = run_ops("6.15", g, stale)[0]
    assert base_d is not None and base_d.signature() == "fault:mapping"
    d = run_ops("zoo-get-no-ref", g, stale)[0]
    assert d is not None and (d.step, d.signature()) == (4, "fault:mapping")
    assert own_divergence("zoo-get-no-ref", g, stale)[0] is None
    k = Known("zoo-get-no-ref", g, documented={"fault:refcount": "x.trace"})
    assert k.documented == set()  # a variant's bugs are never the corpus's by signature
    assert k.verdict(stale, d) == BASE and k.base_found == {"fault:mapping": 1}
    # zoo-put-always-decrements diverges at the reflink, where 6.15 agrees: its own
    d2 = run_ops("zoo-put-always-decrements", g, stale)[0]
    assert (d2.step, d2.signature()) == (3, "reflink:mapping")
    k2 = Known("zoo-put-always-decrements", g)
    assert k2.verdict(stale, d2) == NEW and k2.verdict(stale, d2) != NEW
    # on the kernel itself the corpus's signature is what is known
    k3 = Known("6.15", g, documented={"fault:mapping": "x.trace"})
    assert k3.verdict(stale, base_d) == DOCUMENTED


def test_exhaust_world_reads_the_variant_scope():
    from daxfuzz.campaign.zoo import exhaust_world
    from daxfuzz.explore.exhaust import SMALL

    g, kinds = exhaust_world("zoo-mf-uses-page-index")
    assert kinds == ("mmap", "fault", "get", "memory_failure") and g.mms == 2
    assert g.pages == SMALL.pages and g.file_pages == SMALL.file_pages
    assert exhaust_world("zoo-fault-forgot-put") == (SMALL, ())


def test_zoo_exhaust_engine_finds_a_variant_at_its_minimal_length():
    from daxfuzz.campaign.zoo import attempt, table

    a = attempt("zoo-pin-bias-on-large", "exhaust", 1, 120)
    # the same 2-op bug through a one-page or a multi-page pin
    assert a.found and a.reduced_len == 2 and a.signature in ("pin:refcount",
                                                              "pin_pages:refcount")
    md, summary = table([a], ["exhaust"])
    assert summary["variants"]["zoo-pin-bias-on-large"]["exhaust"]["reduced_len"] == 2
    assert "| zoo-pin-bias-on-large | 2 | 1/1 |" in md


@pytest.mark.parametrize("cls", [c for c in ZOO if c.exhaust_scope], ids=lambda c: c.name)
def test_every_scope_names_real_op_kinds(cls):
    from daxfuzz.campaign.zoo import exhaust_world
    from daxfuzz.vocab import ops as O

    _g, kinds = exhaust_world(cls.name)
    assert kinds and all(k in O.BY_NAME for k in kinds)
    # and the variant's own minimal trace uses only those kinds
    t = read_trace(os.path.join(os.path.dirname(__file__), "..", "corpus", "zoo",
                                f"{cls.name}.trace"))
    assert {op.name for op in t.ops} <= set(kinds)


def test_zoo_table_prints_a_reduced_trace_shorter_than_the_known_minimum():
    from daxfuzz.campaign.zoo import Attempt, table

    hit = Attempt("zoo-fault-forgot-put", "random", 2, True, 0.5, 7, reduced_len=1,
                  signature="fault:refcount", reduced=["mmap mm=0 vma=0 ino=0"],
                  geometry="pages=32")
    same = Attempt("zoo-fault-no-temp-ref", "random", 1, True, 0.5, 7, reduced_len=2,
                   signature="pin:result", reduced=["a", "b"])
    md, summary = table([hit, same], ["random"])
    assert ("zoo-fault-forgot-put: 1 ops < 2 (random, seed 2, fault:refcount)\n\n"
            "    geometry: pages=32\n    mmap mm=0 vma=0 ino=0\n") in md
    assert "zoo-fault-no-temp-ref:" not in md.split("Shorter")[1]
    assert summary["attempts"][0]["reduced"] == ["mmap mm=0 vma=0 ino=0"]
