"""`daxfuzz bench`: ops/s of the bare target, the bare oracle and the differential
loop over one seeded codec stream (:func:`bench_loops`), and with --engines how close
the engines run to that loop (:func:`bench_engines`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from daxfuzz.vocab.geometry import Geometry


def sequences(seed: int, g: Geometry, n: int, seq: int) -> list[list]:
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


def bench_atheris(target: str, g: Geometry, seconds: float = 10.0, max_ops: int = 16
                  ) -> tuple[float, float, float]:
    """(execs/s, ops/s, mean ops per input) of the atheris harness; startup excluded as
    far as libFuzzer's own clock allows (we time the whole process and subtract none)."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats")
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        # seed with the scenario corpus (5-20 ops each), as a campaign would start
        from daxfuzz.home import checkout
        from fuzz.seeds import build

        src = os.path.join(checkout(), "corpus")
        if os.path.isdir(src):
            build(src, corpus)
        env = dict(os.environ, DAXFUZZ_TARGET=target, DAXFUZZ_GEOMETRY=g.text(),
                   DAXFUZZ_MAX_OPS=str(max_ops), DAXFUZZ_STATS=stats,
                   DAXFUZZ_KNOWN="*")
        cmd = [sys.executable, "-m", "fuzz.atheris_harness", corpus,
               f"-max_total_time={int(seconds)}", "-len_control=0",
               "-print_final_stats=1", f"-artifact_prefix={tmp}/"]
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=seconds + 120)
        wall = time.monotonic() - t0
        runs = 0
        for line in p.stderr.splitlines():
            if line.startswith("stat::number_of_executed_units:"):
                runs = int(line.split(":")[-1])
        try:  # steady state: from the first stats write (input 512) to the last
            with open(stats) as f:
                inputs, ops, t_first, ops_first, t_last = f.read().split()
            inputs, ops = int(inputs) - 512, int(ops) - int(ops_first)
            fuzz_secs = float(t_last) - float(t_first)
            if inputs <= 0 or fuzz_secs <= 0:
                raise ValueError("too few inputs for a steady-state rate")
        except (OSError, ValueError):
            inputs, ops, fuzz_secs = runs, 0, min(wall, seconds) or wall
        return inputs / fuzz_secs, ops / fuzz_secs, ops / max(1, inputs)


def bench_hypothesis(target: str, g: Geometry, seconds: float = 10.0) -> tuple[float, float]:
    """(steps/s, examples/s) of the state machine with the runner check on every step."""

    from fuzz.hypothesis_machine import machine_for, run_until

    end = time.monotonic() + seconds
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        steps, examples = run_until(
            end, lambda: machine_for(target, g, findings=tmp, deadline=end, known={"*"}))
    dt = time.monotonic() - t0
    return steps / dt, examples / dt


def bench_engines(target: str, g: Geometry, loop_ops: float) -> None:
    """Print engine throughput and ratios to the plain differential loop (`loop_ops`)."""
    ex, ops, per = bench_atheris(target, g)
    print(f"  atheris       {ex:>10,.0f} execs/s  {ops:>10,.0f} ops/s  "
          f"({per:.1f} ops/input)   ops ratio to loop = {ops / loop_ops:.2f} "
          f"(goal >= 0.3)")
    st, exs = bench_hypothesis(target, g)
    print(f"  hypothesis    {exs:>10,.0f} examples/s {st:>9,.0f} steps/s   "
          f"steps ratio to loop = {st / loop_ops:.2f} (goal >= 5,000 steps/s)")
