"""Decoding the frames on a time grid, in the calling process: the work a decoder child does.

A backend decodes one *segment* of the grid (a contiguous range of bins) of one file and hands batches of
``uint8 [n, H, W, 3]`` RGB frames -- already rotated for display and resized to the encoder's short side -- to
an ``emit(first_bin, frames)`` callback. For every bin it takes the frame *on screen* at the bin's centre: the
last frame whose presentation timestamp is at or before that time, so variable-frame-rate video maps to the
right seconds. Only the frames kept are converted and resized; every other frame is decoded and dropped.

Backends are found by name in :data:`BACKENDS`, or as ``module:attribute`` (how tests inject faulty ones).
This module must not import torch: it is what the decoder children load.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from indexing.errors import InvalidVideo
from indexing.gop_tails import GopTails
from indexing.nal import NalReader

logger = logging.getLogger(__name__)

EPS = 1e-6
Emit = Callable[[int, np.ndarray], None]
Beat = Callable[[], None]
"""Called often while decoding (the child's wrapper rate-limits it into heartbeats for the watchdog)."""


@dataclass(frozen=True)
class SegmentRequest:
    """One decoder child's job: the bins ``first_bin ..`` whose sample times are ``times`` (video seconds)."""

    path: str
    times: np.ndarray
    first_bin: int
    start_time: float
    """Container timestamp of the video's first frame: subtracted from every frame's timestamp."""
    window: tuple[float, float]
    """[start, end) in video seconds over which this segment accounts for damage; the windows of a video's
    segments partition its timeline, so every frame is counted exactly once."""
    short_side: int
    rotation: int
    batch_frames: int
    width: int = 0
    height: int = 0
    """Coded frame size from the probe (decord must be told the output size before it decodes)."""
    threads: int = 0
    fps: float = 30.0
    skip_non_reference: bool = False
    """Let the decoder skip H.264 / HEVC pictures that nothing is predicted from (``indexing.nal``): the pictures
    kept come out bit-identical, a bin may get one a few frames before the one on screen at its time."""
    skip_gop_tails: bool = False
    """Do not decode, in streams without B-frames, the pictures after a GOP's last sampled one
    (``indexing.gop_tails``): every bin's picture stays bit-identical."""
    hardware: str | None = None
    """An FFmpeg hardware device type to decode on ("cuda": the GPU's NVDEC), or None for software. A device
    that cannot be opened, or that does not decode the codec, leaves the decoding to software."""


@dataclass
class SegmentStats:
    """What a segment's decode saw; the parent sums these and applies the damage policy."""

    backend: str = ""
    frames: int = 0
    """Frames shown inside the accounting window."""
    packets: int = 0
    """Packets inside the window (each should give one frame)."""
    corrupt: int = 0
    """Frames the decoder flagged as corrupt, inside the window."""
    decode_errors: int = 0
    first_damage_s: float | None = None
    end_s: float | None = None
    """Where the last decoded frame stops being shown (its timestamp plus its duration)."""
    damage_detectable: bool = True
    late_start: int = 0
    """Bins that had to use a frame shown *after* their time (a seek that landed late); should be 0."""
    skipped: int = 0
    """Pictures inside the window that were skipped on purpose (counted in ``frames``: they are whole)."""
    hardware: str = ""
    """The hardware device type that decoded ("": software)."""
    hardware_error: str = ""
    """Why the requested hardware device was not used, when it could not be opened."""
    peak_rss_kb: int = 0
    cpu_s: float = 0.0
    """CPU seconds the child used (user + system): how much machine decoding costs, whatever the load."""

    def note_damage(self, t: float) -> None:
        if self.first_damage_s is None or t < self.first_damage_s:
            self.first_damage_s = t


class Backend(Protocol):
    name: str

    def decode_segment(self, request: SegmentRequest, emit: Emit, beat: Beat) -> SegmentStats: ...


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Stored (width, height) scaled so the short side is ``short_side`` (rotation does not change it)."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def rotate_for_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a stored picture counter-clockwise by ``rotation`` degrees, as FFmpeg's players do."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


class GridSampler:
    """Feeds decoded frames in presentation order; emits, per bin, the frame on screen at its sample time.

    ``convert(frame)`` turns a backend frame into the final RGB array; it is called at most once per frame,
    and only for frames some bin keeps.
    """

    def __init__(self, request: SegmentRequest, convert: Callable[[object], np.ndarray], emit: Emit) -> None:
        self.times = np.asarray(request.times, dtype=np.float64)
        self.first_bin = request.first_bin
        self.batch_frames = request.batch_frames
        self.convert = convert
        self.emit = emit
        self.next = 0
        self._held: object | None = None  # the frame on screen now (not yet known to be needed)
        self._held_rgb: np.ndarray | None = None  # its conversion, if some bin already took it
        self._batch: list[np.ndarray] = []
        self._batch_start = request.first_bin
        self.late_start = 0

    @property
    def done(self) -> bool:
        return self.next >= len(self.times)

    def _take(self) -> None:
        rgb = self._held_rgb
        if rgb is None:
            rgb = self._held_rgb = self.convert(self._held)
        if not self._batch:
            self._batch_start = self.first_bin + self.next
        self._batch.append(rgb)
        self.next += 1
        if len(self._batch) >= self.batch_frames:
            self.flush()

    def feed(self, frame: object, t: float) -> None:
        """A frame shown from time ``t`` on (until the next frame)."""
        while self.next < len(self.times) and t > self.times[self.next] + EPS:
            if self._held is None:  # no frame before this bin's time: use the first one after it
                self._held = frame
                self.late_start += 1
            self._take()
        if self.next < len(self.times):
            self._held, self._held_rgb = frame, None

    def finish(self) -> None:
        """End of stream: the last frame stays on screen for the remaining bins."""
        if self._held is not None:
            while self.next < len(self.times):
                self._take()
        self.flush()

    def flush(self) -> None:
        if self._batch:
            frames = np.stack(self._batch)
            self._batch = []
            self.emit(self._batch_start, frames)


def _finish_stats(stats: SegmentStats) -> SegmentStats:
    """Record the child's own peak memory and CPU time (its parent cannot see them: it is not the child's
    parent under forkserver)."""
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats.peak_rss_kb = int(usage.ru_maxrss)
        stats.cpu_s = float(usage.ru_utime + usage.ru_stime)
    except (ImportError, OSError):
        pass
    return stats


class PyAVBackend:
    """FFmpeg through PyAV: every codec FFmpeg decodes (H.264, HEVC, VP9, AV1, MPEG-4, ...), exact timestamps."""

    name = "pyav"
    SEEK_BACK_OFFS_S = (0.0, 2.0, 10.0, 60.0, None)
    """Seek to the segment's start less these seconds; a seek that lands after the start is retried further
    back, and at last (None) the segment is decoded from the start of the file."""

    def decode_segment(self, request: SegmentRequest, emit: Emit, beat: Beat) -> SegmentStats:
        start_s = float(request.times[0]) if len(request.times) else 0.0
        attempts = self.SEEK_BACK_OFFS_S if request.first_bin > 0 else (None,)
        hardware_error = ""
        for back_off in attempts:
            stats = SegmentStats(backend=self.name)
            container, hardware_error = _open(request, hardware_error)
            with container:
                stream = _pick_stream(container)
                if back_off is not None:
                    target = request.start_time + max(0.0, start_s - back_off)
                    container.seek(int(target / stream.time_base), stream=stream, backward=True)
                done = self._decode(container, stream, request, emit, beat, stats, retry_late=back_off is not None)
                stats.hardware = (request.hardware or "") if stream.codec_context.is_hwaccel else ""
                stats.hardware_error = hardware_error
                if done:
                    break
            logger.debug("seek for %.2f s landed late; backing off further", start_s)
        return _finish_stats(stats)

    def _decode(self, container, stream, request, emit, beat, stats, retry_late: bool) -> bool:
        """One pass; returns False (having emitted nothing) when a seek landed after the segment's start."""
        import av

        stream.thread_type = "AUTO"
        if request.threads:
            stream.codec_context.thread_count = request.threads
        nal = NalReader.for_stream(stream.codec_context.name, stream.codec_context.extradata)
        skipping = _Skipping(stream, request.path, nal) if request.skip_non_reference and nal is not None else None
        tb = stream.time_base
        packets = _gop_tails(container.demux(stream), stream, request, nal)
        sized: dict[tuple[int, int], tuple[int, int]] = {}

        def convert(frame) -> np.ndarray:
            key = (frame.width, frame.height)
            if key not in sized:
                sized[key] = target_size(frame.width, frame.height, request.short_side)
            fw, fh = sized[key]
            rgb = frame.to_ndarray(width=fw, height=fh, format="rgb24", interpolation="AREA")
            return rotate_for_display(rgb, request.rotation)

        sampler = GridSampler(request, convert, emit)
        lo, hi = request.window
        t0 = request.start_time
        frame_s = 1.0 / request.fps if request.fps > 0 else 1.0 / 30
        last_t = None
        first_frame, ended = True, False
        for packet, wanted in packets:
            if packet.size and packet.pts is not None:
                pt = float(packet.pts * tb) - t0
                in_window = lo - EPS <= pt < hi - EPS
                stats.packets += in_window
                if not wanted:  # a GOP's tail that no sampled picture needs
                    _count_skipped(stats, packet, pt, in_window, frame_s)
                    if pt < hi - EPS:
                        continue
                    ended = True  # past the segment: what the decoder still holds comes out, then it stops
                elif skipping is not None:
                    skipping.account(packet, pt, in_window, frame_s, stats)
            try:
                frames = _flush(stream) if ended else packet.decode()
            except (av.FFmpegError, ValueError) as exc:
                stats.decode_errors += 1
                stats.note_damage(float(packet.pts * tb) - t0 if packet.pts is not None else (last_t or 0.0))
                logger.debug("decode error at packet pts %s: %s", packet.pts, exc)
                continue
            for frame in frames:
                if frame.pts is not None:
                    t = float(frame.pts * frame.time_base) - t0
                else:
                    t = (last_t + frame_s) if last_t is not None else 0.0
                if first_frame:
                    first_frame = False
                    if retry_late and len(sampler.times) and t > sampler.times[0] + EPS:
                        return False  # the seek overshot: try again from further back
                in_window = lo - EPS <= t < hi - EPS
                if in_window:
                    stats.frames += 1
                    if frame.is_corrupt:
                        stats.corrupt += 1
                        stats.note_damage(t)
                dur = float(frame.duration * frame.time_base) if frame.duration else frame_s
                stats.end_s = t + dur
                last_t = t
                sampler.feed(frame, t)
                if t >= hi - EPS and sampler.done:
                    sampler.finish()
                    stats.late_start = sampler.late_start
                    return True
            beat()
            if ended:
                break
        sampler.finish()
        stats.late_start = sampler.late_start
        if last_t is None:
            raise InvalidVideo(request.path, "no frame of it could be decoded")
        return True


class _Skipping:
    """Lets the decoder skip the pictures nothing refers to, and counts each one skipped as a whole picture
    shown (for the damage accounting), read from its packet's NAL headers (:mod:`indexing.nal`)."""

    def __init__(self, stream, path: str, nal: NalReader) -> None:
        self.stream, self.path = stream, path
        self.nal: NalReader | None = nal
        stream.codec_context.skip_frame = "NONREF"

    def account(self, packet, pt: float, in_window: bool, frame_s: float, stats: SegmentStats) -> None:
        if self.nal is None:
            return
        kinds = self.nal.slice_kinds(memoryview(packet))
        if kinds == {False}:
            _count_skipped(stats, packet, pt, in_window, frame_s)
        elif len(kinds) > 1:  # e.g. an interlaced frame of a reference field and a non-reference one
            logger.info("%s mixes reference and other pictures in one packet: decoding every picture", self.path)
            self.stream.codec_context.skip_frame = "DEFAULT"
            self.nal = None


def _flush(stream) -> list:
    """The frames a decoder still holds (frame threading keeps a few in flight), with their time base."""
    import av

    packet = av.Packet()
    packet.stream, packet.time_base = stream, stream.time_base
    return packet.decode()


def _count_skipped(stats: SegmentStats, packet, pt: float, in_window: bool, frame_s: float) -> None:
    """A picture whole and never decoded: shown, for the damage accounting, and never sampled."""
    stats.frames += in_window
    stats.skipped += in_window
    shown_until = pt + (float(packet.duration * packet.time_base) if packet.duration else frame_s)
    stats.end_s = shown_until if stats.end_s is None else max(stats.end_s, shown_until)


def _gop_tails(demuxed, stream, request: SegmentRequest, nal: NalReader | None):
    """``(packet, decode?)`` pairs: GOP tails left out where :mod:`indexing.gop_tails` applies."""
    if not request.skip_gop_tails or nal is None or stream.codec_context.has_b_frames:
        return ((packet, True) for packet in demuxed)
    tb, t0 = stream.time_base, request.start_time

    def time_of(packet) -> float | None:
        return None if packet.pts is None else float(packet.pts * tb) - t0

    return GopTails(nal, request.times, time_of).packets(demuxed)


def _open(request: SegmentRequest, hardware_error: str):
    """The container, opened for decoding on ``request.hardware`` when asked and the device opens (once it
    failed, ``hardware_error`` says why and the next opening does not try again); else for software."""
    import av

    if request.hardware and not hardware_error:
        from av.codec.hwaccel import HWAccel

        try:
            hwaccel = HWAccel(request.hardware, allow_software_fallback=True)
            return av.open(request.path, metadata_errors="ignore", hwaccel=hwaccel), ""
        except (av.FFmpegError, OSError, ValueError) as exc:
            hardware_error = f"{type(exc).__name__}: {exc}"
    return av.open(request.path, metadata_errors="ignore"), hardware_error


def _pick_stream(container):
    import av

    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise InvalidVideo(container.name, "it has no video stream")
    return max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


class DecordBackend:
    """decord, the fallback when PyAV fails on a file. It reads timestamps but cannot flag corrupt frames
    (only truncation is detected) and cannot decode AV1; it may abort or hang, which the parent's watchdog
    turns into an error."""

    name = "decord"

    def decode_segment(self, request: SegmentRequest, emit: Emit, beat: Beat) -> SegmentStats:
        import decord

        stats = SegmentStats(backend=self.name, damage_detectable=False)
        fw, fh = target_size(request.width, request.height, request.short_side)
        reader = decord.VideoReader(request.path, width=fw, height=fh, num_threads=max(0, request.threads))
        n = len(reader)
        if n == 0:
            raise InvalidVideo(request.path, "no frame of it could be decoded")
        stamps = reader.get_frame_timestamp(np.arange(n))
        # decord reports times from the stream's start; make them relative to the first frame.
        starts = stamps[:, 0].astype(np.float64)
        starts -= starts[0]
        lo, hi = request.window
        stats.frames = int(np.count_nonzero((starts >= lo - EPS) & (starts < hi - EPS)))
        stats.packets = stats.frames
        stats.end_s = float(stamps[-1, 1] - stamps[0, 0])
        times = np.asarray(request.times, dtype=np.float64)
        idx = np.searchsorted(starts, times + EPS, side="right") - 1
        stats.late_start = int(np.count_nonzero(idx < 0))
        idx = np.clip(idx, 0, n - 1)
        for s in range(0, len(idx), request.batch_frames):
            chunk = idx[s : s + request.batch_frames]
            unique, inverse = np.unique(chunk, return_inverse=True)
            frames = reader.get_batch(unique.tolist()).asnumpy()[inverse]
            if request.rotation:
                frames = np.stack([rotate_for_display(f, request.rotation) for f in frames])
            emit(request.first_bin + s, np.ascontiguousarray(frames))
            beat()
        return _finish_stats(stats)


BACKENDS: dict[str, type] = {"pyav": PyAVBackend, "decord": DecordBackend}


def resolve_backend(name: str) -> Backend:
    """A registered backend by name, or any ``module:attribute`` class/factory (tests inject faults so)."""
    if name in BACKENDS:
        return BACKENDS[name]()
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"unknown decode backend {name!r}; known: {', '.join(BACKENDS)} or module:attribute")
    return getattr(importlib.import_module(module), attr)()


def decode_segment(
    request: SegmentRequest, backend: str = "pyav", emit: Emit | None = None, beat: Beat | None = None
) -> SegmentStats:
    """Decode one segment in this process (what a child runs; handy in tests and tools)."""
    return resolve_backend(backend).decode_segment(request, emit or (lambda _b, _f: None), beat or (lambda: None))


def segment_bounds(num_bins: int, parts: int) -> list[tuple[int, int]]:
    """Split ``num_bins`` into ``parts`` contiguous, nearly equal [start, end) ranges."""
    parts = max(1, min(parts, num_bins))
    edges = [round(i * num_bins / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]]


def windows_for(times: np.ndarray, bounds: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Damage-accounting windows: from each segment's first sample time to the next's (open at both ends)."""
    out = []
    for i, (s, _e) in enumerate(bounds):
        lo = -math.inf if i == 0 else float(times[s])
        hi = math.inf if i == len(bounds) - 1 else float(times[bounds[i + 1][0]])
        out.append((lo, hi))
    return out
