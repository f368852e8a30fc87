"""The fixed time grid that every feature sequence in EgoRecall lives on.

Feature ``i`` of a video describes the bin ``[i / rate, (i + 1) / rate)`` and is computed from the frame that
is on screen at the bin's centre. A window over bins ``s..e`` (inclusive) therefore spans
``[s / rate, (e + 1) / rate]`` seconds, clamped to the video -- the same convention Ego4D's NLQ baselines use
(``[s * D / L, (e + 1) * D / L]``), so our features and Ego4D's precomputed ones map to seconds alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EGO4D_RATE_HZ = 30.0 / 16.0
"""Ego4D's public features: 30 fps video, one feature every 16 frames (1.875 Hz)."""


@dataclass(frozen=True)
class TimeGrid:
    rate_hz: float
    duration: float

    def __post_init__(self) -> None:
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"grid rate must be a positive number of Hz, got {self.rate_hz!r}")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError(f"grid duration must be a positive number of seconds, got {self.duration!r}")

    @property
    def num_bins(self) -> int:
        # The tolerance keeps 10.0 s at 2 Hz at 20 bins despite float noise; a partial last bin counts.
        return max(1, math.ceil(self.duration * self.rate_hz - 1e-6))

    @property
    def bin_seconds(self) -> float:
        return 1.0 / self.rate_hz

    def sample_times(self) -> np.ndarray:
        """Centre of every bin, clamped inside the video (the last bin may be partial)."""
        centres = (np.arange(self.num_bins, dtype=np.float64) + 0.5) / self.rate_hz
        starts = np.arange(self.num_bins, dtype=np.float64) / self.rate_hz
        # A partial last bin samples half-way through what is left of it.
        last_end = self.duration
        centres[-1] = min(centres[-1], (starts[-1] + last_end) / 2.0)
        return centres

    def bins_to_seconds(self, start_bin: int | np.ndarray, end_bin: int | np.ndarray) -> tuple:
        """Inclusive bin range -> (start s, end s), never empty and never past the video."""
        start = np.clip(np.asarray(start_bin, dtype=np.float64) / self.rate_hz, 0.0, self.duration)
        end = np.clip((np.asarray(end_bin, dtype=np.float64) + 1.0) / self.rate_hz, 0.0, self.duration)
        end = np.maximum(end, np.minimum(start + 1e-3, self.duration))
        if np.ndim(start) == 0:
            return float(start), float(end)
        return start, end

    def seconds_to_bins(self, start: float, end: float) -> tuple[int, int]:
        """(start s, end s) -> the inclusive bin range that covers it, inside the grid."""
        last = self.num_bins - 1
        s = int(np.clip(math.floor(start * self.rate_hz + 1e-9), 0, last))
        e = int(np.clip(math.ceil(end * self.rate_hz - 1e-9) - 1, s, last))
        return s, e
