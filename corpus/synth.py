"""Planted near-duplicates, for measuring dedup recall on your own text: copies of documents with a given
fraction of their words (or, for scripts without spaces, characters) replaced."""

from __future__ import annotations

import random

from corpus.minhash import NO_SPACE_LANGUAGES


def mutate(text: str, rate: float, lang: str, seed: int) -> str:
    """`text` with about `rate` of its words (characters for CJK and Thai) replaced by others drawn from
    the same text, deterministically for a seed."""
    rng = random.Random(seed)
    if lang in NO_SPACE_LANGUAGES:
        units = list(text)
        positions = [i for i, ch in enumerate(units) if not ch.isspace()]
        pool = [units[i] for i in positions] or ["x"]
        joiner = ""
    else:
        units = text.split(" ")
        positions = list(range(len(units)))
        pool = units or ["x"]
        joiner = " "
    for i in rng.sample(positions, k=max(1, round(rate * len(positions)))) if positions else []:
        choice = rng.choice(pool)
        units[i] = choice if choice != units[i] else choice + ("的" if joiner == "" else "s")
    return joiner.join(units)


def plant(records: list[dict], rate: float, lang: str, seed: int = 0, prefix: str = "near-") -> list[dict]:
    """One mutated copy of each record, with id `<prefix><id>` and `planted_from` naming the original."""
    return [
        {"id": prefix + str(r["id"]), "text": mutate(r["text"], rate, lang, seed + i), "planted_from": r["id"]}
        for i, r in enumerate(records)
    ]
