"""What a campaign reached: branch coverage of the target's kernel modules (coverage.py)
and the abstract folio transitions it exercised.  `daxfuzz coverage` prints it."""

from __future__ import annotations

import io
import random
import time

from daxfuzz.vocab.geometry import DEFAULT


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


def measure(target: str, engine: str, seconds: float, seed: int
            ) -> tuple[str, float, list, int, int]:
    """Run `engine` on `target` in a fresh (spawned) process under coverage.py:
    (coverage report text, total %, transitions seen, inputs, steps)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(target, engine, seconds, seed, q))
    p.start()
    out = q.get()
    p.join()
    return out
