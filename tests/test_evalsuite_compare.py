import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from evalsuite.compare import compare_runs, regressions


def results(path: Path, acc: float, ppl: float) -> Path:
    """A results file in lm-evaluation-harness 0.4's layout (`results` -> task -> "metric,filter")."""
    path.mkdir(parents=True, exist_ok=True)
    data = {
        "results": {
            "arc_easy": {"alias": "arc_easy", "acc,none": acc, "acc_stderr,none": 0.01, "acc_norm,none": 0.5},
            "wikitext": {"alias": "wikitext", "word_perplexity,none": ppl, "bits_per_byte,none": 1.1},
        },
        "versions": {"arc_easy": 1.0, "wikitext": 2.0},
        "config": {"model": "hf"},
    }
    out = path / "results_2026-11-23T12-00-00.json"
    out.write_text(json.dumps(data))
    return out


def gate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalsuite.cli", "compare", *args], capture_output=True, text=True, check=False,
                          cwd=ROOT)


def test_direction_of_each_metric(tmp_path: Path):
    changes = {(c.task, c.metric): c for c in compare_runs(results(tmp_path / "a", 0.60, 20.0),
                                                           results(tmp_path / "b", 0.54, 18.0))}
    assert ("arc_easy", "acc_stderr,none") not in changes  # stderr entries are not metrics
    assert abs(changes[("arc_easy", "acc,none")].relative_change + 0.10) < 1e-9  # accuracy down 10%
    assert abs(changes[("wikitext", "word_perplexity,none")].relative_change - 0.10) < 1e-9  # perplexity down = better
    failed = regressions(list(changes.values()), 0.05)
    assert [(c.task, c.metric) for c in failed] == [("arc_easy", "acc,none")]
    assert regressions(list(changes.values()), 0.05, ["acc_norm", "wikitext/word_perplexity"]) == []
    acc = changes[("arc_easy", "acc,none")]  # 0.60 -> 0.54 with stderr 0.01 each: 4.2 standard errors
    assert abs(acc.delta_stderr - 0.01 * 2**0.5) < 1e-12 and acc.significant is True
    assert changes[("wikitext", "word_perplexity,none")].significant is None  # no stderr reported


def test_cli_gate_exit_codes(tmp_path: Path):
    base = results(tmp_path / "base", 0.60, 20.0)
    assert gate(str(base), str(results(tmp_path / "ok", 0.59, 20.5))).returncode == 0  # -1.7%, -2.5%: within 5%
    bad = gate(str(tmp_path / "base"), str(results(tmp_path / "bad", 0.50, 20.0)))  # folders work too
    assert bad.returncode == 1 and "REGRESSION" in bad.stdout and "roll back" in bad.stdout
    pct = gate(str(base), str(results(tmp_path / "bad2", 0.57, 20.0)), "--fail-on-regression", "4%")  # -5%
    assert pct.returncode == 1 and "REGRESSION" in pct.stdout
    assert gate(str(base), str(tmp_path / "bad2"), "--fail-on-regression", "6%").returncode == 0
    (tmp_path / "broken.json").write_text("{")
    broken = gate(str(base), str(tmp_path / "broken.json"))
    assert broken.returncode == 2 and "broken.json" in broken.stderr
