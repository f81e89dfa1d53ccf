"""The reference oracle: page-granular, set-based facts about the world, and what
each operation must do to them.  It knows nothing of any target's counters; the
runner derives the counters a target must show from these facts."""

from oracle.model import Oracle

__all__ = ["Oracle"]
