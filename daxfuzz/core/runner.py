"""The differential core: apply one op to the oracle and to a target, compare.

After every op the runner compares (DESIGN.md, "Agreement"):

1. the op's result, and that the target raised no WARN_ON_ONCE / VM_BUG_ON;
2. the facts: VMAs, PTEs, huge PMDs, PTE tables, DAX entries, block maps, GUP handles;
3. for every PFN either side touched: the target's raw struct-page fields against
   the values its convention derives from the oracle's facts (0-based "folio":
   refcount = mappings + gets + pins x bias, ...; "legacy": idle at 1, maps take none);
4. target-independent safety (`oracle.safety`).

A mismatch is a `Divergence` value.  The runner imports no fuzzing engine and does
not decide what is news: whether a target's base kernel shows a divergence too is
`daxfuzz.core.known`'s question, asked only when one occurs.  The step is the hot path
(`daxfuzz bench` measures it): on agreement it compares in place, building only the
small sets of the PFNs the op touched; provenance (which kernel function last wrote a
field) is gathered only by `explain`, which replays with it on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from daxfuzz.core.conventions import CONVENTIONS
from daxfuzz.core.watchdog import STEP, StepHang, ensure
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import Exchange, Op, Pin, Punch, Reflink, Truncate, Unmount
from daxfuzz.vocab.world import (
    ANON,
    ENTRY_PMD,
    ENTRY_SHIFT,
    HUGE_ZERO,
    ZERO_PFN,
    entry_kind,
    entry_text,
)
from oracle import Oracle, safety

LAYOUT_OPS = (Truncate, Punch, Reflink, Unmount, Exchange)


@dataclass(frozen=True)
class Divergence:
    """Oracle and target disagree: a finding, as a value."""

    step: int  # 1-based index of the op in the sequence
    op: Op
    field: str
    expected: object
    actual: object
    pfn: int | None = None
    facts: tuple[str, ...] = ()
    writer: str | None = None
    target: str = ""

    def signature(self) -> str:
        """What makes two findings the same bug: op kind and diverging field (and, for
        a warning, the function that warned)."""
        sig = f"{self.op.name}:{self.field}"
        if self.field == "warning" and " in " in str(self.actual):
            sig += "@" + str(self.actual).rsplit(" in ", 1)[1]
        return sig

    def report(self) -> str:
        where = f" pfn={self.pfn}" if self.pfn is not None else ""
        lines = [
            f"DIVERGENCE at step {self.step}: {self.op}",
            f"  target:   {self.target}",
            f"  field:    {self.field}{where}",
            f"  expected: {self.expected}",
            f"  actual:   {self.actual}",
        ]
        if self.writer:
            lines.append(f"  last written by: {self.writer}")
        if self.facts:
            lines.append("  facts behind the expectation:")
            lines += [f"    {f}" for f in self.facts]
        return "\n".join(lines)


def _target_class(target: str | type) -> type:
    if isinstance(target, str):
        from kdax.targets import get_target

        return get_target(target)
    return target


class Runner:
    """Oracle and target in lockstep over one op sequence."""

    def __init__(self, target: str | type, geometry: Geometry) -> None:
        self.cls = _target_class(target)
        self.g = geometry
        self.reset()

    def reset(self) -> None:
        rules = getattr(self.cls, "oracle_rules", None)
        self.o = Oracle(self.g, rules) if rules is not None else Oracle(self.g)
        self.t = self.cls(self.g)
        self.nsteps = 0
        self.last_result = ""
        ensure()  # this process's watchdog, if enabled
        self.convention = CONVENTIONS[getattr(self.t, "convention", "folio")]
        self.idle = self.t.idle_refcount
        self._pmd_nr = 1 << self.t.PMD_ORDER
        self._mm_pairs = list(zip(self.o.mms, self.t.mms, strict=False))
        self._entry_pairs = [(self.o.entries[i], self.t.i_pages[i].ties)
                             for i in range(self.g.inodes)]

    # ------------------------------------------------------------------ one step ---
    def step(self, op: Op) -> Divergence | None:
        o, t = self.o, self.t
        self.nsteps += 1
        layout = isinstance(op, LAYOUT_OPS) and bool(t.handles)
        if layout:
            before = self._held_associated()
        wd = STEP
        wd[0] += 1
        wd[1] = 1
        try:
            tres = t.apply(op)
            wd[1] = 0
        except StepHang as e:  # the target looped: its soft lockup (core.watchdog)
            wd[1] = 0
            self.last_result = "hang"
            return self._div(op, "hang", o.apply(op), str(e))
        except Exception as e:  # a crash of the target is an oops, compared as a value
            wd[1] = 0
            self.last_result = "exception"
            ores = o.apply(op)
            return self._div(op, "exception", ores, f"{type(e).__name__}: {e}")
        ores = o.apply(op)
        self.last_result = tres
        if tres != ores:
            return self._div(op, "result", ores, tres)
        if t.events:
            return self._div(op, "warning", "no WARN/BUG", t.events[0])
        d = self._compare_facts(op)
        if d is not None:
            return d
        if t.touched or o.changed:
            d = self._compare_pages(op, t.touched | o.changed)
            if d is not None:
                return d
        if layout:
            d = self._check_layout(op, tres, before)
            if d is not None:
                return d
        if t.freed:
            v = safety.freed_while_in_use(t.freed, self._t_mapped(), self._t_held())
            if v:
                return self._div(op, "safety:freed-in-use", "no block freed while in use", v)
        gaps = self.nrpages_gaps()
        if gaps:
            return self._div(op, "safety:nrpages", "mapping->nrpages = the pages of its entries",
                             safety.nrpages_leak(*gaps[0]))
        if t.touched and not t.handles and self._nothing_mapped():
            pages = t.pages
            v = safety.not_idle(t.touched, {p: pages[p]._refcount for p in t.touched},
                                self.idle)
            if v:
                return self._div(op, "safety:not-idle", "idle when nothing maps or holds it",
                                 v, facts=self.facts_of(min(t.touched)))
        return None

    def run(self, ops: Iterable[Op]) -> Divergence | None:
        for op in ops:
            d = self.step(op)
            if d is not None:
                return d
        return None

    # ------------------------------------------------------------------ facts ------
    def _compare_facts(self, op: Op) -> Divergence | None:
        o, t = self.o, self.t
        for om, tm in self._mm_pairs:
            if (om.pte == tm.pte and om.pmd == tm.pmd and om.tables == tm.tables
                    and om.vmas == tm.vmas and om.anon == tm.anon):
                continue
            mm = o.mms.index(om)
            if om.pte != tm.pte:
                return self._div_dict(op, "pte", mm, om.pte, tm.pte)
            if om.pmd != tm.pmd:
                return self._div_dict(op, "pmd", mm, om.pmd, tm.pmd)
            if om.tables != tm.tables:
                return self._div(op, "page-table", f"mm{mm} {sorted(om.tables)}",
                                 f"mm{mm} {sorted(tm.tables)}")
            if om.vmas != tm.vmas:
                return self._div(op, "vma", om.vmas, tm.vmas)
            if om.anon != tm.anon:
                return self._div(op, "anon-vma", f"mm{mm} {sorted(om.anon)}",
                                 f"mm{mm} {sorted(tm.anon)}")
        for ino, (oe, te) in enumerate(self._entry_pairs):
            if te != oe:
                return self._div_dict(op, "entry", ino, oe, te)
        if (o.fs.bmap != t.fs.bmap or o.fs.size != t.fs.size or o.fs.refcnt != t.fs.refcnt
                or o.fs.cow != t.fs.cow or o.fs.part != t.fs.part):
            return self._div(op, "blocks", o.fs.facts(), t.fs.facts())
        if o.handles != t.handles:
            return self._div(op, "gup-handles", o.handles, t.handles)
        return None

    def _div_dict(self, op: Op, what: str, who: int, exp: dict, act: dict) -> Divergence:
        for k in sorted(set(exp) | set(act)):
            if exp.get(k) != act.get(k):
                e, a = exp.get(k), act.get(k)
                if what == "entry":
                    pfn = next((v[1] >> ENTRY_SHIFT for v in (e, a) if v is not None), None)
                    e = entry_text(*e) if e is not None else "none"
                    a = entry_text(*a) if a is not None else "none"
                    return self._div(op, what, f"ino{who} idx={k}: {e}", f"ino{who} idx={k}: {a}",
                                     pfn=pfn)
                pfn = next((v[0] for v in (e, a) if v is not None), None)
                key = "va" if what == "pte" else "pmd-slot"
                return self._div(op, what, f"mm{who} {key}={k}: {e}", f"mm{who} {key}={k}: {a}",
                                 pfn=pfn if isinstance(pfn, int) and pfn >= 0 else None)
        raise AssertionError("dicts differ but no key does")

    # ------------------------------------------------------------------ counters ---
    def expected_page(self, pfn: int) -> dict[str, object]:
        """The raw fields the target's convention derives from the oracle's facts."""
        return self.convention(self.o, pfn, self.idle)

    def actual_page(self, pfn: int) -> dict[str, object]:
        """The target's raw fields under the same names."""
        t = self.t
        page = t.pages[pfn]
        folio = t.page_folio(page)
        p1 = t.pages[pfn + 1] if pfn + 1 < len(t.pages) else None
        act: dict[str, object] = {
            "compound_head": folio.pfn,
            "page_mapcount": page._mapcount + 1,
            "refcount": page._refcount,
            "order": t.folio_order(page),
            "mapping": page.mapping,
            "index": page.index,
            "share": page.index,
            "flags_1": page._flags_1 & 0xFF if page.compound_head >= 0 or p1 is None
            else page._flags_1 & 0xFF,
        }
        if t.folio_test_large(page):
            act["mapcount"] = page._large_mapcount + 1
            act["entire_mapcount"] = page._entire_mapcount + 1
            act["pincount"] = page._pincount
        else:
            act["mapcount"] = page._mapcount + 1
        return act

    def _compare_pages(self, op: Op, pfns: Iterable[int]) -> Divergence | None:
        pages = self.t.pages
        for pfn in sorted(pfns):
            exp = self.expected_page(pfn)
            act = self.actual_page(pfn)
            for k, v in exp.items():
                if act.get(k) != v:
                    return self._div(op, k, v, act.get(k), pfn=pfn,
                                     facts=self.facts_of(pfn))
            p = pages[pfn]
            share = p.index if p.mapping is None else None
            v = safety.bad_counter(pfn, p._refcount, p._mapcount, p._pincount, share)
            if v:
                return self._div(op, "safety:counter", "no negative or wrapped counter", v,
                                 pfn=pfn, facts=self.facts_of(pfn))
        return None

    # ------------------------------------------------------------------ safety -----
    def _t_mapped(self) -> set[int]:
        nr = self.g.pmd_nr
        out: set[int] = set()
        for mmst in self.t.mms:
            out.update(p for p, _w in mmst.pte.values() if p >= 0)
            for p, _w in mmst.pmd.values():
                if p >= 0:
                    out.update(range(p, p + nr))
        return out

    def _nothing_mapped(self) -> bool:
        """No device page is reached by any PTE or PMD of the target."""
        for mmst in self.t.mms:
            for p, _w in mmst.pmd.values():
                if p >= 0:
                    return False
            for p, _w in mmst.pte.values():
                if p >= 0:
                    return False
        return True

    def _t_held(self) -> set[int]:
        return {p for p, _k in self.t.handles.values() if p >= 0}

    def _held_associated(self) -> tuple[set[int], set[int]]:
        """(GUP-held folio heads, heads of folios with an entry) of the target, before."""
        t = self.t
        held = {t.page_folio(t.pages[p]).pfn for p in self._t_held()}
        assoc = set()
        for ino in range(self.g.inodes):
            for _b, (_to, code) in t.i_pages[ino].ties.items():
                if entry_kind(code) == "real":
                    assoc.add(t.page_folio(t.pages[code >> ENTRY_SHIFT]).pfn)
        return held, assoc

    def _check_layout(self, op: Op, result: str, before: tuple[set[int], set[int]]
                      ) -> Divergence | None:
        held, assoc_before = before
        if not held:
            return None
        _h, assoc_after = self._held_associated()
        v = safety.completed_over_pin(result, held & assoc_before, assoc_before - assoc_after)
        if v:
            return self._div(op, "safety:completed-over-pin", "block until the page is idle", v)
        return None

    # ------------------------------------------------------------------ explain ----
    def nrpages_gaps(self) -> list[tuple[int, int, int]]:
        """(ino, mapping->nrpages, pages its entries hold) of each inode of the target
        where the two differ: a leak clear_inode() will BUG() on (fs/inode.c).  An
        entry holds 1 << dax_entry_order(entry) pages, what erasing it takes off
        nrpages.  On the hot path: ~0.6 us a step."""
        t = self.t
        pmd = self._pmd_nr
        gaps = []
        for ino, (xa, nr) in enumerate(zip(t.i_pages, t.nrpages, strict=True)):
            n = 0
            for _o, e in xa.ties.values():
                n += pmd if e & ENTRY_PMD else 1
            if n != nr:
                gaps.append((ino, nr, n))
        return gaps

    def facts_of(self, pfn: int) -> tuple[str, ...]:
        """Human-readable oracle facts about `pfn`'s folio."""
        o = self.o
        h = o.head[pfn]
        fp = o.folio_pfns(h)
        out = [f"folio head={h} order={o.forder[h]} pfns={fp.start}..{fp.stop - 1}"]
        for mm, mmst in enumerate(o.mms):
            for va, (p, w) in sorted(mmst.pte.items()):
                if p in fp:
                    out.append(f"mapped: mm{mm} va={va} PTE -> pfn {p} {'rw' if w else 'ro'}")
            for slot, (p, w) in sorted(mmst.pmd.items()):
                if p == h and o.forder[h]:
                    out.append(f"mapped: mm{mm} pmd-slot={slot} PMD -> pfn {p} "
                               f"{'rw' if w else 'ro'}")
        for hd, (p, kind) in sorted(o.handles.items()):
            if p in fp:
                out.append(f"gup: handle {hd} {kind} pfn {p}")
        for ino, es in enumerate(o.entries):
            for b, (to, code) in sorted(es.items()):
                p = code >> ENTRY_SHIFT
                if entry_kind(code) == "real" and p in fp:
                    out.append(f"entry: ino{ino} idx={b} {entry_text(to, code)}")
        for p in fp:
            owners = o.fs.owners(p)
            if owners:
                out.append(f"block: pfn {p} owned by "
                           + ", ".join(f"ino{i}@{x}" for i, x in owners))
        if h in o.shared:
            out.append(f"folio is shared by {o.assoc[h]} address-space entries")
        elif (own := o.owner[h]) is not None:
            out.append(f"folio owner: ino{own[0]} index {own[1]}")
        return tuple(out)

    def _div(self, op: Op, fld: str, expected: object, actual: object,
             pfn: int | None = None, facts: tuple[str, ...] = ()) -> Divergence:
        writer = None
        prov = self.t.provenance
        if prov is not None and pfn is not None:
            key = {"compound_head": "compound_head", "page_mapcount": "mapcount",
                   "mapcount": "mapcount", "entire_mapcount": "mapcount",
                   "share": "index"}.get(fld, fld)
            head = self.t.page_folio(self.t.pages[pfn]).pfn
            writer = prov.get((pfn, key)) or prov.get((head, key))
        return Divergence(self.nsteps, op, fld, expected, actual, pfn, facts, writer,
                          getattr(self.cls, "name", str(self.cls)))


def run_ops(target: str | type, geometry: Geometry, ops: Sequence[Op]
            ) -> tuple[Divergence | None, list[str]]:
    """Run `ops`; (first divergence or None, the target's results up to it)."""
    r = Runner(target, geometry)
    results = []
    for op in ops:
        d = r.step(op)
        results.append(r.last_result)
        if d is not None:
            return d, results
    return None, results


def shows_same(target: str | type, geometry: Geometry, ops: Sequence[Op],
               d: Divergence) -> bool:
    """Whether `ops` show divergence `d` (same step and signature) on `target` too: how a
    finding on a target built on a base (a patch, a mutant, a zoo variant) is told to be
    the base's -- by replaying it there, not by its signature alone."""
    bd, _ = run_ops(target, geometry, ops)
    return bd is not None and bd.step == d.step and bd.signature() == d.signature()


def explain(target: str | type, geometry: Geometry, ops: Sequence[Op]) -> Divergence | None:
    """Replay `ops` with provenance on; the divergence names the writing function."""
    r = Runner(target, geometry)
    r.t.provenance = {}
    return r.run(ops)


_ = (ANON, HUGE_ZERO, ZERO_PFN, Pin, field)
