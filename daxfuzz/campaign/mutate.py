"""Campaign adequacy by mutation: what does a clean campaign of a target kill?

Every mutant (`kdax.mutant`) of the selected kernel functions is a target built on
the one mutated.  Each engine fuzzes each mutant from an empty corpus for `budget`
seconds and stops at its first divergence; the finding is reduced and replayed on
the base target: if the base shows the same divergence (step and signature) it is the
base's, not a kill.  A mutant no engine kills is checked for equivalence -- `exhaust`
to a small depth plus a long random run -- and is "likely equivalent" only when the
exhaustive run completed and neither found anything.

The result is a Markdown and a JSON table (`table`, `save`), as `daxfuzz zoo`'s.
"""

from __future__ import annotations

import json
import os
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from daxfuzz.errors import ConfigError
from daxfuzz.vocab.geometry import DEFAULT, Geometry

ENGINES = ("random", "hypothesis", "atheris")  # the default set; "exhaust" is opt-in
EQUIV_DEPTH = 3  # exhaust depth of the equivalence check
#: seconds the check's exhaust may take: depth 3 is ~20k states, ~15 s on a
#: mutant with a free core; a time limit near that would leave the check incomplete
#: on a loaded machine
EQUIV_EXHAUST_CAP = 600.0
EXHAUST_DEPTH = 3  # depth of the "exhaust" engine


@dataclass
class Kill:
    """One engine on one mutant."""

    engine: str
    killed: bool
    seconds: float  # to the first finding, or the budget
    execs: int
    reduced_len: int | None = None
    signature: str | None = None
    reduced: list[str] | None = None  # the reduced trace's op lines
    base: bool = False  # the finding shows on the base target too: the base's, no kill


@dataclass
class Check:
    """The equivalence check of a survivor: exhaust to `depth`, a long random run."""

    depth: int
    complete: bool  # every sequence up to `depth` ops was run
    states: int
    seconds: float  # of the random run
    found_by: str | None = None  # "exhaust" or "random": the mutant is not equivalent
    signature: str | None = None
    reduced: list[str] | None = None

    @property
    def likely_equivalent(self) -> bool:
        return self.complete and self.found_by is None


@dataclass
class Row:
    """One mutant's line of the table."""

    mutant: str  # the target name that rebuilds it
    id: str
    module: str
    function: str
    operator: str
    diff: str
    kills: dict[str, Kill] = field(default_factory=dict)
    check: Check | None = None

    @property
    def killed(self) -> bool:
        return any(k.killed for k in self.kills.values())

    @property
    def status(self) -> str:
        if self.killed:
            return "killed"
        if self.check is None:
            return "survived (unchecked)"
        if self.check.found_by:
            return f"survived (not equivalent: {self.check.found_by} kills it)"
        if self.check.likely_equivalent:
            return "likely equivalent"
        return "survived (check incomplete)"


@dataclass
class Selection:
    """The mutants to run and what generating them dropped."""

    target: str
    rows: list[Row]
    generated: int  # mutants of the selected functions
    tried: int  # built (the sample's candidates, or all)
    dropped: dict[str, int]  # why -> how many: "identical", "does not build"
    functions: int


# ------------------------------------------------------------------ selection -------
def _module_matches(spec: str, src) -> bool:
    if spec.endswith(".py"):
        return (os.path.normpath(spec) == os.path.normpath(src.rel())
                or os.path.abspath(spec) == os.path.abspath(src.path))
    return spec == src.cls.__module__


def select(target: str, modules: Sequence[str] = (), functions: Sequence[str] = (),
           operators: Sequence[str] = (), sample: int | None = None, seed: int = 0
           ) -> Selection:
    """The mutants of `target`'s kernel functions in `modules` (files or dotted
    names) and `functions` (all when empty), by `operators`; with `sample`, that many,
    round-robin over modules then operators, each list shuffled by `seed`.  Mutants
    identical to the original or that do not build are dropped (and counted)."""
    from kdax import mutant as M
    from kdax.targets import get_target

    cls = get_target(target)
    funcs = M.kernel_functions(cls)
    for m in modules:
        if not any(_module_matches(m, s) for s in funcs.values()):
            known = sorted({s.rel() for s in funcs.values()})
            raise ConfigError(f"--module {m}: target {cls.name} runs no kernel function "
                              f"from it; its modules: {', '.join(known)}")
    for f in functions:
        if f not in funcs:
            raise ConfigError(f"--function {f}: target {cls.name} runs no kernel function "
                              f"{f!r} (a method of its class or its bases)")
    for o in operators:
        if o not in M.OPERATORS:
            raise ConfigError(f"--operator {o}: operators are {', '.join(M.OPERATORS)}")
    if sample is not None and sample <= 0:
        raise ConfigError(f"--sample {sample}: must be positive")
    chosen = [f for f, s in funcs.items()
              if (not modules or any(_module_matches(m, s) for m in modules))
              and (not functions or f in functions)]
    if not chosen:
        raise ConfigError(f"empty selection: no kernel function of {cls.name} is in "
                          f"{', '.join(functions)} and {', '.join(modules)}")
    specs = [m for m in M.mutants(cls, chosen) if not operators or m.operator in operators]
    if not specs:
        raise ConfigError(f"empty selection: no mutant of {', '.join(chosen)} by "
                          f"{', '.join(operators)}")
    order = specs if sample is None else _round_robin(specs, funcs, seed)
    rows: list[Row] = []
    dropped: dict[str, int] = {}
    tried = 0
    for m in order:
        if sample is not None and len(rows) >= sample:
            break
        tried += 1
        b = M.build(m, cls)
        if b.cls is None:
            why = b.dropped.split(":")[0]
            dropped[why] = dropped.get(why, 0) + 1
            continue
        rows.append(Row(m.name, m.id, b.source.rel(), m.function, m.operator, b.diff))
    return Selection(cls.name, rows, len(specs), tried, dropped, len(chosen))


def _round_robin(specs: list, funcs: dict, seed: int) -> list:
    """Modules in turn; within a module, operators in turn; each list shuffled."""
    rng = random.Random(seed)
    by: dict[str, dict[str, list]] = {}
    for m in specs:
        by.setdefault(funcs[m.function].rel(), {}).setdefault(m.operator, []).append(m)
    queues = []
    for mod in sorted(by):
        ops = []
        for op in by[mod]:
            lst = by[mod][op]
            rng.shuffle(lst)
            ops.append(lst)
        queues.append(_interleave(ops))
    return _interleave(queues)


def _interleave(lists: list[list]) -> list:
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


# ------------------------------------------------------------------ running ---------
def attempt(mutant: str, engine: str, seed: int, budget: float,
            g: Geometry = DEFAULT) -> Kill:
    """`engine` on `mutant` for `budget` seconds; the finding reduced and replayed on
    the base target (`runner.shows_same`): a kill only if the base does not show it."""
    from daxfuzz.campaign.zoo import FINDERS, reduce_finding
    from daxfuzz.core.runner import shows_same
    from kdax.targets import get_target

    if engine == "exhaust":
        from daxfuzz.explore.exhaust import SMALL, exhaust

        g = SMALL
        res = exhaust(mutant, g, EXHAUST_DEPTH, seconds=budget)
        found, secs, execs = bool(res.counterexamples), res.seconds, res.edges
        ops = res.counterexamples[0][0] if found else None
    else:
        found, secs, execs, ops = FINDERS[engine](mutant, g, budget, seed)
    k = Kill(engine, False, round(secs, 3), execs)
    if found and ops:
        r = reduce_finding(mutant, g, ops)
        if r is None:
            return k
        red, d = r
        k.reduced_len, k.reduced = len(red), [str(op) for op in red]
        k.signature = d.signature()  # type: ignore[attr-defined]
        k.base = shows_same(get_target(mutant).base, g, red, d)  # type: ignore[arg-type]
        k.killed = not k.base
    return k


def check(mutant: str, depth: int, seconds: float, seed: int) -> Check:
    """Is a survivor equivalent?  `exhaust` to `depth` over the small world (to the
    end, up to EQUIV_EXHAUST_CAP), then random runs of `seconds` in all (other seeds
    than the engines')."""
    from daxfuzz.campaign.zoo import reduce_finding
    from daxfuzz.explore.exhaust import SMALL, exhaust
    from fuzz import random_engine

    res = exhaust(mutant, SMALL, depth, seconds=EQUIV_EXHAUST_CAP)
    c = Check(depth, res.complete and res.depth >= depth, res.states, 0.0)
    if res.counterexamples:
        c.found_by, g, ops = "exhaust", SMALL, res.counterexamples[0][0]
    else:
        # half with the engines' op mix, half swarm (op kinds switched off at random):
        # inputs that avoid the kinds where the base diverges first (its bugs would
        # end most inputs before the mutant's own)
        for swarm, s in ((False, seed + 1), (True, seed + 2)):
            st = random_engine.run(mutant, DEFAULT, seconds=seconds / 2, seed=s,
                                   stop_at_first=True, swarm=swarm)
            c.seconds = round(c.seconds + st.seconds, 3)
            if st.findings:
                break
        if not st.findings:
            return c
        c.found_by, g, ops = "random", DEFAULT, st.findings[0][0]
    r = reduce_finding(mutant, g, ops)
    if r is not None:
        c.reduced = [str(op) for op in r[0]]
        c.signature = r[1].signature()  # type: ignore[attr-defined]
    return c


def _attempt_star(args: tuple) -> tuple[str, Kill]:
    return args[0], attempt(*args)


def _check_star(args: tuple) -> tuple[str, Check]:
    return args[0], check(*args)


def _pool_map(fn: Callable, work: list, jobs: int) -> Iterable:
    if jobs <= 1:
        yield from map(fn, work)
        return
    import multiprocessing as mp

    with mp.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(fn, work)


def run_mutants(sel: Selection, engines: Sequence[str], budget: float, *, seed: int = 1,
                jobs: int = 1, equiv_depth: int = EQUIV_DEPTH, equiv_seconds: float = 30.0,
                progress: Callable[[str], None] | None = None) -> list[Row]:
    """Every engine on every selected mutant, then the survivors' equivalence check."""
    rows = {r.mutant: r for r in sel.rows}
    work = [(r.mutant, e, seed, budget) for r in sel.rows for e in engines]
    for name, k in _pool_map(_attempt_star, work, jobs):
        rows[name].kills[k.engine] = k
        if progress:
            mark = (f"killed in {k.seconds:.2f}s, reduced to {k.reduced_len}" if k.killed
                    else "base's divergence" if k.base else f"survived {k.seconds:.0f}s")
            progress(f"  {rows[name].id:<52} {k.engine:<10} {mark}")
    survivors = [r for r in sel.rows if not r.killed]
    work = [(r.mutant, equiv_depth, equiv_seconds, seed) for r in survivors]
    for name, c in _pool_map(_check_star, work, jobs):
        rows[name].check = c
        if progress:
            progress(f"  {rows[name].id:<52} check      {rows[name].status}")
    return sel.rows


# ------------------------------------------------------------------ the table -------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summarize(rows: Sequence[Row], engines: Sequence[str]) -> dict:
    """Kill count and rate, median time-to-kill and reduced length per engine and for
    the union; survivors and likely-equivalent counts."""
    n = len(rows)
    out: dict = {"mutants": n, "engines": {}}
    for e in [*engines, "union"]:
        if e == "union":
            ks = [min((k for k in r.kills.values() if k.killed), key=lambda k: k.seconds)
                  for r in rows if r.killed]
        else:
            ks = [r.kills[e] for r in rows if e in r.kills and r.kills[e].killed]
        out["engines"][e] = {
            "killed": len(ks), "rate": len(ks) / n if n else 0.0,
            "median_time_to_kill": statistics.median(k.seconds for k in ks) if ks else None,
            # inputs run to the kill (programs, examples, libFuzzer runs): unlike the
            # seconds, the same on every run and machine; the union's mixes engines
            "median_execs_to_kill": (statistics.median(k.execs for k in ks)
                                     if ks and e != "union" else None),
            "median_reduced_len": statistics.median(k.reduced_len for k in ks
                                                    if k.reduced_len) if ks else None}
    out["modules"] = {}
    for r in rows:
        m = out["modules"].setdefault(r.module, {"mutants": 0, "killed": 0})
        m["mutants"] += 1
        m["killed"] += r.killed
    out["survivors"] = sum(1 for r in rows if not r.killed)
    out["likely_equivalent"] = sum(1 for r in rows if r.check and r.check.likely_equivalent)
    out["not_equivalent_survivors"] = sum(1 for r in rows if r.check and r.check.found_by)
    out["base_findings"] = sum(1 for r in rows for k in r.kills.values() if k.base)
    killable = n - out["likely_equivalent"]
    out["union_rate_of_non_equivalent"] = (out["engines"]["union"]["killed"] / killable
                                           if killable else 0.0)
    return out


def table(sel: Selection, rows: Sequence[Row], engines: Sequence[str], params: dict
          ) -> tuple[str, dict]:
    """Markdown table and JSON summary."""
    s = summarize(rows, engines)
    drop = ", ".join(f"{v} {k}" for k, v in sorted(sel.dropped.items())) or "none"
    md = [f"# daxfuzz mutate: {sel.target}", "",
          f"{len(rows)} mutants of {sel.functions} kernel functions ({sel.generated} "
          f"generated, {sel.tried} built, dropped: {drop}); engines "
          f"{', '.join(engines)}; {params['budget']:g} s per engine and mutant; seed "
          f"{params['seed']}.", "",
          "| engine | killed | kill rate | median time-to-kill (s) | median inputs to kill "
          "| median reduced length |",
          "|---|---|---|---|---|---|"]
    for e in [*engines, "union"]:
        x = s["engines"][e]
        mt = f"{x['median_time_to_kill']:.2f}" if x["median_time_to_kill"] is not None else "-"
        mx = f"{x['median_execs_to_kill']:g}" if x["median_execs_to_kill"] is not None else "-"
        mr = f"{x['median_reduced_len']:g}" if x["median_reduced_len"] is not None else "-"
        md.append(f"| {e} | {x['killed']}/{len(rows)} | {100 * x['rate']:.1f}% | {mt} | {mx} "
                  f"| {mr} |")
    md += ["", f"Survivors: {s['survivors']} ({s['likely_equivalent']} likely equivalent: "
           f"exhaust to {params['equiv_depth']} ops complete and a {params['equiv_seconds']:g} s "
           f"random run found nothing; {s['not_equivalent_survivors']} killable: the check "
           f"found them).  Union kill rate of the mutants not likely equivalent: "
           f"{100 * s['union_rate_of_non_equivalent']:.1f}%.  Findings the base "
           f"shows too (not kills): {s['base_findings']}.", ""]
    md += ["| module | mutants | killed (union) |", "|---|---|---|"]
    md += [f"| {m} | {x['mutants']} | {x['killed']} |" for m, x in sorted(s["modules"].items())]
    md += [""]
    md.append("| mutant | diff | " + " | ".join(engines) + " | status |")
    md.append("|---|---|" + "---|" * len(engines) + "---|")
    for r in rows:
        cells = []
        for e in engines:
            k = r.kills.get(e)
            cells.append("-" if k is None else f"{k.seconds:.2f}s, {k.reduced_len} ops"
                         if k.killed else "base" if k.base else "no")
        md.append(f"| `{_cell(r.id)}` | `{_cell(r.diff)}` | " + " | ".join(cells)
                  + f" | {r.status} |")
    surv = [r for r in rows if not r.killed]
    if surv:
        md += ["", "## Survivors", ""]
        for r in surv:
            line = f"- `{r.id}` {r.status}: `{r.diff}`"
            c = r.check
            if c is not None and c.found_by:
                line += f" -- {c.found_by} finds `{c.signature}`"
                if c.reduced:
                    line += " in " + "; ".join(c.reduced)
            md.append(line)
    summary = {"target": sel.target, "params": params, "summary": s,
               "generated": sel.generated, "tried": sel.tried, "dropped": sel.dropped,
               "rows": [dict(asdict(r), status=r.status) for r in rows]}
    return "\n".join(md) + "\n", summary


def save(out_dir: str, md: str, summary: dict) -> tuple[str, str]:
    """Write DIR/mutants.md and DIR/mutants.json (each atomically)."""
    from daxfuzz.textio import write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    mdp, jp = os.path.join(out_dir, "mutants.md"), os.path.join(out_dir, "mutants.json")
    write_text_atomic(mdp, md)
    write_text_atomic(jp, json.dumps(summary, indent=1, sort_keys=True))
    return mdp, jp
