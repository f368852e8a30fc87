"""Every query of an NLQ file answered by one mode: what ``predict`` writes and what the benchmarks score.

Clips are answered one at a time (their features read once, all their questions prepared together), so a file
of thousands of queries over hundreds of clips stays within one clip's memory. A clip without features and an
empty question are recorded, never raised: both count as misses in the NLQ metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.answering.base import Answerer
from models.questions import EmptyQuestion, rewrite_question
from models.windows import Window
from training.features import ClipFeatureSource, FeaturesUnavailable
from training.nlq import NLQDataset, Query


@dataclass
class DatasetAnswers:
    windows: dict[tuple, list[Window]] = field(default_factory=dict)
    """Query key -> its windows, best first (only the queries that were answered)."""
    no_features: dict[str, str] = field(default_factory=dict)
    """clip_uid -> why its features could not be read."""
    empty: int = 0
    """Queries with no usable text."""
    presence: dict[tuple, float] = field(default_factory=dict)
    """Query key -> its object's presence in the clip, where the answerer measured it."""
    clip_score: dict[tuple, float] = field(default_factory=dict)
    """Query key -> CLIP's best window score in the clip, where the answerer measured it."""

    def for_query(self, query: Query) -> list[Window]:
        return self.windows.get(query.key, [])


def answer_dataset(
    answerer: Answerer,
    dataset: NLQDataset,
    source: ClipFeatureSource,
    k: int = 5,
    *,
    queries: list[Query] | None = None,
    progress: Callable[[int], None] | None = None,
    comparable: bool = False,
) -> DatasetAnswers:
    """Top-``k`` windows of ``answerer`` for ``queries`` (default: every query of ``dataset``), clip by clip.

    ``progress(n)`` is called after each clip with the number of its queries. ``comparable``: window scores as
    ``ask`` shows them (what confidence calibration needs) rather than each model's own order.
    """
    out = DatasetAnswers()
    by_clip: dict[str, list[Query]] = {}
    for q in dataset.queries if queries is None else queries:
        by_clip.setdefault(q.clip_uid, []).append(q)
    for clip_uid, clip_queries in by_clip.items():
        try:
            feats = source.get(dataset.clips[clip_uid])
        except FeaturesUnavailable as exc:
            out.no_features[clip_uid] = str(exc)
            if progress:
                progress(len(clip_queries))
            continue
        good = []
        for q in clip_queries:
            try:
                rewrite_question(q.text)
                good.append(q)
            except EmptyQuestion:
                out.empty += 1
        prepared = answerer.prepare([q.text for q in good])
        for q, result in zip(good, answerer.answer(prepared, feats.features, feats.grid, k, comparable=comparable)):
            out.windows[q.key] = list(result.windows)
            if result.presence is not None:
                out.presence[q.key] = result.presence
            if result.clip_score is not None:
                out.clip_score[q.key] = result.clip_score
        if progress:
            progress(len(clip_queries))
    return out
