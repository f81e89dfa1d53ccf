"""`daxfuzz exhaust` and `daxfuzz diff`."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from daxfuzz.cli import count, duration, jobs, out_dir, target
from daxfuzz.errors import EXIT_AGREE, EXIT_DIVERGENCE, ConfigError, InputError
from daxfuzz.home import default as default_path
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import LIMITS, Geometry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exhaust", help="check every op sequence up to K ops over a small world")
    p.add_argument("--target", type=target, default="7.2")
    p.add_argument("--max-ops", type=count(1, 64, "an op count"), default=4, metavar="K")
    p.add_argument("--world", choices=("small", "deep"), default="small",
                   help="small (default): 8 pfns, 2 files x 4 pages, 2 VMA slots, 2 "
                   "handles, K = 4 in ~2 min; deep: 6 pfns, 2 files x 2 pages (one PMD "
                   "each), 1 VMA slot, 1 handle, K = 6 in ~10 min with --jobs 2.  The "
                   "flags below change single sizes of either")
    p.add_argument("--pmd-order", type=count(1, LIMITS["pmd_order"]), default=None)
    p.add_argument("--pages", type=count(1, LIMITS["pages"]), default=None)
    p.add_argument("--inodes", type=count(1, LIMITS["inodes"]), default=None)
    p.add_argument("--processes", type=count(1, LIMITS["mms"]), default=None)
    p.add_argument("--vmas", type=count(1, LIMITS["vmas"]), default=None)
    p.add_argument("--handles", type=count(1, LIMITS["handles"]), default=None)
    p.add_argument("--file-pages", type=count(1, LIMITS["max_file_pages"]), default=None)
    p.add_argument("--ops", default="", metavar="KINDS",
                   help="only these op kinds, comma-separated (e.g. mmap,fault,reflink): a "
                   "smaller scope that reaches deeper; default every kind")
    p.add_argument("--jobs", type=jobs, default=1)
    p.add_argument("--time", type=duration, default=600.0, help="stop after this many seconds")
    p.add_argument("--all", action="store_true", help="keep going after the first divergence")
    p.add_argument("--findings", type=out_dir, default=None,
                   help="where counterexamples are saved (default findings/ in DAXFUZZ_HOME "
                        "or the checkout)")
    p.set_defaults(func=run_exhaust)

    d = sub.add_parser("diff", help="behaviour that differs between two targets, grouped")
    d.add_argument("--from", dest="a", type=target, required=True, metavar="A")
    d.add_argument("--to", dest="b", type=target, required=True, metavar="B")
    d.add_argument("corpus", nargs="*", help="trace files or folders (default: corpus/ "
                   "and findings/)")
    d.add_argument("--max-ops", type=count(0, 64, "an op count"), default=3,
                   help="exhaustive depth (0: none)")
    d.add_argument("--time", type=duration, default=300.0)
    d.set_defaults(func=run_diff)


def _geometry(a: argparse.Namespace) -> Geometry:
    from daxfuzz.explore.exhaust import WORLDS

    g = WORLDS[a.world]
    sizes = {"pages": ("--pages", a.pages), "pmd_order": ("--pmd-order", a.pmd_order),
             "inodes": ("--inodes", a.inodes), "mms": ("--processes", a.processes),
             "vmas": ("--vmas", a.vmas), "handles": ("--handles", a.handles),
             "file_pages": ("--file-pages", a.file_pages),
             "max_file_pages": ("--file-pages", a.file_pages)}
    given = {k: v for k, (_flag, v) in sizes.items() if v is not None}
    try:
        return replace(g, **given)
    except ConfigError as e:  # name the flags, not the geometry's field names
        names = sorted({sizes[k][0] for k in given})
        raise ConfigError(f"{'/'.join(names) or '--world'}: {e}") from None


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def run_exhaust(args: argparse.Namespace) -> int:
    from daxfuzz.explore.exhaust import exhaust
    from kdax.targets import get_target

    get_target(args.target)
    args.findings = args.findings or default_path("findings")
    g = _geometry(args)
    kinds = [k.strip() for k in args.ops.split(",") if k.strip()]
    if args.ops and not kinds:
        raise ConfigError(f"--ops {args.ops!r}: no op kind named")
    bad = [k for k in kinds if k not in O.BY_NAME]
    if bad:
        raise ConfigError(f"--ops: unknown op kind(s) {', '.join(bad)}; kinds are "
                          f"{', '.join(O.BY_NAME)}")
    print(f"daxfuzz exhaust: target {args.target}, up to {args.max_ops} ops, "
          f"geometry {g.text()}, {args.jobs} job(s)"
          + (f", ops {','.join(kinds)}" if kinds else ""))
    res = exhaust(args.target, g, args.max_ops, seconds=args.time,
                  stop_at_first=not args.all, jobs=args.jobs, progress=_progress,
                  kinds=kinds)
    for ops, d in res.counterexamples[:10]:
        print(f"\ncounterexample ({len(ops)} ops, {d.signature()}):")
        for op in ops:
            print(f"  {op}")
        print(d.report())
    if res.counterexamples:
        _save(args, g, res)
    if not res.complete:
        print(f"(time limit: depth {res.depth + 1} was not finished)")
    print(res.verdict())
    return EXIT_DIVERGENCE if res.counterexamples else EXIT_AGREE


def _save(args: argparse.Namespace, g: Geometry, res) -> None:
    from daxfuzz.core.emit import save_finding
    from daxfuzz.vocab.trace import Trace

    seen = set()
    for ops, d in res.counterexamples:
        if d.signature() in seen:
            continue
        seen.add(d.signature())
        raw = Trace(tuple(ops), target=args.target, geometry=g,
                    expect=f"divergence {d.signature()}",
                    description=(f"found by daxfuzz exhaust (shortest, {len(ops)} ops)",))
        saved = save_finding(args.findings, raw, engine="exhaust")
        print(f"  {saved['signature']}: {saved['ops']} ops  {saved['trace_path']}")


def _traces(paths: list[str]) -> list[str]:
    """The .trace files under each folder (symlinked folders not followed: a link back
    up made recursive glob count one trace dozens of times, or never end), and each
    file as given."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(root, n) for root, _dirs, files in os.walk(p)
                          for n in files if n.endswith(".trace"))
        else:
            out.append(p)
    return out


def run_diff(args: argparse.Namespace) -> int:
    from daxfuzz.explore.exhaust import SMALL, TargetDiff
    from daxfuzz.vocab.trace import read_trace

    files: list[str] = []
    for p in args.corpus or [p for p in (default_path("corpus"), default_path("findings"))
                             if os.path.isdir(p)]:
        found = _traces([p])
        if args.corpus and not found:  # a folder named, holding no trace
            raise InputError("no .trace file in this folder (name trace files or folders "
                             "holding them)", path=p)
        files += found
    diff = TargetDiff(args.a, args.b)
    for path in files:
        t = read_trace(path)
        diff.add(t.geometry, t.ops)
    print(f"replayed {len(files)} traces", file=sys.stderr)
    if args.max_ops > 0:
        diff.add_exhaustive(SMALL, args.max_ops, args.time, progress=_progress)
    print(diff.report())
    return EXIT_AGREE
