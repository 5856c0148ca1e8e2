"""The closed loop's engine on the bundled real sample corpus: stage order, the stage cache (a rerun skips,
a changed setting reruns exactly what depends on it, a killed stage reruns), the gate (accept, roll back) and
the lineage recorded with each evaluation."""

import json
import math
import sqlite3
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from corpus.config import ConfigError
from pipelines import Loop, LoopError, load_loop
from pipelines.stages import part_of

pytestmark = pytest.mark.slow  # trains and evaluates small models (about a minute)

SAMPLE = ROOT / "corpus" / "data" / "sample" / "web_en.jsonl"
TINY = {"vocab_size": 400, "hidden_size": 32, "layers": 1, "heads": 2, "context": 64, "tokenizer_docs": 200}
BUDGET = {"max_steps": 12, "batch_size": 4, "max_length": 64, "learning_rate": 0.003, "eval_fraction": 0.0,
          "logging_steps": 4}


def tiny_stages(fractions: dict[str, float]) -> dict:
    """Split the sample, build the shared start, train it, evaluate the start and the trained model."""
    return {
        "split": {"kind": "split", "input": "web", "fractions": fractions},
        "init": {"kind": "init", "tokenizer_data": "split/train", **TINY},
        "train": {"kind": "train", "data": "split/train", "init": "init", "config": dict(BUDGET)},
        "eval_init": {"kind": "eval", "model": "init", "suite": None, "held_out": ["split/test"], "held_out_docs": 15},
        "eval_trained": {"kind": "eval", "model": "train", "suite": None, "held_out": ["split/test"],
                         "held_out_docs": 15},
    }


def definition(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "tiny-loop", "workdir": str(tmp_path / "work"),
        "datasets": {"web": {"paths": [str(SAMPLE)]}},
        "stages": {
            **tiny_stages({"train": 0.8, "test": 0.2}),
            "gate": {"kind": "compare", "baseline": "eval_init", "candidates": ["eval_trained"],
                     "key_metric": "heldout_split_test/bits_per_byte"},
            "gate_back": {"kind": "compare", "baseline": "eval_trained", "candidates": ["eval_init"],
                          "key_metric": "heldout_split_test/bits_per_byte"},
            "scores": {"kind": "score", "input": "split/train", "perplexity": {"trained": "train", "init": "init"},
                       "max_length": 64},
            "favoured": {"kind": "classifier", "input": "split/train", "scores": "scores", "better": "ppl_trained",
                         "worse": "ppl_init", "fraction": 0.25},
            "rescored": {"kind": "score", "input": "split/train", "trained": {"favoured": "favoured"}},
            "filtered": {"kind": "filter", "input": "split/train", "scores": "scores",
                         "keep": [{"column": "ppl_trained", "top_fraction": 0.5, "highest": False}]},
            "cleaned": {"kind": "clean", "input": "web", "steps": ["normalize", "heuristics"]},
        },
    }
    for path, value in changes.items():
        stage, option = path.split(".", 1)
        target = spec["stages"][stage]
        *parents, last = option.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    file = tmp_path / "loop.yaml"
    file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return file


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny loop run once, and the statuses of a second run over the same folder."""
    tmp = tmp_path_factory.mktemp("loop")
    engine = Loop(load_loop(definition(tmp)))
    first = {name: s.status for name, s in engine.run().items()}
    again = Loop(load_loop(definition(tmp)))
    second = {name: s.status for name, s in again.run().items()}
    return tmp, again, first, second


def test_stages_run_in_dependency_order_and_a_rerun_skips_them_all(finished):
    _, engine, first, second = finished
    assert engine.order() == ["split", "init", "train", "eval_init", "eval_trained", "gate", "gate_back", "scores",
                              "favoured", "rescored", "filtered", "cleaned"]
    assert set(first.values()) == {"ran"} and set(second.values()) == {"cached"}
    split = engine.states["split"]
    assert split.metrics["train_documents"] + split.metrics["test_documents"] == 527
    assert engine.states["train"].metrics["token_budget"] == 12 * 4 * 64
    cleaned = engine.states["cleaned"].metrics
    assert cleaned["documents_in"] == 527 and 0 < cleaned["documents_out"] < 527
    assert len(engine.resolve("cleaned")) == len(list((engine.workdir / "cleaned" / "clean").glob("shard-*")))


def test_split_is_by_hash_of_the_id(finished):
    _, engine, _, _ = finished
    import gzip

    for part in ("train", "test"):
        for path in engine.resolve(f"split/{part}"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                assert all(part_of(json.loads(line)["id"], 0, {"train": 0.8, "test": 0.2}) == part for line in f)


def test_gate_accepts_the_trained_model_and_rolls_back_the_untrained(finished):
    _, engine, _, _ = finished
    gate, back = engine.states["gate"].metrics, engine.states["gate_back"].metrics
    trained = gate["candidates"]["eval_trained"]
    assert trained["value"] < gate["baseline"]["value"]  # bits per byte: lower is better
    assert trained["verdict"] == "accepted" and gate["chosen"] == "eval_trained"
    assert back["candidates"]["eval_init"]["verdict"] == "rolled back" and back["chosen"] == "eval_trained"


def test_each_evaluation_is_registered_with_its_lineage(finished):
    _, engine, _, _ = finished
    db = sqlite3.connect(engine.registry)
    rows = {json.loads(lineage)["eval_stage"]: json.loads(lineage) for (lineage,) in db.execute(
        "SELECT lineage FROM runs")}
    db.close()
    trained = rows["eval_trained"]
    assert trained["train:train"] == engine.states["train"].key[:16]
    assert trained["init:init"] == engine.states["init"].key[:16]
    assert trained["split:split"] == engine.states["split"].key[:16]
    assert trained["dataset:web"] == str(SAMPLE)
    assert "train:train" not in rows["eval_init"]


def test_a_changed_setting_reruns_exactly_what_depends_on_it(finished, tmp_path: Path):
    tmp, _, _, _ = finished
    changed = Loop(load_loop(definition(tmp, **{"train.config.max_steps": 6})))
    statuses = {name: s.status for name, s in changed.run().items()}
    assert statuses == {"split": "cached", "init": "cached", "eval_init": "cached", "train": "ran",
                        "eval_trained": "ran", "gate": "ran", "gate_back": "ran", "scores": "ran", "filtered": "ran",
                        "favoured": "ran", "rescored": "ran", "cleaned": "cached"}


def test_a_killed_stage_is_run_again(tmp_path: Path):
    spec = definition(tmp_path)
    engine = Loop(load_loop(spec))
    engine.run()
    results = (engine.workdir / "eval_trained" / "results.json").read_bytes()
    (engine.workdir / "eval_trained" / "stage.json").unlink()  # as if killed before it finished
    statuses = {name: s.status for name, s in Loop(load_loop(spec)).run().items()}
    assert statuses["eval_trained"] == "ran" and statuses["train"] == "cached" and statuses["gate"] == "cached"
    assert (engine.workdir / "eval_trained" / "results.json").read_bytes() == results  # as uninterrupted
    forced = {name: s.status for name, s in Loop(load_loop(spec)).run(force=["eval_init"]).items()}
    assert [n for n, status in forced.items() if status == "ran"] == ["eval_init", "gate", "gate_back"]


def test_bad_definitions_name_the_option(tmp_path: Path):
    bad = definition(tmp_path, **{"train.data": "nowhere/train"})
    with pytest.raises(ConfigError, match=r"loop.yaml: .*'nowhere/train' names no dataset or stage"):
        load_loop(bad)
    with pytest.raises(ConfigError, match="max_steps must be set"):
        load_loop(definition(tmp_path, **{"train.config": {"batch_size": 2}}))
    with pytest.raises(ConfigError, match="fractions must be positive and sum to 1"):
        load_loop(definition(tmp_path, **{"split.fractions": {"train": 0.5, "test": 0.2}}))
    cyclic = definition(tmp_path, **{"init.tokenizer_data": "train"})
    with pytest.raises(LoopError, match="cycle"):
        Loop(load_loop(cyclic)).order()


def test_the_filter_keeps_the_documents_the_model_scores_best(finished):
    import gzip

    import polars as pl

    _, engine, _, _ = finished
    table = pl.read_parquet(engine.resolve("scores")[0])
    train_docs = engine.states["split"].metrics["train_documents"]
    assert table.height == train_docs and table.columns == ["id", "source", "chars", "ppl_trained", "ppl_init"]
    kept = []
    for path in engine.resolve("filtered"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            kept += [json.loads(line)["id"] for line in f]
    best = table.filter(pl.col("ppl_trained").is_not_nan()).sort("ppl_trained")
    cut = best["ppl_trained"][len(kept) - 1]
    assert set(kept) == set(best.filter(pl.col("ppl_trained") <= cut)["id"])
    assert len(kept) == engine.states["filtered"].metrics["documents_kept"] >= train_docs // 2


def test_a_classifier_learns_what_the_trained_model_favours_and_scores_with_it(finished):
    import polars as pl

    _, engine, _, _ = finished
    favoured = engine.states["favoured"].metrics
    train_docs = engine.states["split"].metrics["train_documents"]
    assert favoured["train_documents"] + favoured["heldout_documents"] == 2 * int(0.25 * train_docs)
    assert 0.0 <= favoured["roc_auc"] <= 1.0
    scores = pl.read_parquet(engine.resolve("rescored")[0])
    assert scores.columns == ["id", "source", "chars", "favoured"] and scores.height == train_docs
    assert scores["favoured"].is_between(0, 1).all()
    assert engine.resolve("favoured")[0].name == "model.bin"


def iterative(tmp_path: Path, start: dict, training: dict | None = None, max_iterations: int = 2,
              **repeat) -> Path:
    """A loop whose last four stages repeat: score the current documents by influence under the current model
    against a validation part, keep the best 80%, train on them, evaluate, gate against the last accepted."""
    spec = {
        "name": "tiny-iterations", "workdir": str(tmp_path / "work"),
        "datasets": {"web": {"paths": [str(SAMPLE)]}},
        "stages": {
            **tiny_stages({"train": 0.7, "validation": 0.1, "test": 0.2}),
            "score_it": {"kind": "score", "input": "prev:select_it", "max_length": 64,
                         "influence": {"current": {"model": "prev:train_it", "held_out": "split/validation",
                                                   "held_out_docs": 20}}},
            "select_it": {"kind": "filter", "input": "prev:select_it", "scores": "score_it",
                          "keep": [{"column": "influence_current", "top_fraction": 0.8}]},
            "train_it": {"kind": "train", "data": "select_it", "init": "init",
                         "config": {**BUDGET, **(training or {})}},
            "eval_it": {"kind": "eval", "model": "train_it", "suite": None, "held_out": ["split/test"],
                        "held_out_docs": 15},
            "gate_it": {"kind": "compare", "baseline": "prev:eval_it", "candidates": ["eval_it"],
                        "key_metric": "heldout_split_test/bits_per_byte"},
        },
        "repeat": {"stages": ["score_it", "select_it", "train_it", "eval_it", "gate_it"], "gate": "gate_it",
                   "start": {"select_it": "split/train", **start}, "max_iterations": max_iterations, **repeat},
    }
    file = tmp_path / "loop.yaml"
    file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return file


def test_iterations_build_on_the_last_accepted_one_and_stop_by_the_rule(tmp_path: Path):
    definition_file = iterative(tmp_path, {"train_it": "init", "eval_it": "eval_init"})
    engine = Loop(load_loop(definition_file))
    engine.run()
    first, second = engine.iterations
    assert first.verdict == "accepted" and first.baseline == "eval_init" and first.relative_change > 0
    # iteration 2 is built on iteration 1: its documents, its model, judged against its evaluation
    assert second.baseline == "eval_it@1" and second.evaluation == "eval_it@2"
    assert engine.stages["score_it@2"].input == "select_it@1"
    assert engine.stages["score_it@2"].influence["current"].model == "train_it@1"
    assert engine.stages["train_it@2"].data == "select_it@2"
    kept = [engine.states[f"select_it@{k}"].metrics["documents_kept"] for k in (1, 2)]
    assert kept[0] == math.ceil(0.8 * engine.states["split"].metrics["train_documents"])  # no NaN: ties kept
    assert kept[1] == math.ceil(0.8 * kept[0])
    summary = json.loads((engine.workdir / "iterations.json").read_text())
    assert summary["start"]["ref"] == "eval_init" and [i["iteration"] for i in summary["iterations"]] == [1, 2]
    if second.verdict == "accepted":
        assert summary["accepted"] == 2 and second.stop == "max_iterations (2) reached"
    else:
        assert summary["accepted"] == 1 and second.stop.startswith(f"{second.verdict}: the gate did not accept")
    report = (engine.workdir / "report.html").read_text()
    assert "iteration 2" in report and "eval_it@1" in report
    # a rerun is all cached and writes the same summary
    again = Loop(load_loop(definition_file))
    assert {s.status for s in again.run().values()} == {"cached"}
    assert json.loads((again.workdir / "iterations.json").read_text()) == summary
    # min_gain stops after an accepted iteration that gained too little; a changed gate reruns only gates
    strict = Loop(load_loop(iterative(tmp_path, {"train_it": "init", "eval_it": "eval_init"}, min_gain=10.0)))
    statuses = {n: s.status for n, s in strict.run().items()}
    assert [i.iteration for i in strict.iterations] == [1] and "min_gain" in strict.iterations[0].stop
    assert statuses["gate_it@1"] == "cached" and statuses["train_it@1"] == "cached"


def test_an_iteration_that_drops_is_rolled_back_and_not_built_on(tmp_path: Path):
    # the start is a model trained 12 steps; the iteration's training barely moves its random weights
    untrained = {"max_steps": 1, "learning_rate": 1e-9}
    engine = Loop(load_loop(iterative(tmp_path, {"train_it": "train", "eval_it": "eval_trained"}, untrained,
                                      max_iterations=3)))
    engine.run()
    (only,) = engine.iterations
    assert only.verdict == "rolled back" and only.relative_change < -0.05
    assert only.stop == "rolled back: the gate did not accept it, so the loop keeps the start stages"
    summary = json.loads((engine.workdir / "iterations.json").read_text())
    assert summary["accepted"] == 0 and summary["start"]["ref"] == "eval_trained"
    assert not (engine.workdir / "train_it@2").exists()
    assert "rolled back" in (engine.workdir / "report.html").read_text()


def test_bad_repeat_definitions_name_the_option(tmp_path: Path):
    good = yaml.safe_load(iterative(tmp_path, {"train_it": "init", "eval_it": "eval_init"}).read_text())

    def error(change) -> str:
        spec = json.loads(json.dumps(good))
        change(spec)
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(ConfigError) as e:
            load_loop(tmp_path / "bad.yaml")
        return str(e.value)

    assert "must be 'prev:eval_it'" in error(lambda s: s["stages"]["gate_it"].update(baseline="eval_init"))
    assert "must be a repeated stage with a start" in error(lambda s: s["repeat"]["start"].pop("train_it"))
    assert "only stages under repeat.stages read 'prev:'" in error(
        lambda s: s["stages"]["eval_trained"].update(model="prev:train_it"))
    assert "only stages repeated with it can read it" in error(
        lambda s: s["stages"]["eval_trained"].update(model="train_it"))
    assert "must be a compare stage in repeat.stages" in error(lambda s: s["repeat"].update(gate="eval_it"))
    assert "must name a dataset or a stage outside" in error(
        lambda s: s["repeat"]["start"].update(train_it="train_it"))
