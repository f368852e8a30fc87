"""Checking and repairing a library: what a killed writer left behind, found and fixed.

The job of :meth:`indexing.library.Library.check` and ``repair``; one of the library's parts, handed the
library's state (:mod:`indexing.state`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexing.catalog import STATUS_DAMAGED, STATUS_INDEXING, STATUS_READY, LibrarySettings, VideoRecord
from indexing.errors import LibraryError
from indexing.excerpts import EXCERPTS_DIR
from indexing.fsutil import (
    TMP_MARK,
    fsync_dir,
    lock_is_free,
)
from indexing.layout import STAGING_DIR, STAGING_LOCK, STALE_CLIP_TMP_S, STORE_LOCK, STORES_DIR, load_features
from indexing.state import LibraryState
from indexing.vectors import FrameIndex

logger = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What :meth:`Library.check` found (and, from :meth:`Library.repair`, what was fixed)."""

    problems: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Repairer:
    """Checks and repairs one library; handed the library's state, it reads nothing else."""

    def __init__(self, state: LibraryState) -> None:
        self._state = state

    def check(self) -> CheckReport:
        """List inconsistencies without changing anything. Under the write lock, as repair: a writer half-way
        through adding a video (its row claimed, its files not yet renamed into place) would otherwise be
        reported as damage. Waits for the lock like every writer (``LibraryBusy`` after the timeout)."""
        report = CheckReport()
        with self._state.lock.held():
            self.run_locked(report, fix=False)
        return report

    def repair(self) -> CheckReport:
        """Fix what :meth:`check` finds: drop dead jobs, orphan and temporary files; mark videos whose
        features are gone as damaged; rebuild a stale index. Waits for the write lock."""
        report = CheckReport()
        with self._state.lock.held():
            self.run_locked(report, fix=True)
        return report

    def run_locked(self, report: CheckReport, fix: bool) -> None:
        """Check (and with ``fix``, repair) everything, in the order a killed writer's leftovers are found:
        rows, job folders, staged videos, encoder stores, loose files, clip folders, then the index."""
        state = self._state
        state.lock.require()
        found = _Findings(report, fix, state.root)
        with state.catalog.connect(write=fix) as con:
            settings = state.catalog.settings(con)
            self._rows(con, found)
            self._leftover_folders(con, found)
            rows = state.catalog.videos(con)
            self._loose_files(rows, settings, found)
            self._clips(found, {r.id for r in rows})
            if settings.dim is not None:
                why = FrameIndex.mismatch(state.paths.index_dir(settings), state.frames.expected_meta(con, settings))
                if why:
                    found(f"the frame index does not match the catalog ({why})", "rebuilt the frame index")
                    if fix:
                        state.frames.rebuild_and_save(con, settings)
        if fix:
            fsync_dir(state.root)

    def _rows(self, con: Any, found: _Findings) -> None:
        """Rows of dead jobs are dropped; ready rows whose features are unusable are marked damaged."""
        state = self._state
        settings = state.catalog.settings(con)
        for rec in state.catalog.videos(con):
            if rec.status == STATUS_INDEXING and state.paths.job_dead(rec):
                found(
                    f"video {rec.id} ({rec.name}) was left half-indexed by an interrupted job",
                    "dropped the half-indexed entry",
                )
                if found.fix:
                    state.drop_row(con, rec)
            elif rec.status == STATUS_READY:
                try:
                    load_features(state.paths.features(rec.id, settings), rec.num_rows, rec.dim)
                except LibraryError as exc:
                    found(f"video {rec.id} ({rec.name}): {exc}", "marked it damaged; remove and add it again")
                    if found.fix:
                        state.catalog.update(con, rec.rowid, status=STATUS_DAMAGED)
                        state.catalog.bump_generation(con)
                if rec.media_path and not (state.root / rec.media_path).is_file():  # absolute for references
                    what = "original file" if rec.media_mode == "reference" else "media file"
                    found(
                        f"video {rec.id} ({rec.name}): its {what} {rec.media_path} is missing; answer clips "
                        f"cannot be cut from it"
                    )

    def _leftover_folders(self, con: Any, found: _Findings) -> None:
        """Job folders no row names, staged videos no driver will commit, encoder stores no re-index holds."""
        state = self._state
        settings = state.catalog.settings(con)
        by_job = {r.job for r in state.catalog.videos(con) if r.job}
        jobs_dir = state.paths.jobs_dir()
        for job_dir in sorted(jobs_dir.iterdir()) if jobs_dir.is_dir() else []:
            if job_dir.name not in by_job and lock_is_free(job_dir / "lock"):
                found(f"leftover job directory {job_dir.name}", "deleted it")
                found.delete(job_dir)
        staging = state.root / STAGING_DIR
        if staging.is_dir() and lock_is_free(staging / STAGING_LOCK):  # no driver may commit from it
            for p in sorted(staging.iterdir()):
                if p.name != STAGING_LOCK:
                    found(f"leftover staged video {p.name} (an interrupted distributed run)", "deleted it")
                    found.delete(p)
        stores = state.root / STORES_DIR
        for other in sorted(stores.iterdir()) if stores.is_dir() else []:
            if other.name != settings.feature_store and lock_is_free(other / STORE_LOCK):
                found(
                    f"leftover encoder store {other.relative_to(state.root)} (an interrupted or finished re-index)",
                    "deleted it",
                )
                found.delete(other)

    def _loose_files(self, rows: list[VideoRecord], settings: LibrarySettings, found: _Findings) -> None:
        """Temporary files of killed writers, and feature or media files no row owns."""
        state = self._state
        store = state.paths.store_dir(settings)
        keep_features = {f"{r.id}.npy" for r in rows if r.status in (STATUS_READY, STATUS_DAMAGED)}
        keep_media = {
            Path(r.media_path).name
            for r in rows
            if r.media_path and r.media_mode != "reference" and r.status != STATUS_INDEXING
        }
        scans: list[tuple[Path, set[str] | None]] = [
            (store / "features", keep_features),
            (state.root / "media", keep_media),
            (store / "index", None),
            (state.root, None),
        ]
        if settings.feature_store:  # the root's own store was replaced by a re-index: all of it is stale
            scans += [(state.root / "features", set()), (state.root / "index", set())]
        for directory, keep in scans:
            for p in sorted(directory.iterdir()) if directory.is_dir() else []:
                if not p.is_file():
                    continue
                if TMP_MARK in p.name:
                    found(f"leftover temporary file {p.relative_to(state.root)}", "deleted it")
                elif keep is not None and p.name not in keep:
                    found(f"orphan file {p.relative_to(state.root)}", "deleted it")
                else:
                    continue
                found.delete(p)

    def _clips(self, found: _Findings, known_ids: set[str]) -> None:
        """Clip folders of videos that are gone, and temporary clip files a killed cutter left (only old ones:
        a young one may belong to a cut in progress in another process)."""
        clips = self._state.root / EXCERPTS_DIR
        for folder in sorted(clips.iterdir()) if clips.is_dir() else []:
            if not folder.is_dir():
                continue
            if folder.name not in known_ids:
                found(f"orphan clips folder {folder.relative_to(self._state.root)}", "deleted it")
                found.delete(folder)
                continue
            for p in folder.iterdir():
                try:
                    old = time.time() - p.stat().st_mtime > STALE_CLIP_TMP_S
                except OSError:
                    continue
                if TMP_MARK in p.name and old:
                    found(f"leftover temporary file {p.relative_to(self._state.root)}", "deleted it")
                    found.delete(p)


class _Findings:
    """Collects problems into a report and, when fixing, deletes what is found to be left over."""

    def __init__(self, report: CheckReport, fix: bool, root: Path) -> None:
        self.report, self.fix, self._root = report, fix, root

    def __call__(self, problem: str, fixed: str | None = None) -> None:
        self.report.problems.append(problem)
        if self.fix and fixed:
            self.report.fixed.append(fixed)
        logger.info("library %s: %s%s", self._root, problem, " (fixed)" if self.fix and fixed else "")

    def delete(self, path: Path) -> None:
        if not self.fix:
            return
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
