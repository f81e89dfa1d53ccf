"""`daxfuzz kernel setup` and `daxfuzz kernel run TRACE...`: replay traces on a real
Linux 7.2 kernel (Debian sid's build) under QEMU, next to the oracle's predictions.

    daxfuzz kernel setup [--no-install] [--refresh]
    daxfuzz kernel run TRACE... [--table] [--show-program] [--step-timeout MS]

`run` boots the guest once per batch, runs each trace's translated program (see
daxfuzz/guest/translate.py for the geometry and what each op becomes) and prints per
step the oracle's prediction beside what the kernel did (done, blocked and for how
long, an error), plus WARNING/BUG/Oops/KASAN lines with the step that caused them.
Exit codes: 0 every expressible step agrees, 1 a difference (or a kernel warning, a hung
or crashed guest), 2 bad input or the guest is not set up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE, InputError

TARGET = "7.2"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernel", help="replay traces on a real Linux 7.2 kernel under QEMU")
    ks = p.add_subparsers(dest="kernel_command", metavar="{setup,run}")
    s = ks.add_parser("setup", help="fetch the sid kernel and host tools, build the guest")
    s.add_argument("--no-install", action="store_true",
                   help="do not apt-get install missing host packages; fail instead")
    s.add_argument("--refresh", action="store_true",
                   help="refetch the sid package lists and rebuild everything")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    s.set_defaults(func=run_setup)
    r = ks.add_parser("run", help="run traces in the guest beside the oracle's predictions")
    r.add_argument("files", nargs="+", metavar="TRACE")
    r.add_argument("--step-timeout", type=int, default=2000, metavar="MS",
                   help="how long a truncate/punch/reflink/umount may wait before it is "
                        "reported blocked (default 2000)")
    r.add_argument("--trace-timeout", type=float, default=120, metavar="S",
                   help="a guest silent this long inside one trace is killed (default 120)")
    r.add_argument("--boot-timeout", type=float, default=240, metavar="S",
                   help="a guest not ready this long after start is killed (default 240)")
    r.add_argument("--accel", choices=("tcg", "kvm"), default=os.environ.get(
        "DAXFUZZ_QEMU_ACCEL", "tcg"), help="QEMU accelerator (default tcg: software)")
    r.add_argument("--table", action="store_true",
                   help="end with a Markdown conformance table (one row per trace)")
    r.add_argument("--show-program", action="store_true", help="print each guest program")
    r.add_argument("--console", metavar="FILE", help="save the raw guest console to FILE")
    r.add_argument("-q", "--quiet", action="store_true", help="one line per trace")
    r.set_defaults(func=run_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_setup(args: argparse.Namespace) -> int:
    from daxfuzz.guest.build import setup

    t0 = time.monotonic()
    m = setup(install=not args.no_install, refresh=args.refresh,
              log=lambda s: print(f"setup: {s}", file=sys.stderr))
    if args.json:
        print(json.dumps(m, indent=1))
        return EXIT_AGREE
    print(f"kernel {m['kernel_version']}  ({m['kernel_deb']})")
    print(f"  vmlinuz    {m['vmlinuz']}  ({m['sizes']['vmlinuz'] // 1024} KiB)")
    print(f"  initramfs  {m['initramfs']}  ({m['sizes']['initramfs.cpio.gz'] // 1024} KiB: "
          "busybox, mkfs.xfs, ndctl, nd_e820/nd_pmem/dax_pmem/xfs, daxop)")
    print(f"  helper     {m['helper']}")
    print(f"  modules    {m['modules_deb']}")
    print(f"  qemu       {m['qemu']}  (/dev/kvm openable: {m['kvm']}; runs use tcg unless "
          "--accel kvm)")
    print(f"setup took {time.monotonic() - t0:.1f} s; cache: {m['cache']}")
    return EXIT_AGREE


def predictions(trace) -> tuple[list[str], list[str]]:
    """(oracle result, 7.2 port result) per step, over every step of the trace."""
    from daxfuzz.runner import Runner

    r = Runner(TARGET, trace.geometry)
    oracle, port = [], []
    for op in trace.ops:
        d = r.step(op)
        port.append(r.last_result)
        if d is not None and d.field == "result":
            oracle.append(str(d.expected))
        else:
            oracle.append(r.last_result)
    return oracle, port


def _name(i: int, path: str) -> str:
    base = os.path.basename(path).rsplit(".", 1)[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in base)
    return f"{i:03d}-{safe}"[:60]


def run_run(args: argparse.Namespace) -> int:
    from daxfuzz.guest.build import load_manifest
    from daxfuzz.guest.qemu import run_programs
    from daxfuzz.guest.results import compare
    from daxfuzz.guest.translate import translate
    from daxfuzz.trace import read_trace

    items = []
    bad = False
    for i, path in enumerate(args.files):
        try:
            tr = read_trace(path)
            prog = translate(tr, path)
            oracle, port = predictions(tr)
        except InputError as e:
            print(f"daxfuzz: error: {e}", file=sys.stderr)
            bad = True
            continue
        items.append((_name(i, path), path, tr, prog, oracle, port))
    if not items:
        return EXIT_BAD_INPUT
    manifest = load_manifest()
    if args.show_program:
        for name, path, _tr, prog, _o, _p in items:
            print(f"== program {name} ({path})")
            print(prog.text)
    t0 = time.monotonic()
    res = run_programs(manifest, [(n, p.text) for n, _, _, p, _, _ in items],
                       boot_timeout=args.boot_timeout, trace_timeout=args.trace_timeout,
                       step_timeout_ms=args.step_timeout, accel=args.accel,
                       log=lambda s: print(s, file=sys.stderr))
    wall = time.monotonic() - t0
    if args.console:
        with open(args.console, "w", encoding="utf-8") as f:
            f.write(res.console)
    worst = EXIT_AGREE
    table = []
    for b in res.boot:
        if not b.startswith(("kernel", "ready")):
            print(f"guest: {b}")
    for name, path, tr, prog, oracle, port in items:
        gt = res.traces.get(name)
        if gt is None:
            from daxfuzz.guest.results import GuestTrace

            gt = GuestTrace(name, error="the guest never ran this trace "
                            f"(boot: {'; '.join(res.boot[-3:]) or 'no output'})")
        rows = compare([str(op) for op in tr.ops], oracle, gt)
        n_agree = sum(r.verdict == "agree" for r in rows)
        n_diff = sum(r.verdict == "DIFFER" for r in rows)
        n_na = sum(r.verdict == "n/a" for r in rows)
        n_miss = sum(r.verdict == "missing" for r in rows)
        warn = len(gt.kernel)
        if not args.quiet:
            print(f"== {path}  (kernel {TARGET} under QEMU; {tr.geometry.text()})")
            for info in gt.info:
                print(f"   guest: {info}")
            for r in rows:
                mark = {"agree": " ", "DIFFER": "!", "n/a": "-", "missing": "?"}[r.verdict]
                pd = r.predicted
                if port[r.step - 1] != r.predicted:
                    pd += f" (7.2 port: {port[r.step - 1]})"
                print(f"{mark}{r.step:3}  {r.op:<52} oracle: {pd:<16} kernel: {r.kernel}")
                for s, line in gt.kernel:
                    if s == r.step:
                        print(f"        kernel log: {line}")
            for p in gt.pending:
                print(f"   pending call: {p}")
            for s, line in gt.kernel:
                if not 1 <= s <= len(rows):
                    print(f"   kernel log (step {s}): {line}")
            if gt.error:
                print(f"   GUEST: {gt.error}")
        verdict = "agree" if not (n_diff or n_miss or gt.error or warn) else "DIFFER"
        if verdict != "agree":
            worst = EXIT_DIVERGENCE
        print(f"{path}: {verdict} on the kernel: {n_agree} agree, {n_diff} differ, "
              f"{n_na} not expressible, {n_miss} missing, {warn} kernel warning line(s)"
              + (f"; {gt.error}" if gt.error else ""))
        diffs = "; ".join(f"{r.step}: {r.op.split()[0]} oracle {r.predicted} / kernel "
                          f"{r.kernel}" for r in rows if r.verdict in ("DIFFER", "missing"))
        table.append((os.path.basename(path), len(rows), n_agree, n_diff, n_na, n_miss, warn,
                      diffs or ("; ".join(sorted(set(prog.skipped.values()))) if n_na else "")))
    print(f"kernel run: {len(items)} trace(s), {res.boots} boot(s), {wall:.1f} s wall"
          + (f"; hung: {', '.join(res.hung)}" if res.hung else ""))
    if args.table:
        print()
        print("| trace | steps | agree | differ | n/a | missing | kernel warnings | notes |")
        print("|---|---|---|---|---|---|---|---|")
        for row in table:
            print("| " + " | ".join(str(x) for x in row) + " |")
        tot = [sum(r[i] for r in table) for i in range(1, 7)]
        print(f"| **total ({len(table)})** | " + " | ".join(map(str, tot)) + " | |")
    return EXIT_BAD_INPUT if bad else worst
