"""Decoding a video's grid frames in watched child processes, streamed to the caller in bounded batches.

Why children: FFmpeg and especially decord can segfault, abort the process or hang holding the GIL on bad
input. The process that serves users must survive all of that, so decoding runs in children started with
``forkserver`` (or ``spawn``) -- never ``fork`` after torch is loaded -- and a watchdog here turns a child's
crash, unexpected exit or silence into a :class:`~indexing.errors.DecoderFailed` for that one video.

Why batches: an hour of 1080p must never be held in memory. A child sends ``batch_frames`` frames at a time
through a pipe and blocks until the parent has taken them, so at most about two batches per child exist. The
parent encodes one batch while the child decodes the next: that is where decode/encode overlap comes from.

Long videos can be cut into time segments decoded by several children at once (each seeks to its segment);
batches then arrive out of order and each says which bins it holds. After a backend *fails* the next one in
``DecodeConfig.backends`` starts over, so bins may arrive twice: consumers store batches by bin index.

The damage policy (:class:`~indexing.config.DamagePolicy`) is applied once every segment has finished
(:func:`indexing.damage.assess_damage`).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from indexing.backends import SegmentRequest, SegmentStats, segment_bounds, windows_for
from indexing.config import DecodeConfig
from indexing.damage import DecodeReport, assess_damage
from indexing.errors import VIDEO_ERRORS, DecoderCrashed, DecoderFailed, DecoderHung, InvalidVideo
from indexing.probe import VideoInfo
from models.grid import EGO4D_RATE_HZ, TimeGrid

logger = logging.getLogger(__name__)

WORKER_MODULE = "indexing.decode_worker"
_POLL_S = 0.25
_MAIN_SWAP_LOCK = threading.Lock()
_UNOPENED_HARDWARE: set[str] = set()
"""Hardware device types that could not be opened in this process: later videos decode in software at once."""


@dataclass(frozen=True)
class FrameBatch:
    """Frames for bins ``start .. start + len(frames) - 1``: uint8 RGB [n, H, W, 3], display orientation,
    short side resized to the requested size."""

    start: int
    frames: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + len(self.frames)


# ---------------------------------------------------------------------------------------------- children
def _context(method: str):
    if method == "fork":
        raise ValueError(
            "decoder children must not be forked from a process that may hold torch threads; "
            "use 'forkserver' or 'spawn'"
        )
    try:
        ctx = multiprocessing.get_context(method)
    except ValueError:
        ctx = multiprocessing.get_context("spawn")
    if ctx.get_start_method() == "forkserver":
        # Children fork from a small server that has imported the decoder (av, numpy) but never torch.
        ctx.set_forkserver_preload([WORKER_MODULE])
    return ctx


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start children without re-running the parent's ``__main__`` script in them.

    spawn/forkserver children import the parent's main *script* so that objects defined there can be
    unpickled. Ours need nothing from it (their code lives in ``indexing.decode_worker``), and a script that
    imports torch at its top would cost every child seconds and hundreds of MB -- or, without a
    ``__main__`` guard, re-run the script. The swap lasts only while the child's start-up data is taken.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield  # `python -m pkg` and interactive sessions are not re-run by multiprocessing anyway
        return
    with _MAIN_SWAP_LOCK:
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


LOG_PREFIX = "egorecall-decoder-"
_swept = False


def _sweep_stale_logs(max_age_s: float = 3600.0) -> None:
    """Remove child logs left by parents that were killed before they could delete them (once a process)."""
    global _swept
    if _swept:
        return
    _swept = True
    now = time.time()
    for path in Path(tempfile.gettempdir()).glob(f"{LOG_PREFIX}*.log"):
        try:
            if now - path.stat().st_mtime > max_age_s:
                path.unlink()
        except OSError:
            pass


class _Child:
    def __init__(self, ctx, target, args: tuple, label: str) -> None:
        _sweep_stale_logs()
        fd, self.log_path = tempfile.mkstemp(prefix=LOG_PREFIX, suffix=".log")
        os.close(fd)
        self.label = label
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=target, args=(child_conn, *args, self.log_path), daemon=True, name=f"egorecall-{label}"
        )
        with _main_module_hidden():
            self.proc.start()
        child_conn.close()  # so the child's death reads as end-of-file here
        self.last_seen = time.monotonic()
        self.finished = False

    def last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def _describe_exit(child: _Child) -> str:
    child.proc.join(timeout=5)
    code = child.proc.exitcode
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"crashed ({name})"
    else:
        what = f"exited unexpectedly (status {code})"
    last = child.last_log_line()
    return what + (f"; its last message: {last}" if last else "")


def _pump(
    children: list[_Child], path: str | Path, config: DecodeConfig, stall_timeout_s: float | None = None
) -> Iterator[tuple[_Child, tuple]]:
    """Messages from children as they come; raises for a crash, an exit without result, or a stall."""
    by_conn = {c.conn: c for c in children}
    while any(not c.finished for c in children):
        live = [c.conn for c in children if not c.finished]
        for ready in multiprocessing.connection.wait(live, timeout=_POLL_S):
            conn = cast(multiprocessing.connection.Connection, ready)
            child = by_conn[conn]
            try:
                msg: tuple = conn.recv()
            except (EOFError, OSError):
                raise DecoderCrashed(path, f"the {child.label} {_describe_exit(child)}") from None
            child.last_seen = time.monotonic()
            if msg[0] == "done":
                child.finished = True
            elif msg[0] == "error":
                _, cls_name, _, reason = msg
                raise VIDEO_ERRORS.get(cls_name, InvalidVideo)(path, reason)
            elif msg[0] == "fail":
                raise DecoderFailed(path, f"the {child.label} failed: {msg[1]}")
            yield child, msg
        now = time.monotonic()
        limit = stall_timeout_s or config.stall_timeout_s
        for child in children:
            # Silence only counts when nothing is waiting in the pipe (the parent may just have been busy).
            if not child.finished and now - child.last_seen > limit and not child.conn.poll(0):
                raise DecoderHung(path, f"the {child.label} made no progress for {limit:g} s and was stopped")


def probe_isolated(
    path: str | Path, *, rate_hz: float | None = EGO4D_RATE_HZ, config: DecodeConfig | None = None
) -> VideoInfo:
    """:func:`indexing.probe.probe` in a watched child process: a file that crashes FFmpeg costs one error."""
    from indexing.decode_worker import probe_main

    config = config or DecodeConfig()
    child = _Child(_context(config.start_method), probe_main, (str(path), rate_hz), "probe")
    try:
        for _child, msg in _pump([child], path, config, config.probe_timeout_s):
            if msg[0] == "done":
                return msg[1]
        raise DecoderFailed(path, "the probe ended without an answer")
    finally:
        child.stop()


class GridDecoder:
    """Iterate over :class:`FrameBatch` es of a video's grid frames, decoded in watched child processes.

    >>> decoder = GridDecoder("walk.mp4", info, info.grid(1.875), short_side=224)
    >>> for batch in decoder:            # bins may arrive out of order with several workers
    ...     features[batch.start:batch.stop] = encode(batch.frames)
    >>> decoder.report.backend           # 'pyav' (or 'decord' after a fallback)

    Raises :class:`InvalidVideo` / :class:`DamagedVideo` for a bad file and :class:`DecoderFailed` (crash,
    exit, hang) when every backend failed. Stopping the iteration early kills the children.
    """

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        grid: TimeGrid,
        short_side: int,
        config: DecodeConfig | None = None,
        *,
        batch_frames: int | None = None,
        times: np.ndarray | None = None,
        hardware: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.grid = grid
        self.short_side = int(short_side)
        self.config = config or DecodeConfig()
        self.batch_frames = batch_frames or self.config.resolved_batch_frames(cuda=False)
        self.hardware = hardware if hardware is not None else self.config.resolved_hardware(cuda=False)
        if self.hardware in _UNOPENED_HARDWARE:
            self.hardware = None
        self.report: DecodeReport | None = None
        self.times = self.grid.sample_times() if times is None else np.asarray(times, dtype=np.float64)
        """The video seconds to take frames at; batch ``start`` indices count these. By default the grid's bin
        centres; any non-decreasing times may be given instead (e.g. frames inside narration windows)."""
        if len(self.times) == 0 or np.any(np.diff(self.times) < 0):
            raise ValueError("sample times must be a non-empty, non-decreasing sequence")

    def segments(self) -> list[tuple[int, int]]:
        """[start, end) index ranges into :attr:`times`, one per decoder child."""
        by_length = max(1, math.floor(self.info.duration / max(self.config.min_segment_s, 1e-9)))
        return segment_bounds(len(self.times), min(self.config.resolved_workers(), by_length))

    def _requests(self) -> list[SegmentRequest]:
        times = self.times
        bounds = self.segments()
        threads = self.config.threads
        skip = self.config.skips_non_reference(self.info.fps, times)
        if not threads and len(bounds) > 1:
            threads = max(1, (os.cpu_count() or 1) // len(bounds))
        return [
            SegmentRequest(
                path=str(self.path),
                times=times[s:e],
                first_bin=s,
                start_time=self.info.start_time,
                window=window,
                short_side=self.short_side,
                rotation=self.info.rotation,
                batch_frames=self.batch_frames,
                threads=threads,
                fps=self.info.fps,
                width=self.info.width,
                height=self.info.height,
                skip_non_reference=skip,
                skip_gop_tails=self.config.skip_gop_tails,
                hardware=self.hardware,
            )
            for (s, e), window in zip(bounds, windows_for(times, bounds))
        ]

    def _run(self, backend: str) -> Iterator[FrameBatch]:
        from indexing.decode_worker import segment_main

        ctx = _context(self.config.start_method)
        started = time.monotonic()
        requests = self._requests()
        children: list[_Child] = []
        stats: dict[int, SegmentStats] = {}
        try:
            for i, request in enumerate(requests):
                label = f"{backend} decoder" + (f" {i + 1}/{len(requests)}" if len(requests) > 1 else "")
                children.append(_Child(ctx, segment_main, (request, backend, self.config.heartbeat_s), label))
            order = {id(c): i for i, c in enumerate(children)}
            for child, msg in _pump(children, self.path, self.config):
                if msg[0] == "batch":
                    yield FrameBatch(msg[1], msg[2])
                elif msg[0] == "done":
                    stats[order[id(child)]] = msg[1]
        finally:
            for child in children:
                child.stop()
        report = DecodeReport.combine(backend, [stats[i] for i in range(len(requests))])
        report.seconds = time.monotonic() - started
        unopened = next((s.hardware_error for s in stats.values() if s.hardware_error), "")
        if unopened and self.hardware is not None:
            _UNOPENED_HARDWARE.add(self.hardware)
            logger.warning(
                "%s: decoded in software, %s could not be opened (%s); so will the next videos",
                self.path.name,
                self.hardware,
                unopened,
            )
        assess_damage(self.path, self.info, report, self.config.damage)
        self.report = report

    def __iter__(self) -> Iterator[FrameBatch]:
        failures: list[DecoderFailed] = []
        for backend in self.config.backends:
            try:
                yield from self._run(backend)
            except DecoderFailed as exc:
                logger.info("%s: %s; trying the next decoder", self.path.name, exc.reason)
                failures.append(exc)
                continue
            assert self.report is not None  # set by a run that ended without raising
            self.report.failed_backends = [f.reason for f in failures]
            if failures:
                logger.info(
                    "%s: decoded with %s after %s failed",
                    self.path.name,
                    backend,
                    ", ".join(self.config.backends[: len(failures)]),
                )
            return
        if len(failures) == 1:
            raise failures[0]
        raise DecoderFailed(self.path, "no decoder could read it: " + "; ".join(f.reason.rstrip(".") for f in failures))


def decode_frames(
    path: str | Path,
    info: VideoInfo,
    grid: TimeGrid,
    short_side: int,
    config: DecodeConfig | None = None,
    *,
    times: np.ndarray | None = None,
) -> tuple[np.ndarray, DecodeReport]:
    """The frames on screen at ``times`` (default: every grid bin centre) as one array [len(times), H, W, 3].

    Holds every frame in memory: for short videos, tests, tools, and frame caches of chosen moments.
    """
    decoder = GridDecoder(path, info, grid, short_side, config, times=times)
    out: np.ndarray | None = None
    for batch in decoder:
        if out is None:
            out = np.zeros((len(decoder.times), *batch.frames.shape[1:]), np.uint8)
        out[batch.start : batch.stop] = batch.frames
    assert out is not None and decoder.report is not None  # non-empty times: at least one batch, then a report
    return out, decoder.report


__all__ = ["FrameBatch", "DecodeReport", "GridDecoder", "assess_damage", "decode_frames", "probe_isolated"]
