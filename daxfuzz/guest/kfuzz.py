"""`daxfuzz kernel fuzz`: a conformance campaign on the real kernel (Linux 7.2 under QEMU).

Op sequences come from the random engine's generator (random bytes through
:class:`fuzz.codec.Codec`, 4..30 ops).  A ``memory_failure`` takes the ``holder`` of the
case's first one (the filesystem decides the path for a whole program: rmapbt=1 for the
holder's, rmapbt=0 for the generic one), its ``pfn`` one that ``mm`` maps (``pfn``
itself if mapped, else the ``pfn % n``-th of them), and dropped where the guest cannot
express it (``mm`` maps nothing; see translate.py "Memory failure").  Each becomes a :class:`Case`:

* a *teardown* is appended -- release every GUP handle the model holds, munmap every
  VMA slot that maps something, unmount -- so every inode is evicted inside the trace,
  where the model checks it (``clear_inode``'s nrpages BUG), not in the guest's clean-up;
* the 7.2 port (``kdax``, target ``7.2``) and the oracle predict every step;
* when the port predicts a kernel WARN/BUG (a known 7.2 bug: the swapext warning, the
  CoW-under-PMD nrpages BUG...), the ops are cut to the longest prefix whose prefix +
  teardown the port runs clean (``cut``): a warning taints the guest for the rest of
  its boot, so each would cost a reboot (``--run-known`` runs them uncut).

Cases run in batches, ONE guest boot per batch (``run_programs(reuse=True)``: one mkfs
per boot; each trace creates its files anew -- the previous trace's were unlinked --
so every trace starts from the model's initial world).  A guest that prints a
WARNING/BUG/Oops, hangs or dies is replaced by a fresh one for the rest of the batch.

Each step's kernel outcome (``ok``, ``blocked``, ``SIGBUS``, an errno) is compared with
the 7.2 port's result, and the kernel's log lines with the port's warnings.  A trace
with a disagreement is one of (:func:`judge`):

``kernel finding``  the kernel logged a WARNING/BUG/Oops/KASAN line the port does not
                    predict at that step (or in the clean-up after the trace), hung, or
                    gave a result the model forbids: data lost (SIGBUS, EIO) where a
                    correct kernel (the oracle) and the port succeed;
``model gap``       the port predicts X, the kernel does Y, and logged nothing;
``harness``         the helper failed (daxop exited non-zero without a kernel report,
                    or the set-up failed twice): daxfuzz's problem, not a verdict.

Every disagreement is stored in its folder ``OUT/<class>/NAME/`` (daxfuzz/guest/
kfinding.py: ``NAME.trace`` first, the differing steps in its description; a kernel
finding's console cut to it and C reproducer; README.md), every file by temp file +
rename.  With ``reduce_seconds`` the first finding of each kind (kreduce.primary_kind)
is then reduced with the guest as the predicate (daxfuzz/guest/kreduce.py), within the
campaign's time: ``NAME.reduced.trace`` beside it.  ``OUT/summary.json`` is rewritten
after every batch and reduction.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from daxfuzz.guest.results import GuestTrace, console_lines, oracle_outcome, spun_at
from daxfuzz.guest.translate import (
    Program,
    mapped_pfns,
    memory_failure_lines,
    op_lines,
    step_tracking_workers,
    translate,
)
from daxfuzz.textio import write_text_atomic
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import Trace
from fuzz.codec import DEFAULT_WEIGHTS, Codec

TARGET = "7.2"
KERNEL_OF = {"7.2": "7.2", "legacy": "6.1"}  # the kernel a target predicts, for reports
KERNEL_FINDING, MODEL_GAP, HARNESS = "kernel finding", "model gap", "harness"
CLASSES = (KERNEL_FINDING, MODEL_GAP, HARNESS)
#: kernel results that lose data: a kernel giving one the model does not is a finding
DATA_LOSS = ("SIGBUS", "EIO", "EUCLEAN", "EFSCORRUPTED")
MIN_OPS, MAX_OPS = 4, 30


# ------------------------------------------------------------------ the model side --
@dataclass
class Prediction:
    oracle: list[str]  # a correct kernel's result per step
    port: list[str]  # the 7.2 port's
    events: list[tuple[str, ...]]  # the port's WARN/BUG events per step
    divergence: str = ""  # the model's first divergence signature ('' = agree)
    leaks: str = ""  # a struct page the port leaves behind after the program (leaked_page)


def leaked_page(t) -> str:
    """The first struct page the port `t` leaves in a state no fresh kernel's page is in
    (mapping, index/share or refcount not idle), described; '' when none.  The guest
    reuses a boot for many programs and the pmem's struct pages outlive each program's
    files: 6.1's ``page->index-- > 0`` keeps PAGE_MAPPING_DAX_COW on the freed page of
    a CoW copy, and the next program that faults the block in warns at fs/dax.c:380
    (``dax_associate_entry(): WARN_ON_ONCE(page->mapping)``), which no port of that
    program predicts.  Such a program ends its boot (qemu.run_programs'
    ``last_in_boot``)."""
    idle = t.idle_refcount
    for p in t.pages:
        if p.mapping is not None or p.index or p._refcount != idle:
            return (f"pfn {p.pfn}: mapping {p.mapping}, index {p.index}, "
                    f"refcount {p._refcount}")
    return ""


def predict(g: Geometry, ops: list[O.Op], runner=None, target: str = TARGET) -> Prediction:
    """Each step's oracle and port results and the port's events; then, past the ops,
    the guest's clean-up (:func:`teardown`) on the port, for :func:`leaked_page`."""
    from daxfuzz.core.runner import Runner

    r = runner or Runner(target, g)
    r.reset()
    p = Prediction([], [], [])
    for op in ops:
        d = r.step(op)
        p.port.append(r.last_result)
        p.events.append(tuple(getattr(r.t, "events", ())))
        p.oracle.append(str(d.expected) if d is not None and d.field == "result"
                        else r.last_result)
        if d is not None and not p.divergence:
            p.divergence = d.signature()
    try:
        for op in teardown(r.o):
            r.step(op)
        p.leaks = leaked_page(r.t)
    except Exception:  # noqa: BLE001 - a port that cannot even clean up: assume the worst
        p.leaks = "the port raised in the clean-up"
    return p


def teardown(oracle) -> list[O.Op]:
    """What a process exiting and an unmount do, as ops, from the oracle's state: release
    every handle, munmap every slot that maps something, unmount."""
    out: list[O.Op] = []
    for h, (_pfn, kind) in sorted(oracle.handles.items()):
        out.append(O.Unpin(h) if kind == "pin" else O.Put(h))
    for mm, st in enumerate(oracle.mms):
        for vma in sorted(st.vmas):
            if st.vmas[vma]:
                out.append(O.Munmap(mm, vma))
    if oracle.mounted:
        out.append(O.Unmount())
    return out


def _with_teardown(g: Geometry, ops: list[O.Op], runner) -> tuple[list[O.Op], Prediction]:
    runner.reset()
    for op in ops:
        runner.step(op)
    full = list(ops) + teardown(runner.o)
    return full, predict(g, full, runner)


@dataclass
class Case:
    name: str
    trace: Trace
    pred: Prediction
    program: Program
    generated: int  # ops the generator gave
    cut: str = ""  # why the ops were cut ('' = not cut)
    tries: int = 0  # times it was sent to a guest
    kept: int = 0  # generated ops it runs, before the teardown (0: not generated)

    @property
    def ops(self) -> tuple[O.Op, ...]:
        return self.trace.ops


def make_case(name: str, g: Geometry, ops: list[O.Op], *, run_known: bool = False,
              runner=None, target: str = TARGET) -> Case | None:
    """The case for generated `ops` (see the module docstring), or None when nothing of
    them is left to run."""
    from daxfuzz.core.runner import Runner

    runner = runner or Runner(target, g)
    n0 = len(ops)
    cut = ""
    kept: list[O.Op] = []
    workers: set[int] = set()  # mms a fork gave a guest process of their own
    rmapbt: bool | None = None  # the program's filesystem: its first memory_failure's
    runner.reset()
    for i, op in enumerate(ops):
        if isinstance(op, O.MemoryFailure):
            # the filesystem decides the path for the whole program (translate.py,
            # "Memory failure"): the first memory_failure's holder holds for the rest;
            # MADV_HWPOISON poisons a page current maps: the generated pfn picks one of
            # those (as the Hypothesis machine draws from live pfns); none mapped, no op
            live = sorted(mapped_pfns(runner.t, g, op.mm))
            if not live:
                continue
            rmap = bool(op.holder) if rmapbt is None else rmapbt
            op = O.MemoryFailure(op.pfn if op.pfn in live else live[op.pfn % len(live)],
                                 op.mm, int(rmap))
            if memory_failure_lines(runner.t, g, op, workers, rmap)[1] is not None:
                continue  # e.g. another model mm of the director maps the file there
            rmapbt = rmap
        elif op_lines(g, op)[1] is not None:  # the guest cannot express it: stop before it
            cut = f"step {i + 1} ({op.name}) not expressible"
            break
        step_tracking_workers(runner, op, workers)
        kept.append(op)
    ops = kept
    full, pred = _with_teardown(g, ops, runner)
    if not run_known:
        k = len(ops)
        first = next((f"step {i + 1} ({full[i].name}): {e[0]}"
                      for i, e in enumerate(pred.events) if e), "")
        while k > 0 and (any(pred.events) or "exception" in pred.port):
            k -= 1
            full, pred = _with_teardown(g, ops[:k], runner)
        if k < len(ops):
            cut = f"the port predicts {first}; cut to {k} of {n0} ops"
            ops = ops[:k]
        if not ops:
            return None
    tr = Trace(ops=tuple(full), target=target, geometry=g)
    return Case(name, tr, pred, translate(tr, name), n0, cut, kept=len(ops))


class Generator:
    """The random engine's op sequences (random bytes through the codec)."""

    def __init__(self, g: Geometry = DEFAULT, seed: int = 0, *, prefix: str = "",
                 run_known: bool = False, target: str = TARGET,
                 no_ops: tuple[str, ...] = ()) -> None:
        from daxfuzz.core.runner import Runner

        self.g = g
        self.rng = random.Random(seed)
        w = dict(DEFAULT_WEIGHTS)
        for name in no_ops:  # nor on this kernel (kernels.Kernel.unexpressible)
            w[name] = 0
        self.codec = Codec(g, w)
        self.target = target
        self.runner = Runner(target, g)
        self.prefix = prefix or f"s{seed}-"
        self.run_known = run_known
        self.n = 0
        self.cut = 0  # cases cut before a predicted WARN/BUG
        self.dropped = 0  # cut to nothing

    def ops(self) -> list[O.Op]:
        while True:
            k = self.rng.randint(MIN_OPS, MAX_OPS)
            ops = self.codec.decode(self.rng.randbytes(k * 6), max_ops=k)
            if len(ops) >= MIN_OPS:
                return ops

    def next(self) -> Case:
        while True:
            self.n += 1
            c = make_case(f"{self.prefix}{self.n:06d}", self.g, self.ops(),
                          run_known=self.run_known, runner=self.runner,
                          target=self.target)
            if c is None:
                self.dropped += 1
                continue
            if c.cut.startswith("the port"):
                self.cut += 1
            return c


# ------------------------------------------------------------------ verdicts ------
@dataclass
class Verdict:
    cls: str  # agree, or one of CLASSES, or 'rerun' (never ran / set-up failed)
    compared: int = 0  # steps with a kernel outcome
    agreed: int = 0
    notes: list[str] = field(default_factory=list)  # one per disagreement
    kinds: list[str] = field(default_factory=list)  # their kinds: report sites, op results
    spun: int = 0  # the step of a killed call that ran on (spin_step); none compared after
    by_op: dict[str, list[int]] = field(default_factory=dict)  # op -> [compared, agreed]
    gap_steps: list[int] = field(default_factory=list)  # results a model gap differs in
    other_gap: bool = False  # a model gap not in a step's result (a warning missed)


#: the documented kernel finding a killed call that runs on is (kfuzz.spin_step)
SPIN_DOC = "docs/triage/killed-reflink-spins-on-pinned-second-inode.md"


def spin_step(case: Case, gt: GuestTrace) -> int:
    """The first step whose call the guest killed and which ran on (``blocked ...
    left_pending``; not an umount, whose pending end the model retries as a later
    unmount), or 0.  On 6.1 and 7.2 that is a reflink or exchange spinning on a pinned
    second inode (SPIN_DOC): the kernel goes on with a call the port has given up, so
    no later step is comparable, and the helper runs only releases after it."""
    return spun_at([str(op) for op in case.ops], gt)


_SITES = (  # (pattern, its site's name): a report's first line, without addresses
    (re.compile(r"WARNING:.*?(\S+\.[ch]:\d+)\s+(?:at\s+)?([A-Za-z_]\w*)"), r"WARNING at \1 \2"),
    (re.compile(r"kernel BUG at (\S+?):?(\d+)!?"), r"kernel BUG at \1:\2"),
    (re.compile(r"KASAN: ([\w-]+) in ([A-Za-z_]\w*)"), r"KASAN: \1 in \2"),
    (re.compile(r"BUG: ([^:,]*?)\s*(?: in | at |[:,;]|$)"), r"BUG: \1"),
    (re.compile(r"refcount_t: (\w+)"), r"refcount_t: \1"),
    (re.compile(r"blocked for more than"), "hung task"),
    (re.compile(r"general protection fault"), "general protection fault"),
    (re.compile(r"Kernel panic"), "Kernel panic"),
    (re.compile(r"Oops"), "Oops"),
)


def report_site(line: str) -> str:
    """The kernel report a log line opens, named without addresses, CPUs or PIDs
    (``WARNING at fs/dax.c:452 dax_disassociate_entry``, ``kernel BUG at
    fs/inode.c:777``, ``BUG: Bad page map``), or '' for a line of its body (RIP, Call
    Trace...).  Two findings with one site are one kind of disagreement (reduction)."""
    for pat, name in _SITES:
        m = pat.search(line)
        if m:
            return m.expand(name)
    return ""


def is_report(kind: str) -> bool:
    """Whether `kind` names a kernel report site (not an op's result, a raw struct page
    difference, a hang...)."""
    return (kind.split(":", 1)[0] not in O.BY_NAME and not kind.startswith("raw:")
            and kind not in ("hang", "guest error"))


def primary_kind(v: Verdict) -> str:
    """The kind of disagreement `v` stands for (see the module docstring); '' for none."""
    if v.cls == KERNEL_FINDING:
        for pick in (is_report, lambda k: k == "hang", lambda k: k.endswith("[forbidden]")):
            for k in v.kinds:
                if pick(k):
                    return k
    return next((k for k in v.kinds if k != "guest error"), "")


def _expected_line(pred: Prediction, step: int, line: str) -> bool:
    """Whether the port predicts the kernel report `line` logged at `step` (a line read
    straight from the console is attributed to the last step that had reported, so it
    may belong to the next one)."""
    ev = pred.events
    if 1 <= step <= len(ev) and ev[step - 1]:
        return True
    return line.endswith("[console]") and 0 <= step < len(ev) and bool(ev[step])


#: what memory_failure() logs for a DAX page (mm/memory-failure.c, 6.1 and 7.2):
#: action_result()'s verdict and kill_proc()'s signal to current
MF_LINE = re.compile(r"Memory failure: 0x[0-9a-f]+: (recovery action for dax page: "
                     r"(Recovered|Failed)|Sending SIGBUS to \S+ due to hardware memory "
                     r"corruption)")


def memory_failure_report(ops: tuple[O.Op, ...] | list[O.Op], step: int, line: str) -> bool:
    """Whether `line` is the report of the memory_failure step that logged it (its
    verdict and signal are compared as the step's result, not as a warning)."""
    if not MF_LINE.search(line):
        return False
    steps = (step, step + 1) if line.endswith("[console]") else (step,)
    return any(1 <= s <= len(ops) and isinstance(ops[s - 1], O.MemoryFailure)
               for s in steps)


def judge(case: Case, gt: GuestTrace | None) -> Verdict:
    """Compare one case's guest run with the port (see the module docstring)."""
    if gt is None:
        return Verdict("rerun", notes=["the guest never ran it"])
    if gt.error.startswith("setup failed"):
        return Verdict("rerun", notes=[gt.error])
    v = Verdict("agree")
    pred, ops = case.pred, case.ops
    finding = harness = False
    v.spun = spin_step(case, gt)
    last = v.spun or len(ops)
    if v.spun and v.spun < len(ops):
        v.notes.append(f"steps {v.spun + 1}-{len(ops)} not compared: the killed "
                       f"{ops[v.spun - 1].name} of step {v.spun} ran on (the documented "
                       f"unkillable spin, {SPIN_DOC})")
    for i, op in enumerate(ops[:last], 1):
        r = gt.steps.get(i)
        port = oracle_outcome(pred.port[i - 1])
        if r is None:
            if not gt.error:
                v.notes.append(f"step {i} ({op}): no result")
                harness = True
            continue
        k = r.outcome()
        if k == "n/a":
            continue
        v.compared += 1
        kind = op.name  # memory_failure's two paths apart: the holder's runs on rmapbt=1
        if isinstance(op, O.MemoryFailure):
            kind = f"memory_failure holder={op.holder}"
        tally = v.by_op.setdefault(kind, [0, 0])
        tally[0] += 1
        if k == port:
            v.agreed += 1
            tally[1] += 1
            continue
        right = oracle_outcome(pred.oracle[i - 1])
        forbidden = right == "ok" and k in DATA_LOSS
        finding |= forbidden
        if not forbidden:
            v.gap_steps.append(i)
        v.notes.append(f"step {i} ({op}): {case.trace.target} port {port}"
                       + (f", a correct kernel {right}" if right != port else "")
                       + f"; kernel {r.describe()}" + (" [forbidden]" if forbidden else ""))
        v.kinds.append(f"{op.name}: kernel {k}" + (" [forbidden]" if forbidden
                                                   else f", 7.2 port {port}"))
    for j, (s, line) in enumerate(gt.kernel):
        if 0 <= gt.exited <= j:
            v.notes.append(f"kernel log after the trace (clean-up): {line}")
            v.kinds += [f"{report_site(line)} (clean-up)"] if report_site(line) else []
            finding = True
        elif not (_expected_line(pred, s, line) or memory_failure_report(ops, s, line)):
            v.notes.append(f"kernel log at step {s} (the port: no warning): {line}")
            v.kinds += [report_site(line)] if report_site(line) else []
            finding = True
    for i, ev in enumerate(pred.events[:last], 1):
        if ev and not any(s in (i, i - 1) for s, _ in gt.kernel):
            v.notes.append(f"step {i} ({ops[i - 1]}): the port warns ({ev[0]}), the kernel "
                           "logged nothing")
            v.kinds.append(f"{ops[i - 1].name}: the port warns, the kernel is silent")
            v.other_gap = True
    if gt.error and "hung" in gt.error and v.spun and not gt.kernel:
        # the documented spin ran on for most of --trace-timeout (s3003-000673: 12.5 s
        # of 15), and the program's remaining steps ran out the rest: the same finding
        v.notes.append(f"guest: {gt.error}, after the killed call of step {v.spun} ran on "
                       f"(the documented spin, {SPIN_DOC})")
    elif gt.error:
        v.notes.append(f"guest: {gt.error}")
        v.kinds.append("hang" if "hung" in gt.error else "guest error")
        if "hung" in gt.error or gt.kernel:
            finding = True
        else:
            harness = True
    gap = bool(v.gap_steps) or v.other_gap
    v.cls = (KERNEL_FINDING if finding else MODEL_GAP if gap else HARNESS if harness
             else "agree")
    return v


def placed_memory_failures(case: Case, gt: GuestTrace, v: Verdict,
                           misplaced: dict[int, set[tuple[int, int]]]) -> bool:
    """True when every result a model gap differs in is a memory_failure the helper
    answered ENXIO (no pmem page at the address: translate.py "Memory failure") on a
    page of a group the kernel's XFS placed where no PMD maps it (pages.misplaced_groups):
    the port's PMD maps the page, the kernel's PTE fallback mapped only the page that
    faulted, so MADV_HWPOISON finds nothing there.  That is the kernel's block placement,
    which the model does not predict, not a model gap; the step is noted as such."""
    if v.other_gap or not v.gap_steps:
        return False
    from daxfuzz.core.runner import Runner

    ops = case.ops
    if not all(isinstance(ops[i - 1], O.MemoryFailure) and i in gt.steps
               and gt.steps[i].outcome() == "ENXIO" for i in v.gap_steps):
        return False
    g = case.trace.geometry
    r = Runner(case.trace.target, g)
    last = max(v.gap_steps)
    for i, op in enumerate(ops[:last], 1):
        if i in v.gap_steps:
            groups = {(ino, idx & ~g.pmd_colour) for ino, idx in r.t.fs.owners(op.pfn)}
            if not groups & misplaced.get(i, set()):
                return False
        r.step(op)
    v.notes += [f"step {i} ({ops[i - 1]}): ENXIO set apart: the page's group is not "
                "PMD-mappable in the kernel (block placement), so no PTE maps the page "
                "there" for i in v.gap_steps]
    return True


def judge_pages(case: Case, gt: GuestTrace | None, raw=None) -> tuple[Verdict, int, int, int]:
    """:func:`judge`, then the raw struct pages (guest/pages.py ``judge_raw``, when `raw`,
    a ``RawCheck`` that planned the case's program, is given): a raw difference makes
    an agreeing trace a model gap (a negative kernel counter: a kernel finding) and adds
    its kind (``raw:OP:FIELDS``, after the result kinds).  Also returns the raw figures:
    steps compared, agreeing, set apart by the kernel's block placement."""
    v = judge(case, gt)
    if raw is None or gt is None or v.cls == "rerun":
        return v, 0, 0, 0
    from daxfuzz.guest.pages import judge_raw, pending_windows

    skip = pending_windows(gt.steps, gt.pending)
    for k in range(v.spun + 1, len(case.ops) + 1 if v.spun else 0):
        skip[k] = f"after the killed call of step {v.spun}, which ran on"
    misplaced: dict[int, set[tuple[int, int]]] = {}
    n, ok, rcls, placed = judge_raw(raw, case.name, gt.pages, len(case.ops), v.notes,
                                    skip, case.ops, v.kinds, misplaced)
    if v.cls == MODEL_GAP and placed_memory_failures(case, gt, v, misplaced):
        v.cls = "agree"  # the kernel's block placement, set apart as the raw pages are
        placed += 1
    if rcls and v.cls in ("agree", MODEL_GAP, HARNESS):
        v.cls = rcls if v.cls == "agree" or rcls == KERNEL_FINDING else v.cls
    return v, n, ok, placed


# ------------------------------------------------------------------ storage -------
def console_of(console: str, name: str) -> str:
    """The console lines of program `name` (from its ``@@T begin`` to its ``@@T end``, or
    to the end of that boot's output), the last time it ran."""
    lines = console_lines(console)
    starts = [i for i, x in enumerate(lines) if x.endswith(f"@@T begin {name}")]
    if not starts:
        return ""
    out = []
    for x in lines[starts[-1]:]:
        out.append(x)
        if re.search(r"@@T (end|begin) ", x) and len(out) > 1:
            break
    return "\n".join(out) + "\n"


def store(out: str, case: Case, v: Verdict, console: str, seed: int,
          gt: GuestTrace | None = None) -> str:
    """Write the case's finding folder OUT/<class>/NAME/ (daxfuzz/guest/kfinding.py:
    NAME.trace first, then the console, C file and README); the trace's path."""
    from daxfuzz.guest.kfinding import write_finding

    kern = KERNEL_OF.get(case.trace.target, case.trace.target)
    desc = [f"daxfuzz kernel fuzz --seed {seed}: {case.name}, a {v.cls} on Linux {kern} "
            "under QEMU (`daxfuzz kernel run` replays it)"]
    if case.cut:
        desc.append(f"generated {case.generated} ops: {case.cut}; then the teardown")
    desc += v.notes
    return write_finding(out, case, v, gt, console, desc)


# ------------------------------------------------------------------ the campaign ---
@dataclass
class Stats:
    traces: int = 0  # judged
    steps: int = 0  # compared
    agreed_steps: int = 0
    agree: int = 0  # traces
    raw_steps: int = 0  # steps whose raw struct pages were compared (guest/pages.py)
    raw_agreed: int = 0
    # compared steps differing only where the kernel's XFS placed a group so that no
    # PMD maps it (guest/pages.py misplaced_groups): neither agreeing nor a model gap
    raw_placement: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})
    boots: int = 0
    failed_boots: int = 0  # boots that died before their first program (rebooted)
    batches: int = 0
    started: int = 0  # traces begun in a guest (live)
    cut: int = 0
    generated: int = 0
    hung: list[str] = field(default_factory=list)
    # traces whose killed reflink/exchange ran on (the documented spin, SPIN_DOC):
    # compared up to that step, not a new finding
    spun: list[str] = field(default_factory=list)
    never_booted: int = 0  # batches where the guest ran nothing
    failed_row: int = 0  # ... in a row
    stored: list[tuple[str, str, list[str]]] = field(default_factory=list)  # cls, path, notes
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)  # (cls, kind) -> first
    reductions: list[dict] = field(default_factory=list)  # kreduce.reduce_finding's figures
    reduce_seconds: float = 0.0
    seconds: float = 0.0
    guest_seconds: float = 0.0  # summed over batches (jobs overlap)
    gen_seconds: float = 0.0
    per_minute: float = 0.0
    # every op kind: steps compared and agreeing per op name; traces running >= 8
    # generated ops (the teardown not counted)
    by_op: dict[str, list[int]] = field(default_factory=dict)
    long_traces: int = 0

    def summary(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "traces", "steps", "agreed_steps", "raw_steps", "raw_agreed", "raw_placement",
            "agree", "by_class",
            "boots", "failed_boots", "batches",
            "cut", "generated", "hung", "spun", "never_booted", "seconds", "guest_seconds",
            "gen_seconds", "reduce_seconds", "reductions", "long_traces")}
        d["by_op"] = {k: {"compared": c, "agreed": a}
                      for k, (c, a) in sorted(self.by_op.items())}
        d["per_minute"] = round(60 * self.traces / self.seconds, 1) if self.seconds else 0
        d["stored"] = [{"class": c, "path": p, "notes": n} for c, p, n in self.stored]
        return d


def default_jobs() -> int:
    """`kernel fuzz`'s guests at once: one per host core (a 1-vCPU guest each: on 2
    cores, 112 traces a minute against 57 for one 2-vCPU guest, README), at most 4 and
    no more than the host's memory holds (each guest has GUEST_MEM_RUN, 3 GiB)."""
    cores = os.cpu_count() or 1
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable:"))
        by_mem = max(1, kib // (4 << 20))  # 3 GiB a guest, 1 GiB of slack each
    except (OSError, StopIteration, ValueError):
        by_mem = 1
    return max(1, min(cores, 4, by_mem))


def guest_vcpus(jobs: int) -> int:
    """Each of `jobs` guests' CPUs: the host's cores shared out, 1 or 2."""
    return max(1, min(2, (os.cpu_count() or 2) // max(jobs, 1)))


def run_campaign(manifest: dict, *, seconds: float, seed: int = 0, jobs: int = 1,
                 out: str = "kfuzz-out", batch: int = 0, accel: str = "tcg",
                 step_timeout_ms: int = 2000, trace_timeout: float = 30,
                 boot_timeout: float = 240, run_known: bool = False,
                 g: Geometry = DEFAULT, max_traces: int = 0,
                 log: Callable[[str], None] = lambda s: None,
                 progress: Callable[[Stats], None] = lambda st: None,
                 runner: Callable | None = None, reduce_seconds: float = 0,
                 target: str = TARGET, no_ops: tuple[str, ...] = (),
                 vcpus: int = 0) -> Stats:
    """Run batches until `seconds` pass (or `max_traces` are judged); see the module
    docstring.  `vcpus`: each guest's CPUs; 0: the host's cores shared out among the
    `jobs` guests (at least 1, at most 2).  Each stored disagreement of a kind not seen
    before is reduced on the guest for up to `reduce_seconds` (within `seconds`; 0:
    none).  `runner` replaces
    :func:`daxfuzz.guest.qemu.run_programs` (tests)."""
    from daxfuzz.guest.kernels import raw_check
    from daxfuzz.guest.qemu import run_programs

    run = runner or run_programs
    vcpus = vcpus or guest_vcpus(jobs)
    raw = raw_check(manifest, target)
    if raw.why:
        log(f"raw struct pages are not compared: {raw.why}")
    st = Stats()
    lock = threading.Lock()
    gens = [Generator(g, seed * 1000 + j if jobs > 1 else seed,
                      prefix=f"s{seed}-{j}-" if jobs > 1 else f"s{seed}-",
                      run_known=run_known, target=target, no_ops=no_ops)
            for j in range(jobs)]
    requeue: list[list[Case]] = [[] for _ in range(jobs)]
    t0 = time.monotonic()
    deadline = t0 + seconds
    rate = [0.0]  # seconds per trace in a guest, measured (0: unknown yet)
    os.makedirs(out, exist_ok=True)

    def write_summary() -> None:
        st.seconds = time.monotonic() - t0
        write_text_atomic(os.path.join(out, "summary.json"),
                     json.dumps(st.summary(), indent=1) + "\n")

    def batch_size() -> int:
        if batch:
            return batch
        left = deadline - time.monotonic()
        if not rate[0]:
            return 40  # the first batch measures the rate
        # reducing: a batch takes a third of the time left at most, so the findings of
        # the last batches still have time to be reduced
        share = 3 if reduce_seconds > 0 else 1
        return max(4, min(400, int((left - 20) / rate[0] / share)))

    def one_batch(j: int) -> bool:
        gen = gens[j]
        t = time.monotonic()
        n = batch_size()
        if max_traces:
            with lock:
                n = min(n, max_traces - st.traces - sum(len(q) for q in requeue))
            if n <= 0 and not requeue[j]:
                return False
        cases = requeue[j] + [gen.next() for _ in range(max(0, n - len(requeue[j])))]
        to_reduce: list[tuple[str, Case, Verdict]] = []
        requeue[j] = []
        gen_s = time.monotonic() - t
        for c in cases:
            c.tries += 1
        byname = {c.name: c for c in cases}

        def glog(s: str) -> None:
            if s.startswith("  guest: ") and s[9:] in byname:
                with lock:
                    st.started += 1
                progress(st)
            elif "rebooting" in s or s.startswith("booting"):
                log(f"[job {j}] {s.strip()}")

        tb = time.monotonic()
        res = run(manifest, [(c.name, raw.text(c.name, c.trace, c.program.text)) for c in cases],
                  boot_timeout=boot_timeout, trace_timeout=trace_timeout,
                  step_timeout_ms=step_timeout_ms, accel=accel, log=glog, reuse=True,
                  last_in_boot={c.name for c in cases if c.pred.leaks}, vcpus=vcpus)
        took = time.monotonic() - tb
        with lock:
            st.batches += 1
            st.boots += res.boots
            st.failed_boots += res.failed_boots
            st.guest_seconds += took
            st.gen_seconds += gen_s
            st.hung += res.hung
            ran = 0
            for c in cases:
                gt = res.traces.get(c.name)
                v, n, ok, placed = judge_pages(c, gt, raw)
                st.raw_steps += n
                st.raw_agreed += ok
                st.raw_placement += placed
                if v.cls == "rerun":
                    if c.tries < 2:
                        requeue[j].append(c)
                        continue
                    v.cls = HARNESS
                ran += gt is not None
                st.traces += 1
                st.generated += 1
                st.cut += bool(c.cut.startswith("the port"))
                st.steps += v.compared
                st.agreed_steps += v.agreed
                st.long_traces += c.kept >= 8
                for name, (n_c, n_a) in v.by_op.items():
                    tally = st.by_op.setdefault(name, [0, 0])
                    tally[0] += n_c
                    tally[1] += n_a
                if v.spun:
                    st.spun.append(c.name)
                if v.cls == "agree":
                    st.agree += 1
                    continue
                st.by_class[v.cls] += 1
                cons = console_of(res.console, c.name) if v.cls == KERNEL_FINDING else ""
                path = store(out, c, v, cons, seed, gt)
                st.stored.append((v.cls, path, v.notes))
                log(f"[job {j}] {v.cls}: {path}: {v.notes[0] if v.notes else ''}")
                if reduce_seconds > 0:
                    to_reduce.append((path, c, v))
            st.failed_row = 0 if ran else st.failed_row + 1
            if not ran:
                st.never_booted += 1
                tail = " | ".join(res.console.strip().splitlines()[-5:])
                log(f"[job {j}] the guest ran nothing (boot: {'; '.join(res.boot[-3:])}; "
                    f"console: {tail[-600:]}); a fresh guest next")
            if ran:
                rate[0] = took / ran
            write_summary()
        progress(st)
        for path, c, v in to_reduce:
            reduce_one(j, path, c, v)
        return True

    def reduce_one(j: int, path: str, c: Case, v: Verdict) -> None:
        from daxfuzz.guest.kreduce import primary_kind, reduce_finding

        key = (v.cls, primary_kind(v))
        with lock:
            first = st.kinds.setdefault(key, c.name)
        stop = min(time.monotonic() + reduce_seconds, deadline)
        if first != c.name or stop - time.monotonic() < 30:
            why = (f"the same kind as {first}, reduced there" if first != c.name
                   else "no time left in the campaign")
            with lock:
                st.reductions.append({"name": c.name, "class": v.cls, "kind": key[1],
                                      "before": len(c.ops), "skipped": why})
            log(f"[job {j}] not reducing {c.name}: {why}")
            return
        log(f"[job {j}] reducing {c.name} ({len(c.ops)} ops, {v.cls}: {key[1]}) on the "
            f"guest, up to {stop - time.monotonic():.0f} s")
        fig = reduce_finding(manifest, path, c, v, deadline=stop, runner=runner, raw=raw,
                             run_opts={"boot_timeout": boot_timeout,
                                       "trace_timeout": trace_timeout,
                                       "step_timeout_ms": step_timeout_ms, "accel": accel},
                             seconds_per_candidate=rate[0],
                             log=lambda s: log(f"[job {j}] reducing {c.name}: {s}"))
        with lock:
            st.reductions.append(fig)
            st.boots += fig["boots"]
            st.reduce_seconds += fig["seconds"]
            write_summary()
        log(f"[job {j}] reduced {c.name}: {fig['before']} -> {fig['after']} ops in "
            f"{fig['rounds']} rounds, {fig['boots']} boots, {fig['seconds']:.0f} s"
            + ("" if fig["complete"] else " (not 1-minimal: the budget stopped it)"))

    def worker(j: int) -> None:
        while time.monotonic() < deadline - 20:  # not even a boot fits in less
            with lock:
                if max_traces and st.traces >= max_traces:
                    return
                if st.failed_row >= 3:
                    log("the guest did not boot three times in a row: giving up")
                    return
            if not one_batch(j):
                return

    if jobs == 1:
        worker(0)
    else:
        threads = [threading.Thread(target=worker, args=(j,), daemon=True)
                   for j in range(jobs)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    write_summary()
    return st
