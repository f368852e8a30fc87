"""What every answering mode shares: the prepared question, one clip's answer, the features' context, and the
:class:`Answerer` interface that everything above answering (library search, ``ask``, ``predict``, the UI)
talks to, so a new mode is one registered class (:mod:`app.answering.registry`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from app.answering.calibration import Calibration, InvalidCalibration
from models.errors import EgoRecallError
from models.grid import TimeGrid
from models.questions import Rewrite, rewrite_question
from models.windows import Window

if TYPE_CHECKING:
    from models.clip_encoder import ClipEncoder, EncoderSpec

logger = logging.getLogger(__name__)

ZEROSHOT = "zeroshot"
CHECKPOINT = "checkpoint"


class UnknownMode(EgoRecallError):
    """The answering mode is neither a registered mode nor a checkpoint."""


class FeatureMismatch(EgoRecallError):
    """The features cannot be read by the chosen mode (e.g. zero-shot with features of another encoder)."""


@dataclass(frozen=True)
class PreparedQuestion:
    """A question made ready once for any number of clips."""

    text: str
    rewrite: Rewrite
    vector: np.ndarray | None = None
    """The CLIP prompt-ensemble vector (float32 [dim], unit): zero-shot scoring and library search."""
    tokens: np.ndarray | None = None
    """Trained modes: the query's token features [T, Dt] (float32) ..."""
    mask: np.ndarray | None = None
    """... and their validity mask [T]."""
    anchor: np.ndarray | None = None
    """Zero-shot: the CLIP vector of the event a before/after question is ordered against (``rewrite.anchor``)."""
    anchor_at: tuple[float, ...] | None = None
    """Seconds on the clip's grid at which that event happened, when it was looked for beyond the clip (a
    library-wide question: :mod:`app.answering.anchoring`; most lie outside the clip). None: the clip's own."""
    presence_column: int | None = None
    """The question's object among the presence scorer's names (:mod:`app.answering.presence`), when it names
    one and its answerer measures presence."""

    @property
    def clip_vector(self) -> np.ndarray:
        """:attr:`vector`, for the parts that cannot go on without it (a question prepared by a trained mode
        alone has none)."""
        if self.vector is None:
            raise ValueError(f"{self.text!r} was prepared without a CLIP vector")
        return self.vector

    @property
    def token_features(self) -> tuple[np.ndarray, np.ndarray]:
        """(:attr:`tokens`, :attr:`mask`), for a trained mode (a question prepared by zero-shot alone has none)."""
        if self.tokens is None or self.mask is None:
            raise ValueError(f"{self.text!r} was prepared without query tokens")
        return self.tokens, self.mask


@dataclass
class ClipAnswer:
    windows: list[Window]
    """Best first, seconds on the clip's grid, non-overlapping."""
    curve: np.ndarray
    """One score per bin of the clip's grid (cosine for zero-shot, highlight probability for localizers)."""
    presence: float | None = None
    """How surely the question's object is on screen somewhere in the clip (:mod:`models.presence`), when
    measured: evidence for "no good match" beside the scores."""
    clip_score: float | None = None
    """The best zero-shot window score in the clip (CLIP's cosine, :func:`models.windows.best_window_scores`),
    when measured by a mode whose own scores are a trained model's: a localizer asked about something the clip
    never shows still spreads its span probabilities over the clip, while CLIP's cosine is on a scale shared by
    every clip -- evidence for "no good match" (bench/README.md: in the validation house it lifted the negatives
    flagged by three corpus checkpoints' calibrations from 17-31 % to 41-51 %)."""


@dataclass
class AnswerContext:
    """What answerers need to know about the features they will read, and where to load things from."""

    feature_key: str
    """Identity of the encoder that made the features (``EncoderSpec.key``)."""
    feature_dim: int
    rate_hz: float | None
    """The features' grid rate; None when it varies per clip (a folder of precomputed clip features)."""
    encoder: Callable[[], ClipEncoder]
    """Loads (once) the CLIP ``ClipEncoder`` whose text space matches the features."""
    encoder_spec: EncoderSpec | None = None
    """That encoder's ``EncoderSpec``, known without loading it (None when unknown)."""
    checkpoints_dir: Path | None = None
    device: str | None = None
    feature_key_known: bool = True
    """False for features of unknown origin (only their dimension can be checked against a checkpoint)."""


class Answerer(Protocol):
    mode: str
    """The mode string it answers for (``zeroshot`` or the checkpoint's name)."""
    label: str
    """A short human description, e.g. ``zero-shot (ViT-B-16/openai)``."""
    max_candidate_videos: int
    """How many videos a library-wide question may score in full (its cost per video decides)."""
    calibration: Calibration | None
    """Its score -> probability map and "no good match" threshold, when one was fitted (see
    :mod:`app.answering.calibration`); scores shown to users go through it."""
    warnings: tuple[str, ...]
    """What the user should know about every answer it gives (e.g. a stored calibration that cannot be read)."""
    measure_presence: bool
    """Whether its answers carry :attr:`ClipAnswer.presence` (when its calibration uses it, or while one is
    being fitted); modes without CLIP text vectors never measure it."""
    measure_clip: bool
    """Whether its answers carry :attr:`ClipAnswer.clip_score` (likewise); trained modes measure it where the
    library's CLIP made the features -- zero-shot's own score already is it."""

    def local_context_s(self, question: PreparedQuestion) -> float | None:
        """Seconds of features either side of a moment that decide its window and score, when that is bounded:
        then a library search answers only padded regions around its hits, as the whole video would be
        answered there. None: the whole clip matters (a trained model's attention, an anchor event's order)."""

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        """Encode questions once. ``search``: also make the CLIP vector used to narrow a library search.
        Raises :class:`EmptyQuestion` if any question is empty."""

    def answer(
        self,
        questions: Sequence[PreparedQuestion],
        features,
        grid: TimeGrid,
        k: int,
        *,
        comparable: bool = False,
        region: bool = False,
    ) -> list[ClipAnswer]:
        """Up to ``k`` windows per question over one clip's ``features`` [grid.num_bins, dim].

        ``region``: the clip is a padded region of a longer video (:meth:`local_context_s`), so when its distinct
        peaks run out it returns fewer windows rather than overlapping ones (the rest of the video has more).
        Answerers that read the whole clip are never asked for regions and may ignore it."""


def rewrite_all(questions: Sequence[str]) -> list[Rewrite]:
    """Every question's rewrite (raises ``EmptyQuestion`` for an empty one)."""
    if isinstance(questions, str):
        raise TypeError("pass a list of questions, not a single string")
    return [rewrite_question(q) for q in questions]


def window_mean(curve: np.ndarray, grid: TimeGrid, window: Window) -> float:
    """Mean of a per-bin curve over the bins a window covers."""
    s, e = grid.seconds_to_bins(window.start, window.end)
    return float(np.mean(curve[s : e + 1]))


def stored_calibration(calibrations: dict | None, mode: str, where: str) -> tuple[Calibration | None, tuple[str, ...]]:
    """The calibration stored for ``mode`` (None when there is none) and what is wrong with it: a record that
    cannot be read costs the confidence display, never the answer, and every answer says so (``warnings``)."""
    values = (calibrations or {}).get(mode)
    if values is None:
        return None, ()
    try:
        return Calibration.from_dict(values), ()
    except InvalidCalibration as exc:
        logger.warning("cannot read the %s calibration in %s: %s", mode, where, exc)
        return None, (
            f"the {mode} confidence calibration stored in {where} cannot be read ({exc}); answers carry no "
            f"confidence until `python -m app calibrate` fits it again",
        )


def encoder_calibration(spec, mode: str = ZEROSHOT) -> tuple[Calibration | None, tuple[str, ...]]:
    """The calibration stored in an EgoRecall-pretrained encoder's sidecar (None for other weights), and what
    is wrong with it (see :func:`stored_calibration`)."""
    from checkpoints.encoder import read_encoder_metadata, sidecar_path

    pretrained = getattr(spec, "pretrained", None)
    if not pretrained or not sidecar_path(pretrained).is_file():
        return None, ()
    try:
        meta = read_encoder_metadata(pretrained)
    except EgoRecallError as exc:
        return None, (
            f"the encoder's sidecar {sidecar_path(pretrained)} cannot be read ({exc}); answers carry no confidence",
        )
    return stored_calibration(meta.get("calibration"), mode, str(sidecar_path(pretrained)))


def encoder_calibration_stamp(spec) -> int:
    """Changes when the encoder's sidecar (and so its calibration) is rewritten: part of cache keys."""
    from checkpoints.encoder import sidecar_path

    pretrained = getattr(spec, "pretrained", None)
    try:
        return sidecar_path(pretrained).stat().st_mtime_ns if pretrained else 0
    except OSError:
        return 0
