"""The gate's report: `report.html` beside `compare.json`, one self-contained page (no script, nothing loaded,
every name escaped) over the evaluations the gate compared. It shows the key metric's verdicts and the chosen
variant, a table of every metric the variants share, and a chart per metric with each variant's mean and
±1.96 standard-error whisker against the baseline, so you can see whether a difference is more than noise.
A loop with `repeat` also gets `workdir/report.html`: its key metric per iteration. The charts are
`evalsuite dashboard`'s."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from pathlib import Path

from corpus.io import atomic_write_text
from evalsuite.compare import MetricChange, lower_is_better
from evalsuite.dashboard import BLUE, GREY, RED, ChartPoint, html_page, svg_chart

GREEN = "#2e8b57"
Z95 = 1.96  # whiskers span a 95% interval of each mean

Metric = tuple[str, str]  # (task, "metric,filter")

_STYLE = """
h2 span{color:#667;font-weight:normal;font-size:13px}.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.verdict{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600}
.verdict.accepted{background:#dff3e7;color:#1e6b40}.verdict.not-better{background:#eceef2;color:#4a5060}
.verdict.rolled-back{background:#fbe2de;color:#a3271b}.verdict.baseline{background:#fff;color:#667;
border:1px solid #ccd}.chosen-tag{margin-left:6px;padding:1px 7px;border-radius:10px;background:#1d2330;color:#fff;
font-size:11px}p.chosen{font-size:16px;margin:0 0 10px}tr.chosen td{background:#f3f8f4}
td.best{font-weight:600;background:#eef3fd}tr.key td:first-child{box-shadow:inset 3px 0 #3b6fd8}
.swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin:0 4px 0 10px;vertical-align:-1px}
"""


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metrics_of(results: dict) -> dict[Metric, tuple[float, float | None]]:
    """{(task, "metric,filter"): (mean, standard error or None)} of a `results.json` in lm-eval's shape."""
    out: dict[Metric, tuple[float, float | None]] = {}
    for task, values in results["results"].items():
        for key, value in values.items():
            if "," not in key or "_stderr" in key or not _number(value):
                continue  # stderrs go with their metric; "alias", "sample_len" and the like are not metrics
            metric, _, filt = key.partition(",")
            stderr = values.get(f"{metric}_stderr,{filt}")
            out[(task, key)] = (float(value), float(stderr) if _number(stderr) else None)
    return out


def _direction(metric: str) -> str:
    return "lower is better" if lower_is_better(metric) else "higher is better"


def _mean(value: float, stderr: float | None) -> str:
    return f"{value:.4g}" + (f" ± {stderr:.2g}" if stderr is not None else "")


def _relative(change: float) -> str:
    return "no change" if change == 0 else f"{abs(change):.1%} {'better' if change > 0 else 'worse'}"


def _headline(gate: dict, max_drop: float) -> str:
    key = gate["key_metric"]
    task, _, metric = key.partition("/")
    base = gate["baseline"]
    chosen = gate["chosen"]
    rows = [f"<tr class='baseline{' chosen' if chosen == base['ref'] else ''}' data-variant='{escape(base['ref'])}'>"
            f"<td>{escape(base['ref'])}{_chosen_tag(chosen == base['ref'])}</td>"
            f"<td class='num'>{_mean(base['value'], base['stderr'])}</td><td>-</td><td>-</td>"
            "<td><span class='verdict baseline'>baseline</span></td></tr>"]
    for ref, c in gate["candidates"].items():
        change = MetricChange(task, metric, base["value"], c["value"], base["stderr"], c["stderr"])
        diff = c["value"] - base["value"]
        spread = f" ± {change.delta_stderr:.2g}" if change.delta_stderr is not None else ""
        rows.append(f"<tr class='candidate{' chosen' if chosen == ref else ''}' data-variant='{escape(ref)}'>"
                    f"<td>{escape(ref)}{_chosen_tag(chosen == ref)}</td>"
                    f"<td class='num'>{_mean(c['value'], c['stderr'])}</td><td class='num'>{diff:+.4g}{spread}</td>"
                    f"<td class='num'>{_relative(c['relative_change'])}</td>"
                    f"<td><span class='verdict {escape(c['verdict'].replace(' ', '-'))}'>{escape(c['verdict'])}"
                    "</span></td></tr>")
    kept = "the baseline: no candidate was accepted" if chosen == base["ref"] else "accepted and the most improved"
    return (f"<section id='headline'><h2>Gate on {escape(key)} <span>{_direction(metric)}</span></h2>"
            f"<p class='chosen'>Chosen: <b>{escape(chosen)}</b> <span class='muted'>({kept})</span></p>"
            "<table class='verdicts'><tr><th>variant</th><th>mean ± standard error</th>"
            "<th>difference ± its standard error</th><th>relative change</th><th>verdict</th></tr>"
            + "".join(rows) + "</table>"
            f"<p class='muted'>Accepted: better than the baseline by more than {Z95} standard errors of the difference "
            f"(by anything, where a side has no standard error). Rolled back: worse by more than {max_drop:.0%}. "
            "Otherwise not better.</p></section>")


def _chosen_tag(chosen: bool) -> str:
    return "<span class='chosen-tag'>chosen</span>" if chosen else ""


def _table(variants: list[str], values: dict[str, dict[Metric, tuple[float, float | None]]], shared: list[Metric],
           key: Metric) -> str:
    head = "".join(f"<th>{escape(v)}</th>" for v in variants)
    rows = []
    for task, metric in shared:
        means = [values[v][(task, metric)][0] for v in variants]
        best = min(means) if lower_is_better(metric) else max(means)
        cells = "".join(
            f"<td class='num best' title='best'>{_mean(*values[v][(task, metric)])} ★</td>" if mean == best
            else f"<td class='num'>{_mean(*values[v][(task, metric)])}</td>" for v, mean in zip(variants, means))
        rows.append(f"<tr class='metric{' key' if (task, metric) == key else ''}' data-task='{escape(task)}' "
                    f"data-metric='{escape(metric)}'><td>{escape(task)}</td><td>{escape(metric.split(',')[0])} "
                    f"<span class='muted'>{_direction(metric)}</span></td>{cells}</tr>")
    return ("<section id='metrics'><h2>Every metric the variants share <span>mean ± standard error, ★ best in its "
            f"row</span></h2><table class='metrics'><tr><th>task</th><th>metric</th>{head}</tr>"
            + "".join(rows) + "</table></section>")


def _chart(variants: list[str], values: dict[str, dict[Metric, tuple[float, float | None]]], task: str,
           metric: str) -> str:
    """A point per variant over its ±1.96 stderr whisker, the baseline (the first variant) as a dashed line;
    a candidate's colour says whether it differs from the baseline by more than the noise."""
    base, base_se = values[variants[0]][(task, metric)]
    points = [ChartPoint(0, base, Z95 * base_se if base_se else None, f"{variants[0]} (baseline): "
                         f"{_mean(base, base_se)}", css="point baseline", fill=GREY, data={"variant": variants[0]})]
    for slot, variant in enumerate(variants[1:], 1):
        value, se = values[variant][(task, metric)]
        change = MetricChange(task, metric, base, value, base_se, se)
        if change.significant is None:
            look, fill, noise = "unknown", BLUE, "no standard error to judge the noise by"
        elif change.significant:
            better = change.relative_change > 0
            look, fill, noise = ("better", GREEN, "beyond the noise") if better else ("worse", RED, "beyond the noise")
        else:
            look, fill, noise = "within", BLUE, "within the noise"
        points.append(ChartPoint(slot, value, Z95 * se if se else None,
                                 f"{variant}: {_mean(value, se)}, {_relative(change.relative_change)} than "
                                 f"{variants[0]}, {noise}", css=f"point {look}", fill=fill, data={"variant": variant}))
    name = metric.split(",")[0]
    svg = svg_chart(points, variants, {"data-task": task, "data-metric": metric}, f"{task} {name} by variant",
                    reference=(base, f"baseline {variants[0]}: {base:.4g}"))
    return f"<figure><h3>{escape(name)} <span>{_direction(metric)}</span></h3>{svg}</figure>"


def render_loop_report(gate: dict, results: Mapping[str, dict], title: str = "corpus loop",
                       max_drop: float = 0.05) -> str:
    """The report page of a gate: `gate` is the compare stage's verdicts (`compare.json`'s content), `results`
    maps the baseline's and each candidate's reference to its eval stage's `results.json` content, `max_drop`
    is the gate's (for the rule it states)."""
    variants = [gate["baseline"]["ref"], *gate["candidates"]]
    missing = [v for v in variants if v not in results]
    if missing:
        raise ValueError(f"no results for {', '.join(missing)}")
    values = {v: metrics_of(results[v]) for v in variants}
    shared = sorted(set.intersection(*(set(m) for m in values.values())))
    task, _, metric = gate["key_metric"].partition("/")
    charts = []
    for t in dict.fromkeys(t for t, _ in shared):
        figures = "".join(_chart(variants, values, t, m) for tt, m in shared if tt == t)
        charts.append(f"<section class='task'><h2>{escape(t)}</h2><div class='charts'>{figures}</div></section>")
    legend = (f"<section id='legend'><p class='muted'>Charts: each variant's mean with a ±{Z95} standard-error "
              "whisker; the dashed line is the baseline. A candidate's colour is its difference from the baseline "
              f"against {Z95} standard errors of that difference:<span class='swatch' style='background:{GREEN}'>"
              f"</span>better beyond the noise<span class='swatch' style='background:{RED}'></span>worse beyond "
              f"the noise<span class='swatch' style='background:{BLUE}'></span>within the noise (or no standard "
              f"error)<span class='swatch' style='background:{GREY}'></span>baseline</p></section>")
    subtitle = (f"baseline {escape(variants[0])} · {len(variants) - 1} candidate(s) · key metric "
                f"{escape(gate['key_metric'])} · chosen {escape(gate['chosen'])} · {len(shared)} shared metric(s)")
    body = (_headline(gate, max_drop) + _table(variants, values, shared, (task, f"{metric},none")) + legend
            + "".join(charts))
    return html_page(title, subtitle, body, _STYLE)


def write_loop_report(path: str | Path, gate: dict, results: Mapping[str, dict], title: str = "corpus loop",
                      max_drop: float = 0.05) -> Path:
    """Write `render_loop_report`'s page to `path` atomically; returns its path."""
    atomic_write_text(path, render_loop_report(gate, results, title, max_drop))
    return Path(path)


_VERDICT_FILL = {"accepted": GREEN, "rolled back": RED, "not better": BLUE}


def render_iteration_report(summary: dict, title: str = "corpus loop") -> str:
    """The page of a loop's iterations (`iterations.json`'s content): the key metric per iteration against
    the start, with ±1.96 standard-error whiskers coloured by the gate's verdict, and a table of verdicts with
    why the loop stopped and which iteration it kept."""
    key, start, iterations = summary["key_metric"], summary["start"], summary["iterations"]
    metric = key.partition("/")[2]
    labels, points = [], []
    if start and start["value"] is not None:
        labels.append(f"start ({start['ref']})")
        points.append(ChartPoint(0, start["value"], Z95 * start["stderr"] if start["stderr"] else None,
                                 f"start {start['ref']}: {_mean(start['value'], start['stderr'])}",
                                 css="point baseline", fill=GREY, data={"iteration": "0"}))
    for i in iterations:
        labels.append(f"iteration {i['iteration']}")
        points.append(ChartPoint(len(points), i["value"], Z95 * i["stderr"] if i["stderr"] else None,
                                 f"iteration {i['iteration']} ({i['evaluation']}): {_mean(i['value'], i['stderr'])}, "
                                 f"{_relative(i['relative_change'])} than {i['baseline']}, {i['verdict']}",
                                 css=f"point {i['verdict'].replace(' ', '-')}", fill=_VERDICT_FILL[i["verdict"]],
                                 data={"iteration": str(i["iteration"])}))
    chart = svg_chart(points, labels, {"data-metric": key}, f"{key} by iteration", line=True) if points else ""
    kept = summary["accepted"]
    rows = []
    for i in iterations:
        rows.append(f"<tr class='iteration{' chosen' if i['iteration'] == kept else ''}' "
                    f"data-iteration='{i['iteration']}'><td>{i['iteration']}{_chosen_tag(i['iteration'] == kept)}</td>"
                    f"<td>{escape(i['evaluation'])}</td><td class='num'>{_mean(i['value'], i['stderr'])}</td>"
                    f"<td>{escape(i['baseline'])}</td><td class='num'>{_relative(i['relative_change'])}</td>"
                    f"<td><span class='verdict {escape(i['verdict'].replace(' ', '-'))}'>{escape(i['verdict'])}"
                    f"</span></td><td>{escape(i['stop'])}</td></tr>")
    kept_text = f"iteration {kept}" if kept else f"the start ({escape(start['ref']) if start else '-'})"
    body = (f"<section id='iterations'><h2>{escape(key)} by iteration <span>{_direction(metric)}</span></h2>"
            f"<p class='chosen'>Kept: <b>{kept_text}</b></p><figure>{chart}</figure>"
            "<table class='verdicts'><tr><th>iteration</th><th>evaluation</th><th>mean ± standard error</th>"
            "<th>judged against</th><th>relative change</th><th>verdict</th><th>stop</th></tr>"
            + "".join(rows) + "</table><p class='muted'>Each iteration is judged against the last accepted one "
            "(its gate's report: <code>&lt;gate&gt;@&lt;iteration&gt;/report.html</code>); a rolled-back or "
            "not-better iteration is never built on.</p></section>")
    subtitle = f"{len(iterations)} iteration(s) · key metric {escape(key)} · kept {kept_text}"
    return html_page(f"{title}: iterations", subtitle, body, _STYLE)


def write_iteration_report(path: str | Path, summary: dict, title: str = "corpus loop") -> Path:
    """Write `render_iteration_report`'s page to `path` atomically; returns its path."""
    atomic_write_text(path, render_iteration_report(summary, title))
    return Path(path)
