"""Online RL (`grpo`, `rloo`) with verifier rewards: the verifiers on hand-made and real GSM8K completions, and
both methods training a tiny GPT-2 on CPU on real GSM8K prompts, where an easy reward clearly rises."""

import json
from pathlib import Path

import pytest

from conftest import read_jsonl

pytest.importorskip("trl", reason="the train extra is part of the dev install (make install-dev)")

from corpus.config import ConfigError
from train import TrainConfig, TrainError, available_backends, run
from train.rewards import RewardError, completion_text, format_answer, math_answer, resolve, resolve_all
from train.tiny import build_tiny_gpt2

GSM8K = Path(__file__).resolve().parent / "data" / "train" / "gsm8k_train.jsonl"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are fastest single-threaded; OpenMP threads waiting on a busy core slow generation 30-fold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    texts = [f"{r['question']}\n{r['answer']}" for r in read_jsonl(GSM8K)]
    return build_tiny_gpt2(tmp_path_factory.mktemp("rl") / "base", texts, vocab_size=800)


def settings(tmp_path: Path, **kw) -> dict:
    return {"output": str(tmp_path / "out"), "batch_size": 8, "learning_rate": 1e-2, "max_length": 384,
            "logging_steps": 2, "report_to": [], "device": "cpu", **kw}


def digit_share(prompts, completions, **kwargs) -> list[float]:
    """An easy verifiable reward for the learning test: the share of the completion's characters that are digits."""
    texts = [completion_text(c) for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]


# --- the verifiers ---------------------------------------------------------------------------------------------

def test_math_answer_reads_the_last_number_and_normalises_it():
    gsm = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"
    completions = ["48 + 24 = 72", "She sold 72 clips, not 71", "The answer is 72.0.", "no idea", "72 clips"]
    assert math_answer(None, completions, answer=[gsm] * 5) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert math_answer(None, ["It costs $1,000 in all.", "1,234.50 dollars", "so -5", "1,000"],
                       answer=["#### 1000", "1234.5", "#### -5", 100]) == [1.0, 1.0, 1.0, 0.0]
    # a number glued to a word is no answer, and a list of digits is not a thousands group
    assert math_answer(None, ["step72", "3,4"], answer=["72", "34"]) == [0.0, 0.0]


def test_rewards_read_conversational_completions():
    chat = [[{"role": "assistant", "content": "12 + 30 = 42\nThe answer is 42"}],
            [{"role": "assistant", "content": [{"type": "text", "text": "#### 41"}]}],
            [{"role": "assistant", "content": "42 is it"}]]
    assert math_answer(None, chat, answer=["#### 42"] * 3) == [1.0, 0.0, 1.0]
    assert format_answer(None, chat) == [1.0, 1.0, 0.0]


def test_format_answer_wants_an_explicit_final_line():
    completions = ["work\n#### 72", "The answer is 1,000.\n", "Answer: 3.5", "Final answer: -2", "so 72",
                   "#### 72\nbut let me check", "The answer is seventy-two", ""]
    assert format_answer(None, completions) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_gsm8k_reference_solutions_score_full_and_a_changed_answer_scores_nothing():
    records = read_jsonl(GSM8K)
    assert len(records) == 64
    answers = [r["answer"] for r in records]
    assert math_answer(None, answers, answer=answers) == [1.0] * 64
    assert format_answer(None, answers) == [1.0] * 64
    wrong = [a.rsplit("####", 1)[0] + "#### " + str(int(a.rsplit("####", 1)[1].replace(",", "")) + 1) for a in answers]
    assert math_answer(None, wrong, answer=answers) == [0.0] * 64


def test_a_reference_with_no_number_is_an_error_naming_it():
    with pytest.raises(RewardError, match=r"reference answer 'about a dozen' is not a number"):
        math_answer(None, ["12"], answer=["about a dozen"])
    with pytest.raises(RewardError, match=r"reference answer 'so .* #### ' is not a number"):
        math_answer(None, ["12"], answer=["so 12 #### "])
    with pytest.raises(RewardError, match="needs the reference answers: a dataset column 'answer'"):
        math_answer(None, ["12"])


def test_rewards_resolve_builtin_names_and_user_functions(tmp_path: Path, monkeypatch):
    assert resolve_all(["math_answer", "format_answer"]) == [math_answer, format_answer]
    (tmp_path / "my_rewards.py").write_text(
        "def brevity(prompts, completions, **kwargs):\n"
        "    return [1.0 / (1 + len(c)) for c in completions]\n"
        "LIMIT = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    brevity = resolve("my_rewards:brevity")
    assert brevity(None, ["", "abc"]) == [1.0, 0.25]
    with pytest.raises(RewardError, match="unknown reward 'math': built-in ones are format_answer, math_answer"):
        resolve("math")
    with pytest.raises(RewardError, match=r"cannot import module 'no_such_rewards' \(ModuleNotFoundError"):
        resolve("no_such_rewards:fn")
    with pytest.raises(RewardError, match="module 'my_rewards' has no attribute 'length'"):
        resolve("my_rewards:length")
    with pytest.raises(RewardError, match="'my_rewards:LIMIT' is not callable"):
        resolve("my_rewards:LIMIT")


def test_options_and_batch_mistakes_are_refused_before_training(tiny_model: Path, tmp_path: Path):
    assert {"grpo", "rloo"} <= set(available_backends())
    base = settings(tmp_path, model=str(tiny_model), data=[str(GSM8K)])
    with pytest.raises(ConfigError, match="reward_weights has 1 values for 2 rewards"):
        run(TrainConfig(method="grpo", options={"reward_weights": [1.0]}, **base))
    with pytest.raises(ConfigError, match="num_generations"):
        run(TrainConfig(method="rloo", options={"num_generations": 1}, **base))
    with pytest.raises(TrainError, match=r"batch_size \(6\) must be a multiple of options.num_generations \(4\).*"
                                         r"Set batch_size to 4 or 8, or num_generations to one of \[2, 3, 6\]"):
        run(TrainConfig(method="grpo", **{**base, "batch_size": 6}))
    with pytest.raises(RewardError, match="cannot import module 'nowhere'"):
        run(TrainConfig(method="rloo", options={"rewards": ["math_answer", "nowhere:fn"]}, **base))


# --- training --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "peft"), [("grpo", None), ("rloo", {"rank": 4, "merge": True})],
                         ids=["grpo", "rloo-lora"])
def test_trains_on_gsm8k_with_the_math_verifiers(method: str, peft: dict | None, tiny_model: Path, tmp_path: Path):
    """Default options (math_answer + format_answer), a held-out split evaluated, unusable records rejected; RLOO
    with LoRA, its default beta 0.05 taking the adapter-free model as reference, merged on saving."""
    data = tmp_path / "gsm8k.jsonl"
    records = read_jsonl(GSM8K)
    data.write_text("".join(json.dumps(r) + "\n" for r in [*records, {"question": "How many?", "answer": "many"},
                                                           {"answer": "#### 3"}]))
    result = run(TrainConfig(method=method, model=str(tiny_model), data=[str(data)],
                             peft=peft, **settings(tmp_path, max_steps=4, eval_steps=2)))
    m = result.metrics
    assert m["steps"] == 4 and m["tokens_per_second"] > 0, m
    assert 0 <= m["reward_first"] <= 2 and 0 <= m["reward_last"] <= 2, m  # two rewards of 0 or 1 each
    assert "eval_loss" in m and m["rejected"] == 2 and 0 < 64 - m["prompts"] <= 10, m
    reasons = [r["reason"] for r in read_jsonl(result.output / "rejects.jsonl")]
    assert reasons == ["field 'answer' (answer_field): math_answer: reference answer 'many' is not a number; "
                       "expected a number or a GSM8K solution ending in '#### N'",
                       "field 'question' (prompt_field) must be a string or a list of messages"]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(result.output).config.model_type == "gpt2"
    assert json.loads((result.output / "train.json").read_text())["options"]["rewards"] == ["math_answer",
                                                                                            "format_answer"]


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_an_easy_reward_rises_over_training(method: str, tiny_model: Path, tmp_path: Path):
    """The reward drives learning: the share of digits in the completions (a user's "module:function", beside the
    built-in verifiers) climbs from the random model's ~8% to nearly all within 60 steps (0.99 or more with seeds
    0-3 for both methods; 40 steps were not enough for RLOO with every seed). RLOO subtracts beta × the sequence's
    KL from the raw reward, which at its default 0.05 outweighs a reward this small: beta 0 shows the reward's own
    pull."""
    options = {"rewards": ["math_answer", "format_answer", f"{__name__}:digit_share"]}
    if method == "rloo":
        options["beta"] = 0.0
    result = run(TrainConfig(method=method, model=str(tiny_model), data=[str(GSM8K)], eval_fraction=0,
                             options=options, **settings(tmp_path, max_steps=60)))
    m = result.metrics
    assert m["reward_first"] < 0.3, m
    assert m["reward_last"] > max(0.8, m["reward_first"] + 0.5), m
