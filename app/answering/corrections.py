"""Corrections that act at once: a user's verdicts on moments change the next answer, before any retraining.

A moment marked *wrong* for a question never comes back for it or for a close paraphrase; a moment marked
*right*, or *adjusted* to its true start and end, comes first for them. Fine-tuning a checkpoint on the
corrections (``training.feedback``) is the slow path that generalises to other questions; this one is exact
for the questions the user already asked.

Which questions are close. Two questions match when they read the same once normalised, or when both ask
*where* an object is (``where did I put my keys``, ``where are my keys``, ``where did I leave the keys``: the
same object, a where-template) -- a wrong place for the keys is wrong for all of them -- or, for other
templates, when the grammar reads the same template, object and action.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from models.questions import EmptyQuestion, Rewrite, rewrite_question
from models.windows import Window, temporal_iou

WHERE_TEMPLATES = frozenset(
    "where_verb where_is where_is_relative where_end_up looking_for location_of seen_location found".split()
)
"""Rules whose questions ask where an object is (``found``: a question no rule read, which names an object)."""
WRONG_IOU = 0.3
"""A window overlapping a wrong moment by more than this is that moment again, and is not shown."""


@lru_cache(maxsize=1024)
def _reading(question: str) -> Rewrite | None:
    try:
        return rewrite_question(question)
    except EmptyQuestion:
        return None


def same_question(a: str, b: str) -> bool:
    """Whether a correction given for question ``b`` applies to question ``a`` (see the module docstring)."""
    ra, rb = _reading(a), _reading(b)
    if ra is None or rb is None:
        return False
    if ra.normalized == rb.normalized:
        return True
    if ra.object is None or ra.object != rb.object or ra.relation or rb.relation:
        return False
    if ra.template in WHERE_TEMPLATES and rb.template in WHERE_TEMPLATES:
        return True
    return (ra.template, ra.action) == (rb.template, rb.action)


def is_wrong_again(video_id: str, window: Window, wrong: Sequence) -> bool:
    """Whether ``window`` of ``video_id`` is one of the ``wrong`` corrections' moments again."""
    return any(
        c.video_id == video_id and temporal_iou((window.start, window.end), (c.start, c.end)) > WRONG_IOU for c in wrong
    )


def apply_corrections(
    question: str,
    ranked: Sequence[tuple[str, Window]],
    corrections: Sequence,
    k: int,
    video_id: str | None = None,
) -> tuple[list[tuple[str, Window]], dict[tuple[str, float, float], str]]:
    """The ranking with the user's verdicts applied: confirmed and adjusted moments first (newest first), then
    the model's windows that are neither one of them nor a wrong moment again; at most ``k``. Returns the
    ranking and, for the moments that came from a correction, their verdict."""
    mine = [
        c for c in corrections if (video_id is None or c.video_id == video_id) and same_question(question, c.question)
    ]
    if not mine:
        return list(ranked)[:k], {}
    wrong = [c for c in mine if c.verdict == "wrong"]
    good = sorted((c for c in mine if c.verdict in ("right", "adjusted")), key=lambda c: -c.created)
    top = max((w.score for _, w in ranked), default=1.0)
    out: list[tuple[str, Window]] = []
    verdicts: dict[tuple[str, float, float], str] = {}

    def clashes(vid: str, span: tuple[float, float], against) -> bool:
        return any(v == vid and temporal_iou(span, other) > WRONG_IOU for v, other in against)

    for c in good:
        span = (c.start, c.end)
        if clashes(c.video_id, span, [(v, (w.start, w.end)) for v, w in out]):
            continue
        out.append((c.video_id, Window(c.start, c.end, top)))
        verdicts[(c.video_id, c.start, c.end)] = c.verdict
    for vid, w in ranked:
        if is_wrong_again(vid, w, wrong) or clashes(vid, (w.start, w.end), [(v, (x.start, x.end)) for v, x in out]):
            continue
        out.append((vid, w))
    return out[:k], verdicts
