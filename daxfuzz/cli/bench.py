"""`daxfuzz bench`: ops/s of the bare target, the bare oracle and the differential
loop over one fixed seeded op stream, and their ratios.

The stream is what the engines run: random bytes through the codec (`fuzz.codec`,
the random engine's and atheris's decoder, default op mix), so the bench measures the
op mix a campaign runs."""

from __future__ import annotations

import argparse
import time

from daxfuzz.cli import count, seed
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import MAX_OPS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure ops/s: bare target, oracle, differential loop")
    p.add_argument("--target", default="7.2")
    p.add_argument("--ops", type=count(1, 10**7), default=20000, help="ops per measurement")
    p.add_argument("--seq", type=count(1, MAX_OPS), default=50,
                   help="ops per sequence (world reset between)")
    p.add_argument("--seed", type=seed, default=1)
    p.add_argument("--repeat", type=count(1, 100), default=3, help="best of N runs")
    p.add_argument("--engines", action="store_true",
                   help="also measure the fuzzing engines (atheris, hypothesis)")
    p.set_defaults(func=run)


def _sequences(seed: int, g: Geometry, n: int, seq: int) -> list[list]:
    """About `n` ops in inputs of up to `seq` ops, decoded as `fuzz.random_engine` does."""
    import random

    from fuzz.codec import Codec

    rng = random.Random(seed)
    codec = Codec(g)
    out: list[list] = []
    total = 0
    while total < n:
        ops = codec.decode(rng.randbytes(seq * 6), max_ops=seq)
        if ops:
            out.append(ops)
            total += len(ops)
    return out


def bench_loops(target: str, g: Geometry, seqs: list[list], repeat: int) -> dict[str, float]:
    """Best-of-`repeat` ops/s for: target alone, oracle alone, runner (both + compare)."""
    from daxfuzz.core.runner import Runner
    from kdax.targets import get_target
    from oracle import Oracle

    cls = get_target(target)
    nops = sum(len(s) for s in seqs)

    def t_target() -> None:
        for s in seqs:
            t = cls(g)
            for op in s:
                t.apply(op)

    def t_oracle() -> None:
        for s in seqs:
            o = Oracle(g)
            for op in s:
                o.apply(op)

    diff_ops = [0]

    def t_diff() -> None:  # an input stops at its first divergence, as in a campaign
        r = Runner(cls, g)
        n = 0
        for s in seqs:
            r.reset()
            for op in s:
                if r.step(op) is not None:
                    break
            n += r.nsteps
        diff_ops[0] = n

    out = {}
    for name, fn in (("target", t_target), ("oracle", t_oracle), ("differential", t_diff)):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = (diff_ops[0] if name == "differential" else nops) / best
    return out


def run(args: argparse.Namespace) -> int:
    g = Geometry()
    seqs = _sequences(args.seed, g, args.ops, args.seq)
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
            from fuzz.bench import bench_engines
        except ImportError:
            print("  engines: not available in this build")
        else:
            bench_engines(args.target, g, r["differential"])
    return 0
