"""The ``zeroshot`` mode: CLIP prompt ensembles against frame features (see :mod:`models.zeroshot`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from app.answering.base import (
    ZEROSHOT,
    AnswerContext,
    ClipAnswer,
    FeatureMismatch,
    PreparedQuestion,
    encoder_calibration,
    encoder_calibration_stamp,
    rewrite_all,
)
from app.answering.presence import PresenceScorer
from app.answering.registry import register_answerer
from app.answering.vectors import VectorCache, prompt_vectors
from models.grid import TimeGrid
from models.windows import best_window_scores, window_context_s
from models.zeroshot import (
    ZeroShotConfig,
    order_by_anchor,
    order_by_occurrences,
    similarity_curve,
    zero_shot_windows,
)


def _zeroshot_key(context: AnswerContext, arg: str | None) -> tuple:
    return ZEROSHOT, context.feature_key, encoder_calibration_stamp(context.encoder_spec)


@register_answerer(ZEROSHOT, cache_key=_zeroshot_key)
class ZeroShotAnswerer:
    """CLIP prompt ensembles against frame features (see :mod:`models.zeroshot`)."""

    max_candidate_videos = 8

    def __init__(
        self, context: AnswerContext, _arg: str | None = None, config: ZeroShotConfig = ZeroShotConfig()
    ) -> None:
        self.encoder = context.encoder()
        if int(self.encoder.dim) != int(context.feature_dim):
            raise FeatureMismatch(
                f"zero-shot answering compares questions embedded by CLIP {self.encoder.key} "
                f"({self.encoder.dim}-d) with the frame features, but the features are {context.feature_dim}-d "
                f"({context.feature_key}); zero-shot needs features made by that same CLIP (or choose a trained "
                f"checkpoint)"
            )
        if context.feature_key_known and context.feature_key != self.encoder.key:
            raise FeatureMismatch(
                f"the features were made by {context.feature_key}, but the questions would be embedded by CLIP "
                f"{self.encoder.key}; zero-shot needs both from the same CLIP (pass its --model/--pretrained)"
            )
        self.mode = ZEROSHOT
        self.label = f"zero-shot ({self.encoder.key})"
        self.config = config
        self.calibration, self.warnings = encoder_calibration(context.encoder_spec)
        self.measure_presence = bool(self.calibration and self.calibration.presence_weight)
        self.measure_clip = False  # its own score is CLIP's reading
        self._vectors = VectorCache()
        self._presence: PresenceScorer | None = None

    def presence_columns(self, rewrites) -> list[int | None]:
        """The questions' objects for the presence scorer (all None when presence is not measured)."""
        if not self.measure_presence:
            return [None] * len(rewrites)
        if self._presence is None:
            self._presence = PresenceScorer(self.encoder)
        return self._presence.columns(rewrites)

    def presence(self, questions: Sequence[PreparedQuestion], features) -> list[float | None]:
        columns = [q.presence_column for q in questions]
        if self._presence is None or all(c is None for c in columns):
            return [None] * len(questions)
        return self._presence.score(features, columns)

    def local_context_s(self, question: PreparedQuestion) -> float | None:
        if question.anchor is not None:  # "before/after Y" orders the curve by Y's moment anywhere in the clip
            return None
        return window_context_s(self.config.proposals)

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        rewrites = rewrite_all(questions)
        vectors = prompt_vectors(self.encoder, rewrites, cache=self._vectors)
        ordered = [replace(r, prompts=r.anchor) for r in rewrites if r.anchor and r.relation]
        anchors = iter(prompt_vectors(self.encoder, ordered, cache=self._vectors)) if ordered else iter(())
        return [
            PreparedQuestion(
                r.question, r, v, anchor=next(anchors) if r.anchor and r.relation else None, presence_column=c
            )
            for r, v, c in zip(rewrites, vectors, self.presence_columns(rewrites))
        ]

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
        return [
            ClipAnswer(zero_shot_windows(c, grid, k, self.config, fill=not region), c, presence=p)
            for c, p in zip(self.curves(questions, features, grid), self.presence(questions, features))
        ]

    def curves(self, questions: Sequence[PreparedQuestion], features, grid: TimeGrid) -> list[np.ndarray]:
        """Each question's score curve over the clip: cosine per bin, ordered by its anchor event if any."""
        if len(questions) == 1:  # one matrix-vector product straight on the float16 rows (models.zeroshot)
            curves = [similarity_curve(features, questions[0].clip_vector)]
        else:
            curves = list(similarity_curve(features, np.stack([q.clip_vector for q in questions])))
        for i, q in enumerate(questions):
            relation = q.rewrite.relation
            if q.anchor is None or relation is None:
                continue
            if q.anchor_at is not None:  # "where was X before Y": Y's moments across the library order X's curve
                at = np.asarray(q.anchor_at)
                ordered = order_by_occurrences(curves[i], at, relation, grid, self.config, horizon=False)
            else:  # ... or, with nothing beyond this clip, Y's moments in it
                ordered = order_by_anchor(curves[i], similarity_curve(features, q.anchor), relation, grid, self.config)
            curves[i] = ordered.astype(np.float32)
        return curves

    def clip_scores(
        self,
        questions: Sequence[PreparedQuestion],
        features,
        grid: TimeGrid,
        curves: Sequence[np.ndarray] | None = None,
    ) -> list[float | None]:
        """Each question's best zero-shot window score over the clip (:attr:`ClipAnswer.clip_score`): CLIP's
        reading of the clip, on one scale for every clip. ``curves``: :meth:`curves`' result, when at hand."""
        if curves is None:
            curves = self.curves(questions, features, grid)
        return [
            float(best_window_scores(np.asarray(c)[None], grid, self.config.proposals)[0]) if len(c) else None
            for c in curves
        ]
