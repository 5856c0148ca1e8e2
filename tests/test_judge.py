"""`evalsuite judge`: rubrics and verdict parsing; then end to end, two runs of scripted models judged by tiny
local judge models served by `evalsuite serve` on loopback, each overfitted to reply to the exact judging
prompts with verdicts chosen here, so every figure below is derived by hand from those verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import serve_process

torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")

from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.compare import load_metrics
from evalsuite.judge import (
    JudgeError,
    Rubric,
    builtin_rubrics,
    judge_pairwise,
    judge_run,
    load_rubric,
    open_judges,
    store,
)
from evalsuite.outputs import Generation, generated_outputs
from evalsuite.registry import run_agreement, run_metrics
from evalsuite.run import RunConfig, run
from evalsuite.serve import LocalModel, serving
from train.hf import DEFAULT_CHAT_TEMPLATE
from train.tiny import build_tiny_gpt2

INSTRUCTION, SAFETY, PAIRWISE = (load_rubric(n) for n in ("instruction_following", "safety", "pairwise"))
# each judge's replies per document (0-3) of the candidate run; judge 1 cannot be read on document 2
JUDGE_1 = {"instruction_following": ["Rating: [[8]]", "Rating: [[3]]", "I cannot rate this answer.", "Rating: [[6]]"],
           "safety": ["Verdict: [[PASS]]", "Verdict: [[FAIL]]", "Verdict: [[PASS]]", "Verdict: [[PASS]]"]}
JUDGE_2 = {"instruction_following": ["Rating: [[8]]", "Rating: [[3]]", "Rating: [[9]]", "Rating: [[6]]"],
           "safety": ["Verdict: [[PASS]]", "Verdict: [[FAIL]]", "Verdict: [[FAIL]]", "Verdict: [[PASS]]"]}
# judge 1 on the pairs, (A shown first, B shown first) per document: B better in both orders; "A" whichever
# is first (position bias); A better in both orders; a tie in both
PAIRS = [("B", "A"), ("A", "A"), ("A", "B"), ("C", "C")]


def test_builtin_rubrics_load_and_parse_verdicts():
    assert set(builtin_rubrics()) == {"instruction_following", "relevance", "fluency", "safety", "domain_expertise",
                                      "pairwise"}
    for name in builtin_rubrics():
        rubric = load_rubric(name)
        user = rubric.messages(question="Q {answer}", answer="ANS", answer_a="A1", answer_b="B1")[-1]["content"]
        assert "Q {answer}" in user and "{question}" not in user  # placeholders filled once, not re-read
    assert INSTRUCTION.parse("Clear and complete.\nRating: [[7]]") == 7
    assert INSTRUCTION.parse("Rating: [[7]] ... on reflection Rating: [[7]]") == 7  # the same verdict twice
    for bad in ("Rating: [[7]] or maybe Rating: [[8]]", "Rating: [[11]]", "Rating: [[0]]", "I would say 7.",
                "Rating: [7]", ""):
        assert INSTRUCTION.parse(bad) is None, bad
    assert SAFETY.parse("Verdict: [[FAIL]]") == 0 and SAFETY.parse("Verdict: [[PASS]]") == 1
    assert SAFETY.parse("Verdict: [[MAYBE]]") is None
    assert PAIRWISE.parse("Verdict: [[C]]") == "tie" and PAIRWISE.parse("Verdict: [[B]]") == "second"
    # what the judge reads of a prompt lm-eval sent a chat endpoint (JSON messages), and of a text prompt
    chat = json.dumps([{"role": "user", "content": "Name a prime."}])
    assert Generation("r", "t", "0", chat, "7").question == "Name a prime."
    assert Generation("r", "t", "0", "[1] is a footnote", "").question == "[1] is a footnote"


def test_rubric_files_are_checked(tmp_path: Path):
    def rubric(text: str) -> Path:
        path = tmp_path / "r.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    good = "name: r\nkind: scale\nscale: [1, 5]\nprompt: '{question} {answer}'\nverdict: '\\[\\[(\\d)\\]\\]'\n"
    assert isinstance(load_rubric(rubric(good)), Rubric)
    for text, message in [(good.replace("{answer}", ""), "placeholder {answer}"),
                          (good.replace("kind: scale", "kind: stars"), "'kind'"),
                          (good.replace("scale: [1, 5]", "scale: [5, 1]"), "'scale'"),
                          (good.replace("(\\d)", "\\d"), "one group"),
                          (good + "colour: red\n", "unknown field 'colour'"),
                          ("kind: labels\n", "'name'"),
                          (good.replace("kind: scale\nscale: [1, 5]", "kind: labels\nlabels: {OK: yes}"), "numbers")]:
        with pytest.raises(JudgeError, match=message) as e:
            load_rubric(rubric(text))
        assert str(tmp_path / "r.yaml") in str(e.value)
    with pytest.raises(JudgeError, match="unknown rubric 'nope'"):
        load_rubric("nope")


def overfit_chat_model(folder: Path, examples: list[tuple[list[dict], str]], steps: int = 400) -> Path:
    """A tiny GPT-2 (ChatML template) trained until, greedily, it replies to each example's messages (rendered
    as `evalsuite serve` renders them) with the example's reply, closed by <|im_end|>."""
    texts = [m["content"] for messages, _ in examples for m in messages] + [reply for _, reply in examples]
    build_tiny_gpt2(folder, texts * 5, seed=0, chat_template=DEFAULT_CHAT_TEMPLATE)
    model = LocalModel(folder)
    batch = []
    for messages, reply in examples:
        prompt, target = model.chat_ids(messages), model.encode(reply + "<|im_end|>")
        batch.append((torch.tensor([prompt + target]), torch.tensor([[-100] * len(prompt) + target])))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=3e-3)
    for step in range(1, steps + 1):  # all replies are right after 100 to 200 steps
        model.model.train()
        for ids, labels in batch:
            model.model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.model.eval()
        if step % 20 == 0:
            wrong = [reply for messages, reply in examples if model.chat(messages, max_tokens=16).text != reply]
            if not wrong:
                break
    assert not wrong, f"the judge model did not learn its replies {wrong}"
    model.model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Runs A (scripted:refuse) and B (scripted:comply) of 4 questions, and two judges serving on loopback:
    yields (folder, run A, run B, judge 1 URL, judge 2 URL)."""
    base = tmp_path_factory.mktemp("judge")
    (base / "suite.yaml").write_text("name: gen\ntasks: [cl_nq_open]\n", encoding="utf-8")
    for name, script in (("a", "refuse"), ("b", "comply")):
        run(RunConfig(model=f"scripted:{script}", suite=str(base / "suite.yaml"), output=str(base / name), limit=4))
    a, b = (generated_outputs(base / name)[0] for name in ("a", "b"))
    assert [g.doc_id for g in b] == ["0", "1", "2", "3"] and a[0].text != b[0].text
    def rated(replies: dict[str, list[str]]) -> list[tuple[list[dict], str]]:
        return [(rubric.messages(question=g.question, answer=g.text), replies[rubric.name][int(g.doc_id)])
                for g in b for rubric in (INSTRUCTION, SAFETY)]

    paired = []
    for ga, gb, (a_first, b_first) in zip(a, b, PAIRS):
        paired += [(PAIRWISE.messages(question=gb.question, answer_a=ga.text, answer_b=gb.text),
                    f"Verdict: [[{a_first}]]"),
                   (PAIRWISE.messages(question=gb.question, answer_a=gb.text, answer_b=ga.text),
                    f"Verdict: [[{b_first}]]")]
    one = overfit_chat_model(base / "judge-one", rated(JUDGE_1) + paired)
    two = overfit_chat_model(base / "judge-two", rated(JUDGE_2))
    with serve_process(one) as url_one, serve_process(two) as url_two:
        yield base, base / "a", base / "b", url_one, url_two


def test_rubric_scores_invalid_replies_and_judge_agreement(setup):
    base, _, run_b, url_one, url_two = setup
    judged = judge_run(run_b, open_judges([url_one, url_two], [], max_tokens=32), [INSTRUCTION, SAFETY],
                       progress=False)
    v = judged.values
    # per document, the judges' valid verdicts averaged: instruction following 8, 3, 9 (judge 1 invalid), 6
    assert v["instruction_following,none"] == pytest.approx(6.5)
    assert v["instruction_following_stderr,none"] == pytest.approx(math.sqrt(7 / 4))  # sample variance 21/3
    assert v["safety,none"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert v["invalid_rate,none"] == pytest.approx(1 / 16) and v["sample_len"] == 4
    # the judges agree wherever both could be read: alpha 1; on safety they split on document 2: nominal
    # alpha = 1 - (n - 1) * disagreeing pairs / sum of n_c * n_k over c != k = 1 - 7 * 2 / (2 * 5 * 3) = 8/15
    assert v["instruction_following_alpha,none"] == pytest.approx(1.0)
    assert v["safety_alpha,none"] == pytest.approx(8 / 15)
    invalid = [r for r in judged.rows if not r["valid"]]
    assert len(judged.rows) == 16 and len(invalid) == 1
    assert invalid[0]["doc_id"] == "2" and invalid[0]["verdict"] is None
    assert invalid[0]["reply"] == "I cannot rate this answer."

    store(run_b, judged)
    assert load_metrics(run_b)[("judge", "instruction_following,none")] == pytest.approx(6.5)  # compare sees it
    registered = run_metrics(base / "registry.sqlite", "b")
    assert registered[("judge", "safety,none")][0] == pytest.approx(0.625)
    assert ("cl_nq_open", "exact_match,none") in registered  # the run's other tasks stay
    agreement = {a.dimension: a for a in run_agreement(base / "registry.sqlite", "b")["judge"]}
    assert agreement["safety"].alpha == pytest.approx(8 / 15) and agreement["safety"].units == 4
    manifest = json.loads((run_b / "run.json").read_text())
    assert [j["url"] for j in manifest["judge"]["judges"]] == [url_one, url_two]
    assert manifest["judge"]["rubrics"] == {"instruction_following": INSTRUCTION.sha256, "safety": SAFETY.sha256}
    assert "| judge | instruction_following |" in (run_b / "summary.md").read_text()
    first = (run_b / "samples" / "judge.jsonl").read_bytes()
    store(run_b, judge_run(run_b, open_judges([url_one, url_two], [], max_tokens=32), [INSTRUCTION, SAFETY],
                           progress=False))
    assert (run_b / "samples" / "judge.jsonl").read_bytes() == first  # deterministic: greedy, fixed order

    # one judge alone: document 2 has no valid verdict and drops out of the mean
    alone = judge_run(run_b, open_judges([url_one], [], max_tokens=32), [INSTRUCTION], progress=False).values
    assert alone["instruction_following,none"] == pytest.approx((8 + 3 + 6) / 3)
    assert alone["invalid_rate,none"] == pytest.approx(1 / 4) and "instruction_following_alpha,none" not in alone


def test_pairwise_both_orders_through_the_cli(setup):
    _, run_a, run_b, url_one, _ = setup
    said = CliRunner().invoke(app, ["judge", "--pairwise", str(run_a), str(run_b), "--judge", url_one,
                                    "--max-tokens", "32"])
    assert said.exit_code == 0, said.output
    assert "win_rate" in said.output and "position_order" in said.output
    v = json.loads((run_b / "results.json").read_text())["results"]["judge_pairwise"]
    # per document: B wins; A first and B first each win (inconsistent: a tie); A wins; a tie
    assert (v["win_rate,none"], v["tie_rate,none"], v["loss_rate,none"]) == (0.25, 0.5, 0.25)
    assert v["position_consistency,none"] == 0.75 and v["invalid_rate,none"] == 0
    # the two orders as raters of 4 units (B,B) (A,B) (A,A) (tie,tie): n_A = n_B = 3, n_tie = 2, n = 8, one
    # disagreeing unit gives 2 ordered pairs: alpha = 1 - 7 * 2 / (2 * (3*3 + 3*2 + 3*2)) = 2/3
    assert v["order_alpha,none"] == pytest.approx(2 / 3)
    rows = [json.loads(line) for line in (run_b / "samples" / "judge_pairwise.jsonl").read_text().splitlines()]
    assert [(r["a_first"], r["b_first"], r["outcome"]) for r in rows] == [
        ("B", "B", "B"), ("A", "B", "tie"), ("A", "A", "A"), ("tie", "tie", "tie")]
    assert json.loads((run_b / "run.json").read_text())["judge_pairwise"]["baseline"] == str(run_a.resolve())

    wrong = CliRunner().invoke(app, ["judge", "--pairwise", str(run_b), "--judge", url_one])
    assert wrong.exit_code == 2 and "two runs" in wrong.output
    with pytest.raises(JudgeError, match="rates one output"):
        judge_pairwise(run_a, run_b, open_judges([url_one], []), INSTRUCTION)
    with pytest.raises(JudgeError, match="no generated outputs"):
        judge_run(run_b, open_judges([url_one], []), [INSTRUCTION], tasks=["cl_other"])


def test_api_key_from_the_environment_is_used_and_never_stored(setup, monkeypatch):
    base, _, run_b, _, _ = setup
    monkeypatch.setenv("JUDGE_KEY", "s3cret-key")
    with serving(base / "judge-two", api_key="s3cret-key") as url:
        said = CliRunner().invoke(app, ["judge", str(run_b), "--judge", url, "--rubric", "safety",
                                        "--max-tokens", "32", "--api-key-env", "JUDGE_KEY"])
        assert said.exit_code == 0, said.output
        refused = CliRunner().invoke(app, ["judge", str(run_b), "--judge", url, "--rubric", "safety",
                                           "--api-key-env", "NO_SUCH_VARIABLE"])
    assert refused.exit_code == 2 and "401" in refused.output
    assert json.loads((run_b / "results.json").read_text())["results"]["judge"]["safety,none"] == 0.5
    for path in [*run_b.rglob("*.json"), *run_b.rglob("*.jsonl"), *run_b.rglob("*.md")]:
        assert "s3cret" not in path.read_text(encoding="utf-8"), path
    assert "s3cret" not in said.output + refused.output
