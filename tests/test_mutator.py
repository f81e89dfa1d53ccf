"""The structure-aware mutator edits whole ops at the codec's op boundaries."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from daxfuzz import ops as O
from daxfuzz.codec import codec_for, encode
from daxfuzz.geometry import DEFAULT
from fuzz import mutator

C = codec_for(DEFAULT)
# mmap takes 11 bytes in the default geometry, a fault 5, a pin 7 (kind byte + fields)
OPS = [O.Mmap(0, 0, 0, 0, 8), O.Fault(0, 0, 2, 0), O.Fault(0, 0, 3, 0),
       O.Pin(0, 0, 4, 1)]
DATA = encode(OPS, DEFAULT)


def test_op_lengths_and_spans_by_hand():
    assert (C.op_len[O.Mmap], C.op_len[O.Fault], C.op_len[O.Pin]) == (11, 5, 7)
    # (start, end, something mapped before it), and mapped after the last
    assert mutator.spans(C, DATA) == (
        [(0, 11, False), (11, 16, True), (16, 21, True), (21, 28, True)], True)
    # max_ops cuts the spans where decode stops
    assert mutator.spans(C, DATA, max_ops=2) == ([(0, 11, False), (11, 16, True)], True)
    # a short last op: its span runs past the data (its missing bytes decode as zeros)
    assert mutator.spans(C, DATA[:13]) == ([(0, 11, False), (11, 16, True)], True)
    assert mutator.spans(C, b"") == ([], False)


def test_short_last_op_is_padded_before_an_append():
    out = mutator.mutate_ops(C, DATA[:13], 4096, random.Random(3), edit="append")
    assert out[:16] == DATA[:13] + b"\0\0\0"
    assert C.decode(out)[:2] == C.decode(DATA[:13]) and len(C.decode(out)) == 3


def edited(edit: str, seed: int) -> list[O.Op]:
    out = mutator.mutate_ops(C, DATA, 4096, random.Random(seed), edit=edit)
    return C.decode(out)


def test_delete_removes_one_whole_op():
    cuts = [DATA[:s] + DATA[e:] for s, e, _m in mutator.spans(C, DATA)[0]]
    outs = {mutator.mutate_ops(C, DATA, 4096, random.Random(s), edit="delete")
            for s in range(40)}
    assert outs == set(cuts)
    # the two read faults change nothing the codec's shadow sees: deleting either
    # leaves every other op as it was
    assert C.decode(cuts[1]) == [OPS[0], OPS[2], OPS[3]]
    assert C.decode(cuts[2]) == [OPS[0], OPS[1], OPS[3]]


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
    other = encode([O.Mmap(1, 1, 1, 0, 4), O.Get(1, 1, 0, 2, 1)], DEFAULT)
    a = [0, 11, 16, 21, 28]
    b = [0, 11, 17]
    outs = set()
    for seed in range(60):
        out = mutator.crossover(C, DATA, other, 4096, seed)
        assert any(out == DATA[:i] + other[j:] for i in a for j in b)
        outs.add(out)
    assert len(outs) > 5
    assert len(mutator.crossover(C, DATA, other, 10, 1)) <= 10


@given(st.binary(max_size=200), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_mutate_respects_max_size_and_replays(data, max_size, seed):
    def byte_mutate(d: bytes, m: int) -> bytes:
        return (d + b"\x07")[:m]

    out = mutator.mutate(C, data, max_size, seed, byte_mutate)
    assert len(out) <= max_size
    assert mutator.mutate(C, data, max_size, seed, byte_mutate) == out
    C.decode(out)  # every output is an op list
