"""Deterministic reduction of a failing op sequence to a 1-minimal reproducer.

``reduce(ops, still_fails)`` is the whole algorithm over any predicate: delta
debugging over ops (ddmin), then simplification of each op's arguments, then
single-op removal until nothing can go, repeated to a fixpoint; then, on short
traces, removal of one op with a change to one field of another (a 1-minimal trace
is not always the shortest: the engines' long inputs reduce to 5 ops where 4 do),
and the passes again.  Every candidate is a valid op list (ops are only removed or
given other in-domain values), and the result is 1-minimal: removing any single op
makes `still_fails` false.

``reduce_divergence`` is the usual predicate: the same divergence signature on the
same target (op kind + field + writer, whatever ``Divergence.signature`` says).

With a ``deadline`` (a ``time.monotonic()`` value) the reduction stops there and
returns the shortest failing candidate it has run: still a failing trace, not
1-minimal (``stats["complete"]`` is 0).  ``daxfuzz fuzz`` bounds the reductions that
run past its budget this way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from daxfuzz.core.runner import Divergence
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import Trace

Predicate = Callable[[Sequence[O.Op]], bool]

# The preferred ("simplest") value of a field, where it is not the field's default:
# huge=0 keeps a divergence on PTEs rather than PMDs.
_PREFERRED = {"huge": 0}


class _OutOfTime(Exception):
    """The reduction's deadline passed."""


class _Cached:
    """`still_fails` with memoised answers; counts the real runs, keeps the shortest
    failing candidate, and stops (_OutOfTime) at the deadline."""

    def __init__(self, still_fails: Predicate, deadline: float | None = None) -> None:
        self.f = still_fails
        self.seen: dict[tuple[O.Op, ...], bool] = {}
        self.runs = 0
        self.deadline = deadline
        self.best: list[O.Op] | None = None

    def __call__(self, ops: Sequence[O.Op]) -> bool:
        # the deadline holds for remembered answers too: passes that only ever ask
        # what they asked before must still stop
        if self.deadline is not None and self.best is not None and \
                time.monotonic() >= self.deadline:
            raise _OutOfTime
        key = tuple(ops)
        r = self.seen.get(key)
        if r is None:
            self.runs += 1
            r = self.seen[key] = bool(self.f(list(key)))
            if r and (self.best is None or len(key) < len(self.best)):
                self.best = list(key)
        return r


def ddmin(ops: list[O.Op], fails: Predicate) -> list[O.Op]:
    """Zeller's ddmin: try each chunk and each complement at growing granularity."""
    n = 2
    while len(ops) >= 2:
        size = -(-len(ops) // n)
        chunks = [ops[i:i + size] for i in range(0, len(ops), size)]
        for c in chunks:
            if fails(c):
                ops, n = c, 2
                break
        else:
            for i in range(len(chunks)):
                rest = [op for j, c in enumerate(chunks) if j != i for op in c]
                if fails(rest):
                    ops, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(ops):
                    break
                n = min(len(ops), 2 * n)
    return ops


def remove_each(ops: list[O.Op], fails: Predicate) -> list[O.Op]:
    """Drop single ops, last first, until none can go: the 1-minimality pass."""
    i = len(ops) - 1
    while i >= 0:
        cand = ops[:i] + ops[i + 1:]
        if cand and fails(cand):
            ops = cand
        i = min(i, len(ops)) - 1
    return ops


def _key(name: str, default: object, lo: int, v: int) -> tuple[int, int]:
    pref = _PREFERRED.get(name, default if isinstance(default, int) else lo)
    return (0 if v == pref else 1, v)


def simpler_values(op: O.Op, g: Geometry) -> list[O.Op]:
    """Variants of `op` with one field simpler: preferred/default value, low, half, minus 1.

    "Simpler" is a well-founded order per field (preferred value first, then smaller),
    so repeated simplification terminates.
    """
    out = []
    for f, dom in zip(fields(op), op.domains, strict=True):
        lo, hi = O.domain_size(dom, g)
        v = getattr(op, f.name)
        k = _key(f.name, f.default, lo, v)
        pref = _PREFERRED.get(f.name, f.default if isinstance(f.default, int) else lo)
        for c in dict.fromkeys((pref, lo, (lo + v) // 2, v - 1)):
            if lo <= c <= hi and _key(f.name, f.default, lo, c) < k:
                out.append(replace(op, **{f.name: c}))
    return out


def simplify_args(ops: list[O.Op], fails: Predicate, g: Geometry) -> list[O.Op]:
    """Give each op, first to last, the simplest arguments that keep the failure."""
    for i in range(len(ops)):
        changed = True
        while changed:
            changed = False
            for cand_op in simpler_values(ops[i], g):
                cand = ops[:i] + [cand_op] + ops[i + 1:]
                if fails(cand):
                    ops, changed = cand, True
                    break
    return ops


_IDS = (O.MM, O.VMA, O.INO, O.HANDLE)  # identifiers: renamed together across all ops


def _rename(ops: list[O.Op], dom: str, old: int, new: int) -> list[O.Op]:
    out = []
    for op in ops:
        kw = {f.name: new for f, d in zip(fields(op), op.domains, strict=True)
              if d == dom and getattr(op, f.name) == old}
        out.append(replace(op, **kw) if kw else op)
    return out


def rename_ids(ops: list[O.Op], fails: Predicate) -> list[O.Op]:
    """Renumber processes, VMA slots, files and handles to the smallest that still fail.

    One op at a time cannot do this: `mm=1` must become `mm=0` in every op at once.
    """
    for dom in _IDS:
        used = sorted({getattr(op, f.name) for op in ops
                       for f, d in zip(fields(op), op.domains, strict=True) if d == dom})
        for old in reversed(used):
            for new in range(old):
                cand = _rename(ops, dom, old, new)
                if fails(cand):
                    ops = cand
                    break
    return ops


#: `remove_with_repair` runs on traces up to this long (its cost grows as n^2 x values)
REPAIR_MAX_OPS = 12


def other_values(op: O.Op, g: Geometry) -> list[O.Op]:
    """Variants of `op` with one field changed to another in-domain value: every value of
    a small domain (<= 64), else the low end, the neighbours and the PMD-aligned
    offsets near the value.  Deterministic order."""
    out = []
    for f, dom in zip(fields(op), op.domains, strict=True):
        lo, hi = O.domain_size(dom, g)
        v = getattr(op, f.name)
        vals: Sequence[int]
        if hi - lo < 64:
            vals = range(lo, hi + 1)
        else:
            near = (v // g.pmd_nr * g.pmd_nr, (v // g.pmd_nr + 1) * g.pmd_nr)
            vals = sorted({*range(lo, lo + 8), v - 1, v + 1, *near, hi})
        out += [replace(op, **{f.name: c}) for c in vals if c != v and lo <= c <= hi]
    return out


def remove_with_repair(ops: list[O.Op], fails: Predicate, g: Geometry) -> list[O.Op]:
    """Drop one op and change one field of another, last op first, while that fails.

    Reaches what single removals cannot: a read fault then a write fault that one
    write fault replaces, an mmap at pgoff 0 plus a fault at page 1 that a window at
    page 1 replaces.  The result is still 1-minimal only after `remove_each`.
    """
    if len(ops) > REPAIR_MAX_OPS:
        return ops
    i = len(ops) - 1
    while i >= 0:
        rest = ops[:i] + ops[i + 1:]
        found = None
        for j in range(len(rest)):
            for cand_op in other_values(rest[j], g):
                cand = rest[:j] + [cand_op] + rest[j + 1:]
                if fails(cand):
                    found = cand
                    break
            if found is not None:
                break
        if found is not None:
            ops = found
        i = min(i, len(ops)) - 1
    return ops


def reduce(ops: Sequence[O.Op], still_fails: Predicate, g: Geometry = DEFAULT,
           *, stats: dict[str, float] | None = None,
           deadline: float | None = None) -> list[O.Op]:
    """Reduce `ops` (for which `still_fails` holds) to a 1-minimal failing list.

    Deterministic: the same input and predicate give the same result.  `stats`, if
    given, receives the number of predicate runs, seconds per stage and `complete`
    (0 when the `deadline` stopped it: the result fails but may not be 1-minimal).
    """
    fails = _Cached(still_fails, deadline)
    cur = list(ops)
    if not fails(cur):
        raise ValueError("reduce: the input does not fail; nothing to reduce")
    t0 = time.perf_counter()
    timings = {"ddmin": 0.0, "rename": 0.0, "args": 0.0, "remove": 0.0, "repair": 0.0}
    try:
        cur = _passes(cur, fails, g, timings)
        complete = 1
    except _OutOfTime:
        assert fails.best is not None  # fails(ops) held above, so a best exists
        cur, complete = fails.best, 0
    if stats is not None:
        stats.update(timings, runs=fails.runs, seconds=time.perf_counter() - t0,
                     complete=complete)
    return cur


def _passes(cur: list[O.Op], fails: _Cached, g: Geometry, timings: dict[str, float]
            ) -> list[O.Op]:
    """The passes, to the fixpoint and past it with remove_with_repair.  A round that
    comes back to a list an earlier round started from is a fixpoint too: two passes
    can undo each other (rename_ids takes `mremap to=1` to 0 where any `to` fails,
    simplify_args takes it back to its default 1) and would cycle for ever."""
    rounds: set[tuple[O.Op, ...]] = set()
    while True:
        rounds.add(tuple(cur))
        before = cur
        for stage, fn in (("ddmin", lambda x: ddmin(x, fails)),
                          ("rename", lambda x: rename_ids(x, fails)),
                          ("args", lambda x: simplify_args(x, fails, g)),
                          ("remove", lambda x: remove_each(x, fails))):
            t = time.perf_counter()
            cur = fn(cur)
            timings[stage] += time.perf_counter() - t
        if cur == before or tuple(cur) in rounds:
            # a fixpoint: 1-minimal.  One op shorter by changing another, then again.
            fixed = cur
            t = time.perf_counter()
            cur = remove_with_repair(cur, fails, g)
            timings["repair"] += time.perf_counter() - t
            if cur == fixed:  # nothing could go: done
                return cur


@dataclass(frozen=True)
class Reduced:
    """A reduced finding: the trace (header says target and signature) and its divergence."""

    trace: Trace
    divergence: Divergence
    original_len: int
    runs: int
    seconds: float
    complete: bool = True  # False: the deadline stopped it (fails, maybe not 1-minimal)


def reduce_divergence(target: str, g: Geometry, ops: Sequence[O.Op],
                      description: Sequence[str] = (),
                      deadline: float | None = None) -> Reduced | None:
    """Reduce `ops` keeping the divergence signature it shows on `target`.

    Returns None when the ops do not diverge at all.  The trace's results are the
    target's, and its ``expect`` header names the signature.  Stopped by `deadline`,
    the trace is the shortest failing one reached, and its description says so.
    """
    from daxfuzz.core.known import Known, fault_in, fault_in_divergence, own_divergence
    from daxfuzz.core.runner import Runner, explain, run_ops

    div, _ = run_ops(target, g, ops)
    if div is None:
        return None
    sig = div.signature()
    # on a target built on a base kernel, the target's own divergence stays its own:
    # a candidate the base shows too is the base's bug (unless the input already was)
    known = Known(target, g)
    run = own_divergence if known.base is not None and not known.base_shows(ops, div) \
        else run_ops

    # a GUP's own divergence (faults of its pages agree) stays one: a candidate that is a
    # fault bug reached through GUP's fault-in is another bug (daxfuzz.core.known)
    gup_own = fault_in(ops[:div.step]) is not None and \
        fault_in_divergence(Runner(target, g), ops[:div.step]) is None
    stand_in = Runner(target, g) if gup_own else None

    def same(cand: Sequence[O.Op]) -> bool:
        d, _ = run(target, g, cand)
        if d is None or d.signature() != sig:
            return False
        return stand_in is None or fault_in_divergence(stand_in, cand[:d.step]) is None

    stats: dict[str, float] = {}
    head = list(ops)[:div.step]  # nothing after the first divergence (step is 1-based)
    if not same(head):
        head = list(ops)
    small = reduce(head, same, g, stats=stats, deadline=deadline)
    div, results = run_ops(target, g, small)
    full = explain(target, g, small) or div
    assert full is not None  # `small` passed `same`: it diverges
    padded: list[str | None] = [*results, *[None] * len(small)][:len(small)]
    complete = bool(stats["complete"])
    if not complete:
        description = (*description, UNREDUCED)
    trace = Trace(ops=tuple(small), target=target, geometry=g, expect=f"divergence {sig}",
                  description=tuple(description), results=tuple(padded))
    return Reduced(trace, full, len(ops), int(stats["runs"]), stats["seconds"], complete)


#: the description line of a trace whose reduction a deadline stopped
UNREDUCED = ("not fully reduced: the reduction time limit stopped it "
             "(`daxfuzz reduce FILE` finishes it)")
