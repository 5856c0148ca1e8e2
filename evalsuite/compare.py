"""Compare two evaluation runs metric by metric, and gate on regressions.

Reads lm-evaluation-harness results files (`results_*.json`, or a folder holding them): the `results`
section maps each task to `"<metric>,<filter>": value` pairs, with `_stderr` entries beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# metrics where lower is better; every other metric is taken as higher-is-better
LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter", "loss",
                   # slot benchmarks
                   "attack_success_rate", "structure_spread", "structure_std", "tokens_per_case",
                   "model_seconds_per_case", "tool_call_ms",
                   # safety tasks, judges, serving figures
                   "toxicity", "toxic_share", "over_refusal_rate", "pii_rate", "invalid_rate", "loss_rate",
                   "ttft_ms_p50", "ttft_ms_p95", "ttft_ms_p99", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99")
LOWER_IS_BETTER_PREFIXES = ("pii_",)  # the safety tasks' personal data leaked, per type


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` (a name, or lm-eval's "name,filter") is the better one."""
    name = metric.split(",")[0]
    return name in LOWER_IS_BETTER or name.startswith(LOWER_IS_BETTER_PREFIXES)


class ResultsError(ValueError):
    """A results file that cannot be read as lm-eval output."""


@dataclass(frozen=True)
class MetricChange:
    """One metric of one task in both runs."""

    task: str
    metric: str
    baseline: float
    candidate: float
    baseline_stderr: float | None = None
    candidate_stderr: float | None = None

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.metric)

    @property
    def relative_change(self) -> float:
        """Signed relative change, positive when the candidate is better."""
        diff = self.candidate - self.baseline
        if self.baseline == 0:  # any change from zero is unbounded in relative terms
            change = 0.0 if diff == 0 else float("inf") * (1 if diff > 0 else -1)
        else:
            change = diff / abs(self.baseline)
        return -change if self.lower_is_better else change


    @property
    def delta_stderr(self) -> float | None:
        """Standard error of candidate - baseline (independent runs), when both runs report one."""
        if self.baseline_stderr is None or self.candidate_stderr is None:
            return None
        return (self.baseline_stderr**2 + self.candidate_stderr**2) ** 0.5

    @property
    def significant(self) -> bool | None:
        """Whether the difference exceeds 1.96 standard errors (None without standard errors)."""
        se = self.delta_stderr
        return None if se is None else abs(self.candidate - self.baseline) > 1.96 * se


def results_file(path: str | Path) -> Path:
    """The results JSON of a run: the file itself, or the newest `results*.json` under a folder."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        found = sorted(p.rglob("results*.json"), key=lambda q: (q.stat().st_mtime, str(q)))
        if found:
            return found[-1]
        raise ResultsError(f"{p}: no results*.json in this folder")
    raise ResultsError(f"{p}: no such file or folder")


def load_metrics(path: str | Path, stderr: bool = False) -> dict[tuple[str, str], float]:
    """{(task, "metric,filter"): value} of an lm-eval results file; stderr entries and aliases left out
    (with `stderr`, the standard errors instead, keyed by their metric)."""
    file = results_file(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{file}: line {e.lineno}: not valid JSON ({e.msg})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ResultsError(f"{file}: no 'results' section; is this an lm-evaluation-harness results file?")
    metrics = {}
    for task, values in results.items():
        for key, value in (values or {}).items():
            if key in ("alias", "sample_len", "tasks") or ("_stderr" in key) != stderr or isinstance(value, bool) \
                    or not isinstance(value, (int, float)):  # counts, not metrics
                continue
            metrics[(task, key.replace("_stderr", ""))] = float(value)
    return metrics


def compare_runs(baseline: str | Path, candidate: str | Path) -> list[MetricChange]:
    """Every (task, metric) present in both runs, in task then metric order."""
    a, b = load_metrics(baseline), load_metrics(candidate)
    sa, sb = load_metrics(baseline, stderr=True), load_metrics(candidate, stderr=True)
    return [MetricChange(t, m, a[(t, m)], b[(t, m)], sa.get((t, m)), sb.get((t, m))) for t, m in sorted(set(a) & set(b))]


def regressions(changes: list[MetricChange], max_drop: float, metrics: list[str] | None = None) -> list[MetricChange]:
    """The changes that got worse by more than `max_drop` (a fraction, 0.05 for 5%), among `metrics`
    (names like `acc` or `task/acc`; all when None)."""
    def watched(c: MetricChange) -> bool:
        if not metrics:
            return True
        name = c.metric.split(",")[0]
        return name in metrics or f"{c.task}/{name}" in metrics

    return [c for c in changes if watched(c) and c.relative_change < -max_drop]
