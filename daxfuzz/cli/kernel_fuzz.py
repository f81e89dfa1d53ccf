"""`daxfuzz kernel fuzz` and `daxfuzz kernel reduce`: print what the conformance
campaign (daxfuzz/guest/kfuzz.py) and the reduction on the guest
(daxfuzz/guest/kreduce.py) return.  The flags are in daxfuzz/cli/kernel.py."""

from __future__ import annotations

import argparse
import os
import sys
import time

from daxfuzz.cli import count, duration, duration_or_off, jobs, out_dir, out_file, seed
from daxfuzz.cli.kernel import guest_args, kernel_arg, kernel_or_none
from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE, InputError


def run_fuzz(args: argparse.Namespace) -> int:
    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.kfuzz import CLASSES, default_jobs, run_campaign

    kern = kernel_or_none(args)
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

    st = run_campaign(manifest, seconds=args.time, seed=args.seed,
                      jobs=args.jobs or default_jobs(),
                      out=args.out, batch=args.batch, accel=args.accel,
                      step_timeout_ms=args.step_timeout, trace_timeout=args.trace_timeout,
                      run_known=args.run_known, max_traces=args.max_traces, log=log,
                      progress=progress, target=kern.target,
                      no_ops=tuple(kern.unexpressible), reduce_seconds=args.reduce_time,
                      vcpus=args.vcpus)
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
    print(f"  {st.long_traces} traces ran 8 or more generated ops; steps compared (agreeing) "
          "per op: " + ", ".join(f"{k} {c} ({a})" for k, (c, a) in sorted(st.by_op.items())))
    print("  " + ", ".join(f"{c}: {st.by_class[c]}" for c in CLASSES)
          + (f"; hung: {', '.join(st.hung)}" if st.hung else "")
          + (f"; {st.failed_boots} boot(s) died before their first program (rebooted)"
             if st.failed_boots else "")
          + (f"; {len(st.spun)} trace(s) compared up to a killed reflink/exchange that "
             "ran on (the documented spin)" if st.spun else "")
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


def run_reduce(args: argparse.Namespace) -> int:
    from daxfuzz.guest.kernels import manifest as kernel_manifest
    from daxfuzz.guest.kreduce import reduce_file
    from daxfuzz.vocab.trace import read_trace

    try:
        read_trace(args.file)
    except InputError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    kern = kernel_or_none(args)
    if kern is None:
        return EXIT_BAD_INPUT
    manifest = kernel_manifest(kern)
    try:
        fig = reduce_file(manifest, args.file, seconds=args.reduce_time, output=args.output
                          or "", target=kern.target, run_opts={"step_timeout_ms": args.step_timeout,
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


def _guests(text: str) -> int:
    """A kernel fuzz --jobs value: 0 (the default, sized to the machine) or a job count."""
    return 0 if text == "0" else jobs(text)


def register_fuzz(ks: argparse._SubParsersAction) -> None:
    """Add this module's `daxfuzz kernel` subcommands to `ks`."""
    f = ks.add_parser(
        "fuzz", help="a conformance campaign: random traces in the guest against the port",
        description="Generate random op sequences (the random engine's codec, 4..30 ops, "
        "plus a teardown: release, munmap, unmount), run them in batches in the QEMU guest "
        "(one boot per batch, fresh files per trace) and compare each step with the "
        "port's prediction (7.2's; legacy's for --kernel 6.1) and the kernel's "
        "WARNING/BUG/Oops lines.  Every disagreement is "
        "stored in DIR/kernel-finding/ or DIR/model-gap/ (DIR/summary.json: the figures). "
        "Traces where the port predicts a kernel warning (a known 7.2 bug) are cut before "
        "it: each would cost a reboot.  The first finding of each kind (the same kernel "
        "report site, a hang, a model gap at the same op and results, or raw struct pages "
        "differing at the same op and fields) is reduced with "
        "the guest as the predicate, within --time: NAME.reduced.trace beside it.",
        epilog="exit codes: 0 every trace agreed, 1 a kernel finding or model gap was "
        "stored, 2 the guest is not set up / bad arguments")
    f.add_argument("--time", type=duration, required=True, metavar="T",
                   help="seconds to run, or e.g. 10m, 8h")
    f.add_argument("--seed", type=seed, default=0, metavar="S")
    f.add_argument("--jobs", type=_guests, default=0, metavar="N",
                   help="guests at once (default: one per core, at most 4, as memory "
                        "allows; each with 1 vCPU)")
    f.add_argument("--vcpus", type=count(0, 64, "a CPU count"), default=0, metavar="N",
                   help="CPUs of each guest (default: the host's cores shared out among "
                        "the --jobs guests, 1 or 2)")
    f.add_argument("--out", type=out_dir, default="kfuzz-out", metavar="DIR",
                   help="where disagreements and summary.json go (default kfuzz-out)")
    f.add_argument("--batch", type=count(0, 100_000, "a batch size"), default=0, metavar="N",
                   help="traces per boot (default: sized to the time left, at most 400)")
    f.add_argument("--max-traces", type=count(0, 999_999_999, "a trace count"), default=0,
                   metavar="N",
                   help="stop after N traces (default: run for --time)")
    f.add_argument("--run-known", action="store_true",
                   help="do not cut traces before a warning the port predicts")
    guest_args(f, trace_timeout=30)
    f.add_argument("--reduce-time", type=duration_or_off, default=300, metavar="S",
                   help="seconds to reduce each new kind of finding on the guest, within "
                        "--time (default 300; 0: no reduction)")
    kernel_arg(f)
    f.set_defaults(func=run_fuzz)
    d = ks.add_parser(
        "reduce", help="reduce a stored trace with the real kernel as the predicate",
        description="Run TRACE once in the guest to learn its kind of disagreement with the "
        "port (7.2's; legacy's for --kernel 6.1): a kernel report site, a hang, a "
        "forbidden SIGBUS/EIO, a model gap at "
        "one op and results, or raw struct pages differing at one op and fields: "
        "raw:OP:FIELDS; then reduce it: rounds of candidates (chunk removals, then "
        "single-op removals), all of a round in one boot, keeping the shortest that shows "
        "the same kind.  Writes STEM.reduced.trace beside TRACE (or -o FILE); in a finding "
        "folder of `kernel fuzz` also its README, C reproducer and console.",
        epilog="exit codes: 0 reduced trace written, 1 the trace shows no disagreement on "
        "the kernel (nothing written), 2 bad input / not expressible / guest not set up")
    d.add_argument("file", metavar="TRACE")
    d.add_argument("-o", "--output", type=out_file, metavar="FILE",
                   help="write the reduced trace here")
    d.add_argument("--reduce-time", type=duration, default=300, metavar="S",
                   help="budget in seconds, the first run included (default 300)")
    guest_args(d, trace_timeout=30)
    kernel_arg(d)
    d.set_defaults(func=run_reduce)
