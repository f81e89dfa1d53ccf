"""A generated bad-input suite: malformed traces, bad flags, corrupted campaign folders.

Every case goes through the CLI's main() in-process (exit code and stderr checked, no
traceback), except those that could hang or eat memory -- FIFOs, devices, huge files,
the largest geometry -- which run as a subprocess under a timeout and an address-space
limit, their peak RSS measured.  The cases are generated from a seed
(DAXFUZZ_BAD_SEED, default 1): a table of corruptions applied at random places of
valid traces, a table of bad values for every numeric and path flag, and a table of
damaged campaign states.

    malformed trace  -> exit 2, stderr names FILE:LINE (FILE alone for a whole-file problem)
    bad flag         -> exit 2, stderr names the flag
    damaged campaign -> the command carries on (exit 0/1): the damaged file is named
                        and the bad part quarantined or skipped, never a traceback
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import pytest

from daxfuzz.campaign import folder as C
from daxfuzz.cli import main
from daxfuzz.textio import MAX_FILE_BYTES, MAX_LINE_CHARS
from daxfuzz.vocab.geometry import LIMITS
from daxfuzz.vocab.trace import MAX_OPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = int(os.environ.get("DAXFUZZ_BAD_SEED", "1"))
CASE_SECONDS = 5.0  # the time bound of one in-process case
RSS_LIMIT = 1 << 30  # RLIMIT_AS of a subprocess case
RSS_BOUND_KB = 400_000  # the peak RSS a subprocess case may reach

BASE = [  # valid traces the corruptions are applied to (each line numbered from 1)
    """\
target: 7.2
geometry: pages=32 pmd_order=2 inodes=2 mms=2 vmas=2 handles=4 file_pages=8 max_file_pages=16
expect: agree
description: a pin makes truncate wait; the unpin lets it complete.

mmap mm=0 vma=0 ino=0 pages=4
fault mm=0 vma=0 pgoff=0 write=1        => ok
pin mm=0 vma=0 pgoff=1 h=0              => ok
truncate ino=0                          => blocked pfn=0
unpin h=0                               => ok
truncate ino=0                          => ok
""",
    """\
# a comment first
expect: agree
mmap mm=0 vma=1 ino=1 pgoff=4 huge=0
fault mm=0 vma=1 pgoff=5 write=1
reflink src=1 dst=0 pages=8
fault mm=0 vma=1 pgoff=5
""",
]

BAD_NUMBERS = ["\uff14", "\u0664", "0_4", "+4", "\u00a04", "4\u00a0", "4.0", "0x4", "1e3",
               "", "-", "9" * 12, "\u00b2", "four", "4\u200b", "\u0e54", "٤٢", "1,2"]


def _op_lines(lines: list[str]) -> list[int]:
    return [i for i, ln in enumerate(lines) if ln and not ln.startswith("#") and ":" not in
            ln.split("=>")[0]]


def _header_end(lines: list[str]) -> int:
    return _op_lines(lines)[0]


# Each corruption: (rng, lines) -> (new text or bytes, 1-based line or None).
def c_bad_number(rng, lines):
    i = rng.choice(_op_lines(lines))
    toks = lines[i].split("=>")[0].split()
    j = rng.randrange(1, len(toks)) if len(toks) > 1 else None
    if j is None:
        lines[i] = lines[i] + " x=1"
        return lines, i + 1
    k, _, _ = toks[j].partition("=")
    toks[j] = f"{k}={rng.choice(BAD_NUMBERS)}"
    lines[i] = " ".join(toks)
    return lines, i + 1


def c_unknown_op(rng, lines):
    i = rng.choice(_op_lines(lines))
    lines[i] = rng.choice(["frobnicate", "MMAP", "mmap\u00a0mm=0", "fault\x0bmm=0",
                           "m" * 5000, "\u202emmap", "mmap;"]) + " mm=0"
    return lines, i + 1


def c_field(rng, lines):
    i = rng.choice(_op_lines(lines))
    body = lines[i].split("=>")[0].rstrip()
    lines[i] = body + " " + rng.choice(["bogus=1", "pgoff", "=3", "mm=0", "x" * 6000 + "=1"])
    return lines, i + 1


def c_missing_field(rng, lines):
    i = rng.choice(_op_lines(lines))
    lines[i] = rng.choice(["mmap mm=0", "fault mm=0 vma=0", "reflink src=0", "pin vma=0"])
    return lines, i + 1


def c_out_of_range(rng, lines):
    i = rng.choice(_op_lines(lines))
    lines[i] = rng.choice(["mmap mm=0 vma=0 ino=7", "fault mm=9 vma=0 pgoff=0",
                           "unpin h=99", "truncate ino=0 pages=999999999",
                           "memory_failure pfn=100000", "mmap mm=-1 vma=0 ino=0"])
    return lines, i + 1


def c_geometry(rng, lines):
    key = rng.choice(sorted(LIMITS))
    val = rng.choice([LIMITS[key] + 1, 10**8, 10**9 - 1])
    extra = rng.choice(["", " pages=33", " pmd_order=0", " nope=1", f" {key}=0x1"])
    bad = rng.choice([f"geometry: {key}={val}", f"geometry: {key}={rng.choice(BAD_NUMBERS)}",
                      f"geometry: pages=32{extra}", f"geometry: {key}"])
    lines = [ln for ln in lines if not ln.startswith("geometry:")]
    lines.insert(0, bad)
    return lines, 1


def c_header(rng, lines):
    i = rng.randrange(_header_end(lines) + 1)
    bad = rng.choice(["target: nope", "target: 7.2!", "target: ../../etc/passwd",
                      "target: " + "7" * 100, "expect: maybe", "expect: divergence a b",
                      "expect: divergence \u00e9:x", "expect 7.2!: agree", "colour: blue",
                      "\ufeffcolour: blue", "Target: 7.2", "expect 6.15: sometimes"])
    lines.insert(i, bad)
    return lines, i + 1


def c_header_after_op(rng, lines):
    i = rng.choice(_op_lines(lines)) + 1
    lines.insert(i, rng.choice(["target: 7.2", "expect: agree", "geometry: pages=32",
                                "description: late", "expect 7.2: agree"]))
    return lines, i + 1


def c_duplicate_header(rng, lines):
    lines = [ln for ln in lines if not ln.startswith(("target:", "geometry:"))]
    key = rng.choice(["target: 7.2", "geometry: pages=32"])
    lines[0:0] = [key, key]
    return lines, 2


def c_shifting_chars(rng, lines):
    """A character str.splitlines() splits on, inside a description: the error after it
    must still name the right line."""
    ch = rng.choice(["\x0b", "\x0c", "\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e",
                     "\r"])
    lines.insert(0, f"description: a{ch}b{ch}c")
    lines, line = c_bad_number(rng, lines)
    return lines, line


def c_long_line(rng, lines):
    i = rng.randrange(len(lines) + 1)
    lines.insert(i, rng.choice(["description: ", "# ", "mmap mm=0 vma=0 ino=0 "])
                 + "x" * (MAX_LINE_CHARS + rng.randrange(1, 5000)))
    return lines, i + 1


def c_nul(rng, lines):
    i = rng.randrange(len(lines))
    lines[i] = lines[i][:3] + "\x00" + lines[i][3:]
    return lines, i + 1


def c_not_utf8(rng, lines):
    i = rng.randrange(len(lines))
    data = "\n".join(lines[:i]).encode() + (b"\n" if i else b"") + lines[i][:4].encode() \
        + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9t\xe9"]) + b"\n"
    return data, i + 1


def c_no_result(rng, lines):
    i = rng.choice(_op_lines(lines))
    lines[i] = lines[i].split("=>")[0] + " =>  "
    return lines, i + 1


def c_no_ops(rng, lines):
    return rng.choice([[], [" ", "\t"], ["# nothing"], lines[:_header_end(lines)],
                       ["\ufeff"], ["\r", "\r"], ["#\x0b\x0c"]]), None


def c_too_many_ops(rng, lines):
    return lines + ["unmount", "mount"] * (MAX_OPS // 2 + 1), _header_end(lines) + MAX_OPS + 1


CORRUPTIONS = [c_bad_number, c_unknown_op, c_field, c_missing_field, c_out_of_range,
               c_geometry, c_header, c_header_after_op, c_duplicate_header, c_shifting_chars,
               c_long_line, c_nul, c_not_utf8, c_no_result, c_no_ops, c_too_many_ops]
N_TRACES = 16 * 17  # 17 cases per corruption


def _trace_cases():
    rng = random.Random(SEED)
    for n in range(N_TRACES):
        fn = CORRUPTIONS[n % len(CORRUPTIONS)]
        base = rng.choice(BASE).rstrip("\n").split("\n")
        out, line = fn(rng, list(base))
        data = out if isinstance(out, bytes) else ("\n".join(out) + "\n").encode("utf-8")
        if isinstance(out, list) and not out:
            data = b""
        cmd = rng.choice([["replay"], ["replay", "-q"], ["replay", "--check"], ["reduce"],
                          ["replay", "--target", "6.15"]])
        yield f"{n:03d}-{fn.__name__[2:]}", data, line, cmd


def _flag_cases():
    """(argv, the flag the error must name): every numeric and path flag, bad values."""
    ints = {("fuzz", "--jobs"): ["0", "-1", "99999", "+2", "\u0662", "2.0", " 2", "x"],
            ("fuzz", "--max-ops"): ["0", "-1", "10001", "+4", "\uff14", "1e3"],
            ("fuzz", "--seed"): ["-1", "+4", "\u0664", "4.5", "9" * 20],
            ("fuzz", "--time"): ["0", "-1", "nan", "inf", "1e400", "10x", "\uff11\uff10",
                                 "-5m", ""],
            ("zoo", "--budget"): ["0", "-1", "nan", "\u0661"],
            ("zoo", "--jobs"): ["0", "99999"],
            ("exhaust", "--max-ops"): ["0", "-1", "65"],
            ("exhaust", "--pages"): ["0", str(LIMITS["pages"] + 1)],
            ("exhaust", "--inodes"): ["0", str(LIMITS["inodes"] + 1), "+1"],
            ("exhaust", "--processes"): [str(LIMITS["mms"] + 1)],
            ("exhaust", "--jobs"): ["0", "99999"],
            ("diff", "--max-ops"): ["-1", "65"],
            ("bench", "--ops"): ["0", "-5"],
            ("bench", "--seq"): ["0", "20000"],
            ("bench", "--repeat"): ["0"],
            ("coverage", "--time"): ["0", "-1"],
            ("coverage", "--seed"): ["-1", "\u0663", "9" * 21],
            ("coverage", "--reachable-depth"): ["7", "-1", "\u0663"],
            ("mutate", "--sample"): ["0", "+3", "\u0663"],
            ("mutate", "--seed"): ["-5"],
            ("mutate", "--jobs"): ["99999", "0"],
            ("mutate", "--equiv-depth"): ["99999", "0"],
            ("exhaust", "--target"): ["nope"],
            ("exhaust", "--ops"): [",", " , "],
            ("bench", "--target"): ["nope"],
            ("coverage", "--target"): ["nope"],
            ("mutate", "--target"): ["nope"],
            ("zoo", "--seeds"): ["1,1"]}
    paths = {("fuzz", "--findings"): ["/proc/version", "/dev/null", "/dev/null/x", ""],
             ("fuzz", "--corpus"): ["/dev/null", "/proc/version/x"],
             ("fuzz", "--campaign"): ["/dev/null"],
             ("fuzz", "--geometry"): ["inodes=100000000", "mms=1000000 vmas=1000",
                                      "pages=33", "x=1", "pages=\uff13\uff12"],
             ("reduce", "--findings"): ["/dev/null"],
             ("reduce", "--geometry"): ["handles=1000000"],
             ("report", "--findings"): ["/nonexistent", "/dev/null"],
             ("exhaust", "--findings"): ["/dev/null"],
             # output files and folders: checked before the work, never replaced when
             # not a regular file (`-o /dev/null` as root once replaced the device)
             ("reduce", "-o"): ["/dev/null", "/proc", "", "/dev/null/x"],
             ("zoo", "--out"): ["/dev/null", "/proc/version/x", ""],
             ("mutate", "--out"): ["/dev/null", ""],
             ("corpus", "--to"): ["/dev/null", "/proc/version/x"]}
    extra = {"diff": ["--from", "6.15", "--to", "7.2"], "reduce": ["X.trace"],
             "report": ["."], "corpus": ["build"]}
    for table in (ints, paths):
        for (cmd, flag), values in table.items():
            for v in values:
                yield [cmd, *extra.get(cmd, []), flag, v], flag
    yield ["fuzz", "--engine", "nope"], "--engine"
    yield ["replay"], "FILE"
    yield ["exhaust", "--world", "wide"], "--world"
    yield ["fuzz", "--target", "nope", "--time", "1"], "--target"
    yield ["fuzz", "--scenarios", "/dev/null", "--time", "1", "--engine", "random"], \
        "--scenarios"
    yield ["fuzz", "--weights", "fault=x", "--time", "1", "--engine", "random"], "--weights"
    yield ["zoo", "--seeds", "1,+2"], "--seeds"
    for w in ("fault=\u0664", "fault=1,fault=2", "fault=+3", "fault= 3x", "fault=1_0",
              "fault=99999999999"):
        yield ["fuzz", "--weights", w, "--time", "1", "--engine", "random"], "--weights"
    yield ["diff", "--from", "nope", "--to", "7.2"], "--from"
    # the kernel commands refuse bad numbers before any guest is looked for
    for argv, flag in ((["fuzz", "--time", "nan"], "--time"), (["fuzz", "--time", "inf"],
                       "--time"), (["fuzz", "--time", "10", "--batch", "-1"], "--batch"),
                       (["fuzz", "--time", "10", "--jobs", "99999"], "--jobs"),
                       (["fuzz", "--time", "10", "--step-timeout", "0"], "--step-timeout"),
                       (["run", "--boot-timeout", "0", "X.trace"], "--boot-timeout"),
                       (["run", "--trace-timeout", "nan", "X.trace"], "--trace-timeout"),
                       (["run", "--accel", "xyz", "X.trace"], "--accel")):
        yield ["kernel", *argv], flag


STATES = {  # damaged campaign state.json files
    "null run": {"version": 1, "runs": [None]},
    "wrong types": {"version": 1, "runs": [{"id": "1", "status": 5, "start": "x",
                                            "execs": "many"}]},
    "bool id": {"version": 1, "runs": [{"id": True, "status": "done", "start": 1.0}]},
    "no status": {"version": 1, "runs": [{"id": 1, "start": 1.0}]},
    "bad status": {"version": 1, "runs": [{"id": 1, "status": "??", "start": 1.0}]},
    "bad op mix": {"version": 1, "runs": [{"id": 1, "status": "done", "start": 1.0,
                                           "op_mix": {"fault": "x"}}]},
    "bad findings": {"version": 1, "runs": [{"id": 1, "status": "done", "start": 1.0,
                                             "new_findings": [1, None]}]},
    "runs not a list": {"version": 1, "runs": {"a": 1}},
    "a list": [1, 2, 3],
    "null": None,
    "artifacts not a list": {"version": 1, "runs": [], "artifacts_done": {"a": 1}},
    "bad slice": {"version": 1, "runs": [], "atheris_slice": {"max_ops": -1}},
    "deep": {"version": 1, "runs": [{"id": 1, "status": "done", "start": 1.0,
                                     "known": [[[[]]]]}]},
}
STATE_TEXTS = {"cut short": '{"runs": [{"id": 1, "sta', "empty": "", "binary": "\x00\xff",
               "not json": "runs: []"}
SERIES = ['{"run": 1, "t": "x"}', '{"run": null, "t": 1}', '[1, 2]', '{"run": 1, "t": 1, '
          '"execs": "9"}', '{"run": 1, "t": 1e999}', "\x00"]


def _campaign_cases():
    for name, obj in STATES.items():
        yield name, json.dumps(obj), None
    for name, text in STATE_TEXTS.items():
        yield name, text, None
    for i, line in enumerate(SERIES):
        yield f"series {i}", json.dumps({"version": 1, "runs": [
            {"id": 1, "status": "done", "start": 1.0}]}), line


def _run(argv: list[str], capsys) -> tuple[int, str, float]:
    t0 = time.monotonic()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.err + cap.out, time.monotonic() - t0


def test_generated_bad_inputs(tmp_path, capsys, monkeypatch):
    """>= 300 generated malformed traces, flags and campaign folders: exit 2 naming the
    place (campaigns: named and carried on), no traceback, each within CASE_SECONDS."""
    monkeypatch.setenv("DAXFUZZ_HOME", ROOT)
    monkeypatch.delenv("DAXFUZZ_TARGET", raising=False)
    right, wrong = 0, []
    kinds = {"trace": [0, 0], "flag": [0, 0], "campaign": [0, 0]}

    def record(kind: str, ok: bool, what: str) -> None:
        nonlocal right
        kinds[kind][1] += 1
        if ok:
            right += 1
            kinds[kind][0] += 1
        else:
            wrong.append(what)

    for name, data, line, cmd in _trace_cases():
        path = tmp_path / f"{name}.trace"
        path.write_bytes(data)
        rc, err, secs = _run([*cmd, str(path)], capsys)
        place = f"{path}:{line}: " if line is not None else f"{path}: "
        ok = rc == 2 and place in err and "Traceback" not in err and secs < CASE_SECONDS \
            and len(err) < 2000
        record("trace", ok, f"{name} {cmd}: rc={rc} want {place!r} in {err[:300]!r}")
    for argv, flag in _flag_cases():
        argv = [a.replace("X.trace", str(tmp_path / "x.trace")) for a in argv]
        rc, err, secs = _run(argv, capsys)
        ok = rc == 2 and flag in err and "Traceback" not in err and secs < CASE_SECONDS
        record("flag", ok, f"{argv}: rc={rc} want {flag!r} in {err[:300]!r}")
    for name, state, series in _campaign_cases():
        camp = tmp_path / "camp" / name.replace(" ", "-") / "campaign"
        camp.mkdir(parents=True)
        (camp / "state.json").write_text(state)
        bad = camp / "state.json"
        if series is not None:
            (camp / "series.jsonl").write_text('{"run": 1, "t": 1.0}\n' + series + "\n")
            bad = camp / "series.jsonl"
        rc, err, secs = _run(["report", str(camp)], capsys)
        if series is None:  # what fuzz does with it: the file is named, bad parts set aside
            said: list[str] = []
            try:
                C.Campaign(str(camp), report=said.append)
            except Exception as e:  # noqa: BLE001 - counted as wrong, with its name
                said.append(f"Traceback {type(e).__name__}: {e}")
            err += "\n".join(said)
        ok = rc == 0 and str(bad) in err and "Traceback" not in err and secs < 3 * CASE_SECONDS
        record("campaign", ok, f"report {name}: rc={rc} want {bad} in {err[:300]!r}")
    total = sum(n for _, n in kinds.values())
    print(f"\ngenerated bad inputs: {right}/{total} right exit and place; "
          + ", ".join(f"{k} {a}/{n}" for k, (a, n) in kinds.items()))
    assert total >= 300
    assert not wrong, f"{len(wrong)} of {total} wrong:\n" + "\n".join(wrong[:20])


def test_damaged_campaign_state_is_quarantined_by_fuzz(tmp_path, capsys):
    """fuzz carries on past a damaged state.json: bad runs quarantined, good ones kept."""
    f = tmp_path / "f"
    (f / "campaign").mkdir(parents=True)
    good = {"id": 3, "status": "done", "start": 1.0, "execs": 5}
    (f / "campaign" / "state.json").write_text(json.dumps(
        {"version": 1, "runs": [None, {"id": "x", "status": 5, "start": "y"}, good]}))
    rc, err, _ = _run(["fuzz", "--engine", "random", "--target", "7.2", "--time", "0.3",
                       "--seed", "1", "-q", "--findings", str(f), "--no-report",
                       "--scenarios", "none"], capsys)
    assert rc in (0, 1) and "Traceback" not in err  # 1: it found a divergence
    assert "run #1 of the run list is unusable" in err and "run #2" in err
    st = json.loads((f / "campaign" / "state.json").read_text())
    assert st["runs"][0] == good and st["runs"][1]["status"] == "done"
    assert st["quarantined_runs"] == [None, {"id": "x", "status": 5, "start": "y"}]


# ---------------------------------------------------------------- subprocess cases ----
MAX_GEOMETRY = " ".join(f"{k}={v}" for k, v in LIMITS.items())


def _worst_trace() -> str:
    """The largest world allowed, every process and slot mapping a whole file, a PMD
    fault in every PMD of every mapping, every GUP handle pinned."""
    out = [f"geometry: {MAX_GEOMETRY}"]
    mms, vmas, fp = LIMITS["mms"], LIMITS["vmas"], LIMITS["max_file_pages"]
    pmd = 1 << LIMITS["pmd_order"]
    for mm in range(mms):
        for v in range(vmas):
            out.append(f"mmap mm={mm} vma={v} ino={(mm * vmas + v) % LIMITS['inodes']} "
                       f"pages={fp}")
    for mm in range(mms):
        for v in range(vmas):
            out += [f"fault mm={mm} vma={v} pgoff={p} write=1" for p in range(0, fp, pmd)]
    out += [f"pin mm={h % mms} vma={h // mms % vmas} pgoff={h} h={h}"
            for h in range(LIMITS["handles"])]
    return "\n".join(out) + "\n"


def _limited(argv: list[str], timeout: float) -> tuple[int, str, int, float]:
    """Run `daxfuzz argv` under RLIMIT_AS; (rc, stderr, peak RSS in KiB, seconds)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (RSS_LIMIT, RSS_LIMIT))

    env = dict(os.environ, PYTHONPATH=ROOT, DAXFUZZ_HOME=ROOT)
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen([sys.executable, "-m", "daxfuzz", *argv], env=env,
                             stdout=subprocess.DEVNULL, stderr=errf, preexec_fn=limit)
        while True:  # wait4: this child's own peak RSS (its reaped workers' included)
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                os.wait4(p.pid, 0)
                raise AssertionError(f"daxfuzz {argv} hung (> {timeout} s)")
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
    return p.returncode, err, ru.ru_maxrss, time.monotonic() - t0


def test_hang_and_memory_cases_are_refused_in_bounds(tmp_path):
    fifo = tmp_path / "fifo.trace"
    os.mkfifo(fifo)
    rnd = tmp_path / "random.trace"
    rnd.symlink_to("/dev/urandom")
    zero = tmp_path / "zero.trace"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.trace"
    big.write_text("mmap mm=0 vma=0 ino=" + "9" * (5 << 20) + "\n")
    huge_geo = tmp_path / "geo.trace"
    huge_geo.write_text("geometry: inodes=100000000\nmmap mm=0 vma=0 ino=0\n")
    mms = tmp_path / "mms.trace"
    mms.write_text("geometry: mms=1000000 vmas=1000\nmmap mm=0 vma=0 ino=0\n")
    for path, why in ((fifo, "a FIFO"), (rnd, "a character device"),
                      (zero, "a character device"), (tmp_path, "a directory"),
                      (big, f"{MAX_FILE_BYTES}-byte limit"), (huge_geo, "the limit is 64"),
                      (mms, "the limit is 16")):
        rc, err, rss, secs = _limited(["replay", str(path)], timeout=20)
        assert rc == 2 and str(path) in err and why in err, (path, err)
        assert "Traceback" not in err and len(err) < 2000 and secs < 20


def test_worst_allowed_geometry_stays_in_its_bounds(tmp_path):
    """The largest geometry every limit allows, at its busiest: peak RSS bounded."""
    t = tmp_path / "worst.trace"
    t.write_text(_worst_trace())
    rc, err, rss, secs = _limited(["replay", "-q", str(t)], timeout=120)
    print(f"\nworst allowed geometry ({MAX_GEOMETRY}), "
          f"{len(t.read_text().splitlines()) - 1} ops: peak RSS {rss / 1024:.0f} MiB, "
          f"{secs:.1f} s")
    assert rc == 0, err
    assert rss < RSS_BOUND_KB


@pytest.mark.parametrize("engine", ["random", "hypothesis"])
def test_worst_allowed_geometry_fuzzes_in_bounds(tmp_path, engine):
    rc, err, rss, secs = _limited(
        ["fuzz", "--engine", engine, "--target", "7.2", "--geometry", MAX_GEOMETRY,
         "--time", "3", "--seed", "1", "-q", "--no-report", "--scenarios", "none",
         "--findings", str(tmp_path / "f"), "--corpus", str(tmp_path / "c")], timeout=240)
    print(f"\nfuzz {engine} at the worst allowed geometry: peak RSS {rss / 1024:.0f} MiB, "
          f"{secs:.1f} s")
    assert rc in (0, 1), err
    assert rss < RSS_BOUND_KB


def test_kernel_repro_refuses_non_regular_files(tmp_path):
    # `kernel repro` reads its trace through the same bounded reader as replay
    import os

    from daxfuzz.cli import main

    fifo = tmp_path / "t.trace"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero", str(tmp_path)):
        assert main(["kernel", "repro", path, "-o", str(tmp_path / "x.c")]) == 2


def test_outputs_that_are_not_regular_files_are_refused(tmp_path, capsys):
    from daxfuzz.errors import OutputError
    from daxfuzz.textio import write_bytes_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dev = tmp_path / "null"
    dev.symlink_to("/dev/null")
    for path, kind in ((fifo, "a FIFO"), (dev, "a character device"),
                       (tmp_path, "a directory")):
        with pytest.raises(OutputError, match=kind) as e:
            write_bytes_atomic(path, b"x")
        assert isinstance(e.value, OSError) and str(path) in str(e.value)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert dev.is_symlink() and not os.listdir(tmp_path)[2:]  # no temp file left
    # through a symlink to a regular file: the file is replaced, the link stays a link
    real, link = tmp_path / "real", tmp_path / "link"
    real.write_text("old")
    link.symlink_to(real)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and real.read_text() == "new"
    # reduce: the output may not replace its own input (its other lines would go)
    src = tmp_path / "t.trace"
    src.write_text(open(os.path.join(ROOT, "corpus", "zoo", "zoo-fault-forgot-put.trace"),
                        encoding="utf-8").read())
    before = src.read_text()
    rc, err, _ = _run(["reduce", str(src), "-o", str(src)], capsys)
    assert rc == 2 and "replace its input" in err and src.read_text() == before


def test_reduce_emits_a_test_for_any_file_name(tmp_path, capsys):
    src = tmp_path / 'we\\ird"""name.trace'
    src.write_text(open(os.path.join(ROOT, "corpus", "zoo", "zoo-fault-forgot-put.trace"),
                        encoding="utf-8").read())
    out = tmp_path / "r.trace"
    rc, err, _ = _run(["reduce", str(src), "-o", str(out), "--emit-test"], capsys)
    assert rc == 1 and "Traceback" not in err, err
    test = tmp_path / "test_r.py"
    ns: dict = {}
    exec(compile(test.read_text(), str(test), "exec"), ns)  # noqa: S102 -- our own output
    assert 'we\\ird"""name.trace' in ns["TRACE"]


def test_campaign_files_that_would_block_or_flood_are_named_not_read(tmp_path):
    """FIFOs and devices where a campaign or report folder keeps its JSON: refused by
    name within the timeout (no blocking open, no read to exhaustion)."""
    f = tmp_path / "f"
    (f / "campaign").mkdir(parents=True)
    os.mkfifo(f / "campaign" / "series.jsonl")
    rc, err, _rss, _s = _limited(["fuzz", "--engine", "random", "--time", "1", "-q",
                                  "--scenarios", "none", "--findings", str(f),
                                  "--corpus", str(tmp_path / "c")], timeout=60)
    assert rc in (0, 1) and "series.jsonl: not a regular file; moved to" in err, err
    r = tmp_path / "r"
    (r / "campaign").mkdir(parents=True)
    (r / "campaign" / "state.json").symlink_to("/dev/zero")
    rc, err, _rss, _s = _limited(["report", str(r)], timeout=60)
    assert rc == 0 and "state.json" in err and "a character device" in err, err
    k = tmp_path / "k"
    (k / "kernel-finding" / "f1").mkdir(parents=True)
    os.mkfifo(k / "summary.json")
    (k / "kernel-finding" / "f1" / "finding.json").write_text(
        '{"name": 1, "cls": 2, "kind": "k", "ops": 1, "trace": "t"}')
    rc, err, _rss, _s = _limited(["report", str(k)], timeout=60)
    assert rc == 0 and "summary.json" in err and "a FIFO" in err, err
    assert "f1: no readable finding.json" in err and "Traceback" not in err
    (k / "kernel-finding" / "f1" / "finding.json").write_text('{"name": "x"}')  # fields missing
    rc, err, _rss, _s = _limited(["report", str(k)], timeout=60)
    assert rc == 0 and "f1: no readable finding.json" in err and "Traceback" not in err, err
    os.unlink(k / "summary.json")
    (k / "summary.json").write_text('{"seconds": "x", "reductions": [1]}')
    rc, err, _rss, _s = _limited(["report", str(k)], timeout=60)
    assert rc == 0 and "'seconds' is not a number" in err and "Traceback" not in err, err


def test_a_bad_step_limit_is_named_not_a_traceback(tmp_path):
    from daxfuzz.core.watchdog import DEFAULT_LIMIT, _limit

    assert _limit(None) == _limit("") == DEFAULT_LIMIT and _limit("0.5") == 0.5
    for bad in ("abc", "-1", "0", "nan", "inf", "\uff11"):
        assert "DAXFUZZ_STEP_LIMIT" in str(_limit(bad)), bad
    env = dict(os.environ, PYTHONPATH=ROOT, DAXFUZZ_HOME=ROOT, DAXFUZZ_STEP_LIMIT="abc")
    p = subprocess.run([sys.executable, "-m", "daxfuzz", "replay", "-q", os.path.join(
        ROOT, "corpus", "zoo", "zoo-fault-forgot-put.trace")], env=env, capture_output=True,
        text=True, timeout=60)
    assert p.returncode == 2 and "DAXFUZZ_STEP_LIMIT='abc'" in p.stderr
    assert "Traceback" not in p.stderr


def test_traces_naming_unknown_targets_are_named_and_skipped(tmp_path, capsys):
    f, scn = tmp_path / "f", tmp_path / "scn"
    (f / "queue").mkdir(parents=True)
    scn.mkdir()
    (f / "queue" / "random-bbbb.trace").write_text("target: nope\nunmount\n")
    (scn / "bad.trace").write_text("mmap mm=0 vma=0 ino=0 bogus=1\n")
    (scn / "nope.trace").write_text("target: nope\nunmount\n")
    rc, err, _ = _run(["fuzz", "--engine", "random", "--time", "0.5", "--seed", "1", "-q",
                       "--no-report", "--findings", str(f), "--corpus", str(tmp_path / "c"),
                       "--scenarios", str(scn)], capsys)
    assert rc in (0, 1) and "Traceback" not in err, err
    assert f"{f}/queue/random-bbbb.trace:1: unknown target 'nope'" in err
    assert "queued finding skipped, left in place" in err
    assert (f / "queue" / "random-bbbb.trace").exists()
    assert f"{scn}/bad.trace:1:" in err and f"{scn}/nope.trace:1: unknown target" in err
    assert "its plain expect line never applies" in err


def test_a_series_past_its_limit_keeps_its_newest_samples(tmp_path, monkeypatch):
    path = tmp_path / "series.jsonl"
    lines = [json.dumps({"run": 1, "t": float(i), "execs": i}) for i in range(200)]
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(C, "MAX_SERIES_BYTES", 1000)
    said: list[str] = []
    recs = C.read_series(str(path), said.append)
    assert recs and recs[-1]["execs"] == 199 and len(recs) < 200
    assert [r["execs"] for r in recs] == list(range(200 - len(recs), 200))  # no partial
    assert len(said) == 1 and "bytes of older samples left out" in said[0]


def test_mutate_list_needs_no_output_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mutate-results").write_text("a file in the way")
    rc, err, _ = _run(["mutate", "--list", "--sample", "1"], capsys)
    assert rc == 0, err
    rc, err, _ = _run(["mutate", "--sample", "1", "--budget", "1"], capsys)
    assert rc == 2 and "--out" in err and "mutate-results" in err


def test_diff_of_a_folder_without_traces_is_bad_input(tmp_path, capsys):
    rc, err, _ = _run(["diff", "--from", "6.15", "--to", "7.2", "--max-ops", "0",
                       str(tmp_path)], capsys)
    assert rc == 2 and f"{tmp_path}: no .trace file" in err


def test_a_fifo_in_the_example_database_is_named_not_waited_on(tmp_path):
    """A FIFO among the Hypothesis examples hung fuzz at its start (open() waits for a
    writer); the scan and the database's own reads now refuse it by name."""
    import signal

    from daxfuzz.campaign.hypothesis_db import SafeDirectoryDatabase, check_directory

    db = tmp_path / "db"
    (db / "0123456789abcdef").mkdir(parents=True)
    os.mkfifo(db / "0123456789abcdef" / "fifo000000000000")

    def alarm(*_a):
        raise AssertionError("a FIFO in the database was waited on")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    try:
        (line,) = check_directory(str(db))
        said: list[str] = []
        sdb = SafeDirectoryDatabase(str(db), said.append)
        sdb._key_path = lambda key: db / "0123456789abcdef"  # the entry's folder
        assert list(sdb.fetch(b"k")) == []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "fifo000000000000: unreadable (a FIFO, not a regular file" in line
    assert len(said) == 1 and "a FIFO" in said[0]


def test_diff_does_not_follow_folder_links(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.trace").write_text(open(os.path.join(
        ROOT, "corpus", "zoo", "zoo-fault-forgot-put.trace"), encoding="utf-8").read())
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink("..", tmp_path / "sub" / "up2")  # with two, recursive glob never ended
    rc, err, secs = _run(["diff", "--from", "6.15", "--to", "7.2", "--max-ops", "0",
                          str(tmp_path)], capsys)
    assert rc == 0 and "replayed 1 traces" in err and "over 1 sequences" in err


@pytest.mark.parametrize("var, value", [("DAXFUZZ_HYPOTHESIS_GENERATION", "bogus"),
                                        ("HYPOTHESIS_PROFILE", "bogus")])
def test_hypothesis_variables_are_checked_before_the_workers(tmp_path, capsys, monkeypatch,
                                                             var, value):
    monkeypatch.setenv(var, value)
    rc, err, _ = _run(["fuzz", "--engine", "hypothesis", "--time", "1", "-q", "--db", "none",
                       "--no-report", "--scenarios", "none", "--findings",
                       str(tmp_path / "f")], capsys)
    assert rc == 2 and f"${var}={value!r}" in err


def test_a_worker_that_dies_makes_the_run_an_internal_error(tmp_path, capsys, monkeypatch):
    """A dead worker left a traceback, fuzzed nothing, and the run exited 0."""
    import daxfuzz.campaign.fuzz as F

    def dies(q, job, parent=None):
        raise RuntimeError("a worker's bug")

    monkeypatch.setattr(F, "random_worker", dies)
    rc, err, _ = _run(["fuzz", "--engine", "random", "--time", "1", "-q", "--no-report",
                       "--scenarios", "none", "--findings", str(tmp_path / "f")], capsys)
    assert rc == 3 and "worker 0 (seed" in err and "exited with 1" in err


def test_a_run_that_fuzzed_nothing_says_so(tmp_path, capsys):
    rc, err, _ = _run(["fuzz", "--engine", "atheris", "--time", "0.3", "-q", "--no-report",
                       "--scenarios", "none", "--findings", str(tmp_path / "f"), "--corpus",
                       str(tmp_path / "c")], capsys)
    assert rc == 0 and "warning: no input ran in 0.3 s" in err, err


def test_one_campaign_at_a_time_uses_a_findings_folder(tmp_path, capsys):
    """A second run on the same folder drained the first's queue under it (the first
    died on a finding gone from its queue) and overwrote its run records."""
    import fcntl

    f = tmp_path / "f"
    f.mkdir()
    fd = os.open(f / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running campaign holds it
    os.pwrite(fd, b"4242\n", 0)
    try:
        rc, err, _ = _run(["fuzz", "--engine", "random", "--time", "1", "-q", "--no-report",
                           "--scenarios", "none", "--findings", str(f)], capsys)
    finally:
        os.close(fd)
    assert rc == 2 and f"{f}: in use by another daxfuzz fuzz run (pid 4242)" in err
    rc, err, _ = _run(["fuzz", "--engine", "random", "--time", "0.5", "-q", "--no-report",
                       "--scenarios", "none", "--findings", str(f)], capsys)
    assert rc in (0, 1), err  # released: the next run goes
    assert oct(os.stat(f / "campaign" / "state.json").st_mode & 0o777) == oct(
        0o666 & ~_umask())  # written as open() would, not mkstemp's 0600


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_worker_that_cannot_write_says_which_path(tmp_path, capfd, monkeypatch):
    import daxfuzz.campaign.fuzz as F
    from daxfuzz.errors import OutputError

    def full(q, job, parent=None):
        raise OutputError("cannot write: No space left on device", path="/x/queue/r.trace")

    monkeypatch.setattr(F, "random_worker", full)
    rc, err, _ = _run(["fuzz", "--engine", "random", "--time", "1", "-q", "--no-report",
                       "--scenarios", "none", "--findings", str(tmp_path / "f")], capfd)
    assert rc == 2 and "/x/queue/r.trace: cannot write: No space left" in err
    assert "Traceback" not in err and "stopped on the error above" in err


def test_a_series_that_cannot_be_appended_names_its_file(tmp_path):
    from daxfuzz.errors import OutputError

    camp = C.Campaign(str(tmp_path / "camp"))
    camp.start_run(engine="random")
    camp._series = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 - ENOSPC
    with pytest.raises(OutputError, match="series.jsonl: cannot write"):
        camp.sample(force=True, execs=1)
