"""Scores over time -> a few distinct, ranked time windows.

Both answer modes end here. Zero-shot mode has a similarity *curve* (one score per grid bin); trained
localizers have *start/end* distributions. Either way the candidates are many and overlapping, and a user
asking "where did I put my keys?" wants five different moments, so the last step is always temporal
non-maximum suppression (the reference NLQ baselines skip it and return near-duplicates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.grid import TimeGrid

DEFAULT_NMS_IOU = 0.3
"""Two answers overlapping more than this are the same moment. The NLQ metrics count a hit from IoU > 0.3,
so suppressing at 0.3 keeps the five answers from competing for the same ground truth."""


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    score: float

    @property
    def length(self) -> float:
        return self.end - self.start


def temporal_iou(a: tuple[float, float] | Window, b: tuple[float, float] | Window) -> float:
    """Intersection over union of two time ranges (Ego4D's definition: union spans min start..max end)."""
    s1, e1 = (a.start, a.end) if isinstance(a, Window) else a
    s2, e2 = (b.start, b.end) if isinstance(b, Window) else b
    union = max(e1, e2) - min(s1, s2)
    if union <= 0:
        return 0.0
    return max(0.0, min(e1, e2) - max(s1, s2)) / union


DEFAULT_MAX_CONTAINMENT = 0.7
"""A short window lying mostly inside a kept one is a piece of the same moment, whatever its IoU."""


def containment(a: Window, b: Window) -> float:
    """Share of the shorter window that lies inside the other."""
    shorter = min(a.length, b.length)
    if shorter <= 0:
        return 0.0
    return max(0.0, min(a.end, b.end) - max(a.start, b.start)) / shorter


def temporal_nms(
    windows: Iterable[Window],
    k: int,
    iou_threshold: float = DEFAULT_NMS_IOU,
    max_containment: float = DEFAULT_MAX_CONTAINMENT,
) -> list[Window]:
    """Greedy NMS: best first, dropping windows that overlap a kept one (by IoU or by containment)."""
    kept: list[Window] = []
    for w in sorted(windows, key=lambda w: w.score, reverse=True):
        if all(temporal_iou(w, o) <= iou_threshold and containment(w, o) <= max_containment for o in kept):
            kept.append(w)
            if len(kept) == k:
                break
    return kept


def smooth(curve: np.ndarray, width_bins: float) -> np.ndarray:
    """Gaussian smoothing (sigma = width/2) with edge padding along the last axis, so a batch of curves
    (queries x videos x bins) is smoothed at once; a width under one bin is a no-op."""
    curve = np.asarray(curve, dtype=np.float64)
    if width_bins < 1.0 or curve.shape[-1] < 2:
        return curve.copy()
    sigma = width_bins / 2.0
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    pad = [(0, 0)] * (curve.ndim - 1) + [(radius, radius)]
    padded = np.pad(curve, pad, mode="edge")
    n = curve.shape[-1]
    out = np.zeros_like(curve)
    for i, tap in enumerate(taps):
        out += tap * padded[..., i : i + n]
    return out


def window_scores(csum: np.ndarray, length: int, context_weight: float) -> np.ndarray:
    """Every ``length``-bin window's score along the last axis, from the cumulative sums of a smoothed curve
    (a leading 0 on that axis): its mean plus ``context_weight`` times its contrast with the same length on
    either side (clipped at the ends; no context at all scores as no contrast)."""
    n = csum.shape[-1] - 1
    starts = np.arange(0, n - length + 1)
    ends = starts + length  # exclusive
    inside = (csum[..., ends] - csum[..., starts]) / length
    left_lo = np.maximum(starts - length, 0)
    right_hi = np.minimum(ends + length, n)
    ctx_sum = (csum[..., starts] - csum[..., left_lo]) + (csum[..., right_hi] - csum[..., ends])
    ctx_len = (starts - left_lo) + (right_hi - ends)
    context = np.where(ctx_len > 0, ctx_sum / np.maximum(ctx_len, 1), inside)
    return inside + context_weight * (inside - context)


def best_window_scores(curves: np.ndarray, grid: TimeGrid, config: ProposalConfig | None = None) -> np.ndarray:
    """The score of the window :func:`curve_to_windows` ranks first, for each curve of a batch (last axis =
    bins of ``grid``): the best window of any scale, which NMS always keeps. An exact bound for search: no
    moment of a curve scores above it."""
    config = config or ProposalConfig()
    values = smooth(curves, config.smooth_s * grid.rate_hz)
    csum = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(values, axis=-1)], axis=-1)
    return np.max(
        [window_scores(csum, length, config.context_weight).max(axis=-1) for length in _scale_lengths(grid, config)],
        axis=0,
    )


@dataclass(frozen=True)
class ProposalConfig:
    """How a score curve becomes candidate windows; every default lives here.

    Window lengths are calibrated to the answers users look for, not spread over every scale: Ego4D's NLQ
    answers have a median of about 4 s (``answer_length_s``), and proposals are that length times
    ``length_factors``. ``scales_s`` replaces them by absolute lengths (e.g. one length for a chance baseline).
    """

    answer_length_s: float = 4.0
    """The typical answer length, seconds (Ego4D NLQ v2: median 4.0 s; v1: 3.05 s)."""
    length_factors: tuple[float, ...] = (0.75, 1.0, 1.25)
    """Chosen on bench/bench_answers.py: lengths close to the answer's beat a wide spread (1-32 s), whose long
    windows win on mean score and rarely reach IoU 0.5 with a 3-4 s answer (zero-shot R@5@0.3 52 -> 62)."""
    scales_s: tuple[float, ...] | None = None
    """Absolute proposal lengths in seconds; None = ``answer_length_s * length_factors``."""
    smooth_s: float = 1.0
    context_weight: float = 0.5
    """A window scores its mean plus this times its contrast with the same length on either side, so a
    peak beats a plateau of equal height: answers are moments when something changes."""
    min_length_s: float = 0.0
    max_length_s: float | None = None
    nms_iou: float = DEFAULT_NMS_IOU
    max_containment: float = DEFAULT_MAX_CONTAINMENT
    refine: bool = False
    """Move each kept window's edges to where the smoothed curve falls below ``refine_level`` of the way
    from the local baseline to the window's peak (boundary refinement on the score curve). Off: on the answer
    benchmark it lost 4-8 points of R@1 at every level tried (CLIP curves are too flat at the edges)."""
    refine_level: float = 0.5

    @property
    def lengths_s(self) -> tuple[float, ...]:
        if self.scales_s is not None:
            return tuple(self.scales_s)
        return tuple(self.answer_length_s * f for f in self.length_factors)


def curve_to_windows(
    curve: np.ndarray, grid: TimeGrid, k: int = 5, config: ProposalConfig = ProposalConfig(), *, fill: bool = True
) -> list[Window]:
    """Multi-scale sliding windows over a per-bin score curve, scored, then NMS'd down to ``k``.

    Candidates per scale are the *local maxima* of that scale's window score (each best within half a window
    of itself), so the pool holds many different places rather than many shifts of the best one, and the
    answer has ``k`` distinct windows whenever the video is long enough for them. Scores stay in the curve's
    units (e.g. cosine similarity), so windows from different videos scored by the same encoder can be ranked
    against each other. ``fill=False``: fewer than ``k`` windows when the distinct peaks run out (for a region of
    a longer video), instead of every position as a candidate.
    """
    curve = np.asarray(curve, dtype=np.float64)
    n = curve.size
    if n != grid.num_bins:
        raise ValueError(f"curve has {n} values but the grid has {grid.num_bins} bins")
    values = smooth(curve, config.smooth_s * grid.rate_hz)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    lengths = _scale_lengths(grid, config)
    keep = max(4 * k, 16)
    peaks, everything = [], []
    for length in lengths:
        starts = np.arange(0, n - length + 1)
        ends = starts + length  # exclusive
        scores = window_scores(csum, length, config.context_weight)
        top = _local_maxima(scores, max(1, length // 2))
        if len(top) > keep:  # only the best few per scale can survive NMS
            top = top[np.argpartition(-scores[top], keep - 1)[:keep]]
        peaks.append((starts[top], ends[top] - 1, scores[top]))
        everything.append((starts, ends - 1, scores))
    kept = _nms_pool(peaks, values, grid, k, config)
    if fill and len(kept) < k:  # the peaks ran out (a short or flat curve): every position is a candidate
        kept = _nms_pool(everything, values, grid, k, config, fill=True)
    return kept


def _nms_pool(
    pool: list[tuple], values: np.ndarray, grid: TimeGrid, k: int, config: ProposalConfig, fill: bool = False
) -> list[Window]:
    first, last, score = (np.concatenate(parts) for parts in zip(*pool))
    if config.refine:
        first, last = _refine_edges(values, first, last, config.refine_level)
    s_sec, e_sec = grid.bins_to_seconds(first, last)
    s_sec, e_sec = np.atleast_1d(s_sec), np.atleast_1d(e_sec)
    kept = _nms_arrays(s_sec, e_sec, score, k, config.nms_iou, config.max_containment)
    if fill and len(kept) < k:  # too short for k distinct windows: overlapping ones rather than fewer
        kept = _fill(kept, s_sec, e_sec, score, k)
    return kept


def _local_maxima(scores: np.ndarray, radius: int) -> np.ndarray:
    """Indices whose score is the largest within ``radius`` positions either side (first of ties)."""
    n = len(scores)
    if n <= 1:
        return np.arange(n)
    padded = np.pad(scores, radius, mode="constant", constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    best = windows.argmax(axis=1)  # first maximum of each neighbourhood
    return np.flatnonzero(best == radius)


def _refine_edges(values: np.ndarray, first: np.ndarray, last: np.ndarray, level: float) -> tuple:
    """Each window grown or shrunk to the run of bins around its peak that stays above ``level`` of the way
    from the baseline (the lower of the two window-length neighbourhoods' minima) to the peak."""
    n = len(values)
    out_first, out_last = first.copy(), last.copy()
    for i, (a, b) in enumerate(zip(first, last)):
        length = b - a + 1
        lo, hi = max(0, a - length), min(n, b + length + 1)
        region = values[lo:hi]
        peak_at = a + int(np.argmax(values[a : b + 1]))
        peak = values[peak_at]
        base = min(values[lo:a].min() if a > lo else peak, values[b + 1 : hi].min() if hi > b + 1 else peak)
        if not peak > base:
            continue
        above = region >= base + level * (peak - base)
        s = e = peak_at - lo
        while s > 0 and above[s - 1]:
            s -= 1
        while e < len(region) - 1 and above[e + 1]:
            e += 1
        out_first[i], out_last[i] = lo + s, lo + e
    return out_first, out_last


def _fill(kept: list[Window], start: np.ndarray, end: np.ndarray, score: np.ndarray, k: int) -> list[Window]:
    """Top up to ``k`` windows with the best remaining candidates that are not copies of a kept one."""
    taken = {(w.start, w.end) for w in kept}
    out = list(kept)
    for i in np.argsort(-score, kind="stable"):
        if len(out) == k:
            break
        key = (float(start[i]), float(end[i]))
        if key not in taken and end[i] > start[i]:
            taken.add(key)
            out.append(Window(key[0], key[1], float(score[i])))
    return out


def _nms_arrays(
    start: np.ndarray,
    end: np.ndarray,
    score: np.ndarray,
    k: int,
    iou_threshold: float,
    max_containment: float = DEFAULT_MAX_CONTAINMENT,
) -> list[Window]:
    """:func:`temporal_nms` on candidate arrays (same rule, vectorised: a question scores several videos
    with ~100 candidates each, and per-candidate Python objects dominated the cost)."""
    order = np.argsort(-score, kind="stable")
    start, end, score = start[order], end[order], score[order]
    length = end - start
    alive = np.ones(len(score), dtype=bool)
    kept: list[Window] = []
    while len(kept) < k:
        remaining = np.flatnonzero(alive)
        if remaining.size == 0:
            break
        i = int(remaining[0])
        kept.append(Window(float(start[i]), float(end[i]), float(score[i])))
        overlap = np.maximum(0.0, np.minimum(end, end[i]) - np.maximum(start, start[i]))
        union = np.maximum(end, end[i]) - np.minimum(start, start[i])
        iou = np.where(union > 0, overlap / np.where(union > 0, union, 1.0), 0.0)
        shorter = np.minimum(length, length[i])
        contained = np.where(shorter > 0, overlap / np.where(shorter > 0, shorter, 1.0), 0.0)
        alive &= (iou <= iou_threshold) & (contained <= max_containment)
        alive[i] = False
    return kept


def window_context_s(config: ProposalConfig = ProposalConfig()) -> float:
    """How far either side of a window the score curve decides whether :func:`curve_to_windows` proposes it
    and how it scores: its context (one length each side), the local-maximum test (half a length) and the
    smoothing kernel (three sigmas). A region of a video padded by this much yields, inside the padding, the
    windows the whole video yields there -- so a library search may score only the regions near its hits."""
    longest = max(config.lengths_s) if config.lengths_s else 0.0
    if config.max_length_s is not None:
        longest = min(longest, config.max_length_s)
    return 1.5 * longest + 1.5 * config.smooth_s


def _scale_lengths(grid: TimeGrid, config: ProposalConfig) -> list[int]:
    n = grid.num_bins
    max_len = n if config.max_length_s is None else max(1, int(round(config.max_length_s * grid.rate_hz)))
    min_len = max(1, int(np.ceil(config.min_length_s * grid.rate_hz - 1e-9)))
    lengths = sorted({int(np.clip(round(s * grid.rate_hz), min_len, min(max_len, n))) for s in config.lengths_s})
    return lengths or [min(min_len, n)]


LENGTH_PRIOR_WEIGHT = 1.0
"""How much a trained model's span choice leans on the lengths of its training answers. Chosen on the corpus's
validation house (bench/README.md, "A prior on answer length"): over seven corpus checkpoints (six VSLNet, one
ReLER) R@5@0.3 +2.7 to +6.0 points (+4.3 on average), R@1@0.3 -0.6 to +0.7 (-0.2); weights 0.5 and 2 gave the
same picture. Once on the report worlds: R@5@0.3 +3.0, R@5@0.5 +4.9, R@1@0.3 -0.8."""
MIN_LOG_STD = 0.1
"""A floor on the prior's spread (log seconds), so answers all of one length do not forbid every other."""


@dataclass(frozen=True)
class LengthPrior:
    """A log-normal over answer lengths (seconds): how long the answers a model was trained on were.

    A span predictor scores start and end apart (p_start * p_end); nothing in that product knows that answers
    are seconds long, so among its top spans are some of a fraction of a second or of a minute. Multiplying by
    the density of the span's length (to the power ``weight``) ranks the plausible ones first."""

    log_mean: float
    log_std: float
    weight: float = LENGTH_PRIOR_WEIGHT

    @classmethod
    def fit(cls, lengths_s: Sequence[float], weight: float = LENGTH_PRIOR_WEIGHT) -> LengthPrior | None:
        """The prior of these answer lengths (non-positive ones ignored); None for fewer than two."""
        x = np.log(np.asarray([v for v in lengths_s if v > 0], dtype=np.float64))
        if x.size < 2:
            return None
        return cls(float(x.mean()), max(float(x.std()), MIN_LOG_STD), weight)

    def factors(self, lengths_s: np.ndarray) -> np.ndarray:
        """The multiplier of each span length: its unnormalised density, to the power ``weight``."""
        z = (np.log(np.maximum(np.asarray(lengths_s, dtype=np.float64), 1e-6)) - self.log_mean) / self.log_std
        return np.exp(-0.5 * self.weight * z * z)

    def to_dict(self) -> dict[str, float]:
        return {"log_mean": self.log_mean, "log_std": self.log_std, "weight": self.weight}

    @classmethod
    def from_dict(cls, value: object) -> LengthPrior | None:
        """The prior a checkpoint recorded, or None when it recorded none (or nothing usable)."""
        if not isinstance(value, dict):
            return None
        try:
            weight = float(value.get("weight", LENGTH_PRIOR_WEIGHT))
            prior = cls(float(value["log_mean"]), float(value["log_std"]), weight)
        except (KeyError, TypeError, ValueError):
            return None
        ok = all(np.isfinite([prior.log_mean, prior.log_std, prior.weight]))
        return prior if ok and prior.log_std > 0 and prior.weight >= 0 else None


def span_windows(
    start_prob: np.ndarray,
    end_prob: np.ndarray,
    grid: TimeGrid,
    k: int = 5,
    max_length_bins: int | None = None,
    nms_iou: float = DEFAULT_NMS_IOU,
    pool: int = 200,
    length_prior: LengthPrior | None = None,
) -> list[Window]:
    """Top-k windows from a span predictor's start and end distributions (score = p_start * p_end, s <= e,
    times ``length_prior``'s factor of the span's length when given).

    Only spans up to ``max_length_bins`` long are scored (a band of the upper triangle), which keeps long
    videos linear in length; the best ``pool`` spans then go through NMS.
    """
    ps = np.asarray(start_prob, dtype=np.float64)
    pe = np.asarray(end_prob, dtype=np.float64)
    n = ps.size
    if pe.size != n or n != grid.num_bins:
        raise ValueError(f"start/end have {ps.size}/{pe.size} values but the grid has {grid.num_bins} bins")
    band = n if max_length_bins is None else max(1, min(n, max_length_bins))
    factor = np.ones(band) if length_prior is None else length_prior.factors(np.arange(1, band + 1) / grid.rate_hz)
    scores = np.full((band, n), -np.inf)
    for extra in range(band):  # scores[extra, s] is the span s..s+extra
        scores[extra, : n - extra] = ps[: n - extra] * pe[extra:] * factor[extra]
    flat = scores.ravel()
    take = min(pool, int(np.isfinite(flat).sum()))
    top = np.argpartition(-flat, take - 1)[:take]
    d, s = np.unravel_index(top, scores.shape)
    s_sec, e_sec = grid.bins_to_seconds(s, s + d)
    windows = [Window(float(a), float(b), float(c)) for a, b, c in zip(s_sec, e_sec, flat[top])]
    return temporal_nms(windows, k, nms_iou)


def rank_across(
    videos: Sequence[tuple[str, Sequence[Window]]], k: int, iou_threshold: float = DEFAULT_NMS_IOU
) -> list[tuple[str, Window]]:
    """Merge per-video answers into one ranking by score. A short video tops up its answer with overlapping
    windows when it has too few distinct ones (:func:`curve_to_windows`); across videos those come only after
    every distinct moment, so one short video cannot fill the answer with copies of one moment."""
    merged = sorted(((vid, w) for vid, ws in videos for w in ws), key=lambda item: item[1].score, reverse=True)
    distinct: list[tuple[str, Window]] = []
    later: list[tuple[str, Window]] = []
    for vid, w in merged:
        same = [o for v, o in distinct if v == vid]
        overlapping = any(
            temporal_iou(w, o) > iou_threshold or containment(w, o) > DEFAULT_MAX_CONTAINMENT for o in same
        )
        (later if overlapping else distinct).append((vid, w))
    return (distinct + later)[:k]
