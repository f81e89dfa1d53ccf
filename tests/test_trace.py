"""Trace files: canonical round trip, headers, per-target expectations, results, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daxfuzz.errors import InputError
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import Trace, parse_trace, read_trace

CANONICAL = """\
target: 6.15
geometry: pages=32 pmd_order=2 inodes=2 mms=2 vmas=2 handles=4 file_pages=8 max_file_pages=16
expect: agree
expect 6.15: divergence fault:mapping
description: stale index looks like share
description:
description: second paragraph: with a colon

mmap mm=0 vma=1 ino=1 pgoff=4 huge=0
fault mm=0 vma=1 pgoff=5 write=1  => ok
reflink src=1 dst=0 pages=8  => blocked pfn=1
memory_failure pfn=0 holder=0  => ok killed=0
unmount
"""


def test_canonical_round_trip():
    t = parse_trace(CANONICAL)
    assert str(t) == CANONICAL
    assert t.target == "6.15"
    assert t.geometry == DEFAULT
    assert t.expect == "agree"
    assert t.expect_for == (("6.15", "divergence fault:mapping"),)
    assert t.description == ("stale index looks like share", "",
                             "second paragraph: with a colon")
    assert t.results == (None, "ok", "blocked pfn=1", "ok killed=0", None)
    assert t.ops[2] == O.Reflink(1, 0, 0, 0, 8)


def test_minimal_trace_and_its_canonical_form():
    t = parse_trace("fault mm=0 vma=0 pgoff=0\n")
    assert t.ops == (O.Fault(0, 0, 0),)
    assert (t.target, t.expect, t.description, t.results) == (None, "agree", (), (None,))
    assert str(t) == (f"geometry: {DEFAULT.text()}\nexpect: agree\n\n"
                      "fault mm=0 vma=0 pgoff=0\n")
    assert str(parse_trace(str(t))) == str(t)


def test_comments_blank_lines_and_spacing_are_not_canonical_but_parse():
    text = ("# a comment\n  target:   7.2   # trailing\n\n"
            "expect:   divergence   fault:refcount\n"
            "fault   mm=0 vma=0 pgoff=0    =>   ok   # why\n")
    t = parse_trace(text)
    assert t.target == "7.2"
    assert t.expect == "divergence fault:refcount"
    assert t.results == ("ok",)
    assert parse_trace(str(t)) == t


OPS = st.sampled_from([
    O.Mmap(0, 1, 1, pgoff=3, huge=0), O.Munmap(1, 1), O.Fault(0, 0, 2, 1), O.Msync(0, 0),
    O.Reflink(0, 1, 2, 3, 1), O.Pin(1, 0, 0, 3, 0), O.Get(0, 1, 1, 2), O.Unpin(1), O.Put(2),
    O.Truncate(1, 2), O.Punch(0, 1, 2), O.Unmount(), O.Mount(), O.MemoryFailure(31, 1, 0),
])
RESULTS = st.sampled_from([None, "ok", "EBUSY", "SIGBUS", "blocked pfn=3", "ok killed=0,1"])
WORDS = st.text(alphabet="abcdefghij klm:=.,()-", max_size=30).map(lambda s: " ".join(s.split()))


@given(ops=st.lists(st.tuples(OPS, RESULTS), min_size=1, max_size=8),
       target=st.sampled_from([None, "6.15", "7.2"]),
       expect=st.sampled_from(["agree", "divergence", "divergence fault:mapping"]),
       expect_for=st.lists(st.tuples(st.sampled_from(["6.15", "7.2"]),
                                     st.sampled_from(["agree", "divergence fault:warning"])),
                           max_size=2, unique_by=lambda e: e[0]),  # one line a target
       desc=st.lists(WORDS, max_size=3),
       pmd_order=st.integers(1, 3))
def test_round_trip_property(ops, target, expect, expect_for, desc, pmd_order):
    g = Geometry(pmd_order=pmd_order, pages=64)
    t = Trace(ops=tuple(o for o, _ in ops), results=tuple(r for _, r in ops), target=target,
              geometry=g, expect=expect, expect_for=tuple(expect_for), description=tuple(desc))
    text = str(t)
    back = parse_trace(text)
    assert back == t
    assert str(back) == text


def test_per_target_expect():
    t = parse_trace("expect: divergence fault:warning\nexpect 7.2: agree\nunmount\n")
    assert t.expectation("7.2") == "agree"
    assert t.expectation("6.15") == "divergence fault:warning"
    assert t.expectation("mainline") == "divergence fault:warning"
    t = parse_trace("unmount\n")
    assert t.expectation("6.15") == "agree"


def test_results_annotation():
    t = parse_trace("truncate ino=0 => blocked pfn=2\ntruncate ino=1\nunmount=>EBUSY\n")
    assert t.results == ("blocked pfn=2", None, "EBUSY")
    assert t.ops == (O.Truncate(0), O.Truncate(1), O.Unmount())


def test_with_ops_keeps_header():
    t = parse_trace(CANONICAL)
    u = t.with_ops(t.ops[:2])
    assert u.results == (None, None)
    assert (u.target, u.expect_for, u.description) == (t.target, t.expect_for, t.description)
    with pytest.raises(ValueError):
        Trace(ops=(O.Unmount(),), results=("ok", "ok"))


@pytest.mark.parametrize("text, line, words", [
    ("expect: agree\ncolour: blue\nunmount\n", 2, ["unknown header", "colour"]),
    ("unmount\ntarget: 6.15\n", 2, ["'target' after the first op"]),
    ("unmount\nexpect: agree\n", 2, ["'expect' after the first op"]),
    ("unmount\nexpect 7.2: agree\n", 2, ["'expect' after the first op"]),
    ("unmount\ndescription: late\n", 2, ["'description' after the first op"]),
    ("\nexpect: maybe\n", 2, ["expect", "maybe", "agree"]),
    ("expect 6.15: sometimes\n", 1, ["sometimes", "divergence [signature]"]),
    ("target: 6.15\ntarget: 7.2\n", 2, ["given twice"]),
    ("target:\n", 1, ["empty target"]),
    ("# c\ngeometry: pages=33\n", 2, ["pages=33", "multiple of the PMD size"]),
    ("geometry: pmd_order=12\n", 1, ["pmd_order=12"]),
    ("geometry: disks=2\n", 1, ["unknown item", "disks"]),
    ("geometry: pages=lots\n", 1, ["pages='lots'", "not an integer"]),
    ("unmount =>\n", 1, ["'=>' with no result"]),
    ("mmap mm=0 vma=0 ino=0\nunmount => garbage result here\n", 2, ["not a result"]),
    ("unmount => ok => ok\n", 1, ["not a result"]),
    ("expect 7.2: agree\nexpect 7.2: divergence fault:refcount\n", 2,
     ["expect 7.2: given twice"]),
    ("a\n", 1, ["unknown op"]),
])
def test_header_and_line_errors(text, line, words):
    with pytest.raises(InputError) as ei:
        parse_trace(text, path="t.trace")
    e = ei.value
    assert (e.path, e.line) == ("t.trace", line)
    assert str(e).startswith(f"t.trace:{line}: ")
    for w in words:
        assert w in str(e), str(e)


def test_geometry_header_applies_to_later_ops():
    t = parse_trace("geometry: pages=16 pmd_order=3 mms=1\nmemory_failure pfn=15\n")
    assert t.geometry == Geometry(pages=16, pmd_order=3, mms=1)
    with pytest.raises(InputError, match=r"t.trace:2: .*mm=1 outside 0..0"):
        parse_trace("geometry: mms=1\nfault mm=1 vma=0 pgoff=0\n", path="t.trace")


def test_read_trace_file(tmp_path):
    p = tmp_path / "ok.trace"
    p.write_text(CANONICAL, encoding="utf-8")
    assert str(read_trace(str(p))) == CANONICAL


def test_read_trace_errors_name_the_path(tmp_path):
    p = tmp_path / "bad.trace"
    p.write_text("unmount\nfault mm=0\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.trace:2: fault: missing field"):
        read_trace(str(p))


def test_non_utf8_file_is_input_error(tmp_path):
    p = tmp_path / "latin1.trace"
    p.write_bytes(b"description: caf\xe9\nunmount\n")
    with pytest.raises(InputError) as ei:
        read_trace(str(p))
    assert ei.value.path == str(p)
    assert "not UTF-8" in str(ei.value) and str(p) in str(ei.value)


def test_missing_file_is_input_error(tmp_path):
    p = tmp_path / "nope.trace"
    with pytest.raises(InputError) as ei:
        read_trace(str(p))
    assert ei.value.path == str(p)
    assert "cannot read" in str(ei.value) and str(p) in str(ei.value)


def test_directory_is_input_error(tmp_path):
    with pytest.raises(InputError, match="a directory, not a regular file"):
        read_trace(str(tmp_path))
