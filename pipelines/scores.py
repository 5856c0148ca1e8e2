"""Score once, filter many: a per-document score table, and selections made from it without rescoring.

Documents (JSONL, plain or gzip, or Parquet) are scored once into one Parquet table keyed by id: perplexity
under local causal LMs, the fastText quality and toxicity classifiers, length, language. Keep rules then run on
that table with polars as often as wanted (DCLM / CCNet-style model-based filtering: perplexity bands, top
fractions by classifier score), a new filter needing at most one new column (`add_scores`), and `write_subset`
copies the kept documents out. `favoured_split` and `train_favoured_classifier` close the loop: the documents a
better model finds much easier than a worse one become the positives of a new quality classifier.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from corpus.classifier import ClassifierConfig, ClassifierReport, TextClassifier, train_classifier
from corpus.config import ConfigError, LangIdConfig
from corpus.io import RecordSink, atomic_write_bytes, iter_jsonl, record_files
from corpus.langid import LanguageIdentifier
from corpus.scoring import SHIPPED_QUALITY, SHIPPED_TOXICITY

KEY_COLUMNS = ("id", "source")


# -- documents ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Document:
    """One input record, where it came from, and its id and text."""

    id: str
    text: str
    record: dict[str, Any]
    source: Path


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.name.endswith(".parquet"):
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    else:
        yield from iter_jsonl(path)


def _documents(paths: list[str | Path], text_field: str = "text", id_field: str = "id") -> Iterator[_Document]:
    files = record_files(paths)
    seen: dict[str, int] = {}  # id -> index of its file: small ints are shared, so this costs little beyond the ids
    for index, path in enumerate(files):
        for line, record in _records(path):
            text = record.get(text_field)
            if not isinstance(text, str):
                raise ConfigError(f"{path}:{line}: field {text_field!r} is missing or not a string")
            raw_id = record.get(id_field)
            doc_id = f"{path.name}:{line}" if raw_id is None else str(raw_id)
            if doc_id in seen:
                raise ConfigError(f"{path}:{line}: duplicate id {doc_id!r} (first in {files[seen[doc_id]]})")
            seen[doc_id] = index
            yield _Document(doc_id, text, record, path)


def iter_documents(paths: list[str | Path], text_field: str = "text",
                   id_field: str = "id") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, text, full record) of every document of `paths` (files, or folders searched recursively for *.jsonl,
    *.jsonl.gz and *.parquet) in a fixed order: files sorted by path, records in file order. A record without an
    id gets `<file name>:<line>` (row from 1 in Parquet); a missing or non-string text, or an id seen before, is
    a ConfigError naming the file and line."""
    for doc in _documents(paths, text_field, id_field):
        yield doc.id, doc.text, doc.record


# -- scorers -----------------------------------------------------------------------------------------------

class Scorer:
    """A per-document measurement: `score(texts)` gives one number per text, stored in the column `column`."""

    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Every table column this scorer writes."""
        return (self.column,)

    def score(self, texts: list[str]) -> list[float]:
        raise NotImplementedError

    def arrays(self, texts: list[str]) -> dict[str, pa.Array]:
        """This scorer's columns for a batch of texts."""
        return {self.column: pa.array(self.score(texts), pa.float64())}


class LengthScorer(Scorer):
    """Length in characters (column `chars`)."""

    column = "chars"

    def score(self, texts: list[str]) -> list[float]:
        return [len(t) for t in texts]

    def arrays(self, texts: list[str]) -> dict[str, pa.Array]:
        return {self.column: pa.array(self.score(texts), pa.int64())}


def _language_identifier(model_path: str | Path | None = None) -> LanguageIdentifier:
    # The `langid` step of corpus clean, used only for its `predict`: the same model, text window and labels.
    # It writes nothing, so its output folder is never used.
    return LanguageIdentifier(LangIdConfig(model_path=model_path), output_dir=".")


class LanguageScorer(Scorer):
    """fastText lid.176 language (column `language`, e.g. "en") and its probability (`language_score`)."""

    column = "language_score"

    def __init__(self, model_path: str | Path | None = None):
        self.langid = _language_identifier(model_path)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("language", self.column)

    def score(self, texts: list[str]) -> list[float]:
        return [self.langid.predict(t)[1] for t in texts]

    def arrays(self, texts: list[str]) -> dict[str, pa.Array]:
        predictions = [self.langid.predict(t) for t in texts]
        return {"language": pa.array([lang for lang, _ in predictions], pa.string()),
                self.column: pa.array([score for _, score in predictions], pa.float64())}


class ClassifierScorer(Scorer):
    """Probability of the positive label under a fastText classifier of corpus/ (column `kind`, or `column`).

    `model_path` None means the shipped model: `quality.ftz`, or for toxicity the model of `language` (en, zh),
    or with no `language` the model of each document's lid.176 language (NaN where none is shipped)."""

    def __init__(self, kind: Literal["quality", "toxicity"] = "quality", model_path: str | Path | None = None,
                 language: str | None = None, column: str | None = None):
        if kind not in ("quality", "toxicity"):
            raise ConfigError(f"classifier kind must be quality or toxicity, not {kind!r}")
        if language is not None and (kind != "toxicity" or model_path is not None):
            raise ConfigError("language picks one of the shipped toxicity models; it applies to kind toxicity "
                              "without model_path only")
        self.column = column or kind
        self.model: TextClassifier | None = None
        self.by_language: dict[str, TextClassifier] = {}
        self.langid: LanguageIdentifier | None = None
        if model_path is not None or kind == "quality":
            self.model = TextClassifier(model_path or SHIPPED_QUALITY)
        elif language is not None:
            if language not in SHIPPED_TOXICITY:
                raise ConfigError(f"no shipped toxicity model for {language!r} (shipped: "
                                  f"{', '.join(sorted(SHIPPED_TOXICITY))}); give model_path")
            self.model = TextClassifier(SHIPPED_TOXICITY[language])
        else:
            self.by_language = {lang: TextClassifier(path) for lang, path in SHIPPED_TOXICITY.items()}
            self.langid = _language_identifier()

    def score(self, texts: list[str]) -> list[float]:
        if self.model is not None:
            return self.model.scores(texts).tolist()
        languages = [self.langid.predict(t)[0] for t in texts]
        scores = [math.nan] * len(texts)
        for lang, model in self.by_language.items():
            rows = [i for i, text_lang in enumerate(languages) if text_lang == lang]
            if rows:
                for i, value in zip(rows, model.scores([texts[i] for i in rows]).tolist()):
                    scores[i] = value
        return scores


def _causal_lm(what: str, model_dir: str | Path, max_length: int, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) of a local causal LM folder: safetensors weights, no remote code, float32, eval mode;
    `max_length` checked against its positions."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{what}: {folder} is not a local model folder (no config.json)")
    if max_length < 2:
        raise ConfigError(f"{what}: max_length must be >= 2")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                 use_safetensors=True, dtype=torch.float32)
    model.to(device).eval()
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and max_length > positions:
        raise ConfigError(f"{what}: max_length {max_length} exceeds the model's {positions} positions")
    return tokenizer, model


def _padded(batch: list[list[int]], device: str) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of token lists padded on the right (pad id 0: masked out, never scored)."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    return input_ids.to(device), mask.to(device)


class _CausalLMScorer(Scorer):
    """A scorer over a local causal LM's view of each document's first `max_length` tokens: documents with
    fewer than two tokens get NaN (nothing to predict); the others go to `_batch_scores` in batches of
    `batch_size`, similar lengths together."""

    def __init__(self, what: str, model_dir: str | Path, max_length: int, batch_size: int, device: str):
        if batch_size < 1:
            raise ConfigError(f"{what}: batch_size must be >= 1")
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self.tokenizer, self.model = _causal_lm(what, model_dir, max_length, device)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"] if texts else []

    def score(self, texts: list[str]) -> list[float]:
        ids = self._token_ids(texts)
        scores = [math.nan] * len(texts)
        scorable = sorted((i for i in range(len(texts)) if len(ids[i]) >= 2), key=lambda i: len(ids[i]))
        for start in range(0, len(scorable), self.batch_size):
            rows = scorable[start : start + self.batch_size]
            for i, value in zip(rows, self._batch_scores([ids[i] for i in rows])):
                scores[i] = value
        return scores

    def _batch_scores(self, batch: list[list[int]]) -> list[float]:
        raise NotImplementedError


class PerplexityScorer(_CausalLMScorer):
    """Perplexity of each document's first `max_length` tokens under a local causal LM (column `ppl_<name>`):
    exp of the mean next-token negative log-likelihood. Fewer than two tokens give NaN (nothing to predict).

    The model loads from `model_dir` only: safetensors weights, no remote code, float32. Texts are scored in
    batches of `batch_size`, similar lengths together, padded on the right under an attention mask."""

    def __init__(self, name: str, model_dir: str | Path, max_length: int = 512, batch_size: int = 8,
                 device: str = "cpu"):
        super().__init__(f"perplexity model {name!r}", model_dir, max_length, batch_size, device)
        self.column = f"ppl_{name}"

    def _batch_scores(self, batch: list[list[int]]) -> list[float]:
        import torch
        import torch.nn.functional as F

        input_ids, mask = _padded(batch, self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            nll = F.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
            predicted = mask[:, 1:].to(nll.dtype)
            mean_nll = (nll * predicted).sum(1).double() / predicted.sum(1).double()
        return torch.exp(mean_nll).cpu().tolist()


class InfluenceScorer(_CausalLMScorer):
    """Evaluation-aware selection (column `influence_<name>`): whether training a model further on a document
    would lower its loss on held-out documents, to first order. The score is the cosine between the document's
    loss gradient and the mean held-out loss gradient (each document's mean next-token loss, gradients with
    respect to the model's output projection): TracIn's and LESS's estimate, restricted to the last layer so
    that it costs about one extra forward pass and no backward one. A gradient step on a document with a
    negative score raises the held-out loss, so dropping the lowest-scoring documents is the selection that
    most improves the held-out metric as far as the model can tell. NaN for documents under two tokens.

    For a document, with e_t = softmax(logits_t) - onehot(next token) and h_t the output layer's input at
    position t, the gradient is G_d = mean_t e_t h_t^T: its dot product with the held-out gradient G is
    mean_t e_t . (G h_t) and its squared norm mean_{t,s} (e_t . e_s)(h_t . h_s), both computed without
    materialising G_d. `held_out` texts should be a validation set, never the test set a gate judges by."""

    def __init__(self, name: str, model_dir: str | Path, held_out: list[str], max_length: int = 512,
                 batch_size: int = 8, device: str = "cpu"):
        import torch

        super().__init__(f"influence model {name!r}", model_dir, max_length, batch_size, device)
        self.column = f"influence_{name}"
        self.output = self.model.get_output_embeddings()
        if self.output is None or getattr(self.output, "bias", None) is not None:
            raise ConfigError(f"influence model {name!r}: needs an output projection without bias")
        held_ids = [ids for ids in self._token_ids(held_out) if len(ids) >= 2]
        if not held_ids:
            raise ConfigError(f"influence model {name!r}: no held-out document has two tokens")
        total = torch.zeros_like(self.output.weight, dtype=torch.float64)
        for start in range(0, len(held_ids), self.batch_size):
            errors, hidden, counts = self._errors_and_inputs(held_ids[start : start + self.batch_size])
            total += torch.einsum("btv,bth->vh", errors / counts[:, None, None], hidden).double()
        self.held_out_gradient = (total / len(held_ids)).float()
        self.held_out_norm = float(self.held_out_gradient.norm())

    def _errors_and_inputs(self, batch: list[list[int]]) -> tuple[Any, Any, Any]:
        """(e, h, n): per predicted position the softmax error (zero where masked) and the output layer's
        input, and each document's number of predicted positions."""
        import torch

        input_ids, mask = _padded(batch, self.device)
        captured = []
        hook = self.output.register_forward_hook(lambda module, args, out: captured.append(args[0]))
        try:
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        finally:
            hook.remove()
        predicted = mask[:, 1:].float()
        errors = torch.softmax(logits, dim=-1)
        errors.scatter_add_(-1, input_ids[:, 1:, None], -torch.ones_like(errors[..., :1]))
        errors *= predicted[..., None]
        hidden = captured[0][:, :-1].float() * predicted[..., None]
        return errors, hidden, predicted.sum(1)

    def _batch_scores(self, batch: list[list[int]]) -> list[float]:
        import torch

        errors, hidden, counts = self._errors_and_inputs(batch)
        with torch.inference_mode():
            dots = torch.einsum("btv,btv->b", errors, hidden @ self.held_out_gradient.T) / counts
            norms = ((errors @ errors.transpose(1, 2)) * (hidden @ hidden.transpose(1, 2))).sum((1, 2)).sqrt() / counts
        return (dots / (norms * self.held_out_norm).clamp_min(1e-30)).double().tolist()


# -- the score table ---------------------------------------------------------------------------------------

def _check_new_columns(scorers: list[Scorer]) -> list[str]:
    names = [c for s in scorers for c in s.columns]
    clash = sorted({c for c in names if names.count(c) > 1 or c in KEY_COLUMNS})
    if clash:
        raise ConfigError(f"score columns {clash} are reserved (id, source) or written by two scorers")
    return names


def _score(paths: list[str | Path], scorers: list[Scorer], text_field: str, id_field: str, batch: int,
           progress: bool) -> tuple[list[str], list[str], dict[str, pa.ChunkedArray]]:
    """(ids, sources, {column: values}) of every document, in document order."""
    if batch < 1:
        raise ConfigError("batch must be at least 1")
    ids: list[str] = []
    sources: list[str] = []
    chunks: dict[str, list[pa.Array]] = {c: [] for s in scorers for c in s.columns}
    texts: list[str] = []

    def flush() -> None:
        for scorer in scorers:
            for name, values in scorer.arrays(texts).items():
                chunks[name].append(values)
        texts.clear()

    with tqdm(desc="score", unit="doc", disable=not progress) as bar:
        for doc in _documents(paths, text_field, id_field):
            ids.append(doc.id)
            sources.append(str(doc.source))
            texts.append(doc.text)
            if len(texts) == batch:
                flush()
                bar.update(batch)
        bar.update(len(texts))
        flush()  # also when empty: gives every column its type
    return ids, sources, {name: pa.chunked_array(parts) for name, parts in chunks.items()}


def _write_table(table: pa.Table, path: Path) -> None:
    # pyarrow puts no timestamp in a Parquet file (only the schema and its own version), so equal tables give
    # equal bytes; the file is built in memory and renamed into place by corpus.io.
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def score_table(paths: list[str | Path], output: str | Path, scorers: list[Scorer], text_field: str = "text",
                id_field: str = "id", batch: int = 256, progress: bool = True) -> Path:
    """Score every document of `paths` into one Parquet table at `output`: columns `id`, `source` (the file),
    then each scorer's; one row per document in document order; written atomically, the same bytes on a
    re-run. Scorers see `batch` texts at a time."""
    _check_new_columns(scorers)
    ids, sources, columns = _score(paths, scorers, text_field, id_field, batch, progress)
    output = Path(output)
    _write_table(pa.table({"id": pa.array(ids, pa.string()), "source": pa.array(sources, pa.string()), **columns}),
                 output)
    return output


def add_scores(table: str | Path, paths: list[str | Path], scorers: list[Scorer], text_field: str = "text",
               id_field: str = "id", batch: int = 256, progress: bool = True, overwrite: bool = False) -> Path:
    """Add the columns of `scorers` to an existing score table, leaving its other columns as they are (the
    documents must be those it was scored on, in the same order). A column the table has already is an error
    unless `overwrite`, which rescores it in place."""
    table = Path(table)
    existing = pq.read_table(table)
    names = _check_new_columns(scorers)
    present = [c for c in names if c in existing.column_names]
    if present and not overwrite:
        raise ConfigError(f"{table} already has column(s) {present}; pass overwrite=True to rescore them")
    ids, _, columns = _score(paths, scorers, text_field, id_field, batch, progress)
    scored_ids = existing.column("id").to_pylist()
    if ids != scored_ids:
        row = next((i for i, (a, b) in enumerate(zip(ids, scored_ids)) if a != b), min(len(ids), len(scored_ids)))
        raise ConfigError(f"the documents are not those {table} was scored on: {len(ids)} documents for "
                          f"{len(scored_ids)} rows, first difference at row {row}")
    for name, values in columns.items():
        if name in existing.column_names:
            existing = existing.set_column(existing.column_names.index(name), name, values)
        else:
            existing = existing.append_column(name, values)
    _write_table(existing, table)
    return table


# -- selection ---------------------------------------------------------------------------------------------

_RULE_KINDS = {"min/max": ("min", "max"), "lower_quantile/upper_quantile": ("lower_quantile", "upper_quantile"),
               "top_fraction": ("top_fraction",), "equals": ("equals",)}


class KeepRule(BaseModel):
    """Which rows of a score table to keep, by one column and exactly one test: a band of values (`min`
    and/or `max`, inclusive), a band of quantiles of the column (`lower_quantile` and/or `upper_quantile`, e.g.
    0.1 and 0.9), the best `top_fraction` (highest values, or lowest with `highest: false`; ties at the cut are
    kept), or `equals` a value. Rows where the column is NaN or empty are never kept. With `by` (a column such as
    `language`), quantiles and top fractions are taken within each of its groups: perplexities are not
    comparable across languages (CCNet buckets them per language for the same reason)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    lower_quantile: float | None = Field(None, ge=0, le=1)
    upper_quantile: float | None = Field(None, ge=0, le=1)
    top_fraction: float | None = Field(None, gt=0, le=1)
    highest: bool = True
    equals: str | bool | int | float | None = None
    by: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> KeepRule:
        kinds = [k for k, fields in _RULE_KINDS.items() if any(getattr(self, f) is not None for f in fields)]
        if len(kinds) != 1:
            got = " and ".join(kinds) if kinds else "none"
            raise ValueError(f"rule on {self.column!r}: give exactly one of min/max, lower_quantile/upper_quantile, "
                             f"top_fraction or equals (got {got})")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"rule on {self.column!r}: min {self.min} is above max {self.max}")
        if (self.lower_quantile is not None and self.upper_quantile is not None
                and self.lower_quantile > self.upper_quantile):
            raise ValueError(f"rule on {self.column!r}: lower_quantile {self.lower_quantile} is above "
                             f"upper_quantile {self.upper_quantile}")
        if not self.highest and self.top_fraction is None:
            raise ValueError(f"rule on {self.column!r}: highest applies to top_fraction only")
        if self.by is not None and self.kind not in ("quantile", "top_fraction"):
            raise ValueError(f"rule on {self.column!r}: by applies to quantile bands and top_fraction only")
        return self

    @property
    def kind(self) -> str:
        """band, quantile, top_fraction or equals."""
        if self.equals is not None:
            return "equals"
        if self.top_fraction is not None:
            return "top_fraction"
        return "quantile" if self.lower_quantile is not None or self.upper_quantile is not None else "band"


def _read_columns(table: str | Path, columns: list[str]) -> pl.DataFrame:
    available = pq.read_schema(table).names
    missing = [c for c in columns if c not in available]
    if missing:
        raise ConfigError(f"{table} has no column(s) {missing}; it has {available}")
    return pl.read_parquet(table, columns=list(dict.fromkeys(columns)))


def _rule_mask(df: pl.DataFrame, rule: KeepRule) -> tuple[pl.Series, dict[str, Any]]:
    """The rows a rule keeps, and the bounds it used (quantiles and top fractions resolved to values; with `by`,
    per group)."""
    if rule.by is not None:
        groups, whole = df[rule.by], rule.model_copy(update={"by": None})
        mask = pl.Series("keep", [False] * df.height, dtype=pl.Boolean)
        used = {}
        for value in groups.unique(maintain_order=True).to_list():
            member = groups.is_null() if value is None else (groups == value).fill_null(False)
            kept, used[str(value)] = _rule_mask(df.filter(member), whole)
            mask = mask.scatter(member.arg_true(), kept)
        return mask, {"by": rule.by, "groups": used}
    column = df[rule.column]
    if rule.equals is not None:
        if isinstance(rule.equals, str) != (column.dtype == pl.String):
            raise ConfigError(f"rule on {rule.column!r}: equals {rule.equals!r} does not fit a column of "
                              f"type {column.dtype}")
        return (column == rule.equals).fill_null(False), {"equals": rule.equals}
    if not column.dtype.is_numeric():
        raise ConfigError(f"rule on {rule.column!r}: {rule.kind} needs a numeric column, not {column.dtype}")
    values = column.cast(pl.Float64)
    valid = (values.is_not_null() & values.is_not_nan()).fill_null(False)
    present = values.filter(valid)
    low, high = rule.min, rule.max
    if rule.kind == "quantile":
        low = present.quantile(rule.lower_quantile, "linear") if rule.lower_quantile is not None else None
        high = present.quantile(rule.upper_quantile, "linear") if rule.upper_quantile is not None else None
    elif rule.kind == "top_fraction":
        keep = math.ceil(round(rule.top_fraction * len(present), 9))  # round: 0.3 * 10 is 3.0000000000000004
        cut = present.sort(descending=rule.highest)[keep - 1] if keep else None
        low, high = (cut, None) if rule.highest else (None, cut)
    if present.is_empty():
        return pl.Series("keep", [False] * df.height, dtype=pl.Boolean), {"min": None, "max": None}
    mask = valid
    if low is not None:
        mask = mask & (values >= low).fill_null(False)
    if high is not None:
        mask = mask & (values <= high).fill_null(False)
    return mask, {"min": low, "max": high}


def _evaluate(table: str | Path, rules: list[KeepRule]) -> tuple[pl.DataFrame, list[pl.Series], list[dict]]:
    df = _read_columns(table, ["id", *(r.column for r in rules), *(r.by for r in rules if r.by)])
    masks, bounds = [], []
    for rule in rules:
        mask, used = _rule_mask(df, rule)
        masks.append(mask)
        bounds.append(used)
    return df, masks, bounds


def select(table: str | Path, rules: list[KeepRule]) -> list[str]:
    """Ids of the rows every rule keeps, in table order. Each rule is resolved on the whole table (a quantile is
    one of all rows, not of those an earlier rule kept), so the order of rules does not matter."""
    df, masks, _ = _evaluate(table, rules)
    keep = pl.Series("keep", [True] * df.height, dtype=pl.Boolean)
    for mask in masks:
        keep = keep & mask
    return df["id"].filter(keep).to_list()


def selection_report(table: str | Path, rules: list[KeepRule]) -> dict[str, Any]:
    """Rows, rows kept by all rules, and per rule: its settings, kind, the bounds used (`min`/`max`, quantiles
    and top fractions resolved to values; or `equals`), rows kept, dropped, and missing (NaN or empty)."""
    df, masks, bounds = _evaluate(table, rules)
    keep = pl.Series("keep", [True] * df.height, dtype=pl.Boolean)
    per_rule = []
    for rule, mask, used in zip(rules, masks, bounds):
        keep = keep & mask
        column = df[rule.column]
        missing = column.null_count() + (int(column.is_nan().sum()) if column.dtype.is_float() else 0)
        kept = int(mask.sum())
        per_rule.append({"rule": rule.model_dump(exclude_defaults=True), "kind": rule.kind, **used, "kept": kept,
                         "dropped": df.height - kept, "missing": missing})
    kept = int(keep.sum())
    return {"rows": df.height, "kept": kept, "dropped": df.height - kept, "rules": per_rule}


# -- subsets -----------------------------------------------------------------------------------------------

def write_subset(paths: list[str | Path], ids: set[str] | list[str], output_dir: str | Path, text_field: str = "text",
                 id_field: str = "id", shard_docs: int = 50_000) -> dict[str, int]:
    """Copy the documents whose id is in `ids` (whole records, unchanged) to `output_dir/part-00000.jsonl.gz`,
    ... in document order, `shard_docs` per shard, each written atomically and reproducibly. Shards of an
    earlier, larger subset in the folder are removed. Returns documents_in, documents_kept, chars_kept, shards
    and ids_not_found (asked for but not among the documents)."""
    if shard_docs < 1:
        raise ConfigError("shard_docs must be at least 1")
    wanted = set(ids)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    counts = {"documents_in": 0, "documents_kept": 0, "chars_kept": 0, "shards": 0}
    sink: RecordSink | None = None
    for doc in _documents(paths, text_field, id_field):
        counts["documents_in"] += 1
        if doc.id not in wanted:
            continue
        if sink is None:
            sink = RecordSink(output_dir / f"part-{counts['shards']:05d}.jsonl.gz", "jsonl.gz")
            counts["shards"] += 1
        sink.write(doc.record)
        counts["documents_kept"] += 1
        counts["chars_kept"] += len(doc.text)
        if sink.count == shard_docs:
            sink.close()
            sink = None
    if sink is not None:
        sink.close()
    written = {f"part-{i:05d}.jsonl.gz" for i in range(counts["shards"])}
    for stale in output_dir.glob("part-[0-9][0-9][0-9][0-9][0-9].jsonl.gz"):
        if stale.name not in written:
            stale.unlink()
    counts["ids_not_found"] = len(wanted) - counts["documents_kept"]
    return counts


# -- model-driven selection --------------------------------------------------------------------------------

def favoured_split(table: str | Path, better: str, worse: str, fraction: float = 0.2) -> tuple[list[str], list[str]]:
    """(positives, negatives) by what a better model learned: among rows with both perplexity columns finite,
    the `fraction` whose log perplexity drops most from `worse` to `better` (log ppl_worse - log ppl_better
    largest), and the `fraction` where it drops least or rises. Ties go to the earlier row; ids in table order."""
    if not 0 < fraction <= 0.5:
        raise ConfigError(f"fraction must be in (0, 0.5] so that positives and negatives differ, not {fraction}")
    df = _read_columns(table, ["id", better, worse])
    for name in (better, worse):
        if not df[name].dtype.is_numeric():
            raise ConfigError(f"{table}: column {name!r} is not numeric (a perplexity column, e.g. ppl_<name>)")
    df = (df.cast({better: pl.Float64, worse: pl.Float64}).with_row_index("row")
          .filter(pl.col(better).is_finite() & pl.col(worse).is_finite() & (pl.col(better) > 0) & (pl.col(worse) > 0))
          .with_columns(gain=pl.col(worse).log() - pl.col(better).log()))
    count = int(fraction * df.height + 1e-9)  # floor: at most half the rows each, so the two sets never overlap
    positives = df.sort(["gain", "row"], descending=[True, False]).head(count)
    negatives = df.sort(["gain", "row"], descending=[False, False]).head(count)
    return positives.sort("row")["id"].to_list(), negatives.sort("row")["id"].to_list()


def train_favoured_classifier(table: str | Path, paths: list[str | Path], better: str, worse: str,
                              output_model: str | Path, fraction: float = 0.2, text_field: str = "text",
                              id_field: str = "id", config: ClassifierConfig | None = None) -> ClassifierReport:
    """Train a fastText quality classifier (corpus.classifier.train_classifier, as `corpus train-classifier`)
    on the `favoured_split` positives against its negatives, the texts read from `paths`; writes
    `output_model` and its card, and returns the held-out measurements. Score with it through
    `ClassifierScorer("quality", model_path=output_model, column=...)`."""
    positives, negatives = favoured_split(table, better, worse, fraction)
    if not positives:
        raise ConfigError(f"{table}: too few rows with both {better!r} and {worse!r} for a {fraction} split")
    labels = dict.fromkeys(positives, True) | dict.fromkeys(negatives, False)
    examples = [(text, labels[doc_id]) for doc_id, text, _ in iter_documents(paths, text_field, id_field)
                if doc_id in labels]
    if len(examples) != len(labels):
        raise ConfigError(f"{len(labels) - len(examples)} ids of {table} are not among the documents of the given "
                          "paths (were they scored from other files?)")
    return train_classifier(examples, output_model, config)
