"""A trained localizer's outputs → ranked answer windows in seconds, for clips of any length.

A clip longer than the model's positional range is cut into overlapping chunks on its native grid; each chunk
is encoded once and answers every query (queries go through in batches), each chunk's best spans are mapped
back to clip bins and then seconds with the clip's own :class:`TimeGrid`, and the spans of all chunks (and
of all scales, for multi-scale models) are merged by score and non-maximum suppressed, so the user gets ``k``
distinct moments. A per-bin score curve comes along for plotting.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.grid import TimeGrid
from models.localizer import Localizer
from models.resample import resample_clip
from models.windows import DEFAULT_NMS_IOU, LengthPrior, Window, span_windows, temporal_nms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceConfig:
    k: int = 5
    """Windows returned per query."""
    max_span_s: float | None = 120.0
    """Longest answer considered. Ego4D's answers are seconds long (median 4 s); bounding the span keeps span
    scoring linear in clip length. None = any length up to a chunk."""
    nms_iou: float = DEFAULT_NMS_IOU
    chunk_bins: int | None = None
    """Bins per pass; None = the model's ``max_positions`` (the whole clip when it has no limit)."""
    chunk_overlap: float = 0.25
    """Share of a chunk that overlaps the next, so an answer near a chunk edge is whole in some chunk."""
    query_batch: int = 32
    resample_to: int | None = None
    """Resample every clip to this many bins first (for models trained on fixed-length sequences, as the
    reference code does); None = native grid with sliding windows."""
    candidates_per_chunk: int | None = None
    """Windows kept per chunk and scale before the final NMS; None = 2·k."""
    length_prior: LengthPrior | None = None
    """The lengths of the model's training answers, weighing its spans (:class:`models.windows.LengthPrior`);
    None = p_start * p_end alone. Training records it in the checkpoint."""

    def __post_init__(self) -> None:
        if self.k < 1 or self.query_batch < 1:
            raise ValueError("k and query_batch must be positive")
        if not 0.0 <= self.chunk_overlap < 1.0:
            raise ValueError("chunk_overlap must be in [0, 1)")
        if self.chunk_bins is not None and self.chunk_bins < 1:
            raise ValueError("chunk_bins must be positive")


@dataclass
class QueryAnswer:
    """One query's answer: up to ``k`` non-overlapping windows (seconds, best first) and a per-bin curve."""

    windows: list[Window]
    curve: np.ndarray
    """One score per bin of the clip's grid (the model's highlight probability, or start+end mass), averaged
    where chunks overlap."""


def chunk_starts(num_bins: int, chunk: int, overlap: float) -> list[int]:
    """First bin of every chunk: full-length chunks, stride ``chunk·(1−overlap)``, the last one flush with
    the clip's end so no chunk needs padding."""
    if num_bins <= chunk:
        return [0]
    stride = max(1, int(chunk * (1.0 - overlap)))
    starts = list(range(0, num_bins - chunk, stride))
    starts.append(num_bins - chunk)
    return starts


def _as_tensor(x, device, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@torch.inference_mode()
def localize(
    model: Localizer,
    features,
    grid: TimeGrid,
    query_tokens,
    query_mask,
    *,
    video_aux=None,
    config: InferenceConfig = InferenceConfig(),
) -> list[QueryAnswer]:
    """Answer queries about one clip.

    ``features`` ``[grid.num_bins, Dv]`` (numpy or tensor, any float dtype) on ``grid``; ``query_tokens``
    ``[Q, T, Dt]`` with ``query_mask`` ``[Q, T]`` (``ClipEncoder.encode_text_tokens`` output); ``video_aux``
    the optional second stream ``[grid.num_bins, Da]``. Returns one :class:`QueryAnswer` per query.
    """
    was_training = model.training
    model.eval()
    try:
        return _localize(model, features, grid, query_tokens, query_mask, video_aux, config)
    finally:
        model.train(was_training)


def _localize(model, features, grid, query_tokens, query_mask, video_aux, config) -> list[QueryAnswer]:
    device = model.device
    video = _as_tensor(features, "cpu", torch.float32)
    if video.ndim != 2 or video.shape[0] != grid.num_bins:
        raise ValueError(f"features must be [{grid.num_bins}, D] for this grid, got {tuple(video.shape)}")
    aux = None if video_aux is None else _as_tensor(video_aux, "cpu", torch.float32)
    queries = _as_tensor(query_tokens, device, torch.float32)
    q_mask = _as_tensor(query_mask, device, torch.bool)
    if queries.ndim == 2:
        queries, q_mask = queries.unsqueeze(0), q_mask.unsqueeze(0)
    num_queries = queries.shape[0]

    run_grid, duration = grid, grid.duration
    if config.resample_to is not None:
        resampled = resample_clip(video, grid, config.resample_to)
        video, run_grid = torch.as_tensor(resampled.features), resampled.grid
        if aux is not None:
            aux = torch.as_tensor(resample_clip(aux, grid, config.resample_to).features)

    n = run_grid.num_bins
    chunk = config.chunk_bins or model.max_positions or n
    chunk = min(chunk, n)
    if model.max_positions is not None and chunk > model.max_positions:
        raise ValueError(f"chunk_bins {chunk} exceeds the model's {model.max_positions} positions")
    max_span = None if config.max_span_s is None else max(1, int(round(config.max_span_s * run_grid.rate_hz)))
    per_chunk = config.candidates_per_chunk or 2 * config.k

    candidates: list[list[Window]] = [[] for _ in range(num_queries)]
    curve_sum = np.zeros((num_queries, n))
    curve_count = np.zeros(n)
    for offset in chunk_starts(n, chunk, config.chunk_overlap):
        length = min(chunk, n - offset)
        chunk_grid = _chunk_grid(run_grid, offset, length)
        v = video[offset : offset + length].unsqueeze(0).to(device, non_blocking=True)
        v_mask = torch.ones(1, length, dtype=torch.bool, device=device)
        a = None if aux is None else aux[offset : offset + length].unsqueeze(0).to(device)
        with _autocast(device):
            encoded = model.encode_video(v, v_mask, a)
            for first in range(0, num_queries, config.query_batch):
                q = queries[first : first + config.query_batch]
                qm = q_mask[first : first + config.query_batch]
                out = model.fuse(encoded, q, qm)
                distributions = [
                    (ps.float().cpu().numpy(), pe.float().cpu().numpy()) for ps, pe in model.span_distributions(out)
                ]
                curve = model.score_curve(out).float().cpu().numpy()
                for i in range(q.shape[0]):
                    for ps, pe in distributions:
                        local = span_windows(
                            ps[i],
                            pe[i],
                            chunk_grid,
                            k=per_chunk,
                            max_length_bins=max_span,
                            nms_iou=config.nms_iou,
                            length_prior=config.length_prior,
                        )
                        candidates[first + i].extend(_to_clip_seconds(local, chunk_grid, run_grid, offset, duration))
                curve_sum[first : first + q.shape[0], offset : offset + length] += curve
        curve_count[offset : offset + length] += 1

    curves = curve_sum / np.maximum(curve_count, 1)
    if config.resample_to is not None:
        curves = _curve_to_grid(curves, run_grid, grid)
    return [QueryAnswer(temporal_nms(c, config.k, config.nms_iou), curves[i]) for i, c in enumerate(candidates)]


def _chunk_grid(grid: TimeGrid, offset: int, length: int) -> TimeGrid:
    """The grid of bins ``offset .. offset+length-1`` as a clip of its own (the last chunk keeps the clip's
    partial last bin)."""
    end = min(grid.duration, (offset + length) / grid.rate_hz)
    chunk = TimeGrid(grid.rate_hz, end - offset / grid.rate_hz)
    if chunk.num_bins != length:  # float noise at a bin edge; the whole-bin duration is exact
        chunk = TimeGrid(grid.rate_hz, length / grid.rate_hz)
    return chunk


def _to_clip_seconds(
    windows: Sequence[Window], chunk_grid: TimeGrid, grid: TimeGrid, offset: int, duration: float
) -> list[Window]:
    """Chunk seconds → chunk bins → clip bins → clip seconds, through the grids, so nothing drifts."""
    out = []
    for w in windows:
        s, e = chunk_grid.seconds_to_bins(w.start, w.end)
        start, end = grid.bins_to_seconds(s + offset, e + offset)
        start, end = min(start, duration), min(end, duration)
        if end > start:
            out.append(Window(start, end, w.score))
    return out


def _curve_to_grid(curves: np.ndarray, source: TimeGrid, target: TimeGrid) -> np.ndarray:
    """Read a curve on ``source`` at the bin centres of ``target`` (nearest bin)."""
    idx = np.clip(np.floor(target.sample_times() * source.rate_hz).astype(np.int64), 0, source.num_bins - 1)
    return curves[:, idx]
