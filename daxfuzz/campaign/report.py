"""The campaign report: one self-contained HTML page and a Markdown summary.

    write_report(CAMPAIGN_DIR) -> (report.html, report.md)

From the campaign folder (`daxfuzz.campaign.folder`): the runs in state.json and the time
series in series.jsonl; from each run's findings folder: the reduced traces, each
replayed with provenance (`daxfuzz.core.runner.explain`) so the report names the kernel
function that last wrote the diverging field.  Plots (matplotlib, Agg backend) are
written to plots/*.png and embedded in the HTML.

Sections: a summary on top (what ran, what was found, what to do next), runs,
per-target totals, execs and coverage over time, op mix, findings (commands to
replay, test and write a C reproducer; reduced trace; explanation).  A killed run's
totals come from its last time-series sample.  Corrupt records are reported by name
and skipped.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shlex
import time
from collections.abc import Callable

from daxfuzz.campaign.folder import read_series, say
from daxfuzz.errors import InputError
from daxfuzz.textio import read_json

Report = Callable[[str], None]


# ---------------------------------------------------------------- data ---------------
def load_runs(camp: str, report: Report = say) -> list[dict]:
    """The runs of a campaign folder (read only: a corrupt state.json is reported)."""
    p = os.path.join(camp, "state.json")
    if not os.path.exists(p):
        return []
    try:
        st = read_json(p)
        runs = st["runs"] if isinstance(st, dict) else None
        if not isinstance(runs, list):
            raise TypeError("'runs' is not a list")
    except (InputError, KeyError, TypeError) as e:
        report(f"{p}: unreadable campaign state ({e}); runs table left empty")
        return []
    from daxfuzz.campaign.folder import check_runs

    return check_runs(runs, p, lambda m: report(m.replace("; quarantined", "; left out")))[0]


def load_findings(dirs: list[str], report: Report = say) -> list[dict]:
    """Every reduced finding in `dirs`, with its trace text and explanation."""
    from daxfuzz.core.emit import test_path_for
    from daxfuzz.core.reduce import UNREDUCED
    from daxfuzz.core.runner import explain
    from daxfuzz.errors import InputError
    from daxfuzz.vocab.trace import read_trace

    out = []
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(".trace") or name.count(".") != 1:
                continue  # raw engine traces are <stem>.<engine>.trace
            path = os.path.join(d, name)
            try:
                t = read_trace(path)
            except InputError as e:
                report(f"{e} (finding left out of the report)")
                continue
            words = t.expect.split()
            if len(words) != 2 or words[0] != "divergence" or t.target is None:
                continue
            try:
                div = explain(t.target, t.geometry, t.ops)
                why = div.report() if div is not None else "no longer diverges on replay"
            except Exception as e:  # noqa: BLE001 - e.g. a target since renamed: say so
                why = f"replay failed: {type(e).__name__}: {e}"
            out.append({"signature": words[1], "target": t.target, "path": path,
                        "ops": len(t.ops), "trace": str(t), "explanation": why,
                        "mtime": os.path.getmtime(path), "test": test_path_for(path),
                        "unreduced": UNREDUCED in t.description,
                        "no_c": "memory_failure" in {op.name for op in t.ops}})
    return out


def recover_killed(runs: list[dict], series: list[dict]) -> list[dict]:
    """`runs`, a killed run's totals taken from its last time-series sample (a killed
    run never wrote them to state.json); such a run gets ``recovered`` True."""
    last: dict[int, dict] = {}
    for rec in series:
        if rec["run"] not in last or rec["t"] >= last[rec["run"]]["t"]:
            last[rec["run"]] = rec
    out = []
    for r in runs:
        rec = last.get(r.get("id"))
        if r.get("status") == "killed" and rec is not None and not r.get("execs"):
            r = dict(r, recovered=True, execs=int(rec.get("execs") or 0),
                     steps=int(rec.get("steps") or 0), cov=rec.get("cov"),
                     corpus=rec.get("corpus"), seconds=rec.get("elapsed"),
                     new_count=int(rec.get("findings") or 0))
        out.append(r)
    return out


def new_count(r: dict) -> int:
    """New findings of run `r` (a killed run's from its time series)."""
    return len(r.get("new_findings") or ()) or r.get("new_count", 0)


def _steps(r: dict) -> str:
    # atheris runs before ops were counted through the harness recorded 0: unknown
    if r.get("engine") == "atheris" and not r.get("steps"):
        return "-"
    return f"{r.get('steps') or 0:,}"


def commands(f: dict) -> list[tuple[str, str]]:
    """What to run for finding `f`: replay it, its test, its C reproducer (paths shell-
    quoted: a finding file named ``x$(cmd).trace`` must not run `cmd` when pasted)."""
    path, test = shlex.quote(f["path"]), shlex.quote(f["test"])
    out = [("replay", f"daxfuzz replay --explain {path}"), ("test", f"pytest {test}")]
    if f.get("unreduced"):
        out.insert(0, ("reduce", f"daxfuzz reduce {path}"))
    out.append(("C reproducer", "none: a memory_failure step has no syscall in the guest"
                if f.get("no_c") else f"daxfuzz kernel repro {path} -o repro.c"))
    return out


def is_new(f: dict, runs: list[dict]) -> bool:
    """Was finding `f` new in these runs (named by a run, or written by a killed run that
    did not know it)?"""
    for r in runs:
        if f["signature"] in (r.get("new_findings") or ()) and f["target"] == r.get("target"):
            return True
        if r.get("recovered") and f["target"] == r.get("target") and f["signature"] not in (
                r.get("known") or ()) and r["start"] <= f["mtime"] <= r["start"] + (
                r.get("seconds") or 0) + 60:
            return True
    return False


def summary(runs: list[dict], findings: list[dict], queued: int = 0) -> dict:
    """The report's top block: what ran, what was found, what to do next."""
    new = [f for f in findings if is_new(f, runs)]
    killed = [r for r in runs if r.get("status") == "killed"]
    s = {"runs": len(runs), "killed": len(killed),
         "engines": sorted({r.get("engine", "?") for r in runs}),
         "targets": sorted({r.get("target", "?") for r in runs}),
         "seconds": sum(r.get("seconds") or 0 for r in runs),
         "execs": sum(r.get("execs") or 0 for r in runs),
         "new": len(new), "known": len(findings) - len(new),
         # signatures the runs started knowing (stored findings, the corpus's documented)
         "skipped": len({k for r in runs for k in r.get("known") or ()}),
         # divergences the target's base kernel shows too (daxfuzz.core.known): the base's
         "base": sorted({k for r in runs for k in r.get("base_findings") or ()}),
         "unreduced": sum(f["unreduced"] for f in findings), "queued": queued}
    nxt = []
    if new:
        f = new[0]
        nxt.append(f"Look at the new finding{'s' if len(new) > 1 else ''} below, first "
                   f"{f['signature']} on {f['target']}: `daxfuzz replay --explain "
                   f"{shlex.quote(f['path'])}`")
        nxt.append("Each finding lists its replay, pytest and C reproducer commands; "
                   "a bug in a real target goes to upstream as `daxfuzz kernel repro`'s C file.")
    else:
        r = max(runs, key=lambda r: r.get("id", 0), default={})
        other = [e for e in ("portfolio", "atheris", "random") if e != r.get("engine")][0]
        nxt.append("No new divergence: fuzz longer, or with another engine: `daxfuzz fuzz "
                   f"--engine {other} --target {r.get('target', 'mainline')} --time 8h`")
    if s["unreduced"]:
        nxt.append(f"{s['unreduced']} finding(s) hit the reduction time limit: "
                   "`daxfuzz reduce FILE` finishes each (listed below).")
    if killed:
        nxt.append(f"{len(killed)} run(s) were killed: their totals come from the time series"
                   + (f"; {queued} finding(s) they queued are reduced by the next "
                      "`daxfuzz fuzz`" if queued else "") + ".")
    s["next"] = nxt
    return s


def summary_lines(s: dict) -> list[str]:
    """The summary as three sentences and the next steps (Markdown)."""
    h = s["seconds"] / 3600
    took = f"{h:.1f} h" if h >= 1 else f"{s['seconds'] / 60:.1f} min"
    return [f"**Ran:** {s['runs']} run(s) ({s['killed']} killed) of "
            f"{', '.join(s['engines'])} on {', '.join(s['targets'])}: {took} of fuzzing, "
            f"{s['execs']:,} execs.",
            f"**Found:** {s['new']} new finding(s), {s['known']} from earlier runs"
            + (f", {s['unreduced']} not fully reduced" if s["unreduced"] else "")
            + (f"; {s['queued']} queued, not yet reduced" if s["queued"] else "")
            + (f"; {s['skipped']} known divergence(s) skipped (stored findings and the "
               "scenario corpus's documented ones)" if s.get("skipped") else "")
            + ("; the base kernel's own, shown on the same ops (not the target's): "
               + ", ".join(s["base"]) if s.get("base") else "") + ".",
            "**Next:**", *[f"- {n}" for n in s["next"]]]


def _md_summary(s: dict) -> list[str]:
    lines = summary_lines(s)
    return [x for line in lines for x in ((line, "") if not line.startswith("- ") else (line,))]


def per_target(runs: list[dict]) -> list[dict]:
    """Totals per target over the runs."""
    rows: dict[str, dict] = {}
    for r in runs:
        t = rows.setdefault(r.get("target", "?"), {
            "target": r.get("target", "?"), "runs": 0, "engines": set(), "seconds": 0.0,
            "execs": 0, "steps": 0, "new": 0, "killed": 0})
        t["runs"] += 1
        t["engines"].add(r.get("engine", "?"))
        t["seconds"] += r.get("seconds") or 0.0
        t["execs"] += r.get("execs") or 0
        t["steps"] += r.get("steps") or 0
        t["new"] += new_count(r)
        t["killed"] += r.get("status") == "killed"
    for t in rows.values():
        t["engines"] = ", ".join(sorted(t["engines"]))
        t["rate"] = t["execs"] / t["seconds"] if t["seconds"] else 0.0
    return sorted(rows.values(), key=lambda t: t["target"])


# ---------------------------------------------------------------- plots --------------
NO_PLOTS = ("(no charts: matplotlib is not installed; `pip install 'daxfuzz[report]'` and "
            "`daxfuzz report DIR` draws them)")


def _plots(runs: list[dict], series: list[dict], outdir: str) -> dict[str, str]:
    """Draw the PNGs; name -> path.  Without matplotlib (the `report` extra) none: the
    report is the tables alone, and says how to get the charts."""
    try:
        import matplotlib
    except ImportError:
        return {}

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    by_run: dict[int, list[dict]] = {}
    for rec in series:
        by_run.setdefault(rec.get("run"), []).append(rec)
    groups = run_groups(runs)
    colour = {label: f"C{i % 10}" for i, (label, _ids) in enumerate(groups)}
    group_of = {rid: label for label, ids in groups for rid in ids}
    t0 = min((rec["t"] for rec in series if "t" in rec), default=0.0)
    out = {}
    for key, ylabel, fname in (("execs", "execs (inputs / examples)", "execs.png"),
                               ("cov", "coverage: libFuzzer cov (atheris),\n"
                                       "folio transitions (others)", "coverage.png"),
                               ("findings", "new findings", "findings.png")):
        fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
        labelled: set[str] = set()
        for rid, recs in sorted(by_run.items(), key=lambda kv: kv[0]):
            pts = [((r["t"] - t0) / 60, r[key]) for r in recs
                   if isinstance(r.get(key), int | float) and "t" in r]
            if not pts:
                continue
            label = group_of.get(rid, f"#{rid:g}")
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="." if len(pts) < 30 else None,
                    color=colour.get(label, "C9"),
                    label=None if label in labelled else label,
                    drawstyle="steps-post" if key == "findings" else "default")
            labelled.add(label)
        ax.set_xlabel("campaign wall time (minutes)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if labelled:  # below the axes: it never covers a line
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                      ncol=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        out[key] = os.path.join(outdir, fname)
        _save_png(fig, out[key], bbox_inches="tight")
        plt.close(fig)
    mix = op_mix(runs)
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
    if mix:
        total = sum(mix.values())
        kinds = sorted(mix, key=mix.get)
        ax.barh(kinds, [100 * mix[k] / total for k in kinds], color="#4c72b0")
        ax.set_xlabel("share of ops run (%)")
    else:
        ax.text(0.5, 0.5, "no op mix recorded", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    out["op_mix"] = os.path.join(outdir, "op_mix.png")
    _save_png(fig, out["op_mix"])
    plt.close(fig)
    return out


def _save_png(fig, path: str, **kw: object) -> None:
    """`fig` as a PNG at `path`, atomically (a full disk left a 0-byte plot, and the
    image library's error named no file: an internal error)."""
    import io

    from daxfuzz.textio import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kw)
    write_bytes_atomic(path, buf.getvalue())


def run_groups(runs: list[dict]) -> list[tuple[str, list[int]]]:
    """Legend entries: one per engine on target, naming its runs in numeric order
    ("random on 7.2: #1-#3, #5"), ordered by their first run."""
    ids: dict[str, list[int]] = {}
    for r in sorted(runs, key=lambda r: r["id"]):
        ids.setdefault(f"{r.get('engine')} on {r.get('target')}", []).append(r["id"])
    return [(f"{k}: {_ranges(v)}", v) for k, v in ids.items()]


def _ranges(ids: list[int]) -> str:
    out: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(out)


def op_mix(runs: list[dict]) -> dict[str, int]:
    mix: dict[str, int] = {}
    for r in runs:
        for k, n in (r.get("op_mix") or {}).items():
            mix[k] = mix.get(k, 0) + n
    return mix


# ---------------------------------------------------------------- render -------------
def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _run_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for r in runs:
        secs = r.get("seconds")
        rate = f"{r['execs'] / secs:,.0f}" if secs and r.get("execs") is not None else "-"
        status = r.get("status", "?") + (" (from series)" if r.get("recovered")
                                         else "")
        rows.append([str(r.get("id")), r.get("engine", "?"), r.get("target", "?"),
                     str(r.get("jobs", 1)), _when(r.get("start")), status,
                     f"{secs:.0f}" if secs else "-", f"{r.get('execs') or 0:,}", rate,
                     _steps(r), "-" if r.get("cov") is None else str(r["cov"]),
                     str(new_count(r)), str(len(r.get("known") or ()))])
    return rows


RUN_HEAD = ["run", "engine", "target", "jobs", "started", "status", "s", "execs", "execs/s",
            "ops", "cov", "new", "known"]
TARGET_HEAD = ["target", "runs", "engines", "s", "execs", "execs/s", "ops", "new findings",
               "killed runs"]


def _target_rows(runs: list[dict]) -> list[list[str]]:
    return [[t["target"], str(t["runs"]), t["engines"], f"{t['seconds']:.0f}",
             f"{t['execs']:,}", f"{t['rate']:,.0f}", f"{t['steps']:,}", str(t["new"]),
             str(t["killed"])] for t in per_target(runs)]


def render_markdown(camp: str, runs, series, findings, plots, summ: dict) -> str:
    def table(head, rows):
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    rel = {k: os.path.relpath(p, camp) for k, p in plots.items()}
    mix = op_mix(runs)
    total = sum(mix.values()) or 1
    out = [f"# daxfuzz campaign report: {camp}", "", *_md_summary(summ), "",
           f"{len(series)} time-series samples.", "",
           "## Runs", "", table(RUN_HEAD, _run_rows(runs)), "",
           "## Per target", "", table(TARGET_HEAD, _target_rows(runs)), "",
           "## Over time", "",
           *([f"![execs]({rel['execs']}) ![coverage]({rel['cov']}) "
              f"![findings]({rel['findings']})"] if rel else [NO_PLOTS]), "",
           "## Op mix", "", *([f"![op mix]({rel['op_mix']})"] if rel else []), "",
           table(["op", "count", "share"],
                 [[k, f"{n:,}", f"{100 * n / total:.1f}%"]
                  for k, n in sorted(mix.items(), key=lambda kv: -kv[1])]), "",
           "## Findings", ""]
    if not findings:
        out.append("None.")
    for f in findings:
        out += [f"### {f['signature']} on {f['target']} ({f['ops']} ops"
                + (", not fully reduced" if f["unreduced"] else "") + ")", "",
                *[f"- {k}: `{c}`" if c.startswith(("daxfuzz", "pytest")) else f"- {k}: {c}"
                  for k, c in commands(f)], "",
                "```", f["trace"].rstrip(), "```", "", "```", f["explanation"].rstrip(), "```",
                ""]
    if summ.get("kernel_rows"):
        out += kernel_markdown(summ["kernel_rows"])
    return "\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.l { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto;
      font-size: 0.85em; }
.plots img { max-width: 49%; } .finding { margin-bottom: 1.5em; }
.summary { font-size: 1.05em; background: #f4f8ff; border: 1px solid #c8d8f0;
           padding: 0.2em 1em; } .finding th { text-align: left; }
"""


def render_html(camp: str, runs, series, findings, plots, summ: dict) -> str:
    e = html.escape

    def table(head, rows):
        h = "".join(f"<th>{e(c)}</th>" for c in head)
        b = "".join("<tr>" + "".join(
            f"<td class='l'>{e(c)}</td>" if not c[:1].isdigit() and c != "-" else f"<td>{e(c)}</td>"
            for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{h}</tr>{b}</table>"

    def img(key, alt):
        if key not in plots:
            return f"<p>{e(NO_PLOTS)}</p>" if key == "execs" else ""
        with open(plots[key], "rb") as f:
            data = base64.b64encode(f.read()).decode()
        return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'

    mix = op_mix(runs)
    total = sum(mix.values()) or 1
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>daxfuzz campaign "
             f"{e(camp)}</title><style>{CSS}</style></head><body>",
             f"<h1>daxfuzz campaign report</h1><p><code>{e(camp)}</code>, "
             f"{len(series)} time-series samples</p>", _summary_html(summ),
             "<h2>Runs</h2>", table(RUN_HEAD, _run_rows(runs)),
             "<h2>Per target</h2>", table(TARGET_HEAD, _target_rows(runs)),
             "<h2>Over time</h2><div class='plots'>", img("execs", "execs over time"),
             img("cov", "coverage over time"), img("findings", "findings over time"), "</div>",
             "<h2>Op mix</h2><div class='plots'>", img("op_mix", "op mix"), "</div>",
             table(["op", "count", "share"], [[k, f"{n:,}", f"{100 * n / total:.1f}%"]
                                               for k, n in sorted(mix.items(),
                                                                  key=lambda kv: -kv[1])]),
             "<h2>Findings</h2>"]
    if not findings:
        parts.append("<p>None.</p>")
    for f in findings:
        cmds = "".join(f"<tr><th>{e(k)}</th><td class='l'><code>{e(c)}</code></td></tr>"
                       for k, c in commands(f))
        parts.append(f"<div class='finding'><h3>{e(f['signature'])} on {e(f['target'])} "
                     f"({f['ops']} ops{', not fully reduced' if f['unreduced'] else ''})"
                     f"</h3><table>{cmds}</table>"
                     f"<pre>{e(f['trace'])}</pre><p>Explanation (replayed with provenance):"
                     f"</p><pre>{e(f['explanation'])}</pre></div>")
    if summ.get("kernel_rows"):
        parts.append(kernel_html(summ["kernel_rows"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_html(summ: dict) -> str:
    def md(line: str) -> str:  # **bold** and `code` of summary_lines, escaped
        line = html.escape(line)
        line = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", line)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", line)

    lines = summary_lines(summ)
    items = "".join(f"<li>{md(x[2:])}</li>" for x in lines if x.startswith("- "))
    head = "".join(f"<p>{md(x)}</p>" for x in lines if not x.startswith("- "))
    return f"<div class='summary'>{head}<ul>{items}</ul></div>"


def write_report(camp: str, findings_dirs: list[str] | None = None,
                 report: Report = say) -> tuple[str, str]:
    """Write CAMP/report.html, CAMP/report.md and CAMP/plots/*.png; their paths."""
    from daxfuzz.campaign.folder import queued, write_text_atomic

    series = read_series(os.path.join(camp, "series.jsonl"), report)
    runs = recover_killed(load_runs(camp, report), series)
    dirs = findings_dirs or sorted({r["findings_dir"] for r in runs if r.get("findings_dir")})
    if not dirs and os.path.basename(os.path.abspath(camp)) == "campaign":
        dirs = [os.path.dirname(os.path.abspath(camp))]
    found = load_findings(dirs, report)
    plots = _plots(runs, series, os.path.join(camp, "plots"))
    h = os.path.join(camp, "report.html")
    m = os.path.join(camp, "report.md")
    summ = summary(runs, found, sum(len(queued(d)) for d in dirs))
    kdirs = dict.fromkeys(os.path.abspath(x) for x in [*dirs, camp, os.path.dirname(
        os.path.abspath(camp))] if is_kernel_campaign(x))
    krows = [r for x in kdirs for r in kernel_rows(kernel_findings(x, report), camp)]
    if krows:
        summ["kernel_rows"] = krows
        summ["next"].append(f"{len(krows)} real-kernel finding(s) and model gap(s): each "
                            "folder's README.md says what the kernel did (listed below).")
    write_text_atomic(h, render_html(camp, runs, series, found, plots, summ))
    write_text_atomic(m, render_markdown(camp, runs, series, found, plots, summ))
    return h, m


# ---------------------------------------------------------------- real kernel ---------
KERNEL_CLASSES = ("kernel-finding", "model-gap")


def kernel_findings(d: str, report: Report = say) -> list[dict]:
    """The finding folders (daxfuzz/guest/kfinding.py) under `d`/kernel-finding/ and
    `d`/model-gap/, as dicts with their folder; a folder without a readable
    finding.json is reported and listed by name only."""
    from dataclasses import asdict

    from daxfuzz.guest.kfinding import read_info

    out = []
    for cls in KERNEL_CLASSES:
        base = os.path.join(d, cls)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            folder = os.path.join(base, name)
            if not os.path.isdir(folder) or name.startswith("."):
                continue
            info = read_info(folder)
            if info is None:
                report(f"{folder}: no readable finding.json (listed by name only)")
                out.append({"name": name, "cls": cls.replace("-", " "), "kind": "?",
                            "ops": 0, "folder": folder, "trace": "", "reduced": ""})
                continue
            out.append(dict(asdict(info), folder=folder))
    return out


def is_kernel_campaign(d: str) -> bool:
    """Whether `d` is a `daxfuzz kernel fuzz` (or `kernel run --out`) folder."""
    return any(os.path.isdir(os.path.join(d, c)) for c in KERNEL_CLASSES) or (
        os.path.exists(os.path.join(d, "summary.json"))
        and not os.path.exists(os.path.join(d, "state.json")))


def kernel_rows(found: list[dict], root: str) -> list[dict]:
    """One row per finding: links relative to `root` (where the report is written)."""
    rows = []
    for f in found:
        rel = os.path.relpath(f["folder"], root)
        red = f.get("reduction") or {}
        if f.get("reduced"):
            size = f"{f['ops']} -> {f['reduced_ops']}"
            how = (f"{red.get('rounds', 0)} rounds, {red.get('boots', 0)} boots, "
                   f"{red.get('seconds', 0):.0f} s" + ("" if red.get("complete")
                                                       else ", not 1-minimal"))
        else:
            size = str(f["ops"])
            how = red.get("why") or red.get("skipped") or "not reduced"
        repro = f.get("repro", "")
        rows.append({"class": f["cls"], "name": f["name"], "readme": f"{rel}/README.md",
                     "kind": f["kind"], "ops": size, "reduction": how,
                     "trace": f"{rel}/{f.get('reduced') or f.get('trace')}",
                     "repro": f"{rel}/repro.c" if repro == "repro.c" else "",
                     "first_report": f.get("first_report", "")})
    return rows


def kernel_markdown(rows: list[dict]) -> list[str]:
    """The Markdown section listing kernel findings and model gaps."""
    out = ["## Real-kernel findings", ""]
    if not rows:
        return [*out, "None.", ""]
    out += ["| class | finding | kind | ops (before -> reduced) | reduction | trace | C |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['class']} | [{r['name']}]({r['readme']}) | `{r['kind']}` | "
                   f"{r['ops']} | {r['reduction']} | [trace]({r['trace']}) | "
                   + (f"[repro.c]({r['repro']})" if r["repro"] else "-") + " |")
    return [*out, ""]


def kernel_html(rows: list[dict]) -> str:
    e = html.escape
    if not rows:
        return "<h2>Real-kernel findings</h2><p>None.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("class", "finding", "kind", "ops", "reduction",
                                              "trace", "C"))
    body = "".join(
        f"<tr><td class='l'>{e(r['class'])}</td><td class='l'><a href='{e(r['readme'])}'>"
        f"{e(r['name'])}</a></td><td class='l'><code>{e(r['kind'])}</code></td>"
        f"<td>{e(r['ops'])}</td><td class='l'>{e(r['reduction'])}</td>"
        f"<td class='l'><a href='{e(r['trace'])}'>trace</a></td><td class='l'>"
        + (f"<a href='{e(r['repro'])}'>repro.c</a>" if r["repro"] else "-") + "</td></tr>"
        for r in rows)
    return f"<h2>Real-kernel findings</h2><table><tr>{head}</tr>{body}</table>"


def _checked_summary(summ: dict) -> dict:
    """A `kernel fuzz` summary.json's figures, each of the type the report prints (a
    number, a {class: count} map, a list of reduction records); TypeError otherwise."""
    num = (int, float)
    for k in ("traces", "steps", "agreed_steps", "seconds", "boots"):
        if not isinstance(summ.get(k, 0), num) or isinstance(summ.get(k, 0), bool):
            raise TypeError(f"{k!r} is not a number")
    by = summ.get("by_class") or {}
    if not isinstance(by, dict) or not all(isinstance(n, int) for n in by.values()):
        raise TypeError("'by_class' is not a {class: count} object")
    red = summ.get("reductions") or []
    if not isinstance(red, list) or not all(
            isinstance(r, dict) and all(isinstance(r.get(k, 0), num)
                                        for k in ("boots", "seconds")) for r in red):
        raise TypeError("'reductions' is not a list of {boots, seconds: number} records")
    return summ


def write_kernel_report(d: str, report: Report = say) -> tuple[str, str]:
    """DIR/report.html and DIR/report.md of a `kernel fuzz` folder: its summary.json
    figures, its reductions and a row per finding folder, linked."""
    from daxfuzz.campaign.folder import write_text_atomic

    summ: dict = {}
    p = os.path.join(d, "summary.json")
    if os.path.exists(p):
        try:
            summ = read_json(p)  # type: ignore[assignment]
            if not isinstance(summ, dict):
                raise TypeError("not an object")
            summ = _checked_summary(summ)
        except (InputError, TypeError) as ex:
            report(f"{p}: unreadable ({ex}); figures left out")
            summ = {}
    rows = kernel_rows(kernel_findings(d, report), d)
    lines = [f"# daxfuzz kernel fuzz report: {d}", ""]
    if summ:
        by = summ.get("by_class") or {}
        lines += [f"**Ran:** {summ.get('traces', 0)} traces, {summ.get('steps', 0)} steps "
                  f"compared ({summ.get('agreed_steps', 0)} agree) in "
                  f"{summ.get('seconds', 0):.0f} s, {summ.get('boots', 0)} boots.", "",
                  "**Found:** " + ", ".join(f"{k}: {n}" for k, n in by.items()) + ".", ""]
        red = [r for r in summ.get("reductions") or [] if not r.get("skipped")]
        if red:
            lines += [f"**Reduced on the guest:** {len(red)} finding(s), "
                      f"{sum(r.get('boots', 0) for r in red)} boots, "
                      f"{sum(r.get('seconds', 0) for r in red):.0f} s.", ""]
    lines += kernel_markdown(rows)
    md = "\n".join(lines) + "\n"
    e = html.escape
    bold = re.compile(r"[*][*](.+?)[*][*]")
    body = "".join("<p>" + bold.sub(r"<b>\1</b>", e(x)) + "</p>"
                   for x in lines[2:] if x.startswith("**"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>daxfuzz kernel fuzz "
            f"{e(d)}</title><style>{CSS}</style></head><body><h1>daxfuzz kernel fuzz report"
            f"</h1><p><code>{e(d)}</code></p><div class='summary'>{body}</div>"
            f"{kernel_html(rows)}</body></html>\n")
    h, m = os.path.join(d, "report.html"), os.path.join(d, "report.md")
    write_text_atomic(h, page)
    write_text_atomic(m, md)
    return h, m
