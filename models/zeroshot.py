"""Zero-shot moment search: a question becomes a small ensemble of CLIP prompts, then a score per grid frame.

Why rewrite questions at all. CLIP was trained on captions of pictures ("a photo of keys on a table"), and
EgoRecall's own CLIP is later fine-tuned on Ego4D narrations cleaned by
:func:`models.text_normalize.normalize_text` ("#C C puts the keys in the drawer" -> "puts the keys in the
drawer"). Neither ever saw a *question*: "where did I put my keys" embeds close to other questions, not to
frames of keys. So the question is turned into what the frames of its answer would be captioned or narrated
as, and those texts are embedded instead.

How a question is read and turned into weighted prompts is :mod:`models.questions`
(:func:`rewrite_question`).

The prompts are embedded with ``ClipEncoder.encode_text`` and combined by a weighted mean of their
L2-normalised embeddings, re-normalised (prompt ensembling, as in CLIP's zero-shot classifiers): the mean
direction keeps what the phrasings share and averages out what each adds by accident. Every grid frame is
then scored by the cosine between its feature and that vector (:func:`similarity_curve`) and the curve
becomes ranked windows with :func:`models.windows.curve_to_windows`. Scores stay cosines, so windows of
different videos indexed by the same encoder can be ranked together.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models.grid import TimeGrid
from models.questions import EmptyQuestion, Prompt, Rewrite, rewrite_question
from models.threads import torch_threads
from models.windows import ProposalConfig, Window, curve_to_windows, smooth

__all__ = [
    "anchor_occurrences",
    "anchor_span",
    "order_by_anchor",
    "order_by_occurrences",
    "EmptyQuestion",
    "Prompt",
    "Rewrite",
    "rewrite_question",
    "TextEmbedder",
    "embed_prompts",
    "embed_question",
    "similarity_curve",
    "ZeroShotConfig",
    "zero_shot_windows",
]


# ------------------------------------------------------------------------------------------ embedding
class TextEmbedder(Protocol):
    """What zero-shot search needs of an encoder (``ClipEncoder`` provides it)."""

    dim: int

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


def embed_prompts(encoder: TextEmbedder, prompts: Sequence[Prompt]) -> np.ndarray:
    """Weighted mean of the prompts' L2-normalised embeddings, re-normalised: float32 [dim]."""
    if not prompts:
        raise EmptyQuestion("there is nothing to search for")
    emb = np.asarray(encoder.encode_text([p.text for p in prompts]), dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    weights = np.asarray([p.weight for p in prompts], dtype=np.float32)
    vec = (weights[:, None] * emb).sum(0) / weights.sum()
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm < 1e-6:  # opposite prompts cancelled: fall back to the strongest
        vec, norm = emb[int(np.argmax(weights))], 1.0
    return (vec / norm).astype(np.float32)


def embed_question(encoder: TextEmbedder, question: str) -> tuple[np.ndarray, Rewrite]:
    """The question's ensemble vector and the rewrite it came from."""
    rewrite = rewrite_question(question)
    return embed_prompts(encoder, rewrite.prompts), rewrite


SERIAL_ELEMENTS = 32_768
"""torch runs an element-wise op of up to this many elements on the calling thread (its parallel grain)."""


def _tensor_view(features: np.ndarray):
    """The features as a torch tensor without copying (a read-only memory map is never written here)."""
    import torch

    arr = np.ascontiguousarray(features)
    if arr.dtype not in (np.float16, np.float32):
        arr = arr.astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr)


def similarity_curve(features: np.ndarray, query: np.ndarray, chunk_rows: int | None = None) -> np.ndarray:
    """Cosine of every feature row with one or more unit query vectors: float32 [N] (or [Q, N]).

    ``features`` may be a float16 memory map of any length. One question (a [dim] query) is one
    matrix-vector product straight on the float16 rows, on one thread (:mod:`models.threads`) -- torch
    accumulates in float32 and rounds each cosine to float16 (error <= 1e-4 at the cosines CLIP gives,
    |c| < 0.5), reading the features once with no float32 copy, the fastest way to score a video
    (bench/README.md). Several questions (a [Q, dim]
    query, as ``predict`` sends) are converted to float32 in chunks of ``chunk_rows`` rows (default: what
    torch converts on the calling thread) and multiplied exactly.
    """
    import torch

    q = np.asarray(query, dtype=np.float32)
    with torch.inference_mode():
        if q.ndim == 1:
            t = _tensor_view(features)
            with torch_threads(1):  # a few hundred microseconds: waking a second thread costs more
                return torch.mv(t, torch.from_numpy(q).to(t.dtype)).float().numpy()
        tq = torch.from_numpy(np.ascontiguousarray(q))
        n = len(features)
        rows = chunk_rows or max(1, SERIAL_ELEMENTS // max(1, tq.shape[1]))
        out = np.empty((tq.shape[0], n), dtype=np.float32)
        for s in range(0, n, rows):
            block = _tensor_view(features[s : s + rows])
            out[:, s : s + len(block)] = (tq @ block.float().T).numpy()
        return out


@dataclass(frozen=True)
class ZeroShotConfig:
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    order_penalty: float = 0.25
    """How far (as a share of the curve's range) bins on the wrong side of a before/after anchor are pushed
    down: soft, so a missed anchor costs little (bench/bench_answers.py: 0.1-0.5 all within a query)."""
    anchor_smooth_s: float = 2.0
    anchor_peak_fraction: float = 0.2
    """An anchor event happens wherever its smoothed curve peaks within this share of its range from the top
    (repeats of one action look alike; looser, noise peaks became occurrences: tuning worlds, R@5 -6 points)."""
    anchor_min_gap_s: float = 8.0
    """Two peaks of the anchor closer than this are one occurrence."""
    anchor_horizon_s: float = 30.0
    """An answer up to this far from an occurrence on the asked side is not lowered at all, one twice as far is
    lowered fully: "before I opened the fridge" means shortly before some opening, not any time before the last
    one. Chosen on the tuning worlds' before/after queries, where it keeps the single-peak rule's 28.6 / 57.1
    R@1@0.3 / R@5@0.3 (lowering in proportion to the distance from 0 s lost 3 queries of R@5)."""


def anchor_span(anchor_curve: np.ndarray, grid: TimeGrid, config: ZeroShotConfig = ZeroShotConfig()):
    """(lowest, highest) of the anchor's smoothed curve: over several videos, the widest of theirs is the range
    an occurrence must stand out in (:func:`anchor_occurrences`' ``span``)."""
    curve = smooth(np.asarray(anchor_curve, np.float64), config.anchor_smooth_s * grid.rate_hz)
    return (float(curve.min()), float(curve.max())) if curve.size else (np.inf, -np.inf)


def anchor_occurrences(
    anchor_curve: np.ndarray,
    grid: TimeGrid,
    config: ZeroShotConfig = ZeroShotConfig(),
    *,
    span: tuple[float, float] | None = None,
):
    """Times (s) at which the anchor event happens: the peaks of its smoothed curve in the top
    ``anchor_peak_fraction`` of its range, at least ``anchor_min_gap_s`` apart (best first kept). An hour with
    twenty fridge openings has twenty, not the one highest. ``span``: the range to measure against when the
    event is looked for in several videos (:func:`anchor_span` over all of them): a video where it never
    happens then has no occurrence, instead of its own noise's highest peaks."""
    curve = smooth(np.asarray(anchor_curve, np.float64), config.anchor_smooth_s * grid.rate_hz)
    times = grid.sample_times()
    if curve.size == 0:
        return np.zeros(0)
    lo, hi = span if span is not None else (float(curve.min()), float(curve.max()))
    bar = hi - config.anchor_peak_fraction * (hi - lo)
    left = np.concatenate(([-np.inf], curve[:-1]))
    right = np.concatenate((curve[1:], [-np.inf]))
    peaks = np.flatnonzero((curve >= left) & (curve >= right) & (curve >= bar))
    gap = config.anchor_min_gap_s
    kept: list[float] = []  # sorted: only a peak's two neighbours in time can be too close
    for t in times[peaks[np.argsort(-curve[peaks], kind="stable")]].tolist():
        j = bisect.bisect_left(kept, t)
        if (j == len(kept) or kept[j] - t >= gap) and (j == 0 or t - kept[j - 1] >= gap):
            kept.insert(j, t)
    return np.asarray(kept)


def order_by_anchor(
    curve: np.ndarray,
    anchor_curve: np.ndarray,
    relation: str,
    grid: TimeGrid,
    config: ZeroShotConfig = ZeroShotConfig(),
) -> np.ndarray:
    """The object's curve ordered by the anchor event's occurrences found in this clip
    (:func:`anchor_occurrences`, :func:`order_by_occurrences`)."""
    return order_by_occurrences(curve, anchor_occurrences(anchor_curve, grid, config), relation, grid, config)


def order_by_occurrences(
    curve: np.ndarray,
    occurrences: np.ndarray,
    relation: str,
    grid: TimeGrid,
    config: ZeroShotConfig = ZeroShotConfig(),
    *,
    horizon: bool = True,
) -> np.ndarray:
    """The object's curve lowered where it is on the wrong side of every occurrence of the anchor event, or far
    from the nearest one on the right side: "after Y" favours moments shortly after *some* Y, "before Y"
    moments shortly before some Y. Each bin is lowered by ``order_penalty`` x the curve's range x
    clip(gap / ``anchor_horizon_s`` - 1, 0, 1), the gap being the time to the nearest occurrence on the right
    side (infinite when there is none). ``occurrences``: seconds on the clip's grid; they may lie outside the
    clip (found in the videos recorded before or after it), which is how an order crosses a video boundary.
    None at all: the curve as it is (nothing to order by). ``horizon=False``: only the wrong side is lowered --
    across a library, where "the mug after I opened the fridge" may be an hour later in another recording and
    the nearest confident moment is put first by the ranking (:mod:`app.answering.anchoring`; the tuning
    week's before/after questions, bench/README.md)."""
    curve = np.asarray(curve, dtype=np.float64)
    at = np.sort(np.asarray(occurrences, dtype=np.float64))
    if at.size == 0 or curve.size == 0:
        return curve
    times = grid.sample_times()
    if relation == "before":  # the next occurrence at or after each bin
        i = np.searchsorted(at, times, side="left")
        gap = np.where(i < at.size, at[np.minimum(i, at.size - 1)] - times, np.inf)
    else:  # the last occurrence at or before each bin
        i = np.searchsorted(at, times, side="right") - 1
        gap = np.where(i >= 0, times - at[np.maximum(i, 0)], np.inf)
    span = float(curve.max() - curve.min())
    if horizon:
        far = np.clip(gap / config.anchor_horizon_s - 1.0, 0.0, 1.0)  # 0 within the horizon, 1 from twice it
    else:
        far = np.where(np.isfinite(gap), 0.0, 1.0)
    return curve - config.order_penalty * span * far


def zero_shot_windows(
    curve: np.ndarray, grid: TimeGrid, k: int = 5, config: ZeroShotConfig = ZeroShotConfig(), *, fill: bool = True
) -> list[Window]:
    """Ranked, non-overlapping windows from a similarity curve (scores in cosine units)."""
    return curve_to_windows(curve, grid, k, config.proposals, fill=fill)
