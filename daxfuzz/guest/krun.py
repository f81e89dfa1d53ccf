"""`kernel run` and `kernel repro --run` as a library: traces (or a compiled C
reproducer) run in the guest, each step set beside the oracle's prediction and the
port's, the raw struct pages beside the port's, and a verdict per trace.

The command line (daxfuzz/cli/kernel_run.py) only prints what these return.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from daxfuzz.errors import InputError
from daxfuzz.guest.kernels import Kernel
from daxfuzz.guest.pages import RawCheck
from daxfuzz.guest.qemu import BatchResult
from daxfuzz.guest.results import GuestTrace, Row, console_lines
from daxfuzz.guest.translate import Program
from daxfuzz.vocab.trace import Trace


def predictions(trace: Trace, target: str = "7.2") -> tuple[list[str], list[str]]:
    """(oracle result, the target's port result) per step, over every step of the trace."""
    from daxfuzz.core.runner import Runner

    r = Runner(target, trace.geometry)
    oracle, port = [], []
    for op in trace.ops:
        d = r.step(op)
        port.append(r.last_result)
        if d is not None and d.field == "result":
            oracle.append(str(d.expected))
        else:
            oracle.append(r.last_result)
    return oracle, port


def safe_stem(path: str) -> str:
    """The file's name without its extension, characters other than [A-Za-z0-9_-] as _."""
    base = os.path.basename(path).rsplit(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base)


def program_name(i: int, path: str) -> str:
    """The guest program's name for the i-th trace file: index and a safe stem."""
    return f"{i:03d}-{safe_stem(path)}"[:60]


@dataclass
class TraceRun:
    """One trace of a `kernel run`: its program, predictions, and what the guest did."""

    name: str
    path: str
    trace: Trace
    prog: Program
    oracle: list[str]
    port: list[str]
    gt: GuestTrace | None = None
    rows: list[Row] = field(default_factory=list)
    rawsteps: dict = field(default_factory=dict)  # step -> pages.RawStep
    gp: object = None  # pages.GuestPages, or None when raw pages were not read
    raw_compared: int = 0
    raw_agreed: int = 0
    raw_placed: int = 0  # steps whose only raw differences are XFS's block placement

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)

    @property
    def warnings(self) -> int:
        """Kernel report lines, but for a memory_failure step's own report (its verdict
        and signal are that step's result: kfuzz.memory_failure_report)."""
        from daxfuzz.guest.kfuzz import memory_failure_report

        if not self.gt:
            return 0
        return sum(not memory_failure_report(self.trace.ops, s, line)
                   for s, line in self.gt.kernel)

    @property
    def agrees(self) -> bool:
        """Every expressible step agrees, no kernel warning, no guest error, and every
        raw step compared agrees (or differs only by the kernel's block placement)."""
        assert self.gt is not None
        return not (self.count("DIFFER") or self.count("missing") or self.gt.error
                    or self.warnings
                    or self.raw_compared - self.raw_agreed - self.raw_placed)

    def diffs(self) -> str:
        return "; ".join(f"{r.step}: {r.op.split()[0]} oracle {r.predicted} / kernel "
                         f"{r.kernel}" for r in self.rows if r.verdict in ("DIFFER", "missing"))


@dataclass
class KernelRun:
    """A `kernel run` batch: the traces in order, the guest's batch result, the wall
    time, the raw-page check used, and the trace files that could not be run."""

    traces: list[TraceRun]
    result: BatchResult
    seconds: float
    raw: RawCheck
    manifest: dict
    errors: list[InputError]


def prepare(kern: Kernel, paths: list[str]) -> tuple[list[TraceRun], list[InputError]]:
    """Read, translate and predict every trace file; those that cannot be, as errors."""
    from daxfuzz.guest.kernels import translate_for
    from daxfuzz.vocab.trace import read_trace

    runs, errors = [], []
    for i, path in enumerate(paths):
        try:
            tr = read_trace(path)
            prog = translate_for(kern, tr, path)
            oracle, port = predictions(tr, kern.target)
        except InputError as e:
            errors.append(e)
            continue
        runs.append(TraceRun(program_name(i, path), path, tr, prog, oracle, port))
    return runs, errors


def run_traces(kern: Kernel, runs: list[TraceRun], errors: list[InputError], *,
               boot_timeout: float, trace_timeout: float, step_timeout_ms: int,
               accel: str, log: Callable[[str], None]) -> KernelRun:
    """Run the prepared traces in the guest (one boot per batch) and judge each."""
    import time

    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.kernels import raw_check
    from daxfuzz.guest.kfuzz import predict
    from daxfuzz.guest.pages import pending_windows, placed_steps, totals
    from daxfuzz.guest.qemu import run_programs
    from daxfuzz.guest.results import compare, spun_at

    manifest = kernel_manifest(kern)
    raw = raw_check(manifest, kern.target)  # raw struct pages beside the port's (pages.py)
    t0 = time.monotonic()
    # a trace the port says leaves struct pages behind ends its boot (kfuzz.leaked_page)
    last = {t.name for t in runs
            if predict(t.trace.geometry, list(t.trace.ops), target=kern.target).leaks}
    res = run_programs(manifest, [(t.name, raw.text(t.name, t.trace, t.prog.text))
                                  for t in runs],
                       boot_timeout=boot_timeout, trace_timeout=trace_timeout,
                       step_timeout_ms=step_timeout_ms, accel=accel, log=log,
                       last_in_boot=last)
    wall = time.monotonic() - t0
    for t in runs:
        gt = res.traces.get(t.name)
        if gt is None:
            gt = GuestTrace(t.name, error="the guest never ran this trace "
                            f"(boot: {'; '.join(res.boot[-3:]) or 'no output'})")
        t.gt = gt
        names = [str(op) for op in t.trace.ops]
        t.rows = compare(names, t.oracle, gt)
        skip = pending_windows(gt.steps, gt.pending)
        stop = spun_at(names, gt)
        for k in range(stop + 1, len(names) + 1 if stop else 0):
            skip[k] = f"after the killed call of step {stop}, which ran on"
        t.rawsteps, t.gp = raw.compare(t.name, gt.pages, len(t.rows), skip)
        t.raw_compared, t.raw_agreed = totals(t.rawsteps)
        t.raw_placed = placed_steps(t.rawsteps)
    return KernelRun(runs, res, wall, raw, manifest, errors)


def store_run_finding(out: str, t: TraceRun, console: str, target: str = "7.2",
                      label: str = "Linux 7.2") -> str | None:
    """`kernel run --out`: judge the trace against the port as `kernel fuzz` does and
    store a disagreement's finding folder (daxfuzz/guest/kfinding.py); its path."""
    from daxfuzz.guest.kfinding import write_finding
    from daxfuzz.guest.kfuzz import console_of, judge
    from daxfuzz.guest.kreduce import candidate_case

    assert t.gt is not None
    stem = safe_stem(t.path)[:60] or "trace"
    case = candidate_case(stem, t.trace.geometry, t.trace.ops, target)
    if case is None:
        return None  # a step the guest cannot express: judged step by step, not stored
    v = judge(case, t.gt)
    if v.cls == "agree":
        return None
    desc = [f"`daxfuzz kernel run {t.path}`: a {v.cls} on {label} under QEMU (target "
            f"{target})", *t.trace.description, *v.notes]
    p = write_finding(out, case, v, t.gt, console_of(console, t.name), desc)
    return f"{v.cls}: stored {os.path.dirname(p)}/"


def guest_output(console: str, name: str) -> str:
    """The console lines of program `name`, kernel printk lines included: from its first
    line (the mount's noise before it is left out) to the guest's ``@@T end``."""
    out, inside, started = [], False, False
    for raw in console_lines(console):
        at = raw.find("@@T ")
        if at >= 0 and raw[at:].startswith(f"@@T begin {name}"):
            inside = True
            continue
        if at >= 0 and raw[at:].startswith(f"@@T end {name}"):
            break
        started = started or (inside and not raw.startswith("["))
        if started:
            out.append(raw)
    return "".join(x + "\n" for x in out)


def compile_repro(src: str) -> bytes:
    """gcc -static the C reproducer; its executable.  InputError without gcc or when
    the compiler fails (its last output in the message)."""
    from daxfuzz.guest.repro import compile_command

    if shutil.which("gcc") is None:
        raise InputError("--run needs gcc on the host")
    with tempfile.TemporaryDirectory(prefix="daxfuzz-repro-") as tmp:
        c, exe = os.path.join(tmp, "repro.c"), os.path.join(tmp, "repro")
        with open(c, "w", encoding="utf-8") as f:
            f.write(src)
        p = subprocess.run(compile_command(c, exe), capture_output=True, text=True)
        if p.returncode:
            raise InputError(f"gcc failed:\n{p.stderr[-3000:]}")
        with open(exe, "rb") as f:
            return f.read()
