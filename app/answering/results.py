"""What ``ask`` returns: ranked :class:`Moment` records with their clips, and each scored video's curve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONFIDENCE_WORDS = ("likely", "possible", "unsure", "probably not in these videos")
"""What a calibrated confidence is called, most sure first (:func:`confidence_words`)."""


def confidence_words(confidence: float | None, threshold: float | None) -> str | None:
    """A calibrated confidence as a person reads it (None without a calibration).

    *likely* needs the moment to be more likely right than wrong (50 % on) as well as over the good-match line;
    over the line but under 50 % it is *possible* -- with small models the line sits near 15-20 %, and "19 %
    likely" would read as a contradiction; under the line, *unsure* down to half of it, then *probably not in
    these videos*."""
    if confidence is None or threshold is None:
        return None
    if confidence >= threshold:
        return CONFIDENCE_WORDS[0] if confidence >= 0.5 else CONFIDENCE_WORDS[1]
    return CONFIDENCE_WORDS[2] if confidence >= 0.5 * threshold else CONFIDENCE_WORDS[3]


def percent(value: float, line: float | None = None) -> str:
    """``value`` as a percentage for people: whole percent, or one decimal where whole percent would show it
    equal to ``line`` (the good-match threshold) while it is on the other side of it -- so a moment under the
    line never reads "19 %" beside "a good match needs 19 %"."""
    whole = f"{100 * value:.0f}"
    if line is not None and value != line and whole == f"{100 * line:.0f}":
        return f"{100 * value:.1f} %"
    return f"{whole} %"


def confidence_text(confidence: float | None, threshold: float | None) -> str:
    """A moment's confidence as the Ask tab and ``ask`` show it ("62 % · likely"); "" without a calibration."""
    words = confidence_words(confidence, threshold)
    if words is None or confidence is None:
        return ""
    return f"{percent(confidence, threshold)} · {words}"


ORDER_NOTES = {
    "last": "the latest confident moment comes first",
    "first": "the earliest confident moment comes first",
    "before": "moments before that event come first (it was looked for in every video searched)",
    "after": "moments after that event come first (it was looked for in every video searched)",
}
"""How each order of :attr:`Answer.ordered` is told to the user."""


@dataclass(frozen=True)
class Moment:
    """One answer: a time range of one library video, with its playable clip and thumbnail when made."""

    video_id: str
    video_name: str
    start: float
    """Seconds from the video's start; 0 <= start < end <= the video's duration."""
    end: float
    score: float
    """Higher is better; comparable between the moments of one answer (cosine for zero-shot, the model's
    mean highlight probability for checkpoints)."""
    rank: int
    """1 = best."""
    clip: Path | None = None
    """H.264/MP4 of the moment, padded by ``ExcerptConfig.pad_s`` each side (None without clips)."""
    thumbnail: Path | None = None
    """JPEG of the frame at the middle of the window."""
    clip_start: float | None = None
    """Where the clip starts in the video (it is padded): play it from ``start - clip_start`` to highlight
    the window itself."""
    clip_error: str | None = None
    """Why the clip could not be made (the moment itself stands)."""
    confidence: float | None = None
    """Calibrated probability that this moment is right (None when the mode has no calibration)."""
    presence: float | None = None
    """How surely the question's object is on screen somewhere in this moment's video (scored part), when
    the mode measures it: what the confidence weighs beside the score."""
    corrected: str | None = None
    """``right`` or ``adjusted`` when this moment is the user's own correction for this question (or a close
    paraphrase), put first: see :mod:`app.answering.corrections`."""
    recorded_at: float | None = None
    """Wall-clock (unix) time of the moment's start, from its video's recording time."""
    recorded_tz: int | None = None
    """The UTC offset (minutes) its video was recorded in, when known: the time is shown in that clock."""

    @property
    def when(self) -> str | None:
        """ "Tue 3 Dec, 08:14" """
        from indexing.recording_time import short_time

        return None if self.recorded_at is None else short_time(self.recorded_at, self.recorded_tz)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "video_id": self.video_id,
            "video_name": self.video_name,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": float(self.score),
            "clip": str(self.clip) if self.clip else None,
            "thumbnail": str(self.thumbnail) if self.thumbnail else None,
            "clip_start": None if self.clip_start is None else round(self.clip_start, 3),
            "clip_error": self.clip_error,
            "confidence": None if self.confidence is None else round(float(self.confidence), 4),
            "presence": None if self.presence is None else round(float(self.presence), 4),
            "corrected": self.corrected,
            "recorded_at": None if self.recorded_at is None else round(self.recorded_at, 3),
            "when": self.when,
        }


@dataclass(frozen=True)
class ScoreSeries:
    """The score over time of one scored video, for plotting: ``scores[i]`` at ``times[i]`` (bin centres).

    For a long video answered only in regions, the regions follow each other separated by a NaN score.
    """

    video_id: str
    video_name: str
    duration: float
    times: np.ndarray
    scores: np.ndarray
    windows: tuple[tuple[float, float, int], ...]
    """(start, end, rank) of this answer's moments in this video."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "video_name": self.video_name,
            "duration": self.duration,
            "times": [round(float(t), 3) for t in self.times],
            "scores": [None if not np.isfinite(s) else round(float(s), 5) for s in self.scores],
            "windows": [{"start": s, "end": e, "rank": r} for s, e, r in self.windows],
        }


@dataclass(frozen=True)
class Answer:
    question: str
    mode: str
    """The mode that answered: ``zeroshot``, a checkpoint's name or ``fused:NAME`` (never ``auto``)."""
    moments: list[Moment]
    """Best first (rank 1, 2, ...); at most ``k``."""
    series: list[ScoreSeries]
    """One per video that was scored, the video of the best moment first."""
    video_id: str | None = None
    """The scope: one video, or None for the whole library."""
    prompts: tuple[tuple[str, float], ...] = ()
    """What the question was rewritten into for CLIP (text, weight)."""
    candidates: int = 0
    """Videos answered in full (or in regions)."""
    seconds: float = 0.0
    """Time to answer (clips included)."""
    no_good_match: bool = False
    """The best moment's confidence is under the mode's threshold: the moments are candidates, not answers."""
    threshold: float | None = None
    """That threshold (None when the mode has no calibration)."""
    asked_mode: str = ""
    """The mode the user chose (``auto`` resolves to :attr:`mode`)."""
    label: str = ""
    """How it was answered, in words, e.g. ``fused (VSLNet ... + zero-shot ..., weight 0.6)``."""
    warnings: tuple[str, ...] = ()
    """What the user should know about this answer (e.g. a stored calibration that cannot be read)."""
    searching: str | None = None
    """The time searched, as it was understood ("yesterday, Sat 5 Dec"), when the question or a filter named one."""
    ordered: str | None = None
    """``last`` (``first``) when the latest (earliest) confident moment was put first (see
    :mod:`app.answering.recency`); ``before`` (``after``) when moments on that side of the question's anchor
    event, looked for across the videos searched, were (:mod:`app.answering.anchoring`). :attr:`order_note`
    says it in words."""

    @property
    def order_note(self) -> str | None:
        """What was put first and why, for people (None: the score order stands)."""
        return ORDER_NOTES.get(self.ordered) if self.ordered else None

    @property
    def best_confidence(self) -> float | None:
        """The most confident moment's confidence (None without a calibration)."""
        return max((m.confidence for m in self.moments if m.confidence is not None), default=None)

    @property
    def verdict(self) -> str | None:
        """The best moment's confidence in words (:func:`confidence_words`)."""
        return confidence_words(self.best_confidence, self.threshold)

    def moment_dicts(self) -> list[dict[str, Any]]:
        return [
            dict(
                m.to_dict(),
                confidence_words=confidence_words(m.confidence, self.threshold),
                confidence_text=confidence_text(m.confidence, self.threshold),
            )
            for m in self.moments
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "verdict": self.verdict,
            "best_confidence": self.best_confidence,
            "mode": self.mode,
            "asked_mode": self.asked_mode or self.mode,
            "label": self.label,
            "warnings": list(self.warnings),
            "searching": self.searching,
            "ordered": self.ordered,
            "order_note": self.order_note,
            "video_id": self.video_id,
            "moments": self.moment_dicts(),
            "series": [s.to_dict() for s in self.series],
            "prompts": [{"text": t, "weight": w} for t, w in self.prompts],
            "candidates": self.candidates,
            "seconds": round(self.seconds, 3),
            "no_good_match": self.no_good_match,
            "threshold": self.threshold,
        }
