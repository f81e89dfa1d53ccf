"""Hypothesis settings profiles for the test suite, selected by HYPOTHESIS_PROFILE.

Importing the state-machine module registers dev (default), ci (derandomized,
bounded, no database writes) and campaign (long, with an example database) and
loads the one named in the environment.  Also registers the `smoke` marker.
"""

from __future__ import annotations

import fuzz.hypothesis_machine  # noqa: F401 - registers and loads the profiles

__all__ = ["pytest_configure"]


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "smoke: bounded engine runs on the broken and real targets (pytest -m smoke)")
