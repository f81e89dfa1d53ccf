"""SIGKILL loop outside pytest: `python tools/kill_loop.py [KILLS] [SEED]`.

Runs tests/test_crash_safety.kill_loop in a temporary folder (random, hypothesis and
atheris campaigns on buggy targets, killed at random moments and during reductions)
and prints its counts: kills, kills during a reduction, findings kept as trace + test.
"""

from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.test_crash_safety import kill_loop  # noqa: E402


def main() -> int:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    seed = sys.argv[2] if len(sys.argv) > 2 else "7"
    with tempfile.TemporaryDirectory(prefix="daxfuzz-kill-") as tmp:
        stats = kill_loop(tmp, kills, seed)
    print(f"kills: {stats['kills']} ({stats['during_reduction']} during a reduction; "
          + ", ".join(f"{e} {n}" for e, n in stats["by_engine"].items()) + ")")
    print(f"findings reported before a kill: {stats['reported_before_kill']}, all on disk")
    print(f"findings kept as a reduced trace and a test: {stats['findings']}; none lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
