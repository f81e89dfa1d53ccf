"""Raw struct pages on the real kernel (marker `kernel`; skipped unless `daxfuzz kernel
setup` ran): one corpus trace's pages are compared with the 7.2 port's, and agree."""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main
from daxfuzz.guest.apt import SetupError
from daxfuzz.guest.build import load_manifest
from daxfuzz.guest.pages import RawCheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.kernel


def test_raw_pages_of_a_reflinked_pmd_folio_agree(capsys):
    try:
        m = load_manifest()
    except SetupError as e:
        pytest.skip(f"guest not set up: {e}")
    assert not RawCheck(m).why, RawCheck(m).why
    rc = main(["kernel", "run", "--table",
               os.path.join(ROOT, "corpus/reflink-pmd-folio-share.trace")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "raw agree (4 pages)" in out  # the PMD folio built by the first fault
    row = next(x for x in out.splitlines() if x.startswith("| reflink-pmd-folio-share"))
    agree, compared = (int(x) for x in row.split("|")[8].split("/"))
    assert compared >= 8 and agree == compared, row
