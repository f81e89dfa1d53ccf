"""The campaign report: written at the end of `daxfuzz fuzz` and by `daxfuzz report DIR`,
with plots, op mix, per-target totals and explained findings; renders in Chromium."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import pytest

from daxfuzz import cmd_report
from daxfuzz.cli import main as cli
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
