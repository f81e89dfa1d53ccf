"""The campaign report: one self-contained HTML page and a Markdown summary.

    write_report(CAMPAIGN_DIR) -> (report.html, report.md)

From the campaign folder (`daxfuzz.campaign`): the runs in state.json and the time
series in series.jsonl; from each run's findings folder: the reduced traces, each
replayed with provenance (`daxfuzz.runner.explain`) so the report names the kernel
function that last wrote the diverging field.  Plots (matplotlib, Agg backend) are
written to plots/*.png and embedded in the HTML.

Sections: runs, per-target totals, execs and coverage over time, op mix, findings
(reduced trace and explanation).  Corrupt records are reported by name and skipped.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Callable

from daxfuzz.campaign import read_series, say

Report = Callable[[str], None]


# ---------------------------------------------------------------- data ---------------
def load_runs(camp: str, report: Report = say) -> list[dict]:
    """The runs of a campaign folder (read only: a corrupt state.json is reported)."""
    p = os.path.join(camp, "state.json")
    if not os.path.exists(p):
        return []
    try:
        with open(p, encoding="utf-8") as f:
            runs = json.load(f)["runs"]
        if not isinstance(runs, list):
            raise TypeError("'runs' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        report(f"{p}: unreadable campaign state ({e}); runs table left empty")
        return []
    from daxfuzz.campaign import check_runs

    return check_runs(runs, p, lambda m: report(m.replace("; quarantined", "; left out")))[0]


def load_findings(dirs: list[str], report: Report = say) -> list[dict]:
    """Every reduced finding in `dirs`, with its trace text and explanation."""
    from daxfuzz.errors import InputError
    from daxfuzz.runner import explain
    from daxfuzz.trace import read_trace

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
                        "mtime": os.path.getmtime(path)})
    return out


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
        t["new"] += len(r.get("new_findings") or ())
        t["killed"] += r.get("status") == "killed"
    for t in rows.values():
        t["engines"] = ", ".join(sorted(t["engines"]))
        t["rate"] = t["execs"] / t["seconds"] if t["seconds"] else 0.0
    return sorted(rows.values(), key=lambda t: t["target"])


# ---------------------------------------------------------------- plots --------------
def _plots(runs: list[dict], series: list[dict], outdir: str) -> dict[str, str]:
    """Draw the PNGs; name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    by_run: dict[int, list[dict]] = {}
    for rec in series:
        by_run.setdefault(rec.get("run"), []).append(rec)
    names = {r["id"]: f"#{r['id']} {r.get('engine')} on {r.get('target')}" for r in runs
             if "id" in r}
    t0 = min((rec["t"] for rec in series if "t" in rec), default=0.0)
    out = {}
    for key, ylabel, fname in (("execs", "execs (inputs / examples)", "execs.png"),
                               ("cov", "coverage: libFuzzer cov (atheris),\n"
                                       "folio transitions (others)", "coverage.png"),
                               ("findings", "new findings", "findings.png")):
        fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
        drawn = False
        for rid, recs in sorted(by_run.items(), key=lambda kv: str(kv[0])):
            pts = [((r["t"] - t0) / 60, r[key]) for r in recs
                   if isinstance(r.get(key), int | float) and "t" in r]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="." if len(pts) < 30 else None,
                        label=names.get(rid, f"#{rid}"),
                        drawstyle="steps-post" if key == "findings" else "default")
                drawn = True
        ax.set_xlabel("campaign wall time (minutes)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        out[key] = os.path.join(outdir, fname)
        fig.savefig(out[key])
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
    fig.savefig(out["op_mix"])
    plt.close(fig)
    return out


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
        rows.append([str(r.get("id")), r.get("engine", "?"), r.get("target", "?"),
                     str(r.get("jobs", 1)), _when(r.get("start")), r.get("status", "?"),
                     f"{secs:.0f}" if secs else "-", f"{r.get('execs') or 0:,}", rate,
                     f"{r.get('steps') or 0:,}", "-" if r.get("cov") is None else str(r["cov"]),
                     str(len(r.get("new_findings") or ())), str(len(r.get("known") or ()))])
    return rows


RUN_HEAD = ["run", "engine", "target", "jobs", "started", "status", "s", "execs", "execs/s",
            "ops", "cov", "new", "known"]
TARGET_HEAD = ["target", "runs", "engines", "s", "execs", "execs/s", "ops", "new findings",
               "killed runs"]


def _target_rows(runs: list[dict]) -> list[list[str]]:
    return [[t["target"], str(t["runs"]), t["engines"], f"{t['seconds']:.0f}",
             f"{t['execs']:,}", f"{t['rate']:,.0f}", f"{t['steps']:,}", str(t["new"]),
             str(t["killed"])] for t in per_target(runs)]


def render_markdown(camp: str, runs, series, findings, plots) -> str:
    def table(head, rows):
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    rel = {k: os.path.relpath(p, camp) for k, p in plots.items()}
    mix = op_mix(runs)
    total = sum(mix.values()) or 1
    out = [f"# daxfuzz campaign report: {camp}", "",
           f"{len(runs)} run(s), {sum(r.get('execs') or 0 for r in runs):,} execs, "
           f"{sum(r.get('steps') or 0 for r in runs):,} ops, {len(findings)} reduced "
           f"finding(s), {len(series)} time-series samples.", "",
           "## Runs", "", table(RUN_HEAD, _run_rows(runs)), "",
           "## Per target", "", table(TARGET_HEAD, _target_rows(runs)), "",
           "## Over time", "",
           f"![execs]({rel['execs']}) ![coverage]({rel['cov']}) "
           f"![findings]({rel['findings']})", "",
           "## Op mix", "", f"![op mix]({rel['op_mix']})", "",
           table(["op", "count", "share"],
                 [[k, f"{n:,}", f"{100 * n / total:.1f}%"]
                  for k, n in sorted(mix.items(), key=lambda kv: -kv[1])]), "",
           "## Findings", ""]
    if not findings:
        out.append("None.")
    for f in findings:
        out += [f"### {f['signature']} on {f['target']} ({f['ops']} ops)", "",
                f"`{f['path']}`; replay: `daxfuzz replay --explain {f['path']}`", "",
                "```", f["trace"].rstrip(), "```", "", "```", f["explanation"].rstrip(), "```",
                ""]
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
.summary { font-size: 1.05em; }
"""


def render_html(camp: str, runs, series, findings, plots) -> str:
    e = html.escape

    def table(head, rows):
        h = "".join(f"<th>{e(c)}</th>" for c in head)
        b = "".join("<tr>" + "".join(
            f"<td class='l'>{e(c)}</td>" if not c[:1].isdigit() and c != "-" else f"<td>{e(c)}</td>"
            for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{h}</tr>{b}</table>"

    def img(key, alt):
        with open(plots[key], "rb") as f:
            data = base64.b64encode(f.read()).decode()
        return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'

    mix = op_mix(runs)
    total = sum(mix.values()) or 1
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>daxfuzz campaign "
             f"{e(camp)}</title><style>{CSS}</style></head><body>",
             f"<h1>daxfuzz campaign report</h1><p class='summary'><code>{e(camp)}</code>: "
             f"{len(runs)} run(s), {sum(r.get('execs') or 0 for r in runs):,} execs, "
             f"{sum(r.get('steps') or 0 for r in runs):,} ops, <b>{len(findings)} reduced "
             f"finding(s)</b>, {len(series)} time-series samples.</p>",
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
        parts.append(f"<div class='finding'><h3>{e(f['signature'])} on {e(f['target'])} "
                     f"({f['ops']} ops)</h3><p><code>{e(f['path'])}</code></p>"
                     f"<pre>{e(f['trace'])}</pre><p>Explanation (replayed with provenance):"
                     f"</p><pre>{e(f['explanation'])}</pre></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(camp: str, findings_dirs: list[str] | None = None,
                 report: Report = say) -> tuple[str, str]:
    """Write CAMP/report.html, CAMP/report.md and CAMP/plots/*.png; their paths."""
    from daxfuzz.campaign import write_text_atomic

    runs = load_runs(camp, report)
    series = read_series(os.path.join(camp, "series.jsonl"), report)
    dirs = findings_dirs or sorted({r["findings_dir"] for r in runs if r.get("findings_dir")})
    if not dirs and os.path.basename(os.path.abspath(camp)) == "campaign":
        dirs = [os.path.dirname(os.path.abspath(camp))]
    found = load_findings(dirs, report)
    plots = _plots(runs, series, os.path.join(camp, "plots"))
    h = os.path.join(camp, "report.html")
    m = os.path.join(camp, "report.md")
    write_text_atomic(h, render_html(camp, runs, series, found, plots))
    write_text_atomic(m, render_markdown(camp, runs, series, found, plots))
    return h, m
