import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import chromium_page
from evalsuite.cli import app
from evalsuite.dashboard import DashboardError, drift_table, latest_regressions, render_dashboard, write_dashboard
from evalsuite.registry import RunRecord, register

ODD_RUN = "run-<b>x</b>"  # an HTML-special run id: must be shown as text, never parsed

# (run id, created, {task: {metric: (value, stderr)}}): lm-eval 0.4 metric keys, run by run
RUNS = [
    ("run-base", 1_780_000_000.0, {
        "cl_ppl_en": {"bits_per_byte,none": (1.20, 0.012), "word_perplexity,none": (30.0, None)},
        "cl_arc_easy": {"acc,none": (0.50, 0.02), "acc_norm,none": (0.48, 0.02)},
    }),
    ("run-tuned", 1_780_086_400.0, {  # word_perplexity not reported: the next run compares with run-base
        "cl_ppl_en": {"bits_per_byte,none": (1.16, 0.011)},
        "cl_arc_easy": {"acc,none": (0.52, 0.02), "acc_norm,none": (0.49, 0.02)},
    }),
    (ODD_RUN, 1_780_172_800.0, {
        # bits_per_byte up 7.8% (lower is better: a regression), word_perplexity down 6.7% (an improvement),
        # acc up 5.8% (an improvement), acc_norm down 1% (within the 5% gate)
        "cl_ppl_en": {"bits_per_byte,none": (1.25, 0.012), "word_perplexity,none": (28.0, None)},
        "cl_arc_easy": {"acc,none": (0.55, 0.02), "acc_norm,none": (0.485, 0.02)},
    }),
]


def lm_eval_results(metrics: dict) -> dict:
    """A run's `results` section as lm-evaluation-harness writes it: alias, values, `_stderr` entries."""
    results = {}
    for task, values in metrics.items():
        entry = {"alias": task}
        for key, (value, stderr) in values.items():
            name, _, filt = key.partition(",")
            entry[key] = value
            entry[f"{name}_stderr,{filt}"] = stderr if stderr is not None else "N/A"
        results[task] = entry
    return results


def build_registry(path: Path, runs=RUNS, suite: str = "core") -> Path:
    for run_id, created, metrics in runs:
        record = RunRecord(run_id=run_id, created=created, output=str(path.parent / run_id), model="models/tiny-gpt2",
                           model_fingerprint=hashlib.sha256(run_id.encode()).hexdigest(), suite=suite, seconds=12.5,
                           lineage={"train_data": f"out/{run_id}", "clean_config": "pipelines/clean-web.yaml"})
        register(path, record, lm_eval_results(metrics))
    return path


def expected_changes(max_drop: float) -> tuple[dict, set]:
    """Computed from RUNS alone: {(run, task, metric): relative change, positive = better} and the regressions."""
    changes, previous = {}, {}
    for run_id, _, metrics in RUNS:
        for task, values in metrics.items():
            for metric, (value, _) in values.items():
                if (task, metric) in previous:
                    before = previous[(task, metric)]
                    sign = -1 if metric.split(",")[0] in ("bits_per_byte", "word_perplexity") else 1
                    changes[(run_id, task, metric)] = sign * (value - before) / abs(before)
                previous[(task, metric)] = value
    return changes, {k for k, v in changes.items() if v < -max_drop}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return build_registry(tmp_path / "runs" / "registry.sqlite")


def test_drift_table_marks_the_regression_direction_aware(registry: Path):
    series = drift_table(registry)
    assert [(s.task, s.metric) for s in series] == sorted(
        {(t, m) for _, _, metrics in RUNS for t, values in metrics.items() for m in values})
    changes, failed = expected_changes(0.05)
    assert failed == {(ODD_RUN, "cl_ppl_en", "bits_per_byte,none")}  # the data holds exactly one regression
    seen = {}
    for s in series:
        assert [p.run_id for p in s.points] == [r for r, _, m in RUNS if s.metric in m.get(s.task, {})]
        assert s.points[0].change is None and not s.points[0].regression
        for p in s.points[1:]:
            seen[(p.run_id, s.task, s.metric)] = p
            assert p.change.relative_change == pytest.approx(changes[(p.run_id, s.task, s.metric)])
    assert set(seen) == set(changes)
    assert {k for k, p in seen.items() if p.regression} == failed
    # word_perplexity skipped run-tuned: compared with run-base, and lower perplexity is an improvement
    ppl = seen[(ODD_RUN, "cl_ppl_en", "word_perplexity,none")]
    assert ppl.previous_run == "run-base" and ppl.change.baseline == 30.0 and ppl.change.relative_change > 0.05
    assert seen[(ODD_RUN, "cl_arc_easy", "acc,none")].change.relative_change > 0.05  # higher acc: better
    bpb = seen[(ODD_RUN, "cl_ppl_en", "bits_per_byte,none")]
    assert bpb.stderr == 0.012 and bpb.change.baseline_stderr == 0.011 and bpb.previous_run == "run-tuned"
    assert [(p.run_id, p.change.metric) for p in latest_regressions(series)] == [(ODD_RUN, "bits_per_byte,none")]
    # a looser gate flags nothing; a tighter one also flags acc_norm's 1% drop
    assert not any(p.regression for s in drift_table(registry, max_drop=0.10) for p in s.points)
    tight = {(p.run_id, s.metric) for s in drift_table(registry, max_drop=0.005) for p in s.points if p.regression}
    assert tight == {(r, m) for r, _, m in expected_changes(0.005)[1]} and len(tight) == 2


def test_suite_filter(tmp_path: Path):
    path = build_registry(tmp_path / "registry.sqlite")
    quick = [("run-quick", 1_780_100_000.0, {"cl_ppl_en": {"bits_per_byte,none": (2.0, None)}})]
    build_registry(path, quick, suite="quick")
    assert len(next(s for s in drift_table(path) if s.name == "bits_per_byte").points) == 4
    only_core = next(s for s in drift_table(path, suite="core") if s.name == "bits_per_byte")
    assert [p.run_id for p in only_core.points] == ["run-base", "run-tuned", ODD_RUN]
    assert [p.run_id for p in drift_table(path, suite="quick")[0].points] == ["run-quick"]
    with pytest.raises(DashboardError, match="suite 'nope'"):
        drift_table(path, suite="nope")


def test_page_is_self_contained_and_escaped(registry: Path, tmp_path: Path):
    out = write_dashboard(registry, tmp_path / "sub" / "dash.html")
    html = out.read_text(encoding="utf-8")
    assert html == render_dashboard(registry)
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "<b>x</b>" not in html and "run-&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("<svg ") == len(drift_table(registry)) == 4
    assert html.count("REGRESSION") >= 2  # under the chart and in the latest-vs-previous summary
    assert "clean_config=pipelines/clean-web.yaml" in html
    assert hashlib.sha256(b"run-base").hexdigest()[:12] in html
    assert hashlib.sha256(b"run-base").hexdigest()[:13] not in html
    first = datetime.fromtimestamp(RUNS[0][1], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert f"<td>{first}</td>" in html


def test_missing_empty_or_foreign_registry(tmp_path: Path):
    with pytest.raises(DashboardError, match="nope.sqlite"):
        render_dashboard(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # looking did not create it
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    with pytest.raises(DashboardError, match="empty.sqlite: no runs"):
        drift_table(tmp_path / "empty.sqlite")
    (tmp_path / "notes.sqlite").write_text("not a database at all, just some text " * 10)
    with pytest.raises(DashboardError, match="notes.sqlite: not an evalsuite run registry"):
        drift_table(tmp_path / "notes.sqlite")


def test_cli_writes_the_page_and_prints_the_regression(registry: Path, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["dashboard", str(registry.parent)])  # the folder holding registry.sqlite
    assert result.exit_code == 0, result.output  # it reports; `compare` is the gate
    page = registry.parent / "dashboard.html"
    assert str(page) in result.output and page.read_text(encoding="utf-8") == render_dashboard(registry)
    change = -(1.25 - 1.16) / 1.16
    line = f"REGRESSION cl_ppl_en/bits_per_byte: 1.16 -> 1.25 ({change:+.1%})"
    assert line in result.output.splitlines()
    assert result.output.count("REGRESSION") == 1

    custom = tmp_path / "report" / "d.html"
    result = runner.invoke(app, ["dashboard", str(registry), "--output", str(custom), "--fail-on-regression", "10%"])
    assert result.exit_code == 0 and custom.is_file() and "REGRESSION" not in result.output

    missing = tmp_path / "elsewhere" / "registry.sqlite"
    result = runner.invoke(app, ["dashboard", str(missing)])
    assert result.exit_code == 2 and "error:" in result.output
    assert str(missing) in result.output.replace("\n", "")
    bad = runner.invoke(app, ["dashboard", str(registry), "--fail-on-regression", "five"])
    assert bad.exit_code == 2 and "percentage" in bad.output


@pytest.mark.slow
def test_headless_chromium_draws_every_chart(registry: Path, tmp_path: Path):
    page_file = write_dashboard(registry, tmp_path / "dashboard.html")
    series = drift_table(registry)
    n_points = sum(len(s.points) for s in series)
    n_regressions = sum(p.regression for s in series for p in s.points)
    with chromium_page(page_file) as page:
        charts = page.locator("svg[data-metric]")
        assert charts.count() == len(series)
        drawn = page.eval_on_selector_all("svg[data-metric]", "els => els.map(e => [e.dataset.task, e.dataset.metric,"
                                          " e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
        assert [(t, m) for t, m, _, _ in drawn] == [(s.task, s.metric) for s in series]
        assert all(w > 0 and h > 0 for _, _, w, h in drawn)
        for s in series:  # one circle per run with the metric, inside the plot
            svg = f"svg[data-task='{s.task}'][data-metric='{s.metric}']"
            boxes = page.eval_on_selector_all(f"{svg} circle.point", "els => els.map(e => e.getBBox().width)")
            assert len(boxes) == len(s.points) and min(boxes) > 0
        assert page.locator("circle.point").count() == n_points
        assert page.locator("circle.point.regression").count() == n_regressions == 1
        red = page.locator("circle.point.regression").first
        assert red.get_attribute("data-run") == ODD_RUN  # the attribute round-trips the escaped id
        assert page.eval_on_selector("circle.point.regression", "e => getComputedStyle(e).fill") == "rgb(211, 58, 44)"
        bold = page.eval_on_selector_all("b", "els => els.map(e => e.textContent)")
        assert "x" not in bold and ODD_RUN in bold  # the id is text inside our <b>, not markup of its own
        assert ODD_RUN in page.locator("#runs").inner_text()
        assert "REGRESSION" in page.locator("#latest").inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
