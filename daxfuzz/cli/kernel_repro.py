"""`daxfuzz kernel repro`: write the C reproducer of a trace (daxfuzz/guest/repro.py)
and, with --run, compile it and run it in the guest (daxfuzz/guest/krun.py)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from daxfuzz.cli import count, out_stream
from daxfuzz.cli.kernel import accel, kernel_arg, kernel_or_none
from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE, InputError


def run_repro(args: argparse.Namespace) -> int:
    from daxfuzz.guest.krun import compile_repro, guest_output, predictions
    from daxfuzz.guest.repro import repro_source
    from daxfuzz.textio import read_text
    from daxfuzz.vocab.trace import parse_trace

    kern = kernel_or_none(args)
    if kern is None:
        return EXIT_BAD_INPUT
    t0 = time.monotonic()
    path = args.file
    try:
        raw = read_text(path)  # regular files only, bounded, UTF-8: errors name the file
        tr = parse_trace(raw, path=path)
        for i, op in enumerate(tr.ops, 1):
            if args.run and kern.why_not(op.name):
                raise InputError(f"step {i} ({op}): {kern.why_not(op.name)}", path=path)
        oracle, port = predictions(tr, kern.target)
        src = repro_source(tr, path, raw_text=raw, predicted=oracle, port=port,
                           confirmed=args.confirmed)
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(src)
        print(f"wrote {args.output} ({len(src.splitlines())} lines); build: "
              f"gcc -static -O2 -Wall -o repro {args.output}", file=sys.stderr)
    elif not args.run:
        sys.stdout.write(src)
    if not args.run:
        return EXIT_AGREE
    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.qemu import run_programs
    from daxfuzz.guest.results import compare

    try:
        binary = compile_repro(src)
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    t_built = time.monotonic()
    res = run_programs(kernel_manifest(kern), [("repro", binary)],
                       step_timeout_ms=args.step_timeout, accel=args.accel,
                       log=lambda s: print(s, file=sys.stderr))
    print(guest_output(res.console, "repro"), end="")
    gt = res.traces.get("repro")
    if gt is None:
        tail = res.console.strip().splitlines()[-5:]
        print(f"repro: the guest never ran it (boot: {'; '.join(res.boot[-3:]) or 'none'}; "
              f"console: {' | '.join(tail) or 'empty'})")
        return EXIT_DIVERGENCE
    rows = compare([str(op) for op in tr.ops], oracle, gt)
    differ = [r for r in rows if r.verdict in ("DIFFER", "missing")]
    lines = [line for _, line in gt.kernel]
    wall = time.monotonic() - t0
    print(f"repro ({kern.label}): {len(rows)} steps, {len(differ)} differ from a correct kernel, "
          f"{len(lines)} kernel report line(s){'; ' + gt.error if gt.error else ''}; "
          f"generate+compile {t_built - t0:.1f} s, guest {res.seconds:.1f} s, "
          f"total {wall:.1f} s")
    for r in differ:
        print(f"  step {r.step} ({r.op}): a correct kernel: {r.predicted}; kernel: {r.kernel}")
    for line in [x for x in lines if "[console]" in x or "WARNING" in x][:3]:
        print(f"  kernel: {line}")
    return EXIT_DIVERGENCE if differ or lines or gt.error else EXIT_AGREE


def register_repro(ks: argparse._SubParsersAction) -> None:
    """Add `daxfuzz kernel repro` to `ks`."""
    x = ks.add_parser(
        "repro", help="write a self-contained C reproducer of a trace (plain syscalls)",
        description="Write ONE self-contained C file that replays TRACE on a real kernel "
        "with plain syscalls (open, ftruncate, fallocate, mmap, loads and stores, "
        "FICLONERANGE, vmsplice for GUP references, io_uring fixed buffers for long-term "
        "pins, pwrite, madvise, fork, umount/mount): no daxfuzz and no helper needed.  It "
        "is the guest's own translation: daxfuzz/guest/daxlib.c verbatim (the commands "
        "daxop runs in the guest) plus a main() holding the translated program, one "
        "commented block per trace step.  Its header gives the set-up (pmem, mkfs.xfs and "
        "mount options of the guest), the trace's description and expect lines, and the "
        "kernels it was confirmed on.  Build: gcc -static -O2 -Wall -o repro repro.c; run "
        "as root: ./repro [DAXDIR [DEVICE [STEP_TIMEOUT_MS]]] (default /mnt /dev/pmem0 "
        "2000).  A trace with a step the guest cannot express (memory_failure, a reflink "
        "needing too many segments) is refused: exit 2, naming the step.",
        epilog="exit codes: 0 written (with --run: the kernel behaved as a correct one "
        "would), 1 with --run: reproduced (a step differed from a correct kernel, or the "
        "kernel logged a WARNING/BUG/Oops), 2 bad input / not expressible / no gcc or "
        "guest for --run")
    x.add_argument("file", metavar="TRACE")
    x.add_argument("-o", "--output", type=out_stream, metavar="FILE",
                   help="write the C file here (default: standard output)")
    x.add_argument("--confirmed", action="append", default=[], metavar="KERNEL",
                   help="add to the header's 'Confirmed on' list (repeatable; the trace's "
                        "own 'confirmed on Linux X' notes are always listed)")
    x.add_argument("--run", action="store_true",
                   help="also compile it (gcc -static) and run it in the QEMU guest "
                        "(`daxfuzz kernel setup` first), printing its output")
    x.add_argument("--step-timeout", type=count(1, 3_600_000, "milliseconds"), default=2000,
                   metavar="MS",
                   help="with --run: the reproducer's STEP_TIMEOUT_MS (default 2000)")
    x.add_argument("--accel", type=accel, default=os.environ.get("DAXFUZZ_QEMU_ACCEL") or
                   "tcg", help="with --run: QEMU accelerator, tcg or kvm (default tcg, or "
                   "$DAXFUZZ_QEMU_ACCEL)")
    kernel_arg(x)
    x.set_defaults(func=run_repro)
