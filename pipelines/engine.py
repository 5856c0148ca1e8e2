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

from corpus.io import atomic_write_text
from pipelines.spec import CleanStage, LoopSpec, references

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
        return self.engine.states[ref.split("/", 1)[0]]


class Loop:
    """A loop definition bound to its working folder."""

    def __init__(self, spec: LoopSpec, workdir: str | Path | None = None):
        self.spec = spec
        self.workdir = Path(workdir or spec.workdir)
        self.states: dict[str, StageState] = {}
        self._file_hashes: dict[tuple[str, int, float], str] = {}

    @property
    def registry(self) -> Path:
        """The evalsuite run registry every eval stage of the loop records into."""
        return self.workdir / "registry.sqlite"

    def order(self) -> list[str]:
        """Stage names in an order where every stage comes after those it reads (ties: definition order)."""
        deps = {name: {ref.split("/", 1)[0] for _, ref in references(stage)} & set(self.spec.stages)
                for name, stage in self.spec.stages.items()}
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

        head, _, part = ref.partition("/")
        if head in self.spec.datasets:
            found = discover_inputs(self.spec.datasets[head].paths)
            if not found:
                raise LoopError(f"dataset {head!r}: no input files in {self.spec.datasets[head].paths}")
            return found
        state = self.states.get(head)
        if state is None:
            raise LoopError(f"{ref!r}: stage {head!r} has not run")
        part = part or next(iter(state.outputs))
        if part not in state.outputs:
            raise LoopError(f"{ref!r}: stage {head!r} has no output {part!r} (it has {', '.join(state.outputs)})")
        return [self.workdir / head / p for p in state.outputs[part]]

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

        stage = self.spec.stages[name]
        inputs = {}
        for _, ref in references(stage):
            head = ref.split("/", 1)[0]
            if head in self.spec.datasets:
                d = self.spec.datasets[head]
                inputs[ref] = [d.text_field, d.id_field, *[self._file_hash(p) for p in self.resolve(ref)]]
            else:
                inputs[ref] = self.states[head].key
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
        """Run every stage that is not cached, and those in `force` with everything downstream of them;
        `on_stage(name, "cached"|"running"|"done")` reports progress. Returns every stage's state."""
        from pipelines.stages import run_stage

        force = set(force or [])
        unknown = force - set(self.spec.stages)
        if unknown:
            raise LoopError(f"--force names no stage: {sorted(unknown)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        notify = on_stage or (lambda name, status: None)
        for name in self.order():
            key = self.key(name)
            if any(ref.split("/", 1)[0] in force for _, ref in references(self.spec.stages[name])):
                force.add(name)  # keys chain through settings, not outputs: a rerun upstream reruns downstream
            cached = None if name in force else self._cached(name, key)
            if cached is not None:
                cached.status = "cached"
                self.states[name] = cached
                notify(name, "cached")
                continue
            notify(name, "running")
            folder = self.workdir / name
            shutil.rmtree(folder, ignore_errors=True)  # its old stage.json goes first: no stale "finished" mark
            folder.mkdir(parents=True)
            started = time.perf_counter()
            stage = self.spec.stages[name]
            outputs, metrics = run_stage(stage, StageContext(self, name, folder))
            state = StageState(name=name, kind=stage.kind, key=key, metrics=metrics, outputs={
                part: [str(p.relative_to(folder)) for p in paths] for part, paths in outputs.items()},
                seconds=round(time.perf_counter() - started, 3))
            atomic_write_text(folder / STATE_FILE, json.dumps(state.__dict__, indent=2, sort_keys=True))
            self.states[name] = state
            notify(name, "done")
        return self.states
