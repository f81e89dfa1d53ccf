"""`daxfuzz coverage`: what a campaign reached, and what it never did.

Runs an engine for a while under coverage.py and reports (1) branch coverage of each
target module (kdax/*), (2) abstract folio-state coverage: states and (state, op,
state) transitions exercised, against those `daxfuzz exhaust` reaches in the small
world, listing some it never exercised.
"""

from __future__ import annotations

import argparse
import io
import random
import time

from daxfuzz.cli import duration
from daxfuzz.vocab.geometry import DEFAULT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coverage", help="branch and state-transition coverage of a campaign")
    p.add_argument("--target", default="7.2")
    p.add_argument("--engine", choices=["random", "hypothesis"], default="random")
    p.add_argument("--time", type=duration, default=30.0, help="campaign seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reachable-depth", type=int, default=3,
                   help="exhaustive depth for the reachable-transition set (0: skip)")
    p.set_defaults(func=run)


def campaign(target: str, engine: str, seconds: float, seed: int):
    """Run `engine` on `target`; returns (Transitions, execs, steps)."""
    from daxfuzz.core.runner import Runner
    from daxfuzz.explore.transitions import Transitions
    from fuzz.codec import Codec

    if engine == "hypothesis":

        import tempfile

        from fuzz.hypothesis_machine import machine_for, run_until

        tr = Transitions()

        def make() -> type:
            m = machine_for(target, DEFAULT, findings=tmp, deadline=end)
            m.transitions = tr
            return m

        end = time.monotonic() + seconds
        with tempfile.TemporaryDirectory() as tmp:
            steps, execs = run_until(end, make)
        return tr, execs, steps
    rng = random.Random(seed)
    codec = Codec(DEFAULT)
    r = Runner(target, DEFAULT)
    tr = Transitions()
    end = time.monotonic() + seconds
    execs = steps = 0
    while time.monotonic() < end:
        r.reset()
        tr.reset()
        execs += 1
        for op in codec.decode(rng.randbytes(96), max_ops=16):
            d = r.step(op)
            steps += 1
            tr.after_step(r, op)
            if d is not None:
                break
    return tr, execs, steps


def _measure(target: str, engine: str, seconds: float, seed: int, q) -> None:
    """In a fresh (spawned) process: coverage starts before any kdax module is imported,
    so definitions count as covered; only the target's own modules are reported."""
    import coverage

    cov = coverage.Coverage(branch=True, source=["kdax"], data_file=None)
    cov.start()
    from kdax.targets import get_target

    cls = get_target(target)
    tr, execs, steps = campaign(target, engine, seconds, seed)
    cov.stop()
    mods = sorted({c.__module__ for c in cls.__mro__ if c.__module__.startswith("kdax.")}
                  | {"kdax.mm", "kdax.mm_types", "kdax.xarray", "kdax.vm_fault"})
    files = [__import__(m, fromlist=["_"]).__file__ for m in mods]
    out = io.StringIO()
    total = cov.report(file=out, include=files, show_missing=False)
    q.put((out.getvalue(), total, sorted(tr.seen), execs, steps))


def run(args: argparse.Namespace) -> int:
    import multiprocessing as mp

    from daxfuzz.explore.transitions import Transitions, exhaust_transitions
    from kdax.targets import get_target

    get_target(args.target)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(args.target, args.engine, args.time, args.seed, q))
    p.start()
    text, total, seen, execs, steps = q.get()
    p.join()
    print(f"daxfuzz coverage: target {args.target}, engine {args.engine}, {args.time:g} s, "
          f"{execs} inputs, {steps} steps")
    print("\nbranch coverage of the target's kernel modules (coverage.py, branch=True):")
    print(text.rstrip())
    tr = Transitions()
    tr.merge(seen)
    reach = None
    if args.reachable_depth > 0:
        reach = exhaust_transitions(args.target, args.reachable_depth)
    print("\nabstract folio-state coverage:")
    print(tr.summary(reach))
    return 0
