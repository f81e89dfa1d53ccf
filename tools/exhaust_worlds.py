"""`exhaust` on each mutant of a mutation table, in one world, with a time cap: which
world kills more at equal cost (README "Patch review").

    python tools/exhaust_worlds.py small 60 docs/bench/mutation-60s-seed2-all-engines.json OUT.json
    python tools/exhaust_worlds.py deep 60 docs/bench/mutation-60s-seed2-all-engines.json OUT.json

One job per run (run the two worlds side by side on two cores).  Each mutant stops at
its first divergence its base (7.2) does not show; the row keeps the depth completed.
"""

from __future__ import annotations

import json
import sys
import time

from daxfuzz.campaign.folder import write_json_atomic
from daxfuzz.core import watchdog
from daxfuzz.explore.exhaust import WORLDS, exhaust


def main(world: str, cap: float, table: str, out: str) -> None:
    watchdog.enable()
    g = WORLDS[world]
    res = {}
    for row in json.load(open(table))["rows"]:
        m = row["mutant"]
        t0 = time.perf_counter()
        r = exhaust(m, g, 8, seconds=cap)
        ce = r.counterexamples[0] if r.counterexamples else None
        res[m] = {"killed": bool(ce), "seconds": round(time.perf_counter() - t0, 2),
                  "depth": r.depth, "complete": r.complete,
                  "len": len(ce[0]) if ce else None,
                  "sig": ce[1].signature() if ce else None, "status": row["status"]}
        print(m, res[m], flush=True)
        write_json_atomic(out, res)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4])
