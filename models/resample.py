"""Shrink or stretch a feature sequence to a fixed number of bins, keeping answer times exact.

The reference NLQ code averages every clip down to a fixed length (VSLNet 128 bins, ReLER 600). EgoRecall's
localizers run on the native grid instead, but training still needs a bound on sequence length for clips
longer than a model's positional range, and models trained the reference way need the same resampling at
inference. Resampling is area-weighted: each new bin is the average of the old bins it overlaps, weighted by
the overlap, so it is a plain mean when shrinking by an integer factor and a repetition when stretching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
import torch

from models.grid import TimeGrid


@overload
def resample_features(features: torch.Tensor, length: int) -> torch.Tensor: ...
@overload
def resample_features(features: np.ndarray, length: int) -> np.ndarray: ...
def resample_features(features: np.ndarray | torch.Tensor, length: int) -> np.ndarray | torch.Tensor:
    """``[N, D] -> [length, D]`` by area-weighted averaging (numpy in, numpy out; torch in, torch out)."""
    if length < 1:
        raise ValueError("length must be at least 1")
    if isinstance(features, torch.Tensor):
        out = _area_resample(features.detach().cpu().double().numpy(), length)
        return torch.from_numpy(out).to(dtype=features.dtype, device=features.device)
    x = np.asarray(features)
    out = _area_resample(x.astype(np.float64), length)
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)


def _area_resample(x: np.ndarray, length: int) -> np.ndarray:
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"expected features shaped [N, D] with N >= 1, got {x.shape}")
    n = x.shape[0]
    if n == length:
        return x
    # Integral of the piecewise-constant sequence at old-bin coordinate u: cum[floor(u)] + frac * x[floor(u)].
    cum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    edges = np.arange(length + 1, dtype=np.float64) * (n / length)
    whole = np.minimum(np.floor(edges).astype(np.int64), n - 1)
    frac = (edges - whole)[:, None]
    integral = cum[whole] + frac * x[whole]
    return (integral[1:] - integral[:-1]) / (n / length)


@dataclass(frozen=True)
class Resampled:
    """A resampled clip: its features and the grid they now live on.

    ``grid`` has ``length`` bins over the span the original bins covered (``N / rate`` seconds, which may run
    a fraction of a bin past the video's end); map answers with ``grid.seconds_to_bins`` (or
    :func:`models.localizer.answer_bins`) and clamp predicted seconds to ``duration``.
    """

    features: np.ndarray | torch.Tensor
    grid: TimeGrid
    duration: float

    def bins_to_seconds(self, start_bin, end_bin) -> tuple[float, float]:
        s, e = self.grid.bins_to_seconds(start_bin, end_bin)
        return min(s, self.duration), min(e, self.duration)


def resample_clip(features: np.ndarray | torch.Tensor, grid: TimeGrid, length: int) -> Resampled:
    """Resample a clip's ``[grid.num_bins, D]`` features to ``length`` bins, with the grid that goes with them."""
    if features.shape[0] != grid.num_bins:
        raise ValueError(f"features have {features.shape[0]} bins but the grid has {grid.num_bins}")
    span = grid.num_bins / grid.rate_hz
    new_grid = TimeGrid(rate_hz=length / span, duration=span)
    return Resampled(resample_features(features, length), new_grid, grid.duration)
