"""`daxfuzz report`: the campaign report (HTML page and Markdown summary) of a campaign folder.

    daxfuzz report findings/campaign        # or the findings folder holding campaign/
    daxfuzz report kf                       # a `daxfuzz kernel fuzz --out kf` folder

Writes DIR/report.html (self-contained: plots embedded), DIR/report.md and
DIR/plots/*.png from the campaign's runs, time series and findings.  `daxfuzz fuzz`
does the same at the end of every run.  Real-kernel finding folders (kernel-finding/,
model-gap/ of `daxfuzz kernel fuzz` or `kernel run --out`) next to the findings are
listed with links; a `kernel fuzz` folder gets a report of its own (figures,
reductions, one linked row per finding).
"""

from __future__ import annotations

import argparse
import os

from daxfuzz.cli import in_dir
from daxfuzz.errors import EXIT_AGREE, InputError


def campaign_dir(path: str) -> str:
    """`path` itself if it is a campaign folder, else its campaign/ subfolder."""
    for d in (path, os.path.join(path, "campaign")):
        if os.path.exists(os.path.join(d, "state.json")) or os.path.exists(
                os.path.join(d, "series.jsonl")):
            return d
    raise InputError("not a campaign folder (no state.json or series.jsonl here or in "
                     "campaign/); run `daxfuzz fuzz` first, or name FINDINGS/campaign",
                     path=path)


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.report import is_kernel_campaign, write_kernel_report, write_report

    if not os.path.isdir(args.dir):
        raise InputError("not a folder (a campaign or findings folder)" if os.path.exists(
            args.dir) else "no such folder", path=args.dir)
    if is_kernel_campaign(args.dir) and not os.path.exists(os.path.join(
            args.dir, "state.json")) and not os.path.exists(os.path.join(
            args.dir, "campaign", "state.json")):
        html, md = write_kernel_report(args.dir)
        print(f"{html}\n{md}")
        return EXIT_AGREE
    d = campaign_dir(args.dir)
    html, md = write_report(d, args.findings or None)
    print(f"{html}\n{md}")
    return EXIT_AGREE


def register(subparsers) -> None:
    """Add `daxfuzz report`."""
    p = subparsers.add_parser("report", help="HTML + Markdown report of a fuzz campaign",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="campaign folder (default of `daxfuzz fuzz`: "
                                              "FINDINGS/campaign), or the findings folder")
    p.add_argument("--findings", action="append", default=[], type=in_dir,
                   help="findings folder(s) to report (default: those the runs used)")
    p.set_defaults(func=run)
