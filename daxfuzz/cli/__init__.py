"""`daxfuzz` command line.  Errors are turned into exit codes here and only here:

    0  agreement (or, with --check, every trace behaved as its header expects)
    1  a divergence (a finding)
    2  bad input: a malformed trace/corpus file, flag or config (message names file:line)
    3  a daxfuzz bug
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from daxfuzz.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, ConfigError, DaxfuzzError, InputError

#: subcommand modules; each has register(subparsers) setting func=run(args) -> int
COMMANDS = (
    "daxfuzz.cli.replay",
    "daxfuzz.cli.bench",
    "daxfuzz.cli.targets",
    "daxfuzz.cli.fuzz",
    "daxfuzz.cli.reduce",
    "daxfuzz.cli.corpus",
    "daxfuzz.cli.explore",
    "daxfuzz.cli.zoo",
    "daxfuzz.cli.mutate",
    "daxfuzz.cli.coverage",
    "daxfuzz.cli.kernel",
    "daxfuzz.cli.report",
)


#: the target when neither --target nor the trace nor $DAXFUZZ_TARGET names one
DEFAULT_TARGET = "mainline"


def default_target() -> str:
    """$DAXFUZZ_TARGET, else DEFAULT_TARGET: what fuzz, replay and reduce fall back on."""
    return os.environ.get("DAXFUZZ_TARGET") or DEFAULT_TARGET


def trace_target(trace, flag: str | None, path: str) -> str:
    """The target to run `trace` (read from `path`) on: --target, else the trace's
    `target:` header, else :func:`default_target`.  An unknown name is an error naming
    where it came from: the flag, the header's file and line, or the variable."""
    from kdax.targets import get_target

    name = flag or trace.target or default_target()
    try:
        cls = get_target(name)
    except ConfigError as e:
        if flag:
            raise ConfigError(f"--target: {e}") from None
        if trace.target:
            raise InputError(str(e), path=path, line=trace.target_line) from None
        raise ConfigError(f"$DAXFUZZ_TARGET: {e}") from None
    return name if flag or trace.target else cls.name  # `mainline` prints as its version


def target(text: str) -> str:
    """A --target (--from, --to) value: a name `daxfuzz targets` lists."""
    from kdax.targets import get_target

    try:
        get_target(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def duration(text: str) -> float:
    """A --time value: seconds, or a number with s, m, h or d ("90", "10m", "8h")."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if not t.isascii():  # float() takes fullwidth and Arabic-Indic digits
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (ASCII digits)")
    mult = units.get(t[-1:], None)
    try:
        v = float(t[:-1] if mult else t) * (mult or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (seconds, or e.g. 90s, 10m, 8h)") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"duration must be positive and finite: {text!r}")
    return v


def duration_or_off(text: str) -> float:
    """A duration that may be 0, meaning off (kernel fuzz --reduce-time 0)."""
    if text.strip() in ("0", "0s"):
        return 0.0
    return duration(text)


def count(lo: int, hi: int, what: str = "a whole number"):
    """An argparse type: ASCII decimal in lo..hi (int() would take '+4', ' 4', '٤')."""
    from daxfuzz.textio import decimal, show

    def parse(text: str) -> int:
        v = decimal(text)
        if v is None:
            raise argparse.ArgumentTypeError(f"{show(text)} is not {what} (ASCII digits)")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range: {lo}..{hi}")
        return v
    parse.__name__ = what  # argparse names the type in "invalid <name> value"
    return parse


#: --jobs above this many workers per core only thrash (and start slowly): 4 x the cores
JOBS_PER_CORE = 4


def jobs(text: str) -> int:
    """A --jobs value: 1 .. JOBS_PER_CORE x the cores."""
    return count(1, JOBS_PER_CORE * (os.cpu_count() or 1), "a job count")(text)


def seed(text: str) -> int:
    """A --seed value: ASCII decimal, 0 .. 2**31-1."""
    return count(0, 2**31 - 1, "a seed")(text)


def out_dir(text: str) -> str:
    """A folder daxfuzz writes into: an existing directory, or a path it can create
    (not an existing file or device, nor under one)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    p = os.path.abspath(text)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if not os.path.isdir(p):
        where = "" if p == os.path.abspath(text) else f" ({p} is in the way)"
        raise argparse.ArgumentTypeError(f"{text}: not a directory{where}")
    if not os.access(p, os.W_OK | os.X_OK):  # read-only file system, no permission
        where = "" if p == os.path.abspath(text) else f" ({p})"
        raise argparse.ArgumentTypeError(f"{text}: cannot write there{where}")
    return text


def out_stream(text: str) -> str:
    """A file daxfuzz writes in place with open() (a console log, a C file): not empty,
    not a directory, in a folder it can write; a device or pipe is fine (`/dev/stderr`,
    a process substitution)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: a directory")
    if not os.path.exists(text):
        out_dir(os.path.dirname(os.path.abspath(text)))
    return text


def out_file(text: str) -> str:
    """A file daxfuzz writes (replaced atomically): not empty, not a directory, device
    or FIFO, in a folder it can write or create -- checked before the work, so a long
    run does not end on an unwritable path."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    real = os.path.realpath(text)  # a symlink's file is replaced, never the link
    if os.path.exists(real) and not os.path.isfile(real):
        raise argparse.ArgumentTypeError(f"{text}: not a regular file (refusing to replace it)")
    out_dir(os.path.dirname(real))
    return text


def in_dir(text: str) -> str:
    """An existing folder daxfuzz reads."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: not a directory" if os.path.exists(text)
                                         else f"{text}: no such directory")
    return text


def geometry(text: str):
    """A --geometry value (trace-header form)."""
    from daxfuzz.vocab.geometry import Geometry

    try:
        return Geometry.parse(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on bad flags: keep that
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="daxfuzz", description="stateful differential fuzzing of fs-DAX folio "
                "refcounts; exit codes:\n\n" + __doc__.split("\n", 1)[1].strip("\n"),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # not built yet
            raise
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from daxfuzz.core.watchdog import enable

    try:
        enable()  # a target step that never returns is a finding, not a hung command
        return int(args.func(args))
    except DaxfuzzError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("daxfuzz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if e.filename is None:  # not about a path: our bug, below
            return _internal()
        print(f"daxfuzz: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - the one place our own bugs become an exit code
        return _internal()


def _internal() -> int:
    traceback.print_exc()
    print("daxfuzz: internal error (a daxfuzz bug; please report it with the trace above)",
          file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
