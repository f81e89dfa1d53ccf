"""`daxfuzz bench`: ops/s of the bare target, the bare oracle and the differential
loop over one fixed seeded op stream, and their ratios.

The stream is what the engines run: random bytes through the codec (`fuzz.codec`,
the random engine's and atheris's decoder, default op mix), so the bench measures the
op mix a campaign runs."""

from __future__ import annotations

import argparse

from daxfuzz.campaign.bench import bench_loops, sequences
from daxfuzz.cli import count, seed, target
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import MAX_OPS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure ops/s: bare target, oracle, differential loop")
    p.add_argument("--target", type=target, default="7.2")
    p.add_argument("--ops", type=count(1, 10**7), default=20000, help="ops per measurement")
    p.add_argument("--seq", type=count(1, MAX_OPS), default=50,
                   help="ops per sequence (world reset between)")
    p.add_argument("--seed", type=seed, default=1)
    p.add_argument("--repeat", type=count(1, 100), default=3, help="best of N runs")
    p.add_argument("--engines", action="store_true",
                   help="also measure the fuzzing engines (atheris, hypothesis)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = Geometry()
    seqs = sequences(args.seed, g, args.ops, args.seq)
    nops = sum(len(s) for s in seqs)
    print(f"daxfuzz bench: target {args.target}, {nops} ops in {len(seqs)} codec inputs of up to "
          f"{args.seq} (seed {args.seed}), best of {args.repeat}; geometry {g.text()}")
    r = bench_loops(args.target, g, seqs, args.repeat)
    for name in ("target", "oracle", "differential"):
        print(f"  {name:<13} {r[name]:>10,.0f} ops/s")
    print(f"  differential / target = {r['differential'] / r['target']:.2f}   "
          f"(design goal >= 0.5)")
    print(f"  differential / oracle = {r['differential'] / r['oracle']:.2f}")
    if args.engines:
        try:
            from daxfuzz.campaign.bench import bench_engines
        except ImportError:
            print("  engines: not available in this build")
        else:
            bench_engines(args.target, g, r["differential"])
    return 0
