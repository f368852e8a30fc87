"""Whether a question's object is ever on screen in a clip (:mod:`models.presence`), for one CLIP encoder.

The vocabulary's text vectors are encoded once per answerer (a few hundred names: about a second on a CPU,
the first time an object question is asked); an object missing from the vocabulary is encoded when first
asked about and kept. Presence is a second piece of evidence beside the best window's score for the
"no good match" decision (:mod:`app.answering.calibration`); it never changes which moments are returned.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from models.presence import PresenceConfig, presence, vocabulary
from models.questions import Rewrite, bare


class PresenceScorer:
    """Frames classified among everyday object names by one CLIP."""

    def __init__(self, encoder, config: PresenceConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config = config or PresenceConfig()
        self.scale = 1.0 / config.temperature if config.temperature else float(getattr(encoder, "logit_scale", 100.0))
        self._names: list[str] = []
        self._column: dict[str, int] = {}
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def _encode(self, names: Sequence[str]) -> np.ndarray:
        vecs = np.asarray(self.encoder.encode_text([self.config.template.format(n) for n in names]), np.float32)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def columns(self, rewrites: Sequence[Rewrite]) -> list[int | None]:
        """Each question's object as a column of the name matrix (None for a question about no object)."""
        wanted = [bare(r.object).lower() if r.object else None for r in rewrites]
        with self._lock:
            if self._matrix is None:
                self._names = list(vocabulary())
                self._column = {n: i for i, n in enumerate(self._names)}
                self._matrix = self._encode(self._names)
            new = sorted({w for w in wanted if w and w not in self._column})
            if new:
                self._matrix = np.concatenate([self._matrix, self._encode(new)])
                for n in new:
                    self._column[n] = len(self._names)
                    self._names.append(n)
            return [None if w is None else self._column[w] for w in wanted]

    def score(self, features: np.ndarray, columns: Sequence[int | None]) -> list[float | None]:
        """Each object's presence in ``features`` (None where the question names no object)."""
        asked = sorted({c for c in columns if c is not None})
        if not asked:
            return [None] * len(columns)
        with self._lock:
            matrix = self._matrix
        if matrix is None:  # columns() makes it: no column can exist before
            raise ValueError("presence columns must come from PresenceScorer.columns")
        got = dict(zip(asked, presence(features, matrix, asked, self.scale)))
        return [None if c is None else float(got[c]) for c in columns]
