"""Scoring any "question -> score curve" answerer on an NLQ file, with the official recall metrics.

Zero-shot answering turns a question into one score per grid bin of a clip (e.g. the cosine similarity of
the question's text embedding with every frame's embedding); :func:`models.windows.curve_to_windows` turns
the curve into ranked windows. :func:`evaluate_curves` runs that for every annotated query of a data set and
scores the windows with :func:`training.metrics.score_windows`, so the same evaluator scores a real answerer,
an untrained encoder and chance alike:

* :func:`text_curve` -- cosine similarity of a text embedding with the clip's features (what zero-shot does);
* :func:`random_curve` with :func:`answer_length_proposals` -- chance: random windows of the answers' typical
  length (a stronger baseline than random windows of random lengths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from models.windows import ProposalConfig, curve_to_windows
from training.features import ClipFeatures, ClipFeatureSource
from training.metrics import NLQScores, score_windows, windows_array
from training.nlq import NLQDataset, Query

CurveFn = Callable[[Query, ClipFeatures], np.ndarray]
"""``curve(query, clip_features) -> float [clip_features.grid.num_bins]``: higher = more likely the answer."""


def evaluate_curves(
    dataset: NLQDataset,
    features: ClipFeatureSource,
    curve: CurveFn,
    *,
    k: int = 5,
    proposals: ProposalConfig = ProposalConfig(),
) -> NLQScores:
    """Top-``k`` windows from ``curve`` for every annotated query, scored against its ground truth."""
    queries = [q for q in dataset.evaluation_queries() if q.has_answer]
    cache: dict[str, ClipFeatures] = {}
    predicted, truth, templates = [], [], []
    for q in queries:
        clip = cache.get(q.clip_uid)
        if clip is None:
            clip = cache[q.clip_uid] = features.get(dataset.clips[q.clip_uid])
        values = np.asarray(curve(q, clip), dtype=np.float64)
        windows = curve_to_windows(values, clip.grid, k, proposals)
        predicted.append([(w.start, w.end) for w in windows])
        truth.append((q.start, q.end))
        templates.append(q.template)
    return score_windows(windows_array(predicted, k), np.array(truth, dtype=np.float64).reshape(-1, 2), templates)


def text_curve(encode_text: Callable[[Sequence[str]], np.ndarray], text_of: Callable[[Query], str]) -> CurveFn:
    """Cosine similarity between ``encode_text([text_of(query)])`` and each of the clip's frame features."""
    cache: dict[str, np.ndarray] = {}

    def curve(query: Query, clip: ClipFeatures) -> np.ndarray:
        text = text_of(query)
        if text not in cache:
            emb = np.asarray(encode_text([text]), dtype=np.float32)[0]
            cache[text] = emb / max(float(np.linalg.norm(emb)), 1e-12)
        feats = np.asarray(clip.features, dtype=np.float32)
        return feats @ cache[text]

    return curve


def random_curve(seed: int = 0) -> CurveFn:
    """Independent noise per bin: with NMS, windows land at random places."""
    rng = np.random.default_rng(seed)
    return lambda _q, clip: rng.random(clip.grid.num_bins)


def answer_length_proposals(dataset: NLQDataset) -> ProposalConfig:
    """Windows of one length only: the median answer length of the data set (for the chance baseline)."""
    lengths = [q.answer_length for q in dataset.evaluation_queries() if q.has_answer]
    median = float(np.median(lengths)) if lengths else 4.0
    return ProposalConfig(scales_s=(median,), smooth_s=0.0, context_weight=0.0)
