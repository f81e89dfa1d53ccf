"""`daxfuzz fuzz`: run an engine on a target for a time, save every finding reduced.

    daxfuzz fuzz --engine atheris|hypothesis|random --target T --time 60 --jobs N

Before fuzzing, the reduced findings already in the findings folder are replayed;
those that still reproduce are *known* and the engines go past them (a campaign is
after new bugs).  Every new divergence signature is reduced to a 1-minimal trace
and gets a pytest reproducer (`daxfuzz.emit`).  A second run resumes from the
corpus (atheris) or example database (hypothesis) in --corpus.

Exit code 1 if the run found a new divergence, else 0.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from daxfuzz.codec import DEFAULT_WEIGHTS, parse_weights
from daxfuzz.errors import EXIT_AGREE, EXIT_DIVERGENCE, ConfigError, InputError
from daxfuzz.geometry import DEFAULT, Geometry

ENGINES = ("atheris", "hypothesis", "random")


# ---------------------------------------------------------------- progress -----------
@dataclass
class Status:
    """What the terminal shows; engines update it, the display reads it."""

    engine: str
    target: str
    budget: float
    start: float = field(default_factory=time.monotonic)
    execs: int = 0  # inputs (atheris, random) or examples (hypothesis)
    steps: int = 0  # ops run
    cov: int | None = None
    corpus: int | None = None
    known: int = 0
    findings: list[dict] = field(default_factory=list)
    first_found: float | None = None
    note: str = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rate(self) -> str:
        e = max(self.elapsed(), 1e-9)
        s = f"{self.execs / e:,.0f} execs/s"
        return s + (f", {self.steps / e:,.0f} ops/s" if self.steps else "")

    def line(self) -> str:
        parts = [f"[{self.engine} on {self.target}] {self.elapsed():5.0f}/{self.budget:.0f}s",
                 f"execs {self.execs:,}", self.rate()]
        if self.cov is not None:
            parts.append(f"cov {self.cov}")
        if self.corpus is not None:
            parts.append(f"corpus {self.corpus}")
        parts.append(f"findings {len(self.findings)} new, {self.known} known")
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)

    def found(self, saved: dict) -> None:
        if self.first_found is None:
            self.first_found = self.elapsed()
        self.findings.append(saved)


class Display:
    """Live status on a terminal (rich), a line every few seconds otherwise."""

    def __init__(self, st: Status, enabled: bool) -> None:
        self.st = st
        self.enabled = enabled
        self.live = None
        self.last = 0.0
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4,
                             get_renderable=self._render)
            self.live.start()

    def _render(self):
        from rich.text import Text

        return Text(self.st.line())

    def tick(self) -> None:
        if self.live is None and self.enabled and time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            print(self.st.line(), file=sys.stderr, flush=True)

    def say(self, msg: str) -> None:
        if self.live is not None:
            self.live.console.print(msg)
        else:
            print(msg, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


# ---------------------------------------------------------------- known findings -----
def replay_known(findings: str, target: str, g: Geometry) -> set[str]:
    """Signatures of stored reduced findings that still reproduce on `target`."""
    from daxfuzz.emit import known_signatures
    from daxfuzz.runner import run_ops
    from daxfuzz.trace import read_trace

    sigs = known_signatures(findings, target)
    out = set()
    for name in sorted(os.listdir(findings)) if sigs else ():
        if not name.endswith(".trace") or name.count(".") != 1:
            continue  # raw engine traces are <stem>.<engine>.trace
        t = read_trace(os.path.join(findings, name))
        if t.target != target or t.geometry != g:
            continue
        div, _ = run_ops(target, g, t.ops)
        if div is not None and div.signature() in sigs:
            out.add(div.signature())
    return out


# ---------------------------------------------------------------- workers ------------
def _random_worker(q, target, g, seconds, seed, weights, swarm, known, findings, max_ops):
    from daxfuzz.emit import save_finding
    from daxfuzz.trace import Trace
    from fuzz import random_engine

    last = [0, 0, 0]  # inputs, steps, findings already reported

    def progress(s):
        q.put(("progress", s.inputs - last[0], s.steps - last[1]))
        for ops, div in s.findings[last[2]:]:
            raw = Trace(ops=tuple(ops), target=target, geometry=g,
                        expect=f"divergence {div.signature()}")
            q.put(("finding", save_finding(findings, raw, engine="random")))
        last[:] = [s.inputs, s.steps, len(s.findings)]

    random_engine.run(target, g, seconds=seconds, seed=seed, weights=weights, swarm=swarm,
                      ops_per_input=max_ops, known=known, progress=progress)
    q.put(("done",))


def _hypothesis_worker(q, target, g, seconds, seed, weights, swarm, known, findings, db_dir):
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.database import DirectoryBasedExampleDatabase
    from hypothesis.stateful import run_state_machine_as_test

    from daxfuzz.emit import save_finding
    from daxfuzz.trace import Trace
    from fuzz.hypothesis_machine import machine_for

    try:  # what pytest's --hypothesis-seed sets: makes --seed reproducible
        import hypothesis.core as hcore

        hcore.global_force_seed = seed
    except (ImportError, AttributeError):
        pass
    rng = random.Random(seed)
    known = set(known)
    end = time.monotonic() + seconds
    db = DirectoryBasedExampleDatabase(db_dir) if db_dir else None
    while time.monotonic() < end:
        w = weights
        if swarm:
            from fuzz.random_engine import swarm_weights

            w = swarm_weights(rng, weights)
        m = machine_for(target, g, weights=w, known=known, findings=findings, deadline=end)
        # No Hypothesis shrinking: the failing steps go straight to our reducer, which
        # is faster here and keeps the divergence signature.
        s = settings(max_examples=20, stateful_step_count=50, database=db, deadline=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=list(HealthCheck), print_blob=False,
                     verbosity=Verbosity.quiet)
        try:
            run_state_machine_as_test(m, settings=s)
        except Exception:  # noqa: BLE001 - a divergence (or Flaky after the deadline)
            saved = m.last_finding
            if saved is None and m.last_failing_ops:
                raw = Trace(ops=tuple(m.last_failing_ops), target=target, geometry=g,
                            expect="divergence")
                saved = save_finding(findings, raw, engine="hypothesis")
            if saved is not None:
                known.add(saved["signature"])
                q.put(("finding", saved))
        q.put(("progress", m.examples, m.steps))
    q.put(("done",))


def _spawn(fn, jobs: int, args: tuple, st: Status, disp: Display) -> None:
    """Run `fn(q, *args, seed)` in `jobs` processes; fold their messages into `st`."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = []
    for i in range(jobs):
        a = list(args)
        a[3] = a[3] + i  # seed
        p = ctx.Process(target=fn, args=(q, *a), daemon=True)
        p.start()
        procs.append(p)
    running = jobs
    seen: set[str] = set()
    while running:
        try:
            msg = q.get(timeout=0.25)
        except queue.Empty:
            disp.tick()
            if not any(p.is_alive() for p in procs):
                break
            continue
        if msg[0] == "progress":
            st.execs += msg[1]
            st.steps += msg[2]
        elif msg[0] == "finding":
            saved = msg[1]
            if saved["signature"] not in seen:
                seen.add(saved["signature"])
                st.found(saved)
                disp.say(_finding_line(saved, st))
        elif msg[0] == "done":
            running -= 1
        disp.tick()
    for p in procs:
        p.join(timeout=5)


def _finding_line(saved: dict, st: Status) -> str:
    return (f"FINDING {saved['signature']} after {st.elapsed():.1f}s: reduced "
            f"{saved['original_ops']} -> {saved['ops']} ops; {saved['trace_path']}")


# ---------------------------------------------------------------- atheris ------------
_LIBFUZZER = re.compile(r"#(\d+).*?cov: (\d+).*?corp: (\d+)(?:/\S+)?.*?exec/s: (\d+)")


def _run_atheris(args, st: Status, disp: Display, g: Geometry, known: set[str]) -> None:
    import fuzz
    from daxfuzz.emit import save_finding
    from daxfuzz.runner import run_ops
    from daxfuzz.trace import Trace

    root = os.path.dirname(os.path.dirname(os.path.abspath(fuzz.__file__)))
    corpus = args.corpus or os.path.join("corpus", "atheris")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(args.findings, exist_ok=True)
    artifacts = os.path.join(args.findings, "atheris") + os.sep
    os.makedirs(artifacts, exist_ok=True)
    end = time.monotonic() + args.time
    handled = set(os.listdir(artifacts))
    base_execs = 0
    rng = random.Random(args.seed)
    weights = args.weights or ""
    while (left := end - time.monotonic()) >= 1:
        if args.swarm:  # a fresh op mix every 30 s slice
            from fuzz.random_engine import swarm_weights

            left = min(left, 30)
            w = swarm_weights(rng, parse_weights(args.weights or ""))
            weights = ",".join(f"{k}={v}" for k, v in w.items())
        env = dict(os.environ, DAXFUZZ_TARGET=args.target, DAXFUZZ_GEOMETRY=g.text(),
                   DAXFUZZ_KNOWN=",".join(sorted(known)), DAXFUZZ_MAX_OPS=str(args.max_ops),
                   DAXFUZZ_WEIGHTS=weights,
                   PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "fuzz.atheris_harness", corpus,
               f"-max_total_time={int(left)}", f"-artifact_prefix={artifacts}",
               "-print_final_stats=1"]
        if args.seed is not None:
            cmd.append(f"-seed={args.seed + base_execs % 100000}")
        if args.jobs > 1:
            cmd += [f"-fork={args.jobs}", "-ignore_crashes=0"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        tail: list[str] = []
        reader = threading.Thread(target=_read_libfuzzer, args=(proc, st, tail, base_execs),
                                  daemon=True)
        reader.start()
        while proc.poll() is None:
            time.sleep(0.25)
            disp.tick()
        reader.join(timeout=5)
        base_execs = st.execs
        new = sorted(set(os.listdir(artifacts)) - handled)
        handled.update(new)
        crashes = [n for n in new if n.startswith("crash-")]
        if proc.returncode and not crashes and not [n for n in new if "-" in n]:
            raise ConfigError("the atheris harness failed to start:\n" + "\n".join(tail[-15:]))
        for name in crashes:
            from daxfuzz.codec import Codec

            with open(os.path.join(artifacts, name), "rb") as f:
                data = f.read()
            ops = Codec(g, parse_weights(weights)).decode(data, args.max_ops)
            div, _ = run_ops(args.target, g, ops)
            if div is None or div.signature() in known:
                continue
            raw = Trace(ops=tuple(ops), target=args.target, geometry=g,
                        expect=f"divergence {div.signature()}",
                        description=(f"atheris artifact {name}",))
            saved = save_finding(args.findings, raw, engine="atheris")
            saved["artifact"] = os.path.join(artifacts, name)
            known.add(saved["signature"])
            st.found(saved)
            disp.say(_finding_line(saved, st))
        if not crashes and proc.returncode == 0 and not args.swarm:
            break  # libFuzzer used its time


def _read_libfuzzer(proc, st: Status, tail: list[str], base: int) -> None:
    for line in proc.stderr:
        tail.append(line.rstrip())
        del tail[:-40]
        m = _LIBFUZZER.search(line)
        if m:
            st.execs = base + int(m.group(1))
            st.cov, st.corpus = int(m.group(2)), int(m.group(3))


# ---------------------------------------------------------------- run ----------------
def run(args: argparse.Namespace) -> int:
    from kdax.targets import get_target

    get_target(args.target)  # ConfigError (exit 2) on an unknown name, before any work
    g = Geometry.parse(args.geometry) if args.geometry else DEFAULT
    try:
        weights = parse_weights(args.weights or "")
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.time <= 0 or args.jobs < 1:
        raise InputError("--time must be > 0 and --jobs >= 1")
    os.makedirs(args.findings, exist_ok=True)
    known = replay_known(args.findings, args.target, g)
    st = Status(args.engine, args.target, args.time, known=len(known))
    disp = Display(st, not args.quiet)
    if known:
        disp.say(f"{len(known)} known finding(s) still reproduce on {args.target}: "
                 f"{', '.join(sorted(known))} (skipped while fuzzing)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    try:
        if args.engine == "atheris":
            _run_atheris(args, st, disp, g, known)
        elif args.engine == "hypothesis":
            db = os.path.join(args.corpus or "corpus", "hypothesis-db")
            _spawn(_hypothesis_worker, args.jobs, (args.target, g, args.time, seed, weights,
                                                   args.swarm, known, args.findings, db),
                   st, disp)
        else:
            _spawn(_random_worker, args.jobs, (args.target, g, args.time, seed, weights,
                                               args.swarm, known, args.findings, args.max_ops),
                   st, disp)
    finally:
        disp.stop()
    print(summary(st, args.findings))
    return EXIT_DIVERGENCE if st.findings else EXIT_AGREE


def summary(st: Status, findings: str) -> str:
    """The end-of-run report (plain text, pasteable)."""
    lines = [f"daxfuzz fuzz: {st.engine} on {st.target}, {st.elapsed():.1f}s: "
             f"{st.execs:,} execs ({st.rate()})"
             + (f", cov {st.cov}, corpus {st.corpus}" if st.cov is not None else ""),
             f"  findings: {len(st.findings)} new, {st.known} known (in {findings}/)"]
    if st.first_found is not None:
        lines.append(f"  time to first finding: {st.first_found:.1f}s")
    for s in st.findings:
        lines.append(f"  {s['signature']}: {s['ops']} ops  {s['trace_path']}")
        lines.append(f"      replay: daxfuzz replay --explain {s['trace_path']}")
        lines.append(f"      test:   {s['test_path']}")
    return "\n".join(lines)


def register(subparsers) -> None:
    """Add `daxfuzz fuzz`."""
    p = subparsers.add_parser("fuzz", help="fuzz a target with an engine",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=ENGINES, default="atheris")
    p.add_argument("--target", default=os.environ.get("DAXFUZZ_TARGET", "mainline"),
                   help="target name (see `daxfuzz targets`; default mainline)")
    p.add_argument("--time", type=float, default=60.0, help="seconds to fuzz (default 60)")
    p.add_argument("--jobs", type=int, default=1,
                   help="parallel workers (atheris: libFuzzer -fork; others: processes)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--corpus", default=None,
                   help="atheris corpus dir (default corpus/atheris); hypothesis keeps its "
                        "example database in CORPUS/hypothesis-db (default corpus/)")
    p.add_argument("--findings", default="findings", help="findings folder (default findings)")
    p.add_argument("--geometry", default=None, help="world geometry (trace-header form)")
    p.add_argument("--weights", default=None,
                   help="op mix, e.g. fault=40,memory_failure=0 (defaults: "
                        + ",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()) + ")")
    p.add_argument("--swarm", action="store_true",
                   help="swarm testing: switch off a random subset of op kinds per batch")
    p.add_argument("--max-ops", type=int, default=32, help="ops per input (byte engines)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=run)
