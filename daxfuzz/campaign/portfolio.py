"""The portfolio engine: random, Hypothesis and atheris in turn, on the same cores.

No single engine wins on bugs nobody planted (docs/mutation.md): the random loop kills
most mutants, and kills them first, but each guided engine kills some the others miss.
The portfolio runs the members in rounds -- random, then Hypothesis, then atheris --
random for two units of time and each guided engine for one, the unit doubling every
round (so a short run is mostly first slices and a long one gives each member long
stretches).  Random goes first and gets half the time: on the mutation benchmark
(110 mutants of the 7.2 port, 20 s each) it killed every mutant any engine killed, at
the lowest median time-to-kill, and the mutants it killed late (2-13 s, 5-8 ops) were
the ones an equal three-way split lost.  Members share what was found: a signature
one member found is known to the next, and atheris keeps its corpus and Hypothesis
its example database across slices.  The same schedule serves `daxfuzz fuzz` (the
default engine) and the zoo and mutation benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

#: (member, units of time per round)
MEMBERS = (("random", 2), ("hypothesis", 1), ("atheris", 1))

#: the first round's unit is this share of the budget, and at least FIRST_MIN seconds
FIRST_SHARE = 1 / 20
FIRST_MIN = 1.0
#: units stop doubling here: a long campaign still turns the members over
SLICE_MAX = 300.0
#: atheris spends 1-4 s instrumenting the kernel modules before its first input, and
#: libFuzzer's -max_total_time is whole seconds: a shorter atheris slice is skipped
ATHERIS_MIN = 3.0
#: round r runs a member with seed + ROUND_SEED * r (round 0: the member's own run)
ROUND_SEED = 1_000_003


def schedule(seconds: float) -> Iterator[tuple[str, float, int]]:
    """(member, slice seconds, round) filling `seconds`: rounds of MEMBERS in order, a
    member's slice its units times the round's unit, the unit doubling each round up to
    SLICE_MAX; the last slice is what is left.  An atheris slice under ATHERIS_MIN is
    skipped (its time goes to the next member)."""
    left = seconds
    unit = min(SLICE_MAX, max(FIRST_MIN, seconds * FIRST_SHARE))
    rnd = 0
    while left > 1e-9:
        for member, units in MEMBERS:
            t = min(units * unit, left)
            if member == "atheris" and t < ATHERIS_MIN:
                continue
            if t <= 1e-9:
                return
            yield member, t, rnd
            left -= t
        rnd += 1
        unit = min(2 * unit, SLICE_MAX)


def member_seed(seed: int, rnd: int) -> int:
    """The seed a member runs with in round `rnd`."""
    return seed + ROUND_SEED * rnd


def timed(seconds: float, clock: Callable[[], float] = time.monotonic
          ) -> Iterator[tuple[str, float, int]]:
    """`schedule(seconds)` against the clock: each slice cut to the time left (a member
    may overrun its slice: atheris's start-up, a reduction); it ends when what is left
    is too short for the next member."""
    end = clock() + seconds
    for member, planned, rnd in schedule(seconds):
        t = min(planned, end - clock())
        if t < 0.5 or member == "atheris" and t < 1:
            return
        yield member, t, rnd
