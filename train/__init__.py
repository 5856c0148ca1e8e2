"""Training from Python: `train.run(TrainConfig(...))` with the method as a plugin (see `train.backend`)."""

from train.backend import Backend, TrainError, TrainResult, available_backends, load_backend
from train.config import PeftSettings, TrainConfig, load_train_config
from train.run import run

__all__ = ["Backend", "PeftSettings", "TrainConfig", "TrainError", "TrainResult", "available_backends",
           "load_backend", "load_train_config", "run"]
