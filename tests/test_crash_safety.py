"""Campaigns killed with SIGKILL at random moments lose no finding, and resume.

Each round starts `daxfuzz fuzz` (random, hypothesis, atheris, portfolio in turn) on one of a few
buggy targets into a shared findings folder and SIGKILLs the process: every other
round after a random delay (start-up, fuzzing, reduction, writing), the others just
after a finding is queued, i.e. during its reduction.  Every FINDING (or RECOVERED)
line printed before a kill must name a reduced trace that exists and parses; no
worker may outlive the campaign; and a last, unkilled run per target must drain the
queue (and a killed atheris run's crash inputs), know every finding, leave a trace and
a test for each, and append to the same campaign.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from daxfuzz.campaign.folder import queued, read_series
from daxfuzz.core.emit import known_signatures
from daxfuzz.vocab.trace import read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ["test-broken-unmap-ref", "zoo-unpin-keeps-pincount", "zoo-pmd-insert-no-ref",
           "zoo-get-no-ref"]
LINE = re.compile(r"^(FINDING|RECOVERED) (\S+?):? .*?(\S+\.trace)$")


def _children(pid: int) -> set[int]:
    out = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out |= {int(c) for c in f.read().split()}
    except OSError:
        pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _fuzz(findings: str, target: str, engine: str, seconds: float, seed: int) -> list[str]:
    return [sys.executable, "-m", "daxfuzz", "fuzz", "--engine", engine, "--target", target,
            "--time", str(seconds), "--seed", str(seed), "--findings", findings,
            "--corpus", os.path.join(os.path.dirname(findings), "corpus"), "--no-report", "-q"]


ENGINES = ["random", "hypothesis", "atheris", "portfolio"]
KILLS = int(os.environ.get("DAXFUZZ_KILLS", "50"))
EPOCH = 25  # rounds per findings folder: a fresh folder re-finds, so kills hit reductions


def _wait_for_queue(findings: str, p: subprocess.Popen, limit: float) -> bool:
    """Wait until a finding is queued (its reduction has begun) or `limit` s pass."""
    end = time.monotonic() + limit
    while time.monotonic() < end and p.poll() is None:
        if queued(findings):
            return True
        time.sleep(0.01)
    return False


def kill_loop(tmp: str, kills: int, seed: str = "7") -> dict:
    """SIGKILL `kills` campaigns (every engine in turn, on buggy targets),
    half at a random moment, half just after a finding is queued (during its reduction);
    then one unkilled run per target and folder.  Checks every finding reported before a
    kill, and every reduced trace in the folders, is a parsing trace with a test beside
    it, and that nothing is left queued.  Returns the counts."""
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    reported: dict[str, str] = {}  # trace path -> target
    stats = {"kills": 0, "during_reduction": 0, "by_engine": dict.fromkeys(ENGINES, 0)}
    folders = []
    for rnd in range(kills):
        if rnd % EPOCH == 0:
            folders.append(os.path.join(tmp, f"findings{rnd // EPOCH}"))
        findings = folders[-1]
        target = TARGETS[rnd % len(TARGETS)]
        # as many engines as targets: shift each lap, or an engine would meet one target
        engine = ENGINES[(rnd + rnd // len(TARGETS)) % len(ENGINES)]
        log = os.path.join(tmp, f"round{rnd}.log")
        with open(log, "w") as f:
            p = subprocess.Popen(_fuzz(findings, target, engine, 30, rnd), env=env,
                                 stdout=f, stderr=subprocess.STDOUT, cwd=tmp)
        if rnd % 2:
            if _wait_for_queue(findings, p, 3.0):
                time.sleep(rng.uniform(0, 0.15))
                stats["during_reduction"] += bool(queued(findings))
        else:
            time.sleep(rng.uniform(0.2, 2.0))
        kids = _children(p.pid)
        p.send_signal(signal.SIGKILL)  # the campaign process only, as the OOM killer does
        p.wait()
        stats["kills"] += 1
        stats["by_engine"][engine] += 1
        deadline = time.monotonic() + 5
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [k for k in kids if _alive(k)], "a worker outlived its killed campaign"
        with open(log) as f:
            for line in f.read().splitlines():
                m = LINE.match(line)
                if m:
                    reported[m.group(3)] = target
    for path in reported:  # every finding reported before a kill is on disk, whole
        t = read_trace(path)
        assert t.expect.startswith("divergence ") and t.ops
    # the next run of each target resumes: drains the queue, knows what was found
    for fi, findings in enumerate(folders):
        for i, target in enumerate(TARGETS):
            p = subprocess.run(_fuzz(findings, target, "random", 1, 1000 + i), env=env,
                               capture_output=True, text=True, timeout=120, cwd=tmp)
            assert p.returncode in (0, 1), p.stdout + p.stderr
            traces = [read_trace(x) for x in reported if x.startswith(findings + os.sep)]
            found = {t.expect.split()[1] for t in traces if t.target == target}
            assert found <= known_signatures(findings, target), (fi, target)
        assert queued(findings) == []  # nothing left unreduced
        for name in os.listdir(findings):  # every reduced finding: a trace and a test
            if name.endswith(".trace") and name.count(".") == 1:
                t = read_trace(os.path.join(findings, name))
                assert t.ops and t.expect.startswith("divergence "), name
                test = os.path.join(findings, "test_" + re.sub(
                    r"\W+", "_", name.removesuffix(".trace")).lower() + ".py")
                with open(test, encoding="utf-8") as f:
                    compile(f.read(), test, "exec")
                stats.setdefault("findings", 0)
                stats["findings"] += 1
        with open(os.path.join(findings, "campaign", "state.json")) as f:
            runs = json.load(f)["runs"]
        assert [r["status"] for r in runs[-len(TARGETS):]] == ["done"] * len(TARGETS)
        assert all(r["status"] in ("killed", "done") for r in runs)
        series = read_series(os.path.join(findings, "campaign", "series.jsonl"),
                             lambda m: None)
        assert {r["run"] for r in series} >= {r["id"] for r in runs[-4:]}
    stats["reported_before_kill"] = len(reported)
    return stats


def test_sigkill_loop_loses_no_finding(tmp_path):
    """>= 50 SIGKILLs over random, hypothesis, atheris and portfolio campaigns (half during a
    reduction): every finding ends as a trace and a test (DAXFUZZ_KILLS changes the count;
    `tools/kill_loop.py` runs it outside pytest and prints the counts)."""
    stats = kill_loop(str(tmp_path), KILLS, os.environ.get("DAXFUZZ_KILL_SEED", "7"))
    print(f"\nkill loop: {stats}")
    assert stats["kills"] >= min(KILLS, 50) and stats["findings"] > 0
    assert stats["during_reduction"] > 0
