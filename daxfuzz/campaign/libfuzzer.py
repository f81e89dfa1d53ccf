"""The atheris engine's driver: libFuzzer runs the harness (fuzz/atheris_harness.py)
in a child process; we read its status lines, and turn its crash inputs into
findings.

libFuzzer stops at a crash; the driver reduces it, marks it known and starts a new
slice for the time left.  A slice with --swarm lasts 30 s with a fresh op mix.  The
crash artifacts in FINDINGS/atheris/ are the engine's queue: a killed run leaves them
there and the next run (of any engine) turns those it never handled into findings,
decoded as the slice that made them was (:func:`drain_artifacts`).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Protocol

from daxfuzz.campaign.folder import Campaign
from daxfuzz.campaign.progress import Display, Status, finding_line
from daxfuzz.campaign.workers import die_with_parent, reduce_deadline
from daxfuzz.errors import ConfigError
from daxfuzz.vocab.geometry import Geometry
from fuzz.codec import parse_weights

# status lines; in -fork mode they read "exec/s N", without the colon
_LIBFUZZER = re.compile(r"#(\d+).*?cov: (\d+).*?corp: (\d+)(?:/\S+)?.*?exec/s:? (\d+)")
# -print_final_stats=1: the execs of a slice that ended on a crash before a status line
_FINAL_EXECS = re.compile(r"^stat::number_of_executed_units:\s*(\d+)")


@dataclass(frozen=True)
class Slices:
    """How the atheris campaign runs: where, for how long, with what op mix."""

    target: str
    geometry: Geometry
    seconds: float
    corpus: str  # libFuzzer's corpus folder
    findings: str  # the findings folder; crash inputs go to FINDINGS/atheris/
    seed: int | None
    jobs: int  # libFuzzer -fork=N when > 1
    weights: str  # the --weights text ("" for the default mix)
    swarm: bool
    max_ops: int
    reduce_by: float | None = None  # when reductions stop (monotonic); None: the budget's


def artifacts_dir(findings: str) -> str:
    return os.path.join(findings, "atheris") + os.sep


def run_atheris(cfg: Slices, st: Status, disp: Display, known: set[str],
                camp: Campaign) -> None:
    """Fuzz with the atheris harness for cfg.seconds; every crash becomes a finding."""
    import fuzz

    root = os.path.dirname(os.path.dirname(os.path.abspath(fuzz.__file__)))
    g = cfg.geometry
    os.makedirs(cfg.corpus, exist_ok=True)
    artifacts = artifacts_dir(cfg.findings)
    os.makedirs(artifacts, exist_ok=True)
    end = time.monotonic() + cfg.seconds
    reduce_by = cfg.reduce_by or reduce_deadline(end, cfg.seconds)
    handled = set(os.listdir(artifacts))
    base_execs = st.execs  # a portfolio slice adds to what the other members ran
    # the harness writes its inputs and ops run here (DAXFUZZ_STATS): libFuzzer counts
    # execs only, and the report's ops are execs times the harness's ops per input
    fd, stats_path = tempfile.mkstemp(prefix=".tmp-stats-", dir=camp.path)
    os.close(fd)
    rng = random.Random(cfg.seed)
    weights = cfg.weights
    while (left := end - time.monotonic()) >= 1:
        if cfg.swarm:  # a fresh op mix every 30 s slice
            from fuzz.random_engine import swarm_weights

            left = min(left, 30)
            w = swarm_weights(rng, parse_weights(cfg.weights))
            weights = ",".join(f"{k}={v}" for k, v in w.items())
        # how this slice's crash inputs decode, for a next run if this one is killed
        camp.state["atheris_slice"] = {"weights": weights, "max_ops": cfg.max_ops,
                                       "target": cfg.target, "geometry": g.text()}
        camp.save()
        env = dict(os.environ, DAXFUZZ_TARGET=cfg.target, DAXFUZZ_GEOMETRY=g.text(),
                   DAXFUZZ_KNOWN=",".join(sorted(known)), DAXFUZZ_MAX_OPS=str(cfg.max_ops),
                   DAXFUZZ_WEIGHTS=weights, DAXFUZZ_STATS=stats_path,
                   PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "fuzz.atheris_harness", cfg.corpus,
               f"-max_total_time={int(left)}", f"-artifact_prefix={artifacts}",
               "-print_final_stats=1"]
        if cfg.seed is not None:
            cmd.append(f"-seed={cfg.seed + base_execs % 100000}")
        if cfg.jobs > 1:
            cmd += [f"-fork={cfg.jobs}", "-ignore_crashes=0"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace", preexec_fn=die_with_parent)
        tail: list[str] = []
        reader = threading.Thread(target=read_libfuzzer, args=(proc, st, tail, base_execs),
                                  daemon=True)
        reader.start()
        while proc.poll() is None:
            time.sleep(0.25)
            disp.tick()
        reader.join(timeout=5)
        st.steps += round((st.execs - base_execs) * ops_per_input(stats_path, cfg.max_ops))
        base_execs = st.execs
        new = sorted(set(os.listdir(artifacts)) - handled)
        handled.update(new)
        crashes = [n for n in new if n.startswith("crash-")]
        if proc.returncode and not crashes and not [n for n in new if "-" in n]:
            raise ConfigError("the atheris harness failed to start:\n" + "\n".join(tail[-15:]))
        for i, name in enumerate(crashes):
            st.reducing["atheris"] = len(crashes) - i
            atheris_crash(cfg.findings, st, disp, cfg.target, g, known, camp, name,
                          weights, cfg.max_ops, deadline=reduce_by)
        st.reducing.pop("atheris", None)
        if not crashes and proc.returncode == 0 and not cfg.swarm:
            break  # libFuzzer used its time
    os.unlink(stats_path)


def ops_per_input(stats_path: str, max_ops: int) -> float:
    """Mean ops per input the atheris harness wrote to `stats_path` (DAXFUZZ_STATS:
    "inputs ops ..."); `max_ops` if it wrote none."""
    try:
        with open(stats_path, encoding="ascii") as f:
            inputs, ops = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        return float(max_ops)
    return ops / inputs if inputs > 0 else float(max_ops)


def drain_artifacts(cfg: Slices, st: Status, disp: Display, known: set[str],
                    camp: Campaign) -> None:
    """Crash artifacts a killed atheris run never turned into findings: they are its
    queue.  Whatever the engine of this run, each is decoded and run as the slice that
    made it was (target, geometry, op mix, ops per input: state.json's atheris_slice),
    so a run of another target or engine cannot mark it handled without its finding."""
    artifacts = artifacts_dir(cfg.findings)
    if not os.path.isdir(artifacts):
        return
    done = set(camp.state["artifacts_done"])
    last = camp.state.get("atheris_slice", {})
    target = last.get("target", cfg.target)
    try:
        g2 = Geometry.parse(last["geometry"]) if "geometry" in last else cfg.geometry
    except ConfigError:
        g2 = cfg.geometry
    same = target == cfg.target and g2 == cfg.geometry
    for name in sorted(os.listdir(artifacts)):
        if name.startswith("crash-") and name not in done:
            atheris_crash(cfg.findings, st, disp, target, g2, known if same else set(), camp,
                          name, last.get("weights", cfg.weights), last.get("max_ops", cfg.max_ops))


def atheris_crash(findings: str, st: Status, disp: Display, target: str, g: Geometry,
                  known: set[str], camp: Campaign, name: str, weights: str,
                  max_ops: int, deadline: float | None = None) -> None:
    """Turn libFuzzer's crash-<sha1> into a saved finding; mark the artifact handled."""
    from daxfuzz.core.emit import save_finding
    from daxfuzz.core.known import BASE, NEW, Known
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import Trace
    from fuzz.codec import Codec

    artifacts = artifacts_dir(findings)
    with open(os.path.join(artifacts, name), "rb") as f:
        data = f.read()
    ops = Codec(g, parse_weights(weights)).decode(data, max_ops)
    div, _ = run_ops(target, g, ops)
    if div is None:
        camp.artifact_done(name)
        return
    verdict = Known(target, g, own=known).verdict(ops, div)
    if verdict == BASE:
        sig = div.signature()
        st.base_found[sig] = st.base_found.get(sig, 0) + 1
    if verdict == NEW:
        raw = Trace(ops=tuple(ops), target=target, geometry=g,
                    expect=f"divergence {div.signature()}",
                    description=(f"atheris artifact {name}",))
        saved = save_finding(findings, raw, engine="atheris", deadline=deadline)
        saved["artifact"] = os.path.join(artifacts, name)
        known.add(saved["signature"])
        st.found(saved)
        disp.say(finding_line(saved, st))
    camp.artifact_done(name)


class _Child(Protocol):
    stderr: IO[str] | None


def read_libfuzzer(proc: _Child, st: Status, tail: list[str], base: int) -> None:
    """Fold libFuzzer's status lines (execs, cov, corpus) into `st`; keep the last 40."""
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip())
        del tail[:-40]
        m = _LIBFUZZER.search(line)
        if m:
            st.execs = base + int(m.group(1))
            st.cov, st.corpus = int(m.group(2)), int(m.group(3))
        elif m := _FINAL_EXECS.match(line):
            st.execs = max(st.execs, base + int(m.group(1)))
