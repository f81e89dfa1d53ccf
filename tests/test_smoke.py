"""CI smoke fuzzing (`pytest -m smoke`): every engine on every kernel target for a
bounded budget, and replay of every stored reproducer.

A smoke run fails on a mainline target (6.15, 7.2) on a divergence the corpus does not
document (`daxfuzz.core.known.documented_known`, the rule `daxfuzz fuzz` uses), printed with
its report.  On the older kernels (legacy, v6-guarded) undocumented divergences are
expected (their bugs are the history the series fixed), so there every finding must
replay as found: same step, same signature.  The engines are bounded by time, not by
example counts, and `tests/test_engines.py` checks that each finds a broken target.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from daxfuzz.core.known import NEW, Known, documented_known
from daxfuzz.core.runner import run_ops
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = ["legacy", "v6-guarded", "6.15", "7.2"]
MAINLINE = ("6.15", "7.2")
SECONDS = 2.0  # per engine and target; atheris adds its ~4 s start-up


def known(target: str) -> set[str]:
    """Signatures the corpus documents for `target` (real divergences, not news)."""
    return set(documented_known(os.path.join(ROOT, "corpus"), target, DEFAULT))


def check_news(target: str, findings) -> None:
    """Undocumented findings fail on a mainline target; on an older one each must replay
    as found (a flaky or misreported divergence fails everywhere)."""
    news = []
    known = Known(target, DEFAULT,
                  documented=documented_known(os.path.join(ROOT, "corpus"), target, DEFAULT))
    for ops, d in findings:
        again, _ = run_ops(target, DEFAULT, ops)
        assert again is not None and (again.step, again.signature()) == (
            d.step, d.signature()), f"{target}: {d.signature()} does not replay"
        # what the engines' Known calls news (a GUP or copy fault-in showing what a fault
        # of the same pages documents is not)
        if known.verdict(ops, d, record=False) == NEW:
            news.append(d.report())
    if target in MAINLINE and news:
        pytest.fail("new divergence on a mainline target:\n" + "\n\n".join(news))


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_random_engine(target):
    from fuzz import random_engine

    st = random_engine.run(target, DEFAULT, seconds=SECONDS, seed=1, known=known(target))
    assert st.steps > 100
    check_news(target, st.findings)


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_hypothesis_engine(target, tmp_path):
    import time

    from fuzz.hypothesis_machine import DivergenceFound, batch_settings, machine_for, run_batch

    end = time.monotonic() + SECONDS
    steps, found, batch = 0, [], 0
    # batches of 20 examples until the time is up (a single run bounded by example
    # count took 66 s on legacy, whose long examples end late past the deadline)
    while time.monotonic() < end:
        m = machine_for(target, DEFAULT, findings=str(tmp_path), deadline=end,
                        known=known(target))
        batch += 1
        from hypothesis.errors import Flaky, FlakyStrategyDefinition

        try:
            run_batch(m, batch - 1, batch_settings(20, 30))
        except DivergenceFound:
            if m.last_failing_ops:
                d, _ = run_ops(target, DEFAULT, m.last_failing_ops)
                found.append((m.last_failing_ops, d))
                if target in MAINLINE:
                    break
        except (Flaky, FlakyStrategyDefinition):
            pass  # time-boxed: the deadline makes replays differ; not a finding
        steps += m.steps
    assert steps > 20
    check_news(target, [(ops, d) for ops, d in found if d is not None])


@pytest.mark.smoke
@pytest.mark.parametrize("target", KERNELS)
def test_atheris_engine(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    ks = known(target) if target in MAINLINE else {"*"}
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
    from daxfuzz.cli.replay import outcome_ok

    t = read_trace(path)
    target = t.target or "7.2"
    div, _ = run_ops(target, t.geometry, t.ops)
    assert outcome_ok(t, target, div), div.report() if div else "agrees, divergence expected"
