"""`quality` and `toxicity`: score each document with a fastText classifier and filter by threshold.

The scores go to `metadata["quality"]` / `metadata["toxicity"]` as `{"score", "model"}`, so a later run (or
the `minhash` keep policy `score` with `keep_score_field: quality.score`) can use them. Models are trained
with `corpus train-classifier`; the shipped ones live in `corpus/models/` (see its README for data and
licences, and `python -m corpus.models.build_models` to rebuild them).
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document

from corpus.base import CorpusStep
from corpus.classifier import TextClassifier
from corpus.config import QualityConfig, ToxicityConfig
from corpus.langid import document_language, script_language

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_TOXICITY = {"en": str(MODELS_DIR / "toxicity_en.ftz"), "zh": str(MODELS_DIR / "toxicity_zh.ftz")}
SHIPPED_QUALITY = str(MODELS_DIR / "quality.ftz")


class ShippedToxicity:
    """The shipped toxicity models for scoring short texts outside a pipeline (replies, turns): each text by its
    script's model, Chinese by the Chinese one and anything else by the English one; blank text scores 0."""

    def __init__(self):
        self._models: dict[str, TextClassifier] = {}

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.0
        lang = "zh" if script_language(text) == "zh" else "en"
        if lang not in self._models:
            self._models[lang] = TextClassifier(SHIPPED_TOXICITY[lang])
        return float(self._models[lang].score(text))


class _ClassifierStep(CorpusStep):
    """Loads each model once per worker, on first use (fastText models do not pickle)."""

    def __init__(self, output_dir: str | Path):
        super().__init__(output_dir)
        self._loaded: dict[str, TextClassifier] = {}

    def classifier(self, path: str) -> TextClassifier:
        if path not in self._loaded:
            self._loaded[path] = TextClassifier(path)
        return self._loaded[path]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_loaded"] = {}
        return state


class ToxicityFilter(_ClassifierStep):
    """Scores toxicity with the model for the document's language; removes (reason `toxic`) or flags those
    at or above the threshold; counts documents no model covers as `unscored/<lang>`."""

    name = "toxicity"

    def __init__(self, cfg: ToxicityConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.models = dict(cfg.models) if cfg.models is not None else dict(SHIPPED_TOXICITY)
        for path in list(self.models.values()) + ([cfg.default_model] if cfg.default_model else []):
            self.classifier(path)  # fail at start-up, not on the first document of that language

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        lang = document_language(doc)
        path = self.models.get(lang, self.cfg.default_model)
        if path is None:
            self.count(f"unscored/{lang}")
            return True
        score = self.classifier(path).score(doc.text)
        doc.metadata["toxicity"] = {"score": round(score, 4), "model": Path(path).stem}
        if score < self.cfg.threshold:
            return True
        self.count("toxic")
        return True if self.cfg.mode == "flag" else (False, "toxic")


class QualityScorer(_ClassifierStep):
    """Scores quality (probability of reference-like text); removes documents below `threshold` when set
    (reason `low_quality`)."""

    name = "quality"

    def __init__(self, cfg: QualityConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.path = cfg.model or SHIPPED_QUALITY
        self.classifier(self.path)  # fail at start-up; workers load their own copy (see __getstate__)

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        score = self.classifier(self.path).score(doc.text)
        doc.metadata["quality"] = {"score": round(score, 4), "model": Path(self.path).stem}
        if self.cfg.threshold is not None and score < self.cfg.threshold:
            return False, "low_quality"
        return True


class QualityTopFraction(CorpusStep):
    """Pass 2 of `quality.keep_top_fraction`: removes scored documents below the cut the planning pass
    computed over all shards (reason `below_top_fraction`)."""

    name = "quality_top"

    def __init__(self, cut: float, output_dir: str | Path):
        super().__init__(output_dir)
        self.cut = cut

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        score = doc.metadata.get("quality", {}).get("score")
        return True if score is None or score >= self.cut else (False, "below_top_fraction")
