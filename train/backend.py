"""What a training backend is, and the registry that finds them.

A backend is a class with a `name`, an `Options` model (its own settings, validated from
`TrainConfig.options`) and a `train(cfg, options) -> TrainResult` method. Backends are found through the
Python entry-point group `corpusloop.train_backends`; the built-in ones in `plugins/` register there exactly as
a third-party package does:

    [project.entry-points."corpusloop.train_backends"]
    my_method = "my_package.module:MyBackend"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from train.config import TrainConfig

ENTRY_POINT_GROUP = "corpusloop.train_backends"


class TrainError(RuntimeError):
    """A run that cannot start or finish: an unknown method, unusable data, an option the machine lacks."""


class NoOptions(BaseModel):
    """A backend without options of its own."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class TrainResult:
    """Where the trained model is, and the figures of the run (loss at start and end, eval loss, tokens/s)."""

    output: Path
    metrics: dict[str, float] = field(default_factory=dict)


class Backend:
    """Base of every training backend."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def train(self, cfg: TrainConfig, options: BaseModel) -> TrainResult:
        raise NotImplementedError


def available_backends() -> dict[str, str]:
    """{method name: "module:Class"} of every installed backend."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend(name: str) -> Backend:
    """An instance of the backend registered under `name`."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(sorted(available_backends())) or "none installed"
        raise TrainError(f"unknown training method {name!r}; installed: {known}")
    try:
        cls = found[0].load()
    except Exception as e:  # a broken plugin must say which plugin and why (re-raised with the cause)
        raise TrainError(f"training method {name!r} ({found[0].value}) failed to load: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TrainError(f"training method {name!r} ({found[0].value}) is not a train.backend.Backend subclass")
    return cls()
