"""CI smoke fuzzing (`pytest -m smoke`): every engine on every kernel target for a
bounded budget, and replay of every stored reproducer.

A smoke run fails only on a divergence that is not already documented: the known real
divergences of each target (corpus/divergence-*.trace and the zoo) are passed to the
engines as known signatures, and a new one is printed with its report.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from daxfuzz.geometry import DEFAULT
from daxfuzz.runner import run_ops
from daxfuzz.trace import read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = ["legacy", "v6-guarded", "6.15", "7.2"]
SECONDS = 2.0  # per engine and target; atheris adds its ~4 s start-up


def known(target: str) -> set[str]:
    """Signatures the corpus documents for `target` (real divergences, not news).  A
    divergence documented through a fault is the same one through GUP and back: GUP
    faults pages in through the same handler (faultin_page -> handle_mm_fault)."""
    out = set()
    for p in glob.glob(os.path.join(ROOT, "corpus", "*.trace")):
        exp = read_trace(p).expectation(target).split()
        if exp[0] == "divergence" and len(exp) == 2:
            op, _, field = exp[1].partition(":")
            fam = ("fault", "pin", "get", "pin_pages", "write_from")
            ops = fam if op in fam else ("write", "write_from") if op == "write" else (op,)
            out |= {f"{o}:{field}" for o in ops}
    return out


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_random_engine(target):
    from fuzz import random_engine

    st = random_engine.run(target, DEFAULT, seconds=SECONDS, seed=1, known=known(target))
    assert st.steps > 100
    news = [d.report() for _ops, d in st.findings]
    if target in ("6.15", "7.2") and news:  # older kernels: findings are expected
        pytest.fail("new divergence on a mainline target:\n" + "\n\n".join(news))


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_hypothesis_engine(target, tmp_path):
    import time

    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.stateful import run_state_machine_as_test

    from fuzz.hypothesis_machine import machine_for

    end = time.monotonic() + SECONDS
    m = machine_for(target, DEFAULT, findings=str(tmp_path), deadline=end,
                    known=known(target) | ({"*"} if target not in ("6.15", "7.2") else set()))
    s = settings(max_examples=10_000, stateful_step_count=30, database=None,
                 deadline=None, phases=[Phase.generate],
                 suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    from hypothesis.errors import Flaky, FlakyStrategyDefinition

    try:
        run_state_machine_as_test(m, settings=s)  # raises DivergenceFound on news
    except (Flaky, FlakyStrategyDefinition):
        pass  # time-boxed: the deadline makes replays differ; not a finding
    assert m.steps > 20


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_atheris_engine(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    ks = known(target) if target in ("6.15", "7.2") else {"*"}
    env = dict(os.environ, DAXFUZZ_TARGET=target, PYTHONPATH=ROOT,
               DAXFUZZ_KNOWN=",".join(sorted(ks)))
    p = subprocess.run([sys.executable, "-m", "fuzz.atheris_harness", str(corpus),
                        "-runs=300", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Done 300 runs" in p.stderr


REPRODUCERS = sorted(glob.glob(os.path.join(ROOT, "corpus", "**", "*.trace"), recursive=True)
                     + glob.glob(os.path.join(ROOT, "findings", "*.trace")))


@pytest.mark.smoke
@pytest.mark.parametrize("path", REPRODUCERS, ids=lambda p: os.path.relpath(p, ROOT))
def test_stored_reproducer_replays(path):
    from daxfuzz.cmd_replay import outcome_ok

    t = read_trace(path)
    target = t.target or "7.2"
    div, _ = run_ops(target, t.geometry, t.ops)
    assert outcome_ok(t, target, div), div.report() if div else "agrees, divergence expected"
