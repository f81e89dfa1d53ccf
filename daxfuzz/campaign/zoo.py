"""The bug-finding benchmark: every zoo variant, every engine, a fixed seed list.

For each (variant, engine, seed) the engine fuzzes the variant from an empty corpus for
at most `budget` seconds and stops at the first divergence the variant's base kernel
does not show on the same ops (`daxfuzz.core.known`: the base's own are not the
variant's).  The finding is reduced and its length compared with the variant's known
minimum.

The ``exhaust`` engine (opt-in) is `daxfuzz exhaust` up to the variant's known minimal
length over the small world, narrowed to the variant's `exhaust_scope` where it has
one; it is deterministic, so it runs once (first seed) and `execs` counts edges.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from daxfuzz.vocab.geometry import DEFAULT, Geometry

ENGINES = ("random", "hypothesis", "atheris")  # the default set; "exhaust" is opt-in


@dataclass
class Attempt:
    variant: str
    engine: str
    seed: int
    found: bool
    seconds: float  # to the first finding, or the budget
    execs: int  # inputs (random, atheris) or examples (hypothesis)
    reduced_len: int | None = None
    signature: str | None = None
    reduced: list[str] | None = None  # the reduced trace's op lines
    geometry: str | None = None  # the world they run in (exhaust: its small one)


def _known(variant: str, g: Geometry, want: str | None):
    """What is news: the variant's own divergences, or only signature `want`."""
    from daxfuzz.core.known import Known, Wanted

    return Wanted(variant, g, want) if want else Known(variant, g)


def find_random(variant: str, g: Geometry, budget: float, seed: int,
                want: str | None = None):
    from fuzz import random_engine

    st = random_engine.run(variant, g, seconds=budget, seed=seed, stop_at_first=True,
                           known=_known(variant, g, want))
    if st.findings:
        ops, _div = st.findings[0]
        return True, st.first_found or st.seconds, st.inputs, ops
    return False, st.seconds, st.inputs, None


def find_hypothesis(variant: str, g: Geometry, budget: float, seed: int,
                    want: str | None = None):
    from fuzz.hypothesis_machine import batch_settings, batch_steps, machine_for, run_batch

    t0 = time.monotonic()
    end = t0 + budget
    examples = 0
    batch = 0
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() < end:
            m = machine_for(variant, g, findings=tmp, deadline=end,
                            known=_known(variant, g, want))
            # a seed per batch of 20 examples, as `daxfuzz fuzz` does (one seed for
            # every batch would rerun the same 20 examples until the budget ends)
            batch += 1
            try:
                run_batch(m, seed * 1_000_003 + batch - 1,
                          batch_settings(20, batch_steps(batch - 1)))
            except Exception:  # noqa: BLE001 - the divergence
                if m.first_found is not None and m.last_failing_ops:
                    return (True, m.first_found - t0, examples + m.examples,
                            list(m.last_failing_ops))
            examples += m.examples
    return False, time.monotonic() - t0, examples, None


#: ops per atheris input in the zoo (the harness's default)
ZOO_MAX_OPS = 64


def find_atheris(variant: str, g: Geometry, budget: float, seed: int,
                 want: str | None = None, corpus: str | None = None):
    """libFuzzer on the harness from `corpus` (default: an empty one of its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        if corpus is None:
            corpus = os.path.join(tmp, "corpus")
            os.makedirs(corpus)
        # every harness setting the benchmark relies on, set: a DAXFUZZ_MAX_OPS or
        # DAXFUZZ_WEIGHTS in the user's environment does not change the figures
        env = dict(os.environ, DAXFUZZ_TARGET=variant, DAXFUZZ_GEOMETRY=g.text(),
                   DAXFUZZ_WANT=want or "", DAXFUZZ_MAX_OPS=str(ZOO_MAX_OPS),
                   DAXFUZZ_WEIGHTS="")
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "fuzz.atheris_harness", corpus,
             f"-max_total_time={max(1, int(budget))}", f"-seed={seed + 1}",
             f"-artifact_prefix={tmp}/", "-print_final_stats=1"],
            env=env, capture_output=True, text=True, timeout=budget + 60)
        dt = time.monotonic() - t0
        execs = 0
        for line in proc.stderr.splitlines():
            if line.startswith("stat::number_of_executed_units:"):
                execs = int(line.split(":")[-1])
            elif " DONE " in line or line.startswith("#") and "exec/s" in line:
                parts = line.split()
                if parts and parts[0].startswith("#") and parts[0][1:].isdigit():
                    execs = max(execs, int(parts[0][1:]))
        crashes = [f for f in os.listdir(tmp) if f.startswith("crash-")]
        if not crashes and proc.returncode and not execs:  # it never ran: say why
            from daxfuzz.errors import ConfigError

            tail = "\n".join(proc.stderr.splitlines()[-5:])
            raise ConfigError(f"the atheris harness failed to start on {variant}:\n{tail}")
        if not crashes:
            return False, dt, execs, None
        from fuzz.codec import Codec

        with open(os.path.join(tmp, crashes[0]), "rb") as f:
            data = f.read()
        ops = Codec(g).decode(data, max_ops=ZOO_MAX_OPS)
        return True, dt, execs, ops


def exhaust_world(variant: str) -> tuple[Geometry, tuple[str, ...]]:
    """The small world and op kinds `daxfuzz exhaust` uses for `variant` (its scope)."""
    from dataclasses import replace

    from daxfuzz.explore.exhaust import SMALL
    from kdax.targets import get_target

    g, kinds = SMALL, ()
    for item in getattr(get_target(variant), "exhaust_scope", "").split():
        key, _, val = item.partition("=")
        if key == "ops":
            kinds = tuple(val.split(","))
        elif key == "processes":
            g = replace(g, mms=int(val))
        else:
            raise ValueError(f"{variant}: exhaust_scope {item!r}: keys are ops=, processes=")
    return g, kinds


def find_exhaust(variant: str, g: Geometry, budget: float, seed: int):
    """Breadth-first up to the known minimal length; the first counterexample."""
    from daxfuzz.explore.exhaust import exhaust
    from kdax.targets import get_target

    sg, kinds = exhaust_world(variant)
    t0 = time.monotonic()
    res = exhaust(variant, sg, get_target(variant).minimal, seconds=budget, kinds=kinds)
    dt = time.monotonic() - t0
    if res.counterexamples:
        return True, dt, res.edges, res.counterexamples[0][0]
    return False, dt, res.edges, None


def find_portfolio(variant: str, g: Geometry, budget: float, seed: int,
                   want: str | None = None):
    """The members in turn (daxfuzz.campaign.portfolio.schedule) until one finds; the
    time-to-find counts every slice before it, atheris's start-ups included; each
    round reseeds the members (`member_seed`); atheris keeps its corpus from slice to
    slice."""
    from daxfuzz.campaign.portfolio import member_seed, timed

    t0 = time.monotonic()
    execs = 0
    with tempfile.TemporaryDirectory() as corpus:
        for member, t, rnd in timed(budget):
            s = member_seed(seed, rnd)
            start = time.monotonic()
            if member == "atheris":
                found, secs, n, ops = find_atheris(variant, g, t, s, want, corpus=corpus)
            else:
                found, secs, n, ops = FINDERS[member](variant, g, t, s, want)
            execs += n
            if found:  # the member's time-to-find within its slice, after those before
                return True, start - t0 + secs, execs, ops
    return False, time.monotonic() - t0, execs, None


FINDERS = {"random": find_random, "hypothesis": find_hypothesis, "atheris": find_atheris,
           "exhaust": find_exhaust, "portfolio": find_portfolio}


def reduce_finding(variant: str, g: Geometry, ops: list) -> tuple[list, object] | None:
    """An engine's finding on `variant`, reduced: (ops, divergence), or None when the
    ops show no divergence of the variant's own (a flaky decode, or the base kernel's).

    Any divergence of the variant's own counts (`daxfuzz.core.known.own_divergence`: not one
    its base shows on the same ops), so the reduced length is comparable with a known
    minimum."""
    from daxfuzz.core.known import own_divergence
    from daxfuzz.core.reduce import reduce

    d, _ = own_divergence(variant, g, ops)
    if d is None:
        return None

    def diverges(cand) -> bool:
        return own_divergence(variant, g, cand)[0] is not None

    red = reduce(ops[:d.step], diverges, g)
    return red, own_divergence(variant, g, red)[0]


def attempt(variant: str, engine: str, seed: int, budget: float,
            g: Geometry = DEFAULT) -> Attempt:
    if variant.startswith(DEEP_PREFIX):
        return attempt_deep(variant, engine, seed, budget)
    if engine == "exhaust":
        g = exhaust_world(variant)[0]
    found, secs, execs, ops = FINDERS[engine](variant, g, budget, seed)
    a = Attempt(variant, engine, seed, found, round(secs, 3), execs)
    if found and ops:
        r = reduce_finding(variant, g, ops)
        if r is None:
            a.found = False
            return a
        red, d = r
        a.reduced_len = len(red)
        a.reduced = [str(op) for op in red]
        a.geometry = g.text()
        a.signature = d.signature()  # type: ignore[attr-defined]
    return a


# ---------------------------------------------------------------- deep rows ----------
#: real divergences of the kernel ports that the corpus documents (each confirmed on
#: Linux 7.2.13 or read in the 6.15 source), found from scratch: no corpus, no known
#: list, only that bug's signature counts.  (target, trace in corpus/)
DEEP = (("7.2", "divergence-cow-pte-under-pmd-entry-nrpages.trace"),
        ("6.15", "divergence-stale-index-looks-shared.trace"),
        ("7.2", "divergence-mixed-pte-then-pmd-share.trace"))
DEEP_PREFIX = "deep:"


@dataclass
class DeepRow:
    name: str  # deep:<target>:<trace stem>
    target: str
    want: str  # the divergence signature the trace documents on the target
    minimal: int  # the trace's length
    geometry: Geometry


def deep_rows(corpus: str | None = None) -> dict[str, DeepRow]:
    """The deep rows, read from the corpus traces (their expectation on the target)."""
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import read_trace

    if corpus is None:
        from daxfuzz.home import checkout

        corpus = os.path.join(checkout(), "corpus")
    out = {}
    for target, name in DEEP:
        t = read_trace(os.path.join(corpus, name))
        words = t.expectation(target).split()
        if len(words) != 2 or words[0] != "divergence":
            raise ValueError(f"{name}: documents no divergence on {target}")
        d, _ = run_ops(target, t.geometry, t.ops)  # the known minimal: ops to the divergence
        row = DeepRow(f"{DEEP_PREFIX}{target}:{name.removesuffix('.trace')}", target,
                      words[1], d.step if d is not None else len(t.ops), t.geometry)
        out[row.name] = row
    return out


def attempt_deep(name: str, engine: str, seed: int, budget: float) -> Attempt:
    """Time for `engine` to reach the deep row's signature on its kernel target from
    scratch; the finding reduced with that signature kept."""
    from daxfuzz.core.reduce import reduce_divergence

    row = deep_rows()[name]
    if engine == "exhaust":
        raise ValueError("the deep rows are for the fuzzing engines (exhaust: use "
                         "`daxfuzz exhaust --target T --max-ops K`)")
    found, secs, execs, ops = FINDERS[engine](row.target, row.geometry, budget, seed,
                                              want=row.want)
    a = Attempt(name, engine, seed, found, round(secs, 3), execs)
    if found and ops:
        red = reduce_divergence(row.target, row.geometry, ops)
        if red is None or red.divergence.signature() != row.want:
            a.found = False  # a decode that does not replay as found: not a find
            return a
        a.reduced_len = len(red.trace.ops)
        a.reduced = [str(op) for op in red.trace.ops]
        a.geometry = row.geometry.text()
        a.signature = row.want
    return a


def _attempt_star(args: tuple) -> Attempt:
    return attempt(*args)


def run_zoo(engines: list[str], budget: float, seeds: list[int], jobs: int = 1,
            variants: list[str] | None = None, progress=None,
            deep: bool = False) -> list[Attempt]:
    """Every (variant, engine, seed) attempt; with `deep`, the deep rows instead."""
    from kdax.zoo import ZOO

    names = [n for n in (list(deep_rows()) if deep else [c.name for c in ZOO])
             if not variants or n in variants]
    work = [(v, e, s, budget) for v in names for e in engines
            for s in (seeds[:1] if e == "exhaust" else seeds)]
    out: list[Attempt] = []
    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(jobs) as pool:
            for a in pool.imap_unordered(_attempt_star, work):
                out.append(a)
                if progress:
                    progress(a)
    else:
        for w in work:
            a = attempt(*w)
            out.append(a)
            if progress:
                progress(a)
    return out


def table(attempts: list[Attempt], engines: list[str]) -> tuple[str, dict]:
    """Markdown table and JSON summary."""
    from kdax.zoo import ZOO

    minimal = {c.name: c.minimal for c in ZOO}
    deep = deep_rows()
    minimal.update({r.name: r.minimal for r in deep.values()})
    rows = []
    by: dict[tuple[str, str], list[Attempt]] = {}
    for a in attempts:
        by.setdefault((a.variant, a.engine), []).append(a)
    variants = [n for n in [c.name for c in ZOO] + list(deep)
                if any(a.variant == n for a in attempts)]
    head = "| variant | known min |" + "".join(
        f" {e}: found | {e}: median s | {e}: median execs | {e}: reduced |" for e in engines)
    sep = "|---|---|" + "---|---|---|---|" * len(engines)
    rows = [head, sep]
    summary: dict = {"engines": {}, "variants": {}}
    for v in variants:
        cells = [v, str(minimal.get(v, "?"))]
        summary["variants"][v] = {}
        for e in engines:
            at = by.get((v, e), [])
            hits = [a for a in at if a.found]
            med_t = statistics.median(a.seconds for a in hits) if hits else None
            med_x = int(statistics.median(a.execs for a in hits)) if hits else None
            red = min((a.reduced_len for a in hits if a.reduced_len), default=None)
            cells += [f"{len(hits)}/{len(at)}", f"{med_t:.2f}" if med_t is not None else "-",
                      str(med_x) if med_x is not None else "-",
                      f"{red}" if red is not None else "-"]
            summary["variants"][v][e] = {"found": len(hits), "tries": len(at),
                                         "median_seconds": med_t, "median_execs": med_x,
                                         "reduced_len": red}
        rows.append("| " + " | ".join(cells) + " |")
    for e in engines:
        found = sum(1 for v in variants if summary["variants"][v][e]["found"])
        times = [summary["variants"][v][e]["median_seconds"] for v in variants
                 if summary["variants"][v][e]["median_seconds"] is not None]
        within = sum(1 for v in variants
                     if summary["variants"][v][e]["reduced_len"] is not None
                     and summary["variants"][v][e]["reduced_len"] <= minimal.get(v, 0))
        summary["engines"][e] = {"found": found, "of": len(variants),
                                 "median_time_to_find": statistics.median(times)
                                 if times else None, "reduced_within_minimal": within}
    lines = ["| engine | variants found | median time-to-find (s) | reduced <= known min |",
             "|---|---|---|---|"]
    for e in engines:
        s = summary["engines"][e]
        mt = f"{s['median_time_to_find']:.2f}" if s["median_time_to_find"] is not None else "-"
        lines.append(f"| {e} | {s['found']}/{s['of']} | {mt} | {s['reduced_within_minimal']} |")
    md = "\n".join(lines) + "\n\n" + "\n".join(rows) + "\n"
    shorter = sorted((a.reduced_len, a.variant, a.engine, a.seed, a.signature, a.reduced,
                      a.geometry or "")
                     for a in attempts if a.reduced and a.reduced_len is not None
                     and a.reduced_len < minimal.get(a.variant, 0))
    if shorter:  # the known minimum was not: say so, with the trace to store
        md += "\nShorter than the known minimum (store it in corpus/zoo/):\n"
        seen = set()
        for n, v, e, seed, sig, ops, geo in shorter:
            if v not in seen:
                seen.add(v)
                md += (f"\n{v}: {n} ops < {minimal[v]} ({e}, seed {seed}, {sig})\n\n"
                       + (f"    geometry: {geo}\n" if geo else "")
                       + "".join(f"    {op}\n" for op in ops))
    summary["attempts"] = [asdict(a) for a in attempts]
    return md, summary


def save(out_dir: str, md: str, summary: dict) -> tuple[str, str]:
    from daxfuzz.textio import write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    mdp, jp = os.path.join(out_dir, "zoo.md"), os.path.join(out_dir, "zoo.json")
    write_text_atomic(mdp, md)
    write_text_atomic(jp, json.dumps(summary, indent=1, sort_keys=True))
    return mdp, jp
