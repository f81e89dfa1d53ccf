"""The portfolio engine: random, Hypothesis and atheris in turn, on the same cores.

No single engine wins on bugs nobody planted (docs/mutation.md): the random loop kills
most mutants, and kills them first, but each guided engine kills some the others miss.
The portfolio runs the members in rounds -- random, then Hypothesis, then atheris --
each for a slice of the budget, the slice doubling every round (so a short run is
mostly first slices and a long one gives each member long stretches).  Random goes
first: on the mutation benchmark its median time-to-kill is the lowest, so what it
kills the portfolio kills as soon.  Members share what was found: a signature one
member found is known to the next, and atheris keeps its corpus and Hypothesis its
example database across slices.  The same schedule serves `daxfuzz fuzz` (the
default engine) and the zoo and mutation benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterator

MEMBERS = ("random", "hypothesis", "atheris")

#: the first round's slice is this share of the budget, and at least FIRST_MIN seconds
FIRST_SHARE = 1 / 20
FIRST_MIN = 1.0
#: slices stop doubling here: a long campaign still turns the members over
SLICE_MAX = 300.0
#: atheris spends 1-4 s instrumenting the kernel modules before its first input, and
#: libFuzzer's -max_total_time is whole seconds: a shorter atheris slice is skipped
ATHERIS_MIN = 3.0


def schedule(seconds: float) -> Iterator[tuple[str, float, int]]:
    """(member, slice seconds, round) filling `seconds`: rounds of MEMBERS in order, the
    slice doubling each round up to SLICE_MAX; the last slice is what is left.  A slice
    too short for its member goes to the next one."""
    left = seconds
    s = min(SLICE_MAX, max(FIRST_MIN, seconds * FIRST_SHARE))
    rnd = 0
    while left > 1e-9:
        for member in MEMBERS:
            t = min(s, left)
            if member == "atheris" and t < ATHERIS_MIN:
                continue
            if t <= 1e-9:
                return
            yield member, t, rnd
            left -= t
        rnd += 1
        s = min(2 * s, SLICE_MAX)
