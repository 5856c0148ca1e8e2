"""`corpus curate`: SFT and preference data cleaned with the steps that clean pretraining text, turn by turn,
each record keeping its format and its other fields.

For every record of the input files (format detected per file, or given; see `corpus.finetune.formats`):
1. personal data scrubbed in every turn (the `pii` step's detectors and replacements);
2. toxicity scored per turn by the shipped classifiers (the language's model); a record whose reply (not a
   rejected one) scores at or above the threshold is flagged (or dropped, with `toxicity: drop`);
3. the fine-tuning checks (`corpus.finetune.checks`): empty, truncated, prompt-repeating replies, refusals
   (a refusal of a toxic request is kept and counted as such; of a harmless one it is an over-refusal),
   near-identical and length-only preference pairs; each drops, flags or is off;
4. records sharing a long n-gram with evaluation data removed (or flagged), with `decontaminate.benchmarks`;
5. duplicate prompts removed, the first record kept: exact (normalised prompt text) and near (MinHash LSH
   over the prompt's shingles, exact Jaccard checked), so the same instruction with other answers is caught;
6. with `max_tokens` and a local `tokenizer`, sequences over the budget dropped or their replies cut;
7. with `balance`, languages (or a category field) up- and down-sampled as `corpus clean` balances languages.

Outputs in the output folder: `curated.jsonl` (the kept records, in input order, in their format or converted
with `convert_to`: what the training plugins read), `removed.jsonl` (each removed record with its file, line
and reason), `rejects.jsonl` (lines that fit no format, with the field named), `flagged.jsonl` (kept records
a check flagged), `scores.jsonl` (every record's toxicity and quality, per turn and per record: its most
toxic turn, its replies' mean quality), `stats.json` and `report.html` (per-check counts with examples, length
distributions, the language mix before and after). Every file is written atomically; the same input and config give the same
bytes.
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.config import (
    BalanceConfig,
    ConfigError,
    DecontaminateConfig,
    LangIdConfig,
    MinhashConfig,
    PiiConfig,
    format_validation_error,
    read_yaml_mapping,
)
from corpus.finetune.checks import CHECKS, REPLY_ROLES, CheckSettings, length_bias, pair_texts
from corpus.finetune.formats import FORMATS, FormatError, Turn, convert, detect, prompt_text, set_text, turns
from corpus.finetune.report import write_curate_report
from corpus.io import atomic_write_text, iter_records, record_files
from corpus.langid import LanguageIdentifier, script_language
from corpus.minhash import MinHasher, Shingler, UnionFind, band_keys, jaccard, optimal_bands_rows

Action = Literal["drop", "flag", "off"]


class CurateConfig(BaseModel):
    """What `corpus curate` does; every option has a default (see `corpus curate --help`)."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = None  # a format name for every file; None: detected from each file's first record
    convert_to: Literal["messages", "pairwise"] | None = None
    pii: PiiConfig = Field(default_factory=PiiConfig)
    toxicity_threshold: float = Field(0.3, ge=0, le=1)
    toxicity: Action = "flag"  # the shipped models over-score some assistant text (README): flag, then decide
    checks: dict[str, Action] = Field(default_factory=lambda: {
        "empty_response": "drop", "truncated_response": "drop", "repeats_prompt": "flag", "refusal": "flag",
        "near_identical_pair": "drop", "length_only_pair": "flag"})
    thresholds: CheckSettings = Field(default_factory=CheckSettings)
    dedup: Literal["exact", "near", "off"] = "near"
    near_threshold: float = Field(0.8, gt=0, le=1)  # Jaccard of prompt shingles
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)  # on with `benchmarks`
    max_tokens: int | None = Field(None, ge=1)  # per sequence: the prompt turns and one reply
    tokenizer: str | None = None  # a local tokenizer folder, needed by max_tokens
    over_budget: Literal["drop", "truncate"] = "drop"  # truncate: cut the replies to fit
    balance: BalanceConfig | None = None  # up- and down-sampling by `balance_by`
    balance_by: str = "language"  # "language" (of the prompt, fastText lid.176) or a record field (a category)
    seed: int = 0

    def model_post_init(self, _: Any) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        unknown = set(self.checks) - set(CHECKS)
        if unknown:
            raise ValueError(f"checks: unknown check {sorted(unknown)[0]!r}; known: {', '.join(CHECKS)}")
        if self.max_tokens and not self.tokenizer:
            raise ValueError("max_tokens needs tokenizer: a local tokenizer folder to count tokens with")
        if self.decontaminate.benchmarks:
            self.decontaminate.enabled = True


def load_curate_config(path: str | Path | None, **overrides: Any) -> CurateConfig:
    """The config of a YAML file (or the defaults), with `overrides` on top; errors name the file and option."""
    data = read_yaml_mapping(path) if path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CurateConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path or "options"), "corpus curate --help")) from None


@dataclass
class Item:
    """One readable record on its way through: where it came from, its format and turns, what happened."""

    file: str
    line: int
    record: dict
    format: str
    turns: list[Turn]
    removed: str | None = None  # "<check>: <reason>"
    flags: list[str] = field(default_factory=list)
    scores: dict[str, list] = field(default_factory=dict)  # per turn (tool calls aside): toxicity, quality
    language: str = ""  # of the prompt (fastText lid.176)


@dataclass
class CurateResult:
    """Where the outputs are and what the run counted (the content of stats.json)."""

    output: Path
    stats: dict


def read_items(inputs: list[str | Path], fmt: str | None = None) -> tuple[list[Item], list[dict]]:
    """(the records that fit their file's format, a reject per line that does not: file, line, reason)."""
    items, rejects = [], []
    for path in record_files(inputs):
        file_format = fmt
        for line, record in iter_records(path):
            if isinstance(record, str):  # not JSON
                rejects.append({"file": str(path), "line": line, "reason": record})
                continue
            try:
                file_format = file_format or detect(record)
                items.append(Item(str(path), line, record, file_format, turns(record, file_format)))
            except FormatError as e:
                rejects.append({"file": str(path), "line": line, "reason": str(e)})
    return items, rejects


_SPACE = re.compile(r"\s+")


def prompt_key(text: str) -> int:
    """Exact-duplicate key of a prompt: NFKC, lower case, whitespace collapsed."""
    return xxhash.xxh3_64_intdigest(_SPACE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip())


def near_duplicate_prompts(prompts: list[str], threshold: float, seed: int) -> list[int]:
    """For each prompt, the index of the first prompt of its near-duplicate group (itself when none): MinHash
    LSH candidates over word 3-grams (characters for Chinese), each pair's exact Jaccard checked."""
    shingler = Shingler(MinhashConfig())
    sets = [shingler.shingles(p, "zh" if script_language(p) == "zh" else "en") for p in prompts]
    usable = [i for i, s in enumerate(sets) if len(s)]
    groups = UnionFind(len(prompts))
    if len(usable) > 1:
        bands, rows = optimal_bands_rows(threshold, 128)
        keys = band_keys(MinHasher(128, seed).signatures([sets[i] for i in usable]), bands, rows)
        for band in range(bands):
            buckets: dict[int, list[int]] = {}
            for row, key in enumerate(keys[:, band].tolist()):
                buckets.setdefault(key, []).append(usable[row])
            for members in buckets.values():
                for other in members[1:]:
                    if groups.find(other) != groups.find(members[0]) and \
                            jaccard(sets[members[0]], sets[other]) >= threshold:
                        groups.union(members[0], other)
    return [groups.find(i) for i in range(len(prompts))]


class _Scorers:
    """The shipped fastText classifiers: toxicity by the text's script, quality (one model for EN and ZH)."""

    def __init__(self):
        from corpus.classifier import TextClassifier
        from corpus.scoring import SHIPPED_QUALITY, ShippedToxicity

        self.toxicity = ShippedToxicity().score
        self._quality = TextClassifier(SHIPPED_QUALITY)

    def quality(self, text: str) -> float:
        return float(self._quality.score(text)) if text.strip() else 0.0


def curate(inputs: list[str | Path], output: str | Path, config: CurateConfig | None = None,
           progress: bool = True) -> CurateResult:
    """Curate the records of `inputs` into the folder `output` (see the module docstring)."""
    from tqdm import tqdm

    from corpus.pii import PiiScrubber, plan_language

    cfg = config or CurateConfig()
    out = Path(output)
    started = time.perf_counter()
    items, rejects = read_items(inputs, cfg.format)
    scrubber = PiiScrubber(cfg.pii, out) if cfg.pii.enabled else None
    scorers = _Scorers()
    identify = LanguageIdentifier(LangIdConfig(), out).label
    pii_counts: Counter = Counter()
    for item in tqdm(items, desc="curate", unit="record", disable=not progress):
        label = identify(prompt_text(item.turns) or "\n".join(t.text for t in item.turns))
        item.language = label["lang"]
        if scrubber:
            scrubbed = []
            lang = plan_language(label)  # phone numbers checked against the plans of its language, as `pii` does
            for t in item.turns:
                text, counts = scrubber.scrub(t.text, lang)
                if counts:
                    set_text(item.record, t.path, text)
                    pii_counts.update(counts)
                scrubbed.append(Turn(t.path, t.role, text))
            item.turns = scrubbed
        _judge(item, cfg, scorers)
    if cfg.decontaminate.enabled:
        _decontaminate(items, cfg.decontaminate)
    if cfg.dedup != "off":
        _dedup(items, cfg)
    budget = _budget(items, cfg) if cfg.max_tokens else None
    copies, groups = _balance(items, cfg) if cfg.balance else (None, None)
    stats = _write(out, cfg, items, rejects, pii_counts, copies, time.perf_counter() - started)
    stats.stats["token_budget"], stats.stats["balance"] = budget, groups
    atomic_write_text(out / "stats.json", _stats_json(stats.stats))
    write_curate_report(stats.stats, out / "report.html")
    return stats


def _act(item: Item, action: Action, name: str, reason: str) -> None:
    if action == "drop" and item.removed is None:
        item.removed = f"{name}: {reason}"
    elif action != "off":
        item.flags.append(f"{name}: {reason}")


def _judge(item: Item, cfg: CurateConfig, scorers: _Scorers) -> None:
    """Scores and checks, on a record's (scrubbed) turns."""
    texts = [t for t in item.turns if t.role != "tool_call"]
    item.scores = {"toxicity": [round(scorers.toxicity(t.text), 4) for t in texts],
                   "quality": [round(scorers.quality(t.text), 4) if t.role in REPLY_ROLES else None for t in texts]}
    prompt_toxic = max((s for s, t in zip(item.scores["toxicity"], texts) if t.role in ("system", "prompt")),
                       default=0.0) >= cfg.toxicity_threshold
    for name, check in CHECKS.items():
        action = cfg.checks.get(name, "off")
        reason = check(item.turns, cfg.thresholds) if action != "off" else None
        if reason is None:
            continue
        if name == "refusal":  # refusing a toxic request is what a model should learn
            if prompt_toxic:
                item.flags.append(f"refusal: {reason} (of a toxic request: kept)")
                continue
            reason = f"over-refusal: {reason} of a harmless request"
        _act(item, action, name, reason)
    reply_toxicity = max((s for s, t in zip(item.scores["toxicity"], texts) if t.role in REPLY_ROLES
                          and t.role != "rejected"), default=0.0)
    if cfg.toxicity != "off" and reply_toxicity >= cfg.toxicity_threshold:
        _act(item, cfg.toxicity, "toxicity", f"a reply scores {reply_toxicity:.2f} >= {cfg.toxicity_threshold}")


def _dedup(items: list[Item], cfg: CurateConfig) -> None:
    """Remove records whose prompt repeats an earlier kept record's (exactly, then nearly)."""
    alive = [i for i in items if i.removed is None]
    prompts = [prompt_text(i.turns) for i in alive]
    first: dict[int, int] = {}
    for n, (item, prompt) in enumerate(zip(alive, prompts)):
        key = prompt_key(prompt)
        if key in first:
            item.removed = f"duplicate_prompt: same prompt as {alive[first[key]].file}:{alive[first[key]].line}"
        else:
            first[key] = n
    if cfg.dedup == "near":
        survivors = [n for n, item in enumerate(alive) if item.removed is None]
        roots = near_duplicate_prompts([prompts[n] for n in survivors], cfg.near_threshold, cfg.seed)
        for position, root in enumerate(roots):
            if root != position:
                kept = alive[survivors[root]]
                alive[survivors[position]].removed = (f"near_duplicate_prompt: prompt near-identical to "
                                                      f"{kept.file}:{kept.line}")


def _decontaminate(items: list[Item], cfg: DecontaminateConfig) -> None:
    """Remove (or flag) records sharing a long n-gram with evaluation data, naming the benchmark."""
    from corpus.decontaminate import BenchmarkIndex

    index = BenchmarkIndex(cfg)
    for item in items:
        if item.removed is not None:
            continue
        text = "\n".join(t.text for t in item.turns)
        hits = index.hits(text, "zh" if script_language(text) == "zh" else "en")
        if hits:
            reason = "shares n-grams with " + ", ".join(f"{name} ({n})" for name, n in sorted(hits.items()))
            _act(item, "drop" if cfg.mode == "remove" else "flag", "decontaminate", reason)


def _budget(items: list[Item], cfg: CurateConfig) -> dict[str, int]:
    """Each sequence (the prompt turns and one reply) within `max_tokens` of the tokenizer: records over it are
    dropped, or their replies cut to fit (a prompt alone over the budget is always dropped)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer, local_files_only=True, trust_remote_code=False)
    counts = Counter()
    for item in items:
        if item.removed is not None:
            continue
        context = sum(len(tokenizer(t.text, add_special_tokens=False)["input_ids"]) for t in item.turns
                      if t.role not in REPLY_ROLES)
        replies = [(t, tokenizer(t.text, add_special_tokens=False)["input_ids"]) for t in item.turns
                   if t.role in REPLY_ROLES]
        longest = max((len(ids) for _, ids in replies), default=0)
        if context + longest <= cfg.max_tokens:
            continue
        room = cfg.max_tokens - context
        if cfg.over_budget == "drop" or room <= 0:
            item.removed = f"token_budget: {context + longest} tokens > {cfg.max_tokens}"
            counts["dropped"] += 1
            continue
        for t, ids in replies:
            if len(ids) > room:
                set_text(item.record, t.path, _cut(tokenizer, ids, room))
        item.turns = turns(item.record, item.format)
        counts["truncated"] += 1
    return dict(counts)


def _cut(tokenizer, ids: list[int], room: int) -> str:
    """The longest prefix of the tokens `ids` whose text re-encodes to at most `room` tokens (a cut inside a
    multi-byte character would decode to a replacement character, which is dropped)."""
    keep = room
    while keep > 0:
        text = tokenizer.decode(ids[:keep]).rstrip("\ufffd")
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= room:
            return text
        keep -= 1
    return ""


def _balance(items: list[Item], cfg: CurateConfig) -> tuple[list[int], dict]:
    """Copies of each record (0 drops it, 2 repeats it) so that the groups of `balance_by` meet the balance
    config (`corpus.balance`: temperature sampling or proportions), deterministically by a hash of the record."""
    from corpus.balance import balance_rates, copies, sampling_key

    def group(item: Item) -> str:
        return item.language if cfg.balance_by == "language" else str(item.record.get(cfg.balance_by, "unknown"))

    alive = [i for i in items if i.removed is None]
    labels = {id(i): group(i) for i in alive}
    before = Counter(labels.values())
    rates = balance_rates(dict(before), cfg.balance)
    result = []
    for item in items:
        if item.removed is not None:
            result.append(0)
            continue
        key = sampling_key(f"{item.file}:{item.line}", prompt_text(item.turns), cfg.balance.seed)
        n = copies(rates.get(labels[id(item)], 1.0), key)
        if n == 0:
            item.removed = f"balance: down-sampled {cfg.balance_by} {labels[id(item)]}"
        result.append(n)
    after = Counter()
    for item, n in zip(items, result):
        if n:
            after[labels[id(item)]] += n
    return result, {"by": cfg.balance_by, "before": dict(sorted(before.items())), "after": dict(sorted(after.items()))}


def _stats_json(stats: dict) -> str:
    """stats.json: everything but the timings, so that a rerun writes the same bytes."""
    return json.dumps({k: v for k, v in stats.items() if k not in ("seconds", "records_per_second")}, indent=2,
                      ensure_ascii=False)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _write(out: Path, cfg: CurateConfig, items: list[Item], rejects: list[dict], pii_counts: Counter,
           copies: list[int] | None, seconds: float) -> CurateResult:
    kept, removed, flagged, scores = [], [], [], []
    for n, item in enumerate(items):
        where = {"file": item.file, "line": item.line}
        quality = [q for q in item.scores["quality"] if q is not None]
        scores.append({**where, "toxicity": max(item.scores["toxicity"], default=0.0),
                       "quality": round(sum(quality) / len(quality), 4) if quality else None,
                       "turns": item.scores})
        if item.removed is not None:
            removed.append({**where, "reason": item.removed, "record": item.record})
            continue
        records = convert(item.record, item.format, cfg.convert_to) if cfg.convert_to else [item.record]
        kept += records * (copies[n] if copies else 1)
        if item.flags:
            flagged.append({**where, "flags": item.flags})
    reasons = Counter(r["reason"].split(":", 1)[0] for r in removed)
    flags = Counter(f.split(":", 1)[0] for item in items if item.removed is None for f in item.flags)
    pairs = [pair for item in items if item.removed is None if (pair := pair_texts(item.turns))]
    bias = length_bias(pairs)
    written = [(item, copies[n] if copies else 1) for n, item in enumerate(items) if item.removed is None]
    stats = {
        "input": {"files": len({i.file for i in items} | {r["file"] for r in rejects}),
                  "records": len(items) + len(rejects), "formats": dict(Counter(i.format for i in items))},
        "rejected": len(rejects), "removed": dict(sorted(reasons.items())), "flagged": dict(sorted(flags.items())),
        "output": {"records": len(kept), "format": cfg.convert_to or "as input"},
        "pii": {"by_type": dict(sorted(pii_counts.items()))},
        "languages": {"input": _counts((i.language, 1) for i in items),
                      "output": _counts((i.language, n) for i, n in written)},
        "lengths": {part: {"input": _counts((bucket, 1) for i in items for bucket in _buckets(i, part)),
                           "output": _counts((bucket, n) for i, n in written for bucket in _buckets(i, part))}
                    for part in ("prompt", "reply")},
        "examples": _examples(items),
        "length_bias": {"pairs": bias.pairs, "chosen_longer": bias.chosen_longer,
                        "mean_log_length_ratio": bias.mean_log_ratio} if bias.pairs else None,
        "seconds": round(seconds, 3), "records_per_second": round((len(items) + len(rejects)) / max(seconds, 1e-9), 1),
        "config": cfg.model_dump(mode="json"),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curated.jsonl", _jsonl(kept))
    atomic_write_text(out / "removed.jsonl", _jsonl(removed))
    atomic_write_text(out / "rejects.jsonl", _jsonl(rejects))
    atomic_write_text(out / "flagged.jsonl", _jsonl(flagged))
    atomic_write_text(out / "scores.jsonl", _jsonl(scores))
    return CurateResult(out, stats)


def _counts(pairs) -> dict[str, int]:
    out: Counter = Counter()
    for key, n in pairs:
        out[key] += n
    return dict(sorted(out.items()))


def _buckets(item: Item, part: str) -> list[str]:
    """Power-of-two character-length buckets: of the record's prompt, or of each of its replies."""
    texts = [prompt_text(item.turns)] if part == "prompt" else [t.text for t in item.turns if t.role in REPLY_ROLES]
    return [str(2 ** max(0, math.ceil(math.log2(max(len(t), 1))))) for t in texts]


def _examples(items: list[Item], per_check: int = 3, chars: int = 300) -> dict[str, list[dict]]:
    """Up to `per_check` records removed or flagged by each check: where, why, the start of prompt and reply."""
    out: dict[str, list[dict]] = {}
    for item in items:
        for reason in ([item.removed] if item.removed else []) + item.flags:
            check = reason.split(":", 1)[0]
            if len(out.setdefault(check, [])) < per_check:
                reply = next((t.text for t in item.turns if t.role in REPLY_ROLES), "")
                out[check].append({"where": f"{Path(item.file).name}:{item.line}", "reason": reason,
                                   "prompt": prompt_text(item.turns)[:chars], "reply": reply[:chars]})
    return dict(sorted(out.items()))
