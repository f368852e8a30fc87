""" "Where did I put my keys?" means the last time: the latest confident moment first.

A library spans days, and the keys were put down on several of them; ranked by score alone, the best-looking
put-down of three weeks ago wins. The rule here:

* **which questions**: those that say ``last``/``latest`` or ``first`` (``Rewrite.order``), and -- implicitly
  ``last`` -- questions asking where an object is (``where did I put / leave X``, ``where is X``) when their
  confident moments come from more than one video;
* **confident**: with a calibration, the moments over its good-match threshold; without one, those whose score
  is within a quarter of the way from the best candidate's to the median candidate's (:data:`RECENCY_MARGIN`):
  those that stand out of the candidates together with the best;
* **order**: the latest (``first``: the earliest) confident moment by wall-clock time goes first. When the
  question said the order, the other confident moments follow in that time order; otherwise they keep their
  score order. The rest follow by score. The answer says it did (``Answer.ordered``).

Moments without a recording time (never in a library of this version) keep their place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from app.answering.corrections import WHERE_TEMPLATES
from models.questions import Rewrite
from models.windows import Window

RECENCY_MARGIN = 0.25
"""Without a calibration: a moment within this share of (best - median) of the candidates' scores from the best
is as confident as the best."""
RECENCY_CANDIDATES = 10
"""Windows looked at to find the latest confident one (more than the five shown: the latest may rank sixth)."""


def wanted_order(rewrite: Rewrite) -> tuple[str | None, bool]:
    """(``last``/``first``/None, whether the question said it)."""
    if rewrite.order:
        return rewrite.order, True
    if rewrite.template in WHERE_TEMPLATES and rewrite.relation is None:
        return "last", False
    return None, False


def order_by_time(
    ranked: Sequence[tuple[str, Window]],
    records: dict,
    rewrite: Rewrite,
    confidence: Callable[[str, Window], float | None],
    calibration,
    k: int,
) -> tuple[list[tuple[str, Window]], str | None]:
    """The ranking with the latest (earliest) confident moment first, as the module docstring says; at most
    ``k``. Returns it and the order applied (None when the score order stands)."""
    ranked = list(ranked)
    order, said = wanted_order(rewrite)
    if order is None or len(ranked) < 2:
        return ranked[:k], None
    if calibration is not None:
        sure = [i for i, (v, w) in enumerate(ranked) if (confidence(v, w) or 0.0) >= calibration.threshold]
    else:
        scores = [w.score for _, w in ranked]
        best = max(scores)
        bar = best - RECENCY_MARGIN * (best - float(np.median(scores)))
        sure = [i for i, s in enumerate(scores) if s >= bar]
    timed = [i for i in sure if records[ranked[i][0]].recorded_at is not None]
    if not timed or (not said and len({ranked[i][0] for i in timed}) < 2):
        return ranked[:k], None

    def at(i: int) -> float:
        vid, w = ranked[i]
        return records[vid].moment_time(w.start)

    latest_first = order == "last"
    chosen = sorted(timed, key=at, reverse=latest_first)
    head = chosen if said else chosen[:1]
    rest = [i for i in range(len(ranked)) if i not in head]
    return [ranked[i] for i in head + rest][:k], order
