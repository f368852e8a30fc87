"""What a video file is, and whether it can be indexed at all -- answered before any real work starts.

:func:`probe` opens the container with PyAV, picks the video stream and decodes its first two frames, so every
file that cannot be indexed (empty, not media, a still image, audio only, undecodable, too short) is refused
with one sentence before a decoder child is started or anything is written to the library. The first frame
also fixes the video's time origin: grid time 0 is when the first frame is shown, whatever offset the
container's timestamps start at.

This runs in the calling process; the library calls it in a watched child process (see
:func:`indexing.decode.probe_isolated`) because FFmpeg on hostile input is not trusted near the process that
serves users.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from indexing.errors import InvalidVideo
from indexing.recording_time import recording_time
from models.grid import EGO4D_RATE_HZ, TimeGrid

logger = logging.getLogger(__name__)

# Demuxers that read single pictures: FFmpeg opens a PNG (even one named .mp4) as a one-frame "video".
_IMAGE_FORMATS = {"image2", "image2pipe", "apng", "gif", "webp"}
_MAX_PACKETS_FOR_FIRST_FRAMES = 300


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file. Times are seconds on the video's own timeline (0 = first frame shown)."""

    path: str
    duration: float
    """From the first frame to the end of the video stream, as the file declares it (or as demuxed, when the
    file declares nothing)."""
    fps: float
    """Average frame rate (frames / duration); variable-frame-rate files have no single true rate."""
    width: int
    height: int
    """Coded (stored) frame size, before rotation."""
    rotation: int
    """Counter-clockwise degrees (0, 90, 180, 270) the stored picture is turned for display, from the display
    matrix (phones record portrait video as rotated landscape)."""
    codec: str
    container: str
    frame_count: int | None
    """Frames the container declares (None when it declares none, e.g. Matroska)."""
    has_audio: bool
    start_time: float
    """Container timestamp (s) of the first frame; decoders subtract it."""
    size_bytes: int
    duration_declared: bool = True
    """False when no header gave a duration and it was measured by demuxing (truncation is then invisible)."""
    recorded_at: float | None = None
    """Unix time of the first frame's recording (:mod:`indexing.recording_time`), and ..."""
    recorded_tz: int | None = None
    """... the UTC offset (minutes) it was recorded in, when the file says, ..."""
    recorded_source: str = ""
    """... where the time came from (``quicktime``, ``container``, ``file name``, ``file time``) ..."""
    recorded_note: str = ""
    """... and why a more trusted source was passed over."""

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    def grid(self, rate_hz: float = EGO4D_RATE_HZ) -> TimeGrid:
        return TimeGrid(rate_hz, self.duration)

    def to_dict(self) -> dict:
        return asdict(self)


def normalise_rotation(degrees: float | None) -> int:
    """Display-matrix angle -> 0/90/180/270 counter-clockwise; odd angles are ignored (and logged)."""
    if degrees is None or not math.isfinite(degrees):
        return 0
    quarter = round(degrees / 90.0)
    if abs(degrees - 90.0 * quarter) > 2.0:
        logger.info("ignoring display rotation of %.1f degrees (not a multiple of 90)", degrees)
        return 0
    return int(quarter % 4) * 90


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _video_stream(container: av.container.InputContainer, path: Path):
    streams = [
        s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
    ]  # cover art is not video
    if not streams:
        has_audio = bool(container.streams.audio)
        raise InvalidVideo(path, "it has no video stream" + (" (it holds only audio)" if has_audio else ""))
    # The largest picture is the camera's own stream (phones add small preview/depth tracks).
    return max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


def _first_frames(container, stream, path: Path) -> list:
    """Decode up to two frames, tolerating a few bad packets at the start (open GOP, missing SPS)."""
    frames = []
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1
            try:
                frames.extend(packet.decode())
            except (av.FFmpegError, ValueError) as exc:
                logger.debug("%s: packet %d did not decode: %s", path.name, packets, exc)
            if len(frames) >= 2 or packets > _MAX_PACKETS_FOR_FIRST_FRAMES:
                break
    except av.FFmpegError as exc:
        if not frames:
            raise InvalidVideo(path, f"its first frame cannot be decoded ({exc.strerror or exc})") from None
    if not frames:
        raise InvalidVideo(path, "its first frame cannot be decoded")
    return frames[:2]


def _frame_time(frame) -> float | None:
    return _seconds(frame.pts, frame.time_base)


def _duration_tag(stream) -> float | None:
    """Matroska/WebM muxers write each stream's length as a ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``)."""
    text = next((v for k, v in (stream.metadata or {}).items() if k.upper() == "DURATION"), None)
    try:
        h, m, s = str(text).split(":")
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


def _measured_end(path: Path, stream_index: int) -> float | None:
    """End of the video stream by demuxing every packet (no decoding): for files that declare no duration."""
    end = None
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams[stream_index]
        tb = stream.time_base
        if tb is None:
            return None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float((packet.pts + (packet.duration or 0)) * tb)
            end = t if end is None else max(end, t)
    return end


def _readable_size(path: Path) -> int:
    """The size of a non-empty regular file; InvalidVideo says what else it is."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidVideo(path, "the file does not exist") from None
    except OSError as exc:
        raise InvalidVideo(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise InvalidVideo(path, "it is not a regular file")
    if size == 0:
        raise InvalidVideo(path, "the file is empty (0 bytes)")
    return size


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except PermissionError as exc:
        raise InvalidVideo(path, f"the file cannot be read ({exc.strerror or exc})") from None
    except (av.FFmpegError, ValueError, UnicodeDecodeError, OSError):
        raise InvalidVideo(path, "it is not a video file: FFmpeg recognises no media format in it") from None


def _declared_end(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The end of the video stream, as declared: the stream's own duration, else the container's.

    The container's duration is its *longest* stream's (audio running on, a second video): used only when the
    video is its one stream; Matroska keeps a per-stream DURATION tag instead."""
    tb = stream.time_base
    if stream.duration is not None and stream.duration > 0:
        return (_seconds(stream.start_time, tb) or 0.0) + (_seconds(stream.duration, tb) or 0.0)
    if (tagged := _duration_tag(stream)) is not None:
        return (_seconds(stream.start_time, tb) or 0.0) + tagged
    if container.duration is not None and container.duration > 0 and len(container.streams) == 1:
        return (container.start_time or 0) / av.time_base + container.duration / av.time_base
    return None


def probe(path: str | Path, *, rate_hz: float | None = EGO4D_RATE_HZ) -> VideoInfo:
    """Describe a video file, or raise :class:`InvalidVideo` saying in one sentence why it cannot be indexed.

    ``rate_hz`` sets the shortest indexable video: one grid bin (pass None to skip that check).
    """
    path = Path(path)
    size = _readable_size(path)
    with _open(path) as container:
        fmt = container.format.name
        if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
            kind = fmt.removesuffix("_pipe").upper()
            raise InvalidVideo(path, f"it is a still image ({kind}), not a video")
        stream = _video_stream(container, path)
        cc = stream.codec_context
        codec = cc.name if cc is not None else "unknown"
        tb = stream.time_base
        frames = _first_frames(container, stream, path)
        first = frames[0]
        start = _frame_time(first)
        if start is None:
            start = _seconds(stream.start_time, tb) or 0.0
        rotation = normalise_rotation(getattr(first, "rotation", 0))
        width, height = first.width, first.height
        declared_frames = int(stream.frames) if stream.frames else None

        end = _declared_end(container, stream)
        declared = end is not None
        stream_index = stream.index
        has_audio = bool(container.streams.audio)
        avg_rate = stream.average_rate or stream.guessed_rate
        recorded = recording_time(path, dict(container.metadata or {}), dict(stream.metadata or {}))
    if not declared:
        end = _measured_end(path, stream_index)
    duration = (end - start) if end is not None else 0.0

    if len(frames) < 2:
        raise InvalidVideo(path, "it is too short to index: it holds a single frame (a video needs at least 2)")
    if not duration > 0 or not math.isfinite(duration):
        raise InvalidVideo(path, "its duration is unknown and could not be measured")
    fps = float(avg_rate) if avg_rate else 0.0
    if not fps > 0:
        fps = (declared_frames or 0) / duration
    if rate_hz and duration < 1.0 / rate_hz - 1e-6:
        raise InvalidVideo(
            path,
            f"it is too short to index: {duration:.2f} s, shorter than one "
            f"{rate_hz:g} Hz grid bin ({1.0 / rate_hz:.2f} s)",
        )
    return VideoInfo(
        path=str(path),
        duration=float(duration),
        fps=fps,
        width=int(width),
        height=int(height),
        rotation=rotation,
        codec=codec,
        container=fmt,
        frame_count=declared_frames,
        has_audio=has_audio,
        start_time=float(start),
        size_bytes=size,
        duration_declared=declared,
        recorded_at=recorded.at,
        recorded_tz=recorded.tz_minutes,
        recorded_source=recorded.source,
        recorded_note=recorded.note,
    )
