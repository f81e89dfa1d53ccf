"""Abstract state-transition coverage of folios.

The abstract state of a PFN's folio, from the oracle's facts:

    (size, mapped, gup, association, entry, block)
    size         small | pmd                      the folio's order
    mapped       unmapped | pte | pmd | pte+pmd   which page-table entries reach it
    gup          - | held                          a GUP handle holds one of its pages
    association  none | one | shared               address-space entries referencing it
    entry        none | pte | pmd | pte+pmd        sizes of those entries
    block        free | owned | reflinked          its filesystem block(s)

A transition is (state before, op kind, state after) for a PFN the op touched.  A
campaign or an exhaustive run reports the transitions it exercised (`daxfuzz
coverage`, the live line).  They no longer steer the engines: Hypothesis's `target()`
on new transitions and a libFuzzer edge per transition bucket for atheris killed the
same mutants as no feedback, same seeds (README, "Mutation benchmark").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from daxfuzz.vocab.world import ENTRY_PMD, ENTRY_SHIFT, entry_kind

IDLE = ("small", "unmapped", "-", "none", "none", "free")
State = tuple[str, str, str, str, str, str]


def folio_state(r, pfn: int) -> State:
    """The abstract state of `pfn`'s folio in runner `r` (oracle facts only)."""
    o = r.o
    h = o.head[pfn]
    fp = o.folio_pfns(h)
    ptes = any(o.pte_maps[p] for p in fp)
    pmd = o.pmd_maps[h] > 0
    mapped = "pte+pmd" if ptes and pmd else "pmd" if pmd else "pte" if ptes else "unmapped"
    gup = "held" if any(o.gets[p] or o.pins[p] for p in fp) else "-"
    assoc = "none" if not o.assoc[h] else "shared" if h in o.shared else "one"
    sizes = set()
    if o.assoc[h]:
        for es in o.entries:
            for _tie, code in es.values():
                if entry_kind(code) == "real" and (code >> ENTRY_SHIFT) in fp:
                    sizes.add("pmd" if code & ENTRY_PMD else "pte")
    entry = "+".join(sorted(sizes, reverse=True)) if sizes else "none"
    rc = o.fs.refcnt
    counts = [rc.get(p, 0) for p in fp]
    block = "reflinked" if max(counts) > 1 else "owned" if any(counts) else "free"
    return ("pmd" if o.forder[h] else "small", mapped, gup, assoc, entry, block)


class Transitions:
    """The (state, op, state) transitions seen, across sequences."""

    def __init__(self) -> None:
        self.seen: set[tuple[State, str, State]] = set()
        self.states: set[State] = {IDLE}
        self.cache: dict[int, State] = {}
        self.last: list[tuple[State, str, State]] = []  # every transition of the last step

    def reset(self) -> None:
        """A new sequence: every PFN starts idle."""
        self.cache.clear()

    def after_step(self, r, op) -> list[tuple[State, str, State]]:
        """Record the transitions of the PFNs `op` touched; returns those new overall."""
        new = []
        self.last = last = []
        pfns = r.o.changed | r.t.touched
        for pfn in pfns:
            s = folio_state(r, pfn)
            tr = (self.cache.get(pfn, IDLE), op.name, s)
            self.cache[pfn] = s
            last.append(tr)
            if tr not in self.seen:
                self.seen.add(tr)
                self.states.add(s)
                new.append(tr)
        return new

    def merge(self, other: Iterable[tuple[State, str, State]]) -> None:
        for tr in other:
            self.seen.add(tr)
            self.states.add(tr[2])

    def summary(self, reachable: set | None = None) -> str:
        lines = [f"abstract folio states reached: {len(self.states)}; "
                 f"transitions exercised: {len(self.seen)}"]
        if reachable is not None:
            hit = len(self.seen & reachable)
            lines.append(f"transitions reachable by `daxfuzz exhaust` (small world): "
                         f"{len(reachable)}; of those exercised here: {hit} "
                         f"({100 * hit / max(1, len(reachable)):.0f}%)")
            missing = sorted(reachable - self.seen)
            if missing:
                lines.append("never exercised (first 15):")
                for a, op, b in missing[:15]:
                    lines.append(f"  {'/'.join(a)} --{op}--> {'/'.join(b)}")
        return "\n".join(lines)


def exhaust_transitions(target: str, max_ops: int = 3, seconds: float = 120.0,
                        said: Callable[[str], None] | None = None) -> set:
    """Transitions reachable within `max_ops` over the small exhaustive world; `said`
    hears it when `seconds` stopped the search first (the set is then partial)."""
    from daxfuzz.core.runner import Runner
    from daxfuzz.explore.bfs import NO_IDS, breadth_first
    from daxfuzz.explore.exhaust import (
        SMALL,
        alphabet,
        digest,
        ids_key,
        replay,
        state_key,
        tries,
    )

    tr = Transitions()
    r = Runner(target, SMALL)
    alpha = alphabet(SMALL)

    def expand(items):
        out = []
        for n, ops, j, op, nu in tries(items, alpha):
            replay(r, ops)
            _prime(tr, r)
            d = r.step(op)
            tr.after_step(r, op)
            out.append((n, j, nu, None if d else digest((state_key(r), ids_key(nu, SMALL))),
                        None))
        return out

    s = breadth_first(digest((state_key(r), NO_IDS)), expand, max_ops, seconds)
    if not s.complete and said is not None:
        said(f"the reachable set is partial: {seconds:g} s ran out inside depth "
             f"{s.depth + 1} of {max_ops} (every sequence up to {s.depth} ops is in it)")
    return tr.seen


def _prime(tr: Transitions, r) -> None:
    """Set the cache to the current abstract state of every PFN (after a replay)."""
    for pfn in range(len(r.o.head)):
        tr.cache[pfn] = folio_state(r, pfn)
