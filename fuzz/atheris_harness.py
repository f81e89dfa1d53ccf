"""The atheris engine: libFuzzer over the total byte codec.

    python -m fuzz.atheris_harness CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=60]

Environment: DAXFUZZ_TARGET (default 6.15), DAXFUZZ_GEOMETRY (trace-header form),
DAXFUZZ_KNOWN (comma-separated divergence signatures to ignore, so a campaign goes
past bugs it already has; a target's base kernel's own divergences are always
ignored, by replay: daxfuzz.core.known), DAXFUZZ_MAX_OPS (ops per input, default 64),
DAXFUZZ_WEIGHTS (op=w,... op mix), DAXFUZZ_MUTATOR (ops: the structure-aware
mutator of fuzz.mutator, the default; bytes: libFuzzer's own alone),
DAXFUZZ_LEN_CONTROL (libFuzzer -len_control default, 0).  A new divergence raises
`DivergenceFound` with the report; libFuzzer saves the input as crash-<sha1>, which
``daxfuzz reduce crash-<sha1>`` turns into a reduced trace.

Only the implementation under test (kdax, oracle), the runner and the transition edges
are instrumented (DAXFUZZ_INSTRUMENT changes that).
"""

from __future__ import annotations

import os
import sys
import time

import atheris

from daxfuzz.errors import ConfigError, InputError
from daxfuzz.textio import env_number

# Imported before instrumentation starts: the codec and the plumbing are not under test.
from daxfuzz.vocab import (
    world,  # noqa: F401
)
from daxfuzz.vocab.geometry import DEFAULT, Geometry


def _bad_config(e: Exception) -> None:
    """A harness variable daxfuzz did not set, or set wrong: say which, exit 2 (the
    runner reports the harness's last lines; a traceback would bury the cause)."""
    print(f"daxfuzz atheris harness: {e}", file=sys.stderr)
    sys.exit(2)


try:
    from fuzz import mutator
    from fuzz.codec import Codec, parse_weights
except ConfigError as e:
    _bad_config(e)

#: what carries coverage (comma-separated module prefixes, DAXFUZZ_INSTRUMENT).  Measured
#: on 7.2, 15 s: all four 1,357 execs/s; kdax + edges 1,344; edges only 1,873; nothing
#: 10,550 (and no feedback: libFuzzer keeps one input).  The oracle and runner cost
#: nothing measurable and add coverage, so they stay in.
INSTRUMENT = os.environ.get(
    "DAXFUZZ_INSTRUMENT", "kdax,oracle,daxfuzz.core.runner").split(",")
from daxfuzz.core import watchdog  # noqa: E402

watchdog.enable()  # a step that never returns is a crash (`OP:hang`), not a libFuzzer timeout
with atheris.instrument_imports(include=INSTRUMENT):
    import kdax.targets  # noqa: F401
    import oracle  # noqa: F401
    from daxfuzz.core.runner import Runner
from daxfuzz.core.known import NEW, Known, Wanted  # noqa: E402


class DivergenceFound(Exception):
    """A new divergence: the message is the runner's report."""


TARGET = os.environ.get("DAXFUZZ_TARGET", "6.15")
try:
    GEOMETRY = Geometry.parse(os.environ["DAXFUZZ_GEOMETRY"]) if os.environ.get(
        "DAXFUZZ_GEOMETRY") else DEFAULT
    # what is not news: DAXFUZZ_KNOWN's signatures ("*": benchmarking, never stop), and on
    # a target built on a base kernel what the base shows too (daxfuzz.core.known)
    KNOWN = Known(TARGET, GEOMETRY,
                  own=filter(None, os.environ.get("DAXFUZZ_KNOWN", "").split(",")))
    # DAXFUZZ_WANT=SIG: only that signature is news (`daxfuzz zoo --deep`)
    if os.environ.get("DAXFUZZ_WANT"):
        KNOWN = Wanted(TARGET, GEOMETRY, os.environ["DAXFUZZ_WANT"])
    MAX_OPS = int(env_number("DAXFUZZ_MAX_OPS", 64, 1, 10000))
    try:
        CODEC = Codec(GEOMETRY, parse_weights(os.environ.get("DAXFUZZ_WEIGHTS", "")))
    except ValueError as e:
        raise ConfigError(f"$DAXFUZZ_WEIGHTS: {e}") from None
    RUNNER = Runner(TARGET, GEOMETRY)
    # libFuzzer's -len_control (default 100) caps inputs at a few bytes for the first
    # minutes: under 30 bytes after 30 s, five ops; a divergence needing a 6-op sequence
    # is then out of reach.  0 lets the mutators use -max_len from the start.
    LEN_CONTROL = int(env_number("DAXFUZZ_LEN_CONTROL", 0, 0, 10**6))
except (ConfigError, InputError) as e:
    _bad_config(e)
# a mutant's rewritten function (kdax.mutant) is compiled, not imported: instrument it as
# the function it replaces was, or the fuzzer would be blind inside the mutated code
_MUTATED = getattr(RUNNER.cls, "mutated", None)
if _MUTATED is not None and any(_MUTATED.__module__.startswith(p) for p in INSTRUMENT):
    atheris.instrument_func(_MUTATED)
# `daxfuzz bench --engines` and `daxfuzz fuzz`'s ops count: inputs and ops so far,
# rewritten to DAXFUZZ_STATS every 512 inputs and at a crash (libFuzzer leaves with
# _exit: no atexit), with the time of the first write, so the rate is measured after
# start-up
STATS = [0, 0, 0.0, 0]  # inputs, ops, time and ops at the first write
STATS_PATH = os.environ.get("DAXFUZZ_STATS")


def TestOneInput(data: bytes) -> None:
    """Decode `data` to ops, run them; raise on a divergence KNOWN calls new."""
    RUNNER.reset()
    step = RUNNER.step
    seq = CODEC.decode(data, max_ops=MAX_OPS)
    STATS[0] += 1
    STATS[1] += len(seq)
    if STATS_PATH and not STATS[0] & 511:
        _write_stats()
    for op in seq:
        div = step(op)
        if div is not None:
            if KNOWN.verdict(seq, div, record=False) != NEW:
                return
            if STATS_PATH:  # libFuzzer leaves now: the campaign's ops count needs these
                _write_stats()
            raise DivergenceFound(f"target {TARGET}\n{div.report()}")


def _write_stats() -> None:
    now = time.monotonic()
    if not STATS[2]:
        STATS[2], STATS[3] = now, STATS[1]
    with open(STATS_PATH, "w") as f:
        f.write(f"{STATS[0]} {STATS[1]} {STATS[2]} {STATS[3]} {now}\n")


def _mutate(data: bytes, max_size: int, seed: int) -> bytes:
    return mutator.mutate(CODEC, data, max_size, seed, atheris.Mutate, MAX_OPS)


def _crossover(data1: bytes, data2: bytes, max_size: int, seed: int) -> bytes:
    return mutator.crossover(CODEC, data1, data2, max_size, seed, MAX_OPS)


def _launcher() -> str:
    """An executable that runs this harness: libFuzzer's -fork/-jobs re-run argv[0] as a
    command, and under `python -m` argv[0] is this (not executable) file.  One script
    per Python in the user's cache, written once and reused (libFuzzer leaves by _exit,
    so a per-run temp folder was never removed: one left in /tmp by every run)."""
    import hashlib
    import tempfile

    from daxfuzz.textio import write_bytes_atomic

    text = f'#!/bin/sh\nexec {sys.executable} -m fuzz.atheris_harness "$@"\n'.encode()
    tag = hashlib.sha256(text).hexdigest()[:16]
    path = os.path.join(os.path.expanduser("~"), ".cache", "daxfuzz", "harness",
                        f"atheris_harness-{tag}")
    if not os.access(path, os.X_OK):
        try:
            write_bytes_atomic(path, text, mode=0o755)
        except OSError:  # no writable home: a temp folder, as before
            path = os.path.join(tempfile.mkdtemp(prefix="daxfuzz-harness-"), "atheris_harness")
            write_bytes_atomic(path, text, mode=0o755)
    return path


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if any(a.startswith(("-fork=", "-jobs=")) for a in argv) and not os.access(argv[0], os.X_OK):
        argv[0] = _launcher()
    if not any(a.startswith("-len_control=") for a in argv):
        argv.append(f"-len_control={LEN_CONTROL}")
    if not any(a.startswith("-max_len=") for a in argv):
        argv.append(f"-max_len={MAX_OPS * 8}")
    dict_path = os.path.join(os.path.dirname(__file__), "dict", "daxfuzz.dict")
    if os.path.exists(dict_path) and not any(a.startswith("-dict=") for a in argv):
        argv.append(f"-dict={dict_path}")
    if os.environ.get("DAXFUZZ_MUTATOR", "ops") == "ops":
        atheris.Setup(argv, TestOneInput, custom_mutator=_mutate, custom_crossover=_crossover)
    else:  # DAXFUZZ_MUTATOR=bytes: libFuzzer's byte mutators alone (for comparison)
        atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
