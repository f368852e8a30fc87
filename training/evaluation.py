"""Validation during training: answer every annotated query of an NLQ file the way the app will, and score it.

Each clip goes through :func:`models.inference.localize` -- the same sliding windows over the native grid (or
the same resampling) that answering uses later, so the figure that picks the best checkpoint is the figure
users get -- and the ranked windows are scored with the official NLQ rules (:func:`training.metrics.
score_windows`: R@k at IoU > θ, divided by the number of ground-truth queries). A clip whose features are
missing counts as misses, never as skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.inference import InferenceConfig, localize
from models.localizer import Localizer
from training.dataset import ClipStore
from training.metrics import NLQScores, score_windows, windows_array
from training.nlq import NLQDataset
from training.text_features import TextFeatureCache, pad_tokens

logger = logging.getLogger(__name__)

METRIC_KEYS = {"R1@0.3": "R@1@0.3", "R5@0.3": "R@5@0.3", "R1@0.5": "R@1@0.5", "R5@0.5": "R@5@0.5"}
"""training.metrics' names -> the names checkpoints and logs use (``checkpoints list`` shows these)."""


def headline_metrics(scores: NLQScores) -> dict[str, float]:
    """The figures logged and stored in checkpoint metadata (percentages)."""
    out = {METRIC_KEYS[k]: float(v) for k, v in scores.recall.items() if k in METRIC_KEYS}
    out.update(
        {
            "mean_R1": float(scores.mean_r1),
            "mean_R5": float(scores.mean_r5),
            "mIoU": float(scores.miou),
            "num_queries": float(scores.num_queries),
        }
    )
    return out


@dataclass
class Validator:
    """Everything evaluation needs besides the model, prepared once per run."""

    dataset: NLQDataset
    store: ClipStore
    texts: TextFeatureCache
    inference: InferenceConfig

    def __post_init__(self) -> None:
        self.queries = self.dataset.evaluation_queries()
        self.gt = np.array([(q.start, q.end) for q in self.queries], dtype=np.float64)
        self.templates = [q.template for q in self.queries]
        by_clip: dict[str, list[int]] = {}
        for i, q in enumerate(self.queries):
            by_clip.setdefault(q.clip_uid, []).append(i)
        self.by_clip = by_clip
        self.missing = sorted(uid for uid in by_clip if not self.store.source.has(self.dataset.clips[uid]))
        if self.missing:
            logger.warning(
                "%d validation clips have no features; their %d queries count as misses",
                len(self.missing),
                sum(len(by_clip[u]) for u in self.missing),
            )

    @property
    def texts_needed(self) -> list[str]:
        return [q.text for q in self.queries]

    def predict(self, model: Localizer, progress: Callable[[int, int], None] | None = None) -> list:
        """Ranked windows (seconds) per query, None for queries whose clip has no features."""
        windows: list = [None] * len(self.queries)
        clips = [u for u in self.by_clip if u not in set(self.missing)]
        for n, uid in enumerate(clips):
            cf = self.store.get(uid)
            rows = self.by_clip[uid]
            tokens, mask = pad_tokens([self.texts.get(self.queries[i].text) for i in rows])
            answers = localize(model, cf.features, cf.grid, tokens, mask, config=self.inference)
            duration = self.dataset.clips[uid].duration
            for i, answer in zip(rows, answers):
                # Resampled grids may overhang the clip by a fraction of a bin; answers never do.
                windows[i] = [(min(w.start, duration), min(w.end, duration)) for w in answer.windows]
            if progress:
                progress(n + 1, len(clips))
        return windows

    def evaluate(self, model: Localizer) -> NLQScores:
        windows = self.predict(model)
        return score_windows(
            windows_array(windows), self.gt, self.templates, num_predicted=sum(w is not None for w in windows)
        )
