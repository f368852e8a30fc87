"""Zero-shot NLQ on a synthetic world's held-out videos, for the pretraining proof (and its calibration).

Questions go through the app's real zero-shot path: :func:`models.zeroshot.embed_question` (question rewrite
and prompt ensemble) and :func:`models.zeroshot.similarity_curve`, then the default proposals of
:func:`models.windows.curve_to_windows` (what :func:`models.zeroshot.zero_shot_windows` uses), scored by
:func:`training.curve_eval.evaluate_curves`. Chance is the same evaluator on random curves with proposals of
the answers' median length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexing.library import Library
from models.clip_encoder import ClipEncoder
from models.zeroshot import embed_question, similarity_curve
from training.curve_eval import CurveFn, answer_length_proposals, evaluate_curves, random_curve
from training.features import LibraryClipFeatures
from training.nlq import load_nlq


def zero_shot_curve(encoder: ClipEncoder) -> CurveFn:
    """The zero-shot answerer's cosine curve of a query over a clip's frames (question vectors cached)."""
    vectors: dict[str, np.ndarray] = {}

    def curve(query, clip) -> np.ndarray:
        if query.text not in vectors:
            vectors[query.text] = embed_question(encoder, query.text)[0]
        return similarity_curve(np.asarray(clip.features), vectors[query.text])

    return curve


def index_videos(root: Path, encoder: ClipEncoder, videos: list[Path]) -> Library:
    library = Library.open(root)
    for v in videos:
        library.add(v, encoder)
    return library


def zero_shot_scores(library: Library, encoder: ClipEncoder, nlq_file: Path) -> dict:
    """R@k@θ of the library's encoder answering ``nlq_file`` zero-shot, and of chance (same evaluator)."""
    dataset = load_nlq(nlq_file)
    features = LibraryClipFeatures(library)
    scores = evaluate_curves(dataset, features, zero_shot_curve(encoder))
    chance = [
        evaluate_curves(dataset, features, random_curve(seed), proposals=answer_length_proposals(dataset))
        for seed in range(5)
    ]
    return {
        "model": scores.recall,
        "chance": {m: float(np.mean([c.recall[m] for c in chance])) for m in scores.recall},
        "queries": scores.num_queries,
    }
