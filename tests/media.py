"""Small real media files made at test time: good videos in the codecs users have, and every kind of bad input.

Import the helpers (``from media import write_video, ...``) or the session fixtures (``from media import
codec_videos``) into a test module. Everything is a few seconds long and at most 160 px wide, so making the
whole set takes a few seconds on two cores.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from indexing.mp4_writer import VideoWriter

# name -> (file suffix, encoder); every one must decode with PyAV (AV1 through libdav1d).
CODECS = {
    "h264": (".mp4", "libx264"),
    "hevc": (".mkv", "libx265"),
    "vp9": (".webm", "libvpx-vp9"),
    "mpeg4": (".avi", "mpeg4"),
    "av1": (".mp4", "libsvtav1"),
}
SUFFIX_CODEC = {".mp4": "libx264", ".mkv": "libx265", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def pattern_frame(i: int, width: int = 160, height: int = 96, fps: float = 15.0, seed: int = 0) -> np.ndarray:
    """A frame that changes with time: a layout of bright blocks that changes every half second, plus a
    small noise patch unique to frame ``i`` (so no two frames are identical)."""
    step = int(i / fps * 2)
    rng = np.random.default_rng((seed, step))
    img = np.empty((height, width, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
        img[y : y + height // 2, x : x + width // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
    img[:16, :16] = np.random.default_rng((seed, 10_000 + i)).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return img


def write_video(
    path: Path,
    *,
    seconds: float = 3.0,
    fps: float = 15.0,
    width: int = 160,
    height: int = 96,
    codec: str | None = None,
    rotation: int = 0,
    gop: int | None = None,
    crf: int = 23,
    seed: int = 0,
    frame=None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A constant-frame-rate video of ``pattern_frame`` (or ``frame(i, width, height)``), with container tags."""
    path = Path(path)
    codec = codec or SUFFIX_CODEC.get(path.suffix.lower(), "libx264")
    n = int(round(seconds * fps))
    with VideoWriter(
        path, fps, width, height, codec=codec, rotation=rotation, gop=gop, crf=crf, metadata=metadata
    ) as w:
        for i in range(n):
            w.write(frame(i, width, height) if frame else pattern_frame(i, width, height, fps, seed))
    return path


def gray_for(k: int) -> int:
    return 20 + 4 * k


def write_vfr_video(path: Path, spans=((20.0, 1.5), (4.0, 2.0), (10.0, 1.5)), size=(64, 48)) -> list[float]:
    """A variable-frame-rate H.264 file: ``spans`` of (fps, seconds). Frame k is flat gray ``gray_for(k)``,
    so a decoded frame says which frame it is. Returns every frame's timestamp."""
    times, t = [], 0.0
    for fps, seconds in spans:
        for _ in range(int(round(fps * seconds))):
            times.append(round(t, 6))
            t += 1.0 / fps
    assert gray_for(len(times) - 1) < 250
    w, h = size
    with VideoWriter(path, 30, w, h, crf=4) as writer:
        for k, ts in enumerate(times):
            writer.write(np.full((h, w, 3), gray_for(k), np.uint8), time_s=ts)
    return times


def write_avi_with_dropped_frames(
    path: Path, *, seconds: float = 10.0, fps: int = 15, every: int = 5, size=(64, 48)
) -> Path:
    """An AVI that keeps a slot per frame period but stores a picture only every ``every`` slots, as webcam,
    surveillance and screen-capture exports do for repeated frames: the header declares ~``seconds * fps``
    frames, a player shows ``seconds`` of video, and only 1/``every`` of the frames decode. Picture ``i`` (at
    slot ``i``) is a flat grey of :func:`gray_for` ``(i // every)`` over noise in its bottom half (so the frames,
    not the index, fill the file)."""
    from fractions import Fraction

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(0, int(seconds * fps), every):
            img = np.full((h, w, 3), gray_for(i // every), np.uint8)
            img[h // 2 :] = np.random.default_rng(i).integers(0, 256, (h - h // 2, w, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def write_audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An AAC-in-MP4 file with no video stream."""
    rate, n = 44_100, 1024
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=rate)
        pts = 0
        tone = np.sin(np.arange(n) / rate * 2 * np.pi * 440).astype(np.float32)[None]
        for _ in range(int(seconds * rate / n)):
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            pts += n
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return Path(path)


def write_png_as(path: Path) -> Path:
    """A PNG picture under a video's name."""
    from PIL import Image

    Image.fromarray(pattern_frame(0, 64, 64)).save(path, format="PNG")
    return Path(path)


def write_random_bytes(path: Path, n: int = 100_000, seed: int = 0) -> Path:
    Path(path).write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return Path(path)


def write_one_frame(path: Path) -> Path:
    return write_video(path, seconds=1 / 15, fps=15)


def truncated_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def flipped_copy(src: Path, dst: Path, n: int = 2000) -> Path:
    """Invert ``n`` bytes in the middle of the file (the coded frames of a faststart MP4)."""
    data = bytearray(Path(src).read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(len(data), mid + n)):
        data[i] ^= 0xFF
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_bad_inputs(directory: Path, source: Path) -> dict[str, Path]:
    """Every kind of file that must be refused, by kind; ``source`` is a healthy faststart H.264 MP4 of a few
    seconds to truncate and corrupt."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "empty.mp4").write_bytes(b"")
    return {
        "empty": d / "empty.mp4",
        "random": write_random_bytes(d / "random.mp4"),
        "truncated": truncated_copy(source, d / "truncated.mp4"),
        "flipped": flipped_copy(source, d / "flipped.mp4"),
        "audio": write_audio_only(d / "audio.mp4"),
        "png": write_png_as(d / "picture.mp4"),
        "one_frame": write_one_frame(d / "one_frame.mp4"),
    }


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def codec_videos(media_dir) -> dict[str, Path]:
    """3 s, 15 fps, 160x96 videos of the same pattern in each codec of :data:`CODECS`."""
    return {
        name: write_video(media_dir / f"pattern-{name}{suffix}", codec=codec)
        for name, (suffix, codec) in CODECS.items()
    }


@pytest.fixture(scope="session")
def h264_video(media_dir) -> Path:
    """A 6 s H.264/MP4 (faststart), distinct content from ``codec_videos``."""
    return write_video(media_dir / "walk.mp4", seconds=6.0, seed=1)


@pytest.fixture(scope="session")
def bad_inputs(media_dir, h264_video) -> dict[str, Path]:
    return make_bad_inputs(media_dir / "bad", h264_video)
