"""The baseline engine: random byte strings through the codec, no feedback.

What the coverage-guided engines must beat, and the cheapest way to drive the
runner for a while (``daxfuzz fuzz --engine random``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from daxfuzz.core.known import NEW, Known
from daxfuzz.core.runner import Divergence
from daxfuzz.explore.transitions import Transitions
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from fuzz.codec import DEFAULT_WEIGHTS, Codec


@dataclass
class Stats:
    """Progress of one random-engine run."""

    inputs: int = 0
    steps: int = 0
    seconds: float = 0.0
    findings: list[tuple[list[O.Op], Divergence]] = field(default_factory=list)
    first_found: float | None = None  # seconds from start to the first new finding
    kinds: dict[str, int] = field(default_factory=dict)  # op mix of the sampled inputs
    transitions: Transitions | None = None  # of the sampled inputs
    base_found: dict[str, int] = field(default_factory=dict)  # the base kernel's: sig -> n

SAMPLE = 16  # one input in SAMPLE is observed (op mix, folio transitions): off the hot path
PROGRESS_EVERY = 0.25  # seconds between calls of `progress`


def swarm_weights(rng: random.Random, base: Mapping[str, int] = DEFAULT_WEIGHTS
                  ) -> dict[str, int]:
    """Swarm testing: switch off a random subset of op kinds (keeping mmap and fault on)."""
    w = dict(base)
    for k in w:
        if k not in ("mmap", "fault") and rng.random() < 0.5:
            w[k] = 0
    return w


def run(target: str, g: Geometry = DEFAULT, *, seconds: float = 10.0, seed: int = 0,
        weights: Mapping[str, int] | None = None, swarm: bool = False, ops_per_input: int = 16,
        known: Known | Iterable[str] = (), stop_at_first: bool = False,
        progress: Callable[[Stats], None] | None = None, transitions=None) -> Stats:
    """Fuzz `target` for `seconds`; each divergence `known` calls new is one finding
    (`known`: a `daxfuzz.core.known.Known`, or the signatures already found).

    With `transitions` (a `daxfuzz.explore.transitions.Transitions`), one input in SAMPLE also
    records its folio-state transitions and op kinds (the campaign's coverage and mix).
    """
    from daxfuzz.core.runner import Runner

    rng = random.Random(seed)
    base = dict(DEFAULT_WEIGHTS if weights is None else weights)
    codec = Codec(g, base)
    runner = Runner(target, g)
    if not isinstance(known, Known):
        known = Known(target, g, own=known)
    st_base = known.base_found
    st = Stats(transitions=transitions, base_found=st_base)
    kinds = st.kinds
    t0 = time.monotonic()
    nbytes = ops_per_input * 6
    next_progress = t0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if swarm and st.inputs % 256 == 0:
            codec = Codec(g, swarm_weights(rng, base))
        # by the clock, not by input count: a slow target (large geometry) still shows
        # its execs, and a new finding is passed on within PROGRESS_EVERY
        if progress is not None and now >= next_progress:
            st.seconds = now - t0
            progress(st)
            next_progress = time.monotonic() + PROGRESS_EVERY
        st.inputs += 1
        ops = codec.decode(rng.randbytes(nbytes), max_ops=ops_per_input)
        runner.reset()
        track = transitions is not None and st.inputs % SAMPLE == 1
        if track:
            transitions.reset()
        for op in ops:
            div = runner.step(op)
            if track:
                kinds[op.name] = kinds.get(op.name, 0) + 1
                transitions.after_step(runner, op)
            if div is not None:
                if known.verdict(ops, div) == NEW:
                    st.findings.append((ops[:div.step], div))
                    if st.first_found is None:
                        st.first_found = time.monotonic() - t0
                break
        st.steps += runner.nsteps
        if stop_at_first and st.findings:
            break
    st.seconds = time.monotonic() - t0
    if progress is not None:
        progress(st)
    return st
