"""Reduce a kernel-fuzz disagreement with the real kernel as the predicate.

A disagreement is one *kind* (:func:`primary_kind`): for a kernel finding the site of
the first kernel report the port does not predict (``kernel BUG at fs/inode.c:777``,
``WARNING at fs/dax.c:452 dax_disassociate_entry``, ``(clean-up)`` when it came after
the trace), else a hang, else the forbidden data loss (``fault: kernel SIGBUS
[forbidden]``); for a model gap the first step where the kernel's result differs from
the port's (op kind, both results) or where the port warns and the kernel does not,
else (every result agreeing) the first step whose raw struct pages differ from the
port's (``raw:OP:FIELDS``, guest/pages.py ``raw_kind``; those rounds run with the page
reader).  A candidate trace is *interesting* when its guest verdict
(:func:`kfuzz.judge_pages`) is of the same class and shows that kind.

Rounds, one guest boot each (``run_programs(reuse=True)``; a candidate that made the
kernel report anything costs a fresh guest for the rest):

* the candidates (:func:`round_candidates`) are the removal of each of ``n`` chunks of
  the current trace (delta debugging's complements at granularity ``n``), of each
  single op, and -- when the previous round found several interesting removals -- of
  all of them at once; shortest first, none seen before;
* the port (7.2's, or legacy's for 6.1) and the translator pre-filter them
  (:func:`guest_round`): a candidate with a step the guest cannot express, or where
  the port predicts a kernel warning the original did not (it would end the boot for
  nothing), is not run;
* the shortest interesting candidate becomes the trace; a round stops booting guests
  once one is found (everything not run yet is longer); ``n`` stays after a chunk
  removal and doubles (up to the length) after a single-op one;
* no interesting candidate: every single-op removal failed, the trace is 1-minimal.

Removing ops keeps a trace well-formed: every op is defined on every state (a ``put``
of a handle no ``get`` took is the model's and the helper's EINVAL, as in
:mod:`daxfuzz.core.reduce`), so the candidates need no repair.  The budget (a
``time.monotonic()`` deadline) is checked before each round, whose candidates are cut
to what the measured seconds per candidate let fit; a round in flight finishes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from daxfuzz.guest.kfuzz import (
    KERNEL_FINDING,
    MODEL_GAP,
    TARGET,
    Case,
    Verdict,
    judge_pages,
    predict,
    primary_kind,
    report_site,
)
from daxfuzz.guest.results import GuestTrace
from daxfuzz.guest.translate import translate, unexpressible
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import Trace, write_trace_atomic

Ops = tuple[O.Op, ...]
#: one round: the candidates -> (interesting or not, per candidate; guest boots used)
RoundRunner = Callable[[list[Ops]], tuple[list[bool], int]]


#: the class of a kernel report the port predicts too (a known 7.2 bug): `kernel
#: reduce` of a corpus divergence keeps the report site, whatever the port says
REPORTED = "kernel report"


def shows(v: Verdict, cls: str, kind: str, gt: GuestTrace | None = None) -> bool:
    """Whether verdict `v` (of guest trace `gt`) is the same class of disagreement, of
    kind `kind` (class REPORTED: whether the kernel reported at site `kind`)."""
    if cls == REPORTED:
        return gt is not None and any(report_site(x) == kind for _s, x in gt.kernel)
    return v.cls == cls and kind in v.kinds


# ------------------------------------------------------------------ rounds ---------
def chunk_removals(ops: Ops, n: int) -> list[Ops]:
    """`ops` without each of its `n` (nearly) equal chunks."""
    size = -(-len(ops) // max(1, min(n, len(ops))))
    return [ops[:i] + ops[i + size:] for i in range(0, len(ops), size)]


def round_candidates(ops: Ops, n: int, union: Ops | None = None) -> list[Ops]:
    """One round's candidates: `union` (all of the last round's interesting removals at
    once), the chunk removals at granularity `n`, the single-op removals; shortest
    first (stable), no duplicates, none empty."""
    out = ([union] if union is not None else []) + chunk_removals(ops, n) + [
        ops[:i] + ops[i + 1:] for i in range(len(ops))]
    seen: set[Ops] = set()
    uniq = []
    for c in out:
        if c and c not in seen and c != ops:
            seen.add(c)
            uniq.append(c)
    return sorted(uniq, key=len)


@dataclass
class Reduction:
    ops: Ops  # the shortest interesting trace reached
    original: int  # its length before
    rounds: int = 0
    boots: int = 0
    candidates: int = 0  # run in a guest (pre-filtered ones not counted)
    seconds: float = 0.0
    complete: bool = False  # True: 1-minimal (no single op can go)
    history: list[int] = field(default_factory=list)  # length after each round


def reduce_in_rounds(ops: Sequence[O.Op], run_round: RoundRunner, *,
                     deadline: float | None = None, granularity: int = 2,
                     seconds_per_candidate: float = 0.0,
                     log: Callable[[str], None] = lambda s: None,
                     improved: Callable[[Reduction], None] = lambda r: None) -> Reduction:
    """Reduce `ops` (interesting already) round by round (module docstring).

    `seconds_per_candidate` is a first estimate for cutting a round to the `deadline`
    (then measured); `improved` is called whenever the trace got shorter (to store it
    at once)."""
    t0 = time.monotonic()
    cur: Ops = tuple(ops)
    red = Reduction(cur, len(cur))
    seen: dict[Ops, bool] = {cur: True}
    n = max(2, granularity)
    union: Ops | None = None
    spent = 0.0  # seconds in run_round
    while len(cur) > 1:
        full = [c for c in round_candidates(cur, n, union) if c not in seen]
        if not full:
            red.complete = True
            break
        cands = full
        if deadline is not None:
            left = deadline - time.monotonic()
            per = spent / red.candidates if red.candidates else seconds_per_candidate
            if left <= 0 or (per and left < per):
                break
            if per:
                cands = full[:max(1, int(left / per))]
        red.rounds += 1
        log(f"round {red.rounds}: {len(cur)} ops, {len(cands)} candidate(s), n={n}")
        tr = time.monotonic()
        verdicts, boots = run_round(cands)
        spent += time.monotonic() - tr
        red.boots += boots
        red.candidates += len(cands)
        for c, ok in zip(cands, verdicts, strict=True):
            seen[c] = ok
        hits = [c for c, ok in zip(cands, verdicts, strict=True) if ok]
        red.seconds = time.monotonic() - t0
        if not hits:
            union = None
            log(f"round {red.rounds}: none of {len(cands)} interesting "
                f"({red.boots} boots, {red.seconds:.0f} s)")
            if len(cands) == len(full):  # every single-op removal failed: 1-minimal
                red.complete = True
                break
            continue  # the budget cut the round: the rest next round, if it fits
        best = min(hits, key=len)
        u = set().union(*(_removed(cur, c) for c in hits))
        union = tuple(op for i, op in enumerate(cur) if i not in u) if len(hits) > 1 else None
        if union is not None and (not union or union in seen or len(union) >= len(best)):
            union = None
        n = n if len(cur) - len(best) > 1 else min(2 * n, len(best))
        cur = red.ops = best
        red.history.append(len(cur))
        log(f"round {red.rounds}: {len(hits)} of {len(cands)} interesting, now {len(cur)} "
            f"ops ({red.boots} boots, {red.seconds:.0f} s)")
        improved(red)
    red.seconds = time.monotonic() - t0
    red.complete = red.complete or len(cur) <= 1
    return red


def _removed(ops: Ops, sub: Ops) -> set[int]:
    """Indices of `ops` a candidate `sub` (a subsequence of it) left out, greedily."""
    out, j = set(), 0
    for i, op in enumerate(ops):
        if j < len(sub) and sub[j] == op:
            j += 1
        else:
            out.add(i)
    return out


# ------------------------------------------------------------------ the guest ------
def candidate_case(name: str, g: Geometry, ops: Sequence[O.Op],
                   target: str = TARGET) -> Case | None:
    """The case for a candidate, predicted by `target`'s port (no teardown appended: the
    candidate keeps what is left of the original's), or None when a step is not
    expressible in the guest."""
    tr = Trace(ops=tuple(ops), target=target, geometry=g)
    if unexpressible(tr):
        return None
    return Case(name, tr, predict(g, list(ops), target=target), translate(tr, name),
                len(ops))


@dataclass
class GuestRound:
    """A :data:`RoundRunner` on the guest: pre-filters, runs one batch, judges.  Keeps
    the last interesting case with its guest trace and console (the finding's files)."""

    manifest: dict
    g: Geometry
    cls: str
    kind: str
    events: frozenset[str] = frozenset()  # report kinds the original's port predicted
    run_opts: dict = field(default_factory=dict)
    runner: Callable | None = None  # run_programs (tests: a fake)
    log: Callable[[str], None] = lambda s: None
    prefix: str = "r"
    deadline: float | None = None  # no further boot in a round after it
    raw: object | None = None  # a pages.RawCheck: compare raw struct pages (raw kinds)
    target: str = TARGET  # the port predicting the kernel (legacy for 6.1)
    n: int = 0
    prefiltered: int = 0
    best: tuple[Case, GuestTrace, Verdict, str] | None = None  # case, trace, verdict, console

    def __call__(self, cands: list[Ops]) -> tuple[list[bool], int]:
        from daxfuzz.guest.kfuzz import console_of
        from daxfuzz.guest.qemu import run_programs

        cases: list[Case | None] = []
        for ops in cands:
            self.n += 1
            c = candidate_case(f"{self.prefix}{self.n:05d}", self.g, ops, self.target)
            if c is not None and ("exception" in c.pred.port or not {
                    e[0] for e in c.pred.events if e} <= self.events):
                c = None
            self.prefiltered += c is None
            cases.append(c)
        torun = [c for c in cases if c is not None]
        if not torun:
            return [False] * len(cands), 0
        found: dict[str, bool] = {}

        def interesting(name: str, gt: GuestTrace | None) -> bool:
            if name not in found:
                c = next(x for x in torun if x.name == name)
                found[name] = gt is not None and shows(self.judge(c, gt), self.cls,
                                                       self.kind, gt)
            return found[name]

        def until(traces: dict[str, GuestTrace]) -> bool:  # sorted: the rest is longer
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return True
            return any(interesting(n, gt) for n, gt in traces.items()
                       if any(c.name == n for c in torun))

        def glog(s: str) -> None:
            if "rebooting" in s or s.startswith("booting"):
                self.log(s.strip())

        run = self.runner or run_programs
        res = run(self.manifest, [(c.name, self.text(c)) for c in torun], reuse=True,
                  log=glog, until=until, **self.run_opts,
                  last_in_boot={c.name for c in torun if c.pred.leaks})
        out = []
        for c in cases:
            if c is None:
                out.append(False)
                continue
            gt = res.traces.get(c.name)
            ok = interesting(c.name, gt)
            out.append(ok)
            if ok and (self.best is None or len(c.ops) < len(self.best[0].ops)):
                self.best = (c, gt, self.judge(c, gt), console_of(res.console, c.name))
        return out, res.boots

    def text(self, c: Case) -> str:
        """The candidate's program, with the page reader's lines for a raw kind."""
        if self.raw is None:
            return c.program.text
        return self.raw.text(c.name, c.trace, c.program.text)  # type: ignore[attr-defined]

    def judge(self, c: Case, gt: GuestTrace | None) -> Verdict:
        return judge_pages(c, gt, self.raw)[0]


def reduce_finding(manifest: dict, trace_path: str, case: Case, v: Verdict, *,
                   deadline: float, run_opts: dict | None = None,
                   runner: Callable | None = None, seconds_per_candidate: float = 0.0,
                   output: str = "", kind: str = "", raw=None,
                   log: Callable[[str], None] = lambda s: None) -> dict:
    """Reduce the trace at `trace_path` (`case` and `v`: its run and verdict) on the
    guest until `deadline`, keeping `kind` (default: :func:`primary_kind`).  The reduced
    trace goes to `output` (default: beside it, STEM.reduced.trace), rewritten after
    every round that shortened it; when the trace is in a finding folder (kfinding.py),
    its console, C file, README and finding.json follow at the end.  A raw kind
    (``raw:...``) is judged with the raw struct pages: `raw` (a pages.RawCheck; default
    one for the manifest's kernel).  Returns the figures (the summary's ``reductions``
    entry)."""
    from daxfuzz.guest import kfinding
    from daxfuzz.vocab.trace import read_trace

    d = os.path.dirname(trace_path)
    stem = os.path.basename(trace_path)
    stem = stem[:-len(".trace")] if stem.endswith(".trace") else stem
    out = output or os.path.join(d, f"{stem}.reduced.trace")
    original = read_trace(trace_path)
    kind = kind or primary_kind(v)
    fig = {"name": case.name, "class": v.cls, "kind": kind, "before": len(case.ops),
           "after": len(case.ops), "rounds": 0, "boots": 0, "seconds": 0.0,
           "complete": False, "path": ""}
    if not kind:
        fig["why"] = "no kind of disagreement to keep"
        return fig
    target = case.trace.target or TARGET
    if kind.startswith("raw:") and raw is None:
        from daxfuzz.guest.kernels import raw_check

        raw = raw_check(manifest, target)
    gr = GuestRound(manifest, case.trace.geometry, v.cls, kind,
                    frozenset(e[0] for e in case.pred.events if e), dict(run_opts or {}),
                    runner, log, prefix=f"{stem[-12:]}-r", deadline=deadline,
                    raw=raw if kind.startswith("raw:") else None, target=target)

    def improved(red: Reduction) -> None:
        if gr.best is not None:
            write_trace_atomic(out, kfinding.reduced_trace(gr.best[0], original, red, kind))
            fig["path"] = out

    red = reduce_in_rounds(case.ops, gr, deadline=deadline, log=log, improved=improved,
                           seconds_per_candidate=seconds_per_candidate)
    fig.update(after=len(red.ops), rounds=red.rounds, boots=red.boots,
               seconds=round(red.seconds, 1), complete=red.complete,
               candidates=red.candidates, prefiltered=gr.prefiltered)
    info = kfinding.read_info(d)
    if gr.best is None:
        fig["why"] = "no shorter trace shows it" if red.rounds else "no time for a round"
        if info is not None:
            info.reduction = dict(fig)
            kfinding.write_info(d, info)
        return fig
    c, gt, v2, console = gr.best
    tr = kfinding.reduced_trace(c, original, red, kind)
    write_trace_atomic(out, tr)
    fig["path"] = out
    if info is not None:
        kfinding.finish_reduced(d, info, tr, out, c, gt, v2, console, fig)
    return fig


def reduce_file(manifest: dict, path: str, *, seconds: float, output: str = "",
                run_opts: dict | None = None, runner: Callable | None = None, raw=None,
                target: str = TARGET,
                log: Callable[[str], None] = lambda s: None) -> dict:
    """`daxfuzz kernel reduce TRACE`: run the trace once on the guest (its kind of
    disagreement; for a trace that agrees with the port but made the kernel report --
    a known 7.2 bug -- the report's site, class REPORTED), then reduce it for up to
    `seconds` (see :func:`reduce_finding`).  The first run reads the raw struct pages
    too (`raw`, a pages.RawCheck; default one for the manifest's kernel), so a trace
    whose only difference is there has a kind (``raw:OP:FIELDS``).  The figures get
    ``verdict`` (and ``why`` when there is nothing to reduce).  Raises InputError for a
    trace the guest cannot express."""
    from daxfuzz.errors import InputError
    from daxfuzz.guest.kfuzz import console_of
    from daxfuzz.guest.qemu import run_programs
    from daxfuzz.vocab.trace import read_trace

    t0 = time.monotonic()
    tr = read_trace(path)
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in
                   os.path.basename(path).rsplit(".", 1)[0])[:40] or "trace"
    case = candidate_case(name, tr.geometry, tr.ops, target)
    if case is None:
        i, why = min(unexpressible(tr, target).items())
        bad = f"step {i} ({tr.ops[i - 1]}: {why})"
        raise InputError(f"the guest cannot express {bad}: nothing to reduce on it",
                         path=path)
    if raw is None:
        from daxfuzz.guest.kernels import raw_check

        raw = raw_check(manifest, target)
    log(f"running {path} as it is ({len(tr.ops)} ops)")
    text = raw.text(case.name, case.trace, case.program.text)
    res = (runner or run_programs)(manifest, [(case.name, text)], reuse=True,
                                   log=lambda s: None, **dict(run_opts or {}))
    gt = res.traces.get(case.name)
    v = judge_pages(case, gt, raw)[0]
    kind = primary_kind(v) if v.cls in (KERNEL_FINDING, MODEL_GAP) else ""
    if kind == "hang" and gt is not None and any(report_site(x) for _s, x in gt.kernel):
        kind = ""  # the guest hung after a report the port predicts (a BUG kills the
        # helper in its syscall): the report is the finding, the hang its consequence
    if not kind and gt is not None:  # a report the port predicts too: keep its site
        kind = next((report_site(x) for _s, x in gt.kernel if report_site(x)), "")
        if kind:
            v.cls = REPORTED
    base = {"name": name, "class": v.cls, "kind": kind, "before": len(tr.ops),
            "after": len(tr.ops), "rounds": 0, "boots": res.boots, "seconds": 0.0,
            "complete": False, "path": "", "verdict": v.notes,
            "console": console_of(res.console, case.name)}
    if not kind:
        base["why"] = (f"the kernel {'agrees with' if v.cls == 'agree' else 'ran it as'} "
                       f"the port ({v.cls}): no disagreement to keep")
        return base
    log(f"{v.cls}: {kind}; reducing for up to {seconds:.0f} s")
    fig = reduce_finding(manifest, path, case, v, deadline=t0 + seconds, run_opts=run_opts,
                         runner=runner, output=output, log=log, kind=kind, raw=raw,
                         seconds_per_candidate=res.seconds / 2)
    fig.update(boots=fig["boots"] + res.boots, seconds=round(time.monotonic() - t0, 1),
               verdict=v.notes)
    return fig
