"""Switching a library to another encoder: re-encode every video into a new store, then one commit.

The job of :meth:`indexing.library.Library.reindex` (see the library's module docstring for the crash-safety
rules); one of the library's parts, handed the library's state (:mod:`indexing.state`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexing.catalog import STATUS_DAMAGED, STATUS_INDEXING, LibrarySettings, VideoRecord
from indexing.decode import probe_isolated
from indexing.errors import InvalidVideo, LibraryBusy, LibraryError, VideoError
from indexing.extract import FrameEncoder, Progress, extract_features
from indexing.fsutil import (
    FileLock,
    lock_is_free,
    replace_durably,
    tmp_name,
)
from indexing.layout import STORE_LOCK, STORES_DIR, load_features, stored_weights
from indexing.state import LibraryState
from indexing.vectors import FrameIndex, effective_factory, video_set_checksum

logger = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    """What :meth:`Library.reindex` did."""

    old_key: str | None
    new_key: str
    videos: int = 0
    """Videos re-encoded and searchable with the new encoder."""
    damaged: list[tuple[str, str]] = field(default_factory=list)
    """(video id, why) of videos that could not be re-encoded; they are marked damaged (remove, add again)."""
    frames: int = 0
    seconds: float = 0.0
    unchanged: bool = False
    """The library already used this encoder; nothing was done."""


@dataclass
class _Counter:
    """Frames re-encoded so far, of how many (the total grows when videos added meanwhile are caught up)."""

    done: int = 0
    total: int = 0


class Reindexer:
    """Switches one library to another encoder; handed the library's state, it reads nothing else."""

    def __init__(self, state: LibraryState) -> None:
        self._state = state

    def run(self, encoder: FrameEncoder, *, progress: Progress | None = None) -> ReindexReport:
        """Re-encode every video with ``encoder`` and switch the whole library to it in one commit.

        Videos are decoded again from the library's media (or the referenced originals) on the library's grid;
        features and a new index are built in a new store folder beside the current one while the library
        stays searchable with its old encoder, and other processes may keep adding videos (with the old
        encoder: they are caught up under the write lock before the switch). The switch is one SQLite
        transaction (store, encoder settings, every row); the old store is deleted after it. A video that
        cannot be decoded any more is marked damaged. ``progress(frames_done, frames_total)`` follows the
        re-encoding. Raises :class:`LibraryBusy` when another re-index is running and :class:`LibraryError`
        when media files are missing (before any work is done).
        """
        state = self._state
        started = time.monotonic()
        settings = state.catalog.settings()
        report = ReindexReport(old_key=settings.encoder_key, new_key=encoder.key)
        if settings.encoder_key == encoder.key and settings.dim == encoder.dim:
            report.unchanged = True
            return report
        self._check_media(state.ready_records())
        store, lock = self._new_store(encoder)
        committed = False
        try:
            done: set[str] = set()
            counter = _Counter()
            self._reencode(state.ready_records(), encoder, store, done, report, counter, progress)
            with state.lock.held():  # catch up with videos added meanwhile; nobody can add or remove from here on
                ready = state.ready_records()
                self._check_media([r for r in ready if r.id not in done])
                self._reencode(ready, encoder, store, done, report, counter, progress)
                broken = {vid for vid, _ in report.damaged}
                keep = [r for r in ready if r.id in done and r.id not in broken]
                old_settings = state.catalog.settings()
                self._switch(encoder, store, keep, broken)
                committed = True
                self._delete_store(old_settings)
        finally:
            lock.release()
            if committed:
                (store / STORE_LOCK).unlink(missing_ok=True)
            else:
                shutil.rmtree(store, ignore_errors=True)
        report.videos = len(keep)
        report.seconds = time.monotonic() - started
        logger.info(
            "re-indexed %s with %s: %d videos, %d damaged, %.1f s",
            state.root,
            encoder.key,
            report.videos,
            len(report.damaged),
            report.seconds,
        )
        return report

    def _switch(self, encoder: FrameEncoder, store: Path, keep: list[VideoRecord], broken: set[str]) -> None:
        """Under the write lock: index the new store's features, then name the store and encoder and update
        every row in one transaction. Until it commits the library is the old one, whole."""
        state = self._state
        state.lock.require()
        for p in (store / "features").iterdir():  # features of videos removed meanwhile
            if p.suffix == ".npy" and p.stem not in {r.id for r in keep}:
                p.unlink(missing_ok=True)
        features = [(r.rowid, load_features(store / "features" / f"{r.id}.npy", r.num_rows, encoder.dim)) for r in keep]
        settings = state.catalog.settings()
        factory = effective_factory(settings.index_factory, sum(len(f) for _, f in features), int(encoder.dim))
        index = FrameIndex.build(int(encoder.dim), factory, features, tuning=state.config.search)
        try:
            with state.catalog.connect(write=True) as con:
                generation = state.catalog.bump_generation(con)
                index.save(store / "index", generation, video_set_checksum([(r.rowid, r.num_rows) for r in keep]))
                for rec in state.catalog.videos(con):
                    if rec.status == STATUS_INDEXING:
                        continue  # a live job of the old encoder: its commit will be refused
                    status = STATUS_DAMAGED if rec.id in broken else rec.status
                    state.catalog.update(con, rec.rowid, encoder_key=encoder.key, dim=int(encoder.dim), status=status)
                spec = encoder.spec
                for key, value in (
                    ("encoder_key", encoder.key),
                    ("encoder_model", spec.model),
                    ("encoder_pretrained", stored_weights(spec.pretrained, state.root)),
                    ("encoder_quantize", getattr(spec, "quantize", "")),
                    ("dim", int(encoder.dim)),
                    ("feature_store", store.name),
                ):
                    state.catalog.set_setting(con, key, value)
        except BaseException:
            state.frames.install(None, None)
            raise
        state.frames.install(index, generation)

    def _check_media(self, records: Sequence[VideoRecord]) -> None:
        missing = []
        for rec in records:
            try:
                self._state.paths.media(rec)
            except LibraryError:
                missing.append(rec)
        if missing:
            names = ", ".join(f"{r.id} ({r.name})" for r in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise LibraryError(
                f"cannot re-index the library at {self._state.root}: the video files of {len(missing)} "
                f"video(s) are missing: {names}; put them back, or remove those videos first"
            )

    def _new_store(self, encoder: FrameEncoder) -> tuple[Path, FileLock]:
        """Under the write lock: refuse a second re-index, make the new store folder and take its flock."""
        state = self._state
        with state.lock.held():
            stores = state.root / STORES_DIR
            current = state.catalog.settings().feature_store
            for other in sorted(stores.iterdir()) if stores.is_dir() else []:
                if other.name != current and not lock_is_free(other / STORE_LOCK):
                    raise LibraryBusy(
                        f"the library at {state.root} is being re-indexed by another process right "
                        f"now ({other.name}); wait for it to finish"
                    )
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.spec.model)
            store = stores / f"{safe}-{uuid.uuid4().hex[:8]}"
            (store / "features").mkdir(parents=True)
            (store / "index").mkdir()
            lock = FileLock(store / STORE_LOCK)
            if not lock.try_acquire():
                raise LibraryError(f"could not lock the new encoder store {store}")
        return store, lock

    def _reencode(
        self,
        records: Sequence[VideoRecord],
        encoder: FrameEncoder,
        store: Path,
        done: set[str],
        report: ReindexReport,
        counter: _Counter,
        progress: Progress | None,
    ) -> None:
        """Encode the videos not yet in ``done`` into ``store/features``; failures go to ``report.damaged``."""
        broken = {vid for vid, _ in report.damaged}
        todo = [r for r in records if r.id not in done and r.id not in broken]
        counter.total += sum(r.num_rows for r in todo)
        if progress:
            progress(counter.done, counter.total)
        decode = self._state.config.decode
        for rec in todo:
            final = store / "features" / f"{rec.id}.npy"
            tmp = tmp_name(final)
            base = counter.done
            try:
                path = self._state.paths.media(rec)
                info = probe_isolated(path, rate_hz=rec.rate_hz, config=decode)
                if abs(info.duration - rec.duration) > 1e-3:
                    raise InvalidVideo(
                        path, f"it is {info.duration:.2f} s long now, not {rec.duration:.2f} s as when it was indexed"
                    )
                feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(rec.num_rows, encoder.dim))
                try:
                    cb = (lambda d, _t, _b=base: progress(_b + d, counter.total)) if progress else None
                    extract_features(path, encoder, info, rec.grid, out=feats, config=decode, progress=cb)
                    feats.flush()
                finally:
                    del feats
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                replace_durably(tmp, final)
                done.add(rec.id)
            except (VideoError, LibraryError) as exc:
                logger.warning("re-index: video %s (%s) could not be re-encoded: %s", rec.id, rec.name, exc)
                report.damaged.append((rec.id, str(exc)))
            finally:
                tmp.unlink(missing_ok=True)
            counter.done = base + rec.num_rows
            report.frames = counter.done
            if progress:
                progress(counter.done, counter.total)

    def _delete_store(self, settings: LibrarySettings) -> None:
        """Delete a store that is no longer current (a crash before this is cleaned up by repair)."""
        root = self._state.root
        if settings.feature_store:
            shutil.rmtree(root / STORES_DIR / settings.feature_store, ignore_errors=True)
            return
        for sub in ("features", "index"):
            directory = root / sub
            for p in directory.iterdir() if directory.is_dir() else []:
                if p.is_file():
                    p.unlink(missing_ok=True)
