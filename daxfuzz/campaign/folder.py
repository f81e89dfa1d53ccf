"""Campaign state on disk: runs, a time series, the queue of findings awaiting reduction.

A campaign folder (``daxfuzz fuzz --campaign DIR``, default ``FINDINGS/campaign``)::

    state.json      the runs so far (engine, target, start, end, status, totals, op mix);
                    rewritten atomically (temp file, fsync, rename)
    series.jsonl    one JSON object per line, appended and flushed about once a second:
                    run, wall time, elapsed, execs, ops, findings, coverage, corpus
    report.html     `daxfuzz report` (also at the end of every `daxfuzz fuzz`)
    report.md
    plots/*.png

and in the findings folder, ``queue/``: every finding an engine reports is first
written there, whole, as its raw trace (``daxfuzz.core.emit.save_finding``); it leaves the
queue only once its reduced trace and pytest test are written.  A run killed in
between leaves the raw trace queued, and the next run reduces it first
(:func:`drain_queue`).  So a finding is never lost: it is reduced, or queued.

Nothing here deletes a file it cannot read: a corrupt or truncated file is reported
by name and skipped (a corrupt ``state.json`` is moved aside, kept, and replaced; a
run record with a missing or wrong-typed field is moved to its ``quarantined_runs``
list).  Temp files (``.tmp-*``) a killed run left are removed by the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import stat
import sys
import time
from collections.abc import Callable

from daxfuzz.core.emit import QUEUE, Finding
from daxfuzz.errors import ConfigError, InputError, OutputError
from daxfuzz.textio import (
    MAX_SERIES_BYTES,
    read_json,
    read_tail,
    write_text_atomic,
)

Report = Callable[[str], None]


def say(msg: str) -> None:
    print(f"daxfuzz: {msg}", file=sys.stderr, flush=True)


def write_json_atomic(path: str, obj: object) -> None:
    """Write `obj` as JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


NUM = (int, float)
#: the fields of a run record (state.json "runs") and their types; id, status and start
#: are required.  A record that breaks this is quarantined, not trusted.
RUN_FIELDS: dict[str, tuple] = {
    "id": (int,), "pid": (int,), "start": NUM, "end": NUM + (type(None),),
    "status": (str,), "engine": (str,), "target": (str,), "jobs": (int,), "budget": NUM,
    "seed": (int, type(None)), "findings_dir": (str,), "corpus_dir": (str,),
    "geometry": (str,), "weights": (str,), "known": (list,), "execs": (int,),
    "steps": (int,), "cov": (int, type(None)), "corpus": (int, type(None)), "seconds": NUM,
    "op_mix": (dict,), "new_findings": (list,), "first_found": NUM + (type(None),),
    "base_findings": (list,), "members": (dict,),
}
RUN_STATUS = ("running", "done", "killed")


def run_problem(r: object) -> str | None:
    """Why `r` is not a usable run record, or None."""
    if not isinstance(r, dict):
        return f"not a run record ({type(r).__name__})"
    for k in ("id", "status", "start"):
        if k not in r:
            return f"no {k!r}"
    for k, types in RUN_FIELDS.items():
        v = r.get(k)
        if k in r and (not isinstance(v, types) or isinstance(v, bool)):
            return f"{k!r} is {type(v).__name__}, not {'/'.join(t.__name__ for t in types)}"
    if r["status"] not in RUN_STATUS:
        return f"status {r['status']!r} is not one of {', '.join(RUN_STATUS)}"
    if not all(isinstance(x, str) for k in ("new_findings", "known", "base_findings")
               for x in r.get(k, ()) or ()):
        return "a finding signature that is not a string"
    mix = r.get("op_mix") or {}
    if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
               for k, v in mix.items()):
        return "'op_mix' is not op -> count"
    return None


def check_runs(runs: list, where: str, report: Report) -> tuple[list[dict], list]:
    """The usable runs of `runs` and the others, each reported (`where`, run index)."""
    good, bad = [], []
    for i, r in enumerate(runs):
        why = run_problem(r)
        if why is None:
            good.append(r)
        else:
            bad.append(r)
            report(f"{where}: run #{i + 1} of the run list is unusable ({why}); quarantined")
    return good, bad


def clean_temp(dirs: list[str], report: Report = say, age: float = 60.0) -> None:
    """Remove the `.tmp-*` files a killed writer left in `dirs` (not recursive; only those
    older than `age` seconds: a live writer renames its own within milliseconds)."""
    now = time.time()
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            try:
                if n.startswith(".tmp-") and os.path.isfile(p) and \
                        now - os.path.getmtime(p) > age:
                    os.unlink(p)
                    report(f"{p}: removed a temp file left by a killed run")
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: the lock file a running campaign holds in its findings and campaign folders
LOCK = ".lock"


def lock_folder(path: str) -> int:
    """Hold `path`/.lock (flock, released when the process -- and the workers it forked
    -- exit, a kill included); its fd.  ConfigError naming the holder's pid when another
    run holds it."""
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise ConfigError(f"{path}: in use by another daxfuzz fuzz run (pid {held or '?'}); "
                          "give this one its own --findings (or --campaign)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Campaign:
    """One campaign folder: its runs (state.json) and its time series (series.jsonl)."""

    def __init__(self, path: str, report: Report = say) -> None:
        self.path = path
        self.report = report
        os.makedirs(path, exist_ok=True)
        self.state_path = os.path.join(path, "state.json")
        self.series_path = os.path.join(path, "series.jsonl")
        self.state = self._load_state()
        self.run: dict | None = None
        self._series = None
        self._last = 0.0

    # ---- state ----------------------------------------------------------------------
    def _load_state(self) -> dict:
        empty = {"version": 1, "runs": [], "artifacts_done": []}
        if not os.path.exists(self.state_path):
            return empty
        try:
            st = read_json(self.state_path)
            if not isinstance(st, dict) or not isinstance(st.get("runs"), list):
                raise ValueError("not a campaign state object")
            done = st.get("artifacts_done", [])
            if not isinstance(done, list) or not all(isinstance(x, str) for x in done):
                raise ValueError("'artifacts_done' is not a list of file names")
            sl = st.get("atheris_slice", {})
            if not isinstance(sl, dict) or not all(isinstance(sl.get(k, ""), str) for k in (
                    "weights", "target", "geometry")) or not isinstance(
                    sl.get("max_ops", 1), int) or not 1 <= sl.get("max_ops", 1) <= 10000:
                raise ValueError("'atheris_slice' is not {weights, target, geometry: str, "
                                 "max_ops: 1..10000}")
        except (InputError, ValueError) as e:
            aside = f"{self.state_path}.corrupt-{int(time.time())}"
            os.replace(self.state_path, aside)
            self.report(f"{self.state_path}: unreadable campaign state ({e}); kept as "
                        f"{aside}, starting a fresh run list (series.jsonl is kept)")
            return empty
        st.setdefault("artifacts_done", [])
        st["runs"], bad = check_runs(st["runs"], self.state_path, self.report)
        if bad:
            q = st.get("quarantined_runs")
            st["quarantined_runs"] = (q if isinstance(q, list) else []) + bad
        for r in st["runs"]:  # a run whose process is gone without finishing was killed
            if r.get("status") == "running" and not _pid_alive(r.get("pid", 0)):
                r["status"] = "killed"
        return st

    def save(self) -> None:
        write_json_atomic(self.state_path, self.state)

    def start_run(self, **meta: object) -> dict:
        """Record a new run (status running) and open the series for appending."""
        runs = self.state["runs"]
        run = {"id": 1 + max((r.get("id", 0) for r in runs), default=0), "pid": os.getpid(),
               "start": time.time(), "end": None, "status": "running", **meta}
        runs.append(run)
        self.run = run
        self.save()
        try:
            regular = stat.S_ISREG(os.stat(self.series_path).st_mode)
        except FileNotFoundError:
            regular = True
        if not regular:  # a FIFO or device there would block or swallow the appends
            aside = f"{self.series_path}.corrupt-{int(time.time())}"
            os.replace(self.series_path, aside)
            self.report(f"{self.series_path}: not a regular file; moved to {aside}, "
                        "starting a new time series")
        self._series = open(self.series_path, "a", encoding="utf-8")  # noqa: SIM115
        return run

    def sample(self, force: bool = False, **values: object) -> None:
        """Append one series record (at most about once a second unless `force`)."""
        now = time.monotonic()
        if self._series is None or (not force and now - self._last < 1.0):
            return
        self._last = now
        rec = {"run": self.run["id"], "t": round(time.time(), 3), **values}
        # a kill can cut this line short: read_series skips such a line, by number
        try:
            self._series.write(json.dumps(rec, sort_keys=True) + "\n")
            self._series.flush()
        except OSError as e:  # a full disk: the error names no file, say which
            raise OutputError(f"cannot write: {e.strerror}", path=self.series_path) from None

    def finish_run(self, status: str = "done", **totals: object) -> None:
        if self.run is None:
            return
        self.run.update(totals, end=time.time(), status=status)
        self.save()
        if self._series is not None:
            self._series.close()
            self._series = None

    def artifact_done(self, name: str) -> None:
        self.state["artifacts_done"].append(name)
        self.save()


def _finite(v: object) -> bool:
    return isinstance(v, NUM) and not isinstance(v, bool) and math.isfinite(v)


def read_series(path: str, report: Report = say) -> list[dict]:
    """The records of a series file; a malformed line is reported (file:line) and skipped,
    an unreadable file (a FIFO, a device) reported and left out.  Past MAX_SERIES_BYTES
    (weeks of samples) only the newest samples are read, and the report says so."""
    out: list[dict] = []
    if not os.path.exists(path):
        return out
    try:
        data, skipped = read_tail(path, MAX_SERIES_BYTES)
    except InputError as e:
        report(f"{e}; time series left out")
        return out
    if skipped:  # the first line read is a partial record
        cut = data.find(b"\n") + 1
        skipped, data = skipped + cut, data[cut:]
        report(f"{path}: {skipped} bytes of older samples left out (the newest "
               f"{MAX_SERIES_BYTES >> 20} MiB are read)")
    for n, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), 1):
        where = f"{path}:{n}" if not skipped else f"{path} (line {n} of its newest part)"
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError
        except ValueError:
            report(f"{where}: not a JSON record (a write cut short?); skipped")
            continue
        bad = [k for k in ("run", "t") if not _finite(rec.get(k))]
        bad += [k for k, v in rec.items() if k not in ("run", "t") and v is not None
                and not _finite(v)]
        if bad:
            report(f"{where}: record with a missing or non-finite "
                   f"{', '.join(bad)}; skipped")
            continue
        out.append(rec)
    return out


# ---- the finding queue -----------------------------------------------------------------
def queued(findings: str) -> list[str]:
    d = os.path.join(findings, QUEUE)
    if not os.path.isdir(d):
        return []
    return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".trace")
            and not n.startswith(".")]


def drain_queue(findings: str, report: Report = say) -> list[Finding]:
    """Reduce every queued raw finding (left by a killed run); the saved findings.

    A queued trace that is malformed is reported and kept where it is; one that no
    longer diverges (its target changed since) is moved to ``queue/stale/``.
    """
    from daxfuzz.core.emit import save_finding
    from daxfuzz.vocab.trace import read_trace
    from kdax.targets import get_target

    out: list[Finding] = []
    for path in queued(findings):
        try:
            raw = read_trace(path)
        except InputError as e:
            report(f"{e}; queued finding skipped, left in place")
            continue
        if raw.target is None:
            report(f"{path}: queued finding names no target; skipped, left in place")
            continue
        try:
            get_target(raw.target)
        except ConfigError as e:  # a target this daxfuzz does not have (a plugin gone?)
            report(f"{path}:{raw.target_line}: {e}; queued finding skipped, left in place")
            continue
        engine = os.path.basename(path).split("-", 1)[0]
        try:
            saved = save_finding(findings, raw, engine=engine, queued_path=path)
        except ValueError as e:
            stale = os.path.join(os.path.dirname(path), "stale")
            os.makedirs(stale, exist_ok=True)
            os.replace(path, os.path.join(stale, os.path.basename(path)))
            report(f"{path}: {e}; moved to {stale}/")
            continue
        out.append(saved)
    return out


# ---- scanning folders for damage -------------------------------------------------------
def scan(findings: str | None = None, corpus: list[str] | tuple[str, ...] = (),
         db: str | None = None, scenarios: str | None = None) -> list[str]:
    """One line per corrupt file in the findings, corpus, database and scenario folders
    (read only): a malformed trace, a trace naming a target this daxfuzz lacks."""
    from daxfuzz.vocab.trace import read_trace
    from kdax.targets import get_target

    def check(path: str, what: str, unknown: str | None = None) -> None:
        try:
            t = read_trace(path)
        except InputError as e:
            problems.append(f"{e} ({what})")
            return
        if t.target is not None:
            try:
                get_target(t.target)
            except ConfigError as e:
                problems.append(f"{path}:{t.target_line}: {e} ({unknown or what})")

    problems: list[str] = []
    if findings and os.path.isdir(findings):
        for name in sorted(os.listdir(findings)):
            if name.endswith(".trace"):
                check(os.path.join(findings, name), "finding skipped, left in place")
    if scenarios and os.path.isdir(scenarios):
        for root, _dirs, files in sorted(os.walk(scenarios)):
            for name in sorted(files):
                if name.endswith(".trace"):
                    check(os.path.join(root, name), "scenario trace skipped: what it "
                          "documents does not count as known", "scenario trace: its plain "
                          "expect line never applies")
    for d in corpus:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.endswith(".trace"):
                check(p, "corpus trace skipped, left in place")
            elif len(name) == 40 and os.path.isfile(p):  # libFuzzer names inputs by SHA-1
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError as e:
                    problems.append(f"{p}: unreadable corpus input ({e.strerror})")
                    continue
                if hashlib.sha1(data).hexdigest() != name:
                    problems.append(f"{p}: corpus input does not match its SHA-1 name "
                                    "(truncated write?); kept: every byte string is a "
                                    "valid input to the codec")
    if db and not db.startswith(("redis://", "rediss://", "unix://")) and db != "none":
        from daxfuzz.campaign.hypothesis_db import check_directory

        problems += [f"{p}; skipped, left in place" for p in check_directory(db)]
    return problems


def corpus_op_mix(corpus: str, g, weights: str = "", max_ops: int = 32,
                  limit: int = 5000) -> dict[str, int]:
    """Op kinds in the (first `limit`) byte inputs of an atheris corpus, decoded."""
    from fuzz.codec import Codec, parse_weights

    out: dict[str, int] = {}
    if not os.path.isdir(corpus):
        return out
    codec = Codec(g, parse_weights(weights))
    for name in sorted(os.listdir(corpus))[:limit]:
        p = os.path.join(corpus, name)
        if not os.path.isfile(p) or name.endswith(".trace"):
            continue
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for op in codec.decode(data, max_ops=max_ops):
            out[op.name] = out.get(op.name, 0) + 1
    return out
