"""`evalsuite dashboard`: one self-contained HTML page over the run registry, each metric across runs.

Every (task, metric) in the registry gets a small inline-SVG line chart over the registered runs, oldest
first, with stderr whiskers where a run reported one. Each point is compared with the previous run that has
the metric, by the same direction rule and gate as `evalsuite compare`: a point worse by more than `max_drop`
(a fraction, 0.05 for 5%) is a regression, drawn in red and listed under its chart. The page holds no script
and loads nothing (its content security policy forbids it), so it opens anywhere, offline; every string from
the registry is HTML-escaped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from corpus.io import atomic_write_text
from evalsuite.compare import MetricChange, lower_is_better, regressions
from evalsuite.registry import RunRecord, list_runs, run_agreement, run_metrics


class DashboardError(ValueError):
    """A registry that does not exist, cannot be read, or holds no runs."""


@dataclass(frozen=True)
class DriftPoint:
    """One run's value of a metric, and its change from the previous run that has the metric."""

    run_id: str
    created: float
    value: float
    stderr: float | None
    previous_run: str | None  # the previous run with this metric; None for the first one
    change: MetricChange | None  # previous run -> this run; None for the first one
    regression: bool  # worse than the previous run by more than the gate


@dataclass(frozen=True)
class MetricSeries:
    """One (task, "metric,filter") across the runs that report it, in registry order."""

    task: str
    metric: str
    points: list[DriftPoint]

    @property
    def name(self) -> str:
        """The metric without its filter: `acc` for `acc,none`."""
        return self.metric.split(",")[0]


def _load(registry_path: str | Path, suite: str | None, max_drop: float) -> tuple[list[RunRecord], list[MetricSeries]]:
    path = Path(registry_path)
    if not path.is_file():
        raise DashboardError(f"{path}: no such registry file")
    try:
        runs = [r for r in list_runs(path) if suite is None or r.suite == suite]
        values = {r.run_id: run_metrics(path, r.run_id) for r in runs}
    except sqlite3.DatabaseError as e:
        raise DashboardError(f"{path}: not an evalsuite run registry ({e})") from None
    if not runs:
        raise DashboardError(f"{path}: no runs registered" + (f" for suite {suite!r}" if suite else ""))
    series = []
    for task, metric in sorted({key for metrics in values.values() for key in metrics}):
        points: list[DriftPoint] = []
        for run in runs:
            if (task, metric) not in values[run.run_id]:
                continue
            value, stderr = values[run.run_id][(task, metric)]
            prev = points[-1] if points else None
            change = MetricChange(task, metric, prev.value, value, prev.stderr, stderr) if prev else None
            points.append(DriftPoint(run.run_id, run.created, value, stderr, prev.run_id if prev else None, change,
                                     bool(change and regressions([change], max_drop))))
        series.append(MetricSeries(task, metric, points))
    return runs, series


def drift_table(registry_path: str | Path, suite: str | None = None, max_drop: float = 0.05) -> list[MetricSeries]:
    """Every (task, metric) of the registry's runs (of `suite`, when given), in task then metric order, each
    point marked as a regression when worse than the previous run by more than `max_drop` (a fraction)."""
    return _load(registry_path, suite, max_drop)[1]


def _newest(series: list[MetricSeries]) -> str | None:
    """The last run, in registry order, with any metric."""
    points = [p for s in series for p in s.points]
    return max(points, key=lambda p: (p.created, p.run_id)).run_id if points else None


def latest_regressions(series: list[MetricSeries]) -> list[DriftPoint]:
    """The points of the newest run that regressed from the previous run with the metric, in series order."""
    newest = _newest(series)
    return [p for s in series for p in s.points if p.run_id == newest and p.regression]


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#b9c1d0;overflow-wrap:anywhere}main{padding:20px 28px;display:grid;gap:18px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:15px;margin:0 0 10px}h3{font-size:13px;margin:0 0 4px}h3 span{color:#667;font-weight:normal}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:4px 6px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top;overflow-wrap:anywhere}svg text{font-size:11px;fill:#333}
.charts{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0;width:380px}
ul{margin:4px 0 0;padding-left:18px;font-size:13px}.bad{color:#d33a2c;font-weight:600}.muted{color:#667}
"""

# chart geometry: the plot area is the box inside these margins
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 380, 180, 60, 12, 10, 26
BLUE, RED, GREY = "#3b6fd8", "#d33a2c", "#7a7f8c"


@dataclass(frozen=True)
class ChartPoint:
    """One point of `svg_chart`: its x slot, its value with a whisker of ± `whisker` (none when None or 0),
    its tooltip (plain text) and how it is drawn."""

    slot: int
    value: float
    whisker: float | None
    tooltip: str
    css: str = "point"
    fill: str = BLUE
    radius: int = 4
    data: dict[str, str] = field(default_factory=dict)  # data-* attributes, e.g. {"run": run_id}


def _tick(v: float) -> str:
    """An axis value short enough for the left margin: 3 significant digits, `1.28e10` for 1.28e+10."""
    return f"{v:.3g}".replace("e+", "e")


def svg_chart(points: list[ChartPoint], labels: list[str], attrs: dict[str, str], aria_label: str,
              line: bool = False, reference: tuple[float, str] | None = None) -> str:
    """A small inline-SVG chart: one x slot per label (at most about 12 labels shown, each cut to fit its
    slot), a point per ChartPoint over its whisker, with `line` a line through the points, with `reference`
    (value, tooltip) a dashed horizontal line. `attrs` go on the <svg>; every string is escaped here."""
    n = len(labels)
    spans = [(p.value - (p.whisker or 0), p.value + (p.whisker or 0)) for p in points]
    if reference is not None:
        spans.append((reference[0], reference[0]))
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(slot: int) -> float:
        return _LEFT + plot_w * (slot + 0.5) / n

    def y(v: float) -> float:
        return _TOP + plot_h * (hi - min(max(v, lo), hi)) / (hi - lo)

    parts = []
    for i in range(3):  # horizontal grid lines with their values
        v = lo + (hi - lo) * (0.1 + 0.4 * i)
        parts.append(f"<line x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>"
                     f"<text x='{_LEFT - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{_tick(v)}</text>")
    step = max(1, -(-n // 12))  # at most about 12 labels
    fit = max(3, int(plot_w / n / 6.5))  # characters of an 11px label that fit in a slot
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            cut = len(label) > fit
            shown = f"{escape(label[:fit - 1])}…<title>{escape(label)}</title>" if cut else escape(label)
            parts.append(f"<text x='{x(i):.1f}' y='{_H - 8}' text-anchor='middle'>{shown}</text>")
    parts.append(f"<line x1='{_LEFT}' x2='{_LEFT}' y1='{_TOP}' y2='{_TOP + plot_h}' stroke='#ccc'/>")
    if reference is not None:
        ry = y(reference[0])
        parts.append(f"<line class='reference' x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{ry:.1f}' y2='{ry:.1f}' "
                     f"stroke='{GREY}' stroke-dasharray='5 4'><title>{escape(reference[1])}</title></line>")
    if line and len(points) > 1:
        path = " ".join(f"{x(p.slot):.1f},{y(p.value):.1f}" for p in points)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{BLUE}' stroke-width='1.5'/>")
    for p in points:
        if p.whisker:
            px, top, bottom = x(p.slot), y(p.value + p.whisker), y(p.value - p.whisker)
            parts.append(f"<path class='whisker' d='M{px:.1f} {top:.1f}V{bottom:.1f}M{px - 4:.1f} {top:.1f}h8"
                         f"M{px - 4:.1f} {bottom:.1f}h8' stroke='{GREY}' fill='none'/>")
    for p in points:
        data = "".join(f" data-{k}='{escape(v)}'" for k, v in p.data.items())
        parts.append(f"<circle class='{p.css}'{data} cx='{x(p.slot):.1f}' cy='{y(p.value):.1f}' r='{p.radius}' "
                     f"fill='{p.fill}'><title>{escape(p.tooltip)}</title></circle>")
    svg_attrs = "".join(f" {k}='{escape(v)}'" for k, v in attrs.items())
    return (f"<svg{svg_attrs} width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' role='img' "
            f"aria-label='{escape(aria_label)}'>" + "".join(parts) + "</svg>")


def html_page(title: str, subtitle: str, body: str, style: str = "", script: str = "") -> str:
    """A self-contained page whose content security policy forbids loading anything, and scripts other than
    `script` (inline, run at the end of the body; none by default): `title` is escaped here, `subtitle` and
    `body` are HTML whose strings the caller escaped, `style` extends STYLE."""
    policy = "default-src 'none'; style-src 'unsafe-inline'" + ("; script-src 'unsafe-inline'" if script else "")
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{policy}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{STYLE}{style}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{subtitle}</p></header><main>{body}</main>"
            + (f"<script>{script}</script>" if script else "") + "</body></html>\n")


def _pct(change: MetricChange) -> str:
    return f"{change.relative_change:+.1%}"


def _regression_line(p: DriftPoint, with_metric: bool) -> str:
    c = p.change
    what = f"{escape(c.task)}/{escape(c.metric.split(',')[0])} " if with_metric else ""
    return (f"<li><span class='bad'>REGRESSION</span> {what}{escape(p.run_id)}: {c.baseline:.4g} -&gt; "
            f"{c.candidate:.4g} ({_pct(c)}) vs {escape(p.previous_run or '')}</li>")


def _chart(s: MetricSeries, slot: dict[str, int]) -> str:
    """One line chart: a slot per run (so charts of one registry line up), a point per run with the metric."""
    points = []
    for p in s.points:
        spread = f" ± {p.stderr:.4g}" if p.stderr is not None else ""
        change = f", {_pct(p.change)} vs {p.previous_run or ''}" if p.change else ""
        verdict = " REGRESSION" if p.regression else ""
        tooltip = f"{p.run_id}: {p.value:.4g}{spread}{change}{verdict}"
        points.append(ChartPoint(slot[p.run_id], p.value, p.stderr, tooltip,
                                 css="point regression" if p.regression else "point",
                                 fill=RED if p.regression else BLUE, radius=5 if p.regression else 4,
                                 data={"run": p.run_id}))
    direction = "lower is better" if lower_is_better(s.name) else "higher is better"
    filt = s.metric.partition(",")[2]
    title = escape(s.name) + (f" <span>({escape(filt)})</span>" if filt and filt != "none" else "")
    listed = "".join(_regression_line(p, with_metric=False) for p in s.points if p.regression)
    svg = svg_chart(points, [str(i + 1) for i in range(len(slot))], {"data-task": s.task, "data-metric": s.metric},
                    f"{s.task} {s.name} across runs", line=True)
    return (f"<figure><h3>{title} <span>{direction}</span></h3>{svg}" + (f"<ul>{listed}</ul>" if listed else "")
            + "</figure>")


def _runs_table(runs: list[RunRecord]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("#", "run", "created (UTC)", "model", "weights", "suite", "lineage"))
    rows = []
    for i, r in enumerate(runs, 1):
        created = datetime.fromtimestamp(r.created, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        lineage = " ".join(f"{k}={v}" for k, v in sorted(r.lineage.items())) or "-"
        cells = (str(i), r.run_id, created, r.model, r.model_fingerprint[:12], r.suite, lineage)
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table class='runs'><tr>{head}</tr>{''.join(rows)}</table>"


def _agreement_table(task: str, runs: list[RunRecord], agreement: dict) -> str:
    """The raters' agreement behind a task's figures (human ratings, judges), per run; empty when none."""
    rows = []
    for r in runs:
        for a in agreement[r.run_id].get(task, []):
            cells = (r.run_id, a.dimension, a.level, "n/a" if a.alpha is None else f"{a.alpha:.3f}",
                     "n/a" if a.percent is None else f"{a.percent:.1%}", str(a.raters), str(a.units))
            rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("run", "dimension", "level", "Krippendorff's alpha", "agreeing pairs",
                                              "raters", "items rated twice or more"))
    return f"<h3>Agreement between raters</h3><table class='agreement'><tr>{head}</tr>{''.join(rows)}</table>"


def _latest_summary(series: list[MetricSeries], max_drop: float) -> str:
    newest = _newest(series)
    if newest is None:
        return "<p class='muted'>The runs have no metrics.</p>"
    compared = [p for s in series for p in s.points if p.run_id == newest and p.change]
    failed = latest_regressions(series)
    better = sum(p.change.relative_change > 0 for p in compared)
    counts = (f"<p>{len(compared)} metric(s) of the newest run, <b>{escape(newest)}</b>, compared with the previous "
              f"run that has them: {better} better, {len(failed)} worse by more than {max_drop * 100:g}%.</p>")
    if failed:
        return counts + "<ul>" + "".join(_regression_line(p, with_metric=True) for p in failed) + "</ul>"
    return counts + f"<p class='muted'>No metric of the newest run worse by more than {max_drop * 100:g}%.</p>"


def render_dashboard(registry_path: str | Path, max_drop: float = 0.05, suite: str | None = None) -> str:
    """The dashboard page of a registry (its runs of `suite`, when given), regressions beyond `max_drop`."""
    runs, series = _load(registry_path, suite, max_drop)
    slot = {r.run_id: i for i, r in enumerate(runs)}
    agreement = {r.run_id: run_agreement(registry_path, r.run_id) for r in runs}
    tasks = []
    for task in dict.fromkeys(s.task for s in series):
        charts = "".join(_chart(s, slot) for s in series if s.task == task)
        tasks.append(f"<section class='task'><h2>{escape(task)}</h2><div class='charts'>{charts}</div>"
                     f"{_agreement_table(task, runs, agreement)}</section>")
    subtitle = (f"registry {escape(str(registry_path))}" + (f", suite {escape(suite)}" if suite else "")
                + f" · {len(runs)} run(s) · gate: worse than the previous run by more than {max_drop * 100:g}%")
    body = (f"<section id='latest'><h2>Latest vs previous</h2>{_latest_summary(series, max_drop)}</section>"
            f"<section id='runs'><h2>Runs, oldest first (the charts' x axis)</h2>{_runs_table(runs)}</section>"
            + "".join(tasks))
    return html_page("evalsuite dashboard", subtitle, body)


def write_dashboard(registry_path: str | Path, output: str | Path, max_drop: float = 0.05,
                    suite: str | None = None) -> Path:
    """Write the dashboard page to `output` atomically; returns its path."""
    atomic_write_text(output, render_dashboard(registry_path, max_drop, suite))
    return Path(output)
