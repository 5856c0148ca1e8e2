"""Verifier reward functions for online RL (`grpo`, `rloo`), and the registry that names them.

A reward function has TRL's signature, `fn(prompts, completions, **kwargs) -> list[float]`: one reward per
completion; every other dataset column arrives as a keyword argument holding one value per completion (the
backends put the reference answer in `answer`). Completions are strings, or, for conversational prompts, lists of
messages (`[{"role": "assistant", "content": ...}]`); `completion_text` reads both.

Built in: `math_answer` (the last number of the completion equals the reference answer; GSM8K's `... #### 72`
reference works as is) and `format_answer` (the completion ends with an explicit final-answer line, `#### 72` or
`The answer is 72`). Anything else is named `"module:function"` and imported: `resolve("my_rewards:length")`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from train.backend import TrainError

RewardFunc = Callable[..., list[float]]

# a number as people write it: thousands separators (only in groups of three), decimals, a sign
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
# the last line of the completion states the answer: "#### 72", "The answer is $1,000.", "Final answer: 3.5"
FINAL_LINE = re.compile(r"^\s*(?:####|(?:so,?\s+)?(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:?)\s*\$?\s*"
                        r"(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*\**\.?\s*$", re.IGNORECASE)


class RewardError(TrainError):
    """A reward that cannot be found or imported, or data a verifier cannot check (a reference with no number)."""


def completion_text(completion) -> str:
    """The text of a completion: a string as is; a list of messages (or one message) as its assistant content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list):
        turns = [m for m in completion if isinstance(m, dict)]
        replies = [m for m in turns if m.get("role", "assistant") == "assistant"] or turns
        return "\n".join(_content_text(m.get("content")) for m in replies)
    raise RewardError(f"a completion must be a string or a list of messages, not {type(completion).__name__}")


def _content_text(content) -> str:
    if isinstance(content, list):  # multimodal-style content parts: [{"type": "text", "text": ...}]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def to_number(text: str) -> Decimal | None:
    """A written number as a Decimal ("1,000" and "1000.0" are both 1000); None when it is not one."""
    try:
        return Decimal(text.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        return None


def last_number(text: str) -> Decimal | None:
    """The last number written in `text`, or None."""
    found = NUMBER.findall(text)
    return to_number(found[-1]) if found else None


def reference_number(answer) -> Decimal:
    """The reference answer as a number: a number, a numeric string, or GSM8K's worked solution ending in
    `#### N`. Anything else is a RewardError naming the value."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return Decimal(str(answer))
    if isinstance(answer, str):
        value = to_number(answer.rsplit("####", 1)[-1]) if "####" in answer else to_number(answer)
        if value is not None and value.is_finite():
            return value
    shown = answer if not isinstance(answer, str) or len(answer) < 80 else answer[:77] + "..."
    raise RewardError(f"math_answer: reference answer {shown!r} is not a number; expected a number or a GSM8K "
                      "solution ending in '#### N'")


def math_answer(prompts, completions, answer=None, **kwargs) -> list[float]:
    """1.0 when the completion's last number equals the reference (`answer` column), else 0.0."""
    if answer is None:
        raise RewardError("math_answer needs the reference answers: a dataset column 'answer'")
    return [1.0 if (got := last_number(completion_text(c))) is not None and got == reference_number(ref) else 0.0
            for c, ref in zip(completions, answer)]


def format_answer(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion's last non-empty line states the answer (`#### N`, `The answer is N`,
    `Answer: N`), else 0.0."""
    out = []
    for c in completions:
        lines = [line for line in completion_text(c).splitlines() if line.strip()]
        out.append(1.0 if lines and FINAL_LINE.match(lines[-1]) else 0.0)
    return out


BUILTIN: dict[str, RewardFunc] = {"math_answer": math_answer, "format_answer": format_answer}


def resolve(name: str) -> RewardFunc:
    """The reward function `name` names: a built-in one, or `"module:function"` imported."""
    if name in BUILTIN:
        return BUILTIN[name]
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise RewardError(f"unknown reward {name!r}: built-in ones are {', '.join(sorted(BUILTIN))}; name your "
                          "own as 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an import that fails for any reason must name the reward (re-raised with the cause)
        raise RewardError(f"reward {name!r}: cannot import module {module_name!r} ({type(e).__name__}: {e}); it "
                          "must be importable by the training process (installed, or on PYTHONPATH)") from e
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise RewardError(f"reward {name!r}: module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise RewardError(f"reward {name!r} is not callable (it is a {type(fn).__name__}); it must be a function "
                          "(prompts, completions, **kwargs) -> list[float]")
    return fn


def resolve_all(names: list[str]) -> list[RewardFunc]:
    """`resolve` for each name, in order."""
    return [resolve(n) for n in names]
