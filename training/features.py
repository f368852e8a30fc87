"""Where a clip's feature sequence comes from: our own library, or a folder of precomputed per-clip files.

Ego4D queries are about *clips* (a time range of a video), while our library stores whole *videos*. Training,
evaluation and the ``predict`` command all need "the features of clip X on a time grid", so both sources answer
that one question through :class:`ClipFeatureSource`:

* :class:`LibraryClipFeatures` finds the clip's video in the library by its ``video_uid`` (the indexed file's
  name without extension) and slices the bins that cover the clip. The library's grid is anchored at the
  video's start, so a clip that starts between two bins is off by at most half a bin (0.27 s at 1.875 Hz);
  the slice starts at the nearest bin boundary.
* :class:`DirectoryClipFeatures` reads ``{clip_uid}.npy`` or ``{clip_uid}.pt`` (Ego4D's published features,
  any dimension: EgoVLP 256, InternVideo 2304, CLIP 512). Their count rarely matches ``duration * 1.875``
  exactly, so the grid's rate is taken from the file (``N / duration``), which is how Ego4D's baselines map
  indices to seconds too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from indexing.library import Library
from models.errors import EgoRecallError
from models.grid import TimeGrid
from training.nlq import Clip

logger = logging.getLogger(__name__)


class FeaturesUnavailable(EgoRecallError):
    """A clip's features cannot be found or read."""


@dataclass(frozen=True)
class ClipFeatures:
    features: np.ndarray
    """float [N, D], N == grid.num_bins."""
    grid: TimeGrid
    """Clip-relative: bin 0 starts at the clip's start."""


class ClipFeatureSource(Protocol):
    key: str
    """Identity of the encoder that made the features (checked against checkpoints)."""
    dim: int

    def get(self, clip: Clip) -> ClipFeatures: ...

    def has(self, clip: Clip) -> bool: ...


class LibraryClipFeatures:
    """Clips as slices of the videos in an EgoRecall library."""

    def __init__(self, library: Library) -> None:
        self.library = library
        settings = library.settings
        if settings is None or not settings.encoder_key:
            raise FeaturesUnavailable(f"the library at {library.root} has no indexed videos yet")
        self.key = settings.encoder_key
        self.dim = int(settings.dim)
        self.rate_hz = float(settings.rate_hz)
        self._by_uid = {Path(rec.name).stem: rec for rec in library.videos()}

    def has(self, clip: Clip) -> bool:
        return clip.video_uid in self._by_uid

    def get(self, clip: Clip) -> ClipFeatures:
        rec = self._by_uid.get(clip.video_uid)
        if rec is None:
            raise FeaturesUnavailable(
                f"video {clip.video_uid} (clip {clip.clip_uid}) is not in the library at {self.library.root}; "
                f"index {clip.video_uid}.mp4 first"
            )
        feats = self.library.features(rec.id)
        end = min(clip.video_end_sec, rec.duration)
        if end - clip.video_start_sec <= 0:
            raise FeaturesUnavailable(
                f"clip {clip.clip_uid} ({clip.video_start_sec:.1f}-{clip.video_end_sec:.1f} s) lies outside "
                f"video {clip.video_uid}, which is {rec.duration:.1f} s long"
            )
        grid = TimeGrid(self.rate_hz, end - clip.video_start_sec)
        first = int(round(clip.video_start_sec * self.rate_hz))
        rows = np.asarray(feats[first : first + grid.num_bins])
        if len(rows) < grid.num_bins:  # the clip's last bin hangs over the video's end: repeat the last row
            rows = np.concatenate([rows, np.repeat(feats[-1:], grid.num_bins - len(rows), axis=0)])
        return ClipFeatures(rows, grid)


class DirectoryClipFeatures:
    """Per-clip feature files in a folder, as Ego4D publishes them."""

    SUFFIXES = (".npy", ".pt")

    def __init__(self, folder: str | os.PathLike, key: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FeaturesUnavailable(f"feature folder not found: {self.folder}")
        files = [p for p in self.folder.iterdir() if p.suffix in self.SUFFIXES]
        if not files:
            raise FeaturesUnavailable(f"no .npy or .pt feature files in {self.folder}")
        self._files = {p.stem: p for p in sorted(files)}
        self.dim = int(self._load(files[0]).shape[1])
        self.key = key or f"features-dir:{self.folder.resolve().name}"

    def has(self, clip: Clip) -> bool:
        return clip.clip_uid in self._files

    def _load(self, path: Path) -> np.ndarray:
        try:
            if path.suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
            else:
                import torch

                arr = torch.load(path, map_location="cpu", weights_only=True)
                arr = arr.float().numpy() if hasattr(arr, "numpy") else np.asarray(arr)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file to the user
            raise FeaturesUnavailable(f"cannot read features from {path}: {exc}") from exc
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise FeaturesUnavailable(f"{path} holds an array of shape {arr.shape}; expected [N, D] with N > 0")
        return arr.astype(np.float32, copy=False)

    def get(self, clip: Clip) -> ClipFeatures:
        path = self._files.get(clip.clip_uid)
        if path is None:
            raise FeaturesUnavailable(f"no feature file for clip {clip.clip_uid} in {self.folder}")
        arr = self._load(path)
        if arr.shape[1] != self.dim:
            raise FeaturesUnavailable(f"{path} has {arr.shape[1]}-d features; the others are {self.dim}-d")
        n = arr.shape[0]
        duration = clip.duration if clip.duration > 0 else n / 1.875
        grid = TimeGrid(n / duration, duration)
        if grid.num_bins != n:  # float noise at the last bin: trust the file's count
            arr = (
                arr[: grid.num_bins]
                if n > grid.num_bins
                else np.concatenate([arr, np.repeat(arr[-1:], grid.num_bins - n, axis=0)])
            )
        return ClipFeatures(arr, grid)
