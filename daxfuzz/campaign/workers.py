"""The fuzz campaign's worker processes (random and Hypothesis engines) and the
messages they send the campaign.

Each worker runs one engine for the budget and puts typed messages on a queue:
its progress (execs, ops, transitions, op mix) before every reduction, the base
kernel's divergences it met, how many findings it is reducing, each saved finding,
and that it is done.  :func:`spawn` starts `jobs` workers (seeds seed, seed+1, ...)
and :func:`fold` folds their messages into the campaign's :class:`Status`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from daxfuzz.campaign.progress import Display, Status, finding_line
from daxfuzz.core.emit import Finding
from daxfuzz.errors import EXIT_BAD_INPUT, DaxfuzzError
from daxfuzz.vocab.geometry import Geometry

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


# ---------------------------------------------------------------- messages -----------
@dataclass(frozen=True)
class Progress:
    """Execs and ops run since the worker's last Progress; its transitions and op mix."""

    worker: int
    execs: int
    steps: int
    transitions: int
    kinds: dict[str, int]


@dataclass(frozen=True)
class BaseSeen:
    """The base kernel's own divergences the worker met so far: signature -> times."""

    worker: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Reducing:
    """The worker is reducing `left` findings (0: it is fuzzing again)."""

    worker: int
    left: int


@dataclass(frozen=True)
class Found:
    """A finding, reduced and saved."""

    finding: Finding


@dataclass(frozen=True)
class Done:
    """The worker used its budget."""

    worker: int


Message = Progress | BaseSeen | Reducing | Found | Done


class Outbox(Protocol):
    def put(self, msg: Message) -> None: ...


@dataclass(frozen=True)
class Job:
    """What every worker of a campaign is given; `seed` differs per worker."""

    target: str
    geometry: Geometry
    seconds: float
    seed: int
    weights: dict[str, int] | None
    swarm: bool
    known: set[str]  # signatures not to report (stored findings, documented ones)
    findings: str  # the findings folder
    max_ops: int = 32  # ops per input (random)
    db: str | None = None  # the Hypothesis example database (a folder, redis://, none)
    # when reductions stop (monotonic; fork keeps the clock): a portfolio slice reduces
    # up to the campaign's deadline, not its own.  None: reduce_deadline of the job
    reduce_by: float | None = None


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


# ---------------------------------------------------------------- workers ------------
def random_worker(q: Outbox, job: Job, parent: int | None = None) -> None:
    """The random engine for the job's budget; findings reduced and saved as met."""
    from daxfuzz.core.emit import save_finding
    from daxfuzz.explore.transitions import Transitions
    from daxfuzz.vocab.trace import Trace
    from fuzz import random_engine

    die_with_parent(parent)
    reduce_by = job.reduce_by or reduce_deadline(time.monotonic() + job.seconds, job.seconds)
    pid = os.getpid()
    last = [0, 0, 0]  # inputs, steps, findings already reported

    def progress(s: random_engine.Stats) -> None:
        assert s.transitions is not None
        # the execs go first: the reductions below stop this worker's fuzzing meanwhile
        q.put(Progress(pid, s.inputs - last[0], s.steps - last[1], len(s.transitions.seen),
                       dict(s.kinds)))
        if s.base_found:
            q.put(BaseSeen(pid, dict(s.base_found)))
        last[:2] = [s.inputs, s.steps]
        new = s.findings[last[2]:]
        last[2] = len(s.findings)
        for i, (ops, div) in enumerate(new):
            q.put(Reducing(pid, len(new) - i))
            raw = Trace(ops=tuple(ops), target=job.target, geometry=job.geometry,
                        expect=f"divergence {div.signature()}")
            q.put(Found(save_finding(job.findings, raw, engine="random",
                                     deadline=reduce_by)))
        if new:
            q.put(Reducing(pid, 0))

    random_engine.run(job.target, job.geometry, seconds=job.seconds, seed=job.seed,
                      weights=job.weights, swarm=job.swarm, ops_per_input=job.max_ops,
                      known=job.known, progress=progress, transitions=Transitions())
    q.put(Done(pid))


def hypothesis_worker(q: Outbox, job: Job, parent: int | None = None) -> None:
    """The Hypothesis state machine in batches of 20 examples, a seed per batch, the
    examples 10 and 50 steps long in turn (`batch_steps`)."""
    from daxfuzz.campaign.hypothesis_db import open_database
    from daxfuzz.core.emit import save_finding
    from daxfuzz.core.known import Known
    from daxfuzz.explore.transitions import Transitions
    from daxfuzz.vocab.trace import Trace
    from fuzz.hypothesis_machine import (
        BATCH_STEPS,
        batch_settings,
        batch_steps,
        machine_for,
        run_batch,
    )

    die_with_parent(parent)
    rng = random.Random(job.seed)
    known = Known(job.target, job.geometry, own=job.known)
    end = time.monotonic() + job.seconds
    reduce_by = job.reduce_by or reduce_deadline(end, job.seconds)
    pid = os.getpid()
    db = open_database(job.db)
    transitions = Transitions()  # this worker's, across its machines
    kinds: dict[str, int] = {}
    batch = 0
    last_reuse = -REUSE_EVERY
    sent = [0, 0]  # the batch's examples and steps already reported

    def progress(m) -> None:
        transitions.merge(m.transitions.seen)
        q.put(Progress(pid, m.examples - sent[0], m.steps - sent[1], len(transitions.seen),
                       dict(kinds)))
        sent[:] = [m.examples, m.steps]
        if known.base_found:
            q.put(BaseSeen(pid, dict(known.base_found)))

    def before_save(m) -> None:  # the execs go first: the reduction stops this worker
        progress(m)
        q.put(Reducing(pid, 1))

    while time.monotonic() < end:
        w = job.weights
        if job.swarm:
            from fuzz.codec import DEFAULT_WEIGHTS
            from fuzz.random_engine import swarm_weights

            w = swarm_weights(rng, job.weights or DEFAULT_WEIGHTS)
        m = machine_for(job.target, job.geometry, weights=w, known=known,
                        findings=job.findings, deadline=end, reduce_deadline=reduce_by)
        m.kinds = kinds
        m.before_save = staticmethod(lambda m=m: before_save(m))
        sent[:] = [0, 0]
        # --seed makes the run reproducible through the machine's seed (Hypothesis's
        # @seed on the machine; hypothesis.core.global_force_seed would switch the
        # example database off).  Each batch gets its own seed from (seed, batch): a
        # batch is only 20 examples, and rerunning one seed would repeat them.  Streams
        # of different --seed values (and of --jobs workers, seed+i) do not overlap.
        batch_seed = job.seed * 1_000_003 + batch if RESEED else job.seed
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
            # short and long examples in turn; a batch replaying the database gets the
            # longest, so that a failure it holds from a long example fits
            steps = max(BATCH_STEPS) if reuse else batch_steps(batch)
            run_batch(m, batch_seed, batch_settings(20, steps, db, reuse))
        except Exception:  # noqa: BLE001 - a divergence (or Flaky after the deadline)
            saved = m.last_finding
            if saved is None and m.last_failing_ops:
                before_save(m)
                raw = Trace(ops=tuple(m.last_failing_ops), target=job.target,
                            geometry=job.geometry, expect="divergence")
                saved = save_finding(job.findings, raw, engine="hypothesis",
                                     deadline=reduce_by)
            if saved is not None:
                known.own.add(saved["signature"])
                q.put(Found(saved))
                batch -= 1  # rerun this seed, past the finding
            q.put(Reducing(pid, 0))
        batch += 1
        progress(m)
    q.put(Done(pid))


Worker = Callable[[Outbox, Job, "int | None"], None]


def spawn(worker: Worker, jobs: int, job: Job, st: Status, disp: Display) -> None:
    """Run `worker` in `jobs` processes (seeds job.seed + i); fold their messages
    into `st` until every one is done or gone."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = []
    for i in range(jobs):
        p = ctx.Process(target=_run_worker,
                        args=(worker, q, replace(job, seed=job.seed + i), os.getpid()),
                        daemon=True)
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
    for i, p in enumerate(procs):
        p.join(timeout=5)
        if p.exitcode == EXIT_BAD_INPUT:  # it said which path it could not write
            st.failed.append(f"worker {i} (seed {job.seed + i}) stopped on the error above")
        elif p.exitcode and p.exitcode != 130:  # a traceback on stderr, no Done
            st.crashed.append(f"worker {i} (seed {job.seed + i}) exited with {p.exitcode}")


def _run_worker(worker: Worker, q: Outbox, job: Job, parent: int) -> None:
    """`worker` in its process: an error daxfuzz raises on purpose (a findings folder
    gone read-only or full) is said in one line and exits with its code, not a
    traceback; Ctrl-C exits quietly (the parent says "interrupted")."""
    try:
        worker(q, job, parent)
    except KeyboardInterrupt:
        sys.exit(130)
    except DaxfuzzError as e:
        print(f"daxfuzz: error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)


def fold(msg: Message, st: Status, disp: Display, seen: set[str]) -> bool:
    """Fold one worker message into `st`; True for a worker's Done."""
    match msg:
        case Reducing(worker, left):
            st.reducing[worker] = left
        case Progress(worker, execs, steps, transitions, kinds):
            st.execs += execs
            st.steps += steps
            st.cov_by_worker[worker] = transitions
            st.kinds_by_worker[worker] = kinds
            st.cov = max(st.cov_by_worker.values())  # a lower bound of the union
        case BaseSeen(worker, counts):  # the base's own, counted apart
            st.base_by_worker[worker] = counts
            st.base_found = {}
            for per_worker in st.base_by_worker.values():
                for sig, n in per_worker.items():
                    st.base_found[sig] = st.base_found.get(sig, 0) + n
        case Found(saved):
            if saved["signature"] not in seen:
                seen.add(saved["signature"])
                st.found(saved)
                disp.say(finding_line(saved, st))
        case Done():
            return True
    return False
