"""Shared pytest configuration: Hypothesis profiles and markers."""

from tests.hypothesis_profiles import *  # noqa: F403
