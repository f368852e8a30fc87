"""A corpus of valid videos in the shapes real cameras, phones and editors produce, made at test time with PyAV.

Each entry is a file a video player shows without complaint, and EgoRecall must index it (right duration,
right grid) rather than refuse it. Shared by the decode and library tests: ``from realworld import corpus``.
Everything is a few seconds of small frames, so the whole corpus takes a few seconds to make.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import pattern_frame, write_video

TICKS = 90_000


@dataclass(frozen=True)
class Case:
    path: Path
    duration: float
    """What a player shows as the video's length, seconds."""
    note: str


def _write(
    path: Path,
    times: list[float],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = (96, 64),
    options: dict | None = None,
    second_video: list[float] | None = None,
    audio_s: float | None = None,
) -> Path:
    """Frames of :func:`media.pattern_frame` at ``times`` (seconds, presentation order)."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = Fraction(1, TICKS)
        stream.codec_context.time_base = Fraction(1, TICKS)
        if options:
            stream.options = options
        streams = [(stream, times)]
        if second_video is not None:
            other = out.add_stream("libx264", rate=30)
            other.width, other.height, other.pix_fmt = 64, 48, "yuv420p"
            other.time_base = other.codec_context.time_base = Fraction(1, TICKS)
            streams.append((other, second_video))
        audio = out.add_stream("aac", rate=16_000) if audio_s else None
        for s, ts in streams:
            for i, t in enumerate(ts):
                img = pattern_frame(i, s.width, s.height, fps=10.0)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=s.pix_fmt)
                frame.pts = int(round(t * TICKS))
                frame.time_base = Fraction(1, TICKS)
                for packet in s.encode(frame):
                    out.mux(packet)
            for packet in s.encode():
                out.mux(packet)
        if audio is not None:
            n = int(audio_s * 16_000)
            for start in range(0, n, 1024):
                samples = np.zeros((1, min(1024, n - start)), np.float32)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16_000, start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def _steady(seconds: float, fps: float = 10.0, start: float = 0.0) -> list[float]:
    return [start + i / fps for i in range(int(round(seconds * fps)))]


def make_corpus(folder: Path) -> dict[str, Case]:
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Case] = {}

    def add(name: str, make, duration: float, note: str) -> None:
        try:
            path = make(folder / name)
        except (av.FFmpegError, ValueError) as exc:  # an encoder this FFmpeg build lacks: not our decoder's fault
            cases[name] = Case(folder / name, -1.0, f"could not be made here: {exc}")
            return
        cases[name] = Case(path, duration, note)

    # variable frame rate: 10 fps, a 3 s freeze (no frames at all), then 30 fps
    vfr = _steady(2.0) + [5.0 + i / 30 for i in range(60)]
    add("vfr freeze.mp4", lambda p: _write(p, vfr), 7.0, "variable frame rate with a long freeze")
    for angle in (180, 270):
        add(f"rotated_{angle}.mp4", lambda p, a=angle: write_video(p, seconds=3.0, rotation=a), 3.0, "rotation")
    add("late start.mp4", lambda p: _write(p, _steady(3.0, start=1.5)), 3.0, "first frame at 1.5 s")
    add(
        "bframes.mp4",
        lambda p: _write(p, _steady(4.0), options={"bf": "3", "preset": "medium"}),
        4.0,
        "B-frames (reordered, negative DTS)",
    )
    add("h264 10bit.mkv", lambda p: _write(p, _steady(3.0), pix_fmt="yuv420p10le"), 3.0, "10-bit H.264")
    add("h264 444.mp4", lambda p: _write(p, _steady(3.0), pix_fmt="yuv444p"), 3.0, "4:4:4 H.264")
    add(
        "hevc 10bit.mkv",
        lambda p: _write(
            p, _steady(3.0), codec="libx265", pix_fmt="yuv420p10le", options={"x265-params": "log-level=error"}
        ),
        3.0,
        "10-bit HEVC",
    )
    add("odd size.mp4", lambda p: _write(p, _steady(3.0), pix_fmt="yuv444p", size=(97, 61)), 3.0, "odd width/height")
    add("vp9.webm", lambda p: _write(p, _steady(3.0), codec="libvpx-vp9"), 3.0, "VP9 in WebM")
    add("av1.mkv", lambda p: _write(p, _steady(3.0), codec="libsvtav1", size=(128, 64)), 3.0, "AV1 in Matroska")
    add("camera.mov", lambda p: _write(p, _steady(3.0)), 3.0, "QuickTime MOV")
    add(
        "two videos.mkv",
        lambda p: _write(p, _steady(3.0), second_video=_steady(5.0)),
        3.0,
        "two video streams: the first (default) one is indexed",
    )
    add("long audio.mp4", lambda p: _write(p, _steady(3.0), audio_s=6.0), 3.0, "audio running past the video")
    add("long audio.mkv", lambda p: _write(p, _steady(3.0), audio_s=6.0), 3.0, "the same in Matroska")
    add("Küche – Morgen.mp4", lambda p: write_video(p, seconds=3.0), 3.0, "spaces and non-ASCII letters")
    return cases


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return make_corpus(tmp_path_factory.mktemp("realworld"))
