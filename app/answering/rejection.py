"""Fitting and measuring "no good match" on NLQ files: answerable queries, negative queries, one calibration.

Negative queries are questions whose answer is not in the clip they are asked of. Without ground truth about
absence, :func:`negative_queries` takes questions of *other videos'* clips (what an object or event that
never happens in this clip usually is) whose object or place none of the clip's own questions names (the same
test as training's negatives, :mod:`training.negatives`: in a validation house, 81 % of other videos'
questions were about something truly absent from the clip, 97 % of those kept by this test -- bench/README.md);
a caller that knows better (the answer benchmark reads its world's record) passes ``keep`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.answering.base import CHECKPOINT, ZEROSHOT, Answerer
from app.answering.calibration import Calibration, fit_calibration, rejection_report
from app.answering.dataset import answer_dataset
from app.answering.fusion import FUSED
from models.errors import EgoRecallError
from models.windows import temporal_iou
from training.features import ClipFeatureSource
from training.negatives import asked_words, content_words
from training.nlq import NLQDataset, Query

NEGATIVE_ANNOTATION = "negative"


class CalibrationError(EgoRecallError):
    """A calibration that cannot be fitted or stored from what was given."""


def negative_queries(
    dataset: NLQDataset,
    per_clip: int = 3,
    seed: int = 0,
    keep: Callable[[Query, str], bool] | None = None,
) -> list[Query]:
    """Up to ``per_clip`` questions per clip, taken from clips of other videos, as unanswered queries of that
    clip: those :func:`unnamed_in_clip` keeps, or ``keep(question, clip_uid)`` when given."""
    rng = np.random.default_rng(seed)
    asked = dataset.evaluation_queries()
    keep = keep or unnamed_in_clip(dataset)
    out: list[Query] = []
    for clip_uid, clip in sorted(dataset.clips.items()):
        others = [q for q in asked if dataset.clips[q.clip_uid].video_uid != clip.video_uid]
        others = [q for q in others if keep(q, clip_uid)]
        texts = sorted({q.text for q in others})
        for i, j in enumerate(rng.permutation(len(texts))[:per_clip]):
            out.append(Query(clip_uid, NEGATIVE_ANNOTATION, i, texts[j], None, None, None, clip.video_uid))
    return out


def unnamed_in_clip(dataset: NLQDataset) -> Callable[[Query, str], bool]:
    """``keep(question, clip_uid)``: the question names an object or place and none of the clip's own questions
    names it -- an absence a file of questions can vouch for (a question naming neither is never a negative)."""
    said: dict[str, set[str]] = {}
    for q in dataset.queries:
        said.setdefault(q.clip_uid, set()).update(content_words(q.text))
    asked: dict[str, set[str]] = {}

    def keep(question: Query, clip_uid: str) -> bool:
        words = asked.get(question.text)
        if words is None:
            words = asked[question.text] = asked_words(question.text)
        return bool(words) and not words & said.get(clip_uid, set())

    return keep


@dataclass
class TopScores:
    """The rank-1 window score of each answerable query (and whether it hit at IoU > 0.3), and of each
    negative query: what a calibration is fitted on."""

    answerable: np.ndarray
    hits: np.ndarray
    negative: np.ndarray
    videos_answerable: list[str]
    videos_negative: list[str]
    answerable_presence: np.ndarray | None = None
    """The question's object's presence in the clip (NaN where not measured), when the mode measures it."""
    negative_presence: np.ndarray | None = None
    answerable_clip: np.ndarray | None = None
    """CLIP's best window score in the clip (NaN where not measured), when the mode measures it."""
    negative_clip: np.ndarray | None = None

    def subset(self, videos: set[str]) -> TopScores:
        a = np.array([v in videos for v in self.videos_answerable], dtype=bool)
        n = np.array([v in videos for v in self.videos_negative], dtype=bool)
        return TopScores(
            self.answerable[a],
            self.hits[a],
            self.negative[n],
            [c for c, m in zip(self.videos_answerable, a) if m],
            [c for c, m in zip(self.videos_negative, n) if m],
            None if self.answerable_presence is None else self.answerable_presence[a],
            None if self.negative_presence is None else self.negative_presence[n],
            None if self.answerable_clip is None else self.answerable_clip[a],
            None if self.negative_clip is None else self.negative_clip[n],
        )

    def evidence(self) -> dict[str, np.ndarray | None]:
        """The inputs beside the score, as :func:`fit_calibration` and :func:`rejection_report` take them."""
        return {
            "answerable_presence": self.answerable_presence,
            "negative_presence": self.negative_presence,
            "answerable_clip": self.answerable_clip,
            "negative_clip": self.negative_clip,
        }


def top_scores(
    answerer: Answerer,
    dataset: NLQDataset,
    source: ClipFeatureSource,
    negatives: Sequence[Query],
    k: int = 5,
    presence: bool = True,
) -> TopScores:
    """Answer every annotated query and every negative one with ``ask``'s comparable scores (and, with
    ``presence`` and a mode that can, the presence of each question's object and CLIP's best window score in
    the clip: :attr:`app.answering.base.ClipAnswer.clip_score`)."""
    answerable = dataset.evaluation_queries()
    was = answerer.measure_presence, answerer.measure_clip
    answerer.measure_presence = presence
    answerer.measure_clip = presence  # trained and fused modes; zero-shot's own score is CLIP's reading
    try:
        got = answer_dataset(answerer, dataset, source, k, queries=list(answerable) + list(negatives), comparable=True)
    finally:
        answerer.measure_presence, answerer.measure_clip = was

    def best(q: Query) -> float:
        ws = got.for_query(q)
        return ws[0].score if ws else -np.inf

    def hit(q: Query) -> bool:
        ws = got.for_query(q)
        return bool(ws) and q.has_answer and temporal_iou((ws[0].start, ws[0].end), q.answer) > 0.3

    pos = np.array([best(q) for q in answerable])
    hits = np.array([hit(q) for q in answerable], dtype=bool)
    neg = np.array([best(q) for q in negatives])
    finite = np.isfinite(pos)
    low = float(np.min(pos[finite])) if finite.any() else 0.0
    pos[~finite] = low
    neg[~np.isfinite(neg)] = low

    def measured(values: dict, queries) -> np.ndarray | None:
        return np.array([values.get(q.key, np.nan) for q in queries]) if values else None

    video = lambda q: dataset.clips[q.clip_uid].video_uid or q.clip_uid  # noqa: E731
    return TopScores(
        pos,
        hits,
        neg,
        [video(q) for q in answerable],
        [video(q) for q in negatives],
        measured(got.presence, answerable),
        measured(got.presence, negatives),
        measured(got.clip_score, answerable),
        measured(got.clip_score, negatives),
    )


def fit_on(scores: TopScores, max_r1_loss: float = 2.0, fitted_on: str = "") -> Calibration:
    return fit_calibration(
        scores.answerable,
        scores.hits,
        scores.negative,
        **scores.evidence(),
        max_r1_loss=max_r1_loss,
        fitted_on=fitted_on,
    )


def cross_fitted_report(scores: TopScores, max_r1_loss: float = 2.0, folds: int = 2) -> dict[str, float]:
    """Fit on all videos but one fold, report on that fold, average the folds: figures for queries the
    calibration never saw, of videos it never saw (videos are dealt to folds in sorted order; a video's clips
    share its look, so folding clips would let a calibration see the video it is judged on)."""
    clips = sorted(set(scores.videos_answerable) | set(scores.videos_negative))
    reports = []
    for f in range(folds):
        held = {c for i, c in enumerate(clips) if i % folds == f}
        fit = scores.subset(set(clips) - held)
        test = scores.subset(held)
        if len(fit.answerable) == 0 or len(fit.negative) == 0 or len(test.answerable) == 0:
            continue
        cal = fit_on(fit, max_r1_loss)
        reports.append(rejection_report(cal, test.answerable, test.hits, test.negative, **test.evidence()))
    if not reports:
        raise CalibrationError(
            "too few videos to fit and check a calibration: it needs annotated queries about at least two videos "
            "and, as negatives, other videos' questions about an object or place a clip's own questions never name"
        )
    return {key: float(np.mean([r[key] for r in reports])) for key in reports[0]}


OVERLOSS_PENALTY = 10.0
"""How many points of negatives flagged one point of R@1@0.3 lost beyond the allowed loss costs, when
:func:`choose_evidence` compares calibrations."""
EVIDENCE_MARGIN = 10.0
"""Points of negatives flagged a second input (presence, CLIP's score) must add to be kept: with an input that
carries nothing, the two cross-fitted figures still differ by chance (up to ~5 points in
tests/test_calibration.py's noise)."""


def without(scores: TopScores, presence: bool = False, clip: bool = False) -> TopScores:
    """``scores`` with presence and/or CLIP's score left out."""
    if presence:
        scores = replace(scores, answerable_presence=None, negative_presence=None)
    if clip:
        scores = replace(scores, answerable_clip=None, negative_clip=None)
    return scores


def evidence_merit(report: dict[str, float], max_r1_loss: float) -> float:
    return report["negatives_flagged"] - OVERLOSS_PENALTY * max(0.0, report["R@1@0.3_lost"] - max_r1_loss)


def choose_evidence(
    scores: TopScores, max_r1_loss: float = 2.0
) -> tuple[TopScores, dict[str, float], dict[str, dict[str, float]]]:
    """Keep presence and CLIP's score as further inputs only where they help on these queries: every
    combination the mode measured is cross-fitted, and one with more inputs than the score alone is kept if it
    flags :data:`EVIDENCE_MARGIN` points more negatives and is still ahead when a point of R@1 lost beyond
    ``max_r1_loss`` counts as :data:`OVERLOSS_PENALTY` points of negatives (the best such, by that merit).

    How well an encoder tells an object on screen from one that is not varies (bench/README.md: a clear gain
    with one benchmark world's encoder, none with two others'), so the user's own validation data decides.
    Returns the scores to fit on, their report and every candidate's report (``score``, ``score+presence``,
    ``score+clip``, ``score+clip+presence``: those measured)."""
    has_presence, has_clip = scores.answerable_presence is not None, scores.answerable_clip is not None
    options = {"score": without(scores, presence=True, clip=True)}
    if has_presence:
        options["score+presence"] = without(scores, clip=True)
    if has_clip:
        options["score+clip"] = without(scores, presence=True)
    if has_presence and has_clip:
        options["score+clip+presence"] = scores
    candidates = {name: cross_fitted_report(option, max_r1_loss) for name, option in options.items()}
    plain = candidates["score"]
    best = "score"
    for name, report in candidates.items():
        gain = evidence_merit(report, max_r1_loss) - evidence_merit(plain, max_r1_loss)
        better = evidence_merit(report, max_r1_loss) > evidence_merit(candidates[best], max_r1_loss)
        if gain > 0 and report["negatives_flagged"] - plain["negatives_flagged"] >= EVIDENCE_MARGIN and better:
            best = name
    return options[best], candidates[best], candidates


class CalibrationUnstorable(CalibrationError):
    """The mode's calibration has nowhere to live (zero-shot with weights that have no EgoRecall sidecar)."""


def calibrate_mode(
    service,
    mode: str,
    dataset: NLQDataset,
    source: ClipFeatureSource,
    negatives: Sequence[Query],
    k: int = 5,
    max_r1_loss: float = 2.0,
    presence: bool = True,
) -> dict:
    """Fit ``mode``'s calibration on ``dataset`` (+ ``negatives``) and store it where its answerer reads it:
    the checkpoint's ``meta.json`` (``calibration.checkpoint`` / ``calibration.fused``) or, for zero-shot, the
    EgoRecall-pretrained encoder's sidecar. Returns the cross-fitted figures (fit on half the clips, measured
    on the other half, both ways) of the stored calibration and of each candidate (:func:`choose_evidence`),
    and the stored calibration."""
    from checkpoints import read_metadata, resolve_checkpoint, update_metadata
    from checkpoints.encoder import record_encoder_calibration, sidecar_path

    if mode == ZEROSHOT:
        weights = getattr(service.encoder_spec, "pretrained", "")
        if not weights or not sidecar_path(weights).is_file():
            raise CalibrationUnstorable(
                f"zero-shot calibration is stored with EgoRecall-pretrained encoder weights (a .safetensors file "
                f"with its .json sidecar); this library's encoder is {service.encoder_spec.key}"
            )
    scores = top_scores(service.answerer(mode), dataset, source, negatives, k, presence=presence)
    scores, report, candidates = choose_evidence(scores, max_r1_loss)
    cal = fit_on(scores, max_r1_loss, fitted_on=str(dataset.source)).to_dict()
    kind, _, name = mode.partition(":")
    if mode == ZEROSHOT:
        record_encoder_calibration(service.encoder_spec.pretrained, ZEROSHOT, cal)
    else:  # the keys the answerers read back (``stored_calibration``)
        folder = resolve_checkpoint(name if kind == FUSED else mode, service.settings.checkpoints_dir)
        stored = dict(read_metadata(folder).calibration)
        stored[FUSED if kind == FUSED else CHECKPOINT] = cal
        update_metadata(folder, {"calibration": stored})
    return {"cross_fitted": report, "calibration": cal, "candidates": candidates}
