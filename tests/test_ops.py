"""The op vocabulary's text form: parse(str(op)) == op, and parser errors name file:line."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daxfuzz.errors import InputError
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.trace import parse_trace


def op_strategy(cls: type[O.Op]) -> st.SearchStrategy[O.Op]:
    """Any field values, in and beyond the default geometry: the text form is total."""
    return st.builds(cls, **{f.name: st.integers(-3, 1 << 20) for f in fields(cls)})


ANY_OP = st.one_of([op_strategy(c) for c in O.OP_TYPES])


@pytest.mark.parametrize("cls", O.OP_TYPES, ids=lambda c: c.name)
@given(data=st.data())
def test_round_trip_every_kind(cls, data):
    op = data.draw(op_strategy(cls))
    text = str(op)
    assert text.split()[0] == cls.name
    assert O.parse_op(text) == op


@given(ANY_OP)
def test_default_fields_are_left_out(op):
    for tok in str(op).split()[1:]:
        key, _, val = tok.partition("=")
        default = next(f.default for f in fields(op) if f.name == key)
        assert int(val) != default


def test_every_op_kind_is_registered():
    names = {c.name for c in O.OP_TYPES}
    assert names == {"mmap", "munmap", "fault", "msync", "reflink", "pin", "get", "unpin",
                     "put", "truncate", "punch", "unmount", "mount", "memory_failure", "write",
                     "dontneed", "fork", "exchange", "swapext",
                     "pin_pages", "unpin_pages", "write_from", "mprotect", "mremap"}
    assert set(O.BY_NAME) == names


@pytest.mark.parametrize("text, op", [
    ("mmap mm=1 vma=0 ino=1 pgoff=4 huge=0",
     O.Mmap(mm=1, vma=0, ino=1, pgoff=4, pages=4, shared=1, write=1, huge=0, aligned=1)),
    ("fault mm=0 vma=1 pgoff=5 write=1", O.Fault(0, 1, 5, 1)),
    ("reflink src=1 dst=0 pages=8", O.Reflink(1, 0, 0, 0, 8)),
    ("pin mm=0 vma=0 pgoff=2 longterm=1", O.Pin(0, 0, 2, 0, 1, 1)),
    ("memory_failure pfn=3 holder=0", O.MemoryFailure(3, 0, 0)),
    ("unmount", O.Unmount()),
    ("  truncate   ino=1  ", O.Truncate(1, 0)),
])
def test_parse_examples(text, op):
    assert O.parse_op(text) == op


def test_str_examples():
    assert str(O.Mmap(0, 0, 0)) == "mmap mm=0 vma=0 ino=0"
    assert str(O.Pin(0, 0, 1, h=2)) == "pin mm=0 vma=0 pgoff=1 h=2"
    assert str(O.MemoryFailure(7, holder=0)) == "memory_failure pfn=7 holder=0"
    assert str(O.Mount()) == "mount"


@pytest.mark.parametrize("line, words", [
    ("frobnicate mm=0", ["unknown op", "frobnicate"]),
    ("fault mm=0 vma=0 pgoff=0 color=1", ["unknown field", "color"]),
    ("fault mm=0 vma=0 pgoff=x", ["pgoff", "not a decimal integer"]),
    ("fault mm=0 vma=0 pgoff=0x1", ["not a decimal integer"]),
    ("fault mm=0 vma=0", ["missing field", "pgoff"]),
    ("fault mm=0 vma=0 pgoff=1 pgoff=2", ["pgoff", "twice"]),
    ("fault mm=0 vma=0 pgoff", ["key=value"]),
])
def test_parse_op_errors_name_file_and_line(line, words):
    with pytest.raises(InputError) as ei:
        O.parse_op(line, path="x.trace", line=7)
    e = ei.value
    assert (e.path, e.line) == ("x.trace", 7)
    assert str(e).startswith("x.trace:7: ")
    for w in words:
        assert w in str(e)


@pytest.mark.parametrize("line, what", [
    ("frobnicate", "unknown op"),
    ("fault mm=0 vma=0 pgoff=0 color=1", "unknown field"),
    ("fault mm=0 vma=0 pgoff=zero", "not a decimal integer"),
    ("fault mm=0 vma=0", "missing field"),
    ("fault mm=0 vma=0 pgoff=0 mm=1", "given twice"),
    ("fault mm=2 vma=0 pgoff=0", "mm=2 outside 0..1"),
    ("memory_failure pfn=32", "pfn=32 outside 0..31"),
    ("pin mm=0 vma=0 pgoff=0 h=4", "h=4 outside 0..3"),
    ("mmap mm=0 vma=0 ino=0 pages=0", "pages=0 outside 1..16"),
    ("fault mm=0 vma=0 pgoff=0 write=2", "write=2 outside 0..1"),
])
def test_trace_op_errors_name_file_and_line(line, what):
    text = "expect: agree\n\nmmap mm=0 vma=0 ino=0\n" + line + "\n"
    with pytest.raises(InputError) as ei:
        parse_trace(text, path="corpus/bad.trace")
    assert ei.value.line == 4
    assert str(ei.value).startswith("corpus/bad.trace:4: ")
    assert what in str(ei.value)


def test_geometry_decides_what_is_out_of_range():
    g_text = "geometry: pages=64 mms=3\n"
    t = parse_trace(g_text + "memory_failure pfn=63 mm=2\n")
    assert t.ops == (O.MemoryFailure(63, 2),)
    with pytest.raises(InputError, match="pfn=64 outside 0..63"):
        parse_trace(g_text + "memory_failure pfn=64\n")


@pytest.mark.parametrize("cls", O.OP_TYPES, ids=lambda c: c.name)
def test_check_accepts_domain_bounds(cls):
    from daxfuzz.vocab.geometry import DEFAULT

    doms = list(zip(fields(cls), cls.domains, strict=True))
    lo = {f.name: O.domain_size(d, DEFAULT)[0] for f, d in doms}
    hi = {f.name: O.domain_size(d, DEFAULT)[1] for f, d in doms}
    cls(**lo).check(DEFAULT)
    cls(**hi).check(DEFAULT)
    for name in hi:
        with pytest.raises(ValueError, match=f"{name}="):
            cls(**{**hi, name: hi[name] + 1}).check(DEFAULT)
