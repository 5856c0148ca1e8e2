"""`report.html`: one self-contained page (no network, no CDN) with the run's charts and tables.

The statistics are embedded as JSON; a small inline script draws the charts as SVG, so the page opens
anywhere, offline, and a headless browser can check that every chart was drawn.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from corpus.io import atomic_write_text

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#b9c1d0}main{padding:20px 28px;display:grid;gap:18px;
grid-template-columns:repeat(auto-fit,minmax(460px,1fr))}section{background:#fff;border-radius:8px;
padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{font-size:15px;margin:0 0 10px}
.kpis{display:flex;gap:22px;flex-wrap:wrap}.kpi b{display:block;font-size:22px}.kpi span{color:#667}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:4px 6px;border-bottom:1px solid #eee;
text-align:right}td:first-child,th:first-child{text-align:left}svg text{font-size:11px;fill:#333}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px;border-radius:2px}.wide{grid-column:1/-1}
"""

# the charts' shared script: the embedded statistics as S, and horizontal bar charts drawn as SVG
_HELPERS = """"use strict";
const S = JSON.parse(document.getElementById("stats").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#3b6fd8", "#e07a2f", "#2e9d6b", "#b4449b", "#7a7f8c", "#d1b02b"];
const fmt = n => n >= 1e6 ? (n / 1e6).toFixed(2) + "M" : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : String(n);
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function legend(id, names) {
  const box = document.getElementById(id);
  names.forEach((n, i) => { const s = document.createElement("span");
    s.innerHTML = '<i style="background:' + COLORS[i] + '"></i>' + n; box.appendChild(s); });
}
// rows: [{label, values: [..]}]; one bar per value, grouped per row
function hbars(id, rows, series) {
  const box = document.getElementById(id);
  if (!rows.length) { box.textContent = "nothing to show"; box.dataset.drawn = "empty"; return; }
  const barH = 12, gap = 8, labelW = 270, width = 400;
  const groupH = series.length * barH + gap;
  const svg = el("svg", {width: "100%", viewBox: `0 0 ${width + labelW + 60} ${rows.length * groupH + 4}`}, box);
  const max = Math.max(1, ...rows.flatMap(r => r.values));
  rows.forEach((r, i) => {
    const y = i * groupH + 2;
    const t = el("text", {x: labelW - 6, y: y + (series.length * barH) / 2 + 4, "text-anchor": "end"}, svg);
    t.textContent = r.label.length > 46 ? r.label.slice(0, 45) + "…" : r.label;
    r.values.forEach((v, j) => {
      const w = Math.max(v > 0 ? 1 : 0, (v / max) * width);
      const rect = el("rect", {x: labelW, y: y + j * barH, width: w, height: barH - 2, fill: COLORS[j], rx: 2}, svg);
      el("title", {}, rect).textContent = `${r.label} (${series[j]}): ${v}`;
      const vt = el("text", {x: labelW + w + 4, y: y + j * barH + barH - 3}, svg);
      vt.textContent = fmt(v);
    });
  });
  box.dataset.drawn = "1";
}
"""

_CLEAN_SECTIONS = """
<section class="wide"><h2>Summary</h2><div class="kpis" id="kpis"></div></section>
<section><h2>Documents after each step</h2><div class="chart" id="chart-funnel"></div></section>
<section><h2>Removed and rejected documents by reason</h2><div class="chart" id="chart-reasons"></div></section>
<section><h2>Languages before and after balancing</h2><div class="legend" id="legend-langs"></div>
<div class="chart" id="chart-languages"></div></section>
<section><h2>Document length (characters), input and output</h2><div class="legend" id="legend-lengths"></div>
<div class="chart" id="chart-lengths"></div></section>
<section><h2>Personal data replaced, by type</h2><div class="chart" id="chart-pii"></div></section>
<section class="wide"><h2>Steps</h2><table id="steps-table"></table></section>
"""

_CLEAN_DRAW = """function summary() {
  const first = S.steps[0] || {docs_out: 0};
  const k = [["input documents", first.docs_in], ["rejected (unreadable)", S.rejected_total],
             ["removed by steps", S.removed_total], ["output documents", S.output.docs],
             ["output MB", (S.output.bytes / 1e6).toFixed(2)], ["wall seconds", S.throughput.wall_seconds]];
  const box = document.getElementById("kpis");
  k.forEach(([name, v]) => { const d = document.createElement("div"); d.className = "kpi";
    d.innerHTML = "<b>" + v + "</b><span>" + name + "</span>"; box.appendChild(d); });
  document.getElementById("subtitle").textContent =
    `${S.input.files} input files, ${S.tasks} tasks on the ${S.executor} executor; steps: ${S.steps_run.join(", ")}`;
}
function table() {
  const t = document.getElementById("steps-table");
  const head = ["step", "docs in", "docs out", "MB in", "MB out", "removed", "seconds"];
  t.innerHTML = "<tr>" + head.map(h => "<th>" + h + "</th>").join("") + "</tr>";
  S.steps.forEach(r => {
    const removed = Object.values(r.removed || r.rejected || {}).reduce((a, b) => a + b, 0);
    const cells = [r.step, r.docs_in, r.docs_out, (r.bytes_in / 1e6).toFixed(2), (r.bytes_out / 1e6).toFixed(2),
                   removed, r.time_s];
    const tr = document.createElement("tr");
    cells.forEach(c => { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
    t.appendChild(tr);
  });
}
summary();
table();
hbars("chart-funnel", S.steps.map(r => ({label: r.step, values: [r.docs_out]})), ["documents"]);
const reasons = [];
S.steps.forEach(r => Object.entries(r.removed || r.rejected || {}).forEach(([k, v]) =>
  reasons.push({label: r.step + ": " + k, values: [v]})));
reasons.sort((a, b) => b.values[0] - a.values[0]);
hbars("chart-reasons", reasons.slice(0, 20), ["documents"]);
const L = S.languages || {};
const before = L.before_balance || L.detected || {}, after = L.after_balance || {};
const langNames = Object.keys(before).slice(0, 15);
const langSeries = L.after_balance ? ["before balancing", "after balancing"] : ["detected"];
legend("legend-langs", langSeries);
hbars("chart-languages", langNames.map(l => ({label: l,
  values: L.after_balance ? [before[l] || 0, after[l] || 0] : [before[l] || 0]})), langSeries);
const H = S.length_histogram, buckets = [...new Set([...Object.keys(H.input), ...Object.keys(H.output)])]
  .sort((a, b) => a - b);
legend("legend-lengths", ["input", "output"]);
hbars("chart-lengths", buckets.map(b => ({label: "≤ " + fmt(Number(b)), values: [H.input[b] || 0, H.output[b] || 0]})),
  ["input", "output"]);
const P = (S.pii || {}).by_type || {};
hbars("chart-pii", Object.entries(P).map(([k, v]) => ({label: k, values: [v]})), ["items"]);
document.body.dataset.ready = "1";
"""


def render_page(title: str, stats: dict, sections: str, draw: str) -> str:
    """A self-contained report page: `sections` (HTML with empty chart boxes), the statistics embedded as
    JSON, and `draw` (script filling the boxes with `hbars`, reading `S`); nothing is loaded from anywhere."""
    payload = json.dumps(stats, ensure_ascii=False).replace("</", "<\\/")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{_STYLE}</style></head><body>\n"
            f"<header><h1>{escape(title)}</h1><p id=\"subtitle\"></p></header>\n<main>{sections}</main>\n"
            f"<script type=\"application/json\" id=\"stats\">{payload}</script>\n"
            f"<script>\n{_HELPERS}{draw}</script></body></html>\n")


def render_report(stats: dict) -> str:
    """The report page for a stats dictionary (as written to stats.json)."""
    return render_page("corpus clean report", stats, _CLEAN_SECTIONS, _CLEAN_DRAW)


def write_report(stats: dict, path: str | Path) -> Path:
    atomic_write_text(path, render_report(stats))
    return Path(path)
