"""The Hypothesis engine: a rule-based state machine that runs op sequences.

Two generations (`machine_for`): "codec", the default, has one rule that draws a run
of byte strings and decodes each into an op with the codec against the example's
shadow (`fuzz.codec.Codec.decode_op`), so ops name live VMAs, handles and written
pages as the random engine's and atheris's do, and Hypothesis's per-step cost is
shared by the run; "rules", the first design, has a rule per op kind and bundles of
the live things (mapped VMAs, held GUP handles).  Every op goes to the runner, and the
``agrees`` invariant fails on the first divergence.  The final (shrunk) failing
run writes its steps as a trace into the findings folder, reduces it, emits a
pytest reproducer, and names the files in the failure message.

Run as a test (``pytest fuzz/hypothesis_machine.py``; under xdist too) or through
``daxfuzz fuzz --engine hypothesis``.  Environment:

    DAXFUZZ_TARGET       target name (default 6.15)
    DAXFUZZ_FINDINGS     findings folder (default ./findings)
    HYPOTHESIS_PROFILE   dev (default) | ci | campaign
    DAXFUZZ_HYPOTHESIS_DB  example database folder of the campaign profile
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
)

from daxfuzz.core.emit import Finding
from daxfuzz.core.known import BASE, NEW, Known
from daxfuzz.explore.transitions import Transitions
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import Trace
from fuzz.codec import DEFAULT_WEIGHTS, Codec

_COMMON = {"deadline": None,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}
settings.register_profile("dev", max_examples=200, stateful_step_count=50, **_COMMON)
settings.register_profile("ci", max_examples=100, stateful_step_count=30, derandomize=True,
                          database=None, print_blob=False, **_COMMON)
settings.register_profile(
    "campaign", max_examples=1_000_000, stateful_step_count=200,
    database=DirectoryBasedExampleDatabase(
        os.environ.get("DAXFUZZ_HYPOTHESIS_DB", ".hypothesis/daxfuzz-campaign")),
    **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHRINK_GRACE = 2.0  # seconds Hypothesis may shrink a time-boxed find


#: steps per example, batch after batch (`batch_steps`): short examples (10 steps, about
#: 55 ops) start from a fresh world five times as often for the same time, long ones
#: (Hypothesis's default, 50) reach the states many ops build.  Measured on mutants of
#: the 7.2 port (README, "Mutation benchmark"): 10 alone halved the median time to the
#: easy kills and lost a third of the hard ones, 50 alone the reverse; alternating kept
#: the hard ones and most of the speed.  A swarm over lengths, as the random engine's
#: inputs of 1-16 ops are.
BATCH_STEPS = (10, 50)


def batch_steps(batch: int) -> int:
    """The steps per example of batch number `batch` (0, 1, ...): `BATCH_STEPS` in turn."""
    return BATCH_STEPS[batch % len(BATCH_STEPS)]


def batch_settings(examples: int = 20, steps: int = 50, database=None,
                   reuse: bool = False) -> settings:
    """The settings of one time-boxed batch of the machine (campaign, zoo, coverage,
    bench, smoke): `examples` examples of up to `steps` steps, no deadline, no health
    checks, quiet; the phases explicit (+ reuse of `database` when `reuse`) and generate
    (no shrinking: our reducer shrinks, keeping the signature)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] if reuse else [
        Phase.explicit, Phase.generate]
    return settings(max_examples=examples, stateful_step_count=steps, database=database,
                    deadline=None, phases=phases, print_blob=False,
                    suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)


def run_batch(machine: type, seed: int | None, s: settings) -> None:
    """Run one batch of `machine` under `s`, seeded with Hypothesis's public `seed`
    decorator when `seed` is given (it also keeps the example database on, unlike
    hypothesis.core's global seed)."""
    from hypothesis import seed as hseed
    from hypothesis.stateful import run_state_machine_as_test

    if seed is not None:
        machine = hseed(seed)(machine)
    run_state_machine_as_test(machine, settings=s)


def run_until(end: float, make: Callable[[], type], examples: int = 50) -> tuple[int, int]:
    """Batches of `examples` examples, each on a fresh machine from `make()`, until `end`
    (monotonic); a divergence ends only its batch.  (steps, examples) run."""
    steps = done = 0
    while time.monotonic() < end:
        m = make()
        try:
            run_batch(m, None, batch_settings(examples, 50))
        except Exception:  # noqa: BLE001 - a divergence ends one batch
            pass
        steps += m.steps
        done += m.examples
    return steps, done


@dataclass(frozen=True)
class VmaRef:
    """A mapped VMA as the rules see it."""

    mm: int
    vma: int
    pgoff: int
    pages: int


@dataclass(frozen=True)
class HandleRef:
    """A held GUP reference."""

    h: int
    pin: bool


class DivergenceFound(AssertionError):
    """The target disagreed with the oracle; the message is the divergence report."""


def _is_final() -> bool:
    """True in Hypothesis's last, reported run of a failing example (not while shrinking)."""
    try:
        from hypothesis.control import current_build_context
        return current_build_context().is_final
    except Exception:  # noqa: BLE001 - outside a build context: treat as final
        return True


class DaxMachine(RuleBasedStateMachine):
    """Base machine; `machine_for` makes the per-target, per-op-mix subclasses."""

    target_name = os.environ.get("DAXFUZZ_TARGET", "6.15")
    g: Geometry = DEFAULT
    findings = os.environ.get("DAXFUZZ_FINDINGS", "findings")
    known: Known | None = None  # what is not news (machine_for sets it)
    deadline: float | None = None  # monotonic time after which rules do nothing
    reduce_deadline: float | None = None  # monotonic time a finding's reduction stops at
    # run before a finding is reduced (progress first): a staticmethod
    before_save: Callable[[], None] | None = None
    steps = 0  # class-wide step counter, for progress
    kinds: dict[str, int] = {}  # class-wide op mix, for the campaign report
    examples = 0  # class-wide count of runs (examples), for progress
    first_found: float | None = None  # monotonic time of the first new divergence
    last_failing_ops: list[O.Op] | None = None  # newest failing steps (shrinking goes on)
    last_finding: Finding | None = None
    codec: Codec | None = None  # the op decoder of the codec generation (machine_for)

    vmas = Bundle("vmas")
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        from daxfuzz.core.runner import Runner

        self.runner = Runner(self.target_name, self.g)
        self.ops: list[O.Op] = []
        self.div = None
        self.dead = False  # a known divergence or time up: the rest of the run is moot
        self.held: set[int] = set()
        self.shadow = self.codec.shadow() if self.codec is not None else None
        type(self).examples += 1

    def _do(self, op: O.Op) -> str | None:
        """Run one op; None when the run is already over."""
        if self.dead:
            return None
        if self.deadline is not None:
            # time-boxed (daxfuzz fuzz): stop at the deadline, and stop shrinking
            # SHRINK_GRACE seconds after a find -- the reducer finishes the job
            cls = type(self)
            limit = self.deadline if cls.first_found is None else min(
                self.deadline, cls.first_found + SHRINK_GRACE)
            # ...but never in Hypothesis's final replay of a failure: cutting that short
            # would turn a find just before the deadline into a Flaky error, and keep
            # it out of the example database a fleet shares
            if time.monotonic() > limit and not _is_final():
                self.dead = True
                return None
        cls = type(self)
        cls.steps += 1
        cls.kinds[op.name] = cls.kinds.get(op.name, 0) + 1
        self.ops.append(op)
        div = self.runner.step(op)
        type(self).transitions.after_step(self.runner, op)  # the campaign's coverage
        if div is not None:
            v = self.known.verdict(self.ops, div, record=False)
            if v != NEW:
                self.dead = True
                if v == BASE:  # the base kernel's, reported apart
                    bf = self.known.base_found
                    bf[div.signature()] = bf.get(div.signature(), 0) + 1
            else:
                self.div = div
                cls = type(self)
                cls.last_failing_ops = list(self.ops)
                if cls.first_found is None:
                    cls.first_found = time.monotonic()
        return self.runner.last_result

    @invariant()
    def agrees(self) -> None:
        if self.div is None:
            return
        msg = self.div.report()
        if _is_final():
            msg += "\n" + self._save()
        raise DivergenceFound(msg)

    def _save(self) -> str:
        """Write the shrunk steps, reduce them, emit the reproducers; say where."""
        from daxfuzz.core.emit import save_finding

        raw = Trace(ops=tuple(self.ops), target=self.target_name, geometry=self.g,
                    expect=f"divergence {self.div.signature()}",
                    description=("Hypothesis's shrunk steps",))
        if self.before_save is not None:
            self.before_save()
        saved = save_finding(self.findings, raw, engine="hypothesis",
                             deadline=self.reduce_deadline)
        type(self).last_finding = saved
        return "\n".join(f"{k}: {v}" for k, v in saved.items() if k.endswith("path"))

    # ---- helpers -------------------------------------------------------------------
    def _free_h(self, h: int) -> int:
        """The `h`-th free handle slot (modulo how many are free)."""
        free = [i for i in range(self.g.handles) if i not in self.held]
        return free[h % len(free)]

    def _pgoff(self, ref: VmaRef, off: int, backed: int) -> int:
        """The file page to touch through `ref`: with `backed`, one whose block is
        allocated when the VMA covers any (faults and GUP on real blocks are where the
        refcount, share and CoW paths are; holes only allocate), else any."""
        vmas = self.runner.o.mms[ref.mm].vmas.get(ref.vma) if backed else None
        if vmas:
            bmap = self.runner.o.fs.bmap[vmas[0].ino]
            hit = [i for i in range(ref.pgoff, ref.pgoff + ref.pages) if i in bmap]
            if hit:
                return hit[off % len(hit)]
        return ref.pgoff + off % ref.pages

    def _gup(self, cls, ref: VmaRef, off: int, h: int, backed: int, **kw):
        h = self._free_h(h)
        res = self._do(cls(ref.mm, ref.vma, self._pgoff(ref, off, backed), h=h, **kw))
        if res == "ok" and not kw.get("longterm"):  # a long-term pin holds no handle
            self.held.add(h)
            return HandleRef(h, cls is O.Pin)
        return multiple()


def _rules(g: Geometry) -> dict[str, list]:
    """The rule functions per op kind, with strategies bounded by geometry `g`."""
    def ints(dom: str):
        lo, hi = O.domain_size(dom, g)
        return st.integers(lo, hi)

    b = st.integers(0, 1)
    V, H = DaxMachine.vmas, DaxMachine.handles
    has_free_h = precondition(lambda self: len(self.held) < self.g.handles)

    nr = g.pmd_nr
    # PMD-sized, PMD-aligned windows are what exercise the huge paths: favour them
    pgoffs = st.one_of(st.sampled_from([0, 0, nr]), ints(O.IDX))
    lengths = st.one_of(st.sampled_from([nr, 2 * nr, g.file_pages]), ints(O.LEN))
    likely = st.sampled_from([1, 1, 1, 0])

    # huge: half PTE-only mappings, so PTE/PMD mixes of one extent are as likely as PMDs
    @rule(target=V, mm=ints(O.MM), vma=ints(O.VMA), ino=ints(O.INO), pgoff=pgoffs,
          pages=lengths, shared=likely, write=likely, huge=b, aligned=likely, sync=b)
    def mmap(self, mm, vma, ino, pgoff, pages, shared, write, huge, aligned, sync):
        pages = max(1, min(pages, g.max_file_pages - pgoff))
        free = [(m, v) for m in range(g.mms) for v in range(g.vmas)
                if v not in self.runner.o.mms[m].vmas]
        if free:  # a free VMA slot (modulo how many are free), so mmap rarely EEXISTs
            mm, vma = free[(mm * g.vmas + vma) % len(free)]
        res = self._do(O.Mmap(mm, vma, ino, pgoff, pages, shared, write, huge, aligned, sync))
        return VmaRef(mm, vma, pgoff, pages) if res == "ok" else multiple()

    @rule(ref=consumes(V))
    def munmap(self, ref):
        self._do(O.Munmap(ref.mm, ref.vma))

    # a partial munmap: one page or a PMD's worth of the VMA, the rest stays mapped
    @rule(ref=V, off=ints(O.IDX), pages=st.sampled_from([1, nr]))
    def munmap_range(self, ref, off, pages):
        pgoff = ref.pgoff + off % ref.pages
        self._do(O.Munmap(ref.mm, ref.vma, pgoff, max(1, min(pages, g.max_file_pages - pgoff))))

    # mprotect: a page or a PMD's worth of the VMA read-only, or back to read-write
    @rule(ref=V, off=ints(O.IDX), pages=st.sampled_from([1, nr, nr]), write=b)
    def mprotect(self, ref, off, pages, write):
        pgoff = ref.pgoff + off % ref.pages
        pages = max(1, min(pages, g.max_file_pages - pgoff))
        self._do(O.Mprotect(ref.mm, ref.vma, pgoff, pages, write))

    # mremap: move a page or a PMD's worth (mostly from the VMA's start) into another
    # slot of the process, mostly at a PMD-congruent address
    @rule(target=V, ref=V, off=ints(O.IDX), pages=st.sampled_from([1, nr, nr]),
          to=ints(O.VMA), head=likely, aligned=likely)
    def mremap(self, ref, off, pages, to, head, aligned):
        if to == ref.vma:
            to = (to + 1) % g.vmas
        pgoff = ref.pgoff + (0 if head else off % ref.pages)
        pages = max(1, min(pages, g.max_file_pages - pgoff))
        if self._do(O.Mremap(ref.mm, ref.vma, pgoff, pages, to, aligned)) != "ok":
            return multiple()
        return VmaRef(ref.mm, to, pgoff, pages)

    @rule(ref=V, off=ints(O.IDX), write=b, backed=b)
    def fault(self, ref, off, write, backed):
        self._do(O.Fault(ref.mm, ref.vma, self._pgoff(ref, off, backed), write))

    # fork: a process with mappings into one that maps nothing; the child's VMAs join
    # the bundle
    @rule(target=V, ref=V, child=ints(O.MM))
    def fork(self, ref, child):
        free = [m for m in range(g.mms) if m != ref.mm and not self.runner.o.mms[m].vmas]
        child = free[child % len(free)] if free else child
        if self._do(O.Fork(ref.mm, child)) != "ok":
            return multiple()
        return multiple(*(VmaRef(child, s, v[0].pgoff, v[-1].pgoff + v[-1].pages - v[0].pgoff)
                          for s, v in sorted(self.runner.o.mms[child].vmas.items())))

    # write(2) from a DAX mapping: mostly the mapping's own file and page (written back
    # over itself), one page or a PMD-sized run
    @rule(ref=V, off=ints(O.IDX), pages=st.sampled_from([1, 1, nr]), same=likely,
          ino=ints(O.INO), pgoff=ints(O.IDX))
    def write_from(self, ref, off, pages, same, ino, pgoff):
        src = ref.pgoff + off % ref.pages
        pages = max(1, min(pages, ref.pgoff + ref.pages - src))
        vmas = self.runner.o.mms[ref.mm].vmas.get(ref.vma)
        if same and vmas:
            ino, pgoff = vmas[0].ino, src
        pgoff = min(pgoff, g.max_file_pages - pages)
        self._do(O.WriteFrom(ref.mm, ref.vma, src, ino, pgoff, pages))

    # MADV_DONTNEED: one page or a PMD-sized run of the VMA, mostly from its start
    @rule(ref=V, off=ints(O.IDX), pages=st.sampled_from([1, nr, nr]), aligned=likely)
    def dontneed(self, ref, off, pages, aligned):
        pgoff = ref.pgoff + (0 if aligned else off % ref.pages)
        self._do(O.Dontneed(ref.mm, ref.vma, pgoff, pages))

    @rule(ref=V)
    def msync(self, ref):
        self._do(O.Msync(ref.mm, ref.vma))

    # reflink: mostly whole, aligned extents into another file (as the codec does);
    # any range, and a file onto itself, stay reachable
    @rule(src=ints(O.INO), dst=ints(O.INO), other=likely, src_pgoff=pgoffs, dst_pgoff=pgoffs,
          pages=lengths)
    def reflink(self, src, dst, other, src_pgoff, dst_pgoff, pages):
        if other and dst == src and g.inodes > 1:
            dst = (src + 1) % g.inodes
        self._do(O.Reflink(src, dst, src_pgoff, dst_pgoff, min(pages, g.max_file_pages)))

    # exchange-range: like reflink, mostly whole aligned extents of two files
    @rule(ino1=ints(O.INO), ino2=ints(O.INO), other=likely, pgoff1=pgoffs, pgoff2=pgoffs,
          pages=lengths)
    def exchange(self, ino1, ino2, other, pgoff1, pgoff2, pages):
        if other and ino2 == ino1 and g.inodes > 1:
            ino2 = (ino1 + 1) % g.inodes
        self._do(O.Exchange(ino1, ino2, pgoff1, pgoff2, min(pages, g.max_file_pages)))

    @rule(ino=ints(O.INO), tmp=ints(O.INO))
    def swapext(self, ino, tmp):
        if tmp == ino and g.inodes > 1:
            tmp = (ino + 1) % g.inodes
        self._do(O.Swapext(ino, tmp))

    @has_free_h
    @rule(target=H, ref=V, off=ints(O.IDX), h=ints(O.HANDLE), write=b, longterm=b, backed=b)
    def pin(self, ref, off, h, write, longterm, backed):
        return self._gup(O.Pin, ref, off, h, backed, write=write, longterm=longterm)

    @has_free_h
    @rule(target=H, ref=V, off=ints(O.IDX), h=ints(O.HANDLE), write=b, backed=b)
    def get(self, ref, off, h, write, backed):
        return self._gup(O.Get, ref, off, h, backed, write=write)

    # a multi-page pin (an O_DIRECT / io_uring buffer): the first run of free handles
    @rule(target=H, ref=V, off=ints(O.IDX), pages=st.sampled_from([2, nr, nr]), write=b)
    def pin_pages(self, ref, off, pages, write):
        pages = min(pages, g.handles)
        h = next((h for h in range(g.handles - pages + 1)
                  if not any(x in self.held for x in range(h, h + pages))), None)
        if h is None:
            return multiple()
        pgoff = ref.pgoff + off % ref.pages
        if self._do(O.PinPages(ref.mm, ref.vma, pgoff, pages, h, write)) != "ok":
            return multiple()
        self.held.update(range(h, h + pages))
        return multiple(*(HandleRef(x, True) for x in range(h, h + pages)))

    @rule(hd=H, pages=st.sampled_from([2, nr]))
    def unpin_pages(self, hd, pages):
        if self._do(O.UnpinPages(hd.h, pages)) == "ok":
            self.held.difference_update(range(hd.h, hd.h + pages))

    @rule(hd=consumes(H))
    def unpin(self, hd):
        # the bundle holds pins and gets: release each the right way
        if self._do(O.Unpin(hd.h) if hd.pin else O.Put(hd.h)) == "ok":
            self.held.discard(hd.h)

    @rule(ino=ints(O.INO), pages=ints(O.LEN0))
    def truncate(self, ino, pages):
        self._do(O.Truncate(ino, pages))

    @rule(ino=ints(O.INO), pgoff=ints(O.IDX), pages=ints(O.LEN))
    def punch(self, ino, pgoff, pages):
        self._do(O.Punch(ino, pgoff, pages))

    # write(2): mostly over allocated blocks of a file (overwrite, or copy on write once
    # reflinked), one page or a PMD-sized extent; any range stays reachable
    @rule(ino=ints(O.INO), off=ints(O.IDX), pages=st.one_of(st.sampled_from([1, 1, nr]),
                                                           ints(O.LEN)), backed=likely)
    def write(self, ino, off, pages, backed):
        bmap = sorted(self.runner.o.fs.bmap[ino]) if backed else None
        pgoff = bmap[off % len(bmap)] if bmap else off
        self._do(O.Write(ino, pgoff, max(1, min(pages, g.max_file_pages - pgoff))))

    # an unmount ends most of what an example can do: only when mounted, and mount back
    # is favoured (three copies of its rule) once unmounted
    @precondition(lambda self: self.runner.o.mounted)
    @rule()
    def unmount(self):
        self._do(O.Unmount())

    @precondition(lambda self: not self.runner.o.mounted)
    @rule()
    def mount(self):
        self._do(O.Mount())

    @precondition(lambda self: not self.runner.o.mounted)
    @rule()
    def mount_1(self):
        self._do(O.Mount())

    @precondition(lambda self: not self.runner.o.mounted)
    @rule()
    def mount_2(self):
        self._do(O.Mount())



    # memory failure: mostly on an allocated block (a free PFN has no folio to kill)
    @rule(pfn=ints(O.PFN), mm=ints(O.MM), holder=b, allocated=likely)
    def memory_failure(self, pfn, mm, holder, allocated):
        live = sorted(self.runner.o.fs.refcnt) if allocated else None
        self._do(O.MemoryFailure(live[pfn % len(live)] if live else pfn, mm, holder))

    # put shares unpin's rule (a get handle is released with put)
    return {"mmap": [mmap], "munmap": [munmap, munmap_range], "fault": [fault],
            "msync": [msync], "mprotect": [mprotect], "mremap": [mremap],
            "reflink": [reflink], "pin": [pin], "get": [get], "unpin": [unpin],
            "put": [], "truncate": [truncate], "punch": [punch], "unmount": [unmount],
            "mount": [mount, mount_1, mount_2], "memory_failure": [memory_failure],
            "write": [write], "dontneed": [dontneed], "fork": [fork],
            "exchange": [exchange], "swapext": [swapext], "pin_pages": [pin_pages],
            "unpin_pages": [unpin_pages], "write_from": [write_from]}


_DESTRUCTIVE = frozenset({"truncate", "punch", "reflink", "unmount", "memory_failure",
                          "write", "exchange", "swapext", "write_from"})


#: most ops one step of the codec generation decodes (a run: one Hypothesis draw of a
#: list of op strings, so Hypothesis's per-step cost is shared by up to RUN ops)
RUN = 8


def _codec_rule(codec: Codec) -> Callable:
    """The one rule of the codec generation: a run of 1..RUN ops, each decoded from a
    byte string of `codec.max_len` by `Codec.decode_op` against the example's shadow --
    live VMAs, handles and written pages chosen as the random engine and atheris choose
    them, the op mix as the codec's weights."""
    chunk = st.binary(min_size=codec.max_len, max_size=codec.max_len)

    @rule(run=st.lists(chunk, min_size=1, max_size=RUN))
    def run_ops(self, run):
        for data in run:
            if self._do(codec.decode_op(data, self.shadow)) is None or self.div is not None:
                return

    return run_ops


#: how the machine generates ops: "codec" (default: one rule, runs of ops decoded by
#: the codec, about 3x the steps per second of "rules") or "rules" (a rule per op kind, with
#: bundles of live VMAs and handles: the first design, kept to measure against)
GENERATIONS = ("codec", "rules")


#: the __module__ of machine_for's classes: never imported, so no source file to parse
_MACHINES_MODULE = "fuzz.hypothesis_machine.machine_for"


def machine_for(target: str, g: Geometry = DEFAULT, *,
                weights: Mapping[str, int] | None = None, known: Known | Iterable[str] = (),
                findings: str | None = None, deadline: float | None = None,
                reduce_deadline: float | None = None,
                generation: str = os.environ.get("DAXFUZZ_HYPOTHESIS_GENERATION", "codec")
                ) -> type[DaxMachine]:
    """A machine class for `target`.  With `generation` "codec", one rule decodes runs
    of ops with a codec of `weights`; with "rules", an op kind of weight w gets
    ceil(w/4) copies of its rule (weight 0 drops it: the swarm and ``--weights`` op
    mix)."""
    if generation not in GENERATIONS:
        raise ValueError(f"hypothesis: unknown generation {generation!r}")
    w = DEFAULT_WEIGHTS if weights is None else weights
    ns: dict[str, object] = {
        "target_name": target, "g": g, "deadline": deadline,
        "known": known if isinstance(known, Known) else Known(target, g, own=known),
        "reduce_deadline": reduce_deadline,
        "findings": findings or DaxMachine.findings, "steps": 0, "last_finding": None,
        "first_found": None, "examples": 0, "last_failing_ops": None, "kinds": {},
        "transitions": Transitions(),
    }
    if generation == "codec":
        ns["codec"] = codec = Codec(g, w)
        ns["run_ops"] = _codec_rule(codec)  # not "ops": the instance keeps its ops there
    else:
        for kind, fns in _rules(g).items():
            # destructive ops (truncate, punch, reflink, unmount, memory failure) wipe
            # what an example built: they get one rule each; the rest one per 4 of weight
            wk = w.get(kind, 0)
            copies = min(1, wk) if kind in _DESTRUCTIVE else -(-wk // 4)
            for fn in fns:
                for i in range(copies):
                    ns[f"{fn.__name__}_{i}" if i else fn.__name__] = fn
    # Hypothesis keys a machine by hypothesis.internal.reflection.function_digest(), which
    # asks inspect.getsource() for the class: for a class made here that parses all of
    # this file (CPython 3.11's inspect finds classes by walking the module's AST) only
    # to fail and fall back to the class's name -- 15-30 ms on every batch of examples.
    # A module name that is not imported makes inspect fail at once: same key, no parse.
    ns["__module__"] = _MACHINES_MODULE
    safe = "".join(c if c.isalnum() else "_" for c in target)
    return type(f"DaxMachine_{safe}", (DaxMachine,), ns)


# The ordinary pytest entry point: `pytest fuzz/hypothesis_machine.py`.
TestDaxMachine = machine_for(DaxMachine.target_name).TestCase

__all__ = ["DaxMachine", "DivergenceFound", "HandleRef", "TestDaxMachine", "VmaRef",
           "machine_for"]
