"""`daxfuzz reduce FILE`: a diverging trace or an atheris crash input -> 1-minimal trace.

A file that is UTF-8 text and parses as a trace is a trace; a libFuzzer artifact
(``crash-*``, ``timeout-*``, ...) or a file that is not UTF-8 is raw codec bytes.
Text that looks like a trace but does not parse is an error naming file and line.
"""

from __future__ import annotations

import argparse
import os
import sys

from daxfuzz.codec import decode
from daxfuzz.errors import EXIT_AGREE, EXIT_DIVERGENCE, InputError
from daxfuzz.geometry import DEFAULT, Geometry
from daxfuzz.trace import HEADER_KEYS, Trace, parse_trace, write_trace_atomic

_ARTIFACTS = ("crash-", "timeout-", "leak-", "oom-", "slow-unit-")


def load_input(path: str, target: str | None, g: Geometry | None) -> Trace:
    """Read `path` as a trace, else as codec bytes; the target/geometry flags override."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    text = None
    if not os.path.basename(path).startswith(_ARTIFACTS):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None and _looks_like_trace(text):
        t = parse_trace(text, path=path)  # InputError names the line
        g2 = g or t.geometry
        return Trace(ops=t.ops, target=target or t.target, geometry=g2, expect=t.expect,
                     description=t.description)
    env = os.environ.get("DAXFUZZ_GEOMETRY")  # what the atheris run was given
    g = g or (Geometry.parse(env) if env else DEFAULT)
    return Trace(ops=tuple(decode(data, g)), target=target, geometry=g,
                 description=(f"decoded from {len(data)} input bytes of "
                              f"{os.path.basename(path)}",))


def _looks_like_trace(text: str) -> bool:
    from daxfuzz.ops import BY_NAME

    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word = line.split()[0].rstrip(":")
        return word in BY_NAME or word in HEADER_KEYS
    return True  # empty or comments only: an (empty) trace


def run(args: argparse.Namespace) -> int:
    from daxfuzz.emit import emit_pytest, save_finding
    from daxfuzz.reduce import reduce_divergence

    g = Geometry.parse(args.geometry) if args.geometry else None
    t = load_input(args.file, args.target, g)
    target = t.target or os.environ.get("DAXFUZZ_TARGET")
    if target is None:
        raise InputError("no target: the input names none; pass --target", path=args.file)
    t = Trace(ops=t.ops, target=target, geometry=t.geometry, expect=t.expect,
              description=t.description)
    if args.findings:
        from daxfuzz.runner import run_ops

        div, _ = run_ops(target, t.geometry, t.ops)
        if div is None:
            print(f"{args.file}: agrees on {target}: nothing to reduce", file=sys.stderr)
            return EXIT_AGREE
        saved = save_finding(args.findings, t, engine="input")
        print(open(saved["trace_path"], encoding="utf-8").read(), end="")
        print(f"# {saved['signature']}: {saved['original_ops']} -> {saved['ops']} ops; "
              f"wrote {saved['trace_path']} and {saved['test_path']}", file=sys.stderr)
        return EXIT_DIVERGENCE
    red = reduce_divergence(target, t.geometry, t.ops,
                            description=(f"reduced from {len(t.ops)} ops of "
                                         f"{os.path.basename(args.file)}",))
    if red is None:
        print(f"{args.file}: agrees on {target}: nothing to reduce", file=sys.stderr)
        return EXIT_AGREE
    out = args.output or _default_output(args.file)
    write_trace_atomic(out, red.trace)
    sys.stdout.write(str(red.trace))
    print(f"# {red.divergence.signature()}: {red.original_len} -> {len(red.trace.ops)} ops "
          f"in {red.runs} runs ({red.seconds:.2f} s); wrote {out}", file=sys.stderr)
    if args.emit_test:
        test = os.path.join(os.path.dirname(out) or ".", "test_" + os.path.basename(
            out).removesuffix(".trace").replace("-", "_").replace(".", "_") + ".py")
        with open(test, "w", encoding="utf-8") as fh:
            fh.write(emit_pytest(red.trace, red.divergence))
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
    p.add_argument("--target", help="target (default: the trace's, else $DAXFUZZ_TARGET)")
    p.add_argument("--geometry", help="geometry (trace-header form) for crash bytes")
    p.add_argument("-o", "--output", help="reduced trace path (default FILE.reduced.trace)")
    p.add_argument("--emit-test", action="store_true",
                   help="also write a pytest reproducer beside the reduced trace")
    p.add_argument("--findings", help="save as a finding in this folder (trace, raw, test)")
    p.set_defaults(func=run)
