"""Exhaustive small-scope checking and target-to-target comparison.

`exhaust` enumerates every op sequence up to K ops over a small world, breadth-first
over *states*: a state reached before (same oracle facts, same target raw state, same
identifiers in use) is not expanded twice, so the work is in distinct states and
edges, not in strings.  Identifiers that are still unnamed are interchangeable, so an
op may name a new process, VMA slot or handle only as the next unused number
(canonical first use); inodes are not interchangeable (XFS orders by inode number).
Sequences whose prefix diverged are not extended; counter-
examples come out shortest first.  A state is rebuilt once by replaying its path, then
copied (`daxfuzz.explore.snapshot`) for each op tried from it; `--jobs` workers start once and
exchange paths as alphabet indices.  The seen set keeps a 16-byte digest of each
state key, not the key.

`diff_targets` replays sequences on two targets and groups every sequence whose
observable behaviour differs by the first op where they part.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields

from daxfuzz.core.known import Known
from daxfuzz.core.runner import Divergence, Runner
from daxfuzz.explore.bfs import NO_IDS, breadth_first
from daxfuzz.explore.snapshot import restore, snapshot
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.world import buffer_readable

#: the default small world: 8 PFNs, 2-page PMDs, 2 files of 4 pages, 1 process
SMALL = Geometry(pages=8, pmd_order=1, inodes=2, mms=1, vmas=2, handles=2, file_pages=4,
                 max_file_pages=4)

#: a narrower world that reaches deeper: 6 PFNs, 2 files of one PMD (2 pages) each, 1
#: VMA slot, 1 handle.  Every op kind but pin_pages, unpin_pages, mremap and fork (they
#: need a second handle, slot or process); ~10x fewer states at depth 4 than SMALL, so
#: K = 6 (~13 M edges) takes what K = 4 does there.  Neither world finds all the other
#: does (README "Patch review"), so SMALL stays the default
DEEP = Geometry(pages=6, pmd_order=1, inodes=2, mms=1, vmas=1, handles=1, file_pages=2,
                max_file_pages=2)
WORLDS = {"small": SMALL, "deep": DEEP}

_ID_DOMAINS = {O.MM: "mm", O.VMA: "vma", O.INO: "ino", O.HANDLE: "h"}


def alphabet(g: Geometry) -> list[O.Op]:
    """The ops an exhaustive run tries from every state (a reasoned subset of all ops:
    every op kind, every identifier, PMD-relevant offsets, each VMA flavour)."""
    nr = g.pmd_nr
    size = g.file_pages
    offs = sorted({0, 1, min(nr, size - 1)} & set(range(size)))
    out: list[O.Op] = []
    # each VMA flavour over the whole file, and a window from page 1 (a VMA that covers
    # a folio's tail pages but not its head: index arithmetic on folio vs page)
    flavours = [dict(), dict(huge=0), dict(aligned=0), dict(shared=0), dict(write=0),
                dict(sync=1)] + ([dict(pgoff=1, pages=size - 1)] if size > 1 else [])
    for mm in range(g.mms):
        for v in range(g.vmas):
            for ino in range(g.inodes):
                for fl in flavours:
                    out.append(O.Mmap(mm, v, ino, **{"pgoff": 0, "pages": size, **fl}))
            out.append(O.Munmap(mm, v))
            out.append(O.Msync(mm, v))
            out.append(O.Dontneed(mm, v, 0, nr))
            out.append(O.Dontneed(mm, v, 1, 1))
            # range zaps that split VMAs: at a PMD boundary and inside a PMD
            out.append(O.Munmap(mm, v, 1, 1))
            out.append(O.Mprotect(mm, v, 0, nr, 0))
            out.append(O.Mprotect(mm, v, 1, 1, 0))
            out.append(O.Mprotect(mm, v, 0, size, 1))
            for to in range(g.vmas):
                if to != v:
                    out.append(O.Mremap(mm, v, 0, min(nr, size), to, 1))
                    out.append(O.Mremap(mm, v, 0, min(nr, size), to, 0))
            for ino in range(g.inodes):
                out.append(O.WriteFrom(mm, v, 0, ino, 0, 1))
            if g.handles >= 2:
                out.append(O.PinPages(mm, v, 0, 2, 0, 1))
                out.append(O.PinPages(mm, v, 1, 2, 0, 0))
            for pg in range(size):
                out.append(O.Fault(mm, v, pg, 0))
                out.append(O.Fault(mm, v, pg, 1))
            for pg in offs:
                for h in range(g.handles):
                    out.append(O.Pin(mm, v, pg, h, 1))
                    out.append(O.Pin(mm, v, pg, h, 0))
                    out.append(O.Get(mm, v, pg, h, 1))
                    out.append(O.Get(mm, v, pg, h, 0))
    for h in range(g.handles):
        out += [O.Unpin(h), O.Put(h)]
    if g.handles >= 2:
        out.append(O.UnpinPages(0, 2))
    for a in range(g.inodes):
        for b in range(g.inodes):
            if a != b:
                out.append(O.Reflink(a, b, 0, 0, nr))
                out.append(O.Reflink(a, b, 1, 1, 1))
                out.append(O.Swapext(a, b))
                if a < b:  # exchange is symmetric in its two files but for lock order
                    out.append(O.Exchange(a, b, 0, 0, nr))
                    out.append(O.Exchange(a, b, 1, 1, 1))
        if size >= 2:  # within one file (FICLONERANGE allows it): two indices, one folio
            out.append(O.Reflink(a, a, 0, size // 2, size // 2))
        out.append(O.Truncate(a, 0))
        out.append(O.Truncate(a, nr))
        out.append(O.Punch(a, 0, nr))
        out.append(O.Punch(a, 1, 1))
        out.append(O.Write(a, 0, 1))
        out.append(O.Write(a, 1, 1))
        out.append(O.Write(a, 0, nr))
    for a in range(g.mms):
        for b in range(g.mms):
            if a != b:
                out.append(O.Fork(a, b))
    out += [O.Unmount(), O.Mount()]
    for pfn in range(min(g.pages, nr + 1)):
        out.append(O.MemoryFailure(pfn, 0, 1))
        out.append(O.MemoryFailure(pfn, 0, 0))
    return out


_IDS: dict[O.Op, tuple[tuple[int, int], ...]] = {}
_KIND = {"mm": 0, "vma": 1, "ino": 2, "h": 3}


def _ids(op: O.Op) -> tuple[tuple[int, int], ...]:
    """(kind index, value) of each symmetric identifier `op` names (cached per op)."""
    ids = _IDS.get(op)
    if ids is None:
        ids = _IDS[op] = tuple(
            (_KIND[_ID_DOMAINS[d]], getattr(op, f.name))
            for f, d in zip(fields(op), op.domains, strict=False)  # type: ignore[arg-type]
            if d in _ID_DOMAINS and _ID_DOMAINS[d] in SYMMETRIC)
    return ids


#: identifier kinds whose unnamed values are interchangeable.  Not inodes: XFS orders
#: two-inode operations by inode number (xfs_mmaplock_two_inodes_and_break_dax_layout(),
#: xfs_lock_two_inodes()), so "reflink 0 -> 1" and "reflink 1 -> 0" break the two
#: layouts in different orders, and a bug can hide in one order only.
SYMMETRIC = frozenset({"mm", "vma", "h"})


def first_use_ok(op: O.Op, used: tuple[int, ...]) -> tuple[int, ...] | None:
    """Canonical first use: an op may name identifier n of a symmetric kind only if n-1
    is used.  Returns the new `used` (count per kind: mm, vma, ino, h) or None."""
    ids = _ids(op)
    if not ids:
        return used
    u = list(used)
    for k, v in ids:
        if v > u[k]:
            return None
        if v == u[k]:
            u[k] += 1
    return tuple(u)


def ids_key(used: tuple[int, ...], g: Geometry) -> tuple[int, ...]:
    """The part of `used` that can change the future, for the state key: once a kind
    has named all but its last value, `first_use_ok` allows every value of it (n <=
    used), so counts past ``size - 1`` are one (in a world of one VMA slot, "slot 0
    named" and "not yet named" have the same futures)."""
    return (min(used[0], g.mms - 1), min(used[1], g.vmas - 1), used[2],
            min(used[3], g.handles - 1))


def tries(items: Sequence[tuple[tuple[int, ...], tuple]], alpha: Sequence[O.Op]
          ) -> Iterator[tuple[int, tuple[O.Op, ...], int, O.Op, tuple]]:
    """Every op canonical first use allows from each frontier item of the breadth-first
    search: (item number, the item's path as ops, op index, op, ids used after it)."""
    for n, (path, used) in enumerate(items):
        ops = tuple(alpha[i] for i in path)
        for j, op in enumerate(alpha):
            nu = first_use_ok(op, used)
            if nu is not None:
                yield n, ops, j, op, nu


def world_rejects(r: Runner, op: O.Op) -> bool:
    """True when the syscall layer turns `op` away before any kernel function runs (no
    such VMA or handle, the VMA slot or handle already taken, a mount when mounted, a
    file operation or unmount when unmounted, an unmount with VMAs left): both sides
    return the error and keep their state, so the edge leads back to its parent.
    Decided on the oracle, which the target agreed with up to here."""
    o = r.o
    t = type(op)
    if t is O.Fault or t is O.Pin or t is O.Get:
        vma = o.mms[op.mm].find_vma(op.vma, op.pgoff)
        return vma is None or (t is not O.Fault and op.h in o.handles)
    if t is O.Msync or t is O.Dontneed:
        return op.vma not in o.mms[op.mm].vmas
    if t is O.Munmap or t is O.Mprotect or t is O.Mremap:
        return (op.vma not in o.mms[op.mm].vmas
                or op.pgoff + op.pages > r.g.max_file_pages
                or (t is O.Mremap and op.to == op.vma))
    if t is O.Mmap:
        return not o.mounted or op.vma in o.mms[op.mm].vmas
    if t is O.WriteFrom:
        vmas = o.mms[op.mm].vmas.get(op.vma)
        return not o.mounted or not vmas or not buffer_readable(
            vmas, op.src_pgoff, op.pages, o.fs.size[vmas[0].ino])
    if t is O.PinPages:
        return (op.vma not in o.mms[op.mm].vmas or op.h + op.pages > r.g.handles
                or any(h in o.handles for h in range(op.h, op.h + op.pages)))
    if t is O.UnpinPages:
        return op.h + op.pages > r.g.handles or any(
            o.handles.get(h, (0, ""))[1] != "pin" for h in range(op.h, op.h + op.pages))
    if t is O.Unpin or t is O.Put:
        held = o.handles.get(op.h)
        return held is None or (held[1] == "pin") != (t is O.Unpin)
    if t is O.Fork:
        return op.child == op.mm or bool(o.mms[op.child].vmas)
    if t is O.Mount:
        return o.mounted
    if t is O.Unmount:
        return not o.mounted or any(m.vmas for m in o.mms)
    if (t is O.Truncate or t is O.Punch or t is O.Reflink or t is O.Write
            or t is O.Exchange or t is O.Swapext):
        return not o.mounted
    return False


def state_key(r: Runner) -> tuple:
    """Everything that can influence the future: oracle facts and target raw state."""
    o, t = r.o, r.t
    mms = tuple((tuple((s, tuple(map(tuple, vs))) for s, vs in sorted(m.vmas.items())),
                 tuple(sorted(m.pte.items())),
                 tuple(sorted(m.pmd.items())), tuple(sorted(m.tables)),
                 tuple(sorted(m.anon))) for m in t.mms)
    ent = tuple(tuple(sorted(xa.ties.items())) for xa in t.i_pages)
    marks = tuple((tuple(sorted(xa.dirty)), tuple(sorted(xa.towrite))) for xa in t.i_pages)
    pages = tuple((p.flags, p.compound_head, p._flags_1, p._nr_pages, p._refcount,
                   p._mapcount, p._large_mapcount, p._entire_mapcount, p._pincount,
                   p.mapping, p.index) for p in t.pages)
    ofacts = (tuple(o.head), tuple(o.forder), tuple(o.assoc), tuple(o.owner),
              tuple(sorted(o.shared)), tuple(o.page_assoc), tuple(o.page_owner),
              tuple(sorted(o.page_cow)), tuple(tuple(sorted(d)) for d in o.dirty))
    return (mms, ent, marks, pages, ofacts, t.fs.facts(), tuple(t.fs.meta_dirty),
            tuple(sorted(t.handles.items())), t.mounted, t.detached, t.holder_registered,
            tuple(t.nrpages))


@dataclass
class ExhaustResult:
    target: str
    geometry: Geometry
    depth: int  # every sequence up to this many ops was checked
    states: int
    edges: int
    seconds: float
    complete: bool  # False when stopped by the time limit inside `depth + 1`
    kinds: tuple[str, ...] = ()  # op kinds of the alphabet, () = every kind
    counterexamples: list[tuple[list[O.Op], Divergence]] = field(default_factory=list)

    def world(self) -> str:
        g = self.geometry
        ops = f", ops {'+'.join(self.kinds)}" if self.kinds else ""
        return (f"{g.pages} pfns, pmd_order={g.pmd_order}, {g.inodes} files x "
                f"{g.file_pages} pages, {g.mms} mm x {g.vmas} vmas, {g.handles} handles{ops}")

    def verdict(self) -> str:
        if self.counterexamples:
            ops, d = self.counterexamples[0]
            return (f"daxfuzz exhaust {self.target}: DIVERGENCE in {len(ops)} ops "
                    f"({d.signature()}); {len(self.counterexamples)} counterexample(s) "
                    f"within {max(len(o) for o, _ in self.counterexamples)} ops over "
                    f"<{self.world()}>, "
                    f"{self.states} states, {self.edges} edges, {self.seconds:.1f} s")
        return (f"daxfuzz exhaust {self.target}: no divergence in every sequence up to "
                f"{self.depth} ops over <{self.world()}>: {self.states} distinct states, "
                f"{self.edges} edges, {self.seconds:.1f} s")


def replay(r: Runner, path: Sequence[O.Op]) -> None:
    r.reset()
    for op in path:
        r.step(op)


def digest(key: tuple) -> bytes:
    """128 bits standing for a state key in the seen set: a key is kilobytes of tuples
    (depth 5 holds millions), a digest 16 bytes, and workers send back digests, not
    keys.  The key is serialized by `marshal` format 2 (C, no back-references: equal
    values give equal bytes, an interned string or a fresh one alike); a key holding
    anything marshal does not take (a tuple subclass) goes through pickle without its
    memo instead -- slower, and never equal to a marshalled one, which can only split
    a state in two, never merge two.  blake2b makes two different states sharing a
    digest a 2**-128 event, not a pattern of the data."""
    try:
        data = marshal.dumps(key, 2)
    except ValueError:
        buf = io.BytesIO()
        p = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
        p.fast = True  # no memo: the bytes depend on the values only
        p.dump(key)
        data = b"P" + buf.getvalue()
    return hashlib.blake2b(data, digest_size=16).digest()


#: a worker's world: (target, geometry, alphabet, Runner, Known, snapshots?, deadline)
_W: tuple | None = None


def _init_worker(target: str | type, g: Geometry, alpha: list[O.Op], snapshots: bool,
                 deadline: float = float("inf")) -> None:
    global _W
    _W = (target, g, alpha, Runner(target, g), Known(target, g), snapshots, deadline)


def _expand(items: Sequence[tuple[tuple[int, ...], tuple]]) -> list[tuple]:
    """Children of each frontier item (path as alphabet indices, used ids): a list of
    (item number, op index, used', digest or None, divergence or None).

    The item's state is rebuilt once by replaying its path, then copied
    (`daxfuzz.explore.snapshot`) before each further op -- or replayed again, without
    snapshots (the old way, kept to check the copies against).  An op that left the
    state key as it was (a self-loop: about a third of the edges, memory_failure of a
    free pfn, a punch of a hole...) needs no copy before the next op: the runner is in
    a state with the parent's key, which dedup already takes to have the parent's
    future.

    Past the search's deadline it returns what it has (a huge world's one state can
    take seconds): the search then stops on its own clock, incomplete."""
    assert _W is not None
    _target, _g, alpha, r, known, snapshots, deadline = _W
    out = []
    for n, (path, used) in enumerate(items):
        if time.perf_counter() > deadline:
            break
        ops = tuple(alpha[i] for i in path)
        replay(r, ops)
        kids = [(j, op, nu) for j, op in enumerate(alpha)
                if (nu := first_use_ok(op, used)) is not None and not world_rejects(r, op)]
        snap = snapshot(r) if snapshots and len(kids) > 1 else None
        parent = state_key(r) if snap is not None else None
        moved = False  # the runner is no longer in the parent's state
        for m, (j, op, nu) in enumerate(kids):
            if moved:
                if snap is not None:
                    restore(r, snap)
                else:
                    replay(r, ops)
            elif m:
                r.nsteps = len(ops)  # back at the parent, after a self-loop
            d = r.step(op)
            if d is not None and known.base_shows(ops + (op,), d):
                d = None  # a variant's base kernel diverges the same way: the base's bug;
                key = None  # the path ends here (the target left the oracle's state too)
                moved = True
            elif d is not None:
                key = None
                moved = True
            else:
                k = state_key(r)
                key = digest((k, ids_key(nu, _g)))
                moved = snap is None or k != parent
            out.append((n, j, nu, key, d))
    return out


def exhaust(target: str | type, g: Geometry = SMALL, max_ops: int = 4, *,
            seconds: float = 600.0, stop_at_first: bool = True, jobs: int = 1,
            progress: Callable[[str], None] | None = None,
            alpha: list[O.Op] | None = None, kinds: Iterable[str] = (),
            snapshots: bool = True) -> ExhaustResult:
    """Breadth-first over states up to `max_ops`; see the module docstring.  `kinds`
    narrows the alphabet to those op kinds (a smaller scope that reaches deeper);
    `snapshots=False` replays every edge's path from scratch (slower; the same search)."""
    t0 = time.perf_counter()
    alpha = alphabet(g) if alpha is None else alpha
    want = set(kinds)
    if want - set(O.BY_NAME):
        raise ValueError(f"exhaust: unknown op kind(s) {sorted(want - set(O.BY_NAME))}")
    kinds = tuple(k for k in O.BY_NAME if k in want)
    if kinds:
        alpha = [op for op in alpha if op.name in kinds]
    name = target if isinstance(target, str) else target.name
    res = ExhaustResult(name, g, 0, 1, 0, 0.0, True, kinds)
    init = (target, g, alpha, snapshots, t0 + seconds)
    pool = None
    if jobs > 1:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(jobs, _init_worker, init)
    else:
        _init_worker(*init)

    def found(path: tuple[int, ...], d: object) -> None:
        res.counterexamples.append(([alpha[i] for i in path], d))  # type: ignore[arg-type]

    try:
        s = breadth_first(digest((state_key(Runner(target, g)), NO_IDS)), _expand, max_ops,
                          seconds, on_payload=found, jobs=jobs,
                          pool_expand=(lambda cs: pool.imap(_expand, cs)) if pool else None,
                          stop=(lambda: bool(res.counterexamples)) if stop_at_first else None,
                          progress=progress, deadline=t0 + seconds)
    finally:
        if pool:
            pool.terminate()
    res.states, res.edges, res.depth, res.complete = s.states, s.edges, s.depth, s.complete
    res.seconds = time.perf_counter() - t0
    res.counterexamples.sort(key=lambda c: len(c[0]))
    return res


# ------------------------------------------------------------------ target diff ----
def observe(r: Runner, op: O.Op) -> tuple[str, tuple[str, ...], str | None]:
    """What one step shows on one target: result, warnings, and how it fares against
    the oracle through its own convention (None: agrees; else the divergence field)."""
    d = r.step(op)
    return r.last_result, tuple(r.t.events), (d.field if d else None)


def _norm(v: object) -> str:
    """Group key text: numbers blurred so the same behaviour on other PFNs groups."""
    import re

    return re.sub(r"\d+", "N", str(v))


@dataclass
class DiffGroup:
    key: tuple[str, str, str, str]  # (first differing op kind, component, A, B)
    count: int
    shortest: list[O.Op]
    geometry: Geometry
    step: int
    a_obs: tuple
    b_obs: tuple


def first_difference(a: str | type, b: str | type, g: Geometry, ops: Sequence[O.Op]
                     ) -> tuple[int, tuple, tuple] | None:
    """(step, obs A, obs B) where the two targets first behave differently, or None."""
    ra, rb = Runner(a, g), Runner(b, g)
    for i, op in enumerate(ops, 1):
        oa, ob = observe(ra, op), observe(rb, op)
        if oa != ob:
            return i, oa, ob
        if oa[2] is not None:  # both diverged the same way: past here means little
            return None
    return None


def _group_key(op: O.Op, oa: tuple, ob: tuple) -> tuple[str, str, str, str]:
    for comp, x, y in (("result", oa[0], ob[0]), ("warning", oa[1], ob[1]),
                       ("agreement", oa[2], ob[2])):
        if x != y:
            return (op.name, comp, _norm(x), _norm(y))
    raise AssertionError("observations differ but no component does")


class TargetDiff:
    """Accumulates the sequences on which two targets differ, grouped."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.groups: dict[tuple, DiffGroup] = {}
        self.sequences = 0

    def add(self, g: Geometry, ops: Sequence[O.Op]) -> None:
        self.sequences += 1
        fd = first_difference(self.a, self.b, g, ops)
        if fd is None:
            return
        step, oa, ob = fd
        prefix = list(ops[:step])
        key = _group_key(prefix[-1], oa, ob)
        grp = self.groups.get(key)
        if grp is None:
            self.groups[key] = DiffGroup(key, 1, prefix, g, step, oa, ob)
        else:
            grp.count += 1
            if len(prefix) < len(grp.shortest):
                grp.shortest, grp.geometry, grp.step = prefix, g, step
                grp.a_obs, grp.b_obs = oa, ob

    def add_exhaustive(self, g: Geometry, max_ops: int, seconds: float,
                       progress: Callable[[str], None] | None = None) -> int:
        """Every sequence up to `max_ops` over `g`, breadth-first over the *pair* of
        states (so a pair reached before is not expanded again).  Returns edges."""
        alpha = alphabet(g)
        ra, rb = Runner(self.a, g), Runner(self.b, g)

        def expand(items: Sequence[tuple[tuple[int, ...], tuple]]) -> list[tuple]:
            out: list[tuple] = []
            for n, ops, j, op, nu in tries(items, alpha):
                replay(ra, ops)
                replay(rb, ops)
                oa, ob = observe(ra, op), observe(rb, op)
                self.sequences += 1
                if oa != ob:
                    out.append((n, j, nu, None, (oa, ob)))
                elif oa[2] is not None:  # both diverge from the oracle alike: stop
                    out.append((n, j, nu, None, None))
                else:
                    out.append((n, j, nu, digest((state_key(ra), state_key(rb),
                                                         ids_key(nu, g))), None))
            return out

        def record(path: tuple[int, ...], diff: object) -> None:
            oa, ob = diff  # type: ignore[misc]
            self._record(g, [alpha[i] for i in path], oa, ob)

        s = breadth_first(digest((state_key(ra), state_key(rb), NO_IDS)), expand, max_ops,
                          seconds, on_payload=record, label="diff: depth",
                          progress=progress and (lambda m: progress(
                              f"{m}, {len(self.groups)} groups")))
        if not s.complete and progress:
            progress(f"diff: time limit in depth {s.depth + 1}")
        return s.edges

    def _record(self, g: Geometry, seq: list[O.Op], oa: tuple, ob: tuple) -> None:
        key = _group_key(seq[-1], oa, ob)
        grp = self.groups.get(key)
        if grp is None:
            self.groups[key] = DiffGroup(key, 1, seq, g, len(seq), oa, ob)
        else:
            grp.count += 1
            if len(seq) < len(grp.shortest):
                grp.shortest, grp.geometry, grp.step, grp.a_obs, grp.b_obs = (
                    seq, g, len(seq), oa, ob)

    def report(self) -> str:
        lines = [f"daxfuzz diff {self.a} -> {self.b}: {len(self.groups)} behaviour groups "
                 f"over {self.sequences} sequences"]
        for key, grp in sorted(self.groups.items(), key=lambda kv: (len(kv[1].shortest),
                                                                     kv[0])):
            op, comp, va, vb = key
            lines.append("")
            lines.append(f"## {op}: {comp} differs  ({grp.count} sequences; shortest "
                         f"{len(grp.shortest)} ops)")
            lines.append(f"   {self.a}: result={grp.a_obs[0]!r} warnings={list(grp.a_obs[1])} "
                         f"vs oracle={grp.a_obs[2] or 'agrees'}")
            lines.append(f"   {self.b}: result={grp.b_obs[0]!r} warnings={list(grp.b_obs[1])} "
                         f"vs oracle={grp.b_obs[2] or 'agrees'}")
            if grp.geometry != SMALL:
                lines.append(f"   geometry: {grp.geometry.text()}")
            else:
                lines.append(f"   geometry: {grp.geometry.text()}  (exhaustive world)")
            for o in grp.shortest:
                lines.append(f"     {o}")
        return "\n".join(lines)
