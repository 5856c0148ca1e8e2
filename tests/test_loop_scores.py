"""Score once, filter many (pipelines.scores) on the bundled sample corpus, with two tiny GPT-2s built here: one
trained on some of the C4 documents, one untrained. Expected selections are computed independently with numpy."""

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from conftest import SAMPLE, read_jsonl
from corpus.classifier import TextClassifier
from corpus.config import ConfigError
from corpus.scoring import SHIPPED_QUALITY, SHIPPED_TOXICITY
from pipelines.scores import (
    ClassifierScorer,
    InfluenceScorer,
    KeepRule,
    LanguageScorer,
    LengthScorer,
    PerplexityScorer,
    add_scores,
    favoured_split,
    iter_documents,
    score_table,
    select,
    selection_report,
    train_favoured_classifier,
    write_subset,
)
from train.tiny import build_tiny_gpt2

EN = read_jsonl(SAMPLE / "web_en.jsonl")
C4 = [r for r in EN if r["id"].startswith("c4-")]
SEEN = C4[:12]  # the trained model's training documents: few enough that 100 steps memorise them
UNSEEN = C4[12:40]
SOCIAL = [r for r in EN if r["id"].startswith("wnutraw-")][:40]
ZH = [{k: r[k] for k in ("id", "text", "source", "lang")} for r in read_jsonl(SAMPLE / "web_zh.jsonl")[:30]]
NO_ID = {"text": "A post that came without an id, long enough to be scored by the models here.", "lang": "en"}
FRENCH = {"id": "fr", "text": "Le chat dort sur le canapé depuis ce matin et ne veut plus bouger de là."}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder of three formats: en/c4.jsonl, en/social.jsonl.gz (a record without id, an empty and a
    one-character text, a French one), zh.parquet; and a notes.txt that is no document."""
    root = tmp_path_factory.mktemp("corpus") / "docs"
    (root / "en").mkdir(parents=True)
    (root / "en" / "c4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SEEN + UNSEEN))
    social = [*SOCIAL, NO_ID, {"id": "empty", "text": ""}, {"id": "one-token", "text": "a"}, FRENCH]
    with gzip.open(root / "en" / "social.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in social)
    pq.write_table(pa.Table.from_pylist(ZH), root / "zh.parquet")
    (root / "notes.txt").write_text("not a document")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """`better`: trained 100 steps on SEEN; `worse`: the same architecture and tokenizer, untrained."""
    folder = tmp_path_factory.mktemp("models")
    texts = [r["text"] for r in C4]
    return {"better": build_tiny_gpt2(folder / "better", texts, [r["text"] for r in SEEN], steps=100),
            "worse": build_tiny_gpt2(folder / "worse", texts)}


@pytest.fixture(scope="module")
def scored(corpus, models, tmp_path_factory) -> Path:
    """The corpus scored with every scorer."""
    scorers = [LengthScorer(), LanguageScorer(), ClassifierScorer("quality"), ClassifierScorer("toxicity"),
               PerplexityScorer("better", models["better"]), PerplexityScorer("worse", models["worse"])]
    return score_table([corpus], tmp_path_factory.mktemp("table") / "scores.parquet", scorers, progress=False)


def rows(table: Path) -> dict[str, list]:
    return pq.read_table(table).to_pydict()


def test_documents_in_file_order_with_ids_and_whole_records(corpus: Path):
    docs = list(iter_documents([corpus]))
    expected = SEEN + UNSEEN + SOCIAL
    assert [d[0] for d in docs[: len(expected)]] == [r["id"] for r in expected]
    assert docs[0][2] == C4[0] and docs[0][1] == C4[0]["text"]  # the full record, unchanged
    assert docs[len(expected)][0] == f"social.jsonl.gz:{len(SOCIAL) + 1}"  # no id: file name and line
    assert [d[0] for d in docs[-len(ZH) :]] == [r["id"] for r in ZH]  # zh.parquet sorts after en/
    assert docs[-1][2] == ZH[-1]
    assert [d[0] for d in iter_documents([corpus / "zh.parquet", corpus / "en"])] == [d[0] for d in docs]


def test_document_errors_name_the_file_and_line(corpus: Path, tmp_path: Path):
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "x"}\n\n{"id": "a", "text": "y"}\n')
    with pytest.raises(ConfigError, match=rf"dup.jsonl:3: duplicate id 'a' \(first in {tmp_path}/dup.jsonl\)"):
        list(iter_documents([dup]))
    across = tmp_path / "c4-copy.jsonl"
    across.write_text(json.dumps(C4[0]) + "\n")
    with pytest.raises(ConfigError, match=r"c4-copy.jsonl:1: duplicate id 'c4-0000' \(first in .*/en/c4.jsonl\)"):
        list(iter_documents([corpus / "en" / "c4.jsonl", across]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "body": "x"}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1: field 'text' is missing"):
        list(iter_documents([bad]))
    assert [d[1] for d in iter_documents([bad], text_field="body")] == ["x"]
    with pytest.raises(ConfigError, match="notes.txt: not a document file"):
        list(iter_documents([corpus / "notes.txt"]))
    with pytest.raises(ConfigError, match="input not found"):
        list(iter_documents([tmp_path / "nope"]))


def test_perplexity_is_lower_on_the_training_documents(models, scored: Path):
    table = rows(scored)
    ppl = dict(zip(table["id"], table["ppl_better"]))
    seen = np.log([ppl[r["id"]] for r in SEEN])
    unseen = np.log([ppl[r["id"]] for r in UNSEEN])
    social = np.log([ppl[r["id"]] for r in SOCIAL])
    assert seen.mean() < unseen.mean() - 1 and seen.mean() < social.mean() - 1
    assert seen.max() < np.median(unseen)
    untrained = dict(zip(table["id"], table["ppl_worse"]))
    assert all(ppl[r["id"]] < untrained[r["id"]] / 1.5 for r in SEEN)
    assert math.isnan(ppl["empty"]) and math.isnan(ppl["one-token"])  # nothing to predict


def test_perplexity_is_the_models_own_loss_whatever_the_batch(models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [r["text"] for r in SEEN[:3] + SOCIAL[:5] + UNSEEN[:2]]
    batched = PerplexityScorer("b", models["better"], max_length=64, batch_size=4).score(texts)
    single = PerplexityScorer("b", models["better"], max_length=64, batch_size=1).score(texts)
    np.testing.assert_allclose(batched, single, rtol=1e-5)  # padding and masks change nothing
    tokenizer = AutoTokenizer.from_pretrained(models["better"])
    model = AutoModelForCausalLM.from_pretrained(models["better"])
    for text, value in zip(texts, batched):
        ids = torch.tensor([tokenizer(text)["input_ids"][:64]])
        with torch.no_grad():
            assert value == pytest.approx(math.exp(model(input_ids=ids, labels=ids).loss.item()), rel=1e-5)
    with pytest.raises(ConfigError, match="exceeds the model's 512 positions"):
        PerplexityScorer("b", models["better"], max_length=1024)
    with pytest.raises(ConfigError, match="not a local model folder"):
        PerplexityScorer("b", models["better"] / "missing")


def _output_layer_gradient(model, tokenizer, text: str):
    """The gradient of a document's mean next-token loss with respect to the output projection alone, by
    autograd (the projection's weight is tied to the input embeddings here, hence the detached input)."""
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([tokenizer(text)["input_ids"][:64]])
    captured = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: captured.append(args[0]))
    with torch.no_grad():
        model(input_ids=ids)
    hook.remove()
    weight = model.get_output_embeddings().weight.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(captured[0][0, :-1] @ weight.T, ids[0, 1:])
    return torch.autograd.grad(loss, weight)[0]


def test_influence_is_the_cosine_of_output_layer_gradients_whatever_the_batch(models):
    held_out = [r["text"] for r in UNSEEN[:6]]
    texts = [r["text"] for r in SEEN[:3] + SOCIAL[:4] + UNSEEN[:2]] + ["a"]
    batched = InfluenceScorer("b", models["better"], held_out, max_length=64, batch_size=4)
    single = InfluenceScorer("b", models["better"], held_out, max_length=64, batch_size=1)
    values = batched.score(texts)
    np.testing.assert_allclose(values[:-1], single.score(texts)[:-1], rtol=1e-4, atol=1e-6)
    assert math.isnan(values[-1])  # one token: nothing predicted
    mean = sum(_output_layer_gradient(batched.model, batched.tokenizer, t) for t in held_out) / len(held_out)
    for text, value in zip(texts[:-1], values):
        g = _output_layer_gradient(batched.model, batched.tokenizer, text)
        assert value == pytest.approx(float((g * mean).sum() / (g.norm() * mean.norm())), abs=1e-4)
    with pytest.raises(ConfigError, match="no held-out document has two tokens"):
        InfluenceScorer("b", models["better"], ["a"], max_length=64)


def test_influence_ranks_documents_like_the_held_out_ones_first(models):
    held_out = [r["text"] for r in UNSEEN[:8]]
    scorer = InfluenceScorer("b", models["worse"], held_out, max_length=64)
    english = scorer.score([r["text"] for r in UNSEEN[8:20]])
    chinese = scorer.score([r["text"] for r in ZH[:12]])
    assert min(english) > max(chinese)


def test_table_columns_values_and_bytes_on_a_rerun(corpus: Path, models, scored: Path, tmp_path: Path):
    docs = list(iter_documents([corpus]))
    table = rows(scored)
    assert list(table) == ["id", "source", "chars", "language", "language_score", "quality", "toxicity",
                           "ppl_better", "ppl_worse"]
    assert table["id"] == [d[0] for d in docs]
    assert table["source"][0] == str(corpus / "en" / "c4.jsonl") and table["source"][-1] == str(corpus / "zh.parquet")
    assert table["chars"] == [len(d[1]) for d in docs]
    language = dict(zip(table["id"], table["language"]))
    assert [language[r["id"]] for r in ZH].count("zh") >= 28 and [language[r["id"]] for r in C4[:40]].count("en") == 40
    texts = [d[1] for d in docs]
    np.testing.assert_allclose(table["quality"], TextClassifier(SHIPPED_QUALITY).scores(texts))
    by_id = dict(zip(table["id"], table["toxicity"]))
    toxicity = {lang: TextClassifier(path) for lang, path in SHIPPED_TOXICITY.items()}  # by detected language
    for r in ZH + SEEN:
        assert by_id[r["id"]] == pytest.approx(toxicity[language[r["id"]]].score(r["text"]))
    assert language["fr"] == "fr" and math.isnan(by_id["fr"])  # no shipped toxicity model for French
    again = score_table([corpus], tmp_path / "again.parquet", [
        LengthScorer(), LanguageScorer(), ClassifierScorer("quality"), ClassifierScorer("toxicity"),
        PerplexityScorer("better", models["better"]), PerplexityScorer("worse", models["worse"])], progress=False)
    assert again.read_bytes() == scored.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_add_scores_adds_one_column_and_leaves_the_others(corpus: Path, models, tmp_path: Path):
    table = score_table([corpus], tmp_path / "t.parquet", [LengthScorer(), ClassifierScorer("quality")],
                        progress=False)
    before = pq.read_table(table)
    add_scores(table, [corpus], [PerplexityScorer("better", models["better"])], progress=False)
    after = pq.read_table(table)
    assert after.column_names == [*before.column_names, "ppl_better"]
    assert after.select(before.column_names).equals(before)
    at_once = score_table([corpus], tmp_path / "at_once.parquet", [
        LengthScorer(), ClassifierScorer("quality"), PerplexityScorer("better", models["better"])], progress=False)
    assert table.read_bytes() == at_once.read_bytes()  # scoring later gives the file scoring at once gives
    with pytest.raises(ConfigError, match=r"already has column\(s\) \['quality'\]; pass overwrite=True"):
        add_scores(table, [corpus], [ClassifierScorer("quality")], progress=False)
    assert table.read_bytes() == at_once.read_bytes()
    add_scores(table, [corpus], [LengthScorer()], overwrite=True, progress=False)
    assert pq.read_table(table).column_names == after.column_names and table.read_bytes() == at_once.read_bytes()
    with pytest.raises(ConfigError, match="not those"):
        add_scores(table, [corpus / "en"], [LanguageScorer()], progress=False)
    with pytest.raises(ConfigError, match="reserved"):
        add_scores(table, [corpus], [ClassifierScorer("quality", column="id")], progress=False)


@pytest.fixture
def values(tmp_path: Path) -> tuple[Path, dict]:
    """A table of 300 rows: `x` uniform with 15 NaN, `n` small integers, `lang` with an empty value."""
    rng = np.random.default_rng(7)
    x = rng.random(300)
    x[rng.choice(300, 15, replace=False)] = np.nan
    lang = [str(v) for v in rng.choice(["en", "zh", "fr"], 300)]
    lang[5] = None
    data = {"id": [f"d{i:03d}" for i in range(300)], "x": x, "n": rng.integers(0, 5, 300), "lang": lang}
    path = tmp_path / "values.parquet"
    pq.write_table(pa.table(data), path)
    return path, data


def ids_where(data: dict, keep) -> list[str]:
    return [i for i, *v in zip(data["id"], data["x"], data["n"], data["lang"]) if keep(*v)]


def test_bands_and_quantile_bands(values):
    table, data = values
    assert select(table, [KeepRule(column="x", min=0.2, max=0.7)]) == ids_where(data, lambda x, n, lang: 0.2 <= x <= 0.7)
    assert select(table, [KeepRule(column="x", max=0.5)]) == ids_where(data, lambda x, n, lang: x <= 0.5)
    kept = select(table, [KeepRule(column="x", min=0)])  # every value passes: only the NaN rows go
    assert len(kept) == 285 and kept == ids_where(data, lambda x, n, lang: not math.isnan(x))
    low, high = np.quantile(data["x"][~np.isnan(data["x"])], [0.1, 0.9])
    rule = KeepRule(column="x", lower_quantile=0.1, upper_quantile=0.9)
    assert select(table, [rule]) == ids_where(data, lambda x, n, lang: low <= x <= high)
    report = selection_report(table, [rule])["rules"][0]
    assert report["min"] == pytest.approx(low) and report["max"] == pytest.approx(high)
    assert report["kind"] == "quantile" and report["missing"] == 15
    assert report["kept"] + report["dropped"] == 300 and report["kept"] == len(select(table, [rule]))
    upper = KeepRule(column="x", upper_quantile=0.5)
    median = np.median(data["x"][~np.isnan(data["x"])])
    assert select(table, [upper]) == ids_where(data, lambda x, n, lang: x <= median)


def test_top_fraction_both_ways(values):
    table, data = values
    present = [(x, i) for i, x in zip(data["id"], data["x"]) if not math.isnan(x)]
    count = math.ceil(0.3 * len(present))
    best = sorted(present, reverse=True)[:count]
    assert set(select(table, [KeepRule(column="x", top_fraction=0.3)])) == {i for _, i in best}
    assert len(select(table, [KeepRule(column="x", top_fraction=0.3)])) == count
    worst = sorted(present)[:count]
    lowest = KeepRule(column="x", top_fraction=0.3, highest=False)
    assert set(select(table, [lowest])) == {i for _, i in worst}
    report = selection_report(table, [lowest])["rules"][0]
    assert report["max"] == worst[-1][0] and report["min"] is None and report["kept"] == count
    # integer column with ties: everything tied with the cut is kept
    cut = sorted(data["n"], reverse=True)[math.ceil(0.1 * 300) - 1]
    assert select(table, [KeepRule(column="n", top_fraction=0.1)]) == ids_where(data, lambda x, n, lang: n >= cut)


def test_top_fraction_and_quantiles_within_each_group(values):
    table, data = values
    expected = set()
    for group in ("en", "zh", "fr", None):
        present = sorted((x, i) for i, x, lang in zip(data["id"], data["x"], data["lang"])
                         if lang == group and not math.isnan(x))
        expected |= {i for _, i in present[:math.ceil(0.5 * len(present))]}
    rule = KeepRule(column="x", top_fraction=0.5, highest=False, by="lang")
    assert set(select(table, [rule])) == expected
    report = selection_report(table, [rule])["rules"][0]
    assert report["by"] == "lang" and set(report["groups"]) == {"en", "zh", "fr", "None"}
    whole = set(select(table, [KeepRule(column="x", top_fraction=0.5, highest=False)]))
    assert whole != expected  # per group is not the same as over the whole table
    with pytest.raises(ValidationError, match="by applies to quantile bands and top_fraction only"):
        KeepRule(column="x", min=0.1, by="lang")


def test_equals_and_all_rules_together(values):
    table, data = values
    assert select(table, [KeepRule(column="lang", equals="en")]) == ids_where(data, lambda x, n, lang: lang == "en")
    assert select(table, [KeepRule(column="n", equals=3)]) == ids_where(data, lambda x, n, lang: n == 3)
    rules = [KeepRule(column="lang", equals="zh"), KeepRule(column="x", min=0.25), KeepRule(column="n", max=2)]
    expected = ids_where(data, lambda x, n, lang: lang == "zh" and x >= 0.25 and n <= 2)
    assert select(table, rules) == expected == select(table, rules[::-1])
    report = selection_report(table, rules)
    assert report["rows"] == 300 and report["kept"] == len(expected) and report["dropped"] == 300 - len(expected)
    assert report["rules"][0]["missing"] == 1 and report["rules"][0]["equals"] == "zh"
    assert [r["kind"] for r in report["rules"]] == ["equals", "band", "band"]
    assert select(table, []) == data["id"]


def test_invalid_rules_are_clear(values):
    table, _ = values
    cases = [({"column": "x"}, "give exactly one of min/max, lower_quantile/upper_quantile, top_fraction or equals "
                               r"\(got none\)"),
             ({"column": "x", "min": 0, "top_fraction": 0.1}, r"got min/max and top_fraction"),
             ({"column": "x", "min": 2, "max": 1}, "min 2.0 is above max 1.0"),
             ({"column": "x", "lower_quantile": 0.9, "upper_quantile": 0.1}, "lower_quantile 0.9 is above"),
             ({"column": "x", "lower_quantile": 1.5}, "less than or equal to 1"),
             ({"column": "x", "top_fraction": 0}, "greater than 0"),
             ({"column": "x", "min": 0, "highest": False}, "highest applies to top_fraction only"),
             ({"column": "x", "minimum": 0}, "Extra inputs are not permitted"),
             ({"column": "", "min": 0}, "at least 1 character")]
    for fields, message in cases:
        with pytest.raises(ValidationError, match=message):
            KeepRule(**fields)
    with pytest.raises(ConfigError, match=r"has no column\(s\) \['nope'\]"):
        select(table, [KeepRule(column="nope", min=0)])
    with pytest.raises(ConfigError, match="band needs a numeric column"):
        select(table, [KeepRule(column="lang", min=0)])
    with pytest.raises(ConfigError, match="equals 'en' does not fit a column of type Float64"):
        select(table, [KeepRule(column="x", equals="en")])


def test_write_subset_copies_exactly_the_selected_records(corpus: Path, scored: Path, tmp_path: Path):
    ids = select(scored, [KeepRule(column="chars", min=200), KeepRule(column="quality", top_fraction=0.5)])
    records = {d[0]: d[2] for d in iter_documents([corpus])}
    assert any(i.startswith("clue-") for i in ids) and any(i.startswith("c4-") for i in ids)
    counts = write_subset([corpus], set(ids), tmp_path / "a", shard_docs=7)
    shards = sorted((tmp_path / "a").iterdir())
    assert [p.name for p in shards] == [f"part-{i:05d}.jsonl.gz" for i in range(math.ceil(len(ids) / 7))]
    written = [rec for p in shards for rec in read_jsonl(p)]
    assert written == [records[i] for i in ids]  # table order is document order
    assert counts == {"documents_in": len(records), "documents_kept": len(ids), "shards": len(shards),
                      "chars_kept": sum(len(records[i]["text"]) for i in ids), "ids_not_found": 0}
    write_subset([corpus], ids, tmp_path / "b", shard_docs=7)
    assert [p.read_bytes() for p in sorted((tmp_path / "b").iterdir())] == [p.read_bytes() for p in shards]
    small = write_subset([corpus], ids[:3] + ["not-there"], tmp_path / "a", shard_docs=7)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["part-00000.jsonl.gz"]  # stale shards gone
    assert small["documents_kept"] == 3 and small["ids_not_found"] == 1
    assert orjson.loads(gzip.decompress((tmp_path / "a" / "part-00000.jsonl.gz").read_bytes()).split(b"\n")[0]) \
        == records[ids[0]]


def test_favoured_split_on_a_constructed_table(tmp_path: Path):
    better = [10.0, 10.0, 10.0, 20.0, 10.0, 100.0, 10.0, 30.0, np.nan, 40.0, 10.0, 12.0, 7.0]
    worse = [100.0, 20.0, 100.0, 20.0, 100.0, 50.0, 20.0, 30.0, 60.0, np.inf, 100.0, 12.0, 7.0]
    # log gains: ln 10, ln 2, ln 10, 0, ln 10, -ln 2, ln 2, 0, (NaN), (inf), ln 10, 0, 0 (equal pairs: exact ties)
    ids = [f"r{i:02d}" for i in range(len(better))]
    path = tmp_path / "ppl.parquet"
    pq.write_table(pa.table({"id": ids, "ppl_new": better, "ppl_old": worse}), path)
    positives, negatives = favoured_split(path, "ppl_new", "ppl_old", fraction=0.2)  # 11 rows with both: 2 each
    assert positives == ["r00", "r02"]  # gain ln 10 for r00, r02, r04, r10: the earliest rows win the tie
    assert negatives == ["r03", "r05"]  # the rise (r05), then the earliest of the zero gains
    positives, negatives = favoured_split(path, "ppl_new", "ppl_old", fraction=0.5)  # 5 each
    assert positives == ["r00", "r01", "r02", "r04", "r10"] and negatives == ["r03", "r05", "r07", "r11", "r12"]
    with pytest.raises(ConfigError, match="fraction must be in"):
        favoured_split(path, "ppl_new", "ppl_old", fraction=0.6)
    with pytest.raises(ConfigError, match="no column"):
        favoured_split(path, "ppl_new", "ppl_x")


def test_favoured_classifier_learns_what_the_better_model_learned(corpus: Path, scored: Path, tmp_path: Path):
    positives, negatives = favoured_split(scored, "ppl_better", "ppl_worse", fraction=0.11)
    assert len(positives) == len(negatives) == int(0.11 * (len(rows(scored)["id"]) - 2)) == 12  # 2 NaN rows
    seen = {r["id"] for r in SEEN}
    assert set(positives) == seen  # the documents it was trained on
    assert all(i.startswith(("clue-", "wnutraw-")) for i in negatives)
    model = tmp_path / "favoured.bin"
    report = train_favoured_classifier(scored, [corpus], "ppl_better", "ppl_worse", model, fraction=0.25)
    assert model.is_file() and json.loads(Path(f"{model}.json").read_text())["report"]["roc_auc"] == report.roc_auc
    positives, _ = favoured_split(scored, "ppl_better", "ppl_worse", fraction=0.25)
    assert report.train_docs + report.heldout_docs == 2 * len(positives) and report.heldout_docs > 0
    assert report.roc_auc > 0.8
    column = ClassifierScorer("quality", model_path=model, column="favoured")
    scores = dict(zip([d[0] for d in iter_documents([corpus])], column.score([d[1] for d in iter_documents([corpus])])))
    assert np.mean([scores[i] for i in seen]) > np.mean([scores[r["id"]] for r in ZH])
    elsewhere = tmp_path / "other"
    shutil.copytree(corpus / "en", elsewhere)
    with pytest.raises(ConfigError, match="ids of .* are not among the documents"):
        train_favoured_classifier(scored, [elsewhere], "ppl_better", "ppl_worse", tmp_path / "x.bin", fraction=0.25)


def test_classifier_scorer_settings():
    assert ClassifierScorer("toxicity", language="zh").score(["你好"]) == pytest.approx(
        TextClassifier(SHIPPED_TOXICITY["zh"]).scores(["你好"]).tolist())
    with pytest.raises(ConfigError, match="applies to kind toxicity without model_path only"):
        ClassifierScorer("quality", language="en")
    with pytest.raises(ConfigError, match="no shipped toxicity model for 'fr'"):
        ClassifierScorer("toxicity", language="fr")
    with pytest.raises(ConfigError, match="classifier model not found"):
        ClassifierScorer("quality", model_path="missing.bin")


def test_an_empty_file_gives_an_empty_typed_table(models, tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    table = score_table([empty], tmp_path / "t.parquet", [
        LengthScorer(), LanguageScorer(), ClassifierScorer("quality"), PerplexityScorer("better", models["better"])],
        progress=False)
    schema = pq.read_schema(table)
    assert pq.read_table(table).num_rows == 0 and [str(t) for t in schema.types] == [
        "string", "string", "int64", "string", "double", "double", "double"]
    assert select(table, [KeepRule(column="quality", top_fraction=0.5)]) == []
    assert favoured_split(table, "ppl_better", "ppl_better") == ([], [])
    (tmp_path / "no_documents").mkdir()
    with pytest.raises(ConfigError, match="no .jsonl, .jsonl.gz or .parquet files in"):
        score_table([tmp_path / "no_documents"], tmp_path / "u.parquet", [LengthScorer()], progress=False)
