"""Why `exhaust` has no partial-order reduction: `python tools/commute_sample.py
[TARGET] [STATES] [SEED]` (defaults 7.2, 400, 7).

Samples STATES states of the default small world (random walks of 2-4 ops through the
exhaustive alphabet), ten pairs of ops (a, b) tried from each, and prints:

- how many pairs commute on the target: p.a.b and p.b.a reach the same state key and
  each op shows the same result, warnings and agreement in both orders;
- how many pairs the footprint relation a reduction would use calls independent
  (disjoint inodes -- an op on a VMA touches its file's --, VMA slots and handles;
  mount, unmount, fork and memory_failure touch everything), and how many of those do
  not commute: each one is a sequence a reduction by that relation would skip though
  its result differs.

A reduction needs a relation it can trust before running the ops; the one that
commuting pairs suggest is the dynamic one, which costs the very steps it would save.
"""

from __future__ import annotations

import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from daxfuzz.core.runner import Runner  # noqa: E402
from daxfuzz.explore.bfs import NO_IDS  # noqa: E402
from daxfuzz.explore.exhaust import (  # noqa: E402
    SMALL,
    alphabet,
    first_use_ok,
    observe,
    replay,
    state_key,
    world_rejects,
)
from daxfuzz.vocab import ops as O  # noqa: E402

_GLOBAL = (O.Mount, O.Unmount, O.Fork, O.MemoryFailure)
_INO_FIELDS = ("ino", "src", "dst", "ino1", "ino2", "tmp")


def footprint(r: Runner, op: O.Op) -> tuple[set[int], set[int], set[int]] | None:
    """(inodes, VMA slots, handles) `op` names at the runner's state; None: global."""
    if isinstance(op, _GLOBAL):
        return None
    inos = {getattr(op, f) for f in _INO_FIELDS if hasattr(op, f)}
    vmas: set[int] = set()
    if hasattr(op, "vma"):
        vmas.add(op.vma)
        if isinstance(op, O.Mremap):
            vmas.add(op.to)
        mapped = r.o.mms[op.mm].vmas.get(op.vma)
        if mapped:
            inos.add(mapped[0].ino)
    hs: set[int] = set()
    if hasattr(op, "h"):
        hs.update(range(op.h, op.h + getattr(op, "pages", 1))
                  if isinstance(op, (O.PinPages, O.UnpinPages)) else (op.h,))
    return inos, vmas, hs


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else "7.2"
    states = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    alpha = alphabet(SMALL)
    r = Runner(target, SMALL)
    pairs = commute = disjoint = broken = 0
    example = None
    for _ in range(states):
        path: list[O.Op] = []
        used = NO_IDS
        r.reset()
        for _ in range(rng.randint(2, 4)):
            tries = [(op, nu) for op in alpha if (nu := first_use_ok(op, used)) is not None
                     and not world_rejects(r, op)]
            op, used = rng.choice(tries)
            if r.step(op) is not None:
                break
            path.append(op)
        else:
            tries = [op for op in alpha if first_use_ok(op, used) is not None
                     and not world_rejects(r, op)]
            for _ in range(10):
                a, b = rng.sample(tries, 2)
                replay(r, path)
                fa, fb = footprint(r, a), footprint(r, b)
                dis = (fa is not None and fb is not None
                       and not any(x & y for x, y in zip(fa, fb, strict=True)))
                replay(r, path)
                ab = (observe(r, a), observe(r, b), state_key(r))
                replay(r, path)
                ba = (observe(r, b), observe(r, a), state_key(r))
                same = ab[2] == ba[2] and ab[0] == ba[1] and ab[1] == ba[0]
                pairs += 1
                commute += same
                disjoint += dis
                if dis and not same:
                    broken += 1
                    example = example or (path, a, b)
    print(f"{target}: {pairs} pairs of ops from {states} sampled states: {commute} commute "
          f"({commute / pairs:.0%}); the footprint relation calls {disjoint} independent "
          f"({disjoint / pairs:.0%}), {broken} of which do not commute "
          f"({broken / max(disjoint, 1):.1%})")
    if example:
        path, a, b = example
        print("  e.g. after " + "; ".join(map(str, path)) + f": '{a}' and '{b}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
