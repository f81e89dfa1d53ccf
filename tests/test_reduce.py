"""Reduction: text tables of traces in, 1-minimal traces out, on the broken target."""

from __future__ import annotations

import pytest

from daxfuzz.core.reduce import ddmin, reduce, reduce_divergence, remove_each
from daxfuzz.core.runner import run_ops
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import parse_trace

BROKEN = "test-broken-unmap-ref"
HEADER = ("target: test-broken-unmap-ref\n"
          "geometry: pages=32 pmd_order=2 inodes=2 mms=2 vmas=2 handles=4 file_pages=8 "
          "max_file_pages=16\n")

# (noisy trace ops, expected reduced trace ops with results)
TABLE = [
    # the planted bug through munmap, buried in noise and on PMD-capable mappings
    ("""
mmap mm=1 vma=1 ino=1 pgoff=4 pages=8
fault mm=1 vma=1 pgoff=5
mmap mm=0 vma=0 ino=0 pages=8 huge=0
pin mm=1 vma=1 pgoff=6 h=2
fault mm=0 vma=0 pgoff=3 write=1
msync mm=0 vma=0
unpin h=2
munmap mm=0 vma=0
truncate ino=1
""", """
mmap mm=0 vma=0 ino=0 huge=0  => ok
fault mm=0 vma=0 pgoff=0 write=1  => ok
munmap mm=0 vma=0  => ok
"""),
    # the same leak seen by truncate's layout break (a different signature)
    ("""
mmap mm=1 vma=0 ino=1 pages=6 shared=1 huge=0 aligned=0
get mm=1 vma=0 pgoff=2 h=3
fault mm=1 vma=0 pgoff=1 write=1
put h=3
truncate ino=1 pages=1
mount
""", """
mmap mm=0 vma=0 ino=0 huge=0  => ok
fault mm=0 vma=0 pgoff=0 write=1  => ok
truncate ino=0  => blocked pfn=0
"""),
]


@pytest.mark.parametrize("src,want", TABLE)
def test_reduce_table(src, want):
    t = parse_trace(HEADER + src)
    red = reduce_divergence(BROKEN, t.geometry, t.ops)
    assert red is not None
    body = str(red.trace).split("\n\n", 1)[1]
    assert body.strip() == want.strip()
    # 1-minimal: dropping any single op loses the divergence signature
    sig = red.divergence.signature()
    ops = list(red.trace.ops)
    for i in range(len(ops)):
        d, _ = run_ops(BROKEN, t.geometry, ops[:i] + ops[i + 1:])
        assert d is None or d.signature() != sig
    # deterministic
    again = reduce_divergence(BROKEN, t.geometry, t.ops)
    assert str(again.trace) == str(red.trace)


def test_header_names_signature():
    t = parse_trace(HEADER + TABLE[0][0])
    red = reduce_divergence(BROKEN, t.geometry, t.ops, description=("why",))
    assert str(red.trace).startswith(HEADER + "expect: divergence munmap:refcount\n"
                                     "description: why\n")


def test_agreeing_trace_is_not_reduced():
    t = parse_trace(HEADER + "mmap mm=0 vma=0 ino=0\nfault mm=0 vma=0 pgoff=0\n")
    assert reduce_divergence("6.15", t.geometry, t.ops) is None
    with pytest.raises(ValueError, match="does not fail"):
        reduce(list(t.ops), lambda ops: False)


def _needs(ops):
    """Synthetic predicate: a write fault of mm 1, later an unpin of handle 3."""
    seen = False
    for op in ops:
        if isinstance(op, O.Fault) and op.mm == 1 and op.write:
            seen = True
        if seen and isinstance(op, O.Unpin) and op.h == 3:
            return True
    return False


def test_ddmin_and_args_on_a_pure_predicate():
    noise = [O.Mount(), O.Truncate(1, 2), O.Put(0), O.Msync(0, 1)]
    ops = noise + [O.Fault(1, 1, 7, write=1)] + noise + [O.Unpin(3)] + noise
    assert ddmin(ops, _needs) == [O.Fault(1, 1, 7, write=1), O.Unpin(3)]
    assert remove_each(ops, _needs) == [O.Fault(1, 1, 7, write=1), O.Unpin(3)]
    # arguments: pgoff and vma go to 0, mm and write and h must stay
    assert reduce(ops, _needs) == [O.Fault(1, 0, 0, write=1), O.Unpin(3)]


def _shortcut(ops) -> bool:
    """Fails with an mmap and either a write fault, or a read fault of page 1 and msync:
    [mmap, read fault page 1, msync] is 1-minimal, [mmap, write fault] is shorter."""
    if not any(isinstance(o, O.Mmap) for o in ops):
        return False
    faults = [o for o in ops if isinstance(o, O.Fault)]
    return (any(f.write for f in faults)
            or any(f.pgoff == 1 for f in faults) and any(isinstance(o, O.Msync) for o in ops))


def test_remove_with_repair_reaches_below_one_minimal():
    from daxfuzz.core.reduce import remove_with_repair

    ops = [O.Mmap(0, 0, 0), O.Fault(0, 0, 1, write=0), O.Msync(0, 0)]
    assert remove_each(ops, _shortcut) == ops  # 1-minimal: no single op can go
    # drop the msync, turn the read fault into a write fault
    assert remove_with_repair(ops, _shortcut, DEFAULT) == [O.Mmap(0, 0, 0),
                                                           O.Fault(0, 0, 1, write=1)]
    # reduce runs it at the fixpoint, and simplifies what it leaves
    assert reduce(ops, _shortcut) == [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, write=1)]


def test_passes_that_undo_each_other_end(monkeypatch):
    # rename_ids takes `mremap to=1` to the smallest slot that still fails (0) and
    # simplify_args takes it back to its default (1): a predicate true whatever `to` is
    # made the passes cycle for ever (a plugin target raising in every mremap did)
    import signal

    def alarm(*_a):
        raise AssertionError("reduce() did not end within 20 s: the passes cycle")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        out = reduce([O.Mremap(1, 0)], lambda ops: any(isinstance(o, O.Mremap) for o in ops))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert len(out) == 1 and isinstance(out[0], O.Mremap)
