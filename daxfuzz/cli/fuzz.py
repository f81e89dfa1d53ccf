"""`daxfuzz fuzz`: run an engine on a target for a time, save every finding reduced.

    daxfuzz fuzz --engine portfolio|atheris|hypothesis|random --target T --time 60 --jobs N

Before fuzzing, the reduced findings already in the findings folder are replayed,
and so are the scenario corpus's documented divergences on the target (`expect 7.2:
divergence ...`); those that reproduce are *known* and the engines go past them (a
campaign is after new bugs).  Every new divergence signature is reduced to a 1-minimal
trace and gets a pytest reproducer (`daxfuzz.core.emit`).  A second run resumes from the
corpus (atheris) or example database (hypothesis: --db, a folder or a Redis server
shared by a fleet).

Crash-safe: a finding is queued (FINDINGS/queue/) before it is reduced, and a killed
run's queue is reduced first by the next run; corrupt files in the corpus, findings
and database folders are reported by name and skipped.  The campaign folder
(--campaign, default FINDINGS/campaign) records the runs and a time series, and gets
report.html and report.md at the end (`daxfuzz report DIR` redraws them).

Exit code 1 if the run found a new divergence, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys

from daxfuzz.campaign.fuzz import ENGINES
from daxfuzz.cli import count, default_target, duration, geometry, jobs, out_dir, seed
from daxfuzz.errors import (
    EXIT_AGREE,
    EXIT_BAD_INPUT,
    EXIT_DIVERGENCE,
    EXIT_INTERNAL,
    ConfigError,
    InputError,
)
from daxfuzz.home import default as default_path
from daxfuzz.home import outside_note
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import MAX_OPS
from fuzz.codec import DEFAULT_WEIGHTS, parse_weights


def config(args: argparse.Namespace):
    """The campaign's FuzzConfig from the flags: names checked, folders resolved."""
    from daxfuzz.campaign.folder import say
    from daxfuzz.campaign.fuzz import FuzzConfig
    from kdax.targets import get_target

    if args.engine in ("hypothesis", "portfolio"):
        _check_hypothesis_env()
    flag = args.target
    args.target = default_target() if flag is None else flag
    try:
        get_target(args.target)  # ConfigError (exit 2) on an unknown name, before any work
    except ConfigError as e:
        raise ConfigError(f"{'--target' if flag else '$DAXFUZZ_TARGET'}: {e}") from None
    try:
        weights = parse_weights(args.weights or "")
    except ValueError as e:
        raise InputError(str(e)) from None
    scenarios = args.scenarios
    if scenarios is None:
        scenarios = default_path("corpus")
        note = outside_note(scenarios)
        if note:
            say(note)
    if scenarios != "none" and not os.path.isdir(scenarios):
        why = ("--scenarios: not a directory (a folder of traces, or none)" if args.scenarios
               else "no scenario corpus here: $DAXFUZZ_HOME names no daxfuzz checkout "
               "(or pass --scenarios DIR / none)" if os.environ.get("DAXFUZZ_HOME")
               else "no scenario corpus here (pass --scenarios DIR or none)")
        raise InputError(why, path=scenarios)
    if args.db and args.db.startswith(("redis://", "rediss://", "unix://")):
        from daxfuzz.campaign.hypothesis_db import open_database

        db = open_database(args.db)  # ConfigError now: no `fleet` extra, a bad URL
        try:
            db.inner.redis.ping()  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001 - redis's ConnectionError, TimeoutError...
            say(f"--db {args.db}: the Redis server does not answer ({e}); this run's "
                "examples are not shared until it does")
    elif args.db not in (None, "none"):
        try:
            out_dir(args.db)
        except argparse.ArgumentTypeError as e:
            raise InputError(f"--db: {e}") from None
    findings = args.findings or default_path("findings")
    if args.engine == "portfolio":  # atheris's corpus beside Hypothesis's database
        corpus = os.path.join(args.corpus or default_path("corpus"), "atheris")
    else:
        corpus = args.corpus or (default_path("corpus") if args.engine != "atheris"
                                 else default_path("corpus", "atheris"))
    return FuzzConfig(
        engine=args.engine, target=args.target, geometry=args.geometry or DEFAULT,
        seconds=args.time, jobs=args.jobs, seed=args.seed, findings=findings, corpus=corpus,
        db=args.db or os.path.join(args.corpus or default_path("corpus"), "hypothesis-db"),
        scenarios=scenarios, campaign=args.campaign or os.path.join(findings, "campaign"),
        weights=args.weights or "", parsed_weights=weights, swarm=args.swarm,
        max_ops=args.max_ops, quiet=args.quiet)


#: the Hypothesis profiles fuzz/hypothesis_machine.py registers and loads at import
#: (HYPOTHESIS_PROFILE): checked before that import, which fails on any other
HYPOTHESIS_PROFILES = ("dev", "ci", "campaign")


def _check_hypothesis_env() -> None:
    """HYPOTHESIS_PROFILE and DAXFUZZ_HYPOTHESIS_GENERATION, before the workers start:
    a worker failing on them died with a traceback and fuzzed nothing."""
    prof = os.environ.get("HYPOTHESIS_PROFILE")
    if prof and prof not in HYPOTHESIS_PROFILES:
        raise ConfigError(f"$HYPOTHESIS_PROFILE={prof!r}: expected one of "
                          f"{', '.join(HYPOTHESIS_PROFILES)}")
    from fuzz.hypothesis_machine import GENERATIONS

    gen = os.environ.get("DAXFUZZ_HYPOTHESIS_GENERATION")
    if gen and gen not in GENERATIONS:
        raise ConfigError(f"$DAXFUZZ_HYPOTHESIS_GENERATION={gen!r}: expected one of "
                          f"{', '.join(GENERATIONS)}")


def run(args: argparse.Namespace) -> int:
    from daxfuzz.campaign.fuzz import fuzz_campaign
    from daxfuzz.campaign.progress import summary

    cfg = config(args)
    st, camp = fuzz_campaign(cfg, sys.stderr)
    print(summary(st, cfg.findings))
    for line in st.crashed + st.failed:  # what it found is saved; the run is not whole
        print(f"daxfuzz: {line}", file=sys.stderr)
    if not st.execs and not st.crashed and not st.failed:
        print(f"daxfuzz: warning: no input ran in {cfg.seconds:g} s (atheris needs 1.5-4 s "
              "to start; give --time more): nothing was fuzzed", file=sys.stderr)
    if not args.no_report:
        from daxfuzz.campaign.report import write_report

        try:
            html, md = write_report(camp.path)
            print(f"  report: {html}\n          {md}")
        except Exception as e:  # noqa: BLE001 - the findings are saved; say, do not lose them
            print(f"  report: failed ({type(e).__name__}: {e}); rerun `daxfuzz report "
                  f"{camp.path}`", file=sys.stderr)
    if st.crashed:
        print("daxfuzz: internal error: a fuzzing worker died (its traceback is above; "
              "please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    if st.failed:
        return EXIT_BAD_INPUT
    return EXIT_DIVERGENCE if st.findings else EXIT_AGREE


def register(subparsers) -> None:
    """Add `daxfuzz fuzz`."""
    p = subparsers.add_parser("fuzz", help="fuzz a target with an engine",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=ENGINES, default="portfolio",
                   help="portfolio (default): random, Hypothesis and atheris in turn, "
                        "sharing findings (see the README's mutation benchmark)")
    p.add_argument("--target", default=None,
                   help="target name (see `daxfuzz targets`; default $DAXFUZZ_TARGET, else "
                        "mainline)")
    p.add_argument("--time", type=duration, default=60.0,
                   help="how long to fuzz: seconds, or 10m, 8h (default 60)")
    p.add_argument("--jobs", type=jobs, default=1,
                   help="parallel workers, at most 4 per core (atheris: libFuzzer -fork; "
                        "others: processes)")
    p.add_argument("--seed", type=seed, default=None, help="random seed (default: random)")
    p.add_argument("--corpus", type=out_dir, default=None,
                   help="atheris corpus dir (default corpus/atheris, which git ignores); "
                        "hypothesis keeps its example database in CORPUS/hypothesis-db "
                        "(default corpus/), the portfolio both in CORPUS; relative to "
                        "DAXFUZZ_HOME or the checkout")
    p.add_argument("--findings", type=out_dir, default=None,
                   help="findings folder (default findings/ in DAXFUZZ_HOME or the checkout)")
    p.add_argument("--scenarios", default=None,
                   help="scenario traces whose documented divergences on the target are "
                        "known, not news (default corpus/ of DAXFUZZ_HOME or the checkout; "
                        "none: every divergence is news)")
    p.add_argument("--db", default=None,
                   help="hypothesis example database: a folder (default CORPUS/hypothesis-db), "
                        "redis://HOST:PORT/N to share one across a fleet, or none")
    p.add_argument("--campaign", type=out_dir, default=None,
                   help="campaign folder: runs, time series, report (default FINDINGS/campaign)")
    p.add_argument("--no-report", action="store_true",
                   help="no report.html/report.md at the end (`daxfuzz report` draws it later)")
    p.add_argument("--geometry", type=geometry, default=None,
                   help="world geometry (trace-header form)")
    p.add_argument("--weights", default=None,
                   help="op mix, e.g. fault=40,memory_failure=0 (defaults: "
                        + ",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()) + ")")
    p.add_argument("--swarm", action="store_true",
                   help="swarm testing: switch off a random subset of op kinds per batch")
    p.add_argument("--max-ops", type=count(1, MAX_OPS, "an op count"), default=32,
                   help=f"ops per input, 1..{MAX_OPS} (byte engines)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=run)
