"""Answer excerpts (the short clips a user plays; "clip" in code means an Ego4D clip) and thumbnails, cut from
the library's stored media and cached next to it.

An answer is a time range of a long recording; the user wants to *watch* it. Each moment gets a short MP4
(H.264, yuv420p, even sides, ``+faststart`` -- what every browser plays) and a JPEG of the frame in the
middle of the window, cut from :meth:`Library.media_path` with PyAV:

* seek to the keyframe at or before (start - a little), decode, drop the frames before the start -- except
  the frame *on screen* at the start, which becomes the clip's first frame (timestamp 0) -- and stop at the
  end. Frames keep their own timestamps (minus the start), so variable-frame-rate recordings stay in time;
  a seek that lands late (some files' indexes are coarse) is retried further back, finally from the start;
* re-encode at a small size (short side <= ``ExcerptConfig.short_side``), turned for display as the recording's
  rotation says (the pixels are rotated; the clip carries no rotation of its own), at most ``max_fps``;
* pad the window by ``pad_s`` on each side (clamped to the video), so a moment is seen in its context.

Cache. Files live in ``<library>/clips/<video id>/`` named by the cut range in milliseconds and the size, so
the same moment asked again is reused. They are written under temporary names and renamed (a reader never
sees half a file), under a per-video ``flock`` so two processes or threads asking for the same clip at once
make it once and both get it. Removing a video removes its folder (:meth:`Library.remove`); the library's
repair removes folders of videos that are gone.

Clips are silent: answers are about what is seen, and leaving audio out keeps cutting fast.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from indexing.backends import rotate_for_display
from indexing.errors import LibraryError
from indexing.fsutil import TMP_MARK, FileLock
from indexing.mp4_writer import VideoWriter


class MediaLibrary(Protocol):
    """What cutting answer clips needs of a library (``indexing.library.Library`` is one): its folder, its
    records and where each video's media file is. A protocol, so this module imports no library code."""

    root: Path

    def get(self, video_id: str): ...

    def media_path(self, video_id: str) -> Path: ...


logger = logging.getLogger(__name__)

EXCERPTS_DIR = "clips"
"""The library's folder of cached excerpts (its name predates the word; kept so existing libraries keep theirs)."""
LOCK_NAME = ".lock"


class ExcerptError(LibraryError):
    """An answer clip could not be cut (media missing or undecodable, bad range, cache busy)."""


@dataclass(frozen=True)
class ExcerptConfig:
    pad_s: float = 1.0
    """Seconds of context added before and after the window (clamped to the video)."""
    short_side: int = 360
    """The clip's short side at most this many pixels (never enlarged); both sides even."""
    max_fps: float = 30.0
    crf: int = 26
    preset: str = "veryfast"
    thumbnail_quality: int = 85
    lock_timeout_s: float = 120.0
    """How long to wait for another process that is cutting clips of the same video."""
    seek_back_offs_s: tuple[float, ...] = (1.0, 8.0)
    """Seek this far before the start; a landing after the start is retried further back, then from 0."""


@dataclass(frozen=True)
class ExcerptFiles:
    video_id: str
    start: float
    """Where the clip starts and ends, in video seconds (the window plus padding, clamped)."""
    end: float
    clip: Path
    thumbnail: Path
    thumbnail_time: float
    """Video second shown by the thumbnail."""


def video_excerpts_dir(root: Path, video_id: str) -> Path:
    """The folder that holds every clip and thumbnail cut from one video of the library at ``root``."""
    return Path(root) / EXCERPTS_DIR / video_id


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000.0))


def _temp_sibling(final: Path) -> Path:
    """A temporary name that keeps the suffix (PyAV picks the container from it) and carries TMP_MARK."""
    return final.with_name(f"{final.stem}{TMP_MARK}{os.getpid()}-{os.urandom(4).hex()}{final.suffix}")


class ExcerptMaker:
    """Cuts (or finds in the cache) the clip and thumbnail of a moment of a library video."""

    def __init__(
        self, library: MediaLibrary, directory: str | Path | None = None, config: ExcerptConfig = ExcerptConfig()
    ) -> None:
        self.library = library
        self.directory = Path(directory) if directory is not None else library.root / EXCERPTS_DIR
        self.config = config

    def paths(self, video_id: str, start: float, end: float) -> ExcerptFiles:
        """Where the files of a moment live (whether or not they exist yet); the range is padded and clamped."""
        rec = self.library.get(video_id)
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ExcerptError(f"cannot cut a clip from {start!r} s to {end!r} s of video {video_id}")
        duration = rec.duration
        start, end = min(max(start, 0.0), duration), min(max(end, 0.0), duration)
        cut_start = max(0.0, start - self.config.pad_s)
        cut_end = min(duration, end + self.config.pad_s)
        if cut_end - cut_start < 1e-3:  # a zero-length window at the very end: show its last moment
            cut_start = max(0.0, cut_end - 1.0)
        middle = (start + end) / 2.0
        folder = self.directory / video_id
        side = self.config.short_side
        return ExcerptFiles(
            video_id,
            cut_start,
            cut_end,
            folder / f"{_ms(cut_start):09d}-{_ms(cut_end):09d}-{side}p.mp4",
            folder / f"t{_ms(middle):09d}-{side}p.jpg",
            middle,
        )

    def make(self, video_id: str, start: float, end: float) -> ExcerptFiles:
        """The moment's clip and thumbnail, cut now or reused from the cache; raises :class:`ExcerptError`."""
        files = self.paths(video_id, start, end)
        if files.clip.is_file() and files.thumbnail.is_file():
            return files
        rec = self.library.get(video_id)
        media = self.library.media_path(video_id)
        folder = files.clip.parent
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / LOCK_NAME)
        if not lock.acquire(self.config.lock_timeout_s):
            raise ExcerptError(
                f"clips of video {video_id} are being cut by another process (pid "
                f"{lock.holder_pid()}) for over {self.config.lock_timeout_s:g} s; try again later"
            )
        try:
            if files.clip.is_file() and files.thumbnail.is_file():
                return files  # made by whoever held the lock before us
            started = time.monotonic()
            self._cut(media, rec.rotation, rec.fps, files)
            logger.info(
                "cut clip %s (%.1f-%.1f s) in %.2f s",
                files.clip.name,
                files.start,
                files.end,
                time.monotonic() - started,
            )
        finally:
            lock.release()
        return files

    # ------------------------------------------------------------------------------------------ cutting
    def _cut(self, media: Path, rotation: int, fps: float, files: ExcerptFiles) -> None:
        clip_tmp, thumb_tmp = _temp_sibling(files.clip), _temp_sibling(files.thumbnail)
        try:
            thumb = None
            for back_off in (*self.config.seek_back_offs_s, None):
                thumb = self._encode(media, rotation, fps, files, clip_tmp, back_off)
                if thumb is not None:
                    break
                logger.debug("seek into %s landed after %.2f s; backing off further", media.name, files.start)
            if thumb is None:
                raise ExcerptError(
                    f"no frame of {media.name} could be decoded between {files.start:.2f} s and {files.end:.2f} s"
                )
            from PIL import Image

            Image.fromarray(thumb).save(thumb_tmp, format="JPEG", quality=self.config.thumbnail_quality)
            os.replace(clip_tmp, files.clip)
            os.replace(thumb_tmp, files.thumbnail)
        except ExcerptError:
            raise
        except (OSError, ValueError) as exc:  # PyAV's errors are OSError/ValueError subclasses
            raise ExcerptError(
                f"could not cut a clip from {media.name} ({files.start:.2f}-{files.end:.2f} s): {exc}"
            ) from exc
        finally:
            for p in (clip_tmp, thumb_tmp):
                p.unlink(missing_ok=True)

    def _encode(
        self, media: Path, rotation: int, fps: float, files: ExcerptFiles, out: Path, back_off: float | None
    ) -> np.ndarray | None:
        """One decode pass into ``out``; returns the thumbnail picture, or None when the seek landed late."""
        import av

        cfg = self.config
        start, end, thumb_t = files.start, files.end, files.thumbnail_time
        min_gap = 1.0 / cfg.max_fps - 1e-6
        writer: VideoWriter | None = None
        thumb: np.ndarray | None = None
        size: tuple[int, int] | None = None
        last_out = -math.inf
        last_src = -math.inf
        with av.open(str(media), metadata_errors="ignore") as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            tb = stream.time_base
            t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
            frame_s = 1.0 / fps if fps and fps > 0 else 1.0 / 30.0
            if back_off is not None and start > 0:
                container.seek(int((t0 + max(0.0, start - back_off)) / tb), stream=stream, backward=True)
            held = None  # the last frame at or before the start: on screen when the clip begins

            def emit(frame, t: float) -> None:
                """Write a frame shown from source time ``t`` (the held frame: from before the start)."""
                nonlocal writer, thumb, size, last_out, last_src
                rel = max(0.0, t - start)
                if t - last_src < min_gap or rel <= last_out:
                    return  # over max_fps, or no later than the last frame written
                last_src = t
                if size is None:
                    size = _scaled(frame.width, frame.height, rotation, cfg.short_side)
                rgb = rotate_for_display(
                    frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA"), rotation
                )
                if writer is None:
                    h, w = rgb.shape[:2]
                    writer = VideoWriter(
                        out, min(fps or cfg.max_fps, cfg.max_fps), w, h, crf=cfg.crf, preset=cfg.preset
                    )
                writer.write(rgb, time_s=rel)
                last_out = rel
                if thumb is None or t <= thumb_t + 1e-6:
                    thumb = rgb  # ends as the frame on screen at the thumbnail's time

            first = True
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * tb) - t0
                    if first:
                        first = False
                        if back_off is not None and start > 0 and t > start + frame_s / 2:
                            return None  # landed after the start: the frames before it were skipped
                    if t <= start + 1e-6:
                        held = (frame, t)
                        continue
                    if held is not None:
                        if t - start > 1e-3:  # else this frame itself opens the clip
                            emit(*held)
                        held = None
                    if t >= end - 1e-6:
                        break
                    emit(frame, t)
                if held is not None:  # the video ended at (or before) the clip's start
                    emit(*held)
            finally:
                if writer is not None:
                    writer.close()
        return thumb


def _video_stream(container):
    import av

    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise ExcerptError(f"{Path(container.name).name} has no video stream")
    return max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


def _scaled(width: int, height: int, rotation: int, short_side: int) -> tuple[int, int]:
    """Coded (width, height) to decode at: short side at most ``short_side``, even once rotated for display."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    w, h = max(2, int(round(width * scale))), max(2, int(round(height * scale)))
    return w - w % 2, h - h % 2
