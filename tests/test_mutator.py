"""The structure-aware mutator edits whole ops at the codec's op boundaries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT
from fuzz import mutator
from fuzz.codec import codec_for, encode

C = codec_for(DEFAULT)
# mmap takes 11 bytes in the default geometry, a fault 5, a pin 7 (kind byte + fields)
OPS = [O.Mmap(0, 0, 0, 0, 8), O.Fault(0, 0, 2, 0), O.Fault(0, 0, 3, 0),
       O.Pin(0, 0, 4, 1)]
DATA = encode(OPS, DEFAULT)


def test_op_lengths_and_spans_by_hand():
    assert (C.op_len[O.Mmap], C.op_len[O.Fault], C.op_len[O.Pin]) == (11, 5, 7)
    # (start, end, something mapped before it), and mapped after the last
    assert mutator.spans(C, DATA) == (
        [(0, 11, False, O.Mmap), (11, 16, True, O.Fault), (16, 21, True, O.Fault),
         (21, 28, True, O.Pin)], True)
    # max_ops cuts the spans where decode stops
    assert mutator.spans(C, DATA, max_ops=2) == (
        [(0, 11, False, O.Mmap), (11, 16, True, O.Fault)], True)
    # a short last op: its span runs past the data (its missing bytes decode as zeros)
    assert mutator.spans(C, DATA[:13]) == (
        [(0, 11, False, O.Mmap), (11, 16, True, O.Fault)], True)
    assert mutator.spans(C, b"") == ([], False)


def test_short_last_op_is_padded_before_an_append():
    out = mutator.mutate_ops(C, DATA[:13], 4096, random.Random(3), edit="append")
    assert out[:16] == DATA[:13] + b"\0\0\0"
    assert C.decode(out)[:2] == C.decode(DATA[:13]) and len(C.decode(out)) == 3


def edited(edit: str, seed: int) -> list[O.Op]:
    out = mutator.mutate_ops(C, DATA, 4096, random.Random(seed), edit=edit)
    return C.decode(out)


def test_delete_removes_one_whole_op():
    outs = {tuple(edited("delete", s)) for s in range(40)}
    # the two read faults change nothing the codec's shadow sees: deleting either
    # leaves every other op as it was; deleting the mmap leaves the other ops' kinds
    assert (OPS[0], OPS[2], OPS[3]) in outs and (OPS[0], OPS[1], OPS[3]) in outs
    assert tuple(OPS[:3]) in outs
    assert all(len(o) == 3 for o in outs)
    assert ((O.Fault, O.Fault, O.Pin) in {tuple(map(type, o)) for o in outs})


def test_swap_and_duplicate_keep_ops_whole():
    swaps = {tuple(edited("swap", s)) for s in range(40)}
    assert (OPS[0], OPS[2], OPS[1], OPS[3]) in swaps
    dups = {tuple(edited("duplicate", s)) for s in range(40)}
    assert (OPS[0], OPS[1], OPS[1], OPS[2], OPS[3]) in dups
    # the mmap duplicated maps the other slot (the codec picks a free one), which a
    # later pin may then pick: mostly still five ops
    assert sum(len(d) == 5 for d in dups) > len(dups) // 2


def test_insert_append_add_one_op_and_reroll_keeps_the_kind():
    five = 0
    for s in range(40):
        # the new op's kind byte is read in the table of where it goes, so the ops after
        # it keep their bytes; they decode the same unless the new op changed what they
        # choose from (an munmap before the fault, ...)
        five += len(edited("insert", s)) == 5
        app = edited("append", s)
        assert app[:4] == OPS and len(app) == 5
        rr = edited("reroll", s)
        assert type(rr[0]) is O.Mmap
        if rr[0] == OPS[0]:  # a later op rerolled: same kinds, new fields
            assert [type(o) for o in rr] == [type(o) for o in OPS]
    assert five >= 30


def test_crossover_cuts_both_inputs_at_op_boundaries():
    other_ops = [O.Mmap(1, 1, 1, 0, 4), O.Get(1, 1, 0, 2, 1)]
    other = encode(other_ops, DEFAULT)
    kinds = [type(o) for o in OPS]
    other_kinds = [type(o) for o in other_ops]
    outs = set()
    for seed in range(80):
        out = mutator.crossover(C, DATA, other, 4096, seed)
        got = C.decode(out)
        # a prefix of DATA's ops, then other's ops from a boundary, kinds kept
        assert any([type(o) for o in got] == kinds[:i] + other_kinds[j:] and got[:i] == OPS[:i]
                   for i in range(5) for j in range(3)), (seed, got)
        outs.add(out)
    assert len(outs) > 5
    assert len(mutator.crossover(C, DATA, other, 10, 1)) <= 10
    # a short last op is cut after its zeros, never in the middle
    for seed in range(40):
        got = C.decode(mutator.crossover(C, DATA[:13], other, 4096, seed))
        assert [type(o) for o in got] in [
            [O.Mmap, O.Fault][:i] + other_kinds[j:] for i in range(3) for j in range(3)]


@pytest.mark.parametrize("edit", [e for e, _w in mutator.EDITS])
@given(data=st.binary(max_size=120), seed=st.integers(0, 2**32 - 1))
def test_every_edit_keeps_the_other_ops_kinds(edit, data, seed):
    # random bytes, not canonical kind bytes: an op moved, copied or followed by an edit
    # is read in the other kind table as often as not, and must stay the op it was
    before = [type(o) for o in C.decode(data)]
    after = [type(o) for o in C.decode(
        mutator.mutate_ops(C, data, 4096, random.Random(seed), edit=edit))]
    if not before:
        assert len(after) == 1  # an empty input gets an op appended
    elif edit == "delete":
        assert any(after == before[:k] + before[k + 1:] for k in range(len(before)))
    elif edit in ("insert", "append"):
        assert any(after[:k] + after[k + 1:] == before for k in range(len(after)))
    elif edit == "duplicate":
        assert any(after[:k] + after[k + 1:] == before and after[k] in before
                   for k in range(len(after)))
    elif edit == "swap" and len(before) > 1:
        assert any(after == before[:k] + [before[k + 1], before[k]] + before[k + 2:]
                   for k in range(len(before) - 1))
    else:  # reroll (or a swap of one op)
        assert after == before


def test_known_random_inputs_keep_kinds():
    one = bytes.fromhex("81fa072a00eaa763265e6a")
    assert [type(o) for o in C.decode(one)] == [O.Mmap]
    for s in range(20):
        assert [type(o) for o in edited_from(one, "duplicate", s)] == [O.Mmap, O.Mmap]
    # an mmap and a get, whatever the kind table: the get's kind byte is read from the
    # table that applies once something is mapped
    two = bytearray(bytes.fromhex("0d387dd45ce301e94a259990f5fd99301d"))
    starts: list[tuple[int, bool]] = []
    C.decode(bytes(two), starts=starts)
    two[starts[1][0]] = C.kind_byte[O.Get]
    two = bytes(two)
    assert [type(o) for o in C.decode(two)] == [O.Mmap, O.Get]
    assert [type(o) for o in edited_from(two, "swap", 0)] == [O.Get, O.Mmap]


def edited_from(data: bytes, edit: str, seed: int) -> list[O.Op]:
    return C.decode(mutator.mutate_ops(C, data, 4096, random.Random(seed), edit=edit))


@given(st.binary(max_size=200), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_mutate_respects_max_size_and_replays(data, max_size, seed):
    def byte_mutate(d: bytes, m: int) -> bytes:
        return (d + b"\x07")[:m]

    out = mutator.mutate(C, data, max_size, seed, byte_mutate)
    assert len(out) <= max_size
    assert mutator.mutate(C, data, max_size, seed, byte_mutate) == out
    C.decode(out)  # every output is an op list
