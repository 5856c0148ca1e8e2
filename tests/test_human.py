"""Human evaluation: Krippendorff's alpha on the published examples, and the rating-sheet round trip."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SAMPLE, chromium_page, read_jsonl
from evalsuite.agreement import krippendorff_alpha, percent_agreement
from evalsuite.cli import app
from evalsuite.compare import compare_runs
from evalsuite.human import COLUMNS, HumanError, export_sheets, import_sheets, sheet_html

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers x 12 units, values
# 1-5, None where an observer gave no value. The paper reports nominal .743, ordinal .815, interval .849.
_ = None
OBSERVERS = [[1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
             [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
             [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
             [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _]]
UNITS = [list(unit) for unit in zip(*OBSERVERS)]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_on_the_published_example_with_missing_values(level: str, published: float):
    assert round(krippendorff_alpha(UNITS, level), 3) == published


def test_alpha_binary_example_and_edge_cases():
    # the same paper, example A: 2 observers x 10 units of binary data, nominal alpha .095
    a, b = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert round(krippendorff_alpha(list(zip(a, b))), 3) == 0.095
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3]], "interval") == 1.0
    # units rated once carry no agreement: NaN missing cells change nothing
    assert krippendorff_alpha([*UNITS, [float("nan"), 4, None, None]], "ordinal") == krippendorff_alpha(UNITS, "ordinal")
    assert math.isnan(krippendorff_alpha([[2, 2], [2, 2]]))  # one value only: agreement is undefined
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(UNITS, "ratio")
    # percent agreement: unit 1 has 3 agreeing pairs of 3, unit 6 (values 1, 2, 3, 4) none of 6; over all
    # 11 pairable units, 43 of 55 pairs agree (counted by hand from the table above)
    assert percent_agreement(UNITS) == 43 / 55


# ---- the rating-sheet round trip, on real runs of tiny local models --------------------------------------

cli = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two `evalsuite run`s (different random tiny GPT-2s) of a generation task and a log-likelihood task,
    6 documents each, in runs/a and runs/b."""
    pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")
    from train.tiny import build_tiny_gpt2

    base = tmp_path_factory.mktemp("human")
    corpus = [r["text"] for r in read_jsonl(SAMPLE / "web_en.jsonl")[:200]]
    (base / "suite.yaml").write_text("name: gen\ntasks: [cl_nq_open, cl_arc_easy]\n")
    for name, seed in (("a", 0), ("b", 1)):
        model = build_tiny_gpt2(base / f"model-{name}", corpus, seed=seed)
        done = cli.invoke(app, ["run", "--model", str(model), "--suite", str(base / "suite.yaml"), "-o",
                                str(base / "runs" / name), "--limit", "6", "--batch-size", "6"])
        assert done.exit_code == 0, done.output
    return base / "runs"


def sheet_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# Two raters' values for the 4 items of run a and the 4 of run b, in (task, document) order. Relevance: rater 2
# always one point above rater 1; fluency: rater 1 only; safety: they disagree on one item of run b; expertise:
# identical.
FILL = {
    "r1": {"relevance": ([4, 4, 4, 4], [1, 1, 1, 1]), "fluency": ([1, 2, 3, 4], [5, 5, 5, 5]),
           "safety": (["pass"] * 4, ["pass", "pass", "fail", "fail"]), "expertise": ([0, 1, 2, 3], [3, 3, 3, 3])},
    "r2": {"relevance": ([5, 5, 5, 5], [2, 2, 2, 2]), "fluency": ([""] * 4, [""] * 4),
           "safety": (["pass"] * 4, ["pass", "fail", "fail", "fail"]), "expertise": ([0, 1, 2, 3], [3, 3, 3, 3])},
}


def filled(sheet: Path, rater: str, out: Path) -> Path:
    """The blank sheet as `rater` fills it in (FILL), written to `out`."""
    key = json.loads((sheet.parent / "key.json").read_text())
    order = {run: sorted((i for i, v in key["items"].items() if v["run"] == run),
                         key=lambda i: (key["items"][i]["task"], int(key["items"][i]["doc_id"]))) for run in ("a", "b")}
    rows = sheet_rows(sheet)
    for row in rows:
        run = key["items"][row["item"]]["run"]
        n = order[run].index(row["item"])
        for dim, (in_a, in_b) in FILL[rater].items():
            row[dim] = str((in_a if run == "a" else in_b)[n])
        row["rater"] = rater
    write_rows(out, rows)
    return out


def test_export_is_blind_deterministic_and_skips_loglikelihood_tasks(runs: Path, tmp_path: Path):
    done = cli.invoke(app, ["human", "export", str(runs / "a"), str(runs / "b"), "-o", str(tmp_path / "s1"),
                            "--per-dimension", "4", "--seed", "3"])
    assert done.exit_code == 0, done.output
    assert "skipped cl_arc_easy: log-likelihood task" in done.output
    rows = sheet_rows(tmp_path / "s1" / "sheet.csv")
    key = json.loads((tmp_path / "s1" / "key.json").read_text())
    assert len(rows) == 8 and list(rows[0]) == list(COLUMNS)
    assert {r["task"] for r in rows} == {"cl_nq_open"}
    # the same 4 documents of each run, and each row is the run's own logged generation for that document
    docs = {run: sorted(v["doc_id"] for v in key["items"].values() if v["run"] == run) for run in ("a", "b")}
    assert docs["a"] == docs["b"] and len(docs["a"]) == 4
    logged = {run: {str(s["doc_id"]): s for s in read_jsonl(runs / run / "samples" / "cl_nq_open.jsonl")}
              for run in ("a", "b")}
    for row in rows:
        sample = logged[key["items"][row["item"]]["run"]][row["doc_id"]]
        assert row["output"].lstrip("'") == sample["resps"][0][0] and row["prompt"] == sample["arguments"][0][0]
        assert row["reference"] == sample["target"]
    # blind: the sheets never name the runs, and items of both runs are interleaved
    for name in ("sheet.csv", "sheet.html"):
        text = (tmp_path / "s1" / name).read_text(encoding="utf-8")
        assert str(runs) not in text and '"run"' not in text
    assert {key["items"][r["item"]]["run"] for r in rows[:4]} == {"a", "b"}
    # same runs and seed: the same bytes; another seed: another order
    export_sheets([runs / "a", runs / "b"], tmp_path / "s2", per_dimension=4, seed=3)
    export_sheets([runs / "a", runs / "b"], tmp_path / "s3", per_dimension=4, seed=4)
    for name in ("sheet.csv", "sheet.html", "key.json"):
        assert (tmp_path / "s1" / name).read_bytes() == (tmp_path / "s2" / name).read_bytes()
    assert (tmp_path / "s1" / "sheet.csv").read_bytes() != (tmp_path / "s3" / "sheet.csv").read_bytes()
    # more than there is: every shared output; one sheet per rater, each in its own order
    many = export_sheets([runs / "a"], tmp_path / "s4", per_dimension=500, raters=2)
    first, second = sheet_rows(tmp_path / "s4" / "sheet-1.csv"), sheet_rows(tmp_path / "s4" / "sheet-2.csv")
    assert many.items == {"a": 6} and len(first) == 6 and {r["rater"] for r in first} == {"rater-1"}
    assert sorted(r["item"] for r in first) == sorted(r["item"] for r in second)
    with pytest.raises(HumanError, match="not an evalsuite run folder"):
        export_sheets([tmp_path], tmp_path / "s5")


def test_round_trip_two_raters_means_alpha_compare_and_registry(runs: Path, tmp_path: Path):
    from evalsuite.dashboard import render_dashboard
    from evalsuite.registry import run_agreement, run_metrics

    sheets = tmp_path / "sheets"
    export_sheets([runs / "a", runs / "b"], sheets, per_dimension=4)
    for rater in FILL:
        filled(sheets / "sheet.csv", rater, sheets / f"filled-{rater}.csv")
    registry = runs / "registry.sqlite"  # where the runs registered themselves
    done = cli.invoke(app, ["human", "import", str(sheets)])
    assert done.exit_code == 0, done.output
    assert "sheet.csv: no ratings, skipped" in done.output  # the blank sheet in the same folder
    human = {run: json.loads((runs / run / "results.json").read_text())["results"]["human"] for run in ("a", "b")}
    a, b = human["a"], human["b"]
    # relevance: each item the mean of its two raters, 4.5 in run a and 1.5 in run b, no spread
    assert a["relevance,none"] == 4.5 and b["relevance,none"] == 1.5 and a["relevance_stderr,none"] == 0
    # fluency, one rater: run a 1, 2, 3, 4 -> mean 2.5, se = sd / sqrt(4) = 1.29099 / 2
    assert a["fluency,none"] == 2.5 and a["fluency_stderr,none"] == pytest.approx(0.645497, abs=1e-6)
    # safety, pass = 1: run b items 1, 0.5, 0, 0 -> 0.375, se sqrt(0.6875 / 3) / 2
    assert a["safety,none"] == 1.0 and b["safety,none"] == 0.375
    assert b["safety_stderr,none"] == pytest.approx((0.6875 / 3) ** 0.5 / 2, abs=1e-6)
    assert (a["expertise,none"], b["expertise,none"]) == (1.5, 3.0)
    assert a["ratings"]["relevance"] == {"items": 4, "ratings": 8} and a["ratings"]["fluency"]["ratings"] == 4
    agreement = a["agreement"]
    # relevance, interval: values 1, 2, 4, 5 four times each (n = 16); the 8 units pair (4,5) or (1,2), so
    # observed sum o*d = 16; expected sum n_c n_k d / (n - 1) = 16 * 2 * (1+9+16+4+9+1) / 15; alpha = 0.8125
    assert agreement["relevance"]["alpha"] == pytest.approx(0.8125) and agreement["relevance"]["level"] == "interval"
    # safety, nominal: 11 pass and 5 fail values, one disagreeing unit: 1 - 2 * 15 / (2 * 11 * 5) = 8/11
    assert agreement["safety"]["alpha"] == pytest.approx(8 / 11, abs=1e-6)
    assert agreement["safety"]["percent_agreement"] == 0.875 and agreement["safety"]["units"] == 8
    assert agreement["expertise"]["alpha"] == 1.0
    assert agreement["fluency"]["alpha"] is None and agreement["fluency"]["units"] == 0  # one rater only
    assert "alpha (interval) 0.812" in done.output
    # the registry holds the figures beside the automatic metrics of the run, and the agreement
    metrics = run_metrics(registry, "b")
    assert metrics[("human", "relevance,none")] == (1.5, 0.0) and ("cl_nq_open", "f1,none") in metrics
    assert ("human", "alpha") not in metrics and not any("agreement" in m for _, m in metrics)
    assert {x.dimension: x.alpha for x in run_agreement(registry, "a")["human"]}["safety"] == pytest.approx(8 / 11)
    # `evalsuite compare` shows the human dimensions beside the automatic metrics, and gates on them
    shown = cli.invoke(app, ["compare", str(runs / "a"), str(runs / "b")])
    assert shown.exit_code == 1 and "REGRESSION human/relevance: 4.5 -> 1.5" in shown.output
    changes = {(c.task, c.metric.split(",")[0]): c for c in compare_runs(runs / "a", runs / "b")}
    assert ("cl_nq_open", "f1") in changes and changes[("human", "expertise")].relative_change == 1.0
    assert changes[("human", "safety")].delta_stderr == pytest.approx(b["safety_stderr,none"])
    assert not any(metric in ("ratings", "agreement", "sheet", "sample_len") for _, metric in changes)
    page = render_dashboard(registry)
    assert "<h2>human</h2>" in page and "Krippendorff" in page
    # importing the same sheets again: the same files
    before = {run: (runs / run / "results.json").read_bytes() for run in ("a", "b")}
    import_sheets([sheets])
    assert {run: (runs / run / "results.json").read_bytes() for run in ("a", "b")} == before
    assert run_metrics(registry, "b") == metrics


def test_bad_values_name_file_line_and_column(runs: Path, tmp_path: Path):
    sheets = tmp_path / "sheets"
    export_sheets([runs / "a"], sheets, per_dimension=3)
    rows = sheet_rows(sheets / "sheet.csv")
    for row in rows:
        row.update(relevance="3", rater="r1")
    rows[1]["relevance"] = "6"
    write_rows(sheets / "bad.csv", rows)
    # the prompts span two lines each, so the second record starts on line 4
    lines = (sheets / "bad.csv").read_text().splitlines()
    assert lines[3].startswith(rows[1]["item"])
    done = cli.invoke(app, ["human", "import", str(sheets / "bad.csv"), "--registry", str(tmp_path / "r.sqlite")])
    assert done.exit_code == 2
    assert "bad.csv: line 4: column 'relevance': '6' is not a whole number from 0 to 5" in done.output
    for column, value, message in (("safety", "maybe", "'maybe' is not pass or fail"),
                                   ("fluency", "2.5", "not a whole number"),
                                   ("rater", "", "column 'rater': empty"),
                                   ("doc_id", "99", "column 'doc_id'"),
                                   ("item", "x-1", "unknown item 'x-1'")):
        broken = [dict(r) for r in rows]
        broken[1]["relevance"] = "3"
        broken[1][column] = value
        write_rows(sheets / "bad.csv", broken)
        with pytest.raises(HumanError, match=f"bad.csv: line 4: .*{message}"):
            import_sheets([sheets / "bad.csv"], tmp_path / "r.sqlite")
    rows[1]["relevance"] = "3"
    write_rows(sheets / "bad.csv", rows)
    shutil.copyfile(sheets / "bad.csv", sheets / "again.csv")
    with pytest.raises(HumanError, match="rated again by the same rater"):
        import_sheets([sheets / "bad.csv", sheets / "again.csv"], tmp_path / "r.sqlite")
    assert not (tmp_path / "r.sqlite").exists()  # nothing stored from a sheet with an error


def test_html_form_filled_in_a_browser_downloads_a_sheet_that_imports(runs: Path, tmp_path: Path):
    sheets = tmp_path / "sheets"
    export_sheets([runs / "a"], sheets, per_dimension=3)
    with chromium_page(sheets / "sheet.html") as page:
        cards = page.locator("section.item")
        assert cards.count() == 3
        page.click("#download")  # no rater name yet: refused
        assert "name" in page.inner_text("#status")
        page.fill("#rater", "Rater One")
        for n, value in enumerate(("2", "4", "5")):
            card = cards.nth(n)
            card.locator(f"input[name$=':relevance'][value='{value}']").check()
            card.locator("input[name$=':safety'][value='fail' i]" if n == 0 else "input[name$=':safety'][value='pass']").check()
        cards.nth(2).locator("textarea").fill('=1+1, "quoted"\nsecond line')
        assert "3 of 3" in page.inner_text("#progress")
        with page.expect_download() as download:
            page.click("#download")
        download.value.save_as(sheets / "from-browser.csv")
    rows = sheet_rows(sheets / "from-browser.csv")
    assert [r["relevance"] for r in rows] == ["2", "4", "5"] and {r["rater"] for r in rows} == {"Rater One"}
    assert rows[2]["comment"] == "'=1+1, \"quoted\"\nsecond line"  # the formula guard, quotes and newline kept
    done = import_sheets([sheets], tmp_path / "r.sqlite")
    assert done.scores["a"]["relevance"].mean == pytest.approx(11 / 3)
    assert done.scores["a"]["safety"].mean == pytest.approx(2 / 3) and "fluency" not in done.scores["a"]


def test_html_form_shows_model_text_as_text(tmp_path: Path):
    """A model's output with markup is shown literally: no element is made of it, nothing is loaded."""
    hostile = "</script><img src='http://127.0.0.1:9/x' onerror='document.title=1'><b>bold</b> & \u2028"
    row = {"item": "s-00001", "task": "t", "doc_id": "0", "prompt": "p", "output": hostile, "reference": ""}
    (tmp_path / "sheet.html").write_text(sheet_html("s", [row]), encoding="utf-8")
    with chromium_page(tmp_path / "sheet.html") as page:
        assert page.inner_text("pre.output") == hostile
        assert page.locator("img").count() == 0 and page.locator("main b").count() == 0
        assert page.title() == "Rating sheet"


def test_slot_tasks_are_rated_on_their_final_answers(tmp_path: Path):
    """A slot task's samples are transcripts: the item is the last user turn and the model's final answer."""
    (tmp_path / "suite.yaml").write_text("name: slots\ntasks: [cl_slots]\n")
    from evalsuite.run import RunConfig, run  # in process, not CliRunner: the tool server needs a real stderr

    run(RunConfig(model="scripted:oracle", suite=str(tmp_path / "suite.yaml"), output=str(tmp_path / "run"), limit=2))
    export_sheets([tmp_path / "run"], tmp_path / "sheet")
    rows = sheet_rows(tmp_path / "sheet" / "sheet.csv")
    transcripts = {f"{s['case']}#{s['transcript']['trial']}": s["transcript"]
                   for s in read_jsonl(tmp_path / "run" / "samples" / "cl_slots.jsonl")}
    assert len(rows) == 2 and {r["doc_id"] for r in rows} == set(transcripts)
    for row in rows:
        t = transcripts[row["doc_id"]]
        assert row["output"] == t["text"] != "" and row["prompt"] == [m for m in t["messages"] if m["role"] == "user"][-1]["content"]
