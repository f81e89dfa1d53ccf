"""A campaign killed with SIGKILL at random moments loses no finding, and resumes.

Each round starts `daxfuzz fuzz` on one of a few buggy targets into one findings
folder and SIGKILLs the process after a random delay (during start-up, fuzzing,
reduction or writing).  Every FINDING (or RECOVERED) line it printed must name a
reduced trace that exists and parses; no worker may outlive the campaign; and a last,
unkilled run per target must drain the queue, know every finding, and append to the
same campaign.
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

from daxfuzz.campaign import queued, read_series
from daxfuzz.emit import known_signatures
from daxfuzz.trace import read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ["test-broken-unmap-ref", "zoo-unpin-keeps-pincount", "zoo-pmd-insert-no-ref",
           "zoo-get-no-ref"]
KILL_LOOP_SECONDS = 20
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


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    rng = random.Random(os.environ.get("DAXFUZZ_KILL_SEED", "7"))
    findings = str(tmp_path / "findings")
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    reported: dict[str, str] = {}  # trace path -> target
    rounds = 0
    end = time.monotonic() + KILL_LOOP_SECONDS
    while time.monotonic() < end:
        target = TARGETS[rounds % len(TARGETS)]
        engine = "hypothesis" if rounds % 3 == 2 else "random"
        log = tmp_path / f"round{rounds}.log"
        with open(log, "w") as f:
            p = subprocess.Popen(_fuzz(findings, target, engine, 30, rounds), env=env,
                                 stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path)
        time.sleep(rng.uniform(0.2, 3.0))
        kids = _children(p.pid)
        p.send_signal(signal.SIGKILL)  # the campaign process only, as the OOM killer does
        p.wait()
        deadline = time.monotonic() + 5
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [k for k in kids if _alive(k)], "a worker outlived its killed campaign"
        for line in log.read_text().splitlines():
            m = LINE.match(line)
            if m:
                reported[m.group(3)] = target
        rounds += 1
    assert rounds >= 6
    for path in reported:  # every finding reported before a kill is on disk, whole
        t = read_trace(path)
        assert t.expect.startswith("divergence ") and t.ops
    # the next run of each target resumes: drains the queue, knows what was found
    for i, target in enumerate(TARGETS[:min(rounds, len(TARGETS))]):
        p = subprocess.run(_fuzz(findings, target, "random", 1, 1000 + i), env=env,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert p.returncode in (0, 1), p.stdout + p.stderr
        # by the trace's own target: a run drains whatever the killed runs of any
        # target left queued (RECOVERED lines name other targets' findings)
        traces = [read_trace(x) for x in reported]
        found = {t.expect.split()[1] for t in traces if t.target == target}
        assert found <= known_signatures(findings, target)
        if found:
            assert "RECOVERED" in p.stderr or " 0 known" not in p.stdout, p.stdout
    assert queued(findings) == []  # nothing left unreduced
    with open(os.path.join(findings, "campaign", "state.json")) as f:
        runs = json.load(f)["runs"]
    assert [r["status"] for r in runs[-len(TARGETS):]] == ["done"] * len(TARGETS)
    assert all(r["status"] in ("killed", "done") for r in runs)
    series = read_series(os.path.join(findings, "campaign", "series.jsonl"), lambda m: None)
    assert {r["run"] for r in series} >= {r["id"] for r in runs[-4:]}
