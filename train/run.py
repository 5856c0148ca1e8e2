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
from corpus.io import atomic_write_text, package_versions
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
        fits, report = memory.preflight(cfg)
        log.info("%s", report)
        if cfg.memory_check and not fits:
            raise TrainError(f"{report}\n(memory_check: false runs it anyway)")
    started = time.time()
    result = backend.train(cfg, options)
    manifest = {"config": cfg.model_dump(), "options": options.model_dump(), "metrics": result.metrics,
                "started": started, "seconds": round(time.time() - started, 3), "versions": package_versions(
                    ["corpusloop", "torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "datasets"])}
    atomic_write_text(result.output / "train.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    return result

