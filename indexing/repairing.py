"""Checking and repairing a library: what a killed writer left behind, found and fixed.

The job of :meth:`indexing.library.Library.check` and ``repair``; a mixin of :class:`~indexing.library.Library`,
using its store layout, locks and catalog.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexing.catalog import STATUS_DAMAGED, STATUS_INDEXING, STATUS_READY
from indexing.clips import CLIPS_DIR
from indexing.errors import LibraryError
from indexing.fsutil import (
    TMP_MARK,
    fsync_dir,
    lock_is_free,
)
from indexing.layout import STAGING_DIR, STAGING_LOCK, STALE_CLIP_TMP_S, STORE_LOCK, STORES_DIR, load_features
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


class RepairMixin:
    """The methods of :class:`~indexing.library.Library` for this job."""

    def check(self) -> CheckReport:
        """List inconsistencies without changing anything. Under the write lock, as repair: a writer half-way
        through adding a video (its row claimed, its files not yet renamed into place) would otherwise be
        reported as damage. Waits for the lock like every writer (``LibraryBusy`` after the timeout)."""
        report = CheckReport()
        with self._writing():
            self._repair_locked(report, fix=False)
        return report

    def repair(self) -> CheckReport:
        """Fix what :meth:`check` finds: drop dead jobs, orphan and temporary files; mark videos whose
        features are gone as damaged; rebuild a stale index. Waits for the write lock."""
        report = CheckReport()
        with self._writing():
            self._repair_locked(report, fix=True)
        return report

    def _repair_locked(self, report: CheckReport, fix: bool) -> None:
        def found(problem: str, fixed: str | None = None) -> None:
            report.problems.append(problem)
            if fix and fixed:
                report.fixed.append(fixed)
            logger.info("library %s: %s%s", self.root, problem, " (fixed)" if fix and fixed else "")

        with self.catalog.connect(write=fix) as con:
            settings = self.catalog.settings(con)
            store = self._store_dir(settings)
            rows = self.catalog.videos(con)
            by_job = {r.job: r for r in rows if r.job}
            for rec in rows:
                if rec.status == STATUS_INDEXING and self._job_dead(rec):
                    found(
                        f"video {rec.id} ({rec.name}) was left half-indexed by an interrupted job",
                        "dropped the half-indexed entry",
                    )
                    if fix:
                        self._drop_row(con, rec, report)
                elif rec.status == STATUS_READY:
                    try:
                        load_features(self._features_path(rec.id, settings), rec.num_rows, rec.dim)
                    except LibraryError as exc:
                        found(f"video {rec.id} ({rec.name}): {exc}", "marked it damaged; remove and add it again")
                        if fix:
                            self.catalog.update(con, rec.rowid, status=STATUS_DAMAGED)
                            self.catalog.bump_generation(con)
                    if rec.media_path and not (self.root / rec.media_path).is_file():  # absolute for references
                        what = "original file" if rec.media_mode == "reference" else "media file"
                        found(
                            f"video {rec.id} ({rec.name}): its {what} {rec.media_path} is missing; answer clips "
                            f"cannot be cut from it"
                        )
            jobs_dir = self.root / "jobs"
            for job_dir in sorted(jobs_dir.iterdir()) if jobs_dir.is_dir() else []:
                if job_dir.name not in by_job and lock_is_free(job_dir / "lock"):
                    found(f"leftover job directory {job_dir.name}", "deleted it")
                    if fix:
                        shutil.rmtree(job_dir, ignore_errors=True)
            staging = self.root / STAGING_DIR
            if staging.is_dir() and lock_is_free(staging / STAGING_LOCK):  # no driver may commit from it
                for p in sorted(staging.iterdir()):
                    if p.name != STAGING_LOCK:
                        found(f"leftover staged video {p.name} (an interrupted distributed run)", "deleted it")
                        if fix and p.is_dir():
                            shutil.rmtree(p, ignore_errors=True)
                        elif fix:
                            p.unlink(missing_ok=True)
            stores = self.root / STORES_DIR
            for other in sorted(stores.iterdir()) if stores.is_dir() else []:
                if other.name != settings.feature_store and lock_is_free(other / STORE_LOCK):
                    found(
                        f"leftover encoder store {other.relative_to(self.root)} (an interrupted or finished re-index)",
                        "deleted it",
                    )
                    if fix:
                        shutil.rmtree(other, ignore_errors=True)
            rows = self.catalog.videos(con)
            keep_features = {f"{r.id}.npy" for r in rows if r.status in (STATUS_READY, STATUS_DAMAGED)}
            keep_media = {
                Path(r.media_path).name
                for r in rows
                if r.media_path and r.media_mode != "reference" and r.status != STATUS_INDEXING
            }
            scans = [
                (store / "features", keep_features),
                (self.root / "media", keep_media),
                (store / "index", None),
                (self.root, None),
            ]
            if settings.feature_store:  # the root's own store was replaced by a re-index: all of it is stale
                scans += [(self.root / "features", set()), (self.root / "index", set())]
            for directory, keep in scans:
                for p in sorted(directory.iterdir()) if directory.is_dir() else []:
                    if not p.is_file():
                        continue
                    if TMP_MARK in p.name:
                        found(f"leftover temporary file {p.relative_to(self.root)}", "deleted it")
                    elif keep is not None and p.name not in keep:
                        found(f"orphan file {p.relative_to(self.root)}", "deleted it")
                    else:
                        continue
                    if fix:
                        p.unlink(missing_ok=True)
            self._check_clips(found, {r.id for r in rows}, fix)
            if settings.dim is not None:
                why = FrameIndex.mismatch(self._index_dir(settings), self._expected_meta(con, settings))
                if why:
                    found(f"the frame index does not match the catalog ({why})", "rebuilt the frame index")
                    if fix:
                        with self._index_lock:
                            index = self._build_index(con)
                            generation = self.catalog.generation(con)
                            index.save(self._index_dir(settings), generation, self._expected_meta(con, settings).videos)
                            self._index, self._index_generation = index, generation
        if fix:
            fsync_dir(self.root)

    def _check_clips(self, found, known_ids: set[str], fix: bool) -> None:
        """Clip folders of videos that are gone, and temporary clip files a killed cutter left (only old ones:
        a young one may belong to a cut in progress in another process)."""
        clips = self.root / CLIPS_DIR
        for folder in sorted(clips.iterdir()) if clips.is_dir() else []:
            if not folder.is_dir():
                continue
            if folder.name not in known_ids:
                found(f"orphan clips folder {folder.relative_to(self.root)}", "deleted it")
                if fix:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            for p in folder.iterdir():
                try:
                    old = time.time() - p.stat().st_mtime > STALE_CLIP_TMP_S
                except OSError:
                    continue
                if TMP_MARK in p.name and old:
                    found(f"leftover temporary file {p.relative_to(self.root)}", "deleted it")
                    if fix:
                        p.unlink(missing_ok=True)
