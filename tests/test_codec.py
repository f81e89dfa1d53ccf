"""The byte codec is total and round-trips every valid op list."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from daxfuzz import ops as O
from daxfuzz.codec import DEFAULT_WEIGHTS, Codec, codec_for, decode, encode, parse_weights
from daxfuzz.geometry import DEFAULT, Geometry

BIG = Geometry(pages=1024, pmd_order=9, inodes=3, mms=3, vmas=3, handles=5,
               file_pages=300, max_file_pages=600)


def op_strategy(g: Geometry) -> st.SearchStrategy[O.Op]:
    """Any op valid under `g`, uniformly over kinds and fields."""
    def one(cls):
        kw = {}
        for f, dom in zip(fields(cls), cls.domains, strict=True):
            lo, hi = O.domain_size(dom, g)
            kw[f.name] = st.integers(lo, hi)
        return st.builds(cls, **kw)
    return st.one_of([one(c) for c in O.OP_TYPES])


@given(st.lists(op_strategy(DEFAULT), max_size=40))
def test_round_trip_default_geometry(ops):
    assert decode(encode(ops, DEFAULT), DEFAULT) == ops


@given(st.lists(op_strategy(BIG), max_size=20))
def test_round_trip_multibyte_fields(ops):
    assert decode(encode(ops, BIG), BIG) == ops


@given(st.binary(max_size=300))
def test_every_byte_string_decodes_to_valid_ops(data):
    for g in (DEFAULT, BIG):
        ops = decode(data, g)
        for op in ops:
            op.check(g)
        # decoding is deterministic, and canonical bytes decode to the same ops
        assert decode(data, g) == ops
        assert decode(encode(ops, g), g) == ops


def test_known_bytes():
    ops = [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, write=1), O.Munmap(0, 0)]
    data = encode(ops, DEFAULT)
    assert len(data) == sum(1 + len(fields(op)) for op in ops)  # one byte a field here
    assert decode(data, DEFAULT) == ops


def test_live_choice_biases_to_mapped_pages():
    # a fault whose field bytes are all small hits the one mapped VMA, not slot 1
    c = codec_for(DEFAULT)
    mmap = encode([O.Mmap(1, 1, 0, pgoff=2, pages=3)], DEFAULT)
    ops = c.decode(mmap + bytes([c.kind_byte[O.Fault], 0, 0, 2, 1]))
    assert ops[1] == O.Fault(1, 1, 4, write=1)


def test_weights_and_disabled_kinds():
    w = parse_weights("fault=0,mmap=50")
    assert w["fault"] == 0 and w["mmap"] == 50
    c = Codec(DEFAULT, w)
    assert O.Fault not in c.table and len(c.table) == 256
    assert all(type(op) is not O.Fault for op in c.decode(bytes(range(256))))
    try:
        c.encode([O.Fault(0, 0, 0)])
    except ValueError as e:
        assert "fault" in str(e)
    else:
        raise AssertionError("encoding a disabled kind must fail")
    assert sorted(DEFAULT_WEIGHTS) == sorted(t.name for t in O.OP_TYPES)


def test_parse_weights_errors():
    for bad in ("nosuch=1", "fault", "fault=x", "fault=-1"):
        try:
            parse_weights(bad)
        except ValueError as e:
            assert "--weights" in str(e)
        else:
            raise AssertionError(bad)
