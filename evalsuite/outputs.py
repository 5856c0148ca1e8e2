"""A finished run's generated outputs, and figures added to the run afterwards (human ratings, judges).

`generations` reads what a run's generation tasks wrote from their logged samples (`samples/<task>.jsonl`):
lm-eval's `generate_until` rows (the prompt the model saw, its raw generation, the reference) and slot tasks'
transcripts (the last user turn and the final answer). Log-likelihood tasks have no generated text and are
skipped, as are the tasks that rate outputs rather than hold them. `add_task` stores a new task's figures in
the run: results.json (lm-eval's shape, so `evalsuite compare` and the dashboard show them), run.json, the
summaries, and the run registry with the raters' agreement.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

from corpus.config import ConfigError
from corpus.io import atomic_write_text, iter_jsonl
from evalsuite.agreement import krippendorff_alpha, percent_agreement
from evalsuite.registry import Agreement, RunRecord, default_registry, register_task

RATING_TASKS = ("human", "judge", "judge_pairwise")  # their samples rate outputs; they are not outputs
LOGLIKELIHOOD_MESSAGE = "log-likelihood task, no generated text"


class OutputsError(ValueError):
    """A folder that is not a finished run, or a samples file that cannot be read (file and line named)."""


@dataclass(frozen=True)
class Generation:
    """One generated output of a run: its task and document, the prompt the model saw, what it wrote, and the
    reference answer when there is one."""

    run: str
    task: str
    doc_id: str
    prompt: str
    text: str
    reference: str = ""

    @property
    def question(self) -> str:
        """The prompt as a reader sees it: the user's message of a one-message chat prompt, the turns of a
        longer one, else the text."""
        chat = chat_prompt(self.prompt)
        if chat is None:
            return self.prompt
        if len(chat) == 1:
            return chat[0]["content"]
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in chat)


def chat_prompt(prompt: str) -> list[dict] | None:
    """A chat-formatted prompt (lm-eval sends chat endpoints a JSON list of {role, content}) as that list;
    None for a text prompt."""
    if not prompt.startswith("["):
        return None
    try:
        messages = json.loads(prompt)
    except json.JSONDecodeError:
        return None
    if isinstance(messages, list) and messages and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return None


def as_messages(prompt: str) -> list[dict]:
    """A prompt as chat messages: a chat-formatted prompt's own, or the text as one user message."""
    return chat_prompt(prompt) or [{"role": "user", "content": prompt}]


def _task_generations(run: str, task: str, rows: list[dict]) -> list[Generation] | None:
    """The generations among one task's logged rows, one per document; None for a log-likelihood task."""
    found: dict[str, Generation] = {}
    for row in rows:
        if "transcript" in row:  # a slot task: the conversation's last user turn and the final answer
            t = row["transcript"]
            users = [m.get("content") or "" for m in t.get("messages", []) if m.get("role") == "user"]
            generation = Generation(run, task, f"{row['case']}#{t.get('trial', 0)}", users[-1] if users else "",
                                    t.get("text") or "")
        else:
            args = row.get("arguments") or []
            if isinstance(args, dict):  # lm-eval's other logging layout: {"gen_args_0": {"arg_0", "arg_1"}}
                args = [[a.get("arg_0"), a.get("arg_1")] for a in args.values()]
            if not args or len(args[0]) < 2 or not isinstance(args[0][1], dict):
                return None  # (context, continuation) pairs: a log-likelihood task
            target = row.get("target")
            reference = " | ".join(map(str, target)) if isinstance(target, list) else str(target or "")
            generation = Generation(run, task, str(row["doc_id"]), str(args[0][0]), str(row["resps"][0][0]),
                                    reference)
        found.setdefault(generation.doc_id, generation)  # lm-eval logs a row per filter
    return sorted(found.values(), key=lambda g: doc_order(g.doc_id))


def doc_order(doc_id: str) -> tuple:
    """Sort key of document ids: numbers in numeric order, then the others by name."""
    return (0, int(doc_id), "") if doc_id.isdigit() else (1, 0, doc_id)


def generations(samples: dict[str, list[dict]], run: str = "") -> tuple[list[Generation], list[str]]:
    """(the generated outputs among logged samples {task: rows}, in task then document order; a message per
    task skipped)."""
    found, skipped = [], []
    for task in sorted(samples):
        if task in RATING_TASKS:
            continue
        try:
            outputs = _task_generations(run, task, samples[task])
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise OutputsError(f"{run or 'samples'}: {task}: not an evalsuite samples row ({e!r})") from None
        if outputs is None:
            skipped.append(f"{run}: skipped {task}: {LOGLIKELIHOOD_MESSAGE}")
        else:
            found += outputs
    return found, skipped


def read_samples(run_dir: str | Path) -> dict[str, list[dict]]:
    """{task: logged rows} of a run folder's `samples/<task>.jsonl`."""
    folder = Path(run_dir)
    files = sorted((folder / "samples").glob("*.jsonl"))
    if not (folder / "results.json").is_file() or not files:
        raise OutputsError(f"{folder}: not an evalsuite run folder (no results.json and samples/*.jsonl)")
    try:
        return {path.stem: [row for _, row in iter_jsonl(path)] for path in files}
    except ConfigError as e:  # names the file and line
        raise OutputsError(str(e)) from None


def generated_outputs(run_dir: str | Path) -> tuple[list[Generation], list[str]]:
    """`generations` of a run folder, the run named by its folder."""
    return generations(read_samples(run_dir), Path(run_dir).resolve().name)


def agreement_of(dimension: str, units: list[list], level: str) -> Agreement:
    """Krippendorff's alpha and percent agreement of a units x raters matrix (None for a missing rating)."""
    alpha, percent = krippendorff_alpha(units, level), percent_agreement(units)
    return Agreement(dimension=dimension, level=level, alpha=None if math.isnan(alpha) else round(alpha, 6),
                     percent=None if math.isnan(percent) else round(percent, 6),
                     raters=sum(any(u[j] is not None for u in units) for j in range(max(map(len, units), default=0))),
                     units=sum(1 for u in units if sum(v is not None for v in u) >= 2))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise OutputsError(f"{path.parent}: no {path.name}; is this an `evalsuite run` folder (moved?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise OutputsError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results", {}), dict):
        raise OutputsError(f"{path}: not an evalsuite {path.name}")
    return data


def add_task(run_dir: str | Path, task: str, values: dict, agreement: list[Agreement] = (),
             rows: list[dict] | None = None, settings: dict | None = None, higher_is_better: dict | None = None,
             registry: str | Path | None = None) -> None:
    """Add (or replace) a task's figures in a finished run: its entry in results.json (with
    `higher_is_better`), `rows` as `samples/<task>.jsonl`, `settings` in run.json, the summaries, and its
    metrics and agreement in the run registry (`registry`, else the run's own, else the one beside it)."""
    from evalsuite.run import RunConfig, Suite, summary_html, summary_markdown

    out = Path(run_dir)
    results, manifest = _read_json(out / "results.json"), _read_json(out / "run.json")
    created = (out / "run.json").stat().st_mtime  # when the run finished (for a registry that lacks it)
    results.setdefault("results", {})[task] = values
    if higher_is_better is not None:
        results.setdefault("higher_is_better", {})[task] = higher_is_better
    if settings is not None:
        manifest[task] = settings
        atomic_write_text(out / "run.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    if rows is not None:
        atomic_write_text(out / "samples" / f"{task}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str, ensure_ascii=False))
    config = manifest.get("config") or {}
    cfg = RunConfig(**{f.name: config[f.name] for f in fields(RunConfig) if f.name in config})
    suite = Suite(**manifest.get("suite") or {"name": "?", "tasks": []})
    seconds = float(manifest.get("seconds") or 0)
    atomic_write_text(out / "summary.md", summary_markdown(suite, cfg, results["results"], seconds))
    atomic_write_text(out / "summary.html", summary_html(suite, cfg, results["results"], seconds))
    record = RunRecord(run_id=out.resolve().name, created=created,
                       output=str(out.resolve()), model=cfg.model,
                       model_fingerprint=manifest.get("model_fingerprint") or "", suite=suite.name, seconds=seconds,
                       lineage=dict(cfg.lineage or {}))
    register_task(registry or cfg.registry or default_registry(out), record, task, values, list(agreement))
