""" "Where was the mug before I opened the fridge?" over a library: the anchor event found in every video.

Inside one clip the anchor's occurrences are the peaks of its curve there
(:func:`models.zeroshot.anchor_occurrences`). Over a library that is not enough: the mug was last seen in the
recording made before the one in which the fridge opened, and a video where the fridge never opens still has
peaks of its own noise. So a library-wide before/after question (zero-shot or fused: the anchor is a CLIP
vector):

* **finds the anchor in every video searched** -- all videos of the scope when it is small, else the videos
  of the anchor's best frames in the index (the question's own budget) -- measured against one range, the
  widest of their smoothed curves, so only real occurrences stand out; as wall-clock times;
* **orders each candidate's curve by all of them** (:attr:`PreparedQuestion.anchor_at`: clip-relative times,
  most outside the clip): moments with no occurrence on the asked side anywhere are lowered, and -- unlike
  inside one clip -- moments far from one are not (the mug may be seen an hour after the fridge opened, in
  another recording). The answer says it did (``Answer.ordered`` = ``before`` / ``after``).

Measured on the tuning week's 55 before/after questions (bench/README.md, ``bench_days.py``): rank 1 in the
right video 58 -> 75 % (zero-shot) and 62 -> 65 % (auto). Putting the confident moment nearest an occurrence
first, a rule tried on top of this, lost 4-8 points there: a loose "confident" set holds the moments next to
the event in its own video, where the object is often not.

Videos without a recording time take part only through their own peaks (as inside one clip).

The event is looked for only in the videos recorded within :data:`ANCHOR_HORIZON_S` of a candidate
(:func:`near_in_time`): "before I opened the fridge" means the opening nearest the moment, and in a library of
weeks a search of every video for the event is a second scan of the whole index that mostly finds other days'
openings (bench/README.md, ``bench_query``: at 1,000 hours the questions with an event cost twice the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.answering.base import PreparedQuestion
from indexing.library import Library, LibraryView, VideoRecord
from models.zeroshot import ZeroShotConfig, anchor_occurrences, anchor_span, similarity_curve


@dataclass(frozen=True)
class AnchorTimes:
    """When the anchor event of a before/after question happened, across the videos searched."""

    relation: str
    """``before`` or ``after``."""
    at: np.ndarray
    """Wall-clock seconds (UTC epoch), sorted."""

    def relative(self, record: VideoRecord) -> tuple[float, ...] | None:
        """The occurrences in seconds on ``record``'s own clock (None: it has no recording time)."""
        if record.recorded_at is None:
            return None
        return tuple(float(t) for t in self.at - record.recorded_at)


ANCHOR_HORIZON_S = 12 * 3600.0
"""How far from a candidate video an occurrence of the event may lie to order it: half a day either way."""


def near_in_time(
    records: Sequence[VideoRecord], candidates: Sequence[VideoRecord], horizon_s: float = ANCHOR_HORIZON_S
) -> list[VideoRecord]:
    """The videos of ``records`` recorded within ``horizon_s`` of a timed candidate (overlaps count), in their
    order; candidates without a recording time bring only themselves."""
    spans = np.array([(c.recorded_at, c.recorded_at + c.duration) for c in candidates if c.recorded_at is not None])
    chosen = {c.id for c in candidates}
    timed = [r for r in records if r.recorded_at is not None and r.id not in chosen]
    if len(spans) and timed:  # one comparison of every video with every candidate (2,000 x 8 at 1,000 hours)
        start = np.array([r.recorded_at for r in timed])[:, None]
        end = start + np.array([r.duration for r in timed])[:, None]
        near = ((start - horizon_s <= spans[None, :, 1]) & (end + horizon_s >= spans[None, :, 0])).any(axis=1)
        chosen.update(r.id for r, close in zip(timed, near) if close)
    return [r for r in records if r.id in chosen]


def find_anchor_times(
    library: Library,
    prepared: PreparedQuestion,
    records: Sequence[VideoRecord],
    budget: int,
    frame_hits: int,
    config: ZeroShotConfig,
    view: LibraryView | None = None,
) -> AnchorTimes | None:
    """The anchor's occurrences over ``records`` (the question's scope), as the module docstring says; None
    for a question without an anchor or a scope of fewer than two timed videos (one clip's own peaks do).
    ``view``: the catalog as the caller read it (when ``records`` are most of its videos, the index is searched
    whole, which is faster than a search restricted to them)."""
    relation = prepared.rewrite.relation
    timed = [r for r in records if r.recorded_at is not None]
    if prepared.anchor is None or relation is None or len(timed) < 2:
        return None
    if len(timed) > budget:
        by_id = {r.id: r for r in timed}
        seen: dict[str, VideoRecord] = {}
        whole = view is not None and 2 * len(timed) > len(view.ready)
        searched = None if whole else [r.id for r in timed]
        for h in library.search(prepared.anchor, k=frame_hits, video_ids=searched, view=view)[0]:
            if h.video_id in by_id and len(seen) < budget:
                seen.setdefault(h.video_id, by_id[h.video_id])
        timed = list(seen.values())
    maps = library.features_of(timed, view=view)
    curves = [(r, similarity_curve(maps[r.id], prepared.anchor)) for r in timed]
    spans = [anchor_span(c, r.grid, config) for r, c in curves]
    span = (min(lo for lo, _ in spans), max(hi for _, hi in spans))
    found = [anchor_occurrences(c, r.grid, config, span=span) + r.recorded_at for r, c in curves]
    at = np.sort(np.concatenate(found)) if found else np.zeros(0)
    return AnchorTimes(relation, at)
