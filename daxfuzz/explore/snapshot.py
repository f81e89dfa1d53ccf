"""Copies of a runner's two worlds, so `exhaust` expands a state without replaying it.

Expanding a state tries every op from it, and each op mutates the oracle and the
target; before, each try replayed the state's whole path from a fresh runner (a reset
and K-1 steps per edge).  `snapshot` copies the oracle and the target once per state;
`restore` gives the runner a fresh copy of that for each further op.

The copy is structural, not `copy.deepcopy` (ten times slower): lists, dicts and sets
are copied, objects (``__dict__`` or ``__slots__``, any subclass a zoo variant or
mutant adds) are rebuilt field by field with one memo so an object two fields share
stays shared, and values of the immutable types below are shared, not copied.  A
tuple is taken as immutable with its contents (the worlds keep only numbers, strings
and tuples of them in tuples); `tests/test_explore.py` checks that exploring with
copies reaches exactly the states replay does, on every kernel target.
"""

from __future__ import annotations

from daxfuzz.core.runner import Runner
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.rules import Rules
from daxfuzz.vocab.world import Vma

#: types whose values are shared between a world and its copy
ATOMS = {int, str, bool, float, complex, bytes, type(None), tuple, frozenset, range,
         Geometry, Rules, Vma}
_COPIERS: dict[type, object] = {}


def _copier(t: type):
    """A function copying an instance of `t` field by field (built once per class)."""
    slots = [s for c in t.__mro__ for s in getattr(c, "__slots__", ())
             if s not in ("__dict__", "__weakref__")]
    lines = ["def cp(x, memo):", "    y = new(T)", "    memo[id(x)] = y"]
    for s in dict.fromkeys(slots):
        lines += [f"    try:\n        v = x.{s}\n    except AttributeError:\n        pass",
                  f"    else:\n        y.{s} = v if type(v) in ATOMS else clone(v, memo)"]
    lines += ["    d = getattr(x, '__dict__', None)",
              "    if d is not None:",
              "        y.__dict__ = {k: (v if type(v) in ATOMS else clone(v, memo))",
              "                      for k, v in d.items()}",
              "    return y"]
    ns = {"new": object.__new__, "T": t, "ATOMS": ATOMS, "clone": clone}
    exec("\n".join(lines), ns)  # noqa: S102 -- generated from the class's own slots
    return ns["cp"]


def clone(x: object, memo: dict[int, object]) -> object:
    """A copy of `x` sharing nothing mutable with it (see the module docstring)."""
    t = type(x)
    if t in ATOMS:
        return x
    if t is list:
        if ATOMS.issuperset(map(type, x)):  # type: ignore[arg-type]
            return x.copy()  # type: ignore[attr-defined]
        return [v if type(v) in ATOMS else clone(v, memo) for v in x]  # type: ignore[attr-defined]
    if t is dict:
        if ATOMS.issuperset(map(type, x.values())):  # type: ignore[attr-defined]
            return x.copy()  # type: ignore[attr-defined]
        return {k: (v if type(v) in ATOMS else clone(v, memo))
                for k, v in x.items()}  # type: ignore[attr-defined]
    if t is set:
        return x.copy()  # type: ignore[attr-defined]  # elements are hashable: immutable
    y = memo.get(id(x))
    if y is not None:
        return y
    cp = _COPIERS.get(t)
    if cp is None:
        cp = _COPIERS[t] = _copier(t)
    return cp(x, memo)  # type: ignore[operator]


def snapshot(r: Runner) -> tuple[object, object, int]:
    """The runner's oracle and target, copied (the runner goes on with its own)."""
    memo: dict[int, object] = {}
    return clone(r.o, memo), clone(r.t, memo), r.nsteps


def restore(r: Runner, snap: tuple[object, object, int]) -> None:
    """Put a fresh copy of `snap` into `r` (`snap` stays as it was, for the next op),
    rebuilding what `Runner.reset` derives from the two worlds."""
    memo: dict[int, object] = {}
    o = r.o = clone(snap[0], memo)  # type: ignore[assignment]
    t = r.t = clone(snap[1], memo)  # type: ignore[assignment]
    r.nsteps = snap[2]
    r._mm_pairs = list(zip(o.mms, t.mms, strict=False))
    r._entry_pairs = [(o.entries[i], t.i_pages[i].ties) for i in range(r.g.inodes)]
