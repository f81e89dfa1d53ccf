"""The one breadth-first search of daxfuzz: every op sequence up to K ops over an
alphabet, each distinct state expanded once.

A frontier item is a path (alphabet indices) and the ids it has used (canonical
first use: `daxfuzz.explore.exhaust.first_use_ok`).  An *expand* function takes a
chunk of items and returns one child per op tried: ``(item number, op index, used',
key, payload)``.  A key (a digest of the child's state) continues the search from
there unless another path reached that key first; None ends the path (a divergence,
a difference between two targets, a rejected op).  A payload is something to report
about that edge (a divergence, a difference), handed to `on_payload` with the child's
path.

`exhaust` (one target against the oracle; worker processes, state copies),
`TargetDiff.add_exhaustive` (two targets side by side) and `exhaust_transitions`
(the folio transitions reachable) are expand functions over this driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

Item = tuple[tuple[int, ...], tuple]  # (path as alphabet indices, ids used)
Child = tuple[int, int, tuple, Hashable | None, object]
Expand = Callable[[Sequence[Item]], list[Child]]

#: the ids used by the empty path: no process, VMA slot, handle or pin named yet
NO_IDS: tuple = (0, 0, 0, 0)
#: seconds between progress lines inside one depth
PROGRESS_EVERY = 30.0


@dataclass
class Search:
    """What one breadth-first search did."""

    states: int = 1  # distinct states seen (the root included)
    edges: int = 0  # ops tried
    depth: int = 0  # every sequence up to this many ops was explored
    complete: bool = True  # False: the time limit stopped it
    seconds: float = 0.0
    stopped: bool = False  # `stop()` ended it (e.g. at a first counterexample)


def breadth_first(root: Hashable, expand: Expand, max_ops: int, seconds: float, *,
                  on_payload: Callable[[tuple[int, ...], object], None] | None = None,
                  stop: Callable[[], bool] | None = None, jobs: int = 1,
                  pool_expand: Callable[[Iterable[Sequence[Item]]], Iterable[list[Child]]]
                  | None = None,
                  progress: Callable[[str], None] | None = None, label: str = "depth",
                  deadline: float | None = None) -> Search:
    """Search from the root state (its key `root`) up to `max_ops` ops or `seconds`.

    `expand` is called on chunks of the frontier in order; `pool_expand`, when given,
    maps it over the chunks in worker processes (results in order).  `stop()` is asked
    after every chunk: True ends the search at the end of that chunk's depth's work
    done so far (breadth first: nothing shorter is left).  `deadline` (a
    `time.perf_counter()` value, default `seconds` from now) ends it after the first
    chunk that comes back past it, incomplete: an expand that cut a chunk short at the
    same deadline is never taken for a whole one."""
    t0 = time.perf_counter()
    end = t0 + seconds if deadline is None else deadline
    res = Search()
    seen = {root}
    frontier: list[Item] = [((), NO_IDS)]
    for depth in range(1, max_ops + 1):
        nxt: list[Item] = []
        # small chunks at first (a few states fill every worker), then ~64 states
        size = max(1, min(64, len(frontier) // (4 * max(jobs, 1))))
        starts = range(0, len(frontier), size)
        chunks = (frontier[i:i + size] for i in starts)
        it: Iterable[list[Child]] = (pool_expand(chunks) if pool_expand is not None
                                     else (expand(c) for c in chunks))
        timed_out = stopped = False
        start = shown = time.perf_counter()
        edges0 = res.edges
        for c0, kids in zip(starts, it, strict=False):
            for n, j, nu, key, payload in kids:
                res.edges += 1
                if payload is not None and on_payload is not None:
                    on_payload(frontier[c0 + n][0] + (j,), payload)
                if key is not None and key not in seen:
                    seen.add(key)
                    nxt.append((frontier[c0 + n][0] + (j,), nu))
            if stop is not None and stop():
                stopped = True
                break
            now = time.perf_counter()
            if now > end:
                timed_out = True
                break
            if progress and now - shown > PROGRESS_EVERY:
                shown = now
                done = min(c0 + size, len(frontier))
                rate = (res.edges - edges0) / (now - start)
                eta = (now - start) * (len(frontier) - done) / done
                progress(f"{label} {depth}: {done}/{len(frontier)} states expanded, "
                         f"{res.edges} edges, {rate:.0f} edges/s, ~{eta:.0f} s to go")
        res.states = len(seen)
        res.seconds = time.perf_counter() - t0
        if progress:
            progress(f"{label} {depth}: {len(nxt)} new states, {res.states} states, "
                     f"{res.edges} edges, {res.seconds:.1f} s, "
                     f"{res.edges / max(res.seconds, 1e-9):.0f} edges/s")
        if timed_out:
            res.complete = False
            break
        if stopped:
            res.stopped = True
            res.depth = depth - 1
            break
        res.depth = depth
        frontier = nxt
        if not frontier:
            res.depth = max_ops
            break
    res.seconds = time.perf_counter() - t0
    return res
