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

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from indexing.feature_export import SIDECAR
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
        if settings is None or not settings.encoder_key or settings.dim is None:
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
        return slice_clip(feats, clip.video_start_sec, end, self.rate_hz)


class DirectoryClipFeatures:
    """A folder of feature files, as Ego4D publishes them: per clip (``<clip_uid>.npy|.pt``, what the NLQ
    baselines' prepare step makes) or per video (``<video_uid>.pt``, the 1.875 Hz SlowFast / Omnivore / EgoVLP
    downloads). With ``layout="auto"`` each clip uses its own file when there is one, else the rows of its
    video's file from ``video_start_sec`` to ``video_end_sec`` on the grid -- the same rounding as a library
    clip (:class:`LibraryClipFeatures`), so both layouts give identical clips."""

    SUFFIXES = (".npy", ".pt")
    LAYOUTS = ("auto", "clip", "video")

    def __init__(
        self, folder: str | os.PathLike, key: str | None = None, layout: str = "auto", rate_hz: float = 1.875
    ) -> None:
        self.folder = Path(folder)
        if layout not in self.LAYOUTS:
            raise FeaturesUnavailable(f"features layout must be one of {', '.join(self.LAYOUTS)} (got {layout!r})")
        if not self.folder.is_dir():
            raise FeaturesUnavailable(f"feature folder not found: {self.folder}")
        files = [p for p in self.folder.iterdir() if p.suffix in self.SUFFIXES]
        if not files:
            raise FeaturesUnavailable(f"no .npy or .pt feature files in {self.folder}")
        self._files = {p.stem: p for p in sorted(files)}
        self.layout = layout
        self.rate_hz = float(rate_hz)
        self.dim = int(self._load(files[0]).shape[1])
        self.key = key or f"features-dir:{self.folder.resolve().name}"
        exported = _library_export(self.folder)
        if exported:  # exported from a library (`library export-features`): its encoder and grid
            self.key, self.rate_hz = key or exported["encoder_key"], float(exported["rate_hz"])
        self._videos: dict[str, np.ndarray] = {}

    def _file_for(self, clip: Clip) -> tuple[Path | None, bool]:
        """(path, is_the_video's_file)."""
        if self.layout != "video" and clip.clip_uid in self._files:
            return self._files[clip.clip_uid], False
        if self.layout != "clip" and clip.video_uid in self._files:
            return self._files[clip.video_uid], True
        return None, False

    def has(self, clip: Clip) -> bool:
        return self._file_for(clip)[0] is not None

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
        path, per_video = self._file_for(clip)
        if path is None:
            wanted = {"clip": f"{clip.clip_uid}.npy/.pt", "video": f"{clip.video_uid}.npy/.pt"}
            names = [wanted[k] for k in ("clip", "video") if self.layout in (k, "auto")]
            raise FeaturesUnavailable(
                f"no feature file for clip {clip.clip_uid} in {self.folder} (looked for {' or '.join(names)})"
            )
        if per_video:
            return self._clip_of_video(clip, path)
        arr = self._load(path)
        if arr.shape[1] != self.dim:
            raise FeaturesUnavailable(f"{path} has {arr.shape[1]}-d features; the others are {self.dim}-d")
        n = arr.shape[0]
        duration = clip.duration if clip.duration > 0 else n / self.rate_hz
        grid = TimeGrid(self.rate_hz, duration)
        if grid.num_bins != n:  # not on the nominal grid (e.g. resampled to a fixed length): the file's own rate
            grid = TimeGrid(n / duration, duration)
        if grid.num_bins != n:  # float noise at the last bin: trust the file's count
            arr = (
                arr[: grid.num_bins]
                if n > grid.num_bins
                else np.concatenate([arr, np.repeat(arr[-1:], grid.num_bins - n, axis=0)])
            )
        return ClipFeatures(arr, grid)

    def _clip_of_video(self, clip: Clip, path: Path) -> ClipFeatures:
        feats = self._videos.get(clip.video_uid)
        if feats is None:
            feats = self._load(path)
            if feats.shape[1] != self.dim:
                raise FeaturesUnavailable(f"{path} has {feats.shape[1]}-d features; the others are {self.dim}-d")
            self._videos = {clip.video_uid: feats}  # clips come video by video: keep one video in memory
        video_s = len(feats) / self.rate_hz
        end = min(clip.video_end_sec, video_s)
        if end - clip.video_start_sec <= 0:
            raise FeaturesUnavailable(
                f"clip {clip.clip_uid} ({clip.video_start_sec:.1f}-{clip.video_end_sec:.1f} s) lies outside "
                f"{path.name}, whose {len(feats)} rows at {self.rate_hz:g} Hz cover {video_s:.1f} s"
            )
        return slice_clip(feats, clip.video_start_sec, end, self.rate_hz)


def _library_export(folder: Path) -> dict | None:
    """The sidecar an EgoRecall library export writes (``indexing.feature_export``), if this is one."""
    path = folder / SIDECAR
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        return meta if meta.get("encoder_key") and float(meta["rate_hz"]) > 0 else None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise FeaturesUnavailable(f"{path} is unreadable ({exc}); export the features again") from None


def slice_clip(feats: np.ndarray, start_s: float, end_s: float, rate_hz: float) -> ClipFeatures:
    """A clip's rows of a video's features on the grid (the last bin repeats the last row when the clip's
    end hangs over the video's)."""
    grid = TimeGrid(rate_hz, end_s - start_s)
    first = int(round(start_s * rate_hz))
    rows = np.asarray(feats[first : first + grid.num_bins])
    if len(rows) < grid.num_bins:
        rows = np.concatenate([rows, np.repeat(feats[-1:], grid.num_bins - len(rows), axis=0)])
    return ClipFeatures(rows, grid)
