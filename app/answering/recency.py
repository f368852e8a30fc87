""" "Where did I put my keys?" means the last time: the latest confident moment first.

A library spans days, and the keys were put down on several of them; ranked by score alone, the best-looking
put-down of three weeks ago wins. The rule here:

* **which questions**: those that say ``last``/``latest`` or ``first`` (``Rewrite.order``), and -- implicitly
  ``last`` -- questions asking where an object is (``where did I put / leave X``, ``where is X``) when their
  confident moments come from more than one video;
* **candidates**: the ranked windows and the best moment of every video scored (the latest put-down may be
  in a video none of whose windows made the top) -- of at most :data:`RECENCY_VIDEOS` videos, the library
  search's best (:func:`app.answering.search.find_moments`);
* **confident**: with a calibration, the candidates over its good-match threshold; without one, those whose
  score is within a quarter of the way from the best candidate's to the median of every window scored
  (:data:`RECENCY_MARGIN`): those that stand out together with the best;
* **order**: the latest (``first``: the earliest) confident *episode* by wall-clock time goes first, led by its
  best-scoring moment -- an episode being the confident moments of one recording within :data:`EPISODE_S` of
  its first (the pick and the put-down of the same keys, seconds apart, look alike; the earliest of them was the
  pick for nearly every "where did I first put X" of bench_days' tuning weeks). When the question said the
  order, the other confident moments follow in that order; otherwise they keep their score order. The rest
  follow by score. The answer says it did (``Answer.ordered``).

Moments without a recording time (never in a library of this version) keep their place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from app.answering.corrections import WHERE_TEMPLATES
from models.questions import Rewrite
from models.windows import Window

RECENCY_MARGIN = 0.25
"""Without a calibration: a moment within this share of (best - median) of the candidates' scores from the best
is as confident as the best."""
EPISODE_S = 30.0
"""Confident moments of one recording this close form one episode: time orders episodes, and inside one the
best-scoring moment leads (picking the keys up and putting them down seconds later look alike)."""
RECENCY_CANDIDATES = 10
"""Windows looked at to find the latest confident one (more than the five shown: the latest may rank sixth)."""
RECENCY_VIDEOS = 4
"""At most this many videos -- those the library search ranks best -- are answered for a question that wants the
latest (or earliest) moment: the more videos, the more later ones where the object is merely in view, and the
latest confident moment comes from one of them. Chosen on three tuning weeks of ``bench/bench_days.py`` (31
"where did I put X" questions, rank 1 in the right video, ReLER corpus checkpoint): 1 / 2 / 3 / 4 / 6 / 8 / 12
videos gave zero-shot 29 / 42 / 55 / 58 / 48 / 48 / 48 % and `auto` 29 / 42 / 58 / 58 / 45 / 45 / 39 %
(zero-shot answered 8 until then; trained modes already 4). "First time" questions were not measured."""


def wanted_order(rewrite: Rewrite) -> tuple[str | None, bool]:
    """(``last``/``first``/None, whether the question said it)."""
    if rewrite.order:
        return rewrite.order, True
    if rewrite.template in WHERE_TEMPLATES and rewrite.relation is None:
        return "last", False
    return None, False


def candidates(
    ranked: Sequence[tuple[str, Window]], per_video: Mapping[str, Sequence[Window]]
) -> list[tuple[str, Window]]:
    """The ranked windows, then every scored video's best moment not among them."""
    bests = [(vid, ws[0]) for vid, ws in per_video.items() if ws]
    return list(ranked) + [c for c in bests if c not in ranked]


def confident(
    pool: Sequence[tuple[str, Window]],
    per_video: Mapping[str, Sequence[Window]],
    confidence: Callable[[str, Window], float | None],
    calibration,
) -> list[int]:
    """Indices of the confident moments of ``pool``, by the rule of the module docstring."""
    if calibration is not None:
        return [i for i, (v, w) in enumerate(pool) if (confidence(v, w) or 0.0) >= calibration.threshold]
    top = max(w.score for _, w in pool)
    scored = [w.score for ws in per_video.values() for w in ws] or [w.score for _, w in pool]
    typical = float(np.median(scored))
    bar = top - RECENCY_MARGIN * (top - typical)
    return [i for i, (_, w) in enumerate(pool) if w.score >= bar]


def order_by_time(
    ranked: Sequence[tuple[str, Window]],
    per_video: Mapping[str, Sequence[Window]],
    records: dict,
    rewrite: Rewrite,
    confidence: Callable[[str, Window], float | None],
    calibration,
    k: int,
) -> tuple[list[tuple[str, Window]], str | None]:
    """The ranking with the latest (earliest) confident moment first, as the module docstring says; at most
    ``k``. ``per_video``: each scored video's windows, best first -- a video's best moment is a candidate even
    when other videos fill the top of the ranking. Returns the ranking and the order applied (None when the
    score order stands)."""
    ranked = list(ranked)
    order, said = wanted_order(rewrite)
    if order is None or len(ranked) < 2:
        return ranked[:k], None
    pool = candidates(ranked, per_video)
    sure = confident(pool, per_video, confidence, calibration)
    timed = [i for i in sure if records[pool[i][0]].recorded_at is not None]
    if not timed or (not said and len({pool[i][0] for i in timed}) < 2):
        return ranked[:k], None

    def at(i: int) -> float:
        vid, w = pool[i]
        return records[vid].moment_time(w.start)

    episodes = _episodes(sorted(timed, key=at), pool, at)
    if order == "last":
        episodes.reverse()
    chosen = [i for episode in episodes for i in sorted(episode, key=lambda i: -pool[i][1].score)]
    head = [pool[i] for i in (chosen if said else chosen[:1])]
    return (head + [c for c in ranked if c not in head])[:k], order


def _episodes(by_time: list[int], pool: Sequence[tuple[str, Window]], at: Callable[[int], float]) -> list[list[int]]:
    """Confident moments (indices into ``pool``, in time order) grouped into episodes: those of one recording
    within :data:`EPISODE_S` of the episode's first moment."""
    episodes: list[list[int]] = []
    for i in by_time:
        if episodes and pool[episodes[-1][0]][0] == pool[i][0] and at(i) - at(episodes[-1][0]) <= EPISODE_S:
            episodes[-1].append(i)
        else:
            episodes.append([i])
    return episodes
