"""Reproducer writers: the reduced trace and a standalone pytest test per finding.

A finding lives in the findings folder under a name made from its target and
divergence signature, so the same bug found twice (by two engines, or two runs)
lands on the same files -- that is the de-duplication::

    findings/<target>__<signature>.trace          reduced, 1-minimal
    findings/<target>__<signature>.<engine>.trace  what the engine found, unreduced
    findings/test_<target>__<signature>.py        pytest regression test
    findings/queue/<engine>-<hash>.trace           found, not yet reduced (see below)

Crash safety: the raw trace is queued (written whole, atomically) before the slow
reduction, and leaves the queue only when every file above is written; a run killed
in between leaves it queued for the next run (`daxfuzz.campaign.folder.drain_queue`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TypedDict

from daxfuzz.errors import InputError
from daxfuzz.textio import write_text_atomic
from daxfuzz.vocab.trace import Trace, write_trace_atomic

PYTEST_TEMPLATE = '''\
"""daxfuzz reproducer: {signature} on target {target}.

Emitted by daxfuzz from a reduced {nops}-op trace, which it replays through the runner.

    {report_first}

As emitted this is a regression test: it asserts that the target agrees with the
oracle, so it fails on {target} (printing the divergence report) and passes on a
correct target (DAXFUZZ_TARGET=<name> pytest {{this file}}) -- and on {target} once
the bug is fixed.  To keep a known, still-unfixed bug in a green CI run, flip the one
expectation EXPECT_DIVERGENCE to True: the test then asserts this exact divergence,
and goes red the day a fix lands (flip it back then).
"""

import os

from daxfuzz.core.runner import run_ops
from daxfuzz.vocab.trace import parse_trace

EXPECT_DIVERGENCE = False
TARGET = os.environ.get("DAXFUZZ_TARGET", {target!r})
SIGNATURE = {signature!r}

TRACE = """\\
{trace}"""


def test_{func}():
    trace = parse_trace(TRACE, path=__file__)
    div, _results = run_ops(TARGET, trace.geometry, trace.ops)
    if EXPECT_DIVERGENCE:
        assert div is not None, (
            f"{{SIGNATURE}} no longer reproduces on {{TARGET}}: fixed? "
            "Flip EXPECT_DIVERGENCE to False to keep this as a regression test.")
        assert div.signature() == SIGNATURE, div.report()
    else:
        assert div is None, div.report()
'''


def slug(target: str, signature: str) -> str:
    """File-name stem of a finding: target and signature, unsafe characters as '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{target}__{signature}").strip("-")


def _in_triple_quotes(text: str) -> str:
    """`text` escaped for a non-raw triple-quoted literal: a trace's description may
    name a file with a backslash or hold triple quotes."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text[:-1] + '\\"' if text.endswith('"') else text


def emit_pytest(trace: Trace, divergence) -> str:
    """The text of a standalone pytest file replaying `trace` (target from its header)."""
    if trace.target is None:
        raise ValueError("emit_pytest: the trace names no target")
    sig = divergence.signature()
    text = _in_triple_quotes(str(trace))
    return PYTEST_TEMPLATE.format(
        signature=sig, target=trace.target, nops=len(trace.ops), trace=text,
        report_first=_in_triple_quotes(divergence.report().splitlines()[0]),
        func=re.sub(r"\W+", "_", slug(trace.target, sig)).strip("_").lower())


class Finding(TypedDict, total=False):
    """A saved finding, as :func:`save_finding` describes it (and run records store it)."""

    signature: str  # the reduced divergence's, e.g. ``fault:refcount``
    raw_path: str  # the engine's trace, whole (FINDINGS/TARGET__SIG.ENGINE.trace)
    trace_path: str  # the reduced trace
    test_path: str  # its pytest reproducer
    ops: int  # ops in the reduced trace
    original_ops: int
    reduce_runs: int
    reduce_seconds: float
    report: str  # the divergence, explained
    new: bool  # False: an older trace of the signature was as short, and stays
    reduced: bool  # False: the reduction's deadline stopped it (saved as far as it got)
    set_aside: str  # an old trace that could not stand for the bug, kept under this name
    set_aside_why: str
    artifact: str  # the libFuzzer crash input it came from (atheris)


#: FINDINGS/queue/: raw findings written before their reduction, removed after it
QUEUE = "queue"


def queue_finding(findings: str, text: str, engine: str) -> str:
    """Write a raw finding's trace text into FINDINGS/queue/ atomically; its path."""
    name = f"{engine}-{hashlib.sha1(text.encode()).hexdigest()[:16]}.trace"
    path = os.path.join(findings, QUEUE, name)
    write_text_atomic(path, text)
    return path


def save_finding(findings: str, raw: Trace, *, engine: str,
                 queued_path: str | None = None, deadline: float | None = None) -> Finding:
    """Reduce `raw` (a diverging trace with a target), write the files; describe them.

    An existing reduced trace of the same signature is kept unless the new one is
    shorter, so re-finding a bug costs nothing and loses nothing.  `raw` is queued
    first (unless it comes from the queue, at `queued_path`) and unqueued last.  A
    reduction the `deadline` (monotonic) stops is saved as far as it got, its
    description saying so (``reduced`` False).
    """
    from daxfuzz.core.reduce import UNREDUCED, reduce_divergence

    assert raw.target is not None
    os.makedirs(findings, exist_ok=True)
    if queued_path is None:
        queued_path = queue_finding(findings, str(raw), engine)
    red = reduce_divergence(raw.target, raw.geometry, raw.ops,
                            description=(f"found by {engine}; reduced from {len(raw.ops)} ops",),
                            deadline=deadline)
    if red is None:
        raise ValueError(f"save_finding: the {engine} trace does not diverge on replay "
                         f"(nondeterminism?)")
    sig = red.divergence.signature()
    stem = os.path.join(findings, slug(raw.target, sig))
    out: Finding = {"signature": sig, "raw_path": f"{stem}.{engine}.trace",
           "trace_path": f"{stem}.trace",
           "test_path": test_path_for(f"{stem}.trace"),
           "ops": len(red.trace.ops), "original_ops": len(raw.ops), "reduce_runs": red.runs,
           "reduce_seconds": red.seconds, "report": red.divergence.report(), "new": True,
           "reduced": red.complete}
    write_trace_atomic(out["raw_path"], raw)
    old, old_div, why = _old_finding(out["trace_path"], raw.target, sig)
    if old is not None and len(old.ops) <= len(red.trace.ops):
        out["new"] = False
        out["ops"] = len(old.ops)
        out["reduced"] = UNREDUCED not in old.description
        if _read_text_or_none(out["test_path"]) != emit_pytest(old, old_div):
            write_text_atomic(out["test_path"], emit_pytest(old, old_div))  # lost or damaged
    else:
        if why is not None:  # never overwritten, never deleted: moved aside, and said
            out["set_aside"] = set_aside(out["trace_path"])
            out["set_aside_why"] = why
        write_trace_atomic(out["trace_path"], red.trace)
        write_text_atomic(out["test_path"], emit_pytest(red.trace, red.divergence))
    os.unlink(queued_path)
    return out


def test_path_for(trace_path: str) -> str:
    """The pytest reproducer beside a saved finding's reduced trace."""
    stem = os.path.basename(trace_path).removesuffix(".trace")
    return os.path.join(os.path.dirname(trace_path),
                        "test_" + re.sub(r"\W+", "_", stem).lower() + ".py")


def set_aside(path: str) -> str:
    """Move `path` to `path`.corrupt (or .corrupt-N: nothing is overwritten); the new name."""
    dest = path + ".corrupt"
    n = 1
    while os.path.lexists(dest):
        dest = f"{path}.corrupt-{n}"
        n += 1
    os.replace(path, dest)
    return dest


def _old_finding(path: str, target: str, sig: str):
    """The reduced trace already at `path` for `target` and `sig`, its divergence and
    None; or (None, None, why it cannot stand for the finding) if the file exists but
    does not parse as a non-empty trace of that target and signature that reproduces
    it (emptied, cut after its header, edited, or made stale by a target change); or
    (None, None, None) if there is no file."""
    from daxfuzz.core.runner import run_ops
    from daxfuzz.vocab.trace import read_trace

    if not os.path.lexists(path):
        return None, None, None
    try:
        t = read_trace(path)
    except InputError as e:
        return None, None, e.reason
    if t.target != target or t.expect != f"divergence {sig}":
        return None, None, (f"its header says target {t.target}, expect {t.expect!r}, "
                            f"not {target} and divergence {sig}")
    div, _ = run_ops(target, t.geometry, t.ops)
    if div is None or div.signature() != sig:
        return None, None, "it no longer reproduces " + sig
    return t, div, None


def _read_text_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def known_signatures(findings: str, target: str) -> set[str]:
    """Signatures of the reduced findings of `target` already in the folder."""
    out: set[str] = set()
    if not os.path.isdir(findings):
        return out
    for name in sorted(os.listdir(findings)):
        t = _read_or_none(os.path.join(findings, name)) if name.endswith(".trace") else None
        words = t.expect.split() if t is not None else []
        if t is not None and t.target == target and len(words) == 2 and words[0] == "divergence":
            out.add(words[1])
    return out


def _read_or_none(path: str) -> Trace | None:
    """The trace at `path`, or None if missing or malformed (replay reports those)."""
    from daxfuzz.vocab.trace import read_trace

    if not os.path.exists(path):
        return None
    try:
        return read_trace(path)
    except InputError:
        return None
