"""Campaign state: the finding queue, the time series, and damaged files (reported by name,
skipped, never deleted, never fatal)."""

from __future__ import annotations

import hashlib
import json
import os

from hypothesis.database import choices_to_bytes

from daxfuzz.campaign import folder as C
from daxfuzz.campaign.hypothesis_db import SafeDirectoryDatabase, check_directory
from daxfuzz.cli import main as cli
from daxfuzz.core.emit import known_signatures, queue_finding
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import Trace, parse_trace

BROKEN = "test-broken-unmap-ref"
RAW = """target: test-broken-unmap-ref
expect: divergence munmap:refcount

mmap mm=0 vma=0 ino=0 huge=0
fault mm=0 vma=0 pgoff=0 write=1
fault mm=0 vma=0 pgoff=1
msync mm=0 vma=0
munmap mm=0 vma=0
"""


def test_queued_finding_of_a_killed_run_is_reduced_by_the_next(tmp_path, capsys):
    f = str(tmp_path / "f")
    q = queue_finding(f, RAW, "random")  # what a run killed mid-reduction leaves
    assert C.queued(f) == [q]
    rc = cli(["fuzz", "--engine", "random", "--target", BROKEN, "--time", "0.5", "--seed", "1",
              "-q", "--findings", f, "--no-report"])
    assert rc in (0, 1)
    err = capsys.readouterr().err
    assert "RECOVERED munmap:refcount" in err
    assert C.queued(f) == []
    assert "munmap:refcount" in known_signatures(f, BROKEN)


def test_damaged_files_are_reported_by_name_and_kept(tmp_path, capsys):
    f, corpus, db = tmp_path / "f", tmp_path / "corpus", tmp_path / "corpus" / "hypothesis-db"
    f.mkdir()
    corpus.mkdir()
    bad_finding = f / "6.15__x.trace"
    bad_finding.write_text("target: 6.15\nexpect: divergence x\n\nmmap mm=0 vma=0 bogus=1\n")
    bad_queued = f / "queue" / "random-0123.trace"
    bad_queued.parent.mkdir()
    bad_queued.write_text("target: 6.15\nfault mm=0 vma=0 pgoff=0 wri")  # cut short
    bad_trace = corpus / "cut.trace"
    bad_trace.write_text("mmap mm=0 vma=0 ino=0\nfault mm=0 vm")
    # a Hypothesis entry cut short by a kill, in the database folder
    sdb = SafeDirectoryDatabase(str(db))
    sdb.save(b"key", choices_to_bytes((1, 2, b"abc")))
    (entry,) = [p for p in db.rglob("*") if p.is_file() and p.parent.name != sdb._metakeys_hash]
    entry.write_bytes(entry.read_bytes()[:3])
    state = f / "campaign" / "state.json"
    state.parent.mkdir()
    state.write_text('{"runs": [{"id": 1, "sta')
    series = f / "campaign" / "series.jsonl"
    series.write_text('{"run": 1, "t": 1.0, "execs": 5}\n{"run": 1, "t": 2.')
    rc = cli(["fuzz", "--engine", "hypothesis", "--target", BROKEN, "--time", "1", "--seed",
              "1", "-q", "--findings", str(f), "--corpus", str(corpus), "--no-report"])
    assert rc in (0, 1)
    err = capsys.readouterr().err
    for p in (bad_finding, bad_queued, bad_trace, entry):
        assert str(p) in err, (p, err)
        assert p.exists()  # never deleted
    assert f"{state}: unreadable campaign state" in err
    assert list(state.parent.glob("state.json.corrupt-*"))  # kept aside
    recs = C.read_series(str(series), report=lambda m: None)
    assert recs[0] == {"run": 1, "t": 1.0, "execs": 5} and len(recs) > 2  # appended after
    said = []
    C.read_series(str(series), report=said.append)
    assert said == [f"{series}:2: not a JSON record (a write cut short?); skipped"]
    assert any(str(entry) in line for line in check_directory(str(db)))
    assert list(sdb.fetch(b"key")) == []  # skipped, and Hypothesis never saw it to delete it


def test_truncated_atheris_corpus_input_is_reported_not_fatal(tmp_path):
    d = tmp_path / "atheris"
    d.mkdir()
    data = b"\x00\x01\x02\x03"
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    (d / hashlib.sha1(data + b"more").hexdigest()).write_bytes(data)  # cut short
    problems = C.scan(corpus=[str(d)])
    assert len(problems) == 1 and "does not match its SHA-1 name" in problems[0]


def test_series_is_appended_per_run_and_runs_are_recorded(tmp_path):
    camp = C.Campaign(str(tmp_path / "c"))
    camp.start_run(engine="random", target="6.15")
    camp.sample(True, execs=1)
    camp.sample(False, execs=2)  # within a second of the last: not written
    camp.finish_run(execs=2)
    camp2 = C.Campaign(str(tmp_path / "c"))
    run2 = camp2.start_run(engine="random", target="7.2")
    camp2.sample(True, execs=3)
    assert [(r["run"], r["execs"]) for r in C.read_series(camp.series_path)] == [(1, 1), (2, 3)]
    assert run2["id"] == 2
    with open(camp.state_path) as fh:
        runs = json.load(fh)["runs"]
    assert [r["status"] for r in runs] == ["done", "running"]


def test_hypothesis_seed_keeps_the_example_database(tmp_path):
    # --seed used to set hypothesis.core.global_force_seed, which switches the database off
    db = tmp_path / "db"
    assert cli(["fuzz", "--engine", "hypothesis", "--target", BROKEN, "--time", "2", "--seed",
                "5", "-q", "--findings", str(tmp_path / "f"), "--db", str(db),
                "--no-report"]) == 1
    assert check_directory(str(db)) == []
    assert [p for p in db.rglob("*") if p.is_file()]


def test_save_finding_never_loses_an_unreadable_old_trace(tmp_path):
    from daxfuzz.core.emit import save_finding

    raw = parse_trace(RAW)
    saved = save_finding(str(tmp_path), Trace(ops=raw.ops, target=BROKEN, geometry=DEFAULT,
                                              expect=raw.expect), engine="unit")
    with open(saved["trace_path"], "w") as fh:
        fh.write("target: test-broken-unmap-ref\nmmap mm=0 vm")
    save_finding(str(tmp_path), Trace(ops=raw.ops, target=BROKEN, geometry=DEFAULT,
                                      expect=raw.expect), engine="unit")
    assert os.path.exists(saved["trace_path"] + ".corrupt")
    assert known_signatures(str(tmp_path), BROKEN) == {"munmap:refcount"}


CORRUPTIONS = {  # what a kill, a full disk or a person can leave of a finding file
    "emptied": "",
    "whitespace": " \n\t\n",
    "comments only": "# nothing here\n",
    "cut after its header": "target: test-broken-unmap-ref\nexpect: divergence munmap:refcount\n\n",
    "another bug's trace": RAW.replace("munmap:refcount", "fault:refcount"),
    "agrees": RAW.replace("munmap mm=0 vma=0\n", ""),
}


def test_a_corrupt_finding_is_set_aside_and_replaced_on_refind(tmp_path, capsys):
    """An emptied finding file used to parse as a 0-op trace that 'agrees': the re-find
    printed 'reduced 16 -> 0 ops' and kept it, hiding the bug from every later run."""
    f = tmp_path / "f"
    raw = tmp_path / "raw.trace"
    raw.write_text(RAW)
    assert cli(["reduce", str(raw), "--findings", str(f)]) == 1
    (trace,) = f.glob("*__munmap-refcount.trace")
    (test,) = f.glob("test_*.py")
    good = trace.read_text()
    for n, (what, text) in enumerate(CORRUPTIONS.items()):
        trace.write_text(text)
        test.unlink()
        capsys.readouterr()
        assert cli(["reduce", str(raw), "--findings", str(f)]) == 1, what
        err = capsys.readouterr().err
        assert trace.read_text() == good and test.exists(), what
        assert "-> 0 ops" not in err and "could not stand for it" in err, (what, err)
        aside = trace.with_name(trace.name + (".corrupt" if n == 0 else f".corrupt-{n}"))
        assert aside.read_text() == text, what  # kept, never overwritten
    assert known_signatures(str(f), BROKEN) == {"munmap:refcount"}
    test.write_text("garbage")  # a kept finding gets its test back too
    assert cli(["reduce", str(raw), "--findings", str(f)]) == 1
    assert "EXPECT_DIVERGENCE" in test.read_text()


def test_database_never_deletes_a_corrupt_entry_it_reported_keeping(tmp_path):
    said: list[str] = []
    sdb = SafeDirectoryDatabase(str(tmp_path / "db"), report=said.append)
    value = choices_to_bytes((1, 2, b"abc"))
    sdb.save(b"key", value)
    (entry,) = [p for p in (tmp_path / "db").rglob("*")
                if p.is_file() and p.parent.name != sdb._metakeys_hash]
    entry.write_bytes(entry.read_bytes()[:3])  # cut short by a kill: its name kept
    assert list(sdb.fetch(b"key")) == [] and "left in place" in said[-1]
    sdb.save(b"key", value)  # Hypothesis finds that example again: stored, not shadowed
    kept = tmp_path / "db" / ".quarantine" / entry.parent.name / entry.name
    assert kept.read_bytes() == value[:3] and f"moved to {kept}" in said[-1]
    assert list(sdb.fetch(b"key")) == [value]
    sdb.delete(b"key", value)  # ...and later drops it: the quarantined file stays
    assert kept.read_bytes() == value[:3] and check_directory(str(tmp_path / "db")) == []
    entry.parent.mkdir(exist_ok=True)
    entry.write_bytes(b"junk")  # corrupt again, then deleted or moved by name
    sdb.delete(b"key", value)
    sdb.move(b"key", b"other", value)
    assert entry.with_name(entry.name).exists() is False
    assert kept.with_name(entry.name + ".1").read_bytes() == b"junk"
