"""The campaign report: written at the end of `daxfuzz fuzz` and by `daxfuzz report DIR`,
with plots, op mix, per-target totals and explained findings; renders in Chromium."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import pytest

from daxfuzz.cli import main as cli
from daxfuzz.cli import report as cmd_report
from daxfuzz.errors import InputError

BROKEN = "test-broken-unmap-ref"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    f = str(d / "f")
    assert cli(["fuzz", "--engine", "random", "--target", BROKEN, "--time", "2.5", "--seed", "1",
                "-q", "--findings", f]) == 1
    assert cli(["fuzz", "--engine", "random", "--target", "6.15", "--time", "1.5", "--seed", "1",
                "-q", "--findings", f, "--no-report"]) in (0, 1)
    # the report of both runs, whichever test (and xdist worker) uses the fixture first
    assert cli(["report", f]) == 0
    return os.path.join(f, "campaign")


def test_fuzz_writes_report_and_report_command_redraws_it(campaign, capsys):
    assert os.path.exists(os.path.join(campaign, "report.html"))
    os.remove(os.path.join(campaign, "report.html"))
    args = argparse.Namespace(dir=os.path.dirname(campaign), findings=[])
    assert cmd_report.run(args) == 0  # the findings folder is accepted too
    html_path, md_path = capsys.readouterr().out.split()
    assert html_path == os.path.join(campaign, "report.html")
    with open(html_path) as f:
        html = f.read()
    with open(md_path) as f:
        md = f.read()
    for section in ("Runs", "Per target", "Over time", "Op mix", "Findings"):
        assert f"<h2>{section}</h2>" in html and f"## {section}" in md
    assert html.count("data:image/png;base64,") == 4  # execs, coverage, findings, op mix
    for png in ("execs", "coverage", "findings", "op_mix"):
        assert os.path.getsize(os.path.join(campaign, "plots", f"{png}.png")) > 5000
    assert "munmap:refcount on test-broken-unmap-ref (3 ops)" in md
    assert "last written by: " in md  # explained: the kernel function behind the field
    assert "| 6.15 | 1 | random |" in md and f"| {BROKEN} | 1 | random |" in md
    assert "| fault |" in md  # op mix table


def test_report_of_a_folder_without_campaign_is_exit_2(tmp_path):
    with pytest.raises(InputError, match="not a campaign folder"):
        cmd_report.campaign_dir(str(tmp_path))


def test_report_renders_in_headless_chromium(campaign, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (Debian package chromium): cannot render the "
                    "report headless")
    shot = tmp_path / "report.png"
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,1600",
                        f"--user-data-dir={tmp_path / 'profile'}",
                        "file://" + os.path.abspath(os.path.join(campaign, "report.html"))],
                       capture_output=True, text=True, timeout=60)
    assert shot.exists(), p.stderr[-2000:]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))
    assert img.shape[0] == 1600 and img.shape[1] == 1200
    # not a blank page: the tables and plots make plenty of non-white pixels
    dark = (img[:, :, :3].mean(axis=2) < 0.6).mean()
    assert dark > 0.01, dark
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"--user-data-dir={tmp_path / 'profile2'}",
                          "file://" + os.path.abspath(os.path.join(campaign, "report.html"))],
                         capture_output=True, text=True, timeout=60).stdout
    assert "daxfuzz campaign report" in dom and dom.count("<img") == 4


def _run(i, **kw):
    r = {"id": i, "status": "done", "start": 1000.0 + i, "engine": "random", "target": BROKEN,
         "execs": 100, "steps": 1000, "seconds": 2.0, "new_findings": [], "known": []}
    r.update(kw)
    return r


def test_killed_run_totals_come_from_its_last_series_sample():
    from daxfuzz.campaign.report import recover_killed

    killed = {"id": 2, "status": "killed", "start": 1000.0, "engine": "random",
              "target": BROKEN}
    series = [{"run": 2, "t": 1001.0, "elapsed": 1.0, "execs": 300, "steps": 9000,
               "findings": 5, "cov": 40},
              {"run": 2, "t": 1003.0, "elapsed": 3.0, "execs": 907, "steps": 20000,
               "findings": 12, "cov": 60},
              {"run": 1, "t": 1004.0, "elapsed": 9.0, "execs": 5, "findings": 1}]
    r1, r2 = recover_killed([_run(1), killed], series)
    assert r1 == _run(1)  # a finished run keeps its own totals
    assert (r2["execs"], r2["steps"], r2["seconds"], r2["new_count"], r2["cov"]) == (
        907, 20000, 3.0, 12, 60) and r2["recovered"]


def test_legend_groups_runs_in_numeric_order():
    from daxfuzz.campaign.report import run_groups

    runs = [_run(i, target="7.2" if i % 3 else BROKEN) for i in (10, 2, 1, 11, 3, 4, 5, 6)]
    runs.append(_run(12, engine="atheris"))
    assert run_groups(runs) == [
        ("random on 7.2: #1-#2, #4-#5, #10-#11", [1, 2, 4, 5, 10, 11]),
        (f"random on {BROKEN}: #3, #6", [3, 6]),
        (f"atheris on {BROKEN}: #12", [12])]


def _finding(sig, path, **kw):
    f = {"signature": sig, "target": BROKEN, "path": path, "ops": 3, "mtime": 1003.0,
         "test": path.replace("x__", "test_x_").replace(".trace", ".py"), "unreduced": False,
         "no_c": False}
    f.update(kw)
    return f


def test_summary_says_what_ran_what_was_found_and_what_next():
    from daxfuzz.campaign.report import commands, recover_killed, summary, summary_lines

    runs = recover_killed([
        _run(1, new_findings=["munmap:refcount"], engine="atheris", steps=0),
        _run(2, status="killed", execs=0, start=1002.0, known=["fault:refcount"]),
    ], [{"run": 2, "t": 1005.0, "elapsed": 3.0, "execs": 907, "findings": 1}])
    found = [_finding("munmap:refcount", "/f/x__munmap.trace"),
             _finding("punch:refcount", "/f/x__punch.trace", unreduced=True),
             _finding("fault:refcount", "/f/x__fault.trace", mtime=10.0)]
    s = summary(runs, found, queued=1)
    assert {k: s[k] for k in ("runs", "killed", "engines", "seconds", "execs", "new", "known",
                              "unreduced", "queued")} == {
        "runs": 2, "killed": 1, "engines": ["atheris", "random"], "seconds": 5.0,
        "execs": 1007, "new": 2, "known": 1, "unreduced": 1, "queued": 1}
    text = "\n".join(summary_lines(s))
    assert "1,007 execs" in text and "2 new finding(s), 1 from earlier runs" in text
    assert "`daxfuzz replay --explain /f/x__munmap.trace`" in text
    assert "`daxfuzz reduce FILE`" in text and "1 run(s) were killed" in text
    assert commands(found[1]) == [
        ("reduce", "daxfuzz reduce /f/x__punch.trace"),
        ("replay", "daxfuzz replay --explain /f/x__punch.trace"),
        ("test", "pytest /f/test_x_punch.py"),
        ("C reproducer", "daxfuzz kernel repro /f/x__punch.trace -o repro.c")]
    # a path a shell would read otherwise is quoted: pasting the command runs nothing else
    odd = dict(found[1], path="/f/x$(touch y) z.trace", test="/f/t;rm.py")
    assert dict(commands(odd))["replay"] == "daxfuzz replay --explain '/f/x$(touch y) z.trace'"
    assert dict(commands(odd))["test"] == "pytest '/f/t;rm.py'"


def test_atheris_run_without_an_ops_count_shows_no_zero():
    from daxfuzz.campaign.report import RUN_HEAD, _run_rows

    rows = _run_rows([_run(1, engine="atheris", steps=0), _run(2, engine="atheris",
                                                               steps=4500)])
    assert [r[RUN_HEAD.index("ops")] for r in rows] == ["-", "4,500"]


def test_report_top_has_the_summary_and_finding_commands(campaign):
    with open(os.path.join(campaign, "report.md")) as f:
        md = f.read()
    head = md.split("## Runs")[0]
    assert "**Ran:** 2 run(s) (0 killed) of random on 6.15, " + BROKEN in head
    assert "**Next:**" in head and "daxfuzz replay --explain" in head
    assert "- C reproducer: `daxfuzz kernel repro " in md and "- test: `pytest " in md
