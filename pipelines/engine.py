"""Running a loop: stages in dependency order, each cached as a build system caches a target.

A stage's key is a hash of its settings, the keys of the stages it reads, the content of the outside files
it reads (datasets, config files) and the corpusloop version. A stage whose `workdir/<stage>/stage.json`
holds its current key is skipped; any other has its folder emptied and is run again, `stage.json` being
written last, when it finished: a killed run resumes at the stage it was in (stages are deterministic, so
the outputs are those of an uninterrupted run), and a changed setting reruns exactly that stage and what
depends on it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from corpus.io import atomic_write_text
from pipelines.spec import PREVIOUS, CleanStage, LoopSpec, Repeat, head, map_references, references

STATE_FILE = "stage.json"


class LoopError(RuntimeError):
    """A loop that cannot run: a dependency cycle, missing input files, a stage that failed."""


@dataclass
class StageState:
    """A finished stage: its key, its outputs (paths relative to its folder) and what it measured."""

    name: str
    kind: str
    key: str
    outputs: dict[str, list[str]]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "ran"  # ran | cached (this time)


@dataclass
class StageContext:
    """What a stage implementation gets: where to write, and how to find what it reads."""

    engine: Loop
    name: str
    folder: Path  # workdir/<stage>: write everything here

    def paths(self, ref: str) -> list[Path]:
        """The files (documents) or folder (a model) a reference stands for."""
        return self.engine.resolve(ref)

    def state(self, ref: str) -> StageState:
        """The finished upstream stage a reference points into."""
        return self.engine.states[head(ref)]


class Loop:
    """A loop definition bound to its working folder."""

    def __init__(self, spec: LoopSpec, workdir: str | Path | None = None):
        self.spec = spec
        self.workdir = Path(workdir or spec.workdir)
        body = set(spec.repeat.stages) if spec.repeat else set()
        self.stages: dict[str, BaseModel] = {n: s for n, s in spec.stages.items() if n not in body}  # + iterations'
        self.states: dict[str, StageState] = {}
        self.iterations: list[Iteration] = []
        self._file_hashes: dict[tuple[str, int, float], str] = {}

    @property
    def registry(self) -> Path:
        """The evalsuite run registry every eval stage of the loop records into."""
        return self.workdir / "registry.sqlite"

    def order(self, names: list[str] | None = None) -> list[str]:
        """Stage names (default: those outside `repeat`) in an order where every stage comes after those it
        reads (ties: definition order)."""
        names = list(self.stages) if names is None else names
        deps = {name: {head(ref) for _, ref in references(self.spec.stages[name]) if not ref.startswith(PREVIOUS)}
                & set(names) for name in names}
        done: list[str] = []
        while len(done) < len(deps):
            ready = [n for n in deps if n not in done and deps[n] <= set(done)]
            if not ready:
                cycle = sorted(n for n in deps if n not in done)
                raise LoopError(f"{self.spec.name}: stages depend on each other in a cycle: {', '.join(cycle)}")
            done.append(ready[0])
        return done

    def resolve(self, ref: str) -> list[Path]:
        """A dataset's input files, or a finished stage's output (`stage` for its first output, `stage/part`)."""
        from corpus.readers import discover_inputs

        name, _, part = ref.partition("/")
        if name in self.spec.datasets:
            found = discover_inputs(self.spec.datasets[name].paths)
            if not found:
                raise LoopError(f"dataset {name!r}: no input files in {self.spec.datasets[name].paths}")
            return found
        state = self.states.get(name)
        if state is None:
            raise LoopError(f"{ref!r}: stage {name!r} has not run")
        part = part or next(iter(state.outputs))
        if part not in state.outputs:
            raise LoopError(f"{ref!r}: stage {name!r} has no output {part!r} (it has {', '.join(state.outputs)})")
        return [self.workdir / name / p for p in state.outputs[part]]

    def _file_hash(self, path: Path) -> str:
        stat = path.stat()
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime)
        if memo not in self._file_hashes:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._file_hashes[memo] = h.hexdigest()
        return self._file_hashes[memo]

    def key(self, name: str) -> str:
        """The stage's cache key (its upstream stages' states must be known)."""
        from corpus.io import package_versions

        stage = self.stages[name]
        inputs = {}
        for _, ref in references(stage):
            source = head(ref)
            if source in self.spec.datasets:
                d = self.spec.datasets[source]
                inputs[ref] = [d.text_field, d.id_field, *[self._file_hash(p) for p in self.resolve(ref)]]
            else:
                inputs[ref] = self.states[source].key
        files = {}
        if isinstance(stage, CleanStage) and stage.config:
            files[stage.config] = self._file_hash(Path(stage.config))
        payload = {"stage": stage.model_dump(mode="json"), "inputs": inputs, "files": files,
                   "version": package_versions(["corpusloop"]).get("corpusloop")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _cached(self, name: str, key: str) -> StageState | None:
        path = self.workdir / name / STATE_FILE
        if not path.is_file():
            return None
        state = StageState(**json.loads(path.read_text(encoding="utf-8")))
        return state if state.key == key else None

    def run(self, force: list[str] | None = None,
            on_stage: Callable[[str, str], None] | None = None) -> dict[str, StageState]:
        """Run every stage that is not cached, and those in `force` with everything downstream of them (a
        repeated stage's name forces it in every iteration), then the iterations of `repeat`;
        `on_stage(name, "cached"|"running"|"done")` reports progress. Returns every stage's state."""
        forced = set(force or [])
        unknown = forced - set(self.spec.stages)
        if unknown:
            raise LoopError(f"--force names no stage: {sorted(unknown)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        notify = on_stage or (lambda name, status: None)
        for name in self.order():
            self._run_stage(name, forced, notify)
        if self.spec.repeat:
            self._iterate(self.spec.repeat, forced, notify)
        return self.states

    def _run_stage(self, name: str, forced: set[str], notify: Callable[[str, str], None]) -> StageState:
        """Run one stage (of `self.stages`) unless its finished state is cached under its current key."""
        from pipelines.stages import run_stage

        stage = self.stages[name]
        key = self.key(name)
        if name.split("@")[0] in forced or any(head(ref) in forced for _, ref in references(stage)):
            forced.add(name)  # keys chain through settings, not outputs: a rerun upstream reruns downstream
        cached = None if name in forced else self._cached(name, key)
        if cached is not None:
            cached.status = "cached"
            self.states[name] = cached
            notify(name, "cached")
            return cached
        notify(name, "running")
        folder = self.workdir / name
        shutil.rmtree(folder, ignore_errors=True)  # its old stage.json goes first: no stale "finished" mark
        folder.mkdir(parents=True)
        started = time.perf_counter()
        outputs, metrics = run_stage(stage, StageContext(self, name, folder))
        state = StageState(name=name, kind=stage.kind, key=key, metrics=metrics, outputs={
            part: [str(p.relative_to(folder)) for p in paths] for part, paths in outputs.items()},
            seconds=round(time.perf_counter() - started, 3))
        atomic_write_text(folder / STATE_FILE, json.dumps(state.__dict__, indent=2, sort_keys=True))
        self.states[name] = state
        notify(name, "done")
        return state

    def _iterate(self, repeat: Repeat, forced: set[str], notify: Callable[[str, str], None]) -> None:
        """Run iterations until the stop rule holds; `iterations.json` and `report.html` record them."""
        from pipelines.report import write_iteration_report

        body = self.order(repeat.stages)
        accepted = 0  # the iteration the next one builds on; 0 = the start stages
        self.iterations = []
        for k in range(1, repeat.max_iterations + 1):

            def bind(field: str, ref: str, k: int = k, accepted: int = accepted) -> str:
                name, _, part = ref.removeprefix(PREVIOUS).partition("/")
                if ref.startswith(PREVIOUS):
                    name = f"{name}@{accepted}" if accepted else repeat.start[name]
                elif name in repeat.stages:
                    name = f"{name}@{k}"
                return f"{name}/{part}" if part else name

            for name in body:
                self.stages[f"{name}@{k}"] = map_references(self.spec.stages[name], bind)
            for name in body:
                self._run_stage(f"{name}@{k}", forced, notify)
            gate = self.states[f"{repeat.gate}@{k}"].metrics
            (candidate, verdict), = gate["candidates"].items()
            iteration = Iteration(k, verdict["verdict"], verdict["value"], verdict["stderr"],
                                  verdict["relative_change"], gate["baseline"]["ref"], candidate)
            self.iterations.append(iteration)
            if iteration.verdict != "accepted":
                iteration.stop = (f"{iteration.verdict}: the gate did not accept it, so the loop keeps "
                                  + (f"iteration {accepted}" if accepted else "the start stages"))
                break
            accepted = k
            if iteration.relative_change < repeat.min_gain:
                iteration.stop = f"accepted, but gained {iteration.relative_change:.2%} < min_gain {repeat.min_gain:.2%}"
                break
        else:
            self.iterations[-1].stop = f"max_iterations ({repeat.max_iterations}) reached"
        start_eval = repeat.start.get(head(self.spec.stages[repeat.gate].candidates[0]))
        summary = {"key_metric": self.spec.stages[repeat.gate].key_metric, "accepted": accepted,
                   "start": {"ref": start_eval, **self._key_value(start_eval, repeat)} if start_eval else None,
                   "iterations": [i.__dict__ for i in self.iterations]}
        atomic_write_text(self.workdir / "iterations.json", json.dumps(summary, indent=2, sort_keys=True))
        write_iteration_report(self.workdir / "report.html", summary, self.spec.name)

    def _key_value(self, eval_ref: str, repeat: Repeat) -> dict[str, float | None]:
        """The gate's key metric (value, stderr) in an eval stage's results."""
        task, _, metric = self.spec.stages[repeat.gate].key_metric.partition("/")
        results = json.loads(self.resolve(f"{eval_ref}/results")[0].read_text(encoding="utf-8"))["results"]
        entry = results.get(task, {})
        return {"value": entry.get(f"{metric},none"), "stderr": entry.get(f"{metric}_stderr,none")}


@dataclass
class Iteration:
    """One iteration of `repeat`: the gate's verdict on its evaluation against the last accepted one, and
    why the loop stopped after it (empty when it went on)."""

    iteration: int
    verdict: str  # accepted | not better | rolled back
    value: float
    stderr: float | None
    relative_change: float  # against `baseline`, positive = better
    baseline: str
    evaluation: str
    stop: str = ""
