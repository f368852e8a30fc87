"""How well an encoder matches narrations with their moments on held-out videos.

* **text -> moment R@k** (``t2v_R@k``): every distinct narration text of the held-out moments is a query; the
  gallery is all held-out moments, each embedded as the normalised mean of its window's cached frames. A
  query hits at k when one of the k best moments carries that text. Identical texts ("walks to the bed")
  occur at several moments, so any of them is right; ``chance_t2v_R@k`` is the exact chance of that for a
  random ranking, ``1 - C(N - m, k) / C(N, k)`` averaged over queries (m = the text's moments).
* **moment -> text R@1** (``v2t_R@1``): each moment against every distinct held-out text; chance is one over
  the number of texts.

Figures are percentages. An encoder is anything with ``encode_frames(uint8 NHWC) -> [N, D]`` and
``encode_text(list[str]) -> [N, D]``: a :class:`models.clip_encoder.ClipEncoder`, or a model in training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import comb

import numpy as np

from training.pretrain.data import MomentSet

TOP_KS = (1, 5, 10)

EncodeFrames = Callable[[np.ndarray], np.ndarray]
EncodeText = Callable[[Sequence[str]], np.ndarray]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def moment_embeddings(encode_frames: EncodeFrames, moments: MomentSet, batch: int = 256) -> np.ndarray:
    """float32 [N, D]: the normalised mean of each moment's frame embeddings."""
    k = moments.frame_index.shape[1]
    out, pending = [], []
    for i in range(len(moments)):
        pending.append(moments.frames(i))
        if len(pending) * k >= batch or i == len(moments) - 1:
            emb = _normalise(encode_frames(np.concatenate(pending)))
            out.append(emb.reshape(len(pending), k, -1).mean(axis=1))
            pending = []
    return _normalise(np.concatenate(out)) if out else np.zeros((0, 1), np.float32)


def chance_recall(counts: np.ndarray, n: int, k: int) -> float:
    """Mean probability that k of n items drawn at random include one of a query's ``count`` right ones."""
    k = min(k, n)
    return float(np.mean([1.0 - comb(n - m, k) / comb(n, k) for m in counts]))


def retrieval_metrics(encode_frames: EncodeFrames, encode_text: EncodeText, moments: MomentSet) -> dict:
    """The figures above (plus their chance levels and counts) for the moments of ``moments``."""
    if len(moments) == 0:
        return {}
    video = moment_embeddings(encode_frames, moments)
    texts = sorted({m.text for m in moments.moments})
    text_index = {t: i for i, t in enumerate(texts)}
    owner = np.array([text_index[m.text] for m in moments.moments])
    query = _normalise(np.asarray(encode_text(texts), dtype=np.float32))
    sims = query @ video.T  # [T, N]
    order = np.argsort(-sims, axis=1, kind="stable")
    correct = owner[order] == np.arange(len(texts))[:, None]
    counts = np.bincount(owner, minlength=len(texts))
    n = len(moments)
    out: dict[str, float] = {"moments": n, "texts": len(texts)}
    for k in TOP_KS:
        out[f"t2v_R@{k}"] = 100.0 * float(correct[:, :k].any(axis=1).mean())
        out[f"chance_t2v_R@{k}"] = 100.0 * chance_recall(counts, n, k)
    best_text = np.argmax(sims.T, axis=1)
    out["v2t_R@1"] = 100.0 * float((best_text == owner).mean())
    out["chance_v2t_R@1"] = 100.0 / len(texts)
    return out
