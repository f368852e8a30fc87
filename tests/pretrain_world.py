"""Zero-shot NLQ on a synthetic world's held-out videos, for the pretraining proof (and its calibration).

Until the zero-shot answerer (``models/zeroshot.py``) is merged, questions are answered here through
:func:`training.curve_eval.evaluate_curves` with the cosine curve of one text per question against the
library's frame features. The text is :func:`narration_phrase`: the normalised question rewritten by a few
rules into the narration style the encoder was pretrained on ("where did i put the keys" -> "puts the keys"),
falling back to the normalised question. At merge time the lead can pass the real zero-shot curve instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from indexing.library import Library
from models.clip_encoder import ClipEncoder
from models.text_normalize import normalize_text
from training.curve_eval import answer_length_proposals, evaluate_curves, random_curve, text_curve
from training.features import LibraryClipFeatures
from training.nlq import load_nlq

REWRITES = [
    (r"^where did i put (the .+)$", r"puts \1"),
    (r"^what did i put (in|on) (the .+)$", r"puts \1 \2"),
    (r"^how many things did i put (in|on) (the .+)$", r"puts \1 \2"),
    (r"^what object did i pick up from (the .+)$", r"picks up from \1"),
    (r"^what object did i take out of (the .+)$", r"takes out of \1"),
    (r"^where (?:is|are|was|were) (the [a-z]+)(?: (?:before|after) .*)?$", r"looks at \1"),
    (r"^in what location did i see (the .+)$", r"looks at \1"),
    (r"^did i leave (the .+) open$", r"opens \1"),
    (r"^did i close (the .+)$", r"closes \1"),
    (r"^how many times did i open (the .+)$", r"opens \1"),
]


def narration_phrase(question: str) -> str:
    text = normalize_text(question)
    for pattern, replacement in REWRITES:
        if re.match(pattern, text):
            return re.sub(pattern, replacement, text)
    return text


def index_videos(root: Path, encoder: ClipEncoder, videos: list[Path]) -> Library:
    library = Library.open(root)
    for v in videos:
        library.add(v, encoder)
    return library


def zero_shot_scores(library: Library, encoder: ClipEncoder, nlq_file: Path) -> dict:
    """R@k@θ of the library's encoder answering ``nlq_file`` zero-shot, and of chance (same evaluator)."""
    dataset = load_nlq(nlq_file)
    features = LibraryClipFeatures(library)
    scores = evaluate_curves(dataset, features, text_curve(encoder.encode_text, lambda q: narration_phrase(q.text)))
    chance = [evaluate_curves(dataset, features, random_curve(seed), proposals=answer_length_proposals(dataset))
              for seed in range(5)]
    return {"model": scores.recall, "chance": {m: float(np.mean([c.recall[m] for c in chance]))
                                               for m in scores.recall}, "queries": scores.num_queries}
