"""`daxfuzz replay FILE... [--target T] [--explain] [--check] [--quiet]`.

Replays each trace on the oracle and a target and prints, per step, the op, its
result and the state of the PFNs it touched; on a divergence, the explained report.
"""

from __future__ import annotations

import argparse
import sys

from daxfuzz.cli import DEFAULT_TARGET, trace_target
from daxfuzz.core.runner import Divergence, Runner, explain
from daxfuzz.errors import EXIT_AGREE, EXIT_BAD_INPUT, EXIT_DIVERGENCE, InputError
from daxfuzz.vocab.trace import Trace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay traces and report agreement or divergence")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="trace files, or libFuzzer crash inputs (as `daxfuzz reduce`)")
    p.add_argument("--target", help="target to replay on (default: the trace's, else "
                   f"$DAXFUZZ_TARGET, else {DEFAULT_TARGET})")
    p.add_argument("--explain", action="store_true",
                   help="on divergence, name the kernel function that last wrote the field")
    p.add_argument("--check", action="store_true",
                   help="exit 0 iff every trace behaves as its header's 'expect' says")
    p.add_argument("-q", "--quiet", action="store_true", help="one line per trace")
    p.set_defaults(func=run)


def page_line(r: Runner, pfn: int) -> str:
    """One line of raw struct-page state of `pfn` on the target."""
    a = r.actual_page(pfn)
    t = r.t
    page = t.pages[pfn]
    head = a["compound_head"]
    s = f"pfn {pfn}: "
    if head != pfn:
        return s + f"tail of {head} ref={a['refcount']} mapcount={a['page_mapcount']}"
    s += f"order={a['order']} ref={a['refcount']} mapcount={a['mapcount']}"
    if "pincount" in a:
        s += f" pincount={a['pincount']}"
    if page.mapping is not None:
        s += f" mapping=ino{page.mapping} index={page.index}"
    elif page.index:
        s += f" mapping=NULL share={page.index}"
    return s


def outcome_ok(trace: Trace, target: str, div: Divergence | None) -> bool:
    """Does the outcome match the header's expectation for `target`?"""
    exp = trace.expectation(target).split()
    if exp[0] == "agree":
        return div is None
    if div is None:
        return False
    return len(exp) == 1 or exp[1] == div.signature()


def replay_one(path: str, args: argparse.Namespace) -> tuple[bool, Divergence | None]:
    from daxfuzz.cli.reduce import load_input

    trace = load_input(path)
    target = trace_target(trace, args.target, path)
    r = Runner(target, trace.geometry)
    div: Divergence | None = None
    mism = None
    mism_step = 0
    if not args.quiet:
        print(f"== {path}  (target {target}; {trace.geometry.text()})")
        for d in trace.description:
            print(f"   {d}")
    for i, (op, want) in enumerate(zip(trace.ops, trace.results, strict=False), 1):
        div = r.step(op)
        res = r.last_result
        if not args.quiet:
            flag = "" if want is None or want == res else f"   (trace expects {want})"
            print(f"{i:4}  {str(op):<58} => {res}{flag}")
            pfns = sorted({r.t.page_folio(r.t.pages[p]).pfn for p in r.t.touched
                           | r.o.changed})
            for pfn in pfns:
                print(f"        {page_line(r, pfn)}")
        check = trace.expectation(target) == "agree"  # annotations describe agreement
        if check and want is not None and want != res and mism is None:
            mism = f"step {i}: {op}: trace expects '{want}', target gave '{res}'"
            mism_step = i
        if div is not None:
            break
    if div is not None:
        if args.explain:
            div = explain(target, trace.geometry, trace.ops[:div.step]) or div
        print(div.report())
        from daxfuzz.core.known import Known

        base = Known(target, trace.geometry)
        if base.base is not None and base.base_shows(trace.ops, div):
            print(f"  the base kernel {base.base} shows the same divergence on these ops: "
                  "its bug, not the target's (daxfuzz fuzz counts it apart)")
    if mism:
        print(f"RESULT MISMATCH at {mism}")
    ok = outcome_ok(trace, target, div) and mism is None
    if not args.check and mism is not None:
        div = div or Divergence(mism_step, trace.ops[mism_step - 1], "trace-result", mism,
                                None, target=target)
    verdict = ("agree" if div is None else f"divergence {div.signature()}")
    if args.check:
        verdict += "  (as expected)" if ok else \
            f"  (UNEXPECTED: header says {trace.expectation(target)!r})"
    print(f"{path}: {verdict} on {target}")
    return ok, div


def run(args: argparse.Namespace) -> int:
    worst = EXIT_AGREE
    bad_input = False
    for path in args.files:
        try:
            ok, div = replay_one(path, args)
        except InputError as e:
            print(f"daxfuzz: error: {e}", file=sys.stderr)
            bad_input = True
            continue
        if (args.check and not ok) or (not args.check and div is not None):
            worst = EXIT_DIVERGENCE
    return EXIT_BAD_INPUT if bad_input else worst
