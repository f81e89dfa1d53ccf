"""`daxfuzz fuzz`: run an engine on a target for a time, save every finding reduced.

    daxfuzz fuzz --engine atheris|hypothesis|random --target T --time 60 --jobs N

Before fuzzing, the reduced findings already in the findings folder are replayed,
and so are the scenario corpus's documented divergences on the target (`expect 7.2:
divergence ...`); those that reproduce are *known* and the engines go past them (a
campaign is after new bugs).  Every new divergence signature is reduced to a 1-minimal
trace and gets a pytest reproducer (`daxfuzz.core.emit`).  A second run resumes from the
corpus (atheris) or example database (hypothesis: --db, a folder or a Redis server
shared by a fleet).

Crash-safe: a finding is queued (FINDINGS/queue/) before it is reduced, and a killed
run's queue is reduced first by the next run; corrupt files in the corpus, findings
and database folders are reported by name and skipped.  The campaign folder
(--campaign, default FINDINGS/campaign) records the runs and a time series, and gets
report.html and report.md at the end (`daxfuzz report DIR` redraws them).

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
import tempfile
import threading
import time
from dataclasses import dataclass, field

from daxfuzz.cli import count, default_target, duration, geometry, jobs, out_dir, seed
from daxfuzz.core.known import base_of, documented_known, replay_known, through_gup
from daxfuzz.errors import EXIT_AGREE, EXIT_DIVERGENCE, ConfigError, InputError
from daxfuzz.home import default as default_path
from daxfuzz.home import outside_note
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import MAX_OPS
from fuzz.codec import DEFAULT_WEIGHTS, parse_weights

ENGINES = ("atheris", "hypothesis", "random")
#: a new Hypothesis seed per batch (DAXFUZZ_HYPOTHESIS_RESEED=0: every batch reruns one
#: seed, which repeats the same 20 examples: the zoo found 21/32 variants that way)
RESEED = os.environ.get("DAXFUZZ_HYPOTHESIS_RESEED", "1") == "1"
REUSE_EVERY = 60.0  # seconds between replays of the example database by a worker
#: a reduction still running when the budget ends gets this share of the budget more
#: (at least REDUCE_GRACE_MIN seconds); then the finding is saved as far as it got
REDUCE_GRACE = 0.25
REDUCE_GRACE_MIN = 5.0


def reduce_deadline(end: float, budget: float) -> float:
    """When reductions stop (monotonic), for a budget of `budget` s ending at `end`."""
    return end + max(REDUCE_GRACE * budget, REDUCE_GRACE_MIN)


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
    cov: int | None = None  # libFuzzer cov (atheris), or folio transitions (others)
    corpus: int | None = None
    cov_by_worker: dict = field(default_factory=dict)
    kinds_by_worker: dict = field(default_factory=dict)
    known: int = 0
    findings: list[dict] = field(default_factory=list)
    # divergences the target's base kernel shows too (daxfuzz.core.known): sig -> times met
    base_found: dict = field(default_factory=dict)
    base_by_worker: dict = field(default_factory=dict)
    first_found: float | None = None
    note: str = ""
    reducing: dict = field(default_factory=dict)  # worker -> findings it is reducing
    # the scenario corpus's documented divergences (signature -> trace) and the world,
    # to tell a GUP finding that is one of them through GUP's fault-in
    documented: dict = field(default_factory=dict)
    geometry: Geometry | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rate(self) -> str:
        e = max(self.elapsed(), 1e-9)
        s = f"{self.execs / e:,.0f} execs/s"
        return s + (f", {self.steps / e:,.0f} ops/s" if self.steps else "")

    def line(self) -> str:
        # past the budget only a last reduction or report runs: the clock stops at it
        shown = min(self.elapsed(), self.budget)
        parts = [f"[{self.engine} on {self.target}] {shown:5.0f}/{self.budget:.0f}s",
                 f"execs {self.execs:,}", self.rate()]
        if self.cov is not None:
            parts.append(f"cov {self.cov}" if self.engine == "atheris"
                         else f"transitions {self.cov}")
        if self.corpus is not None:
            parts.append(f"corpus {self.corpus}")
        parts.append(f"findings {len(self.findings)} new, {self.known} known"
                     + (f", {len(self.base_found)} the base's" if self.base_found else ""))
        n = sum(self.reducing.values())
        if n:
            parts.append(f"reducing {n}" + (" (budget used)" if self.elapsed() >= self.budget
                                            else ""))
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)

    def found(self, saved: dict) -> None:
        if self.first_found is None:
            self.first_found = self.elapsed()
        if self.documented and self.geometry is not None:
            saved["through_gup"] = through_gup(saved["trace_path"], self.target,
                                               self.geometry, self.documented)
        self.findings.append(saved)


class Display:
    """Live status on a terminal (rich), a line every few seconds otherwise."""

    def __init__(self, st: Status, enabled: bool, on_tick=None) -> None:
        self.st = st
        self.enabled = enabled
        self.on_tick = on_tick  # the campaign's time series
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
        if self.on_tick is not None:
            self.on_tick()
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


# ---------------------------------------------------------------- workers ------------
def die_with_parent(parent: int | None = None) -> None:
    """A worker dies with the campaign (a SIGKILLed `daxfuzz fuzz` leaves no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took effect


def _random_worker(q, target, g, seconds, seed, weights, swarm, known, findings, max_ops,
                   parent=None):
    from daxfuzz.core.emit import save_finding
    from daxfuzz.explore.transitions import Transitions
    from daxfuzz.vocab.trace import Trace
    from fuzz import random_engine

    die_with_parent(parent)
    reduce_by = reduce_deadline(time.monotonic() + seconds, seconds)
    pid = os.getpid()
    last = [0, 0, 0]  # inputs, steps, findings already reported

    def progress(s):
        # the execs go first: the reductions below stop this worker's fuzzing meanwhile
        q.put(("progress", s.inputs - last[0], s.steps - last[1], len(s.transitions.seen),
               dict(s.kinds), pid))
        if s.base_found:
            q.put(("base", dict(s.base_found), pid))
        last[:2] = [s.inputs, s.steps]
        new = s.findings[last[2]:]
        last[2] = len(s.findings)
        for i, (ops, div) in enumerate(new):
            q.put(("reducing", len(new) - i, pid))
            raw = Trace(ops=tuple(ops), target=target, geometry=g,
                        expect=f"divergence {div.signature()}")
            q.put(("finding", save_finding(findings, raw, engine="random",
                                           deadline=reduce_by)))
        if new:
            q.put(("reducing", 0, pid))

    random_engine.run(target, g, seconds=seconds, seed=seed, weights=weights, swarm=swarm,
                      ops_per_input=max_ops, known=known, progress=progress,
                      transitions=Transitions())
    q.put(("done",))


def _hypothesis_worker(q, target, g, seconds, seed, weights, swarm, known, findings, db_spec,
                       parent=None):
    from daxfuzz.campaign.hypothesis_db import open_database
    from daxfuzz.core.emit import save_finding
    from daxfuzz.core.known import Known
    from daxfuzz.explore.transitions import Transitions
    from daxfuzz.vocab.trace import Trace
    from fuzz.hypothesis_machine import batch_settings, machine_for, run_batch

    die_with_parent(parent)
    rng = random.Random(seed)
    known = Known(target, g, own=known)
    end = time.monotonic() + seconds
    reduce_by = reduce_deadline(end, seconds)
    pid = os.getpid()
    db = open_database(db_spec)
    transitions = Transitions()  # this worker's, across its machines
    kinds: dict[str, int] = {}
    batch = 0
    last_reuse = -REUSE_EVERY
    sent = [0, 0]  # the batch's examples and steps already reported

    def progress(m) -> None:
        transitions.merge(m.transitions.seen)
        q.put(("progress", m.examples - sent[0], m.steps - sent[1], len(transitions.seen),
               dict(kinds), pid))
        sent[:] = [m.examples, m.steps]
        if known.base_found:
            q.put(("base", dict(known.base_found), pid))

    def before_save(m) -> None:  # the execs go first: the reduction stops this worker
        progress(m)
        q.put(("reducing", 1, pid))

    while time.monotonic() < end:
        w = weights
        if swarm:
            from fuzz.random_engine import swarm_weights

            w = swarm_weights(rng, weights)
        m = machine_for(target, g, weights=w, known=known, findings=findings, deadline=end,
                        reduce_deadline=reduce_by)
        m.kinds = kinds
        m.before_save = staticmethod(lambda m=m: before_save(m))
        sent[:] = [0, 0]
        # --seed makes the run reproducible through the machine's seed (Hypothesis's
        # @seed on the machine; hypothesis.core.global_force_seed would switch the
        # example database off).  Each batch gets its own seed from (seed, batch): a
        # batch is only 20 examples, and rerunning one seed would repeat them.  Streams
        # of different --seed values (and of --jobs workers, seed+i) do not overlap.
        batch_seed = seed * 1_000_003 + batch if RESEED else seed
        # No Hypothesis shrinking: the failing steps go straight to our reducer, which
        # is faster here and keeps the divergence signature.
        # The database (this machine's, or a fleet's) is replayed when the worker starts
        # and then once every REUSE_EVERY seconds: a fleet shares a failure within that
        # time, and in between batches go to new examples, not to this worker's own
        # (already known) failures.
        reuse = time.monotonic() - last_reuse >= REUSE_EVERY
        if reuse:
            last_reuse = time.monotonic()
        try:
            run_batch(m, batch_seed, batch_settings(20, 50, db, reuse))
        except Exception:  # noqa: BLE001 - a divergence (or Flaky after the deadline)
            saved = m.last_finding
            if saved is None and m.last_failing_ops:
                before_save(m)
                raw = Trace(ops=tuple(m.last_failing_ops), target=target, geometry=g,
                            expect="divergence")
                saved = save_finding(findings, raw, engine="hypothesis", deadline=reduce_by)
            if saved is not None:
                known.own.add(saved["signature"])
                q.put(("finding", saved))
                batch -= 1  # rerun this seed, past the finding
            q.put(("reducing", 0, pid))
        batch += 1
        progress(m)
    q.put(("done",))


def _spawn(fn, jobs: int, args: tuple, st: Status, disp: Display) -> None:
    """Run `fn(q, *args, seed)` in `jobs` processes; fold their messages into `st`."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = []
    for i in range(jobs):
        a = list(args)
        a[3] = a[3] + i  # seed
        p = ctx.Process(target=fn, args=(q, *a, os.getpid()), daemon=True)
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
        running -= fold(msg, st, disp, seen)
        disp.tick()
    for p in procs:
        p.join(timeout=5)


def fold(msg: tuple, st: Status, disp: Display, seen: set[str]) -> bool:
    """Fold one worker message into `st`; True for a worker's "done"."""
    if msg[0] == "reducing":  # ("reducing", findings left to reduce, worker)
        st.reducing[msg[2]] = msg[1]
    elif msg[0] == "progress":  # ("progress", execs, ops, transitions, op mix, worker)
        st.execs += msg[1]
        st.steps += msg[2]
        wid = msg[5]
        st.cov_by_worker[wid] = msg[3]
        st.kinds_by_worker[wid] = msg[4]
        st.cov = max(st.cov_by_worker.values())  # a lower bound of the union
    elif msg[0] == "base":  # ("base", {signature: times met}, worker): the base's own
        st.base_by_worker[msg[2]] = msg[1]
        st.base_found = {}
        for counts in st.base_by_worker.values():
            for sig, n in counts.items():
                st.base_found[sig] = st.base_found.get(sig, 0) + n
    elif msg[0] == "finding":
        saved = msg[1]
        if saved["signature"] not in seen:
            seen.add(saved["signature"])
            st.found(saved)
            disp.say(_finding_line(saved, st))
    return msg[0] == "done"


def _finding_line(saved: dict, st: Status) -> str:
    return (f"FINDING {saved['signature']} after {st.elapsed():.1f}s: reduced "
            f"{saved['original_ops']} -> {saved['ops']} ops; {saved['trace_path']}"
            + _gup_note(saved) + aside_note(saved))


def aside_note(saved: dict) -> str:
    """What save_finding did with an old finding file that could not stand for the bug."""
    if not saved.get("set_aside"):
        return ""
    return (f"\n  the old {os.path.basename(saved['trace_path'])} could not stand for it "
            f"({saved['set_aside_why']}): replaced, and kept as {saved['set_aside']}")


def _gup_note(saved: dict) -> str:
    via = saved.get("through_gup")
    return (f" (as a fault, this is the documented {via}: likely the same bug through "
            "GUP's fault-in)") if via else ""


# ---------------------------------------------------------------- atheris ------------
# status lines; in -fork mode they read "exec/s N", without the colon
_LIBFUZZER = re.compile(r"#(\d+).*?cov: (\d+).*?corp: (\d+)(?:/\S+)?.*?exec/s:? (\d+)")
# -print_final_stats=1: the execs of a slice that ended on a crash before a status line
_FINAL_EXECS = re.compile(r"^stat::number_of_executed_units:\s*(\d+)")


def _run_atheris(args, st: Status, disp: Display, g: Geometry, known: set[str], camp) -> None:
    import fuzz

    root = os.path.dirname(os.path.dirname(os.path.abspath(fuzz.__file__)))
    corpus = args.corpus or default_path("corpus", "atheris")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(args.findings, exist_ok=True)
    artifacts = os.path.join(args.findings, "atheris") + os.sep
    os.makedirs(artifacts, exist_ok=True)
    end = time.monotonic() + args.time
    reduce_by = reduce_deadline(end, args.time)
    handled = set(os.listdir(artifacts))
    base_execs = 0
    # the harness writes its inputs and ops run here (DAXFUZZ_STATS): libFuzzer counts
    # execs only, and the report's ops are execs times the harness's ops per input
    fd, stats_path = tempfile.mkstemp(prefix=".tmp-stats-", dir=camp.path)
    os.close(fd)
    rng = random.Random(args.seed)
    weights = args.weights or ""
    while (left := end - time.monotonic()) >= 1:
        if args.swarm:  # a fresh op mix every 30 s slice
            from fuzz.random_engine import swarm_weights

            left = min(left, 30)
            w = swarm_weights(rng, parse_weights(args.weights or ""))
            weights = ",".join(f"{k}={v}" for k, v in w.items())
        # how this slice's crash inputs decode, for a next run if this one is killed
        camp.state["atheris_slice"] = {"weights": weights, "max_ops": args.max_ops,
                                       "target": args.target, "geometry": g.text()}
        camp.save()
        env = dict(os.environ, DAXFUZZ_TARGET=args.target, DAXFUZZ_GEOMETRY=g.text(),
                   DAXFUZZ_KNOWN=",".join(sorted(known)), DAXFUZZ_MAX_OPS=str(args.max_ops),
                   DAXFUZZ_WEIGHTS=weights, DAXFUZZ_STATS=stats_path,
                   PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "fuzz.atheris_harness", corpus,
               f"-max_total_time={int(left)}", f"-artifact_prefix={artifacts}",
               "-print_final_stats=1"]
        if args.seed is not None:
            cmd.append(f"-seed={args.seed + base_execs % 100000}")
        if args.jobs > 1:
            cmd += [f"-fork={args.jobs}", "-ignore_crashes=0"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace", preexec_fn=die_with_parent)
        tail: list[str] = []
        reader = threading.Thread(target=_read_libfuzzer, args=(proc, st, tail, base_execs),
                                  daemon=True)
        reader.start()
        while proc.poll() is None:
            time.sleep(0.25)
            disp.tick()
        reader.join(timeout=5)
        st.steps += round((st.execs - base_execs) * ops_per_input(stats_path, args.max_ops))
        base_execs = st.execs
        new = sorted(set(os.listdir(artifacts)) - handled)
        handled.update(new)
        crashes = [n for n in new if n.startswith("crash-")]
        if proc.returncode and not crashes and not [n for n in new if "-" in n]:
            raise ConfigError("the atheris harness failed to start:\n" + "\n".join(tail[-15:]))
        for i, name in enumerate(crashes):
            st.reducing["atheris"] = len(crashes) - i
            _atheris_crash(args, st, disp, args.target, g, known, camp, artifacts, name,
                           weights, args.max_ops, deadline=reduce_by)
        st.reducing.pop("atheris", None)
        if not crashes and proc.returncode == 0 and not args.swarm:
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


def drain_artifacts(args, st: Status, disp: Display, g: Geometry, known: set[str],
                    camp) -> None:
    """Crash artifacts a killed atheris run never turned into findings: they are its
    queue.  Whatever the engine of this run, each is decoded and run as the slice that
    made it was (target, geometry, op mix, ops per input: state.json's atheris_slice),
    so a run of another target or engine cannot mark it handled without its finding."""
    artifacts = os.path.join(args.findings, "atheris") + os.sep
    if not os.path.isdir(artifacts):
        return
    done = set(camp.state["artifacts_done"])
    last = camp.state.get("atheris_slice", {})
    target = last.get("target", args.target)
    try:
        g2 = Geometry.parse(last["geometry"]) if "geometry" in last else g
    except ConfigError:
        g2 = g
    same = target == args.target and g2 == g
    for name in sorted(os.listdir(artifacts)):
        if name.startswith("crash-") and name not in done:
            _atheris_crash(args, st, disp, target, g2, known if same else set(), camp,
                           artifacts, name, last.get("weights", args.weights or ""),
                           last.get("max_ops", args.max_ops))


def _atheris_crash(args, st: Status, disp: Display, target: str, g: Geometry,
                   known: set[str], camp, artifacts: str, name: str, weights: str,
                   max_ops: int, deadline: float | None = None) -> None:
    """Turn libFuzzer's crash-<sha1> into a saved finding; mark the artifact handled."""
    from daxfuzz.core.emit import save_finding
    from daxfuzz.core.known import BASE, NEW, Known
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import Trace
    from fuzz.codec import Codec

    with open(os.path.join(artifacts, name), "rb") as f:
        data = f.read()
    ops = Codec(g, parse_weights(weights)).decode(data, max_ops)
    div, _ = run_ops(target, g, ops)
    verdict = Known(target, g, own=known).verdict(ops, div) if div is not None else None
    if verdict == BASE:
        sig = div.signature()  # type: ignore[union-attr]
        st.base_found[sig] = st.base_found.get(sig, 0) + 1
    if verdict == NEW:
        raw = Trace(ops=tuple(ops), target=target, geometry=g,
                    expect=f"divergence {div.signature()}",
                    description=(f"atheris artifact {name}",))
        saved = save_finding(args.findings, raw, engine="atheris", deadline=deadline)
        saved["artifact"] = os.path.join(artifacts, name)
        known.add(saved["signature"])
        st.found(saved)
        disp.say(_finding_line(saved, st))
    camp.artifact_done(name)


def _read_libfuzzer(proc, st: Status, tail: list[str], base: int) -> None:
    for line in proc.stderr:
        tail.append(line.rstrip())
        del tail[:-40]
        m = _LIBFUZZER.search(line)
        if m:
            st.execs = base + int(m.group(1))
            st.cov, st.corpus = int(m.group(2)), int(m.group(3))
        elif m := _FINAL_EXECS.match(line):
            st.execs = max(st.execs, base + int(m.group(1)))


# ---------------------------------------------------------------- run ----------------
def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign import folder as C
    from kdax.targets import get_target

    try:
        get_target(args.target)  # ConfigError (exit 2) on an unknown name, before any work
    except ConfigError as e:
        raise ConfigError(f"--target: {e}") from None
    g = args.geometry or DEFAULT
    try:
        weights = parse_weights(args.weights or "")
    except ValueError as e:
        raise InputError(f"--weights: {e}") from None
    args.findings = args.findings or default_path("findings")
    if args.scenarios is None:
        args.scenarios = default_path("corpus")
        note = outside_note(args.scenarios)
        if note:
            C.say(note)
    if args.scenarios != "none" and not os.path.isdir(args.scenarios):
        raise InputError("--scenarios: not a directory (a folder of traces, or none)",
                         path=args.scenarios)
    if args.db not in (None, "none") and not args.db.startswith(
            ("redis://", "rediss://", "unix://")):
        try:
            out_dir(args.db)
        except argparse.ArgumentTypeError as e:
            raise InputError(f"--db: {e}") from None
    os.makedirs(args.findings, exist_ok=True)
    corpus = args.corpus or (default_path("corpus") if args.engine != "atheris"
                             else default_path("corpus", "atheris"))
    db = args.db or os.path.join(args.corpus or default_path("corpus"), "hypothesis-db")
    for problem in C.scan(args.findings, [corpus],
                          db if args.engine == "hypothesis" else None):
        C.say(problem)
    camp_dir = args.campaign or os.path.join(args.findings, "campaign")
    C.clean_temp([args.findings, os.path.join(args.findings, C.QUEUE), camp_dir])
    if args.engine == "hypothesis" and db != "none" and "://" not in db:
        from daxfuzz.campaign.hypothesis_db import remove_stale_temp

        remove_stale_temp(db, C.say)
    camp = C.Campaign(camp_dir)
    for saved in C.drain_queue(args.findings):  # what a killed run found but never reduced
        print(f"RECOVERED {saved['signature']}: queued by a killed run, reduced to "
              f"{saved['ops']} ops; {saved['trace_path']}{aside_note(saved)}", file=sys.stderr,
              flush=True)
    stored = replay_known(args.findings, args.target, g)
    documented = ({} if args.scenarios == "none"
                  else documented_known(args.scenarios, args.target, g))
    documented = {sig: p for sig, p in documented.items() if sig not in stored}
    known = stored | set(documented)
    st = Status(args.engine, args.target, args.time, known=len(known),
                documented=documented, geometry=g)
    camp.start_run(engine=args.engine, target=args.target, jobs=args.jobs, budget=args.time,
                   seed=args.seed, findings_dir=os.path.abspath(args.findings),
                   corpus_dir=os.path.abspath(corpus), geometry=g.text(),
                   weights=args.weights or "", known=sorted(known))

    def sample(force: bool = False) -> None:
        camp.sample(force, elapsed=round(st.elapsed(), 2), execs=st.execs, steps=st.steps,
                    findings=len(st.findings), cov=st.cov, corpus=st.corpus)

    disp = Display(st, not args.quiet, on_tick=sample)
    if documented:
        disp.say(f"{len(documented)} divergence(s) the scenario corpus documents on "
                 f"{args.target} (skipped while fuzzing): "
                 + ", ".join(f"{sig} ({os.path.basename(p)})"
                             for sig, p in sorted(documented.items())))
    if base_of(args.target):
        disp.say(f"{args.target} is built on {base_of(args.target)}: a divergence "
                 f"{base_of(args.target)} shows too on the same ops is the base's (counted "
                 "apart, by replay, whatever its signature)")
    if stored:
        disp.say(f"{len(stored)} known finding(s) still reproduce on {args.target}: "
                 f"{', '.join(sorted(stored))} (skipped while fuzzing)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    sample(True)
    try:
        drain_artifacts(args, st, disp, g, known, camp)  # a killed atheris run's crash inputs
        if args.engine == "atheris":
            _run_atheris(args, st, disp, g, known, camp)
        elif args.engine == "hypothesis":
            _spawn(_hypothesis_worker, args.jobs, (args.target, g, args.time, seed, weights,
                                                   args.swarm, known, args.findings, db),
                   st, disp)
        else:
            _spawn(_random_worker, args.jobs, (args.target, g, args.time, seed, weights,
                                               args.swarm, known, args.findings, args.max_ops),
                   st, disp)
    finally:
        disp.stop()
        sample(True)
    kinds: dict[str, int] = {}
    for k in st.kinds_by_worker.values():
        for name, n in k.items():
            kinds[name] = kinds.get(name, 0) + n
    if args.engine == "atheris":
        kinds = C.corpus_op_mix(corpus, g, args.weights or "", args.max_ops)
    camp.finish_run(execs=st.execs, steps=st.steps, cov=st.cov, corpus=st.corpus,
                    seconds=round(st.elapsed(), 2), op_mix=kinds,
                    new_findings=[f["signature"] for f in st.findings],
                    base_findings=sorted(st.base_found),
                    first_found=st.first_found)
    print(summary(st, args.findings))
    if not args.no_report:
        from daxfuzz.campaign.report import write_report

        try:
            html, md = write_report(camp.path)
            print(f"  report: {html}\n          {md}")
        except Exception as e:  # noqa: BLE001 - the findings are saved; say, do not lose them
            print(f"  report: failed ({type(e).__name__}: {e}); rerun `daxfuzz report "
                  f"{camp.path}`", file=sys.stderr)
    return EXIT_DIVERGENCE if st.findings else EXIT_AGREE


def summary(st: Status, findings: str) -> str:
    """The end-of-run report (plain text, pasteable)."""
    lines = [f"daxfuzz fuzz: {st.engine} on {st.target}, {st.elapsed():.1f}s: "
             f"{st.execs:,} execs ({st.rate()})"
             + (f", cov {st.cov}, corpus {st.corpus}" if st.corpus is not None
                else f", {st.cov} folio transitions" if st.cov is not None else ""),
             f"  findings: {len(st.findings)} new, {st.known} known "
             f"({st.known - len(st.documented)} stored in {findings}/, "
             f"{len(st.documented)} documented by the scenario corpus)"]
    if st.base_found:
        base = base_of(st.target)
        lines.append(f"  the base's: {len(st.base_found)} divergence(s) {base} shows too on "
                     "the same ops (its bugs, not the target's): "
                     + ", ".join(f"{sig} x{n}" for sig, n in sorted(st.base_found.items())))
    if st.first_found is not None:
        lines.append(f"  time to first finding: {st.first_found:.1f}s (the target's own)")
    for s in st.findings:
        lines.append(f"  {s['signature']}: {s['ops']} ops  {s['trace_path']}{_gup_note(s)}")
        lines.append(f"      replay: daxfuzz replay --explain {s['trace_path']}")
        lines.append(f"      test:   {s['test_path']}")
    return "\n".join(lines)


def register(subparsers) -> None:
    """Add `daxfuzz fuzz`."""
    p = subparsers.add_parser("fuzz", help="fuzz a target with an engine",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=ENGINES, default="atheris")
    p.add_argument("--target", default=default_target(),
                   help="target name (see `daxfuzz targets`; default $DAXFUZZ_TARGET, else "
                        "mainline)")
    p.add_argument("--time", type=duration, default=60.0,
                   help="how long to fuzz: seconds, or 10m, 8h (default 60)")
    p.add_argument("--jobs", type=jobs, default=1,
                   help="parallel workers, at most 4 per core (atheris: libFuzzer -fork; "
                        "others: processes)")
    p.add_argument("--seed", type=seed, default=None, help="random seed (default: random)")
    p.add_argument("--corpus", type=out_dir, default=None,
                   help="atheris corpus dir (default corpus/atheris, which git ignores); "
                        "hypothesis keeps its example database in CORPUS/hypothesis-db "
                        "(default corpus/); relative to DAXFUZZ_HOME or the checkout")
    p.add_argument("--findings", type=out_dir, default=None,
                   help="findings folder (default findings/ in DAXFUZZ_HOME or the checkout)")
    p.add_argument("--scenarios", default=None,
                   help="scenario traces whose documented divergences on the target are "
                        "known, not news (default corpus/ of DAXFUZZ_HOME or the checkout; "
                        "none: every divergence is news)")
    p.add_argument("--db", default=None,
                   help="hypothesis example database: a folder (default CORPUS/hypothesis-db), "
                        "redis://HOST:PORT/N to share one across a fleet, or none")
    p.add_argument("--campaign", type=out_dir, default=None,
                   help="campaign folder: runs, time series, report (default FINDINGS/campaign)")
    p.add_argument("--no-report", action="store_true",
                   help="no report.html/report.md at the end (`daxfuzz report` draws it later)")
    p.add_argument("--geometry", type=geometry, default=None,
                   help="world geometry (trace-header form)")
    p.add_argument("--weights", default=None,
                   help="op mix, e.g. fault=40,memory_failure=0 (defaults: "
                        + ",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()) + ")")
    p.add_argument("--swarm", action="store_true",
                   help="swarm testing: switch off a random subset of op kinds per batch")
    p.add_argument("--max-ops", type=count(1, MAX_OPS, "an op count"), default=32,
                   help=f"ops per input, 1..{MAX_OPS} (byte engines)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=run)
