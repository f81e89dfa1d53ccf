"""`daxfuzz reduce FILE`: a diverging trace or an atheris crash input -> 1-minimal trace.

A file named as libFuzzer names its inputs -- an artifact (``crash-*``, ``timeout-*``,
...) or a corpus entry (40 hex digits) -- is raw codec bytes; any other file is a
trace, and one that does not parse is an error naming file and line.  `daxfuzz
replay` takes the same files.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from daxfuzz.cli import DEFAULT_TARGET, geometry, out_dir, out_file, trace_target
from daxfuzz.errors import EXIT_AGREE, EXIT_DIVERGENCE, ConfigError, InputError
from daxfuzz.textio import read_file, read_text, write_text_atomic
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import Trace, parse_trace, write_trace_atomic
from fuzz.codec import decode

_ARTIFACTS = ("crash-", "timeout-", "leak-", "oom-", "slow-unit-")


def is_raw_input(path: str) -> bool:
    """Is `path` named as libFuzzer names its inputs: an artifact (crash-<sha1>, ...) or
    a corpus entry (<sha1>)?  Those are codec bytes; every other file is a trace, and
    so is any ``.trace`` file (``crash-<sha1>.reduced.trace``, what reducing one writes:
    read as bytes it decoded to other ops and replayed as "agree")."""
    name = os.path.basename(path)
    if name.endswith(".trace"):
        return False
    return name.startswith(_ARTIFACTS) or re.fullmatch(r"[0-9a-f]{40}", name) is not None


def load_input(path: str, target: str | None = None, g: Geometry | None = None) -> Trace:
    """Read `path`: a libFuzzer input (:func:`is_raw_input`) as codec bytes, anything
    else as a trace; the target/geometry flags override.  `daxfuzz replay` reads its
    files through this too, so both commands take the same files."""
    if not is_raw_input(path):
        t = parse_trace(read_text(path), path=path)  # InputError names file and line
        if target is None and g is None:
            return t
        return Trace(ops=t.ops, target=target or t.target, geometry=g or t.geometry,
                     expect=t.expect, description=t.description, target_line=t.target_line)
    data = read_file(path)  # a regular file, bounded: InputError naming it otherwise
    env = os.environ.get("DAXFUZZ_GEOMETRY")  # what the atheris run was given
    if g is None and env:
        try:
            g = Geometry.parse(env)
        except ConfigError as e:
            raise ConfigError(f"$DAXFUZZ_GEOMETRY: {e}") from None
    g = g or DEFAULT
    ops = tuple(decode(data, g))
    if not ops:
        raise InputError(f"{len(data)} input bytes decode to no ops: nothing to run", path=path)
    return Trace(ops=ops, target=target, geometry=g,
                 description=(f"decoded from {len(data)} input bytes of "
                              f"{os.path.basename(path)}",))


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.progress import aside_note
    from daxfuzz.core.emit import emit_pytest, save_finding
    from daxfuzz.core.reduce import reduce_divergence

    if args.output and os.path.exists(args.output) and os.path.samefile(args.output,
                                                                          args.file):
        raise InputError("the reduced trace would replace its input (its other expect "
                         "lines and description with it): name another -o FILE",
                         path=args.output)
    t = load_input(args.file, None, args.geometry)
    target = trace_target(t, args.target, args.file)
    t = Trace(ops=t.ops, target=target, geometry=t.geometry, expect=t.expect,
              description=t.description)
    if args.findings:
        from daxfuzz.core.runner import run_ops

        div, _ = run_ops(target, t.geometry, t.ops)
        if div is None:
            print(f"{args.file}: agrees on {target}: nothing to reduce", file=sys.stderr)
            return EXIT_AGREE
        saved = save_finding(args.findings, t, engine="input")
        print(open(saved["trace_path"], encoding="utf-8").read(), end="")
        print(f"# {saved['signature']}: {saved['original_ops']} -> {saved['ops']} ops; "
              f"wrote {saved['trace_path']} and {saved['test_path']}{aside_note(saved)}",
              file=sys.stderr)
        return EXIT_DIVERGENCE
    red = reduce_divergence(target, t.geometry, t.ops,
                            description=(f"reduced from {len(t.ops)} ops of "
                                         f"{os.path.basename(args.file)}",))
    if red is None:
        print(f"{args.file}: agrees on {target}: nothing to reduce", file=sys.stderr)
        return EXIT_AGREE
    out = args.output or _default_output(args.file)
    try:  # first: an unwritable `out` loses nothing
        sys.stdout.write(str(red.trace))
        sys.stdout.flush()
    except OSError:  # a closed pipe, a full disk: the file below still gets it
        pass
    write_trace_atomic(out, red.trace)
    print(f"# {red.divergence.signature()}: {red.original_len} -> {len(red.trace.ops)} ops "
          f"in {red.runs} runs ({red.seconds:.2f} s); wrote {out}", file=sys.stderr)
    if args.emit_test:
        stem = re.sub(r"\W+", "_", os.path.basename(out).removesuffix(".trace"), flags=re.A)
        test = os.path.join(os.path.dirname(out) or ".", f"test_{stem.strip('_')}.py")
        write_text_atomic(test, emit_pytest(red.trace, red.divergence))
        print(f"# wrote {test}", file=sys.stderr)
    return EXIT_DIVERGENCE


def _default_output(path: str) -> str:
    base = path.removesuffix(".trace")
    return base + ".reduced.trace"


def register(subparsers) -> None:
    """Add `daxfuzz reduce`."""
    p = subparsers.add_parser("reduce", help="reduce a diverging trace or crash input",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="trace file or atheris crash-* input")
    p.add_argument("--target", help="target (default: the trace's, else $DAXFUZZ_TARGET, "
                   f"else {DEFAULT_TARGET})")
    p.add_argument("--geometry", type=geometry, help="geometry (trace-header form) for crash bytes")
    p.add_argument("-o", "--output", type=out_file,
                   help="reduced trace path (default FILE.reduced.trace)")
    p.add_argument("--emit-test", action="store_true",
                   help="also write a pytest reproducer beside the reduced trace")
    p.add_argument("--findings", type=out_dir,
                   help="save as a finding in this folder (trace, raw, test)")
    p.set_defaults(func=run)
