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


def _repeats(video_id: str, window: Window, taken: Sequence[tuple[str, float, float]]) -> bool:
    """Whether ``window`` of ``video_id`` is one of the ``taken`` moments again (IoU over :data:`WRONG_IOU`)."""
    return any(v == video_id and temporal_iou((window.start, window.end), (s, e)) > WRONG_IOU for v, s, e in taken)


def is_wrong_again(video_id: str, window: Window, wrong: Sequence) -> bool:
    """Whether ``window`` of ``video_id`` is one of the ``wrong`` corrections' moments again."""
    return _repeats(video_id, window, [(c.video_id, c.start, c.end) for c in wrong])


def apply_corrections(
    ranked: Sequence[tuple[str, Window]], corrections: Sequence, k: int
) -> tuple[list[tuple[str, Window]], dict[tuple[str, float, float], str]]:
    """The ranking with the user's verdicts on this question (``corrections``, already matched by
    :func:`same_question` and scope) applied: confirmed and adjusted moments first (newest first), then the
    model's windows that are neither one of them nor a wrong moment again; at most ``k``. Returns the ranking
    and, for the moments that came from a correction, their verdict."""
    if not corrections:
        return list(ranked)[:k], {}
    wrong = [(c.video_id, c.start, c.end) for c in corrections if c.verdict == "wrong"]
    good = sorted((c for c in corrections if c.verdict in ("right", "adjusted")), key=lambda c: -c.created)
    top = max((w.score for _, w in ranked), default=1.0)
    out: list[tuple[str, Window]] = []
    verdicts: dict[tuple[str, float, float], str] = {}
    for c in good:
        window = Window(c.start, c.end, top)
        if not _repeats(c.video_id, window, [(v, w.start, w.end) for v, w in out]):
            out.append((c.video_id, window))
            verdicts[(c.video_id, c.start, c.end)] = c.verdict
    for v, w in ranked:
        if not _repeats(v, w, wrong) and not _repeats(v, w, [(u, x.start, x.end) for u, x in out]):
            out.append((v, w))
    return out[:k], verdicts
