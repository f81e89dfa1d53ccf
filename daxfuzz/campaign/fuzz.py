"""A fuzz campaign: one engine on one target for a time, every finding saved reduced.

Before fuzzing, the findings folder is checked (corrupt files named and skipped), a
killed run's queue is reduced, and what is known is gathered: reduced findings
already stored that still reproduce, and the divergences the scenario corpus
documents on the target.  Then the engine runs (atheris through libFuzzer, random
and Hypothesis in worker processes), the campaign folder records the run and a time
series, and the run's totals are written when it ends (killed runs are marked so by
the next one).  `daxfuzz fuzz` is the command line of :func:`fuzz_campaign`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import TextIO

from daxfuzz.campaign import folder as C
from daxfuzz.campaign.libfuzzer import Slices, drain_artifacts, run_atheris
from daxfuzz.campaign.progress import Display, Status, aside_note
from daxfuzz.campaign.workers import (
    Job,
    hypothesis_worker,
    random_worker,
    reduce_deadline,
    spawn,
)
from daxfuzz.core.known import base_of, documented_known, replay_known
from daxfuzz.vocab.geometry import Geometry

ENGINES = ("portfolio", "atheris", "hypothesis", "random")


@dataclass(frozen=True)
class FuzzConfig:
    """One campaign run, as `daxfuzz fuzz` parsed it (folders resolved, flags checked)."""

    engine: str  # one of ENGINES
    target: str
    geometry: Geometry
    seconds: float
    jobs: int
    seed: int | None  # None: a random one
    findings: str
    corpus: str  # atheris and portfolio: the libFuzzer corpus; others: unused
    db: str  # Hypothesis example database: a folder, redis://..., or "none"
    scenarios: str  # the scenario corpus whose documented divergences are known, or "none"
    campaign: str  # the campaign folder
    weights: str  # the --weights text
    parsed_weights: dict[str, int] | None
    swarm: bool
    max_ops: int
    quiet: bool = False


def gather_known(cfg: FuzzConfig) -> tuple[set[str], dict[str, str]]:
    """(stored findings that still reproduce, documented signature -> scenario trace)."""
    stored = replay_known(cfg.findings, cfg.target, cfg.geometry)
    documented = ({} if cfg.scenarios == "none"
                  else documented_known(cfg.scenarios, cfg.target, cfg.geometry))
    return stored, {sig: p for sig, p in documented.items() if sig not in stored}


def fuzz_campaign(cfg: FuzzConfig, err: TextIO) -> tuple[Status, C.Campaign]:
    """Run the campaign; its status at the end and its folder.  Progress and findings
    are said on `err` as they come.  One campaign at a time uses a findings folder and a
    campaign folder (`folder.lock_folder`): a second run drained the first's queue
    under it and overwrote its run records."""
    os.makedirs(cfg.findings, exist_ok=True)
    os.makedirs(cfg.campaign, exist_ok=True)
    locks = [C.lock_folder(cfg.findings)]
    try:
        if os.path.realpath(cfg.campaign) != os.path.realpath(cfg.findings):
            locks.append(C.lock_folder(cfg.campaign))
        return _fuzz_campaign(cfg, err)
    finally:
        for fd in locks:
            os.close(fd)


def _fuzz_campaign(cfg: FuzzConfig, err: TextIO) -> tuple[Status, C.Campaign]:
    g = cfg.geometry
    uses_db = cfg.engine in ("hypothesis", "portfolio")
    for problem in C.scan(cfg.findings, [cfg.corpus], cfg.db if uses_db else None,
                          None if cfg.scenarios == "none" else cfg.scenarios):
        C.say(problem)
    C.clean_temp([cfg.findings, os.path.join(cfg.findings, C.QUEUE), cfg.campaign])
    if uses_db and cfg.db != "none" and "://" not in cfg.db:
        from daxfuzz.campaign.hypothesis_db import remove_stale_temp

        remove_stale_temp(cfg.db, C.say)
    camp = C.Campaign(cfg.campaign)
    for saved in C.drain_queue(cfg.findings):  # what a killed run found but never reduced
        print(f"RECOVERED {saved['signature']}: queued by a killed run, reduced to "
              f"{saved['ops']} ops; {saved['trace_path']}{aside_note(saved)}", file=err,
              flush=True)
    stored, documented = gather_known(cfg)
    known = stored | set(documented)
    st = Status(cfg.engine, cfg.target, cfg.seconds, known=len(known), documented=documented)
    camp.start_run(engine=cfg.engine, target=cfg.target, jobs=cfg.jobs, budget=cfg.seconds,
                   seed=cfg.seed, findings_dir=os.path.abspath(cfg.findings),
                   corpus_dir=os.path.abspath(cfg.corpus), geometry=g.text(),
                   weights=cfg.weights, known=sorted(known))

    def sample(force: bool = False) -> None:
        camp.sample(force, elapsed=round(st.elapsed(), 2), execs=st.execs, steps=st.steps,
                    findings=len(st.findings), cov=st.cov, corpus=st.corpus)

    disp = Display(st, not cfg.quiet, on_tick=sample)
    _say_known(cfg, disp, stored, documented)
    seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 30)
    slices = Slices(cfg.target, g, cfg.seconds, cfg.corpus, cfg.findings, cfg.seed,
                    cfg.jobs, cfg.weights, cfg.swarm, cfg.max_ops)
    sample(True)
    try:
        drain_artifacts(slices, st, disp, known, camp)  # a killed atheris run's crash inputs
        if cfg.engine == "atheris":
            run_atheris(slices, st, disp, known, camp)
        elif cfg.engine == "portfolio":
            run_portfolio(cfg, slices, seed, st, disp, known, camp)
        else:
            job = Job(cfg.target, g, cfg.seconds, seed, cfg.parsed_weights, cfg.swarm, known,
                      cfg.findings, max_ops=cfg.max_ops, db=cfg.db)
            worker = hypothesis_worker if cfg.engine == "hypothesis" else random_worker
            spawn(worker, cfg.jobs, job, st, disp)
    finally:
        disp.stop()
        sample(True)
    kinds: dict[str, int] = {}
    for k in st.kinds_by_worker.values():
        for name, n in k.items():
            kinds[name] = kinds.get(name, 0) + n
    if cfg.engine == "atheris":
        kinds = C.corpus_op_mix(cfg.corpus, g, cfg.weights, cfg.max_ops)
    camp.finish_run(execs=st.execs, steps=st.steps, cov=st.cov, corpus=st.corpus,
                    seconds=round(st.elapsed(), 2), op_mix=kinds,
                    new_findings=[f["signature"] for f in st.findings],
                    base_findings=sorted(st.base_found),
                    first_found=st.first_found, members=st.members)  # {}: one engine
    return st, camp


def run_portfolio(cfg: FuzzConfig, slices: Slices, seed: int, st: Status, disp: Display,
                  known: set[str], camp: C.Campaign) -> None:
    """The members in turn (daxfuzz.campaign.portfolio.schedule), each on every job for
    its slice; what one found is known to the next.  Each round reseeds the members
    (`member_seed`); atheris resumes from its corpus and Hypothesis from its database."""
    import time

    from daxfuzz.campaign.portfolio import member_seed, timed

    reduce_by = reduce_deadline(time.monotonic() + cfg.seconds, cfg.seconds)
    fuzzer_view: tuple[int | None, int | None] = (None, None)  # libFuzzer's cov, corpus
    for member, t, rnd in timed(cfg.seconds):
        known |= {f["signature"] for f in st.findings}
        st.member = member
        t0, execs0 = time.monotonic(), st.execs
        if member == "atheris":
            st.cov, st.corpus = fuzzer_view
            rseed = None if slices.seed is None else member_seed(slices.seed, rnd)
            run_atheris(replace(slices, seconds=t, seed=rseed, reduce_by=reduce_by),
                        st, disp, known, camp)
            fuzzer_view = (st.cov, st.corpus)
        else:
            job = Job(cfg.target, cfg.geometry, t, member_seed(seed, rnd),
                      cfg.parsed_weights, cfg.swarm, known, cfg.findings,
                      max_ops=cfg.max_ops, db=cfg.db, reduce_by=reduce_by)
            spawn(hypothesis_worker if member == "hypothesis" else random_worker,
                  cfg.jobs, job, st, disp)
            st.cov_by_worker.clear()
            if fuzzer_view[0] is not None:  # the summary's cov is libFuzzer's
                st.cov, st.corpus = fuzzer_view
        m = st.members.setdefault(member, {"slices": 0, "seconds": 0.0, "execs": 0})
        m["slices"] += 1
        m["seconds"] = round(m["seconds"] + time.monotonic() - t0, 2)
        m["execs"] += st.execs - execs0
    st.member = ""


def _say_known(cfg: FuzzConfig, disp: Display, stored: set[str],
               documented: dict[str, str]) -> None:
    if documented:
        disp.say(f"{len(documented)} divergence(s) the scenario corpus documents on "
                 f"{cfg.target} (skipped while fuzzing): "
                 + ", ".join(f"{sig} ({os.path.basename(p)})"
                             for sig, p in sorted(documented.items())))
    base = base_of(cfg.target)
    if base:
        disp.say(f"{cfg.target} is built on {base}: a divergence {base} shows too on the "
                 "same ops is the base's (counted apart, by replay, whatever its signature)")
    if stored:
        disp.say(f"{len(stored)} known finding(s) still reproduce on {cfg.target}: "
                 f"{', '.join(sorted(stored))} (skipped while fuzzing)")
