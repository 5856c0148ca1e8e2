"""`report.html` of `corpus curate`: the page of `corpus clean`'s report (`corpus.report.render_page`) over the
curation's statistics: removed and flagged records per check with examples, the prompt and reply length
distributions, the language (and category) mix before and after, personal data replaced, and the length bias
of preference pairs."""

from __future__ import annotations

from pathlib import Path

from corpus.io import atomic_write_text
from corpus.report import render_page

_SECTIONS = """
<section class="wide"><h2>Summary</h2><div class="kpis" id="kpis"></div></section>
<section><h2>Records removed and flagged, by check</h2><div class="legend" id="legend-checks"></div>
<div class="chart" id="chart-checks"></div></section>
<section><h2>Languages of the prompts, input and output</h2><div class="legend" id="legend-langs"></div>
<div class="chart" id="chart-languages"></div></section>
<section><h2>Prompt length (characters), input and output</h2><div class="legend" id="legend-prompt"></div>
<div class="chart" id="chart-prompt-lengths"></div></section>
<section><h2>Reply length (characters), input and output</h2><div class="legend" id="legend-reply"></div>
<div class="chart" id="chart-reply-lengths"></div></section>
<section><h2>Personal data replaced, by type</h2><div class="chart" id="chart-pii"></div></section>
<section><h2>Balancing</h2><div class="legend" id="legend-balance"></div><div class="chart" id="chart-balance"></div>
</section>
<section class="wide"><h2>Examples (up to three per check; personal data already replaced)</h2>
<table id="examples"></table></section>
"""

_DRAW = """function summary() {
  const removed = Object.values(S.removed).reduce((a, b) => a + b, 0);
  const flagged = Object.values(S.flagged).reduce((a, b) => a + b, 0);
  const k = [["input records", S.input.records], ["rejected (unreadable)", S.rejected], ["removed", removed],
             ["flagged (kept)", flagged], ["output records", S.output.records]];
  if (S.length_bias) k.push(["pairs with the longer reply chosen", (100 * S.length_bias.chosen_longer).toFixed(0) + "%"]);
  const box = document.getElementById("kpis");
  k.forEach(([name, v]) => { const d = document.createElement("div"); d.className = "kpi";
    const b = document.createElement("b"); b.textContent = v; const s = document.createElement("span");
    s.textContent = name; d.append(b, s); box.appendChild(d); });
  document.getElementById("subtitle").textContent = `${S.input.files} input file(s); formats: ` +
    Object.entries(S.input.formats).map(([f, n]) => f + " " + n).join(", ") + `; output ${S.output.format}`;
}
function labels(legendId, A, B, names) {  // the union of two count maps' keys; draws the series' legend
  legend(legendId, names);
  return [...new Set([...Object.keys(A || {}), ...Object.keys(B || {})])];
}
function buckets(id, legendId, H) {
  const keys = labels(legendId, H.input, H.output, ["input", "output"]).sort((a, b) => a - b);
  hbars(id, keys.map(b => ({label: "≤ " + fmt(Number(b)), values: [H.input[b] || 0, H.output[b] || 0]})),
        ["input", "output"]);
}
function examples() {
  const t = document.getElementById("examples");
  const head = document.createElement("tr");
  ["check", "record", "reason", "prompt", "reply"].forEach(h => { const th = document.createElement("th");
    th.textContent = h; head.appendChild(th); });
  t.appendChild(head);
  Object.entries(S.examples).forEach(([check, rows]) => rows.forEach(r => {
    const tr = document.createElement("tr");
    tr.dataset.check = check;
    [check, r.where, r.reason, r.prompt, r.reply].forEach(c => { const td = document.createElement("td");
      td.textContent = c; tr.appendChild(td); });
    t.appendChild(tr);
  }));
}
summary();
const checks = labels("legend-checks", S.removed, S.flagged, ["removed", "flagged"]);
hbars("chart-checks", checks.map(c => ({label: c, values: [S.removed[c] || 0, S.flagged[c] || 0]})),
      ["removed", "flagged"]);
const L = S.languages;
const langs = labels("legend-langs", L.input, L.output, ["input", "output"]).slice(0, 15);
hbars("chart-languages", langs.map(l => ({label: l, values: [L.input[l] || 0, L.output[l] || 0]})),
      ["input", "output"]);
buckets("chart-prompt-lengths", "legend-prompt", S.lengths.prompt);
buckets("chart-reply-lengths", "legend-reply", S.lengths.reply);
hbars("chart-pii", Object.entries(S.pii.by_type).map(([k, v]) => ({label: k, values: [v]})), ["items"]);
const B = S.balance || {before: {}, after: {}};
const groups = labels("legend-balance", B.before, B.after, ["before", "after"]);
hbars("chart-balance", groups.map(g => ({label: g, values: [B.before[g] || 0, B.after[g] || 0]})),
      ["before", "after"]);
examples();
document.body.dataset.ready = "1";
"""


def render_curate_report(stats: dict) -> str:
    """The report page of a curation's statistics (stats.json's content)."""
    return render_page("corpus curate report", stats, _SECTIONS, _DRAW)


def write_curate_report(stats: dict, path: str | Path) -> Path:
    """Write `render_curate_report`'s page to `path` atomically; returns its path."""
    atomic_write_text(path, render_curate_report(stats))
    return Path(path)
