import json
from pathlib import Path

import pytest

from conftest import SAMPLE, chromium_page
from corpus.config import load_config
from corpus.pipeline import clean

CHARTS = ("chart-funnel", "chart-reasons", "chart-languages", "chart-lengths")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    result = clean([str(SAMPLE / "web_en.jsonl"), str(SAMPLE / "web_zh.jsonl")], out, load_config())
    return result.report_path


def test_report_is_self_contained(report: Path):
    html = report.read_text()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    stats = json.loads((report.parent / "stats.json").read_text())
    assert json.dumps(stats["output"]["docs"]) in html


@pytest.mark.slow
def test_headless_chromium_draws_every_chart(report: Path, tmp_path: Path):
    with chromium_page(report) as page:
        page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        for chart in CHARTS:
            assert page.get_attribute(f"#{chart}", "data-drawn") == "1", chart
            assert page.locator(f"#{chart} svg rect").count() >= 2, chart
        # bars have real widths and the language chart shows both languages before and after balancing
        widths = page.eval_on_selector_all("#chart-languages svg rect", "els => els.map(e => e.getBBox().width)")
        assert min(widths[:4]) > 0
        labels = page.eval_on_selector_all("#chart-languages svg text", "els => els.map(e => e.textContent)")
        assert "en" in labels and "zh" in labels
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
