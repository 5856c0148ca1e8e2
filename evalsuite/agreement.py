"""Agreement between raters (people or judge models): Krippendorff's alpha and percent agreement.

Ratings are a units x raters matrix (one row per rated item, one column per rater) with `None` (or NaN)
where a rater did not rate a unit. Alpha follows Krippendorff, "Computing Krippendorff's Alpha-Reliability"
(2011): a coincidence matrix over pairable values, and a difference function per level of measurement.
Written here because the `krippendorff` package is not a dependency, and the computation is a few dozen lines.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import permutations

LEVELS = ("nominal", "ordinal", "interval")

Ratings = Sequence[Sequence[Hashable | None]]


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _pairable(ratings: Ratings) -> list[list]:
    """Each unit's values, for units that at least two raters rated (the others carry no agreement)."""
    units = [[v for v in row if _present(v)] for row in ratings]
    return [u for u in units if len(u) >= 2]


def krippendorff_alpha(ratings: Ratings, level: str = "nominal") -> float:
    """Krippendorff's alpha of a units x raters matrix (None or NaN for missing ratings).

    `level` is `nominal` (any two different values disagree equally), `ordinal` (ranks: values in between
    add to the difference) or `interval` (squared numeric difference). 1 is perfect agreement, 0 what chance
    gives; NaN when fewer than two values are pairable or all pairable values are the same.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    coincidence: Counter = Counter()  # o_ck: pairs of values within units, each unit weighted 1/(m_u - 1)
    for unit in _pairable(ratings):
        for c, k in permutations(unit, 2):
            coincidence[(c, k)] += 1 / (len(unit) - 1)
    totals: Counter = Counter()  # n_c
    for (c, _), o in coincidence.items():
        totals[c] += o
    n = sum(totals.values())
    values = sorted(totals)
    if n < 2 or len(values) < 2:
        return math.nan

    def delta(c, k) -> float:
        if level == "nominal":
            return 0.0 if c == k else 1.0
        if level == "interval":
            return (float(c) - float(k)) ** 2
        lo, hi = sorted((values.index(c), values.index(k)))
        return (sum(totals[g] for g in values[lo:hi + 1]) - (totals[c] + totals[k]) / 2) ** 2

    observed = sum(o * delta(c, k) for (c, k), o in coincidence.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in values for k in values) / (n - 1)
    return 1.0 - observed / expected


def percent_agreement(ratings: Ratings) -> float:
    """Share of agreeing rater pairs within units, over all pairable units (NaN when none)."""
    agree = pairs = 0
    for unit in _pairable(ratings):
        for i in range(len(unit)):
            for j in range(i + 1, len(unit)):
                pairs += 1
                agree += unit[i] == unit[j]
    return agree / pairs if pairs else math.nan
