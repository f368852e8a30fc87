"""Video file -> one L2-normalised float16 embedding per grid bin, decoding and encoding in parallel.

The decoder children (:class:`~indexing.decode.GridDecoder`) decode the next batch while this process encodes
the current one with :meth:`ClipEncoder.encode_frames` (batched; pinned memory and fp16 on CUDA). Features go
straight into ``out``, which may be a memory-mapped ``.npy`` file, so memory does not grow with video length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from indexing.config import DecodeConfig
from indexing.damage import DecodeReport
from indexing.decode import GridDecoder
from indexing.errors import DecoderFailed
from indexing.probe import VideoInfo
from models.grid import TimeGrid

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(frames_done, frames_total)``: tqdm's ``update``/``total`` and ``gr.Progress`` both fit it."""


class EncoderName(Protocol):
    """How to load an encoder again (``models.clip_encoder.EncoderSpec`` is one)."""

    @property
    def model(self) -> str: ...

    @property
    def pretrained(self) -> str: ...


class FrameEncoder(Protocol):
    """What extraction needs of an encoder (``models.clip_encoder.ClipEncoder`` provides it)."""

    @property
    def key(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def device(self) -> object: ...

    @property
    def spec(self) -> EncoderName:
        """Recorded so a library knows how to load its encoder again."""
        ...

    def short_side(self) -> int: ...

    def encode_frames(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass
class Extraction:
    features: np.ndarray
    """float16 [num_bins, dim], L2-normalised rows."""
    report: DecodeReport
    seconds: float
    encode_seconds: float
    """Time spent encoding; the rest of ``seconds`` was spent waiting for decoded frames."""
    reused_frames: int = 0
    """Frames that reused a still predecessor's feature (``DecodeConfig.still_frame_diff``)."""


def _on_cuda(encoder: FrameEncoder) -> bool:
    return getattr(getattr(encoder, "device", None), "type", None) == "cuda"


def extract_features(
    path: str | Path,
    encoder: FrameEncoder,
    info: VideoInfo,
    grid: TimeGrid,
    *,
    out: np.ndarray | None = None,
    config: DecodeConfig | None = None,
    progress: Progress | None = None,
) -> Extraction:
    """Embed the frame on screen at every bin centre of ``grid``; raises the decoder's errors unchanged."""
    config = config or DecodeConfig()
    n = grid.num_bins
    if out is None:
        out = np.empty((n, encoder.dim), np.float16)
    if out.shape != (n, encoder.dim):
        raise ValueError(f"output shaped {out.shape}, expected {(n, encoder.dim)}")
    filled = np.zeros(n, dtype=bool)
    done = 0
    started = time.monotonic()
    encode_s = 0.0
    still = StillFrames(config.still_frame_diff) if config.still_frame_diff > 0 else None
    cuda = _on_cuda(encoder)
    decoder = GridDecoder(
        path,
        info,
        grid,
        encoder.short_side(),
        config,
        batch_frames=config.resolved_batch_frames(cuda),
        hardware=config.resolved_hardware(cuda),
    )
    if progress:
        progress(0, n)
    for batch in decoder:
        t = time.monotonic()
        if still is None:
            out[batch.start : batch.stop] = encoder.encode_frames(batch.frames)
        else:
            out[batch.start : batch.stop] = still.encode(encoder, batch.frames)
        encode_s += time.monotonic() - t
        done += int(np.count_nonzero(~filled[batch.start : batch.stop]))
        filled[batch.start : batch.stop] = True
        logger.debug("%s: %d/%d frames", Path(path).name, done, n)
        if progress:
            progress(done, n)
    if not filled.all():  # a backend bug, never a property of the file
        raise DecoderFailed(path, f"the decoder delivered {int(filled.sum())} of {n} frames")
    reused = 0 if still is None else still.reused
    if reused:
        logger.info("%s: %d of %d frames were still and reused a feature", Path(path).name, reused, n)
    assert decoder.report is not None  # the decode ran to its end
    return Extraction(
        features=out,
        report=decoder.report,
        seconds=time.monotonic() - started,
        encode_seconds=encode_s,
        reused_frames=reused,
    )


class StillFrames:
    """Encodes only frames that changed: a frame close to the last encoded one (by a 1/8-scale grey
    thumbnail, mean absolute difference under ``threshold`` levels) gets that frame's feature. Decisions
    depend on thumbnails alone, so each batch is encoded in one call; the reference carries across batches
    (frames arrive in time order within a decoder segment)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self.reused = 0
        self._thumb: np.ndarray | None = None
        self._feature: np.ndarray | None = None

    @staticmethod
    def thumbnails(frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames[:, ::8, ::8], dtype=np.float32).mean(axis=-1)

    def encode(self, encoder: FrameEncoder, frames: np.ndarray) -> np.ndarray:
        thumbs = self.thumbnails(frames)
        source = np.empty(len(frames), dtype=np.int64)  # which encoded frame each frame's feature comes from
        keep: list[int] = []
        ref = self._thumb
        for i, thumb in enumerate(thumbs):
            if ref is not None and ref.shape == thumb.shape and float(np.abs(thumb - ref).mean()) < self.threshold:
                source[i] = len(keep) - 1  # -1: the previous batch's last encoded frame
            else:
                keep.append(i)
                source[i] = len(keep) - 1
                ref = thumb
        encoded = encoder.encode_frames(frames[keep]) if keep else np.zeros((0, encoder.dim), np.float16)
        if self._feature is not None:
            encoded = np.concatenate([encoded, self._feature[None]])  # index -1 reads it
        out = encoded[source]
        self.reused += len(frames) - len(keep)
        self._thumb = ref
        self._feature = out[-1].copy()
        return out
