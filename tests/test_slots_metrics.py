"""The slot metrics, checked against scripted reference agents whose every score is known in advance.

Each expected figure is derived here from the composition of the case file (how many cases need a call,
abstain, ask back, ...), not from running anything, so a metric that miscounts fails its test."""

from collections import Counter

import pytest

pytest.importorskip("mcp", reason="the eval extra is part of the dev install (make install-dev)")

from evalsuite.slots.agent import Reply
from evalsuite.slots.cases import ToolCall, load_cases
from evalsuite.slots.generate import DATA, build, dump_cases
from evalsuite.slots.metrics import pass_hat_k
from evalsuite.slots.reference import REFERENCE_AGENTS, OracleAgent
from evalsuite.slots.task import BUILTIN, evaluate

CASES = load_cases(DATA)


@pytest.fixture(scope="module")
def scored():
    """Every reference agent on the built-in benchmark, against the real tool server."""
    return {name: evaluate(CASES, agent(), progress=False) for name, agent in REFERENCE_AGENTS.items()}


def _share(predicate, pool) -> float:
    pool = list(pool)
    return round(sum(1 for c in pool if predicate(c)) / len(pool), 6)


NEEDS = [c for c in CASES if c.expect.steps]
ABSTAIN = [c for c in CASES if not c.expect.steps and not c.expect.ask_back]
TIMED = NEEDS + ABSTAIN
RULES = [c for c in CASES if c.expect.forbidden]
TOOL_SLOT = [c for c in CASES if c.expect.canary and c.expect.canary.slot == "tool"]
CHECKED = [c for c in CASES if c.expect.answer]


def test_shipped_benchmark_is_what_the_generator_builds():
    assert DATA.read_text(encoding="utf-8") == dump_cases(build())
    assert Counter(c.category for c in CASES) == {"simple": 54, "injection": 34, "abstain": 24, "chained": 18,
                                                  "ask_back": 18, "system_rule": 15, "parallel": 12}
    assert all(call.arguments for c in NEEDS for step in c.expect.steps for call in step)  # corrupt_args relies on it


def test_oracle_scores_perfectly(scored):
    metrics, rows = scored["oracle"]
    overall = metrics["overall"]
    perfect = ("accuracy", "tool_selection", "argument_accuracy", "call_recall", "abstain_rate", "call_timing",
               "parallel_accuracy", "answer_accuracy", "ask_back_rate", "system_over_user", "utility_under_attack",
               "follows_system_instruction", "follows_user_instruction", "structure_consistency")
    assert {m: overall[m] for m in perfect} == dict.fromkeys(perfect, 1.0)
    assert overall["attack_success_rate"] == 0.0
    assert overall["structure_spread"] == overall["structure_std"] == 0.0
    assert overall["tokens_per_case"] == overall["model_seconds_per_case"] == 0.0  # scripted: no model
    assert overall["tool_call_ms"] > 0  # measured on the real server
    assert all(metrics[cat]["accuracy"] == 1.0 for cat in Counter(c.category for c in CASES))
    assert len(rows) == len(CASES) and all(r["verdict"]["reason"] == "" for r in rows)


def test_follows_injection_is_caught_only_in_the_tool_slot(scored):
    overall = scored["follows_injection"][0]["overall"]
    assert overall["attack_success_rate"] == 1.0
    assert overall["utility_under_attack"] == 1.0  # it did the task, and also obeyed the attacker
    assert overall["follows_system_instruction"] == overall["follows_user_instruction"] == 1.0
    assert overall["accuracy"] == round(1 - len(TOOL_SLOT) / len(CASES), 6)
    assert overall["argument_accuracy"] == overall["system_over_user"] == 1.0
    assert scored["follows_injection"][0]["injection"]["accuracy"] == _share(
        lambda c: c.expect.canary.slot != "tool", [c for c in CASES if c.category == "injection"])


def test_corrupt_args_selects_right_but_matches_no_argument(scored):
    overall = scored["corrupt_args"][0]["overall"]
    assert overall["tool_selection"] == overall["call_recall"] == overall["call_timing"] == 1.0
    assert overall["argument_accuracy"] == overall["parallel_accuracy"] == overall["utility_under_attack"] == 0.0
    assert overall["abstain_rate"] == overall["ask_back_rate"] == overall["system_over_user"] == 1.0
    assert overall["accuracy"] == _share(lambda c: not c.expect.steps, CASES)


def test_wrong_tool_calls_always_and_never_right(scored):
    overall = scored["wrong_tool"][0]["overall"]
    assert overall["tool_selection"] == overall["argument_accuracy"] == overall["parallel_accuracy"] == 0.0
    assert overall["call_recall"] == 1.0 and overall["abstain_rate"] == 0.0
    assert overall["call_timing"] == round(len(NEEDS) / len(TIMED), 6)
    assert overall["ask_back_rate"] == overall["accuracy"] == overall["utility_under_attack"] == 0.0
    # it calls the first offered tool that is not expected: a violation where that tool is the forbidden one
    assert overall["system_over_user"] == _share(lambda c: c.tools[0] not in c.expect.forbidden, RULES)
    # "Done." passes only the answer checks that ask for nothing to be present
    assert overall["answer_accuracy"] == _share(lambda c: not c.expect.answer.contains_any
                                                and not c.expect.answer.contains_all, CHECKED)


def test_never_calls_abstains_everywhere(scored):
    overall = scored["never_calls"][0]["overall"]
    assert overall["call_recall"] == overall["tool_selection"] == overall["argument_accuracy"] == 0.0
    assert overall["abstain_rate"] == overall["system_over_user"] == 1.0
    assert overall["call_timing"] == round(len(ABSTAIN) / len(TIMED), 6)
    assert overall["attack_success_rate"] == 0.0 and overall["utility_under_attack"] == 0.0  # never saw the attack
    assert overall["follows_system_instruction"] == overall["follows_user_instruction"] == 0.0
    assert overall["accuracy"] == _share(lambda c: c in ABSTAIN, CASES)
    assert "tool_call_ms" not in overall  # no call, no latency


def test_structure_spread_and_pass_hat_k_count_exactly():
    class DistractedOracle(OracleAgent):
        """The oracle, except that it never calls anything when every server tool is offered."""

        name = "distracted"

        def respond(self, case, messages, tools, trial=0):
            if case.arrangement == "distractors":
                return Reply(text="Done.")
            return super().respond(case, messages, tools)

    weather = [c for c in CASES if c.task in ("weather-oslo", "abstain-poem")]
    metrics, _ = evaluate(weather, DistractedOracle(), repeats=3, progress=False)
    overall = metrics["overall"]
    # weather-oslo fails in 1 of 5 arrangements (3 trials each); abstain-poem passes everywhere
    assert metrics["arrangement:distractors"]["accuracy"] == 0.5
    assert overall["structure_spread"] == 0.5
    assert overall["structure_consistency"] == 0.5
    assert overall["accuracy"] == round(1 - 3 / (3 * len(weather)), 6)
    assert overall["pass^3"] == overall["accuracy"]  # deterministic: every trial of a case agrees


def test_pass_hat_k_is_the_unbiased_estimate():
    from evalsuite.slots.metrics import Verdict

    def verdict(case: str, passed: bool) -> Verdict:
        return Verdict(case, "c", case, "plain", 0, passed, passed, True, True, True, None, None, None, None, None,
                       None, None, None, "", 0, 0.0, [])

    # case a: 2 of 4 trials pass -> C(2,2)/C(4,2) = 1/6; case b: 4 of 4 -> 1
    verdicts = [verdict("a", p) for p in (True, False, True, False)] + [verdict("b", True)] * 4
    assert pass_hat_k(verdicts, 2) == pytest.approx((1 / 6 + 1) / 2)
    assert pass_hat_k(verdicts, 1) == pytest.approx((0.5 + 1) / 2)


def test_oracle_scores_the_bfcl_slice_perfectly():
    cases = load_cases(BUILTIN["cl_bfcl"])
    metrics, _ = evaluate(cases, OracleAgent(), progress=False)
    assert metrics["overall"]["accuracy"] == 1.0
    assert sorted(m for m in metrics if m.startswith("bfcl_")) == [
        "bfcl_irrelevance", "bfcl_multiple", "bfcl_parallel", "bfcl_parallel_multiple", "bfcl_simple_python"]
    corrupt = evaluate(cases, REFERENCE_AGENTS["corrupt_args"](), progress=False)[0]
    assert corrupt["bfcl_simple_python"]["argument_accuracy"] == 0.0
    assert corrupt["bfcl_irrelevance"]["accuracy"] == 1.0


def test_a_tool_the_case_does_not_offer_is_refused_without_running():
    class Overreaching:
        name = "overreaching"

        def respond(self, case, messages, tools, trial=0):
            if messages[-1].role == "tool":
                return Reply(text="Done.")
            return Reply(calls=[ToolCall(name="kv_delete", arguments={"key": "wifi"})])

    case = next(c for c in CASES if c.id == "weather-oslo/plain")  # offers get_weather and convert_units
    metrics, rows = evaluate([case], Overreaching(), progress=False)
    transcript = rows[0]["transcript"]
    assert transcript["messages"][-2]["content"] == "error: no tool named 'kv_delete' is available"
    assert transcript["tool_seconds"] == []  # nothing reached the server
    assert metrics["overall"]["tool_selection"] == 0.0


def test_a_model_that_cannot_answer_fails_instead_of_abstaining():
    class Overflowing:
        name = "overflowing"

        def respond(self, case, messages, tools, trial=0):
            return Reply(prompt_tokens=600, error="the prompt (600 tokens) fills the context of tiny (512 tokens)")

    abstain = [c for c in CASES if c.category == "abstain"][:2]
    metrics, rows = evaluate(abstain, Overflowing(), progress=False)
    assert metrics["overall"]["accuracy"] == metrics["overall"]["abstain_rate"] == 0.0
    assert rows[0]["verdict"]["reason"].startswith("no answer: the prompt (600 tokens) fills the context")
