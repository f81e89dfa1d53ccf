"""`daxfuzz kernel setup` and `daxfuzz kernel run TRACE...`: replay traces on a real
Linux 7.2 kernel (Debian sid's build) under QEMU, next to the oracle's predictions.

    daxfuzz kernel setup [--kernel 7.2|6.1] [--no-install] [--refresh]
    daxfuzz kernel run TRACE... [--kernel 7.2|6.1|DIR] [--table] [--show-program]
    daxfuzz kernel repro TRACE [-o repro.c] [--confirmed KERNEL] [--run [--kernel K]]
    daxfuzz kernel fuzz --time T [--kernel K] [--seed S] [--jobs N] [--out DIR]
                        [--reduce-time S]
    daxfuzz kernel reduce TRACE [--reduce-time S] [-o FILE]
    daxfuzz kernel build --patch FILE [--patch FILE...]

`--kernel` (daxfuzz/guest/kernels.py): 7.2 (default; the `7.2` target predicts it), 6.1
(Debian 12's, predicted by `legacy`), or a directory from `kernel build` (a patched 7.2,
predicted by `7.2`).  `build` (daxfuzz/guest/kbuild.py) builds linux-source-7.2 with
patches and everything built in, and prints the directory to pass to `--kernel`.

`run` boots the guest once per batch, runs each trace's translated program (see
daxfuzz/guest/translate.py for the geometry and what each op becomes) and prints per
step the oracle's prediction beside what the kernel did (done, blocked and for how
long, an error), plus WARNING/BUG/Oops/KASAN lines with the step that caused them.
Exit codes: 0 every expressible step agrees, 1 a difference (or a kernel warning, a hung
or crashed guest), 2 bad input or the guest is not set up.

`repro` writes one self-contained C file (daxfuzz/guest/repro.py) that replays the trace
with plain syscalls on any fs-DAX XFS, for an upstream report; `--run` also compiles it
and runs it in the guest (exit 1 when the kernel differed from a correct one: the
reproducer reproduced).

`fuzz` is a conformance campaign (daxfuzz/guest/kfuzz.py): random op sequences, run in
batches (one boot per batch), each step against the 7.2 port's prediction; every
disagreement is stored in a folder DIR/<class>/NAME/ (trace, console, C reproducer,
README; daxfuzz/guest/kfinding.py), classified kernel finding / model gap, and the
first of each kind is reduced with the guest as the predicate (daxfuzz/guest/
kreduce.py).  `reduce` does that reduction for one stored trace; `run --out DIR`
stores the disagreements of the traces it runs the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE, InputError

TARGET = "7.2"
KERNEL_HELP = ("the kernel to boot: 7.2 (default, Debian sid's), 6.1 (Debian 12's, "
               "predicted by the legacy target), or a directory from `kernel build`")


def _kernel_arg(p: argparse.ArgumentParser, dirs: bool = True) -> None:
    p.add_argument("--kernel", default="7.2", metavar="7.2|6.1|DIR" if dirs else "7.2|6.1",
                   help=KERNEL_HELP if dirs else "which guest to set up: 7.2 (default) or "
                   "6.1 (its own cache subfolder k6.1)")
    if dirs:
        p.add_argument("--target", metavar="NAME",
                       help="the kdax target predicting the kernel (default: 7.2, legacy "
                       "for 6.1; e.g. 7.2-fix-cow-pmd for a kernel built with fix.diff)")


def _guest_args(p: argparse.ArgumentParser, trace_timeout: float) -> None:
    """--step-timeout, --trace-timeout and --accel: how a guest runs traces."""
    p.add_argument("--step-timeout", type=int, default=2000, metavar="MS",
                   help="how long a truncate/punch/reflink/umount may wait before it is "
                        "reported blocked (default 2000)")
    p.add_argument("--trace-timeout", type=float, default=trace_timeout, metavar="S",
                   help="a guest silent this long inside one trace is killed (default "
                        f"{trace_timeout:g})")
    p.add_argument("--accel", choices=("tcg", "kvm"), default=os.environ.get(
        "DAXFUZZ_QEMU_ACCEL", "tcg"), help="QEMU accelerator (default tcg: software)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernel", help="replay traces on a real Linux kernel under QEMU")
    ks = p.add_subparsers(dest="kernel_command", metavar="{setup,run,repro,fuzz,reduce,build}")
    s = ks.add_parser("setup", help="fetch the sid kernel and host tools, build the guest")
    s.add_argument("--no-install", action="store_true",
                   help="do not apt-get install missing host packages; fail instead")
    s.add_argument("--refresh", action="store_true",
                   help="refetch the sid package lists and rebuild everything")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    _kernel_arg(s, dirs=False)
    s.set_defaults(func=run_setup)
    r = ks.add_parser("run", help="run traces in the guest beside the oracle's predictions")
    r.add_argument("files", nargs="+", metavar="TRACE")
    _guest_args(r, trace_timeout=120)
    r.add_argument("--boot-timeout", type=float, default=240, metavar="S",
                   help="a guest not ready this long after start is killed (default 240)")
    r.add_argument("--table", action="store_true",
                   help="end with a Markdown conformance table (one row per trace)")
    r.add_argument("--show-program", action="store_true", help="print each guest program")
    r.add_argument("--console", metavar="FILE", help="save the raw guest console to FILE")
    r.add_argument("-q", "--quiet", action="store_true", help="one line per trace")
    r.add_argument("--out", metavar="DIR",
                   help="store each trace that disagrees with the 7.2 port as a finding "
                        "folder DIR/kernel-finding/NAME/ or DIR/model-gap/NAME/ (trace, "
                        "console, C reproducer, README)")
    _kernel_arg(r)
    r.set_defaults(func=run_run)
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
    x.add_argument("-o", "--output", metavar="FILE",
                   help="write the C file here (default: standard output)")
    x.add_argument("--confirmed", action="append", default=[], metavar="KERNEL",
                   help="add to the header's 'Confirmed on' list (repeatable; the trace's "
                        "own 'confirmed on Linux X' notes are always listed)")
    x.add_argument("--run", action="store_true",
                   help="also compile it (gcc -static) and run it in the QEMU guest "
                        "(`daxfuzz kernel setup` first), printing its output")
    x.add_argument("--step-timeout", type=int, default=2000, metavar="MS",
                   help="with --run: the reproducer's STEP_TIMEOUT_MS (default 2000)")
    x.add_argument("--accel", choices=("tcg", "kvm"), default=os.environ.get(
        "DAXFUZZ_QEMU_ACCEL", "tcg"), help="with --run: QEMU accelerator (default tcg)")
    _kernel_arg(x)
    x.set_defaults(func=run_repro)
    f = ks.add_parser(
        "fuzz", help="a conformance campaign: random traces in the guest against the port",
        description="Generate random op sequences (the random engine's codec, 4..30 ops, "
        "plus a teardown: release, munmap, unmount), run them in batches in the QEMU guest "
        "(one boot per batch, fresh files per trace) and compare each step with the 7.2 "
        "port's prediction and the kernel's WARNING/BUG/Oops lines.  Every disagreement is "
        "stored in DIR/kernel-finding/ or DIR/model-gap/ (DIR/summary.json: the figures). "
        "Traces where the port predicts a kernel warning (a known 7.2 bug) are cut before "
        "it: each would cost a reboot.  The first finding of each kind (the same kernel "
        "report site, a hang, or a model gap at the same op and results) is reduced with "
        "the guest as the predicate, within --time: NAME.reduced.trace beside it.",
        epilog="exit codes: 0 every trace agreed, 1 a kernel finding or model gap was "
        "stored, 2 the guest is not set up / bad arguments")
    f.add_argument("--time", type=float, required=True, metavar="T",
                   help="seconds to run (a suffix m or h is not accepted: give seconds)")
    f.add_argument("--seed", type=int, default=0, metavar="S")
    f.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="guests at once (default 1; each takes 2 vCPUs)")
    f.add_argument("--out", default="kfuzz-out", metavar="DIR",
                   help="where disagreements and summary.json go (default kfuzz-out)")
    f.add_argument("--batch", type=int, default=0, metavar="N",
                   help="traces per boot (default: sized to the time left, at most 400)")
    f.add_argument("--max-traces", type=int, default=0, metavar="N",
                   help="stop after N traces (default: run for --time)")
    f.add_argument("--run-known", action="store_true",
                   help="do not cut traces before a warning the port predicts")
    _guest_args(f, trace_timeout=30)
    f.add_argument("--reduce-time", type=float, default=300, metavar="S",
                   help="seconds to reduce each new kind of finding on the guest, within "
                        "--time (default 300; 0: no reduction)")
    _kernel_arg(f)
    f.set_defaults(func=run_fuzz)
    d = ks.add_parser(
        "reduce", help="reduce a stored trace with the real kernel as the predicate",
        description="Run TRACE once in the guest to learn its kind of disagreement with the "
        "7.2 port (a kernel report site, a hang, a forbidden SIGBUS/EIO, or a model gap at "
        "one op and results), then reduce it: rounds of candidates (chunk removals, then "
        "single-op removals), all of a round in one boot, keeping the shortest that shows "
        "the same kind.  Writes STEM.reduced.trace beside TRACE (or -o FILE); in a finding "
        "folder of `kernel fuzz` also its README, C reproducer and console.",
        epilog="exit codes: 0 reduced trace written, 1 the trace shows no disagreement on "
        "the kernel (nothing written), 2 bad input / not expressible / guest not set up")
    d.add_argument("file", metavar="TRACE")
    d.add_argument("-o", "--output", metavar="FILE", help="write the reduced trace here")
    d.add_argument("--reduce-time", type=float, default=300, metavar="S",
                   help="budget in seconds, the first run included (default 300)")
    _guest_args(d, trace_timeout=30)
    d.set_defaults(func=run_reduce)
    b = ks.add_parser(
        "build", help="build a 7.2 kernel from linux-source-7.2 with patches, all built in",
        description="Build bzImage from Debian's linux-source-7.2 (fetched like `kernel "
        "setup` fetches sid's kernel) with `make tinyconfig` + daxfuzz/guest/kernel.config "
        "(everything the guest needs built in) and each --patch applied with patch -p1, on "
        "2 cores.  Cached by a hash of the source package, the fragment and the patches. "
        "Prints the directory to give `kernel run/fuzz/repro --kernel`.",
        epilog="exit codes: 0 built (or cached), 2 a patch does not apply, a tool is "
        "missing or the build failed")
    b.add_argument("--patch", action="append", default=[], metavar="FILE",
                   help="a patch to apply with patch -p1 (repeatable, in order)")
    b.add_argument("--no-install", action="store_true",
                   help="do not apt-get install missing build tools; fail instead")
    b.set_defaults(func=run_build)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_setup(args: argparse.Namespace) -> int:
    from daxfuzz.guest.build import setup
    from daxfuzz.guest.kernels import NAMES, setup_61

    if args.kernel not in NAMES:
        print(f"daxfuzz: error: --kernel {args.kernel!r}: setup takes one of "
              f"{', '.join(NAMES)} (a built kernel comes from `kernel build`)", file=sys.stderr)
        return EXIT_BAD_INPUT
    t0 = time.monotonic()
    m = (setup_61 if args.kernel == "6.1" else setup)(
        install=not args.no_install, refresh=args.refresh,
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


def predictions(trace, target: str = TARGET) -> tuple[list[str], list[str]]:
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


def _name(i: int, path: str) -> str:
    base = os.path.basename(path).rsplit(".", 1)[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in base)
    return f"{i:03d}-{safe}"[:60]


def _kernel(args: argparse.Namespace):
    from daxfuzz.guest.kernels import resolve

    try:
        return resolve(args.kernel, getattr(args, "target", None))
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return None


def run_run(args: argparse.Namespace) -> int:
    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.kernels import translate_for
    from daxfuzz.guest.qemu import run_programs
    from daxfuzz.guest.results import compare
    from daxfuzz.vocab.trace import read_trace

    kern = _kernel(args)
    if kern is None:
        return EXIT_BAD_INPUT
    items = []
    bad = False
    for i, path in enumerate(args.files):
        try:
            tr = read_trace(path)
            prog = translate_for(kern, tr, path)
            oracle, port = predictions(tr, kern.target)
        except InputError as e:
            print(f"daxfuzz: error: {e}", file=sys.stderr)
            bad = True
            continue
        items.append((_name(i, path), path, tr, prog, oracle, port))
    if not items:
        return EXIT_BAD_INPUT
    manifest = kernel_manifest(kern)
    if args.show_program:
        for name, path, _tr, prog, _o, _p in items:
            print(f"== program {name} ({path})")
            print(prog.text)
    from daxfuzz.guest.kernels import raw_check
    from daxfuzz.guest.pages import pending_windows, placed_steps, summary, totals

    raw = raw_check(manifest, kern.target)  # raw struct pages beside the port's (pages.py)
    t0 = time.monotonic()
    res = run_programs(manifest, [(n, raw.text(n, tr, p.text)) for n, _, tr, p, _, _ in items],
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
        rawsteps, gp = raw.compare(name, gt.pages, len(rows),
                                   pending_windows(gt.steps, gt.pending))
        r_cmp, r_agree = totals(rawsteps)
        r_placed = placed_steps(rawsteps)
        n_agree = sum(r.verdict == "agree" for r in rows)
        n_diff = sum(r.verdict == "DIFFER" for r in rows)
        n_na = sum(r.verdict == "n/a" for r in rows)
        n_miss = sum(r.verdict == "missing" for r in rows)
        warn = len(gt.kernel)
        if not args.quiet:
            print(f"== {path}  ({kern.label} under QEMU; {tr.geometry.text()})")
            for info in gt.info:
                print(f"   guest: {info}")
            for r in rows:
                mark = {"agree": " ", "DIFFER": "!", "n/a": "-", "missing": "?"}[r.verdict]
                pd = r.predicted
                if port[r.step - 1] != r.predicted:
                    pd += f" ({kern.target} port: {port[r.step - 1]})"
                print(f"{mark}{r.step:3}  {r.op:<52} oracle: {pd:<16} kernel: {r.kernel}")
                rs = rawsteps.get(r.step)
                if rs is not None and rs.verdict():
                    mark = "!" if rs.diffs else "~" if rs.placed else " "
                    print(f"{mark}       {rs.describe()}")
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
            if gp is not None:
                print(f"   {summary(gp)}")
        verdict = ("agree" if not (n_diff or n_miss or gt.error or warn
                                   or r_cmp - r_agree - r_placed)
                   else "DIFFER")
        if verdict != "agree":
            worst = EXIT_DIVERGENCE
        print(f"{path}: {verdict} on the kernel: {n_agree} agree, {n_diff} differ, "
              f"{n_na} not expressible, {n_miss} missing, {warn} kernel warning line(s)"
              + (f"; {gt.error}" if gt.error else "")
              + (f"; raw pages: {r_agree} of {r_cmp} steps agree" if gp is not None else "")
              + (f", {r_placed} differ by the kernel's block placement" if r_placed else ""))
        diffs = "; ".join(f"{r.step}: {r.op.split()[0]} oracle {r.predicted} / kernel "
                          f"{r.kernel}" for r in rows if r.verdict in ("DIFFER", "missing"))
        if args.out:
            store_run_finding(args.out, name, path, tr, gt, res.console)
        table.append((os.path.basename(path), len(rows), n_agree, n_diff, n_na, n_miss, warn,
                      f"{r_agree}/{r_cmp}",
                      diffs or ("; ".join(sorted(set(prog.skipped.values()))) if n_na else "")))
    print(f"kernel run ({kern.label}, {manifest.get('kernel_version', '?')}): {len(items)} "
          f"trace(s), {res.boots} boot(s), {wall:.1f} s wall"
          + (f"; hung: {', '.join(res.hung)}" if res.hung else ""))
    if args.table:
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
        if raw.why:
            print(f"\nraw pages not compared: {raw.why}")
    return EXIT_BAD_INPUT if bad else worst


def store_run_finding(out: str, prog_name: str, path: str, tr, gt, console: str) -> None:
    """`kernel run --out`: judge the trace against the 7.2 port as `kernel fuzz` does
    and store a disagreement's finding folder (daxfuzz/guest/kfinding.py)."""
    from daxfuzz.guest.kfinding import write_finding
    from daxfuzz.guest.kfuzz import console_of, judge
    from daxfuzz.guest.kreduce import candidate_case

    stem = "".join(c if c.isalnum() or c in "-_" else "_"
                   for c in os.path.basename(path).rsplit(".", 1)[0])[:60] or "trace"
    case = candidate_case(stem, tr.geometry, tr.ops)
    if case is None:
        return  # a step the guest cannot express: judged step by step above, not stored
    v = judge(case, gt)
    if v.cls == "agree":
        return
    desc = [f"`daxfuzz kernel run {path}`: a {v.cls} on Linux {TARGET} under QEMU",
            *tr.description, *v.notes]
    p = write_finding(out, case, v, gt, console_of(console, prog_name), desc)
    print(f"  {v.cls}: stored {os.path.dirname(p)}/")


def run_reduce(args: argparse.Namespace) -> int:
    from daxfuzz.guest.build import load_manifest
    from daxfuzz.guest.kreduce import reduce_file

    if not args.reduce_time > 0 or args.step_timeout <= 0 or not args.trace_timeout > 0:
        print("daxfuzz: error: --reduce-time, --step-timeout and --trace-timeout must be "
              "positive", file=sys.stderr)
        return EXIT_BAD_INPUT
    from daxfuzz.vocab.trace import read_trace

    try:
        read_trace(args.file)
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    manifest = load_manifest()
    try:
        fig = reduce_file(manifest, args.file, seconds=args.reduce_time, output=args.output
                          or "", run_opts={"step_timeout_ms": args.step_timeout,
                                           "trace_timeout": args.trace_timeout,
                                           "accel": args.accel},
                          log=lambda s: print(f"kernel reduce: {s}", file=sys.stderr,
                                              flush=True))
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if fig.get("why") and not fig["path"]:
        print(f"{args.file}: not reduced: {fig['why']}")
        for n in fig.get("verdict", [])[:5]:
            print(f"  {n}")
        return EXIT_DIVERGENCE if fig["class"] == "agree" or not fig["kind"] else EXIT_AGREE
    print(f"{args.file}: {fig['class']}: {fig['kind']}")
    print(f"  reduced {fig['before']} -> {fig['after']} ops in {fig['rounds']} round(s), "
          f"{fig['boots']} boot(s), {fig['seconds']:.0f} s"
          + ("" if fig["complete"] else "; not 1-minimal (the budget stopped it)")
          + f": {fig['path']}")
    return EXIT_AGREE


def run_repro(args: argparse.Namespace) -> int:
    import shutil
    import subprocess
    import tempfile

    from daxfuzz.guest.repro import compile_command, repro_source
    from daxfuzz.textio import read_text
    from daxfuzz.vocab.trace import parse_trace

    kern = _kernel(args)
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

    if shutil.which("gcc") is None:
        print("daxfuzz: error: --run needs gcc on the host", file=sys.stderr)
        return EXIT_BAD_INPUT
    manifest = kernel_manifest(kern)
    with tempfile.TemporaryDirectory(prefix="daxfuzz-repro-") as tmp:
        c, exe = os.path.join(tmp, "repro.c"), os.path.join(tmp, "repro")
        with open(c, "w", encoding="utf-8") as f:
            f.write(src)
        p = subprocess.run(compile_command(c, exe), capture_output=True, text=True)
        if p.returncode:
            print(f"daxfuzz: error: gcc failed:\n{p.stderr[-3000:]}", file=sys.stderr)
            return EXIT_BAD_INPUT
        with open(exe, "rb") as f:
            binary = f.read()
    t_built = time.monotonic()
    res = run_programs(manifest, [("repro", binary)], step_timeout_ms=args.step_timeout,
                       accel=args.accel, log=lambda s: print(s, file=sys.stderr))
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


def guest_output(console: str, name: str) -> str:
    """The console lines of program `name`, kernel printk lines included: from its first
    line (the mount's noise before it is left out) to the guest's ``@@T end``."""
    out, inside, started = [], False, False
    for raw in console.replace("\r", "").splitlines():
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


def run_fuzz(args: argparse.Namespace) -> int:
    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.kfuzz import CLASSES, run_campaign

    if args.time <= 0 or args.jobs < 1 or args.reduce_time < 0:
        print("daxfuzz: error: --time and --jobs must be positive, --reduce-time not "
              "negative", file=sys.stderr)
        return EXIT_BAD_INPUT
    kern = _kernel(args)
    if kern is None:
        return EXIT_BAD_INPUT
    manifest = kernel_manifest(kern)
    tty = sys.stderr.isatty()
    t0 = time.monotonic()
    last = [0.0]

    def progress(st) -> None:
        now = time.monotonic()
        if now - last[0] < (0.5 if tty else 30):
            return
        last[0] = now
        el = now - t0
        line = (f"kernel fuzz: {el:5.0f} s  {st.started} begun, {st.traces} judged "
                f"({60 * st.traces / el if el else 0:.0f}/min)  agree {st.agree}  "
                f"kernel findings {st.by_class['kernel finding']}  model gaps "
                f"{st.by_class['model gap']}  boots {st.boots}")
        print(("\r" + line + "\x1b[K") if tty else line, end="" if tty else "\n",
              file=sys.stderr, flush=True)

    def log(s: str) -> None:
        print(("\r\x1b[K" if tty else "") + s, file=sys.stderr, flush=True)

    st = run_campaign(manifest, seconds=args.time, seed=args.seed, jobs=args.jobs,
                      out=args.out, batch=args.batch, accel=args.accel,
                      step_timeout_ms=args.step_timeout, trace_timeout=args.trace_timeout,
                      run_known=args.run_known, max_traces=args.max_traces, log=log,
                      progress=progress, target=kern.target,
                      no_ops=tuple(kern.unexpressible),
                      # kreduce judges candidates with the 7.2 port: not another target's
                      reduce_seconds=args.reduce_time if kern.target == TARGET else 0)
    if tty:
        print(file=sys.stderr)
    mins = st.seconds / 60
    print(f"kernel fuzz: {st.traces} traces on {kern.label} (target {kern.target}), "
          f"{st.steps} steps compared in {st.seconds:.0f} s "
          f"({st.traces / mins if mins else 0:.0f} traces/min, {st.steps / mins if mins else 0:.0f}"
          f" steps/min; {st.boots} boots, {st.batches} batches, guest {st.guest_seconds:.0f} s"
          f", generating {st.gen_seconds:.1f} s)")
    print(f"  agree: {st.agree} traces, {st.agreed_steps} of {st.steps} steps; "
          f"{st.cut} traces cut before a warning the port predicts; raw struct pages: "
          f"{st.raw_agreed} of {st.raw_steps} steps agree"
          + (f", {st.raw_placement} differ by the kernel's block placement"
             if st.raw_placement else ""))
    print("  " + ", ".join(f"{c}: {st.by_class[c]}" for c in CLASSES)
          + (f"; hung: {', '.join(st.hung)}" if st.hung else "")
          + (f"; batches where the guest ran nothing: {st.never_booted}"
             if st.never_booted else ""))
    for cls, path, notes in st.stored:
        print(f"  {cls}: {path}: {notes[0] if notes else ''}")
    for r in st.reductions:
        if r.get("skipped"):
            print(f"  not reduced {r['name']} ({r['before']} ops): {r['skipped']}")
        else:
            print(f"  reduced {r['name']} ({r['class']}: {r['kind']}): {r['before']} -> "
                  f"{r['after']} ops, {r['rounds']} rounds, {r['boots']} boots, "
                  f"{r['seconds']:.0f} s" + ("" if r["complete"] else ", not 1-minimal")
                  + (f": {r['path']}" if r.get("path") else f" ({r.get('why', '')})"))
    print(f"  summary: {os.path.join(args.out, 'summary.json')}; findings: one folder each "
          f"under {args.out}/ (README.md, traces, repro.c); `daxfuzz report {args.out}` "
          "lists them")
    return EXIT_DIVERGENCE if st.stored else EXIT_AGREE


def run_build(args: argparse.Namespace) -> int:
    from daxfuzz.guest.kbuild import build

    if not args.patch:
        print("daxfuzz: note: no --patch: building the stock source", file=sys.stderr)
    info = build(args.patch, install=not args.no_install,
                 log=lambda s: print(f"build: {s}", file=sys.stderr))
    how = "cached" if info.get("cached") else "built"
    print(f"{how}: {info['dir']}  (Linux {info.get('kernel_release', '?')}, patches: "
          f"{', '.join(info['patches']) or 'none'}; make -j{info['jobs']} bzImage took "
          f"{info['build_seconds']:.0f} s)")
    print(f"run it: daxfuzz kernel run --kernel {info['dir']} TRACE...")
    return EXIT_AGREE
