"""`daxfuzz kernel run` and `daxfuzz kernel repro`: print what daxfuzz/guest/krun.py
returns (each step beside the oracle's prediction, the raw struct pages, a verdict per
trace, the conformance table).  The flags are in daxfuzz/cli/kernel.py."""

from __future__ import annotations

import argparse
import os
import sys

from daxfuzz.cli import duration, out_dir, out_stream
from daxfuzz.cli.kernel import guest_args, kernel_arg, kernel_or_none
from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE

MARKS = {"agree": " ", "DIFFER": "!", "n/a": "-", "missing": "?"}


def run_run(args: argparse.Namespace) -> int:
    from daxfuzz.guest.krun import prepare, run_traces, store_run_finding

    kern = kernel_or_none(args)
    if kern is None:
        return EXIT_BAD_INPUT
    runs, errors = prepare(kern, args.files)
    for e in errors:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
    if not runs:
        return EXIT_BAD_INPUT
    if args.show_program:
        for t in runs:
            print(f"== program {t.name} ({t.path})")
            print(t.prog.text)
    kr = run_traces(kern, runs, errors, boot_timeout=args.boot_timeout,
                    trace_timeout=args.trace_timeout, step_timeout_ms=args.step_timeout,
                    accel=args.accel, log=lambda s: print(s, file=sys.stderr))
    if args.console:
        with open(args.console, "w", encoding="utf-8") as f:
            f.write(kr.result.console)
    for b in kr.result.boot:
        if not b.startswith(("kernel", "ready")):
            print(f"guest: {b}")
    worst = EXIT_AGREE
    table = []
    for t in runs:
        assert t.gt is not None
        if not args.quiet:
            _print_steps(t, kern.label, kern.target)
        if not t.agrees:
            worst = EXIT_DIVERGENCE
        n = {v: t.count(v) for v in ("agree", "DIFFER", "n/a", "missing")}
        spun = sum(1 for r in t.rows if "the killed call of step" in r.kernel)
        print(f"{t.path}: {'agree' if t.agrees else 'DIFFER'} on the kernel: {n['agree']} "
              f"agree, {n['DIFFER']} differ, {n['n/a'] - spun} not expressible, "
              + (f"{spun} after a killed call that ran on, " if spun else "")
              + f"{n['missing']} missing, {t.warnings} kernel warning line(s)"
              + (f"; {t.gt.error}" if t.gt.error else "")
              + (f"; raw pages: {t.raw_agreed} of {t.raw_compared} steps agree"
                 if t.gp is not None else "")
              + (f", {t.raw_placed} differ by the kernel's block placement"
                 if t.raw_placed else ""))
        if args.out:
            stored = store_run_finding(args.out, t, kr.result.console, kern.target, kern.label)
            if stored:
                print(f"  {stored}")
        skipped = "; ".join(sorted(set(t.prog.skipped.values())))
        table.append((os.path.basename(t.path), len(t.rows), n["agree"], n["DIFFER"],
                      n["n/a"], n["missing"], t.warnings, f"{t.raw_agreed}/{t.raw_compared}",
                      t.diffs() or (skipped if n["n/a"] else "")))
    res = kr.result
    print(f"kernel run ({kern.label}, {kr.manifest.get('kernel_version', '?')}): {len(runs)} "
          f"trace(s), {res.boots - res.failed_boots} boot(s)"
          + (f" (+{res.failed_boots} that died before their first program)"
             if res.failed_boots else "")
          + f", {kr.seconds:.1f} s wall"
          + (f"; hung: {', '.join(res.hung)}" if res.hung else ""))
    if args.table:
        _print_table(table, kr.raw.why)
    return EXIT_BAD_INPUT if errors else worst


def _print_steps(t, label: str, target: str) -> None:
    from daxfuzz.guest.pages import summary

    print(f"== {t.path}  ({label} under QEMU; {t.trace.geometry.text()})")
    for info in t.gt.info:
        print(f"   guest: {info}")
    for r in t.rows:
        pd = r.predicted
        if t.port[r.step - 1] != r.predicted:
            pd += f" ({target} port: {t.port[r.step - 1]})"
        print(f"{MARKS[r.verdict]}{r.step:3}  {r.op:<52} oracle: {pd:<16} kernel: {r.kernel}")
        rs = t.rawsteps.get(r.step)
        if rs is not None and rs.verdict():
            mark = "!" if rs.diffs else "~" if rs.placed else " "
            print(f"{mark}       {rs.describe()}")
        for s, line in t.gt.kernel:
            if s == r.step:
                print(f"        kernel log: {line}")
    for p in t.gt.pending:
        print(f"   pending call: {p}")
    for s, line in t.gt.kernel:
        if not 1 <= s <= len(t.rows):
            print(f"   kernel log (step {s}): {line}")
    if t.gt.error:
        print(f"   GUEST: {t.gt.error}")
    if t.gp is not None:
        print(f"   {summary(t.gp)}")


def _print_table(table: list[tuple], why: str | None) -> None:
    print()
    print("| trace | steps | agree | differ | n/a | missing | kernel warnings "
          "| raw agree/compared | notes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(str(x) for x in row) + " |")
    tot = [sum(r[i] for r in table) for i in range(1, 7)]
    ra = [tuple(int(x) for x in r[7].split("/")) for r in table]
    print(f"| **total ({len(table)})** | " + " | ".join(map(str, tot))
          + f" | {sum(a for a, _ in ra)}/{sum(c for _, c in ra)} | |")
    if why:
        print(f"\nraw pages not compared: {why}")


def register_run(ks: argparse._SubParsersAction) -> None:
    """Add this module's `daxfuzz kernel` subcommands to `ks`."""
    r = ks.add_parser("run", help="run traces in the guest beside the oracle's predictions")
    r.add_argument("files", nargs="+", metavar="TRACE")
    guest_args(r, trace_timeout=120)
    r.add_argument("--boot-timeout", type=duration, default=240, metavar="S",
                   help="a guest not ready this long after start is killed (default 240)")
    r.add_argument("--table", action="store_true",
                   help="end with a Markdown conformance table (one row per trace)")
    r.add_argument("--show-program", action="store_true", help="print each guest program")
    r.add_argument("--console", type=out_stream, metavar="FILE",
                   help="save the raw guest console to FILE")
    r.add_argument("-q", "--quiet", action="store_true", help="one line per trace")
    r.add_argument("--out", type=out_dir, metavar="DIR",
                   help="store each trace that disagrees with the 7.2 port as a finding "
                        "folder DIR/kernel-finding/NAME/ or DIR/model-gap/NAME/ (trace, "
                        "console, C reproducer, README)")
    kernel_arg(r)
    r.set_defaults(func=run_run)
