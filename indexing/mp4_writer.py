"""Writing video files with PyAV: answer clips, the synthetic world and test fixtures all go through here.

Browser-playable output (H.264, yuv420p, even dimensions, ``+faststart``) is the default because answer clips
are played in the app; other codecs and containers exist so tests can make the inputs users really have.
Frames may carry their own timestamps, which is how variable-frame-rate files are made.
"""

from __future__ import annotations

import fractions
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import av.container
import numpy as np

PTS_TICKS_PER_SECOND = 30_000  # fine enough for any real frame rate, and within MPEG-4 Part 2's 16-bit limit


class VideoWriter:
    """Context manager that appends RGB frames (H, W, 3 uint8) to a video file."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
        rotation: int = 0,
        gop: int | None = None,
        threads: int = 0,
        metadata: dict[str, str] | None = None,
        codec_options: dict[str, str] | None = None,
    ) -> None:
        """``metadata``: container tags, e.g. ``{"creation_time": "2026-12-03T07:14:00Z"}`` as cameras write
        it (a QuickTime key such as ``com.apple.quicktime.creationdate`` is written as such). ``codec_options``:
        more encoder options for x264 / x265, e.g. ``{"bf": "0"}`` for no B-frames, as phones record."""
        self.path = Path(path)
        self.fps = float(fps)
        # yuv420p needs even sides; odd requests are rounded down so callers need not care.
        self.width, self.height = width - width % 2, height - height % 2
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size too small: {width}x{height}")
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        if options and metadata and any(k.startswith("com.apple.") for k in metadata):
            options["movflags"] += "+use_metadata_tags"
        self._container: av.container.OutputContainer | None = av.open(str(self.path), mode="w", options=options)
        self._container.metadata.update(metadata or {})
        rate = fractions.Fraction(self.fps).limit_denominator(1001)
        self._stream = cast(av.VideoStream, self._container.add_stream(codec, rate=rate))
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        # AVI has no timestamps of its own, only a frame rate: its clock must tick once a frame.
        self._ticks = float(rate) if self.path.suffix.lower() == ".avi" else PTS_TICKS_PER_SECOND
        self._stream.time_base = (
            fractions.Fraction(1, PTS_TICKS_PER_SECOND) if self._ticks == PTS_TICKS_PER_SECOND else 1 / rate
        )
        self._stream.codec_context.time_base = self._stream.time_base
        self._time_base = self._stream.time_base  # muxers may change the stream's once the header is written
        if threads:
            self._stream.codec_context.thread_count = threads
        if gop:
            self._stream.codec_context.gop_size = gop
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": preset, **(codec_options or {})}
        elif codec == "libx265":
            self._stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x265-params": "log-level=error",
                **(codec_options or {}),
            }
        if rotation:
            # A display matrix is how phones record orientation; decoders must honour it.
            self._stream.set_display_rotation(rotation)
        self._frames = 0
        self._last_pts = -1

    def write(self, rgb: np.ndarray, time_s: float | None = None) -> None:
        """Append a frame; without ``time_s`` frames follow each other at the writer's fps."""
        if rgb.shape[:2] != (self.height, self.width):
            rgb = np.ascontiguousarray(rgb[: self.height, : self.width])
        t = self._frames / self.fps if time_s is None else time_s
        pts = int(round(t * self._ticks))
        if pts <= self._last_pts:
            raise ValueError(f"frame timestamps must increase: {t:.4f}s after {self._last_pts / self._ticks:.4f}s")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts = pts
        frame.time_base = self._time_base
        if self._container is None:
            raise ValueError(f"{self.path.name} is closed")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._frames += 1
        self._last_pts = pts

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
