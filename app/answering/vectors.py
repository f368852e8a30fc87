"""Question -> CLIP text vector: the prompt ensemble of :mod:`models.zeroshot`, encoded in few batches and
remembered, because CLIP's text tower is the slowest step of a question on a CPU."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from models.questions import Rewrite
from models.zeroshot import embed_prompts


class VectorCache:
    """Question vectors already made (LRU): CLIP's text tower costs ~0.5 s per prompt on a CPU
    (bench/README.md), and a user re-asks the same question with another scope, k or mode."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            vec = self._items.pop(key, None)
            if vec is not None:
                self._items[key] = vec
            return vec

    def put(self, key: tuple, vec: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vec
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))


def prompt_vectors(
    clip, rewrites: Sequence[Rewrite], batch: int = 256, cache: VectorCache | None = None
) -> list[np.ndarray]:
    """Every question's prompt-ensemble vector, encoding all new prompts of all questions in few batches."""
    keys = [tuple((p.text, p.weight) for p in r.prompts) for r in rewrites]
    found = [cache.get(k) if cache is not None else None for k in keys]
    todo = [r for r, v in zip(rewrites, found) if v is None]
    texts: dict[str, int] = {}
    for r in todo:
        for p in r.prompts:
            texts.setdefault(p.text, len(texts))
    order = list(texts)
    emb = (
        np.concatenate(
            [np.asarray(clip.encode_text(order[s : s + batch]), np.float32) for s in range(0, len(order), batch)]
        )
        if order
        else np.zeros((0, clip.dim), np.float32)
    )

    class _Lookup:  # embed_prompts' encoder interface over the rows just encoded
        dim = clip.dim

        @staticmethod
        def encode_text(ts):
            return emb[[texts[t] for t in ts]]

    out = []
    for r, key, vec in zip(rewrites, keys, found):
        if vec is None:
            vec = embed_prompts(_Lookup, r.prompts)
            if cache is not None:
                cache.put(key, vec)
        out.append(vec)
    return out
