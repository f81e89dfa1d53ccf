"""`daxfuzz replay` and `daxfuzz targets` through daxfuzz.cli.main: exit codes and output."""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main

AGREE = """\
expect: agree
description: a PTE write fault then munmap
mmap mm=0 vma=0 ino=0 huge=0
fault mm=0 vma=0 pgoff=0 write=1  => ok
munmap mm=0 vma=0
"""

# 6.15 only: stale ->index on an order-0 folio looks like share (see corpus/)
STALE = """\
expect: agree
expect 6.15: divergence fault:mapping
mmap mm=0 vma=1 ino=1 pgoff=4 huge=0
fault mm=0 vma=1 pgoff=5 write=1
reflink src=1 dst=0 pages=8
fault mm=0 vma=1 pgoff=5
"""

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "corpus")


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str) -> str:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return str(p)
    return _write


def test_replay_agree_exits_0_and_prints_steps(write, capsys):
    path = write("a.trace", AGREE)
    assert main(["replay", path, "--target", "6.15"]) == 0
    out = capsys.readouterr().out
    assert f"== {path}  (target 6.15;" in out
    assert "a PTE write fault then munmap" in out
    assert "fault mm=0 vma=0 pgoff=0 write=1" in out
    assert "pfn 0: order=0 ref=1 mapcount=1 mapping=ino0 index=0" in out
    assert out.rstrip().endswith(f"{path}: agree on 6.15")


def test_replay_default_target_is_trace_header_then_72(write, capsys):
    assert main(["replay", write("a.trace", AGREE), "-q"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("agree on 7.2")
    assert main(["replay", write("b.trace", "target: 6.15\n" + AGREE), "-q"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("agree on 6.15")


def test_replay_divergence_exits_1(write, capsys):
    path = write("s.trace", STALE)
    assert main(["replay", path, "--target", "6.15"]) == 1
    out = capsys.readouterr().out
    assert "DIVERGENCE at step 4: fault mm=0 vma=1 pgoff=5" in out
    assert "field:    mapping pfn=1" in out
    assert f"{path}: divergence fault:mapping on 6.15" in out
    assert main(["replay", path, "--target", "7.2", "-q"]) == 0


def test_replay_explain_names_the_writer(write, capsys):
    assert main(["replay", write("s.trace", STALE), "--target", "6.15", "--explain"]) == 1
    assert "last written by: dax_folio_put" in capsys.readouterr().out


def test_check_follows_the_header(write, capsys):
    path = write("s.trace", STALE)
    assert main(["replay", "--check", path, "--target", "6.15", "-q"]) == 0
    assert "divergence fault:mapping  (as expected) on 6.15" in capsys.readouterr().out
    assert main(["replay", "--check", path, "--target", "7.2", "-q"]) == 0
    wrong = write("w.trace", STALE.replace("expect 6.15:", "expect 7.2:"))
    assert main(["replay", "--check", wrong, "--target", "6.15", "-q"]) == 1
    assert "UNEXPECTED: header says 'agree'" in capsys.readouterr().out
    assert main(["replay", "--check", wrong, "--target", "7.2", "-q"]) == 1


def test_check_with_wrong_signature_fails(write):
    path = write("s.trace", STALE.replace("fault:mapping", "fault:refcount"))
    assert main(["replay", "--check", path, "--target", "6.15", "-q"]) == 1
    path = write("t.trace", STALE.replace(" fault:mapping", ""))  # any divergence
    assert main(["replay", "--check", path, "--target", "6.15", "-q"]) == 0


def test_result_annotation_mismatch(write, capsys):
    path = write("m.trace", AGREE.replace("write=1  => ok", "write=1  => SIGBUS"))
    assert main(["replay", path, "--target", "6.15"]) == 1
    out = capsys.readouterr().out
    assert "(trace expects SIGBUS)" in out
    assert "RESULT MISMATCH at step 2" in out
    assert "divergence fault:trace-result on 6.15" in out  # step 2's op, not step 1's
    assert main(["replay", "--check", path, "--target", "6.15", "-q"]) == 1


def test_malformed_trace_exits_2_naming_file_and_line(write, capsys):
    path = write("bad.trace", "expect: agree\nmmap mm=0 vma=0 ino=0\nfault mm=0 vma=0\n")
    assert main(["replay", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: fault: missing field(s) pgoff" in err


def test_bad_input_wins_over_divergence_but_all_files_run(write, capsys):
    bad = write("bad.trace", "frobnicate\n")
    good = write("s.trace", STALE)
    assert main(["replay", good, bad, "--target", "6.15", "-q"]) == 2
    cap = capsys.readouterr()
    assert f"{good}: divergence fault:mapping on 6.15" in cap.out
    assert f"{bad}:1: unknown op 'frobnicate'" in cap.err


def test_missing_and_non_utf8_files_exit_2(write, tmp_path, capsys):
    missing = str(tmp_path / "nope.trace")
    assert main(["replay", missing]) == 2
    assert missing in capsys.readouterr().err
    p = tmp_path / "latin1.trace"
    p.write_bytes(b"description: caf\xe9\n")
    assert main(["replay", str(p)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_unknown_target_exits_2(write, capsys):
    assert main(["replay", write("a.trace", AGREE), "--target", "2.6.32"]) == 2
    assert "--target: unknown target '2.6.32'" in capsys.readouterr().err
    path = write("t.trace", "# x\ntarget: nope\n" + AGREE)
    for cmd in ("replay", "reduce"):
        assert main([cmd, path]) == 2
        err = capsys.readouterr().err
        assert f"{path}:2: unknown target 'nope'" in err and "zoo-" not in err


def test_replay_and_reduce_take_the_same_files_and_default_target(write, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.delenv("DAXFUZZ_TARGET", raising=False)
    crash = tmp_path / "crash-0123"
    crash.write_bytes(bytes(range(40)))
    assert main(["replay", "-q", str(crash)]) in (0, 1)
    out = capsys.readouterr().out
    assert f"{crash}: " in out and out.rstrip().endswith("on 7.2")
    other = tmp_path / "notes.bin"
    other.write_bytes(b"\xff\xfe")
    for cmd in ("replay", "reduce"):
        assert main([cmd, str(other)]) == 2
        assert f"{other}:1: not UTF-8" in capsys.readouterr().err
    monkeypatch.setenv("DAXFUZZ_TARGET", "6.15")
    path = write("s.trace", STALE)
    assert main(["replay", "-q", path]) == 1
    assert "divergence fault:mapping on 6.15" in capsys.readouterr().out
    assert main(["reduce", path, "-o", str(tmp_path / "r.trace")]) == 1


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["replay", "--frobnicate"])
    assert ei.value.code == 2


def test_replay_corpus_check_both_targets(capsys):
    files = sorted(os.path.join(CORPUS, f) for f in os.listdir(CORPUS) if f.endswith(".trace"))
    for target in ("6.15", "7.2"):
        assert main(["replay", "--check", "-q", "--target", target, *files]) == 0
    out = capsys.readouterr().out
    assert "UNEXPECTED" not in out


def test_targets_lists_both(capsys):
    assert main(["targets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert "6.15" in names and "7.2" in names
    assert any(ln.startswith("mainline") and "alias of 7.2" in ln for ln in lines)


def test_duration_units():
    import argparse

    import pytest

    from daxfuzz.cli import duration

    assert duration("90") == 90.0
    assert duration("1.5") == 1.5
    assert duration("90s") == 90.0
    assert duration("10m") == 600.0
    assert duration("8h") == 28800.0
    assert duration("1d") == 86400.0
    for bad in ("", "h", "8x", "-1", "0", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)


def test_a_reduced_crash_input_replays_as_the_trace_it_is(tmp_path, capsys, monkeypatch):
    # reducing crash-<sha1> writes crash-<sha1>.reduced.trace: a trace, never codec bytes
    # (read as bytes it decoded to other ops and replayed as "agree", exit 0)
    from daxfuzz.vocab.trace import read_trace
    from fuzz.codec import encode

    monkeypatch.delenv("DAXFUZZ_TARGET", raising=False)
    t = read_trace(os.path.join(CORPUS, "zoo", "zoo-fault-forgot-put.trace"))
    crash = tmp_path / "crash-0123"
    crash.write_bytes(encode(t.ops, t.geometry))
    assert main(["reduce", "--target", t.target, str(crash)]) == 1
    capsys.readouterr()
    red = tmp_path / "crash-0123.reduced.trace"
    assert main(["replay", "--check", "-q", str(red)]) == 0  # as its header expects
    assert "divergence" in capsys.readouterr().out
