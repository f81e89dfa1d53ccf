"""What a campaign already knows: one decision for every front end.

`daxfuzz fuzz` (each engine), the zoo and mutation benchmarks, `exhaust` and the
fleet's harnesses all ask the same question of a divergence: is it news?

- **Same bug, not same signature.**  A target built on a base kernel (a patch, a
  mutant, a zoo variant, a fix: the class's ``base``) shows its base's bugs too.  Such
  a divergence is the base's only if replaying the same ops on the base shows the same
  divergence (same step, same signature: ``runner.shows_same``); a divergence with an
  old signature that the base does not show is the patch's own, and news.  Matching the
  base's documented divergences by signature alone would hide a new bug in a patch
  behind an old one in the kernel it is based on.
- **A kernel target** (no base) knows the divergences the scenario corpus documents on
  it (`expect 7.2: divergence ...`) by signature, with the warning families of
  ``same_warning`` (a warning documented through a fault shows through GUP's fault-in).
  A divergence at a GUP (pin, get, pin_pages) or a write_from, whose copy faults its
  source in, is known when faults of the same pages after the same ops show a known
  fault divergence in the same field (``fault_in``): GUP faults a page in through the
  fault handler (faultin_page -> handle_mm_fault), and a fault bug seen through it is
  that bug reached another way.  A longterm pin is refused before any fault-in and is
  never matched so.  A target with a base never needs this: its base replay says whose
  the divergence is.  A reduction keeps a GUP divergence whose faults agree a GUP
  divergence whose faults agree (`daxfuzz.core.reduce`), so it cannot shrink into one.
- **Its own findings**: a signature this target already showed (stored reduced
  findings that still reproduce, or found earlier in the run) is a duplicate.

`Known.verdict` says which; only ``NEW`` is a finding.  The base's findings are
counted apart (``Known.base_found``): a campaign reports them as the base's, and its
time to first finding counts the target's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from daxfuzz.errors import InputError
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import Op

if TYPE_CHECKING:  # imported where used (below), as before
    from daxfuzz.core.runner import Runner

NEW = "new"  # a finding: the target's own, first of its signature
DUP = "dup"  # a signature this target already showed (or "*": never stop)
BASE = "base"  # the base kernel shows the same divergence on the same ops
DOCUMENTED = "documented"  # the scenario corpus documents it on this kernel target

#: ops that reach the fault handler (GUP faults pages in through it: faultin_page ->
#: handle_mm_fault; write_from's copy_from_user faults its source buffer in): a kernel
#: warning documented through a fault shows through each
FAULT_FAMILY = ("fault", "pin", "get", "pin_pages", "write_from")
#: write(2) from a plain buffer or from a mapping: one path (xfs_file_dax_write)
WRITE_FAMILY = ("write", "write_from")


def base_of(target: str | type) -> str | None:
    """The base kernel `target` is built on (its class's ``base``), or None."""
    from daxfuzz.core.runner import _target_class

    return getattr(_target_class(target), "base", None)


class Known:
    """The known-finding decision for one target and world.

    `own`: signatures the target already showed ("*" makes every divergence a
    duplicate: benchmarks that never stop); `documented`: signature -> trace, used only
    for a target without a base.  Picklable inputs; build one per process.
    """

    def __init__(self, target: str | type, g: Geometry, own: Iterable[str] = (),
                 documented: Mapping[str, str] | Iterable[str] = ()) -> None:
        self.target = target
        self.g = g
        self.base = base_of(target)
        self.own: set[str] = set(own)
        self.documented = set() if self.base else set(documented)
        self.base_found: dict[str, int] = {}  # the base's divergences met: sig -> times
        self._base_runner: Runner | None = None
        self._runner: Runner | None = None  # the target itself, for `through_fault_in`

    def verdict(self, ops: Sequence[Op], div, record: bool = True) -> str:
        """NEW, DUP, BASE or DOCUMENTED for divergence `div`, shown by `ops` (the ops
        up to `div.step` at least).  With `record`, NEW adds the signature to the
        target's own and BASE counts in `base_found` (an engine that replays one example
        several times, as Hypothesis does while shrinking, passes False)."""
        sig = div.signature()
        if sig in self.own or "*" in self.own:
            return DUP
        if self.base is not None:
            if self.base_shows(ops, div):
                if record:
                    self.base_found[sig] = self.base_found.get(sig, 0) + 1
                return BASE
        elif sig in self.documented:
            return DOCUMENTED
        else:
            via = self.through_fault_in(ops[:div.step], div)
            if via is not None:
                return DUP if via in self.own else DOCUMENTED
        if record:
            self.own.add(sig)
        return NEW

    def through_fault_in(self, ops: Sequence[Op], div) -> str | None:
        """The known fault divergence (own or documented) of `div`'s field that faults
        of the same pages show when the last of `ops` is a GUP or a write_from
        (`fault_in`), else None."""
        field = div.signature().partition(":")[2]
        known = {s for s in self.own | self.documented
                 if s.startswith("fault:") and s.partition(":")[2] == field}
        if not known:
            return None
        r = self._runner
        if r is None:
            from daxfuzz.core.runner import Runner

            r = self._runner = Runner(self.target, self.g)
        d = fault_in_divergence(r, ops)
        return d.signature() if d is not None and d.signature() in known else None

    def base_shows(self, ops: Sequence[Op], div) -> bool:
        """Whether the base kernel shows `div` (same step, same signature) on `ops`."""
        if self.base is None:
            return False
        from daxfuzz.core.runner import Runner

        r = self._base_runner
        if r is None:
            r = self._base_runner = Runner(self.base, self.g)
        r.reset()
        for i, op in enumerate(ops[:div.step], 1):
            bd = r.step(op)
            if bd is not None:
                return i == div.step and bd.signature() == div.signature()
        return False


class Wanted(Known):
    """Only divergences of signature `want` are news: a benchmark timing how long an
    engine takes to reach one real bug of a kernel target from scratch (the zoo's deep
    rows); every other divergence ends the input as a campaign's known ones do."""

    def __init__(self, target: str | type, g: Geometry, want: str) -> None:
        super().__init__(target, g)
        self.want = want

    def verdict(self, ops: Sequence[Op], div, record: bool = True) -> str:
        return NEW if div.signature() == self.want else DUP


def own_divergence(target: str | type, g: Geometry, ops: Sequence[Op]):
    """(first divergence, results) of `ops` on `target`, with the divergence None when
    the target's base shows the same one: the target's own divergence, as reductions
    and the benchmarks count it."""
    from daxfuzz.core.runner import run_ops

    d, results = run_ops(target, g, ops)
    if d is not None and base_of(target) is not None and Known(target, g).base_shows(ops, d):
        return None, results
    return d, results


# ------------------------------------------------------------ documented / stored ----
def same_warning(sig: str) -> set[str]:
    """`sig`, and for a kernel warning the same warning reached through the other ops of
    its family: through GUP and copy faults when documented through a fault, through
    either form of write(2) when documented through one."""
    op, _, field = sig.partition(":")
    out = {sig}
    if field.startswith("warning@"):
        if op == "fault":
            out |= {f"{o}:{field}" for o in FAULT_FAMILY}
        if op in WRITE_FAMILY:
            out |= {f"{o}:{field}" for o in WRITE_FAMILY}
    return out


def documented_known(scenarios: str, target: str, g: Geometry) -> dict[str, str]:
    """Divergences the scenario corpus documents on `target` that replay as documented:
    signature -> the trace that shows it.

    A trace's expectation for `target` is its `expect <target>:` line, or its plain
    `expect:` line if its `target:` header names `target`, or it has no header and
    `target` is a kernel (no base: a patch's bugs are never the corpus's).  A warning
    documented through a fault also stands for the same warning through pin and get
    (FAULT_FAMILY: a warning names its site, so no replay is needed; a refcount or
    mapping difference through GUP is matched by replaying it as faults,
    `Known.through_fault_in`).
    """
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import read_trace
    from kdax.targets import target_name

    name = target_name(target)
    based = base_of(target) is not None
    out: dict[str, str] = {}
    for root, _dirs, files in sorted(os.walk(scenarios)) if os.path.isdir(scenarios) else ():
        for n in sorted(files):
            if not n.endswith(".trace"):
                continue
            path = os.path.join(root, n)
            try:
                t = read_trace(path)
            except InputError:
                continue  # `daxfuzz fuzz` names it at start (campaign.folder.scan)
            explicit = {target_name(k) or k: v for k, v in t.expect_for}
            if name in explicit:
                exp = explicit[name]
            elif (t.target is None and not based) or (
                    t.target is not None and target_name(t.target) == name):
                exp = t.expect
            else:
                continue
            words = exp.split()
            if t.geometry != g or len(words) != 2 or words[0] != "divergence":
                continue
            div, _ = run_ops(target, g, t.ops)
            if div is not None and div.signature() == words[1]:
                out.setdefault(words[1], path)
    for sig, path in list(out.items()):
        for other in sorted(same_warning(sig)):
            out.setdefault(other, path)
    return out


def replay_known(findings: str, target: str, g: Geometry) -> set[str]:
    """Signatures of stored reduced findings that still reproduce on `target`."""
    from daxfuzz.core.emit import known_signatures
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import read_trace

    sigs = known_signatures(findings, target)
    out = set()
    for name in sorted(os.listdir(findings)) if sigs else ():
        if not name.endswith(".trace") or name.count(".") != 1:
            continue  # raw engine traces are <stem>.<engine>.trace
        try:
            t = read_trace(os.path.join(findings, name))
        except InputError:
            continue  # reported by the folder scan; skipped, left in place
        if t.target != target or t.geometry != g:
            continue
        div, _ = run_ops(target, g, t.ops)
        if div is not None and div.signature() in sigs:
            out.add(div.signature())
    return out


def fault_in(ops: Sequence[Op]) -> list[Op] | None:
    """`ops` with its last op, a GUP (pin, get, pin_pages) or a write_from (whose copy
    faults its source in), replaced by faults of the pages it faults in; None for any
    other last op.  GUP faults a page in through the fault handler (faultin_page ->
    handle_mm_fault, mm/gup.c 7.2), with FOLL_WRITE as a write fault."""
    from daxfuzz.vocab import ops as O

    last = ops[-1] if ops else None
    if isinstance(last, O.Pin) and last.longterm:
        return None  # FOLL_LONGTERM on fs-DAX is refused before any fault-in
    if isinstance(last, (O.Pin, O.Get)):
        faults = [O.Fault(last.mm, last.vma, last.pgoff, last.write)]
    elif isinstance(last, O.PinPages):
        faults = [O.Fault(last.mm, last.vma, last.pgoff + j, last.write)
                  for j in range(last.pages)]
    elif isinstance(last, O.WriteFrom):
        faults = [O.Fault(last.mm, last.vma, last.src_pgoff + j)
                  for j in range(last.pages)]
    else:
        return None
    return list(ops[:-1]) + faults


def fault_in_divergence(r: Runner, ops: Sequence[Op]):
    """The first divergence of `fault_in(ops)` on runner `r` (reset first), or None:
    no GUP or write_from last, or its faults agree."""
    faults = fault_in(ops)
    if faults is None:
        return None
    r.reset()
    for op in faults:
        d = r.step(op)
        if d is not None:
            return d
    return None
