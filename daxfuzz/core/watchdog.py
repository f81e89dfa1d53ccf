"""The model's soft-lockup detector: a target step that does not return is a finding.

A kernel loop that never ends is a bug the kernel itself reports (soft lockup, hung
task).  In a port it is a Python loop that never returns -- a mutant's `length - 1`,
a patch target's off-by-one -- and the engine running it would wait for ever, taking
a campaign or a benchmark with it.  Once `enable()`d (the command line does; so does
the atheris harness), every process that builds a `Runner` gets a daemon thread that
looks at the step in progress every TICK seconds; when the target has been inside
one step for LIMIT seconds it interrupts the main thread, whose handler raises
`StepHang` there, in the target's code.  The runner reports it as the op's `hang`
divergence (`write:hang`), which is reduced like any other.

No OS timer is used (`_thread.interrupt_main` with a signal number only runs the
Python handler), so no child process inherits anything; after a fork the first
`Runner` of the child starts its own thread.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time

#: seconds one step of the target may run (DAXFUZZ_STEP_LIMIT); a step takes tens of
#: microseconds, so even a machine at load 10 stays far below it
DEFAULT_LIMIT = 2.0


def _limit(text: str | None) -> float | str:
    """DAXFUZZ_STEP_LIMIT's seconds, or why the value is refused (`enable` says so)."""
    if not text:  # unset or empty: the default, as for DAXFUZZ_TARGET
        return DEFAULT_LIMIT
    try:
        v = float(text) if text.strip().isascii() else float("nan")
    except ValueError:
        v = float("nan")
    if not 0 < v < float("inf"):
        return (f"DAXFUZZ_STEP_LIMIT={text!r}: not a positive, finite number of seconds "
                f"(default {DEFAULT_LIMIT:g})")
    return v


_LIMIT = _limit(os.environ.get("DAXFUZZ_STEP_LIMIT"))
LIMIT = _LIMIT if isinstance(_LIMIT, float) else DEFAULT_LIMIT
TICK = 0.25
#: no libFuzzer, Hypothesis or daxfuzz code uses it; the handler checks our own flag
SIGNUM = signal.SIGVTALRM

#: [step serial, 1 while the target runs that step]: Runner.step writes it
STEP = [0, 0]


class StepHang(Exception):
    """Raised inside a target step that ran past LIMIT seconds."""


_enabled = False
_pid = 0  # the process whose thread is running
_fire = [False]


def enable() -> None:
    """Watch every Runner this process (and its forked children) builds from now on.
    A malformed DAXFUZZ_STEP_LIMIT is a ConfigError here (importing never fails)."""
    global _enabled
    if isinstance(_LIMIT, str):
        from daxfuzz.errors import ConfigError

        raise ConfigError(_LIMIT)
    _enabled = True


def ensure() -> None:
    """Start this process's watchdog if enabled and not running (cheap when it is)."""
    global _pid
    if not _enabled or _pid == os.getpid():
        return
    if threading.current_thread() is not threading.main_thread():
        return  # a handler can be installed from the main thread only
    signal.signal(SIGNUM, _handler)
    _pid = os.getpid()
    threading.Thread(target=_watch, name="daxfuzz-watchdog", daemon=True).start()


def _handler(signum, frame) -> None:
    if _fire[0] and STEP[1]:
        _fire[0] = False
        raise StepHang(f"the step ran for over {LIMIT:g} s: a loop that never ends?")


def _watch() -> None:
    me = os.getpid()
    seen, since = -1, 0.0
    while _pid == me:
        time.sleep(TICK)
        serial, inside = STEP
        now = time.monotonic()
        if not inside or serial != seen:
            seen, since = serial if inside else -1, now
            continue
        if now - since >= LIMIT and not _fire[0]:
            _fire[0] = True
            _thread.interrupt_main(SIGNUM)
