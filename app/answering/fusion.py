"""The ``fused:CHECKPOINT`` mode: a trained localizer and zero-shot CLIP, combined at score level.

Why fuse. The two modes fail differently (EgoT2's lesson that one task's model helps another's): a localizer
trained on few queries knows the *shape* of an answer but little of the world, and CLIP knows the world but not
where an answer starts and ends. Per bin, the localizer's highlight probability ``h`` and the zero-shot curve
``c`` (the question's CLIP cosine, a before/after question's bins ordered by its anchor event) are mixed by a
*form* (:data:`FUSION_FORMS`) at a weight ``w``:

    span:    f = (1 - w) * span(h) + w * span(c)       (what a fitted weight is chosen for since 2026-12-08)
    linear:  f = (1 - w) * h       + w * span(c)       (weights recorded without a form, unfitted checkpoints)

where ``span(x)`` maps a clip's values affinely onto 0-1. Cosines need it (they are in their own units, a few
hundredths apart); a highlight probability of a clip the model finds nothing in may peak at 0.2, and ``span``
gives both curves the same say at every weight. Being affine in ``c``, both forms keep zero-shot's windows
exactly at ``w = 1`` (window scores are linear in the curve), so the weight search can always fall back to either
mode; a percentile transform, tried first, lost 1 point of R@1 at ``w = 1`` on the answer benchmark. The fused
curve becomes windows with the zero-shot proposals (calibrated lengths, distinct moments). At ``w = 0`` the answer
is the checkpoint's own: its spans, not fixed-length windows cut from its highlight curve -- so the weight search
can fall back to either mode whole. (Before, ``w = 0`` cut 3-5 s windows from the highlight curve, which in a
house the checkpoint never trained on answered 7.8 points of R@1@0.3 below the checkpoint itself, 35.9 vs 43.7 on
551 queries, and no weight reached it: bench/README.md, ``bench_transfer``.)

``w`` is chosen on validation data by :func:`choose_fusion_weight` and stored, with its form, in the checkpoint's
metadata (``fusion.weight``, ``fusion.form``); a checkpoint without one uses :data:`DEFAULT_FUSION_WEIGHT`. Why
``span`` for new choices (bench/README.md, ``bench_generalization``, 2026-12-08): on the six tuning worlds, each
weight chosen on one half of the held-out videos and scored on the other, ``span`` answered 33.6 / 65.4 R@1@0.3 /
R@5@0.3 against ``linear``'s 31.8 / 64.4 (714 queries; no world lost R@1@0.3). At a *fixed* weight it is no
better pooled; what gains is a weight chosen on some videos and used on others -- measured, not explained. At the
unfitted 0.5 ``linear`` scores higher (31.5 vs 29.7 R@1@0.3), so a checkpoint never fitted keeps it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.answering.base import AnswerContext, ClipAnswer, PreparedQuestion, stored_calibration
from app.answering.registry import register_answerer
from app.answering.trained import TrainedAnswerer, _checkpoint_key
from app.answering.zeroshot import ZeroShotAnswerer
from checkpoints import IncompatibleCheckpoint
from models.grid import TimeGrid
from models.windows import curve_to_windows

logger = logging.getLogger(__name__)

FUSED = "fused"
DEFAULT_FUSION_WEIGHT = 0.5
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""The weights :func:`choose_fusion_weight` tries (0 = the localizer alone, 1 = CLIP alone)."""


def unit_span(values: np.ndarray) -> np.ndarray:
    """The values mapped affinely onto [0, 1] (min -> 0, max -> 1); a constant curve becomes zeros."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def _mix_linear(highlight: np.ndarray, cosine: np.ndarray, weight: float) -> np.ndarray:
    return (1.0 - weight) * highlight + weight * unit_span(cosine)


def _mix_spans(highlight: np.ndarray, cosine: np.ndarray, weight: float) -> np.ndarray:
    return (1.0 - weight) * unit_span(highlight) + weight * unit_span(cosine)


FUSION_FORMS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "linear": _mix_linear,
    "span": _mix_spans,
}
"""How a highlight curve and a cosine curve are mixed at a weight (see the module docstring)."""
FITTED_FORM = "span"
"""The form :func:`choose_fusion_weight` chooses a weight for, after training and in ``calibrate``."""
UNRECORDED_FORM = "linear"
"""The form of a fusion record that names none (chosen before forms existed) and of a never-fitted checkpoint."""


def fuse_curves(highlight: np.ndarray, cosine: np.ndarray, weight: float, form: str = FITTED_FORM) -> np.ndarray:
    mix = FUSION_FORMS[form]
    return mix(np.asarray(highlight, np.float64), np.asarray(cosine, np.float64), weight)


def recorded_form(recorded: dict) -> str:
    """The form a checkpoint's fusion record (``meta.json``'s ``fusion``) was chosen for, known or not."""
    return recorded.get("form") or UNRECORDED_FORM


def fusion_form(recorded: dict, override: str | None = None) -> str:
    """:func:`recorded_form`, or ``override``; a name this EgoRecall does not know is refused, not answered with
    another form's meaning of the weight."""
    form = override or recorded_form(recorded)
    if form not in FUSION_FORMS:
        raise IncompatibleCheckpoint(
            f"its fusion weight was chosen for the form {form!r}, which this EgoRecall does not know "
            f"(it knows {', '.join(sorted(FUSION_FORMS))}); upgrade EgoRecall, or refit the weight with `calibrate`"
        )
    return form


def _fused_key(context: AnswerContext, arg: str | None) -> tuple:
    return (FUSED,) + _checkpoint_key(context, arg)[1:]


@register_answerer(FUSED, takes_argument=True, cache_key=_fused_key)
class FusedAnswerer:
    """A checkpoint's highlight curve mixed with zero-shot similarity (see the module docstring)."""

    max_candidate_videos = TrainedAnswerer.max_candidate_videos

    def local_context_s(self, question: PreparedQuestion) -> float | None:
        return None  # the model reads the whole clip

    def __init__(
        self, context: AnswerContext, checkpoint: str | None, weight: float | None = None, form: str | None = None
    ) -> None:
        self.trained = TrainedAnswerer(context, checkpoint)  # refuses a checkpoint of other features
        self.trained.measure_presence = self.trained.measure_clip = False  # measured here, by the fused calibration
        self.zeroshot = self.trained.clip_reader() or ZeroShotAnswerer(context)  # refuses features of another CLIP
        stored = self.trained.meta.fusion.get("weight")
        self.weight = float(weight if weight is not None else stored if stored is not None else DEFAULT_FUSION_WEIGHT)
        self.form = fusion_form(self.trained.meta.fusion, form)
        self.calibration, self.warnings = stored_calibration(self.trained.meta.calibration, FUSED, self.trained.mode)
        self.measure_presence = bool(self.calibration and self.calibration.presence_weight)
        self.measure_clip = bool(self.calibration and self.calibration.clip_weight)
        self.mode = f"{FUSED}:{self.trained.mode}"

    @property
    def label(self) -> str:
        """What the answer says answered it; at weight 0 that is the checkpoint alone (its own spans)."""
        if self.weight == 0.0:
            return f"fused at weight 0.0: {self.trained.label} alone"
        return f"fused ({self.trained.label} + {self.zeroshot.label}, weight {self.weight:.1f})"

    @property
    def measure_presence(self) -> bool:
        return self.zeroshot.measure_presence  # CLIP's half measures it

    @measure_presence.setter
    def measure_presence(self, value: bool) -> None:
        self.zeroshot.measure_presence = value

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        """The checkpoint's query tokens and everything zero-shot makes of the question (its CLIP vector, the
        anchor of a before/after question, the object's presence column): both halves of the answer."""
        tokens = self.trained.prepare(questions)
        clip = self.zeroshot.prepare(questions)
        return [replace(z, tokens=t.tokens, mask=t.mask) for t, z in zip(tokens, clip)]

    def curves(self, questions: Sequence[PreparedQuestion], features, grid: TimeGrid, k: int = 1) -> list[tuple]:
        """(the checkpoint's answer with its ``k`` best spans, zero-shot curve) per question: what the weight
        mixes (the answer's ``curve`` is its highlight curve)."""
        trained = self.trained.answer(questions, features, grid, k)
        return list(zip(trained, self.zeroshot.curves(questions, features, grid)))

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
        if not questions:
            return []
        presence = self.zeroshot.presence(questions, features)
        if self.weight == 0.0:  # the checkpoint itself (see the module docstring)
            answers = self.trained.answer(questions, features, grid, k, comparable=comparable, region=region)
            clip = self._clip_scores(questions, features, grid)
            return [replace(a, presence=p, clip_score=c) for a, p, c in zip(answers, presence, clip)]
        out = []
        pairs = self.curves(questions, features, grid)
        clip = self._clip_scores(questions, features, grid, [c for _, c in pairs])
        for (trained, cosine), p, c in zip(pairs, presence, clip):
            fused = fuse_curves(trained.curve, cosine, self.weight, self.form)
            windows = curve_to_windows(fused, grid, k, self.zeroshot.config.proposals)
            out.append(ClipAnswer(windows, fused.astype(np.float32), p, c))
        return out

    def _clip_scores(self, questions, features, grid: TimeGrid, curves=None) -> list[float | None]:
        """CLIP's reading of the clip per question (:attr:`ClipAnswer.clip_score`), when measured."""
        if not self.measure_clip:
            return [None] * len(questions)
        return self.zeroshot.clip_scores(questions, features, grid, curves)


@dataclass
class FusionChoice:
    weight: float
    form: str
    scores: dict[float, dict[str, float]]
    """weight -> R@1@0.3 / R@5@0.3 (percent) on the validation queries."""
    queries: int
    """Annotated queries whose clip had features: what the weight was chosen on."""


def _steadiest_best(scores: dict[float, dict[str, float]]) -> float:
    """The weight whose neighbourhood (itself and the weights either side) scores best on average: on a
    hundred queries one weight's lead is often a query or two of noise, and a weight in a plateau carries to
    other videos better than a lone peak (ties: the lower weight)."""
    ws = sorted(scores)
    merit = [scores[w]["R@1@0.3"] + scores[w]["R@5@0.3"] for w in ws]
    smooth = [sum(merit[max(0, i - 1) : i + 2]) / len(merit[max(0, i - 1) : i + 2]) for i in range(len(ws))]
    best = max(range(len(ws)), key=lambda i: (smooth[i], merit[i], -ws[i]))
    return ws[best]


def choose_fusion_weight(
    fused: FusedAnswerer, dataset, source, weights: Sequence[float] = WEIGHT_GRID, k: int = 5
) -> FusionChoice:
    """The weight of ``fused``'s form whose neighbourhood scores best on ``dataset``'s annotated queries
    (:func:`_steadiest_best`). Curves are computed once; each weight only re-makes windows."""
    from training.features import FeaturesUnavailable
    from training.metrics import score_windows, windows_array

    curves, grids, truth = [], [], []
    for clip_uid, clip_queries in dataset.queries_by_clip().items():
        clip_queries = [q for q in clip_queries if q.has_answer]
        if not clip_queries:
            continue
        try:
            feats = source.get(dataset.clips[clip_uid])
        except FeaturesUnavailable:
            continue
        prepared = fused.prepare([q.text for q in clip_queries])
        for q, pair in zip(clip_queries, fused.curves(prepared, feats.features, feats.grid, k)):
            curves.append(pair)
            grids.append(feats.grid)
            truth.append((q.start, q.end))
    if not curves:
        raise ValueError(f"{dataset.source} has no annotated query whose clip has features")
    gt = np.asarray(truth, np.float64)
    proposals = fused.zeroshot.config.proposals
    scores: dict[float, dict[str, float]] = {}
    for w in weights:
        windows = [
            t.windows[:k] if w == 0.0 else curve_to_windows(fuse_curves(t.curve, c, w, fused.form), g, k, proposals)
            for (t, c), g in zip(curves, grids)
        ]
        s = score_windows(windows_array(windows, k), gt)
        scores[float(w)] = {"R@1@0.3": s.recall["R1@0.3"], "R@5@0.3": s.recall["R5@0.3"]}
    best = _steadiest_best(scores)
    logger.info("fusion weight %.1f (%s) chosen on %d queries of %s", best, fused.form, len(curves), dataset.source)
    return FusionChoice(best, fused.form, scores, len(curves))
