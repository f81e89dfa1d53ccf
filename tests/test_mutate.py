"""`daxfuzz mutate`: mutants are built from the function the target runs, a planted
mutant is killed, a survivor is listed and checked, bad arguments exit 2."""

from __future__ import annotations

import json

import pytest

from daxfuzz.cli import main
from daxfuzz.core.known import own_divergence
from daxfuzz.core.runner import run_ops, shows_same
from daxfuzz.errors import ConfigError
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT
from kdax import mutant as M
from kdax.targets import get_target
from kdax.v7_2 import Kernel72

# a PTE write fault: enough to see a missing folio_get on the PTE insert path
PTE_FAULT = [O.Mmap(0, 0, 0, huge=0), O.Fault(0, 0, 0, 1)]


def test_mutant_name_round_trip():
    m = M.Mutant("7.2", "insert_page_into_pte_locked", "drop-ref", 0)
    assert M.Mutant.parse(m.name) == m
    assert m.name == "mutant:7.2:insert_page_into_pte_locked:drop-ref:0"
    with pytest.raises(ConfigError, match="not a mutant name"):
        M.Mutant.parse("mutant:7.2:zap_pte")


def test_the_function_the_target_runs_is_mutated():
    funcs = M.kernel_functions(Kernel72)
    assert funcs["dax_folio_put"].rel() == "kdax/v7_2.py"  # 7.2 overrides 6.15's
    assert funcs["zap_pte"].rel() == "kdax/memory.py"
    assert "apply" not in funcs and "set_field" not in funcs  # plumbing


def test_a_mutant_is_a_target_built_on_its_base():
    name = "mutant:7.2:insert_page_into_pte_locked:drop-ref:0"
    cls = get_target(name)
    assert issubclass(cls, Kernel72) and cls.base == "7.2" and cls.name == name
    assert cls.summary == "kdax/memory.py:156: self.folio_get(folio) -> pass"
    d, _ = run_ops(name, DEFAULT, PTE_FAULT)
    assert d is not None and d.signature() == "fault:refcount"
    assert run_ops("7.2", DEFAULT, PTE_FAULT)[0] is None


def test_mutants_keep_super_and_private_names():
    # 7.2's dax_associate_entry calls super(): a mutant of it still reaches 6.15's
    d, _ = run_ops("mutant:7.2:dax_associate_entry:negate-cond:0", DEFAULT, PTE_FAULT)
    assert d is not None and (d.field, d.actual) == ("mapping", None)
    # memory.py's do_cow_fault calls self.__do_fault (mangled to _Memory__do_fault)
    cow = [O.Mmap(0, 0, 0, huge=0, shared=0), O.Fault(0, 0, 0, 1)]
    d, _ = run_ops("mutant:7.2:do_cow_fault:cond-true:0", DEFAULT, cow)
    assert d is not None and d.field == "warning"


def test_identical_mutants_are_dropped():
    b = M.build(M.Mutant("7.2", "dax_folio_make_shared", "int-1", 0))
    assert b.cls is not None
    # a swap of two identical statements changes nothing
    sel_ids = [m.id for m in M.mutants(Kernel72, ["wp_page_copy"])]
    built = [M.build(M.Mutant.parse("mutant:7.2:" + i)) for i in sel_ids
             if ":swap-stmts:" in i]
    assert any(x.dropped == "identical" for x in built)


def test_sampling_is_deterministic_and_spread():
    from daxfuzz.campaign.mutate import select

    mods = ["kdax/dax.py", "kdax/gup.py", "kdax/memory.py"]
    a = select("7.2", mods, sample=9, seed=3)
    b = select("7.2", mods, sample=9, seed=3)
    assert [r.mutant for r in a.rows] == [r.mutant for r in b.rows]
    assert {r.module for r in a.rows} == set(mods)


def test_shows_same_replays_on_the_base():
    # 7.2's own swapext warning: on a target built on 7.2 it is 7.2's, not a finding
    ops = [O.Mmap(0, 0, 0), O.Fault(0, 0, 0, 0), O.Swapext(0, 1)]
    d, _ = run_ops("7.2", DEFAULT, ops)
    assert d is not None and d.signature() == "swapext:warning@truncate_folio_batch_exceptionals"
    assert shows_same("7.2", DEFAULT, ops, d)
    assert not shows_same("7.2", DEFAULT, ops[:2], d)
    m = "mutant:7.2:insert_page_into_pte_locked:int+1:0"
    md, _ = run_ops(m, DEFAULT, ops)  # the mutant shows it too...
    assert md is not None and md.signature() == d.signature()
    assert own_divergence(m, DEFAULT, ops)[0] is None  # ...and it is 7.2's


def _run(tmp_path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "out"
    rc = main(["mutate", *argv, "--out", str(out)])
    data = json.loads((out / "mutants.json").read_text()) if rc == 0 else {}
    return rc, data


def test_planted_mutant_is_killed(tmp_path):
    rc, data = _run(tmp_path, "--target", "7.2", "--function", "insert_page_into_pte_locked",
                    "--operator", "drop-ref", "--engine", "random", "--budget", "2")
    assert rc == 0
    row = next(r for r in data["rows"] if r["id"] == "insert_page_into_pte_locked:drop-ref:0")
    k = row["kills"]["random"]
    assert row["status"] == "killed" and k["killed"] and not k["base"]
    assert k["reduced_len"] == 2 and k["signature"] == "fault:refcount"
    assert data["summary"]["engines"]["random"]["killed"] == len(data["rows"])
    md = (tmp_path / "out" / "mutants.md").read_text()
    assert "| random | 2/2 | 100.0% |" in md
    # inputs to kill: the seeded loop's count, the same on every run; none for the union
    execs = sorted(r["kills"]["random"]["execs"] for r in data["rows"])
    assert all(n >= 1 for n in execs)
    s = data["summary"]["engines"]
    assert s["random"]["median_execs_to_kill"] == (execs[0] + execs[1]) / 2
    assert s["union"]["median_execs_to_kill"] is None
    assert f" | {(execs[0] + execs[1]) / 2:g} | 2 |" in md.split("| random |")[1].split("\n")[0]


def test_survivor_is_listed_and_checked(tmp_path):
    # wake_up_var() does nothing: returning at once is equivalent
    rc, data = _run(tmp_path, "--function", "wake_up_var", "--engine", "random",
                    "--budget", "1", "--equiv-depth", "1", "--equiv-time", "2")
    assert rc == 0
    (row,) = data["rows"]
    assert row["status"] == "likely equivalent" and row["check"]["complete"]
    assert data["summary"]["survivors"] == 1 and data["summary"]["likely_equivalent"] == 1
    md = (tmp_path / "out" / "mutants.md").read_text()
    assert "## Survivors\n\n- `wake_up_var:return-early:0` likely equivalent: " \
           "`kdax/memremap.py:21: + return`" in md


def test_random_is_always_measured(tmp_path, capsys):
    rc = main(["mutate", "--function", "wake_up_var", "--engine", "exhaust", "--list",
               "--out", str(tmp_path)])
    assert rc == 0
    assert capsys.readouterr().out == ("mutant:7.2:wake_up_var:return-early:0\t"
                                       "kdax/memremap.py:21: + return\n")


@pytest.mark.parametrize("argv, message", [
    (["--function", "no_such_function"], "runs no kernel function 'no_such_function'"),
    (["--module", "kdax/gup.py", "--function", "zap_pte"], "empty selection"),
    (["--module", "kdax/nope.py"], "--module kdax/nope.py: target 7.2 runs no kernel"),
    (["--operator", "flip-bits"], "--operator flip-bits: operators are drop-ref"),
    (["--target", "no-such-target"], "unknown target 'no-such-target'"),
    (["--budget", "0"], "duration must be positive"),
    (["--budget", "-5"], "duration must be positive"),
    (["--jobs", "0"], "0 is out of range: 1.."),
])
def test_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    try:
        rc = main(["mutate", *argv, "--out", str(tmp_path / "o")])
    except SystemExit as e:  # argparse's own errors (a flag's type)
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
