"""Is the object of a question ever on screen in a clip? CLIP as an open-vocabulary classifier, frame by frame.

Why not the answer's own score. A window's cosine says how well frames match the question *relative to the
other frames*; an object that never appears still has a best frame, and its cosine is not on a scale shared
by other objects (some names sit closer to every frame than others). CLIP's own zero-shot classifier is
calibrated where a single cosine is not: the softmax of the frame against many names, at the encoder's
learned temperature. So each frame is classified among the object's name and a vocabulary of everyday
objects (``models/grammar/nouns.json``), and the clip's *presence* is the highest probability any frame
gives the object. An absent object loses to some other name in every frame; a present one wins somewhere.

On the answer benchmark (bench/README.md) this separates questions about absent objects from answered ones
better than the best window's score, and the two together better than either; confidence calibration
(:mod:`app.answering.calibration`) uses both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

NOUNS_FILE = Path(__file__).with_name("grammar") / "nouns.json"


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The everyday object names an object is told apart from (sorted, unique)."""
    data = json.loads(NOUNS_FILE.read_text(encoding="utf-8"))
    return tuple(sorted({str(n).strip().lower() for n in data["nouns"] if str(n).strip()}))


@dataclass(frozen=True)
class PresenceConfig:
    template: str = "{}"
    """How a name is written for the text tower. The bare name beat "a photo of {}" on the answer benchmark
    (its encoder learnt from narrations, which name objects bare); CLIP's web captions may prefer the photo."""
    temperature: float | None = None
    """Softmax temperature (logits = cosine / temperature); None = the encoder's learned one (1/logit_scale)."""


def presence_curves(features: np.ndarray, names: np.ndarray, columns: list[int], scale: float) -> np.ndarray:
    """Per frame, the probability of each name in ``columns`` among all ``names`` (unit rows [V, dim]):
    float32 [len(columns), N]. The frames are classified once for all the columns asked.

    ``features`` may be float16 and unnormalised; each row is normalised (a frame's norm must not act as a
    temperature)."""
    f = np.asarray(features, dtype=np.float32)
    if f.size == 0 or not columns:
        return np.zeros((len(columns), len(f)), np.float32)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    logits = scale * (f @ np.asarray(names, np.float32).T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p[:, columns] / p.sum(axis=1, keepdims=True)).T.astype(np.float32)


def presence(features: np.ndarray, names: np.ndarray, columns: list[int], scale: float) -> np.ndarray:
    """For each column, the highest probability any frame gives that name: float64 [len(columns)] (0 for a
    clip with no frames)."""
    curves = presence_curves(features, names, columns, scale)
    if curves.shape[1] == 0:
        return np.zeros(len(columns))
    return curves.max(axis=1).astype(np.float64)
