"""Callbacks added to every run: the overfitting warning, and evaluation during training (a fixed, small
subset of an evalsuite suite run on the live model every N steps, its metrics logged beside the loss in
TensorBoard and `trainer_state.json`)."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainerCallback

from train.config import EvalDuringTraining

log = logging.getLogger("train")


class OverfittingWarning(TrainerCallback):
    """Warns (once) when validation loss has risen at two evaluations in a row while training loss fell."""

    def __init__(self):
        self.evals: list[float] = []
        self.warned = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self.evals.append(float(metrics["eval_loss"]))
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        rising = len(self.evals) >= 3 and self.evals[-1] > self.evals[-2] > self.evals[-3]
        if rising and len(losses) >= 2 and losses[-1] < losses[0] and not self.warned:
            self.warned = True
            log.warning("validation loss rose at the last two evaluations (%.4g -> %.4g) while training loss fell "
                        "(%.4g -> %.4g): the model is overfitting; fewer steps, more data or early_stopping_patience",
                        self.evals[-3], self.evals[-1], losses[0], losses[-1])
        return control


class EvalSuiteCallback(TrainerCallback):
    """Runs `settings.suite` (first `settings.limit` documents per task) every `settings.every_steps` steps."""

    def __init__(self, settings: EvalDuringTraining, tokenizer, trainer):
        self.settings, self.tokenizer, self.trainer = settings, tokenizer, trainer
        self.manager = self.tasks = None

    def _prepare(self, output_dir: str) -> None:
        from lm_eval.tasks import TaskManager

        from evalsuite.run import load_suite, materialise_tasks

        self.tasks = load_suite(self.settings.suite).tasks
        self.manager = TaskManager(include_path=str(materialise_tasks(Path(output_dir) / "eval_tasks")))

    def evaluate(self, model, output_dir: str, batch_size: int) -> dict[str, float]:
        """{"evalsuite/<task>/<metric>": value} of the model as it is now."""
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        if self.manager is None:
            self._prepare(output_dir)
        was_training = model.training
        model.eval()
        try:
            lm = HFLM(pretrained=model, tokenizer=self.tokenizer, batch_size=batch_size)
            results = simple_evaluate(model=lm, tasks=self.tasks, task_manager=self.manager, limit=self.settings.limit,
                                      random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
        finally:
            model.train(was_training)
        return {f"evalsuite/{task}/{key.split(',')[0]}": float(value)
                for task, values in results["results"].items() for key, value in values.items()
                if "," in key and "_stderr" not in key and isinstance(value, (int, float))
                and not isinstance(value, bool)}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.settings.every_steps == 0 and model is not None:
            self.trainer.log(self.evaluate(model, args.output_dir, args.per_device_eval_batch_size))
        return control
