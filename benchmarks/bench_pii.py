"""PII detection: corpusloop's `pii` detectors against Microsoft Presidio's analyzer, in one run, on the
same texts.

    .venv/bin/python benchmarks/bench_pii.py [--data DIR] [--web-docs 2000] [--test FILE] [--phone-regions US,GB]
        [--web-split dev]

Quality, on three labelled sets: precision, recall and F1 per entity type on Presidio's labelled synthetic sentences
(`pii_labelled/presidio_synth_v2.jsonl`; corpusloop's detectors were developed on the other Presidio file,
`presidio_generated_large`, shown as "dev"). A detected span is correct when it has the gold span's type
and covers at least half of it (and half of itself is inside it); private IP addresses count as PII, as the
labels do. And on the test part of the real web text (English, Chinese, 69 other languages), turns of
fine-tuning data and tool-use requests we labelled (`benchmarks/data/pii_web_labels.jsonl`, see
`benchmarks/data/README.md`; only the shown excerpts count; each document's language, which picks its phone
numbers' plans, as `corpus clean`'s langid step labels it), with 95% bootstrap intervals over its documents; and on GSM8K's test part, maths with
no personal data, where every detection is a wrong one. Speed: documents per second and MB per second on one core, on the
labelled sentences and on real raw English web documents (`raw_web_en`), each method's best of three passes,
the methods taking turns.

Presidio 2.2.366 is configured offline as its docs describe for pattern-only use: `AnalyzerEngine` with the
`NoOpNlpEngine` (no spaCy model to download) and its predefined recognizers, asked for the six structured
types below, default score threshold (0).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "tldextract"))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# gold label -> (corpusloop entity, Presidio entity)
TYPES = {"EMAIL_ADDRESS": ("EMAIL", "EMAIL_ADDRESS"), "PHONE_NUMBER": ("PHONE", "PHONE_NUMBER"),
         "CREDIT_CARD": ("CREDIT_CARD", "CREDIT_CARD"), "IBAN_CODE": ("IBAN", "IBAN_CODE"),
         "US_SSN": ("US_SSN", "US_SSN"), "IP_ADDRESS": ("IP_ADDRESS", "IP_ADDRESS")}


def corpusloop_detector(phone_regions: tuple[str, ...] | None = None):
    from corpus.config import PHONE_REGIONS
    from corpus.pii import PiiDetector

    detector = PiiDetector(ip_private=True, phone_regions=phone_regions or PHONE_REGIONS)
    back = {ours: gold for gold, (ours, _) in TYPES.items()}
    return lambda text, lang=None: [(s.start, s.end, back.get(s.entity, s.entity)) for s in detector.find(text, lang)]


def presidio_detector():
    import logging

    logging.getLogger("tldextract").setLevel(logging.CRITICAL)  # offline: it falls back to its bundled list
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    engine = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
                            supported_languages=["en"])
    entities = [p for _, p in TYPES.values()]
    back = {p: gold for gold, (_, p) in TYPES.items()}
    return lambda text, lang=None: [(r.start, r.end, back[r.entity_type])
                                    for r in engine.analyze(text=text, language="en", entities=entities)]


WEB = ROOT / "benchmarks" / "data" / "pii_web_labels.jsonl"
WEB_LABELS = {"EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "IBAN": "IBAN_CODE"}  # our label names -> the table's


def web_records(data: Path, split: str = "test") -> list[dict]:
    """One part of our labelled real web text and fine-tuning turns, with the texts read from the shared data
    by id, and each text's language as the pii step takes it from `corpus clean`'s langid step (`langid`)."""
    from corpus.config import LangIdConfig
    from corpus.io import iter_records
    from corpus.langid import LanguageIdentifier
    from corpus.models.build_models import raw_web_texts
    from corpus.pii import plan_language

    labelled = [r for _, r in iter_records(WEB) if r["split"] == split]
    texts = raw_web_texts(data, {r["id"] for r in labelled})
    langid = LanguageIdentifier(LangIdConfig(), ROOT / ".cache" / "bench_pii")  # predict() alone writes nothing
    return [{**r, "text": texts[r["id"]], "langid": plan_language(langid.label(texts[r["id"]]))} for r in labelled]


TEXT_GROUPS = ("en", "zh", "other", "fine-tuning en", "fine-tuning zh")  # the tables' first column, in its order


def text_group(record: dict) -> str:
    """Web text by language (English and Chinese on their own, all other languages together); turns of
    fine-tuning data (`turn-` ids) and tool-use requests (`bfcl-`) apart from it."""
    lang = record["lang"] if record["lang"] in ("en", "zh") else "other"
    return f"fine-tuning {lang}" if record["id"].startswith(("turn-", "bfcl-")) else lang


def overlap(a, b) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


NO_PII = "eval_benchmarks/en/gsm8k_test.jsonl"  # held out: the train part is where the arithmetic rule was found
SECOND = ROOT / "benchmarks" / "data" / "pii_web_labels_second.jsonl"


def agreement(first: list[dict], second: dict[str, list[dict]]) -> Counter:
    """Per (language, type, "both" | "first only" | "second only"): the spans two annotators marked, matched
    when they have one type and each covers at least half of the other."""
    same = lambda a, b: a["label"] == b["label"] and overlap(
        (a["start"], a["end"]), (b["start"], b["end"])) * 2 >= max(a["end"] - a["start"], b["end"] - b["start"])
    counts = Counter()
    for r in first:
        for a in r["spans"]:
            counts[text_group(r), a["label"], "both" if any(same(a, b) for b in second[r["id"]]) else "first only"] += 1
        for b in second[r["id"]]:
            if not any(same(a, b) for a in r["spans"]):
                counts[text_group(r), b["label"], "second only"] += 1
    return counts


def tally(detect, records: list[dict]) -> list[Counter]:
    """Per record, a Counter of (found | missed | wrong | predicted, type). A record with `windows` was labelled
    only there: detections outside them are not counted."""
    tallies = []
    for r in records:
        pred = detect(r["text"], r.get("langid"))
        if "windows" in r:
            pred = [p for p in pred if any(overlap(p, w) for w in r["windows"])]
        gold = [(s["start"], s["end"], WEB_LABELS.get(s["label"], s["label"])) for s in r["spans"]]
        counts = Counter()
        for g in (g for g in gold if g[2] in TYPES):
            counts["found" if any(p[2] == g[2] and overlap(p, g) * 2 >= g[1] - g[0] for p in pred) else "missed", g[2]] += 1
        for p in (p for p in pred if p[2] in TYPES):
            counts["predicted", p[2]] += 1
            if not any(p[2] == g[2] and overlap(p, g) * 2 >= p[1] - p[0] for g in gold):
                counts["wrong", p[2]] += 1
        tallies.append(counts)
    return tallies


def scores(counts: Counter, entity: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of one type from summed tallies; 0 where nothing was predicted or expected."""
    predicted, gold = counts["predicted", entity], counts["found", entity] + counts["missed", entity]
    precision = 1 - counts["wrong", entity] / predicted if predicted else 0.0
    recall = counts["found", entity] / gold if gold else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate(detect, records: list[dict]) -> dict[str, tuple[float, float, float]]:
    """Per gold type (precision, recall, F1)."""
    total = sum(tally(detect, records), Counter())
    return {t: scores(total, t) for t in TYPES}


def bootstrap(tallies: list[Counter], entity: str, rounds: int = 2000, seed: int = 0) -> tuple[tuple[float, float], ...]:
    """95% intervals of precision and recall, resampling documents (with replacement, fixed seed): how far a
    figure on a few hundred documents could move on another sample like them."""
    import numpy as np

    table = np.array([[c["found", entity], c["missed", entity], c["wrong", entity], c["predicted", entity]]
                      for c in tallies])
    draws = table[np.random.default_rng(seed).integers(0, len(table), (rounds, len(table)))].sum(axis=1)
    found, missed, wrong, predicted = draws.T
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw with nothing predicted (or expected) has no figure
        precision = np.where(predicted > 0, 1 - wrong / predicted, np.nan)
        recall = np.where(found + missed > 0, found / (found + missed), np.nan)
    return tuple((float(np.nanquantile(x, 0.025)), float(np.nanquantile(x, 0.975))) if not np.isnan(x).all()
                 else (float("nan"), float("nan")) for x in (precision, recall))


def print_agreement(real: list[dict], detect) -> None:
    """The two annotators' agreement on the test part, and corpusloop against the second annotator's labels."""
    from corpus.io import iter_records

    second = {r["id"]: r["spans"] for _, r in iter_records(SECOND)}
    real = [r for r in real if r["id"] in second]  # the documents both labelled
    agreed = agreement(real, second)
    print("\nA second annotator labelled the same test part on its own (`pii_web_labels_second.jsonl`); spans "
          "both marked, and corpusloop against the second annotator's labels:\n")
    print("| text | entity | both | first only | second only | corpusloop precision | recall |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for group, label in sorted({(group, label) for group, label, _ in agreed}, key=lambda k: (TEXT_GROUPS.index(k[0]), k[1])):
        part = [{**r, "spans": second[r["id"]]} for r in real if text_group(r) == group]
        scored = WEB_LABELS.get(label, label)
        figures = "{:.3f} | {:.3f}".format(*evaluate(detect, part)[scored][:2]) if scored in TYPES else "- | -"
        print(f"| {group} | {label} | {agreed[group, label, 'both']} | {agreed[group, label, 'first only']} | "
              f"{agreed[group, label, 'second only']} | {figures} |")


SPEED_ROUNDS = 3  # each method's best of three passes


def speed(detect, texts: list[str]) -> float:
    start = time.perf_counter()
    for t in texts:
        detect(t)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--web-docs", type=int, default=2000)
    parser.add_argument("--test", type=Path, help="another labelled file in the same format (text, spans with "
                        "start/end/label and Presidio's label names), e.g. a held-out test split")
    parser.add_argument("--web-split", choices=("test", "dev"), default="test",
                        help="which part of our labelled web text to score: dev is the one to change rules on")
    parser.add_argument("--phone-regions", help="comma-separated numbering plans for corpusloop's phone numbers "
                        "without a country code outside Chinese text (default: the 65 of `pii.phone_regions`)")
    args = parser.parse_args()
    from corpus.io import iter_records

    load = lambda p: [record for _, record in iter_records(p)]
    test_path = args.test or args.data / "pii_labelled" / "presidio_synth_v2.jsonl"
    test = load(test_path)
    dev = load(args.data / "pii_labelled" / "presidio_generated_large.jsonl")
    web = [r["text"] for r in load(args.data / "raw_web_en" / "docs.jsonl")[: args.web_docs]]
    regions = tuple(args.phone_regions.split(",")) if args.phone_regions else None
    detectors = {"corpusloop": corpusloop_detector(regions), "Presidio 2.2.366": presidio_detector()}
    for detect in detectors.values():  # warm-up: compiled patterns, lazy tables
        detect("call +1 202 555 0143 or mail a@b.org")

    # the labelled sets also warm each detector up (compiled patterns, loaded numbering plans) before the speed passes
    results = {name: {"dev": evaluate(d, dev), "test": evaluate(d, test)} for name, d in detectors.items()}
    print(f"Labelled: {len(test)} sentences of {test_path.stem} (test); dev = presidio_generated_large.\n")
    print("| entity | method | precision | recall | F1 | dev F1 |")
    print("|---|---|---:|---:|---:|---:|")
    for t in TYPES:
        for name in detectors:
            p, r, f1 = results[name]["test"][t]
            print(f"| {t} | {name} | {p:.3f} | {r:.3f} | {f1:.3f} | {results[name]['dev'][t][2]:.3f} |")

    real = web_records(args.data, args.web_split)
    print(f"\nReal web text and fine-tuning data, labelled by us ({len(real)} documents: the {args.web_split} part of "
          f"`benchmarks/data/pii_web_labels.jsonl`); types with gold spans or detections:\n")
    print("| text | entity | gold | method | detected | precision | recall | F1 | precision 95% | recall 95% |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for group in sorted({text_group(r) for r in real}, key=TEXT_GROUPS.index):
        part = [r for r in real if text_group(r) == group]
        for name, detect in detectors.items():
            tallies = tally(detect, part)
            total = sum(tallies, Counter())
            for t in TYPES:
                gold, predicted = total["found", t] + total["missed", t], total["predicted", t]
                if gold or predicted:
                    p, r, f1 = scores(total, t)
                    (p_low, p_high), (r_low, r_high) = bootstrap(tallies, t)
                    interval = lambda low, high: "-" if low != low else f"{low:.2f}-{high:.2f}"  # nan: no figure
                    print(f"| {group} | {t} | {gold} | {name} | {predicted} | {p:.3f} | {r:.3f} | {f1:.3f} | "
                          f"{interval(p_low, p_high)} | {interval(r_low, r_high)} |")

    if args.web_split == "test":
        print_agreement(real, detectors["corpusloop"])

    problems = [(r["question"], r["answer"]) for r in load(args.data / NO_PII)]
    print(f"\nText with no personal data: the {len(problems):,} maths word problems and worked answers of "
          f"`{NO_PII}` (its `<<48/2=24>>` sums included); every detection is a wrong one:\n")
    print("| method | detections | problems with one |")
    print("|---|---:|---:|")
    for name, detect in detectors.items():
        found = [sum(len(detect(text)) for text in problem) for problem in problems]
        print(f"| {name} | {sum(found)} | {sum(n > 0 for n in found)} |")

    web_mb = sum(len(t.encode("utf-8")) for t in web) / 1e6
    test_mb = sum(len(r["text"].encode("utf-8")) for r in test) / 1e6
    print(f"\nSpeed on one core, best of {SPEED_ROUNDS} passes ({len(test)} labelled sentences, {test_mb:.2f} MB; {len(web)} raw EN web documents, "
          f"{web_mb:.1f} MB):\n")
    print("| method | sentences/s | web docs/s | web MB/s | vs Presidio |")
    print("|---|---:|---:|---:|---:|")
    sentences = [r["text"] for r in test]
    timing = {name: (float("inf"), float("inf")) for name in detectors}
    for _ in range(SPEED_ROUNDS):  # the methods take turns, so a change in the machine's speed hits both alike
        for name, d in detectors.items():
            timing[name] = (min(timing[name][0], speed(d, sentences)), min(timing[name][1], speed(d, web)))
    ref = timing["Presidio 2.2.366"]
    for name, (sent_s, web_s) in timing.items():
        print(f"| {name} | {len(test) / sent_s:,.0f} | {len(web) / web_s:,.0f} | {web_mb / web_s:.2f} | "
              f"{ref[1] / web_s:.1f}x (sentences {ref[0] / sent_s:.1f}x) |")


if __name__ == "__main__":
    main()
