"""`daxfuzz bench --engines`: how close the engines run to the plain differential loop."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from daxfuzz.vocab.geometry import Geometry


def bench_atheris(target: str, g: Geometry, seconds: float = 10.0, max_ops: int = 16
                  ) -> tuple[float, float, float]:
    """(execs/s, ops/s, mean ops per input) of the atheris harness; startup excluded as
    far as libFuzzer's own clock allows (we time the whole process and subtract none)."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats")
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        # seed with the scenario corpus (5-20 ops each), as a campaign would start
        from daxfuzz.cli import main as cli_main

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        src = os.path.join(root, "corpus")
        if os.path.isdir(src):
            cli_main(["corpus", "build", "--from", src, "--to", corpus])
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

    from fuzz.hypothesis_machine import batch_settings, machine_for, run_batch

    end = time.monotonic() + seconds
    t0 = time.monotonic()
    steps = examples = 0
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() < end:
            m = machine_for(target, g, findings=tmp, deadline=end, known={"*"})
            try:
                run_batch(m, None, batch_settings(50, 50))
            except Exception:  # noqa: BLE001 - a divergence ends the batch
                pass
            steps += m.steps
            examples += m.examples
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
          f"steps ratio to loop = {st / loop_ops:.2f} (goal >= 2,000 steps/s)")
