"""Ranked flat feeds: an order by recency and engagement that never changes once written.

A group with ``ranking = "weighted"`` orders its entries by

    score = t / H + log2(1 + sum(weight[f] * extra[f]))

where ``t`` is the activity's time in seconds, ``H`` the group's half-life in seconds and
``extra[f]`` the numeric ``extra`` fields named in ``weights`` (missing, negative or
non-numeric values count as 0). It is the log of an engagement that halves in value every
half-life: doubling ``1 + engagement`` is worth exactly one half-life of recency. The
decay is relative to a fixed origin rather than to "now", so a score never changes after
it is written: that keeps the order, and so every cursor, stable while people page
(ranking against "now" would give the same order at any one moment, but a page would
have to be re-ranked on every read). Activities are immutable, so ``extra`` cannot
change under a score either.

Ties (equal scores) fall back to the id, newest first, as in recency feeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

RANKINGS = ("recency", "weighted")


def rank_score(time: datetime, extra: Mapping[str, Any], half_life_hours: float,
               weights: Sequence[tuple[str, float]]) -> float:
    engagement = 0.0
    for name, weight in weights:
        v = extra.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            engagement += weight * float(v)
    return time.timestamp() / (half_life_hours * 3600.0) + math.log2(1.0 + engagement)


def page_after(entries: Sequence[tuple[float, str]], cursor: tuple[float, str] | None, limit: int) -> list[str]:
    """The ids of a page: ``entries`` (score, id) in feed order, after ``cursor``.

    Feed order is score descending, then id descending. Used where Python merges pulled
    activities into a ranked page; Redis applies the same rule to the cached part.
    """
    ordered = sorted(entries, key=lambda e: (e[0], e[1]), reverse=True)
    if cursor is not None:
        ordered = [e for e in ordered if (e[0], e[1]) < cursor]
    return [i for _, i in ordered[:limit]]
