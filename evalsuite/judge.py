"""`evalsuite judge`: judge models behind OpenAI-compatible endpoints rate a run's generated outputs.

The outputs are those of the run's generation tasks (lm-eval's `generate_until` samples in `samples/`: the
prompt the model saw and what it wrote). Rubrics are YAML files (`evalsuite/judge_rubrics/`, or your own):

    name: relevance
    kind: scale                 # scale: a number in `scale`; labels: one of `labels` (each worth a number);
    scale: [0, 5]               #   pairwise: which of two answers is better (labels first, second, tie)
    system: ...                 # optional system message
    prompt: ... {question} ... {answer} ...       (pairwise: {question}, {answer_a}, {answer_b})
    verdict: 'Rating: \\[\\[(\\d+)\\]\\]'         # a regular expression; its one group is the verdict

A reply without a verdict, with one outside the scale or labels, or with verdicts that disagree counts as
invalid; it is never guessed. Judges answer greedily (temperature 0, seed 0) in a fixed order, so the same
run, rubrics and judge weights give the same judgements.

    evalsuite judge RUN --judge URL [--judge URL2 ...]        every output on every rubric by every judge: the
                                                              mean verdict per rubric (judges averaged per
                                                              output), the share of invalid replies, and
                                                              Krippendorff's alpha between judges
    evalsuite judge --pairwise RUN_A RUN_B --judge URL        the two runs' outputs for the same prompts, in
                                                              both orders (A first, then B first): B's win,
                                                              tie and loss rates, how often the two orders
                                                              agree (position consistency, and its alpha)

A pairwise outcome needs both orders valid; orders that disagree count as a tie (as in MT-Bench). Results go
with the run (the candidate RUN_B for pairwise): a `judge` (or `judge_pairwise`) task in results.json, in
lm-eval's shape, so `evalsuite compare` and the dashboard show it; the judgements one per line in
`samples/<task>.jsonl`; the settings in run.json; the metrics and agreement in the run registry.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from evalsuite.outputs import Generation, OutputsError, add_task, agreement_of, generated_outputs
from evalsuite.registry import Agreement

RUBRICS_DIR = Path(__file__).resolve().parent / "judge_rubrics"
KINDS = ("scale", "labels", "pairwise")
PAIRWISE_LABELS = ("first", "second", "tie")
_PLACEHOLDER = re.compile(r"\{(question|answer|answer_a|answer_b)\}")
_NEEDS = {"scale": ("question", "answer"), "labels": ("question", "answer"),
          "pairwise": ("question", "answer_a", "answer_b")}


class JudgeError(ValueError):
    """Judging that cannot go on: a bad rubric file, a run folder without generations, an endpoint that fails."""


def _generations(run_dir: str | Path) -> list[Generation]:
    try:
        return generated_outputs(run_dir)[0]
    except OutputsError as e:
        raise JudgeError(str(e)) from None


def select(outputs: list[Generation], tasks: Sequence[str] | None, limit: int | None) -> list[Generation]:
    """The outputs of `tasks` (all when None), the first `limit` of each task."""
    kept, seen = [], {}
    for g in outputs:
        if tasks and g.task not in tasks:
            continue
        seen[g.task] = seen.get(g.task, 0) + 1
        if limit is None or seen[g.task] <= limit:
            kept.append(g)
    return kept


@dataclass(frozen=True)
class Rubric:
    """What a judge is asked and how its verdict is read (see the module docstring for the YAML)."""

    name: str
    kind: str
    prompt: str
    verdict: str
    scale: tuple[float, float] | None = None
    labels: dict[str, float | str] = field(default_factory=dict)
    system: str = ""
    description: str = ""
    sha256: str = ""

    @property
    def level(self) -> str:
        """Krippendorff's level of measurement of the verdicts."""
        return "interval" if self.kind == "scale" else "nominal"

    def messages(self, **values: str) -> list[dict]:
        """The chat messages asking for a verdict; `values` fill the prompt's placeholders."""
        text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.prompt)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": text}]

    def parse(self, reply: str) -> float | str | None:
        """The verdict in a judge's reply, or None (invalid) when there is none, it is out of the scale or
        labels, or the reply gives different verdicts."""
        found = set()
        for match in re.finditer(self.verdict, reply):
            raw = match.group(1).strip()
            if self.kind == "scale":
                try:
                    value = float(raw)
                except ValueError:
                    return None
                if not self.scale[0] <= value <= self.scale[1]:
                    return None
                found.add(value)
            elif raw in self.labels:
                found.add(self.labels[raw])
            else:
                return None
        return found.pop() if len(found) == 1 else None


def builtin_rubrics() -> dict[str, Path]:
    return {p.stem: p for p in sorted(RUBRICS_DIR.glob("*.yaml"))}


def load_rubric(name_or_path: str | Path) -> Rubric:
    """A built-in rubric by name, or a rubric YAML file; errors name the file and the field."""
    path = builtin_rubrics().get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise JudgeError(f"unknown rubric {str(name_or_path)!r}: not a built-in rubric "
                         f"({', '.join(builtin_rubrics())}) nor a file")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise JudgeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise JudgeError(f"{path}: a rubric is a mapping with name, kind, prompt and verdict")
    for key in ("name", "kind", "prompt", "verdict"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise JudgeError(f"{path}: '{key}' must be a non-empty string")
    unknown = set(data) - {f.name for f in fields(Rubric) if f.name != "sha256"}
    if unknown:
        raise JudgeError(f"{path}: unknown field {sorted(unknown)[0]!r}")
    kind = data["kind"]
    if kind not in KINDS:
        raise JudgeError(f"{path}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    missing = [p for p in _NEEDS[kind] if f"{{{p}}}" not in data["prompt"]]
    if missing:
        raise JudgeError(f"{path}: 'prompt' lacks the placeholder {{{missing[0]}}}")
    try:
        if re.compile(data["verdict"]).groups != 1:
            raise JudgeError(f"{path}: 'verdict' must have exactly one group (the verdict)")
    except re.error as e:
        raise JudgeError(f"{path}: 'verdict' is not a regular expression ({e})") from None
    scale, labels = data.get("scale"), data.get("labels") or {}
    if kind == "scale":
        if not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(v, (int, float)) for v in scale)
                and scale[0] < scale[1]):
            raise JudgeError(f"{path}: 'scale' must be [lowest, highest], two numbers")
        scale = (float(scale[0]), float(scale[1]))
    elif not isinstance(labels, dict) or not labels:
        raise JudgeError(f"{path}: 'labels' must map each verdict to its value")
    elif kind == "labels" and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      for v in labels.values()):
        raise JudgeError(f"{path}: 'labels' values must be numbers (e.g. PASS: 1, FAIL: 0)")
    elif kind == "pairwise" and not set(labels.values()) <= set(PAIRWISE_LABELS):
        raise JudgeError(f"{path}: 'labels' values must be {', '.join(PAIRWISE_LABELS)}")
    return Rubric(name=data["name"], kind=kind, prompt=data["prompt"], verdict=data["verdict"], scale=scale,
                  labels={str(k): v for k, v in labels.items()}, system=str(data.get("system") or ""),
                  description=str(data.get("description") or ""), sha256=hashlib.sha256(raw).hexdigest())


class JudgeClient:
    """One judge: a model behind an OpenAI-compatible chat endpoint (`.../v1` or the full chat URL), asked
    greedily; `model` is the served model (default: the first it lists)."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, max_tokens: int = 512):
        from evalsuite.slots.adapters import EndpointAgent, EndpointError

        try:
            self.agent = EndpointAgent(url, model=model, api_key=api_key, max_tokens=max_tokens, seed=0,
                                       temperature=0.0)
        except EndpointError as e:
            raise JudgeError(f"judge {url}: {e}") from None
        self.name = f"{self.agent.model}@{self.agent.base}"

    def ask(self, messages: list[dict]) -> str:
        """The judge's reply to one judging request."""
        from evalsuite.slots.adapters import EndpointError
        from evalsuite.slots.cases import Case, Message

        turns = [Message(role=m["role"], content=m["content"]) for m in messages]
        try:  # the request is a one-turn case to the endpoint adapter the slot benchmarks use
            return self.agent.respond(Case(id="judge", category="judge", messages=turns), turns, []).text
        except EndpointError as e:
            raise JudgeError(f"judge {self.name}: {e}") from None


def open_judges(urls: list[str], models: list[str], api_key: str | None = None,
                max_tokens: int = 512) -> list[JudgeClient]:
    """A client per judge URL; `models` names the served model of each (one for all, or none: the first each
    lists)."""
    if len(models) not in (0, 1, len(urls)):
        raise JudgeError(f"{len(models)} judge models for {len(urls)} judges: give one, or one per judge")
    named = models if len(models) == len(urls) else (models or [None]) * len(urls)
    return [JudgeClient(url, model, api_key, max_tokens) for url, model in zip(urls, named)]


@dataclass
class JudgedTask:
    """What judging gives a run: its task entry in lm-eval's shape, one row per judgement, the settings, and
    the agreement between raters (judges, or pairwise the two position orders)."""

    task: str
    values: dict
    rows: list[dict]
    settings: dict
    agreement: list[Agreement] = field(default_factory=list)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="request", disable=not enabled)


def _settings(judges: list[JudgeClient], rubrics: list[Rubric], tasks, limit, items: int) -> dict:
    return {"judges": [{"url": j.agent.base, "model": j.agent.model} for j in judges],
            "max_tokens": judges[0].agent.max_tokens, "rubrics": {r.name: r.sha256 for r in rubrics},
            "tasks": list(tasks or []), "limit": limit, "items": items}


def judge_run(run_dir: str | Path, judges: list[JudgeClient], rubrics: list[Rubric],
              tasks: Sequence[str] | None = None, limit: int | None = None, progress: bool = True) -> JudgedTask:
    """Every generated output of the run (of `tasks`, the first `limit` per task) rated on every rubric by every
    judge: the `judge` task."""
    if not judges or not rubrics:
        raise JudgeError("give at least one judge and one rubric")
    if any(r.kind == "pairwise" for r in rubrics):
        raise JudgeError(f"rubric {next(r.name for r in rubrics if r.kind == 'pairwise')!r} compares two runs: "
                         "use --pairwise RUN_A RUN_B")
    outputs = select(_generations(run_dir), tasks, limit)
    if not outputs:
        raise JudgeError(f"{run_dir}: no generated outputs to judge (the run has no generation task"
                         f"{' among ' + ', '.join(tasks) if tasks else ''})")
    rows, verdicts = [], {}  # verdicts[(rubric, item index)] = [verdict per judge]
    with _progress(len(outputs) * len(rubrics) * len(judges), "judge", progress) as bar:
        for i, g in enumerate(outputs):
            for rubric in rubrics:
                messages = rubric.messages(question=g.question, answer=g.text)
                for judge in judges:
                    reply = judge.ask(messages)
                    verdict = rubric.parse(reply)
                    verdicts.setdefault((rubric.name, i), []).append(verdict)
                    rows.append({"task": g.task, "doc_id": g.doc_id, "rubric": rubric.name, "judge": judge.name,
                                 "verdict": verdict, "valid": verdict is not None, "reply": reply})
                    bar.update()
    values: dict = {}
    agreement = []
    for rubric in rubrics:
        units = [verdicts[(rubric.name, i)] for i in range(len(outputs))]
        scores = [sum(v) / len(v) for v in ([x for x in u if x is not None] for u in units) if v]
        if scores:
            values[f"{rubric.name},none"] = sum(scores) / len(scores)
        if len(scores) >= 2:
            mean = sum(scores) / len(scores)
            variance = sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)
            values[f"{rubric.name}_stderr,none"] = math.sqrt(variance / len(scores))
        if len(judges) >= 2:
            agreement.append(agreement_of(rubric.name, units, rubric.level))
            if agreement[-1].alpha is not None:
                values[f"{rubric.name}_alpha,none"] = agreement[-1].alpha
    values["invalid_rate,none"] = sum(not r["valid"] for r in rows) / len(rows)
    values["sample_len"] = len(outputs)
    return JudgedTask("judge", values, rows, _settings(judges, rubrics, tasks, limit, len(outputs)), agreement)


_WINNER = {("AB", "first"): "A", ("AB", "second"): "B", ("BA", "first"): "B", ("BA", "second"): "A"}


def judge_pairwise(run_a: str | Path, run_b: str | Path, judges: list[JudgeClient], rubric: Rubric,
                   tasks: Sequence[str] | None = None, limit: int | None = None,
                   progress: bool = True) -> JudgedTask:
    """RUN_B's outputs against RUN_A's for the same prompts (same task, document and prompt), each pair asked
    in both orders: the `judge_pairwise` task, stored with RUN_B (rates from B's side)."""
    if rubric.kind != "pairwise":
        raise JudgeError(f"rubric {rubric.name!r} rates one output; --pairwise needs a pairwise rubric")
    if not judges:
        raise JudgeError("give at least one judge")
    theirs = {(g.task, g.doc_id): g for g in _generations(run_a)}
    pairs = [(theirs[(g.task, g.doc_id)], g) for g in select(_generations(run_b), tasks, limit)
             if (g.task, g.doc_id) in theirs and theirs[(g.task, g.doc_id)].prompt == g.prompt]
    if not pairs:
        raise JudgeError(f"{run_a} and {run_b} share no generated output for the same prompt")
    rows, outcomes, orders = [], {}, []  # outcomes[item index] = [outcome per judge]
    with _progress(2 * len(pairs) * len(judges), "judge pairwise", progress) as bar:
        for i, (a, b) in enumerate(pairs):
            asked = {"AB": rubric.messages(question=b.question, answer_a=a.text, answer_b=b.text),
                     "BA": rubric.messages(question=b.question, answer_a=b.text, answer_b=a.text)}
            for judge in judges:
                replies, winners = {}, {}
                for order, messages in asked.items():
                    replies[order] = judge.ask(messages)
                    label = rubric.parse(replies[order])
                    winners[order] = None if label is None else "tie" if label == "tie" else _WINNER[(order, label)]
                    bar.update()
                if None in winners.values():
                    outcome = None
                else:  # the orders disagreeing count as a tie
                    outcome = winners["AB"] if winners["AB"] == winners["BA"] else "tie"
                outcomes.setdefault(i, []).append(outcome)
                orders.append([winners["AB"], winners["BA"]])
                rows.append({"task": b.task, "doc_id": b.doc_id, "judge": judge.name, "a_first": winners["AB"],
                             "b_first": winners["BA"], "outcome": outcome,
                             "consistent": None if outcome is None else winners["AB"] == winners["BA"],
                             "replies": {"a_first": replies["AB"], "b_first": replies["BA"]}})
    decided = [r for r in rows if r["outcome"] is not None]
    values: dict = {}
    if decided:
        values.update({"win_rate,none": sum(r["outcome"] == "B" for r in decided) / len(decided),
                       "tie_rate,none": sum(r["outcome"] == "tie" for r in decided) / len(decided),
                       "loss_rate,none": sum(r["outcome"] == "A" for r in decided) / len(decided),
                       "position_consistency,none": sum(r["consistent"] for r in decided) / len(decided)})
    agreement = [agreement_of("position_order", orders, "nominal")]
    if len(judges) >= 2:
        agreement.append(agreement_of("judges", [outcomes[i] for i in range(len(pairs))], "nominal"))
    for a in agreement:
        if a.alpha is not None:
            values[f"{'order' if a.dimension == 'position_order' else 'judge'}_alpha,none"] = a.alpha
    values["invalid_rate,none"] = sum((r["a_first"] is None) + (r["b_first"] is None) for r in rows) / (2 * len(rows))
    values["sample_len"] = len(pairs)
    settings = {**_settings(judges, [rubric], tasks, limit, len(pairs)), "baseline": str(Path(run_a).resolve())}
    return JudgedTask("judge_pairwise", values, rows, settings, agreement)


def store(run_dir: str | Path, judged: JudgedTask) -> None:
    """Add (or replace) the judged task in a finished run: `samples/<task>.jsonl`, its entry in results.json,
    its settings in run.json, the summary tables, and its metrics and agreement in the run's registry."""
    try:
        add_task(run_dir, judged.task, judged.values, judged.agreement, rows=judged.rows, settings=judged.settings)
    except OutputsError as e:
        raise JudgeError(str(e)) from None
