"""`daxfuzz coverage`: what a campaign reached, and what it never did.

Runs an engine for a while under coverage.py and reports (1) branch coverage of each
target module (kdax/*), (2) abstract folio-state coverage: states and (state, op,
state) transitions exercised, against those `daxfuzz exhaust` reaches in the small
world, listing some it never exercised.
"""

from __future__ import annotations

import argparse
import sys

from daxfuzz.cli import count, duration, seed, target


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coverage", help="branch and state-transition coverage of a campaign")
    p.add_argument("--target", type=target, default="7.2")
    p.add_argument("--engine", choices=["random", "hypothesis"], default="random")
    p.add_argument("--time", type=duration, default=30.0, help="campaign seconds")
    p.add_argument("--seed", type=seed, default=1)
    p.add_argument("--reachable-depth", type=count(0, 6, "a depth"), default=3,
                   help="exhaustive depth for the reachable-transition set (0: skip; at "
                   "most 6; its search stops after 120 s, and says so)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.coverage import measure
    from daxfuzz.explore.transitions import Transitions, exhaust_transitions
    text, _total, seen, execs, steps = measure(args.target, args.engine, args.time,
                                               args.seed)
    print(f"daxfuzz coverage: target {args.target}, engine {args.engine}, {args.time:g} s, "
          f"{execs} inputs, {steps} steps")
    print("\nbranch coverage of the target's kernel modules (coverage.py, branch=True):")
    print(text.rstrip())
    tr = Transitions()
    tr.merge(seen)
    reach = None
    if args.reachable_depth > 0:
        reach = exhaust_transitions(args.target, args.reachable_depth,
                                    said=lambda m: print(f"daxfuzz coverage: {m}",
                                                         file=sys.stderr))
    print("\nabstract folio-state coverage:")
    print(tr.summary(reach))
    return 0
