"""`train.run(cfg)`: train with the backend the config names, and write the run's manifest.

    from train import TrainConfig, run
    result = run(TrainConfig(method="sft", model="models/base", data=["data/sft.jsonl"], output="out/sft"))
    result.output, result.metrics   # the model folder (loads in `evalsuite run`) and the figures
"""

from __future__ import annotations

import json
import logging
import os
import time

from pydantic import ValidationError

from corpus.config import ConfigError, format_validation_error
from corpus.io import atomic_write_text
from train.backend import TrainError, TrainResult, load_backend
from train.config import TrainConfig

log = logging.getLogger("train")


def run(cfg: TrainConfig) -> TrainResult:
    """Validate the backend's options, train, and write `train.json` (config, figures, versions) beside the
    model; offline unless the user set HF_HUB_OFFLINE=0."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    backend = load_backend(cfg.method)
    try:
        options = backend.Options.model_validate(cfg.options)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, f"options of method {cfg.method!r}",
                                                  f"the {cfg.method} options in README.md")) from None
    from train import memory
    from train.hf import device, preflight

    preflight(cfg)
    if cfg.model and device(cfg) == "cuda":
        report = memory.preflight_report(cfg)
        log.info("%s", report)
        if cfg.memory_check and not memory.fits(cfg):
            raise TrainError(f"{report}\n(memory_check: false runs it anyway)")
    started = time.time()
    result = backend.train(cfg, options)
    manifest = {"config": cfg.model_dump(), "options": options.model_dump(), "metrics": result.metrics,
                "started": started, "seconds": round(time.time() - started, 3), "versions": _versions()}
    atomic_write_text(result.output / "train.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("corpusloop", "torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
