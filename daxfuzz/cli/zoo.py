"""`daxfuzz zoo --engine E --budget S [--jobs N]`: the bug-finding benchmark."""

from __future__ import annotations

import argparse
import sys

from daxfuzz.cli import duration, jobs, out_dir, seed
from daxfuzz.errors import ConfigError
from daxfuzz.textio import show


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="run each engine on every zoo variant; table of results")
    p.add_argument("--engine", action="append",
                   choices=["random", "hypothesis", "atheris", "portfolio", "exhaust"],
                   help="engine(s) to measure (repeatable; default: random, hypothesis, "
                   "atheris; exhaust runs once per variant, seeds do not apply)")
    p.add_argument("--budget", type=duration, default=None,
                   help="time per variant and seed: seconds, or 10m (default 60; with "
                        "--deep 600)")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seed list")
    p.add_argument("--jobs", type=jobs, default=1, help="parallel runs, at most 4 per core")
    p.add_argument("--variant", action="append",
                   help="only these variants (repeatable; with --deep, deep row names)")
    p.add_argument("--deep", action="store_true",
                   help="the deep rows instead of the zoo: how long each engine takes to "
                        "find, from scratch, a real divergence the corpus documents (7.2's "
                        "CoW/PTE-under-PMD-entry nrpages leak, 6.15's stale index, 7.2's mixed "
                        "PTE-then-PMD share); only that bug's signature counts")
    p.add_argument("--out", type=out_dir, default="zoo-results",
                   help="folder for zoo.md and zoo.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.zoo import ENGINES, deep_rows, run_zoo, save, table
    from kdax.zoo import ZOO

    engines = args.engine or list(ENGINES)
    if args.budget is None:
        args.budget = 600.0 if args.deep else 60.0
    if args.deep and "exhaust" in engines:
        raise ConfigError("--deep measures the fuzzing engines on the deep rows: no "
                          "--engine exhaust")
    try:
        seeds = [seed(s) for s in args.seeds.split(",") if s]
    except argparse.ArgumentTypeError:
        raise ConfigError(f"--seeds {show(args.seeds)}: comma-separated integers") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {show(args.seeds)}: a seed given twice")
    known = list(deep_rows()) if args.deep else [c.name for c in ZOO]
    if args.variant and len(set(args.variant)) != len(args.variant):
        raise ConfigError("--variant: a variant given twice")
    for v in args.variant or []:
        if v not in known:
            where = ("the deep rows are " + ", ".join(known) if args.deep
                     else "`daxfuzz targets` lists them")
            raise ConfigError(f"unknown {'deep row' if args.deep else 'zoo variant'} "
                              f"{v!r}; {where}")
    rows = len(args.variant or known)
    n = rows * sum(1 if e == "exhaust" else len(seeds) for e in engines)
    print(f"daxfuzz zoo: {n} runs ({', '.join(engines)}; seeds {seeds}; budget "
          f"{args.budget:g} s; {args.jobs} job(s))", file=sys.stderr)

    def progress(a) -> None:
        mark = (f"found in {a.seconds:.2f}s, reduced to {a.reduced_len}" if a.found
                else f"not found in {a.seconds:.0f}s")
        print(f"  {a.variant:<36} {a.engine:<10} seed {a.seed}: {mark}", file=sys.stderr,
              flush=True)

    attempts = run_zoo(engines, args.budget, seeds, args.jobs, args.variant, progress,
                       deep=args.deep)
    md, summary = table(attempts, engines)
    print(md)
    mdp, jp = save(args.out, md, summary)
    print(f"saved {mdp} and {jp}")
    return 0
