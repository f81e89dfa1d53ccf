"""`daxfuzz mutate --target T [--module M] [--function F] --engine E --budget S`: what
a clean campaign of T is worth, measured on generated mutants of its kernel functions."""

from __future__ import annotations

import argparse
import sys

from daxfuzz.cli import count, duration, jobs, out_dir, seed, target
from daxfuzz.errors import ConfigError, InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mutate", help="kill rate of each engine on generated mutants of a "
                       "target's kernel functions; table of results")
    p.add_argument("--target", type=target, default="mainline",
                   help="the target to mutate (default mainline, 7.2); a patch target too")
    p.add_argument("--module", action="append", default=[],
                   help="only functions defined in this file (kdax/dax.py) or module "
                   "(kdax.dax) as the target resolves them (repeatable)")
    p.add_argument("--function", action="append", default=[],
                   help="only this kernel function (repeatable)")
    p.add_argument("--operator", action="append", default=[],
                   help="only this mutation operator (repeatable): drop-ref, dup-ref, int+1, "
                   "int-1, const+1, const-1, arith+1, arith-1, negate-cond, cond-true, "
                   "drop-operand, swap-stmts, head-tail, return-early")
    p.add_argument("--engine", action="append",
                   choices=["random", "hypothesis", "atheris", "portfolio", "exhaust"],
                   help="engine(s) to measure (repeatable; default random, hypothesis, "
                   "atheris; random is always measured)")
    p.add_argument("--budget", type=duration, default=5.0,
                   help="seconds per engine and mutant (default 5)")
    p.add_argument("--sample", type=count(1, 100000, "a mutant count"), default=None,
                   help="run N mutants, round-robin over modules and operators (default all)")
    p.add_argument("--seed", type=seed, default=1, help="engine seed and sampling seed")
    p.add_argument("--jobs", type=jobs, default=1)
    p.add_argument("--equiv-depth", type=count(1, 64, "a depth"), default=3,
                   help="exhaust depth of a survivor's equivalence check (default 3)")
    p.add_argument("--equiv-time", type=duration, default=30.0,
                   help="seconds of the random run of a survivor's equivalence check, after "
                   "exhaust to --equiv-depth (default 30)")
    p.add_argument("--list", action="store_true",
                   help="print the selected mutants and their diffs; run nothing")
    p.add_argument("--out", default=None,
                   help="folder for mutants.md and mutants.json (default mutate-results)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.mutate import ENGINES, run_mutants, save, select, table

    engines = list(dict.fromkeys(args.engine or ENGINES))
    if "random" not in engines:
        engines.insert(0, "random")  # the baseline is in every table
    if not args.list:  # checked before the run (--list writes nothing: needs no folder)
        try:
            args.out = out_dir("mutate-results" if args.out is None else args.out)
        except argparse.ArgumentTypeError as e:
            raise InputError(f"--out: {e}") from None
    sel = select(args.target, args.module, args.function, args.operator, args.sample,
                 args.seed)
    if not sel.rows:
        raise ConfigError("empty selection: every mutant of the selection was dropped "
                          f"({sel.dropped})")
    if args.list:
        for r in sel.rows:
            print(f"{r.mutant}\t{r.diff}")
        return 0
    print(f"daxfuzz mutate: {len(sel.rows)} mutants of {sel.target} ({sel.generated} "
          f"generated, dropped {sel.dropped or 'none'}); {', '.join(engines)}; budget "
          f"{args.budget:g} s; {args.jobs} job(s)", file=sys.stderr)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = run_mutants(sel, engines, args.budget, seed=args.seed, jobs=args.jobs,
                       equiv_depth=args.equiv_depth, equiv_seconds=args.equiv_time,
                       progress=progress)
    params = {"budget": args.budget, "seed": args.seed, "engines": engines,
              "equiv_depth": args.equiv_depth, "equiv_seconds": args.equiv_time,
              "modules": args.module, "functions": args.function,
              "operators": args.operator, "sample": args.sample}
    md, summary = table(sel, rows, engines, params)
    print(md)
    mdp, jp = save(args.out, md, summary)
    print(f"saved {mdp} and {jp}")
    return 0
