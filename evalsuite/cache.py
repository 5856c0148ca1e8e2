"""A result cache for lm-eval requests that knows which model answered them.

Why not lm-eval's `use_cache`: its key is the request alone (the prompt and continuation), so a cache reused
after the weights change returns the old checkpoint's answers; and it stores values with pickle, unsafe to
share. Here every entry is keyed by the model's weights fingerprint, its chat template and the request
(the request text carries everything the task config decides: prompt format, few-shot examples, choices,
stop sequences), and values are JSON in SQLite.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from lm_eval.api.model import LM

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def cache_namespace(model_fingerprint: str, chat_template: str | None, apply_chat_template: bool) -> str:
    """The part of every key that names the model as it is prompted."""
    return hashlib.sha256(json.dumps([model_fingerprint, chat_template or "", apply_chat_template]).encode()).hexdigest()


class CachedLM(LM):
    """An lm-eval model whose answers are looked up in, and added to, an SQLite cache file."""

    def __init__(self, lm: LM, path: str | Path, namespace: str):
        super().__init__()
        self.lm, self.namespace = lm, namespace
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.hits = self.misses = 0

    def __getattr__(self, name):  # everything else (tokenizer, batch size, max length, ...) is the model's
        if name == "lm":
            raise AttributeError(name)
        return getattr(self.lm, name)

    @property
    def rank(self) -> int:
        return self.lm.rank

    @property
    def world_size(self) -> int:
        return self.lm.world_size

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.lm.chat_template(chat_template)

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return self.lm.apply_chat_template(chat_history, add_generation_prompt)

    def _key(self, kind: str, args) -> str:
        return hashlib.sha256(json.dumps([self.namespace, kind, list(args)], default=str).encode()).hexdigest()

    def _answer(self, kind: str, requests: list) -> list:
        keys = [self._key(kind, r.args) for r in requests]
        found: dict[str, object] = {}
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[i:i + 500]
            rows = self.db.execute(f"SELECT key, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
            found.update((k, json.loads(v)) for k, v in rows)
        sampled = kind == "generate_until"  # sampled generations are drawn afresh, never cached
        todo = [i for i, (k, r) in enumerate(zip(keys, requests))
                if k not in found or (sampled and r.args[1].get("do_sample", False))]
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        fresh = getattr(self.lm, kind)([requests[i] for i in todo]) if todo else []
        with self.db:
            for i, value in zip(todo, fresh):
                value = list(value) if isinstance(value, tuple) else value
                found[keys[i]] = value
                if not (sampled and requests[i].args[1].get("do_sample", False)):
                    self.db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (keys[i], json.dumps(value)))
        answers = [found[k] for k in keys]
        for i, value in zip(todo, fresh):
            answers[i] = value
        return [tuple(a) if kind == "loglikelihood" else a for a in answers]

    def loglikelihood(self, requests):
        return self._answer("loglikelihood", requests)

    def loglikelihood_rolling(self, requests):
        return self._answer("loglikelihood_rolling", requests)

    def generate_until(self, requests):
        return self._answer("generate_until", requests)

    def close(self) -> None:
        self.db.close()
