"""The byte codec is total and round-trips every valid op list."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from fuzz.codec import DEFAULT_WEIGHTS, Codec, codec_for, decode, encode, parse_weights

BIG = Geometry(pages=1024, pmd_order=9, inodes=3, mms=3, vmas=3, handles=5,
               file_pages=300, max_file_pages=600)
# one-byte page offsets wider than a quarter of the byte: the touched-page zone and the
# raw values overlap in the byte's lower half
MID = Geometry(pages=256, pmd_order=2, inodes=2, mms=2, vmas=2, handles=4, file_pages=64,
               max_file_pages=100)


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


@given(st.lists(op_strategy(MID), max_size=30))
def test_round_trip_wide_one_byte_fields(ops):
    assert decode(encode(ops, MID), MID) == ops


@st.composite
def touching_ops(draw, g: Geometry) -> list[O.Op]:
    """Maps, then faults, GUP and reflinks on mapped pages: the touched-page zone in use
    (VMAs as long as the geometry allows, so zones overflow where they can)."""
    n = g.max_file_pages
    ops: list[O.Op] = [O.Mmap(0, 0, 0, 0, n), O.Mmap(1, 1, 1, 0, n)]
    idx = st.integers(0, n - 1)
    for _ in range(draw(st.integers(0, 25))):
        mm = draw(st.integers(0, 1))
        ops.append(draw(st.one_of(
            st.builds(O.Fault, st.just(mm), st.just(mm), idx, st.integers(0, 1)),
            st.builds(O.Reflink, st.integers(0, 1), st.integers(0, 1), idx, idx,
                      st.integers(1, 4)),
            st.builds(O.Pin, st.just(mm), st.just(mm), idx, st.integers(0, g.handles - 1)))))
    return ops


@given(touching_ops(DEFAULT))
def test_round_trip_touched_pages(ops):
    assert decode(encode(ops, DEFAULT), DEFAULT) == ops


@given(touching_ops(MID))
def test_round_trip_touched_pages_wide(ops):
    assert decode(encode(ops, MID), MID) == ops


def test_written_zone_picks_pages_a_write_or_reflink_made_real():
    c = codec_for(DEFAULT)
    F = c.kind_byte[O.Fault]
    head_ops = [O.Mmap(0, 0, 0, 0, 4), O.Mmap(0, 1, 1, 0, 4), O.Fault(0, 0, 3, 1)]
    head = encode(head_ops, DEFAULT)
    # one-byte field: 0..111 a written page, 112..223 any page of the VMA, 224.. raw
    assert c.decode(head + bytes([F, 0, 0, 0, 0]))[-1] == O.Fault(0, 0, 3)
    assert c.decode(head + bytes([F, 0, 0, 101, 0]))[-1] == O.Fault(0, 0, 3)
    assert c.decode(head + bytes([F, 0, 0, 112 + 1, 0]))[-1] == O.Fault(0, 0, 1)
    assert c.decode(head + bytes([F, 0, 0, 224 + 9, 0]))[-1] == O.Fault(0, 0, 9)  # raw
    # file 1 has no written page yet: the first zone falls back to the VMA's pages
    assert c.decode(head + bytes([F, 0, 1, 2, 0]))[-1] == O.Fault(0, 1, 2)
    # a reflink of file 0's pages 2..3 onto file 1 carries the written page over
    rl = encode(head_ops + [O.Reflink(0, 1, 2, 2, 2)], DEFAULT)[len(head):]
    assert c.decode(head + rl + bytes([F, 0, 1, 5, 0]))[-1] == O.Fault(0, 1, 3)
    # reads and private writes allocate nothing: they do not mark pages written
    quiet = encode([O.Mmap(0, 0, 0, 0, 4), O.Mmap(0, 1, 0, 0, 4, shared=0),
                    O.Fault(0, 0, 3), O.Fault(0, 1, 2, 1), O.Get(0, 0, 1, 0)], DEFAULT)
    assert c.decode(quiet + bytes([F, 0, 0, 1, 0]))[-1] == O.Fault(0, 0, 1)


def test_nothing_mapped_favours_mmap():
    # with no VMA mapped, mmap takes half the kind table; once one is, its own weight
    c = codec_for(DEFAULT)
    # weights sum to 158; mmap gets the other 146: 256*146//292 = 128 slots, plus the 8
    # left over after flooring the other kinds (120 slots), which go to the heaviest
    assert sum(k is O.Mmap for k in c.table0) == 136
    total = sum(DEFAULT_WEIGHTS.values())
    assert sum(k is O.Mmap for k in c.table) == 256 * DEFAULT_WEIGHTS["mmap"] // total
    assert c.kind_byte0[O.Mmap] == c.kind_byte[O.Mmap] == 0
    # the same byte decodes by the state: a fault once mapped, an mmap before
    fb = c.kind_byte[O.Fault]
    assert c.table0[fb] is O.Mmap
    mm = encode([O.Mmap(0, 0, 0)], DEFAULT)
    assert type(c.decode(mm + bytes([fb, 0, 0, 0, 0]))[1]) is O.Fault
    assert type(c.decode(bytes([fb]) + bytes(10))[0]) is O.Mmap
    # munmap of the last VMA switches back
    ops = [O.Mmap(0, 0, 0), O.Munmap(0, 0), O.Mmap(0, 1, 1), O.Fault(0, 1, 0)]
    data = encode(ops, DEFAULT)
    assert data[len(encode(ops[:2], DEFAULT))] == c.kind_byte0[O.Mmap]
    assert decode(data, DEFAULT) == ops


def test_chosen_fields_miss_live_values_one_time_in_eight():
    # a fault names mm, VMA and page by choice: random bytes hit a mapped page of the one
    # VMA unless a field lands in its top eighth (then a raw value, usually a miss)
    import random

    c = codec_for(DEFAULT)
    head = encode([O.Mmap(0, 0, 0, 0, 4)], DEFAULT)
    rng = random.Random(7)
    hits = 0
    for _ in range(4000):
        op = c.decode(head + bytes([c.kind_byte[O.Fault]]) + rng.randbytes(4))[-1]
        hits += op.mm == 0 and op.vma == 0 and op.pgoff < 4
    # per field: chosen 7/8, or raw and still right -- mm and slot 1 in 2, page 4 in 16:
    # (7/8 + 1/16) * (7/8 + 1/16) * (7/8 + 1/32) = 0.797 (with the old halves: 0.33)
    assert 0.77 < hits / 4000 < 0.82


def test_long_vmas_round_trip_past_the_quarter_zones():
    # a 65-page VMA: page 64 is past a one-byte field's touched and live quarters
    for ops in ([O.Mmap(0, 0, 0, 0, 65), O.Pin(0, 0, 64, 0)],
                [O.Mmap(0, 0, 0, 0, 100), O.Fault(0, 0, 70), O.Fault(0, 0, 70, 1)],
                [O.Mmap(0, 0, 0, 0, 100)] + [O.Fault(0, 0, i) for i in range(100)]
                + [O.Fault(0, 0, 99, 1), O.Fault(0, 0, 3)]):
        assert decode(encode(ops, MID), MID) == ops


# PMDs larger than the largest file: no "whole extent" length fits
HUGE_PMD = Geometry(pages=512, pmd_order=9, inodes=2, mms=2, vmas=2, handles=4,
                    file_pages=8, max_file_pages=16)


@given(st.binary(max_size=300))
def test_every_byte_string_decodes_to_valid_ops(data):
    for g in (DEFAULT, BIG, MID, HUGE_PMD):
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


@given(st.lists(st.binary(min_size=1, max_size=codec_for(DEFAULT).max_len), max_size=30))
def test_decode_op_reads_one_op_a_string_as_decode_reads_them_all(chunks):
    # the Hypothesis engine's codec generation decodes op by op from strings of
    # max_len bytes (short ones read zero bytes past their end); the ops are those
    # `decode` reads from the strings cut to each op's length and joined
    c = codec_for(DEFAULT)
    sh = c.shadow()
    ops = [c.decode_op(data.ljust(c.max_len, b"\0"), sh) for data in chunks]
    joined = b"".join(d.ljust(c.max_len, b"\0")[:c.op_len[type(op)]]
                      for d, op in zip(chunks, ops, strict=True))
    assert c.decode(joined) == ops
    for op in ops:
        op.check(DEFAULT)


def test_decode_op_follows_the_shadow():
    # nothing mapped: kind byte 0 reads from the mmap-heavy table; once a VMA is in the
    # shadow, a fault's live fields name it
    c = Codec(DEFAULT, {"mmap": 1, "fault": 1})
    sh = c.shadow()
    mm = c.decode_op(bytes([c.kind_byte0[O.Mmap]]) + bytes(c.max_len - 1), sh)
    assert type(mm) is O.Mmap and sh.vmas[mm.mm] == {mm.vma: mm}
    f = c.decode_op(bytes([c.kind_byte[O.Fault]]) + bytes(c.max_len - 1), sh)
    assert type(f) is O.Fault and (f.mm, f.vma) == (mm.mm, mm.vma)
    assert mm.pgoff <= f.pgoff < mm.pgoff + mm.pages


def test_long_inputs_decode_to_ops_inside_the_world():
    """A written range reaching past the file's last page put `write_from pgoff=17`
    (of 0..15) into long random inputs: the saved finding could not be read back."""
    import random

    from daxfuzz.vocab.geometry import DEFAULT

    c = Codec(DEFAULT)
    rng = random.Random(1)
    n = 0
    for _ in range(300):
        data = rng.randbytes(rng.randrange(1000, 4000))
        for op in c.decode(data, max_ops=2000):
            op.check(DEFAULT)  # ValueError outside the world
            n += 1
    assert n > 100_000
