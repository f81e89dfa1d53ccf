"""What a fuzz campaign shows and says: the live status line, the finding lines, and
the end-of-run summary.  Engines and workers update a :class:`Status`; a
:class:`Display` draws it (rich on a terminal, a line every few seconds otherwise)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from daxfuzz.core.emit import Finding
from daxfuzz.core.known import base_of


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
    findings: list[Finding] = field(default_factory=list)
    # divergences the target's base kernel shows too (daxfuzz.core.known): sig -> times met
    base_found: dict = field(default_factory=dict)
    base_by_worker: dict = field(default_factory=dict)
    first_found: float | None = None
    note: str = ""
    member: str = ""  # the portfolio's member running now
    members: dict = field(default_factory=dict)  # portfolio: member -> slices, seconds, execs
    reducing: dict = field(default_factory=dict)  # worker -> findings it is reducing
    # the scenario corpus's documented divergences (signature -> trace), for the summary
    documented: dict = field(default_factory=dict)
    crashed: list = field(default_factory=list)  # workers that died: "worker 0 exited 1"
    failed: list = field(default_factory=list)  # workers stopped by a bad path (exit 2)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rate(self) -> str:
        e = max(self.elapsed(), 1e-9)
        s = f"{self.execs / e:,.0f} execs/s"
        return s + (f", {self.steps / e:,.0f} ops/s" if self.steps else "")

    def line(self) -> str:
        # past the budget only a last reduction or report runs: the clock stops at it
        shown = min(self.elapsed(), self.budget)
        engine = f"{self.engine}/{self.member}" if self.member else self.engine
        parts = [f"[{engine} on {self.target}] {shown:5.0f}/{self.budget:.0f}s",
                 f"execs {self.execs:,}", self.rate()]
        if self.cov is not None:
            parts.append(f"cov {self.cov}" if (self.member or self.engine) == "atheris"
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

    def found(self, saved: Finding) -> None:
        if self.first_found is None:
            self.first_found = self.elapsed()
        self.findings.append(saved)


class Display:
    """Live status on a terminal (rich), a line every few seconds otherwise."""

    def __init__(self, st: Status, enabled: bool,
                 on_tick: Callable[[], None] | None = None) -> None:
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


def finding_line(saved: Finding, st: Status) -> str:
    return (f"FINDING {saved['signature']} after {st.elapsed():.1f}s: reduced "
            f"{saved['original_ops']} -> {saved['ops']} ops; {saved['trace_path']}"
            + aside_note(saved))


def aside_note(saved: Finding) -> str:
    """What save_finding did with an old finding file that could not stand for the bug."""
    if not saved.get("set_aside"):
        return ""
    return (f"\n  the old {os.path.basename(saved['trace_path'])} could not stand for it "
            f"({saved['set_aside_why']}): replaced, and kept as {saved['set_aside']}")


def shown_target(name: str) -> str:
    """`name`, and the kernel an alias stands for: "mainline (7.2)"."""
    from kdax.targets import target_name

    canon = target_name(name)
    return f"{name} ({canon})" if canon and canon != name else name


def summary(st: Status, findings: str) -> str:
    """The end-of-run report (plain text, pasteable)."""
    lines = [f"daxfuzz fuzz: {st.engine} on {shown_target(st.target)}, {st.elapsed():.1f}s: "
             f"{st.execs:,} execs ({st.rate()})"
             + (f", cov {st.cov}, corpus {st.corpus}" if st.corpus is not None
                else f", {st.cov} folio transitions" if st.cov is not None else ""),
             f"  findings: {len(st.findings)} new"
             + (f" (stored in {findings}/, below)" if st.findings else "")
             + f", {st.known} known ({st.known - len(st.documented)} already in {findings}/"
             f" from an earlier run, {len(st.documented)} documented by the scenario corpus)"]
    if st.members:
        lines.append("  members: " + "; ".join(
            f"{m} {v['seconds']:.1f}s in {v['slices']} slice(s), {v['execs']:,} execs"
            for m, v in st.members.items()))
    if st.base_found:
        base = base_of(st.target)
        lines.append(f"  the base's: {len(st.base_found)} divergence(s) {base} shows too on "
                     "the same ops (its bugs, not the target's): "
                     + ", ".join(f"{sig} x{n}" for sig, n in sorted(st.base_found.items())))
    if st.first_found is not None:
        lines.append(f"  time to first finding: {st.first_found:.1f}s (the target's own)")
    for s in st.findings:
        lines.append(f"  {s['signature']}: {s['ops']} ops  {s['trace_path']}")
        lines.append(f"      replay: daxfuzz replay --explain {s['trace_path']}")
        lines.append(f"      test:   {s['test_path']}")
    return "\n".join(lines)
