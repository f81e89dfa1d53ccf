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

from daxfuzz.cli import count, duration
from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, InputError

TARGET = "7.2"
KERNEL_HELP = ("the kernel to boot: 7.2 (default, Debian sid's), 6.1 (Debian 12's, "
               "predicted by the legacy target), or a directory from `kernel build`")


def kernel_arg(p: argparse.ArgumentParser, dirs: bool = True) -> None:
    p.add_argument("--kernel", default="7.2", metavar="7.2|6.1|DIR" if dirs else "7.2|6.1",
                   help=KERNEL_HELP if dirs else "which guest to set up: 7.2 (default) or "
                   "6.1 (its own cache subfolder k6.1)")
    if dirs:
        p.add_argument("--target", metavar="NAME",
                       help="the kdax target predicting the kernel (default: 7.2, legacy "
                       "for 6.1; e.g. 7.2-fix-cow-pmd for a kernel built with fix.diff)")


def accel(text: str) -> str:
    """An --accel value (argparse checks a default taken from the environment too)."""
    if text not in ("tcg", "kvm"):
        raise argparse.ArgumentTypeError(f"{text!r}: tcg or kvm (from --accel, or "
                                         "$DAXFUZZ_QEMU_ACCEL when the flag is not given)")
    return text


def guest_args(p: argparse.ArgumentParser, trace_timeout: float) -> None:
    """--step-timeout, --trace-timeout and --accel: how a guest runs traces."""
    p.add_argument("--step-timeout", type=count(1, 3_600_000, "milliseconds"), default=2000,
                   metavar="MS",
                   help="how long a truncate/punch/reflink/umount may wait before it is "
                        "reported blocked (default 2000)")
    p.add_argument("--trace-timeout", type=duration, default=trace_timeout, metavar="S",
                   help="a guest silent this long inside one trace is killed (default "
                        f"{trace_timeout:g})")
    p.add_argument("--accel", type=accel, default=os.environ.get("DAXFUZZ_QEMU_ACCEL") or
                   "tcg", help="QEMU accelerator, tcg or kvm (default tcg: software, or "
                   "$DAXFUZZ_QEMU_ACCEL)")


def kernel_or_none(args: argparse.Namespace):
    """The guest kernel --kernel (and --target) name, or None after saying why not."""
    from daxfuzz.guest.kernels import resolve

    try:
        return resolve(args.kernel, getattr(args, "target", None))
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return None


def register(sub: argparse._SubParsersAction) -> None:
    from daxfuzz.cli.kernel_fuzz import register_fuzz
    from daxfuzz.cli.kernel_repro import register_repro
    from daxfuzz.cli.kernel_run import register_run

    p = sub.add_parser("kernel", help="replay traces on a real Linux kernel under QEMU")
    ks = p.add_subparsers(dest="kernel_command", metavar="{setup,run,repro,fuzz,reduce,build}")
    s = ks.add_parser("setup", help="fetch the sid kernel and host tools, build the guest")
    s.add_argument("--no-install", action="store_true",
                   help="do not apt-get install missing host packages; fail instead")
    s.add_argument("--refresh", action="store_true",
                   help="refetch the sid package lists and rebuild everything")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    kernel_arg(s, dirs=False)
    s.set_defaults(func=run_setup)
    register_run(ks)
    register_repro(ks)
    register_fuzz(ks)
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
