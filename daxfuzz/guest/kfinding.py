"""One folder per real-kernel disagreement: its traces, C reproducer, console, README.

    DIR/kernel-finding/NAME/            DIR/model-gap/NAME/ (no C program, no console)
        NAME.trace                      the trace as run (generated + teardown)
        NAME.reduced.trace              reduced on the guest (daxfuzz/guest/kreduce.py)
        repro.c                         `daxfuzz kernel repro` of the shortest trace
        console.txt                     the guest console of the trace, cut to it
        reduced.console.txt             ... of the reduced trace's last run
        README.md                       what the kernel did, what the port predicted,
                                        the first kernel report, how to replay it
        finding.json                    the same as data (`daxfuzz report` reads it)

Every file is written atomically (temp file + rename) and the trace first, so a killed
run leaves at worst a folder with the trace and an older README.  A trace the guest
cannot express gets a README line saying so instead of a C file that does less.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from dataclasses import asdict, dataclass, field

from daxfuzz.guest.kfuzz import (
    KERNEL_FINDING,
    KERNEL_OF,
    TARGET,
    Case,
    Verdict,
    primary_kind,
    report_site,
)
from daxfuzz.guest.results import GuestTrace, console_lines, oracle_outcome
from daxfuzz.textio import write_text_atomic
from daxfuzz.vocab.trace import Trace, write_trace_atomic

#: most console lines kept (the head of the trace and the tail with the report)
CONSOLE_LINES = 400


def slug(cls: str) -> str:
    return cls.replace(" ", "-")


def folder(out: str, cls: str, name: str) -> str:
    """Where finding `name` of class `cls` lives under campaign folder `out`."""
    return os.path.join(out, slug(cls), name)


def cut_console(console: str, name: str) -> str:
    """The console of program `name`: from its ``@@T begin`` to its ``@@T end``, or to
    where the guest died (the next boot's firmware banner is left out); escapes
    stripped, at most CONSOLE_LINES lines (head and tail kept: the report is at the
    end)."""
    lines = console_lines(console)
    start = next((i for i in range(len(lines) - 1, -1, -1)
                  if lines[i].endswith(f"@@T begin {name}")), None)
    if start is None:  # already one program's console (kernel run's), or none
        start = 0
    out = []
    for x in lines[start:]:
        if out and ("SeaBIOS" in x or re.search(r"@@T begin ", x)):
            break
        out.append(x)
        if re.search(r"@@T end ", x):
            break
    if len(out) > CONSOLE_LINES:
        k = CONSOLE_LINES // 4
        out = out[:k] + [f"[... {len(out) - CONSOLE_LINES} lines left out ...]"] + \
            out[-(CONSOLE_LINES - k):]
    return "\n".join(out) + "\n"


@dataclass
class Info:
    """finding.json: what `daxfuzz report` lists."""

    name: str
    cls: str
    kind: str
    ops: int
    trace: str  # file names inside the folder
    reduced: str = ""
    reduced_ops: int = 0
    reduction: dict = field(default_factory=dict)  # rounds, boots, seconds, complete...
    first_report: str = ""
    function: str = ""
    repro: str = ""  # "repro.c", or why there is none
    notes: list[str] = field(default_factory=list)
    kernel: str = TARGET  # the kernel it ran on ("7.2", "6.1"), from the predicting target


def kernel_of(target: str | None) -> str:
    """The kernel version a target predicts, for titles ("legacy" -> "6.1")."""
    return KERNEL_OF.get(target or TARGET, target or TARGET)


def first_report(gt: GuestTrace | None) -> tuple[str, str]:
    """(the first kernel report line the trace caused, the function it names)."""
    for _s, line in (gt.kernel if gt else []):
        if report_site(line):
            text = line.replace("  [console]", "")
            m = re.search(r"\bat ([A-Za-z_]\w*)[.+]", text) or re.search(
                r"\S+\.[ch]:\d+\s+(?:at\s+)?([A-Za-z_]\w*)", text)
            fn = m.group(1) if m else ""
            if not fn:  # a BUG line names no function: its RIP line does
                rip = next((x for _s2, x in gt.kernel if x.startswith("RIP: 0010:")), "")
                m = re.match(r"RIP: 0010:([A-Za-z_]\w*)", rip)
                fn = m.group(1) if m else ""
            return text, fn
    return "", ""


def _rows(case: Case, gt: GuestTrace | None) -> list[str]:
    """Markdown rows: every step where the kernel differs from the port or the port
    warns, with both results and a correct kernel's."""
    rows = []
    for i, op in enumerate(case.ops, 1):
        port = case.pred.port[i - 1]
        right = case.pred.oracle[i - 1]
        r = gt.steps.get(i) if gt else None
        k = r.describe() if r else "no result"
        ev = case.pred.events[i - 1]
        logs = [line for s, line in (gt.kernel if gt else []) if s == i and report_site(line)]
        if (r is None or r.outcome() in ("n/a", oracle_outcome(port))) and not ev and not logs:
            continue
        rows.append(f"| {i} | `{op}` | {port}{' (warns: ' + ev[0] + ')' if ev else ''} | "
                    f"{right} | {k}{'; ' + '; '.join(logs) if logs else ''} |")
    return rows


def _repro(tr: Trace, path: str, raw: str, case: Case) -> tuple[str, str]:
    """(C source or '', why there is none)."""
    from daxfuzz.errors import InputError
    from daxfuzz.guest.repro import repro_source

    try:
        return repro_source(tr, path, raw_text=raw, predicted=list(case.pred.oracle),
                            port=list(case.pred.port)), ""
    except InputError as e:
        return "", str(e)


def write_readme(d: str, info: Info, case: Case, gt: GuestTrace | None, v: Verdict,
                 console: bool) -> None:
    """README.md of finding folder `d` from the shortest trace's run (`case`, `gt`)."""
    best = info.reduced or info.trace
    p = os.path.join(d, best)
    kflag = "" if info.kernel == TARGET else f" --kernel {info.kernel}"
    port = f"{case.trace.target or TARGET} port"
    what = (f"A kernel finding: the kernel did something the {port} does not predict"
            if info.cls == KERNEL_FINDING else
            f"A model gap: the {port} predicts one result, the kernel gives another "
            "and logs nothing")
    out = [f"# {info.cls} {info.name} (Linux {info.kernel} under QEMU)", "",
           f"{what}.", "", f"**Kind:** `{info.kind}`", ""]
    if info.first_report:
        out += [f"**First kernel report:** `{info.first_report}`"
                + (f" (in `{info.function}()`)" if info.function else ""), ""]
    out += ["## What the kernel did, what the port predicted", "",
            f"In `{best}` ({len(case.ops)} ops):", "",
            f"| step | op | {port} | a correct kernel | kernel |", "|---|---|---|---|---|",
            *(_rows(case, gt) or ["| - | (no step differs: see the notes) | | | |"]), ""]
    out += ["The verdict's notes:", "", *[f"- {n}" for n in v.notes], ""]
    out += ["## Traces", "",
            f"- [`{info.trace}`]({info.trace}): {info.ops} ops, as the campaign ran it"]
    if info.reduced:
        r = info.reduction
        out.append(f"- [`{info.reduced}`]({info.reduced}): {info.reduced_ops} ops, reduced "
                   f"on the guest from {info.ops} in {r.get('rounds', 0)} round(s), "
                   f"{r.get('boots', 0)} boot(s), {r.get('seconds', 0):.0f} s"
                   + ("" if r.get("complete") else
                      " (the budget stopped it: not 1-minimal; `daxfuzz kernel reduce"
                      f"{kflag} {p}` goes on)"))
    elif info.reduction:
        out.append(f"- not reduced: {info.reduction.get('why', '')}")
    out += ["", "## Replay it", "", f"    daxfuzz kernel run{kflag} {p}"]
    if info.cls == KERNEL_FINDING:
        out.append(f"    daxfuzz kernel repro{kflag} {p} -o repro.c --run")
        out += ["", "## C reproducer", ""]
        out.append("[`repro.c`](repro.c): `gcc -static -O2 -Wall -o repro repro.c && "
                   "./repro /mnt /dev/pmem0` (as root, on fs-DAX XFS)"
                   if info.repro == "repro.c" else f"No C reproducer: {info.repro}")
    cons = [f for f in ("console.txt", "reduced.console.txt") if os.path.exists(
        os.path.join(d, f))] if console else []
    if cons:
        out += ["", "## Console", "", "The guest console of the trace as run and reduced, "
                "cut to it (helper lines `@@R` per step, `@@K` kernel reports): "
                + ", ".join(f"[`{f}`]({f})" for f in cons) + "."]
    write_text_atomic(os.path.join(d, "README.md"), "\n".join(out) + "\n")


def write_finding(out: str, case: Case, v: Verdict, gt: GuestTrace | None, console: str,
                  description: list[str], kind: str = "") -> str:
    """Write the finding folder of a disagreement as run (no reduction yet); the trace's
    path.  The trace goes first: a killed run keeps at least it."""
    d = folder(out, v.cls, case.name)
    os.makedirs(d, exist_ok=True)
    expect = f"divergence {case.pred.divergence}" if case.pred.divergence else "agree"
    tr = Trace(ops=case.ops, target=case.trace.target, geometry=case.trace.geometry, expect=expect,
               description=tuple(x.replace("\n", " ") for x in description))
    path = os.path.join(d, f"{case.name}.trace")
    write_trace_atomic(path, tr)
    rep, fn = first_report(gt)
    info = Info(case.name, v.cls, kind or primary_kind(v), len(case.ops),
                f"{case.name}.trace", first_report=rep, function=fn, notes=v.notes,
                kernel=kernel_of(case.trace.target))
    cons = v.cls == KERNEL_FINDING and bool(console)
    if cons:
        write_text_atomic(os.path.join(d, "console.txt"), cut_console(console, case.name)
                          or console)
    _finish(d, info, tr, path, case, gt, v, cons)
    return path


def _finish(d: str, info: Info, tr: Trace, path: str, case: Case, gt: GuestTrace | None,
            v: Verdict, console: bool) -> None:
    if info.cls == KERNEL_FINDING:
        src, why = _repro(tr, path, str(tr), case)
        if src:
            write_text_atomic(os.path.join(d, "repro.c"), src)
        info.repro = "repro.c" if src else why
    write_readme(d, info, case, gt, v, console)
    write_info(d, info)


def write_info(d: str, info: Info) -> None:
    write_text_atomic(os.path.join(d, "finding.json"), json.dumps(asdict(info), indent=1)
                      + "\n")


def read_info(d: str) -> Info | None:
    """finding.json of folder `d`, or None (missing or not ours: the report says so)."""
    from daxfuzz.errors import InputError
    from daxfuzz.textio import read_json

    try:
        data = read_json(os.path.join(d, "finding.json"))
    except InputError:
        return None
    if not isinstance(data, dict):
        return None
    fields = dataclasses.fields(Info)
    kept = {f.name: data[f.name] for f in fields if f.name in data}
    if any(f.name not in kept for f in fields
           if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
        return None  # a required field missing
    types = typing.get_type_hints(Info)
    for k, v in kept.items():  # each field of the type Info declares, else not ours
        want = typing.get_origin(types[k]) or types[k]
        if not isinstance(v, want) or isinstance(v, bool) and want is int:
            return None
    if not all(isinstance(n, str) for n in kept.get("notes", [])) or not all(
            isinstance(v, (int, float, str, bool)) or v is None
            for v in kept.get("reduction", {}).values()):
        return None
    return Info(**kept)


def reduced_trace(case: Case, original: Trace, red, kind: str) -> Trace:
    """The reduced trace's text: the original's header, a description saying how it was
    reduced."""
    from daxfuzz.core.reduce import UNREDUCED

    expect = f"divergence {case.pred.divergence}" if case.pred.divergence else "agree"
    target = case.trace.target or original.target or TARGET  # the port it was judged by
    desc = [f"reduced on Linux {kernel_of(target)} under QEMU by `daxfuzz kernel "
            "reduce` from "
            f"{red.original} to {len(red.ops)} ops ({red.rounds} rounds, {red.boots} boots, "
            f"{red.seconds:.0f} s), keeping: {kind}", *original.description]
    if not red.complete:
        desc.insert(1, UNREDUCED.replace("daxfuzz reduce", "daxfuzz kernel reduce"))
    return Trace(ops=tuple(red.ops), target=target, geometry=original.geometry,
                 expect=expect, description=tuple(desc))


def finish_reduced(d: str, info: Info, tr: Trace, path: str, case: Case, gt: GuestTrace,
                   v: Verdict, console: str, reduction: dict) -> None:
    """After a reduction: the reduced trace's console, C file, README and finding.json."""
    info.reduced = os.path.basename(path)
    info.reduced_ops = len(tr.ops)
    info.reduction = reduction
    rep, fn = first_report(gt)
    if rep:
        info.first_report, info.function = rep, fn
    cons = info.cls == KERNEL_FINDING and bool(console)
    if cons:
        write_text_atomic(os.path.join(d, "reduced.console.txt"),
                          cut_console(console, case.name) or console)
    _finish(d, info, tr, path, case, gt, v, cons)
