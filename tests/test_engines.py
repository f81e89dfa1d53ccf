"""Every engine finds the planted bug of the broken target, and reduces it to 3 ops.

The known-minimal reproducer of `test-broken-unmap-ref` is 3 ops (kdax/broken.py).
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from daxfuzz.cli import main as cli
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import read_trace
from fuzz import random_engine
from fuzz.hypothesis_machine import DivergenceFound, machine_for
from kdax.gup import FOLL_GET
from kdax.v7_2 import Kernel72

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN = "test-broken-unmap-ref"
KNOWN_MINIMAL = 3


def test_random_engine_finds_broken_target():
    st = random_engine.run(BROKEN, DEFAULT, seconds=10, seed=1, stop_at_first=True)
    # found, and the run stopped there: how fast is `daxfuzz bench`'s, not a test's
    assert len(st.findings) == 1 and st.first_found is not None
    assert st.first_found <= st.seconds


# The real kernels' own divergences, each documented by a corpus trace: the CoW of a
# GUP-held folio warns in dax_folio_put (corpus/divergence-cow-gup-held-*.trace; the
# fault, or GUP's fault-in, that does the CoW), 6.15's stale index/share union
# (corpus/divergence-stale-index-*.trace, through a fault or GUP), and 7.2's CoW PTE under
# a PMD entry (corpus/divergence-cow-pte-under-pmd-entry-*.trace).
# GUP and write_from's copy fault pages in through the handler
GUP_FAULTS = ("fault", "pin", "get", "pin_pages", "write_from")
KNOWN_REAL = {
    "6.15": {f"{op}:{f}" for op in GUP_FAULTS for f in ("warning@dax_folio_put", "mapping")}
    | {"write:warning@dax_folio_put", "swapext:warning@dax_folio_put", "write_from:pte",
       "write_from:pmd",
       "swapext:warning@truncate_folio_batch_exceptionals"}
    | {f"{op}:safety:freed-in-use" for op in ("truncate", "punch", "reflink")}
    | {f"{op}:safety:nrpages" for op in GUP_FAULTS},
    "7.2": {f"{op}:warning@dax_folio_put" for op in (*GUP_FAULTS, "write", "swapext")}
    | {f"{op}:safety:nrpages" for op in GUP_FAULTS}
    | {"fault:result", "write_from:pte", "write_from:pmd",
       "write_from:warning@dax_associate_entry",
       "swapext:warning@truncate_folio_batch_exceptionals"},
}


@pytest.mark.parametrize("target", sorted(KNOWN_REAL))
def test_random_engine_finds_only_documented_divergences_on_real_targets(target):
    st = random_engine.run(target, DEFAULT, seconds=2, seed=1)
    found = {d.signature() for _ops, d in st.findings}
    assert st.steps > 1000 and found <= KNOWN_REAL[target], found - KNOWN_REAL[target]


def test_random_engine_agrees_on_real_target_with_known_divergences_masked():
    st = random_engine.run("6.15", DEFAULT, seconds=1, seed=1, known=KNOWN_REAL["6.15"])
    assert not st.findings and st.steps > 100


def test_hypothesis_machine_finds_and_writes_trace(tmp_path):
    m = machine_for(BROKEN, findings=str(tmp_path))
    s = settings(max_examples=300, stateful_step_count=30, database=None, derandomize=True,
                 deadline=None, suppress_health_check=list(HealthCheck),
                 phases=[Phase.generate, Phase.shrink])
    with pytest.raises(DivergenceFound) as exc:  # how fast: `daxfuzz bench`, not a test
        run_state_machine_as_test(m, settings=s)
    msg = str(exc.value)
    assert "DIVERGENCE at step" in msg
    path = m.last_finding["trace_path"]
    assert f"trace_path: {path}" in msg
    assert len(read_trace(path).ops) <= KNOWN_MINIMAL
    assert os.path.exists(m.last_finding["raw_path"])


@pytest.mark.smoke
def test_atheris_harness_finds_and_reduce_converts_crash(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = dict(os.environ, DAXFUZZ_TARGET=BROKEN, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "fuzz.atheris_harness", str(corpus),
                        "-max_total_time=15", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                       env=env, capture_output=True, text=True, timeout=60)
    crashes = glob.glob(str(tmp_path / "crash-*"))
    assert crashes, p.stderr[-2000:]
    assert "DivergenceFound" in p.stdout + p.stderr  # atheris prints it on stdout
    out = tmp_path / "red.trace"
    rc = cli(["reduce", crashes[0], "--target", BROKEN, "-o", str(out)])
    assert rc == 1
    assert len(read_trace(str(out)).ops) <= KNOWN_MINIMAL


@pytest.mark.smoke
@pytest.mark.parametrize("engine", ["random", "hypothesis", "atheris", "portfolio"])
def test_daxfuzz_fuzz_finds_broken_target(engine, tmp_path, capsys):
    rc = cli(["fuzz", "--engine", engine, "--target", BROKEN, "--time", "4", "--seed", "1",
              "-q", "--findings", str(tmp_path / "f"), "--corpus", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "time to first finding" in out
    traces = [p for p in glob.glob(str(tmp_path / "f" / "*.trace")) if p.count(".") == 1]
    lengths = {read_trace(p).expect: len(read_trace(p).ops) for p in traces}
    # the planted bug (an unmap that drops no reference) shows first where a mapping
    # is zapped: mmap, write fault, munmap -- reduced to the known minimum; later
    # findings are its consequences elsewhere and the base kernel's own warnings
    zaps = [n for e, n in lengths.items() if e.split()[-1].startswith(
        ("munmap:", "truncate:", "punch:", "reflink:", "memory_failure:"))]
    assert zaps and min(zaps) == KNOWN_MINIMAL, lengths
    assert glob.glob(str(tmp_path / "f" / "test_*.py"))


@pytest.mark.smoke
def test_daxfuzz_fuzz_second_run_knows_findings(tmp_path, capsys):
    args = ["fuzz", "--engine", "random", "--target", BROKEN, "--time", "3", "--seed", "1",
            "-q", "--findings", str(tmp_path / "f")]
    assert cli(args) == 1
    first = capsys.readouterr().out
    m = re.search(r"findings: (\d+) new.*?, (\d+) known \(", first)
    assert m, first
    n, documented = int(m[1]), int(m[2])  # documented: the corpus's, on 7.2
    assert cli(args) in (0, 1)
    second = capsys.readouterr().out
    assert f"{n + documented} known" in second


def test_documented_divergences_are_known_not_news(tmp_path, capsys):
    from daxfuzz.core.known import documented_known

    corpus = os.path.join(ROOT, "corpus")
    on72 = documented_known(corpus, "7.2", DEFAULT)
    # the CoW-of-a-GUP-held-folio warning and the nrpages leak (plain `expect:` line,
    # no target header) are 7.2's; the alias documents as the version it stands for
    assert {"fault:warning@dax_folio_put", "fault:safety:nrpages"} <= set(on72)
    # and the same warning through GUP's fault-in
    assert {"pin:warning@dax_folio_put", "get:warning@dax_folio_put"} <= set(on72)
    assert "fault:refcount" in on72 and "pin:refcount" not in on72  # warnings only
    assert documented_known(corpus, "mainline", DEFAULT) == on72
    assert "fault:mapping" in documented_known(corpus, "6.15", DEFAULT)
    # a zoo trace's plain `expect:` is about its variant, not about 7.2 (`expect 7.2: agree`)
    assert "unmount:result" not in on72
    assert documented_known(corpus, "zoo-evict-no-final-break", DEFAULT)["unmount:result"]\
        .endswith("zoo-evict-no-final-break.trace")
    # only a fault's warning stands for pin and get, not a pin's for fault
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pin.trace").write_text(
        open(os.path.join(corpus, "divergence-legacy-unmount-over-pin.trace")).read())
    on_v6 = documented_known(str(tmp_path / "p"), "v6", DEFAULT)
    assert set(on_v6) == {"pin:warning@dax_folio_put"}, on_v6
    # a documented expectation that does not replay is not known
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "wrong.trace").write_text(
        "expect 7.2: divergence fault:refcount\nmmap mm=0 vma=0 ino=0\n")
    (tmp_path / "s" / "bad.trace").write_text("mmap bogus\n")  # skipped, not fatal
    assert documented_known(str(tmp_path / "s"), "7.2", DEFAULT) == {}
    # the fuzz command says what it skips, and --scenarios none skips nothing
    args = ["fuzz", "--engine", "random", "--target", "7.2", "--time", "0.5", "--seed", "1",
            "--findings", str(tmp_path / "f"), "--no-report", "--scenarios", corpus]
    cli(args)
    out = capsys.readouterr()
    assert "scenario corpus documents on 7.2" in out.err + out.out
    assert f"{len(on72)} known" in out.out
    cli(args[:-1] + ["none"])
    assert "0 known" in capsys.readouterr().out


def test_bad_inputs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.trace"
    bad.write_text("target: 6.15\nmmap mm=0 vma=0 ino=0\nfault mm=0 vma=9 pgoff=0\n")
    assert cli(["reduce", str(bad)]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "x.trace").write_text("mmap mm=0 vma=0 ino=0 bogus=1\n")
    assert cli(["corpus", "build", "--from", str(tmp_path / "corpus"),
                "--to", str(tmp_path / "out")]) == 2
    assert "x.trace:1:" in capsys.readouterr().err
    assert cli(["fuzz", "--engine", "random", "--target", "nosuch", "--time", "1"]) == 2
    assert cli(["fuzz", "--engine", "random", "--target", "6.15", "--time", "1",
                "--weights", "fault=x"]) == 2


def test_corpus_build_round_trips(tmp_path, capsys):
    src = tmp_path / "traces"
    src.mkdir()
    (src / "a.trace").write_text("mmap mm=0 vma=0 ino=0 huge=0\nfault mm=0 vma=0 pgoff=0 "
                                 "write=1\nmunmap mm=0 vma=0\n")
    assert cli(["corpus", "build", "--from", str(src), "--to", str(tmp_path / "seeds")]) == 0
    from fuzz.codec import decode

    (seed,) = (tmp_path / "seeds").iterdir()
    assert decode(seed.read_bytes(), DEFAULT) == list(read_trace(str(src / "a.trace")).ops)


def test_hypothesis_rules_aim_at_allocated_blocks():
    # the "rules" generation: with `backed`, faults and GUP through a VMA pick a page
    # whose block is allocated; memory failure with `allocated` picks an allocated PFN
    from daxfuzz.vocab import ops as O
    from fuzz.hypothesis_machine import VmaRef

    cls = machine_for("7.2", generation="rules")
    m = cls()
    m._do(O.Mmap(0, 0, 0, 0, 8, huge=0))
    ref = VmaRef(0, 0, 0, 8)
    assert {m._pgoff(ref, off, 1) for off in range(8)} == set(range(8))  # nothing allocated
    m._do(O.Fault(0, 0, 5, 1))
    pfn = m.runner.o.fs.pfn(0, 5)
    assert pfn >= 0
    assert {m._pgoff(ref, off, 1) for off in range(8)} == {5}
    assert {m._pgoff(ref, off, 0) for off in range(8)} == set(range(8))
    m.memory_failure(pfn=17, mm=0, holder=1, allocated=1)
    assert m.ops[-1] == O.MemoryFailure(pfn, 0, 1)
    m.memory_failure(pfn=17, mm=0, holder=1, allocated=0)
    assert m.ops[-1] == O.MemoryFailure(17, 0, 1)


def test_a_gup_divergence_that_is_a_known_fault_divergence_is_not_news(tmp_path):
    from dataclasses import replace

    from daxfuzz.core.known import DOCUMENTED, DUP, NEW, Known, documented_known, fault_in
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.ops import Fault
    from daxfuzz.vocab.trace import parse_trace

    on72 = documented_known(os.path.join(ROOT, "corpus"), "7.2", DEFAULT)
    assert "fault:refcount" in on72 and "pin:refcount" not in on72

    def verdicts(text: str, target: str = "7.2") -> tuple[str, str, str, str]:
        ops = parse_trace(text).ops
        d, _ = run_ops(target, DEFAULT, ops)
        assert d is not None and d.step == len(ops)
        return (d.signature(),
                Known(target, DEFAULT, documented=on72).verdict(ops, d),
                Known(target, DEFAULT, own=set(on72)).verdict(ops, d),  # as `fuzz` passes it
                Known(target, DEFAULT).verdict(ops, d))  # nothing known: news

    # the documented PTE-then-PMD mixed share (fault:refcount), its PMD faulted in by a
    # get instead (found by atheris on mainline)
    assert verdicts("mmap mm=0 vma=0 ino=0 pages=8\nfault mm=0 vma=0 pgoff=4 write=1\n"
                    "reflink src=0 dst=1 src_pgoff=3 pages=5\nmmap mm=1 vma=0 ino=1 huge=0\n"
                    "pin mm=1 vma=0 pgoff=2 h=1 write=0\nget mm=0 vma=0 pgoff=4\n") == (
        "get:refcount", DOCUMENTED, DUP, NEW)
    # ... by a pin (random, the quick start's 60 s on mainline)
    assert verdicts("mmap mm=0 vma=1 ino=0 pgoff=2 huge=0\nmmap mm=0 vma=0 ino=1 pages=8\n"
                    "write ino=0 pgoff=4 pages=4\nreflink src=0 dst=1 pages=8\n"
                    "fault mm=0 vma=1 pgoff=5\npin mm=0 vma=0 pgoff=4 write=0\n") == (
        "pin:refcount", DOCUMENTED, DUP, NEW)
    # ... by write(2)'s copy from the mapping (atheris on mainline)
    assert verdicts("mmap mm=1 vma=0 ino=0\nfault mm=1 vma=0 pgoff=0 write=1\n"
                    "reflink src=0 dst=1\nmmap mm=0 vma=0 ino=1 huge=0\n"
                    "fault mm=0 vma=0 pgoff=1\n"
                    "write_from mm=1 vma=0 src_pgoff=0 ino=0 pgoff=4\n") == (
        "write_from:refcount", DOCUMENTED, DUP, NEW)
    # ... and by a multi-page pin (atheris on 7.2, seed 2)
    assert verdicts("mmap mm=1 vma=0 ino=1 huge=0\nmmap mm=0 vma=0 ino=0\n"
                    "fault mm=0 vma=0 pgoff=0 write=1\nreflink src=0 dst=1\n"
                    "fault mm=1 vma=0 pgoff=1\npin_pages mm=0 vma=0 pgoff=0 write=0\n") == (
        "pin_pages:refcount", DOCUMENTED, DUP, NEW)
    # the documented CoW/PTE-under-PMD-entry SIGBUS (fault:result), as a pin's EFAULT
    # (random, the quick start on mainline)
    assert verdicts("mmap mm=0 vma=0 ino=0 pages=8\nfault mm=0 vma=0 pgoff=4 write=1\n"
                    "reflink src=0 dst=1 src_pgoff=4 dst_pgoff=4\n"
                    "mmap mm=0 vma=1 ino=1 pages=5 huge=0\nfault mm=0 vma=1 pgoff=4\n"
                    "pin mm=0 vma=0 pgoff=4 write=0\n") == ("pin:result", DOCUMENTED, DUP, NEW)
    # the same route known only in another field: news (a refcount through GUP is not
    # a result through a fault)
    pin = parse_trace("mmap mm=0 vma=1 ino=0 pgoff=2 huge=0\nmmap mm=0 vma=0 ino=1 pages=8\n"
                      "write ino=0 pgoff=4 pages=4\nreflink src=0 dst=1 pages=8\n"
                      "fault mm=0 vma=1 pgoff=5\npin mm=0 vma=0 pgoff=4 write=0\n").ops
    d, _ = run_ops("7.2", DEFAULT, pin)
    assert Known("7.2", DEFAULT, own={"fault:result"}).verdict(pin, d) == NEW
    # a longterm pin is refused before any fault-in: never stood in for by faults
    assert fault_in([*pin[:-1], replace(pin[-1], longterm=1)]) is None
    assert fault_in(pin)[-1] == Fault(0, 0, 4, 0)
    # a GUP divergence whose faults agree is news on a kernel target that knows the
    # fault divergences: a mainline kernel whose FOLL_GET forgets folio_ref_add()
    ops = parse_trace("mmap mm=0 vma=0 ino=0 huge=0\nget mm=0 vma=0 pgoff=0 write=1\n").ops
    d, _ = run_ops(GetNoRef72, DEFAULT, ops)
    assert d is not None and d.signature() == "get:refcount"
    assert run_ops(GetNoRef72, DEFAULT, [*ops[:-1], Fault(0, 0, 0, 1)])[0] is None
    k = Known(GetNoRef72, DEFAULT, own={s for s in on72 if s.startswith("fault:")})
    assert k.base is None and k.verdict(ops, d) == NEW


class GetNoRef72(Kernel72):
    """7.2 whose FOLL_GET forgets folio_ref_add(): a kernel target (no base) with a GUP
    bug of its own beside 7.2's fault bugs."""

    name = "test-get-no-ref-72"

    def try_grab_folio(self, folio, refs: int, flags: int) -> int:
        if flags & FOLL_GET:
            return 0
        return super().try_grab_folio(folio, refs, flags)


def test_a_warning_is_the_same_through_its_family_and_nothing_else_is():
    from daxfuzz.core.known import same_warning

    assert same_warning("write:warning@dax_folio_put") == {
        "write:warning@dax_folio_put", "write_from:warning@dax_folio_put"}
    assert same_warning("fault:warning@dax_folio_put") == {
        f"{o}:warning@dax_folio_put"
        for o in ("fault", "pin", "get", "pin_pages", "write_from")}
    # a refcount or mapping difference through another op could be that op's own bug
    assert same_warning("write:mapping") == {"write:mapping"}
    assert same_warning("pin:warning@dax_folio_put") == {"pin:warning@dax_folio_put"}


def test_a_machines_database_key_needs_no_source_parse():
    # Hypothesis keys a machine by function_digest(): for a class made by machine_for
    # inspect finds no source, so the key falls back to the class's name -- and it
    # must stay the key it was when inspect parsed this module's file to find that out
    # (example databases a fleet shares were written under it)
    import inspect

    from hypothesis.internal.reflection import function_digest

    from fuzz.hypothesis_machine import DaxMachine

    cls = machine_for("7.2")
    with pytest.raises(TypeError):  # no file to parse: inspect gives up at once
        inspect.getsource(cls)
    old = type(cls.__name__, (DaxMachine,), {"__module__": "fuzz.hypothesis_machine"})
    with pytest.raises(OSError):  # the old way: the whole module parsed, no class found
        inspect.getsource(old)
    assert function_digest(cls) == function_digest(old)
    assert function_digest(cls) != function_digest(machine_for("6.15"))


def test_hypothesis_batches_alternate_short_and_long_examples(monkeypatch):
    # the zoo/mutate finder runs batch after batch of 20 examples, 10 then 50 steps
    # each, on a seed of its own: hunting a divergence no run shows, it runs them all
    import fuzz.hypothesis_machine as H
    from daxfuzz.campaign.zoo import find_hypothesis

    seen = []
    run_batch = H.run_batch

    def spy(machine, seed, s):
        seen.append((seed, s.stateful_step_count, s.max_examples))
        if len(seen) >= 4:  # enough: make the budget end
            machine.deadline = 0.0
        return run_batch(machine, seed, s)

    monkeypatch.setattr(H, "run_batch", spy)
    found, _secs, examples, _ops = find_hypothesis("7.2", DEFAULT, 3.0, 5, want="none:such")
    assert not found and examples > 0
    assert [x[1] for x in seen[:4]] == [10, 50, 10, 50]
    assert [x[0] for x in seen[:4]] == [5 * 1_000_003 + i for i in range(4)]
    assert {x[2] for x in seen} == {20}
