"""The video library: a directory holding videos, their features, a searchable index and their metadata.

Layout of a library directory::

    library.sqlite          metadata (SQLite, WAL): one row per video, library settings
    lock                    the writers' flock
    features/<id>.npy       float16 [num_bins, dim] L2-normalised, one row per grid bin (memory-mappable)
    media/<id>.<ext>        the library's hard link to (or copy of) each video, to cut answer clips from
    index/frames.faiss      faiss index over every frame of every ready video (+ frames.json sidecar)
    clips/<id>/             cached answer clips and thumbnails (``indexing.clips``), removed with the video
    jobs/<job>/             work area of a running indexing job (its own flock, features, media)
    encoders/<name>/        after a re-index: the features/ and index/ of the current encoder (the settings
                            name which store is current; until the first re-index it is the root's)

A library is made for one encoder (its ``key`` and dimension) and one grid rate; features of another encoder
are refused. A video's id is the start of the sha256 of its bytes, so adding the same file twice (under any
name) returns the existing record.

Crash safety. Decoding and encoding run *outside* the write lock, in the job's own directory, guarded by the
job's own flock; the write lock is held only to register a job and to commit it (seconds). A commit moves the
finished files into place, adds the vectors to the index, saves the index (temp file + rename, with a sidecar
that names the set of videos it holds) and only then marks the row ``ready`` -- so a video becomes visible
after everything it needs is on disk. Whatever a killed process leaves behind is found on the next open (or
:meth:`Library.repair`): rows of jobs whose flock is free are dropped with their files, orphan and temporary
files are deleted, and an index whose sidecar does not match the catalog is rebuilt from the feature files.
Readers never take the lock and never wait for a writer.

Changing the encoder (:meth:`Library.reindex`) re-encodes every video into a new store folder
``encoders/<name>/`` (features, then an index over them), guarded by that folder's own flock, and switches
the library in one SQLite transaction that names the new store and encoder and updates every row; only then
is the old store deleted. A re-index killed at any instant leaves the old library intact and usable (its dead
store folder is deleted on the next repair), and no index ever holds features of two encoders.

Concurrency: any number of processes may index at once (each commit takes the lock in turn); several threads
may share one :class:`Library`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing.catalog import STATUS_INDEXING, STATUS_READY, Catalog, LibrarySettings, VideoRecord
from indexing.clips import video_clips_dir
from indexing.config import LibraryConfig
from indexing.decode import probe_isolated
from indexing.errors import EncoderMismatch, InvalidVideo, LibraryBusy, LibraryError, UnknownVideo
from indexing.extract import FrameEncoder, Progress
from indexing.feedback import FeedbackStore
from indexing.fsutil import (
    FileLock,
    HashCache,
    link_or_copy,
    lock_is_free,
    replace_durably,
    tmp_name,
)
from indexing.layout import DB_FILE, ID_LENGTH, LOCK_FILE, STORES_DIR, FeatureMaps, load_features
from indexing.recording_time import RecordingTime
from indexing.reindexing import ReindexMixin, ReindexReport
from indexing.repairing import CheckReport, RepairMixin
from indexing.searching import SearchHit, SearchMixin
from indexing.staging import EncoderIdentity, StagedVideo, identity_of, write_features
from indexing.vectors import (
    FrameIndex,
    IndexMeta,
    NeedsRebuild,
    effective_factory,
    index_vectors,
    video_set_checksum,
)
from models.grid import EGO4D_RATE_HZ, TimeGrid

logger = logging.getLogger(__name__)


__all__ = ["Library", "VideoRecord", "SearchHit", "CheckReport", "ReindexReport", "LibrarySettings", "LibraryConfig"]


@dataclass
class _Job:
    name: str
    dir: Path
    lock: FileLock
    rowid: int
    video_id: str
    encoder_key: str

    @property
    def features(self) -> Path:
        return self.dir / "features.npy"


class Library(SearchMixin, ReindexMixin, RepairMixin):
    """A persistent, crash-safe, searchable video library in one directory. Create with :meth:`open`."""

    def __init__(self, root: Path, config: LibraryConfig) -> None:
        self.root = root
        self.config = config
        self.catalog = Catalog(root / DB_FILE)
        self.feedback = FeedbackStore(self.catalog)
        """Users' corrections of answers (:mod:`indexing.feedback`), removed with their video."""
        self._lock = FileLock(root / LOCK_FILE)
        self._index_lock = threading.RLock()
        self._index: FrameIndex | None = None
        self._index_generation: int | None = None
        self._ready_cache: tuple[int, tuple[VideoRecord, ...]] | None = None
        self._hash = HashCache()
        self._maps = FeatureMaps()
        """Memory maps of ready videos' feature files, for searches and answers (never for writes)."""

    # ================================================================================== opening
    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        encoder_spec=None,
        rate_hz: float | None = None,
        create: bool = True,
        config: LibraryConfig | None = None,
        repair: bool = True,
    ) -> Library:
        """Open (or create) the library at ``root``, check it and clean up after any interrupted writer.

        With ``repair`` (the default) and no other writer active, whatever an interrupted job left is
        cleaned up and a stale index rebuilt right away (see :meth:`repair`); it never waits for a writer.

        ``rate_hz`` is the grid rate of a new library (default 1.875 Hz, Ego4D's); for an existing one it
        must match. ``encoder_spec`` (an ``EncoderSpec``), when given, must match the encoder the library was
        built with. Raises :class:`EncoderMismatch` on either mismatch, :class:`LibraryError` when
        ``create`` is False and there is no library.
        """
        config = config or LibraryConfig()
        root = Path(root).expanduser().absolute()
        lib = cls(root, config)
        if not lib.catalog.exists():
            if not create:
                raise LibraryError(f"there is no EgoRecall library at {root}")
            lib._create(rate_hz or EGO4D_RATE_HZ)
        lib.catalog.migrate()
        settings = lib.settings
        if rate_hz is not None and abs(float(rate_hz) - settings.rate_hz) > 1e-9:
            raise EncoderMismatch(
                f"the library at {root} uses a {settings.rate_hz:g} Hz time grid, not "
                f"{float(rate_hz):g} Hz; leave out --rate or use another library"
            )
        if encoder_spec is not None:
            lib.require_encoder(encoder_spec.key, None, settings)
        if repair and lib._lock.try_acquire():  # never wait here: a reader must not block on a writer
            try:
                lib._repair_locked(CheckReport(), fix=True)
            finally:
                lib._lock.release()
        return lib

    def _create(self, rate_hz: float) -> None:
        for sub in ("features", "media", "index", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self._writing():
            if self.catalog.exists():
                return
            tmp = tmp_name(self.catalog.path)
            try:
                Catalog(tmp).create(
                    LibrarySettings(
                        rate_hz=float(rate_hz), index_factory=self.config.index_factory, created_at=time.time()
                    )
                )
                replace_durably(tmp, self.catalog.path)
            finally:
                for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                    if p.exists():
                        p.unlink()
        logger.info("created library at %s (%g Hz grid, %s index)", self.root, rate_hz, self.config.index_factory)

    def close(self) -> None:
        """Drop the in-memory index and the catalog's idle connection (the object stays usable)."""
        with self._index_lock:
            self._index = None
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.root)!r})"

    # ================================================================================== settings
    @property
    def settings(self) -> LibrarySettings:
        """Grid rate, index type and (after the first video) the encoder key, model, weights and dimension."""
        return self.catalog.settings()

    @property
    def encoder_spec(self):
        """The ``EncoderSpec`` the library was built with, or None while it is empty and unclaimed."""
        from models.clip_encoder import EncoderSpec

        s = self.settings
        return EncoderSpec(s.encoder_model, s.encoder_pretrained, s.encoder_quantize or "") if s.encoder_model else None

    def require_encoder(self, key: str, dim: int | None = None, settings: LibrarySettings | None = None) -> None:
        """Raise :class:`EncoderMismatch` unless features of encoder ``key`` may go into this library."""
        settings = settings or self.settings
        if settings.encoder_key is None or key == settings.encoder_key and dim in (None, settings.dim):
            return
        with self.catalog.connect() as con:
            if not self.catalog.videos(con):
                return  # claimed by an encoder whose every file failed: nothing to be incompatible with
        if key != settings.encoder_key or (dim is not None and settings.dim is not None and dim != settings.dim):
            raise EncoderMismatch(
                f"the library at {self.root} holds features of encoder {settings.encoder_key} "
                f"({settings.dim}-d) and cannot mix in features of {key}; index with --model "
                f"{settings.encoder_model} --pretrained {settings.encoder_pretrained}, switch the whole library "
                f"to the new encoder with `python -m app library reindex --model NAME --pretrained TAG|FILE`, "
                f"or use another library (--library DIR)"
            )

    # ================================================================================== reading
    def videos(self, *, include_pending: bool = False) -> list[VideoRecord]:
        """Videos in the order they were added: ready ones, or every row (indexing, damaged) if asked."""
        with self.catalog.connect() as con:
            return self.catalog.videos(con) if include_pending else list(self._ready_records(con))

    def _ready_records(self, con) -> tuple[VideoRecord, ...]:
        """The ready records, re-read only when the catalog's generation moved. Every change to the set of
        ready videos (commit, removal, marking damaged) bumps the generation in the same transaction, and a
        ready record never changes otherwise; reading 2,000 records costs ~50 ms, the generation ~0.5 ms, and
        every question needs the list (``search``)."""
        generation = self.catalog.generation(con)
        cached = self._ready_cache
        if cached is not None and cached[0] == generation:
            return cached[1]
        records = tuple(self.catalog.videos(con, (STATUS_READY,)))
        self._ready_cache = (generation, records)
        return records

    def get(self, video_id: str) -> VideoRecord:
        """The record of one video (any status); raises :class:`UnknownVideo`."""
        with self.catalog.connect() as con:
            rec = self.catalog.by_id(con, video_id)
        if rec is None:
            raise UnknownVideo(f"there is no video {video_id!r} in the library at {self.root}")
        return rec

    def _ready(self, video_id: str) -> VideoRecord:
        rec = self.get(video_id)
        if rec.status != STATUS_READY:
            raise LibraryError(f"video {video_id} ({rec.name}) is {rec.status}, not ready")
        return rec

    def find_file(self, path: str | Path) -> VideoRecord | None:
        """The ready record of a file with the same bytes as ``path``, or None (hashes the file once)."""
        sha = self._sha(Path(path))
        with self.catalog.connect() as con:
            rec = self.catalog.by_sha(con, sha)
        return rec if rec is not None and rec.status == STATUS_READY else None

    def features(self, video: str | VideoRecord) -> np.ndarray:
        """A read-only memory map of the video's features: float16 [num_bins, dim], L2-normalised rows.

        ``video`` is an id or a record (only its id is used: the catalog's current record decides)."""
        video_id = video.id if isinstance(video, VideoRecord) else video
        for attempt in range(2):
            with self.catalog.connect() as con:
                rec = self.catalog.by_id(con, video_id)
                settings = self.catalog.settings(con)
                generation = self.catalog.generation(con)
            if rec is None:
                raise UnknownVideo(f"there is no video {video_id!r} in the library at {self.root}")
            if rec.status != STATUS_READY:
                raise LibraryError(f"video {video_id} ({rec.name}) is {rec.status}, not ready")
            try:
                return self._maps.load(self._features_path(rec.id, settings), rec.num_rows, rec.dim)
            except LibraryError as exc:
                if attempt == 0 and self.catalog.generation() != generation:
                    continue  # a re-index switched stores between reading the record and the file
                raise LibraryError(f"the features of video {video_id} are unusable ({exc}); run repair") from None
        raise AssertionError("unreachable")

    def feature_path(self, video_id: str) -> Path:
        """Where the ready video's feature file lies now (it moves with a re-index: read, never keep)."""
        return self._features_path(self._ready(video_id).id)

    def grid(self, video_id: str) -> TimeGrid:
        """The time grid of the video's features: row i covers [i / rate, (i + 1) / rate) seconds."""
        return self.get(video_id).grid

    def media_path(self, video_id: str) -> Path:
        """The video file to cut answer clips from (the library's copy, or the original if referenced)."""
        rec = self.get(video_id)
        if not rec.media_path:
            raise LibraryError(f"video {video_id} has no media file yet")
        path = Path(rec.media_path)
        if not path.is_absolute():
            path = self.root / path
        if not path.is_file():
            raise LibraryError(f"the media file of video {video_id} ({rec.name}) is missing: {path}")
        return path

    def num_frames(self) -> int:
        """Feature rows over all ready videos (the size the frame index must have)."""
        return sum(r.num_rows for r in self.videos())

    # ================================================================================== adding
    def add(
        self, path: str | Path, encoder: FrameEncoder, *, progress: Progress | None = None, copy_media: bool = True
    ) -> VideoRecord:
        """Index one video file and return its record (the existing one if the same bytes are already in).

        ``encoder`` is a ``ClipEncoder`` (its key must match the library's); ``progress(done, total)`` is
        called as grid frames are encoded. ``copy_media`` keeps the video in the library (hard link when
        possible, else a copy); False references the original file in place. Raises
        :class:`~indexing.errors.VideoError` subclasses for a file that cannot be indexed -- nothing stored
        before is touched -- :class:`EncoderMismatch` and :class:`LibraryBusy`.
        """
        path = Path(path)
        self.require_encoder(encoder.key, encoder.dim, self.settings)
        if not path.is_file():
            raise InvalidVideo(path, "the file does not exist" if not path.exists() else "it is not a regular file")
        sha = self._sha(path)
        existing = self._existing(sha)
        if existing is not None:
            return existing
        settings = self.settings
        info = probe_isolated(path, rate_hz=settings.rate_hz, config=self.config.decode)
        grid = TimeGrid(settings.rate_hz, info.duration)
        job_or_rec = self._register(path, sha, info, grid, identity_of(encoder), copy_media)
        if isinstance(job_or_rec, VideoRecord):
            return job_or_rec
        job = job_or_rec
        try:
            media_mode, media_tmp = "reference", None
            if copy_media:
                media_tmp = job.dir / f"media{path.suffix.lower()}"
                media_mode = link_or_copy(path, media_tmp)
            result = write_features(
                path, encoder, info, grid, job.features, config=self.config.decode, progress=progress
            )
            return self._commit(job, path, media_mode, media_tmp, result)
        except BaseException:
            self._abandon(job)
            raise
        finally:
            job.lock.release()

    def commit_staged(self, staged: StagedVideo) -> VideoRecord:
        """Commit a video that a worker indexed into ``staging/`` (:func:`indexing.staging.stage_video`).

        The same commit as :meth:`add`'s: the row becomes ready only after the feature file and the index
        entries are in place, and the staged folder is consumed. Returns the existing record, deleting the
        folder, when the same bytes are already in. Raises :class:`EncoderMismatch` for features of another
        encoder or grid, LibraryError for a folder whose files do not match its manifest.
        """
        settings = self.settings
        self.require_encoder(staged.encoder.key, staged.encoder.dim, settings)
        if abs(staged.rate_hz - settings.rate_hz) > 1e-9:
            raise EncoderMismatch(
                f"{staged.source.name} was staged on a {staged.rate_hz:g} Hz grid, not the library's "
                f"{settings.rate_hz:g} Hz"
            )
        existing = self._existing(staged.sha256)
        if existing is not None:
            shutil.rmtree(staged.dir, ignore_errors=True)
            return existing
        features = load_features(staged.features_path, staged.num_rows, staged.encoder.dim)  # refuse a bad one
        job_or_rec = self._register(
            staged.source, staged.sha256, staged.info, staged.grid, staged.encoder, staged.media_file is not None
        )
        if isinstance(job_or_rec, VideoRecord):
            shutil.rmtree(staged.dir, ignore_errors=True)
            return job_or_rec
        job = job_or_rec
        try:
            replace_durably(staged.features_path, job.features)
            media_tmp = None
            if staged.media_file is not None:
                media_tmp = job.dir / staged.media_file
                replace_durably(staged.dir / staged.media_file, media_tmp)
            record = self._commit(job, staged.source, staged.media_mode, media_tmp, staged.extraction(features))
        except BaseException:
            self._abandon(job)
            raise
        finally:
            job.lock.release()
        shutil.rmtree(staged.dir, ignore_errors=True)
        return record

    def _sha(self, path: Path) -> str:
        try:
            return self._hash(path)
        except OSError as exc:
            raise InvalidVideo(path, f"the file cannot be read ({exc.strerror or exc})") from None

    def _existing(self, sha: str) -> VideoRecord | None:
        with self.catalog.connect() as con:
            rec = self.catalog.by_sha(con, sha)
        return rec if rec is not None and rec.status == STATUS_READY else None

    def _register(
        self, path: Path, sha: str, info, grid: TimeGrid, encoder: EncoderIdentity, copy_media: bool
    ) -> _Job | VideoRecord:
        """Under the write lock: claim the library's encoder if unclaimed, insert the 'indexing' row, make
        the job directory and take the job's own lock (which marks the job alive for other processes)."""
        with self._writing(), self.catalog.connect(write=True) as con:
            settings = self.catalog.settings(con)
            self.require_encoder(encoder.key, encoder.dim, settings)
            if settings.encoder_key != encoder.key:  # unclaimed, or claimed but still empty
                for key, value in (
                    ("encoder_key", encoder.key),
                    ("encoder_model", encoder.model),
                    ("encoder_pretrained", encoder.pretrained),
                    ("encoder_quantize", encoder.quantize),
                    ("dim", int(encoder.dim)),
                ):
                    self.catalog.set_setting(con, key, value)
            rec = self.catalog.by_sha(con, sha)
            if rec is not None:
                if rec.status == STATUS_READY:
                    return rec
                if rec.status == STATUS_INDEXING and not self._job_dead(rec):
                    raise LibraryBusy(
                        f"{path.name} is being indexed by another job right now; try again when it has finished"
                    )
                self._drop_row(con, rec, CheckReport())  # a dead job or damaged entry: index it afresh
            video_id = sha[:ID_LENGTH]
            other = self.catalog.by_id(con, video_id)
            if other is not None and other.sha256 != sha:
                video_id = sha[: 2 * ID_LENGTH]
            name = f"{video_id}-{uuid.uuid4().hex[:8]}"
            job_dir = self.root / "jobs" / name
            job_dir.mkdir(parents=True)
            lock = FileLock(job_dir / "lock")
            if not lock.try_acquire():
                raise LibraryError(f"could not lock the new job directory {job_dir}")
            try:
                rowid = self.catalog.insert(
                    con,
                    dict(
                        id=video_id,
                        sha256=sha,
                        name=path.name,
                        status=STATUS_INDEXING,
                        job=name,
                        duration=info.duration,
                        fps=info.fps,
                        width=info.width,
                        height=info.height,
                        rotation=info.rotation,
                        codec=info.codec,
                        container=info.container,
                        frame_count=info.frame_count,
                        has_audio=int(info.has_audio),
                        size_bytes=info.size_bytes,
                        encoder_key=encoder.key,
                        dim=int(encoder.dim),
                        rate_hz=grid.rate_hz,
                        num_rows=grid.num_bins,
                        media_mode="copy" if copy_media else "reference",
                        source_path=str(path.absolute()),
                        recorded_at=getattr(info, "recorded_at", None),
                        recorded_tz=getattr(info, "recorded_tz", None),
                        recorded_source=getattr(info, "recorded_source", None) or None,
                    ),
                )
            except BaseException:
                lock.release()
                shutil.rmtree(job_dir, ignore_errors=True)
                raise
        return _Job(name=name, dir=job_dir, lock=lock, rowid=rowid, video_id=video_id, encoder_key=encoder.key)

    def _commit(self, job: _Job, source: Path, media_mode: str, media_tmp: Path | None, result) -> VideoRecord:
        """Under the write lock: move files into place, index the vectors, save the index, mark ready.

        Searches in this process pause only while the vectors are added in memory, not while the index is
        saved; searches elsewhere read the previous index file until the catalog says otherwise.
        """
        with self._writing():
            settings = self.settings
            if settings.encoder_key != job.encoder_key:
                raise EncoderMismatch(
                    f"{source.name}: the library at {self.root} was re-indexed with encoder {settings.encoder_key} "
                    f"while this video was being indexed; index it again"
                )
            index = self._writable_index()
            features_path = self._features_path(job.video_id, settings)
            replace_durably(job.features, features_path)
            if media_tmp is not None:
                media_path = self.root / "media" / f"{job.video_id}{source.suffix.lower()}"
                replace_durably(media_tmp, media_path)
                media_ref = str(media_path.relative_to(self.root))
            else:
                media_ref = str(source.absolute())
            features = load_features(features_path, len(result.features), result.features.shape[1])
            try:
                with self._index_lock:
                    if index.factory != self._factory(extra_rows=len(features)):
                        index = None  # grown past what this index type is for: rebuild as the new type
                    else:
                        try:
                            index.add(job.rowid, features)
                        except NeedsRebuild:
                            index = None
                with self.catalog.connect(write=True) as con:
                    ready = [(r.rowid, r.num_rows) for r in self.catalog.videos(con, (STATUS_READY,))]
                    ready.append((job.rowid, len(features)))
                    generation = self.catalog.bump_generation(con)
                    if index is None:
                        index = self._build_index(con, extra=[(job.rowid, features)])
                    index.save(self._index_dir(settings), generation, video_set_checksum(ready))
                    self.catalog.update(
                        con,
                        job.rowid,
                        status=STATUS_READY,
                        job=None,
                        backend=result.report.backend,
                        media_path=media_ref,
                        media_mode=media_mode,
                        added_at=time.time(),
                        damaged_frames=int(result.report.damaged),
                        index_seconds=result.seconds,
                    )
                    record = self.catalog.by_id(con, job.video_id)
            except BaseException:
                with self._index_lock:
                    self._index = None  # it may hold this video's vectors: reload from disk next time
                raise
            with self._index_lock:
                self._index, self._index_generation = index, generation
            shutil.rmtree(job.dir, ignore_errors=True)
        logger.info(
            "indexed %s as %s: %.1f s, %d frames, %s, %.1f s",
            source.name,
            record.id,
            record.duration,
            record.num_rows,
            record.backend,
            result.seconds,
        )
        return record

    def _abandon(self, job: _Job) -> None:
        """A job failed or was interrupted: remove its row (if not committed) and everything it wrote."""
        try:
            with self._writing(), self.catalog.connect(write=True) as con:
                rec = self.catalog.by_id(con, job.video_id)
                if rec is not None and rec.status == STATUS_INDEXING and rec.job == job.name:
                    self._drop_row(con, rec, CheckReport())
                else:
                    shutil.rmtree(job.dir, ignore_errors=True)
        except LibraryBusy:
            logger.warning("could not clean up job %s now; the next repair will", job.name)
            shutil.rmtree(job.dir, ignore_errors=True)

    # ================================================================================== recording time
    def set_recording_time(self, video_id: str, when: RecordingTime) -> VideoRecord:
        """Date a video by hand (the user knows better than the file): only its catalog row changes; the
        features, index and corrections stay as they are."""
        with self.catalog.connect(write=True) as con:
            rec = self.catalog.by_id(con, video_id)
            if rec is None:
                raise UnknownVideo(f"there is no video {video_id!r} in the library at {self.root}")
            self.catalog.update(
                con, rec.rowid, recorded_at=when.at, recorded_tz=when.tz_minutes, recorded_source=when.source
            )
            return self.catalog.by_id(con, video_id)

    # ================================================================================== removing
    def remove(self, video_id: str) -> VideoRecord:
        """Remove a video: its index entries, features, metadata, corrections and (unless referenced) its media
        file."""
        with self._writing():
            with self.catalog.connect(write=True) as con:
                rec = self.catalog.by_id(con, video_id)
                if rec is None:
                    raise UnknownVideo(f"there is no video {video_id!r} in the library at {self.root}")
                if rec.status == STATUS_INDEXING and not self._job_dead(rec):
                    raise LibraryBusy(
                        f"video {video_id} ({rec.name}) is being indexed right now; remove it when that has finished"
                    )
                index = self._writable_index() if rec.status == STATUS_READY else None
                if index is not None and index.factory != self._factory(con, extra_rows=-rec.num_rows):
                    index = None  # shrunk below what this index type is for: rebuild as the new type
                try:
                    if index is not None:
                        with self._index_lock:
                            try:
                                index.remove(rec.rowid)
                            except NeedsRebuild:
                                index = None
                    self.catalog.delete(con, rec.rowid)
                    FeedbackStore.delete_video(con, rec.id)
                    generation = self.catalog.bump_generation(con)
                    if rec.status == STATUS_READY:
                        if index is None:
                            index = self._build_index(con)
                        ready = [(r.rowid, r.num_rows) for r in self.catalog.videos(con, (STATUS_READY,))]
                        index.save(self._index_dir(), generation, video_set_checksum(ready))
                except BaseException:
                    with self._index_lock:
                        self._index = None
                    raise
            with self._index_lock:
                if index is not None:
                    self._index, self._index_generation = index, generation
            self._delete_files(rec)
        logger.info("removed %s (%s)", rec.id, rec.name)
        return rec

    # ================================================================================== internals
    @contextmanager
    def _writing(self) -> Iterator[None]:
        if not self._lock.acquire(self.config.lock_timeout_s):
            pid = self._lock.holder_pid()
            raise LibraryBusy(
                f"the library at {self.root} is busy: another writer"
                f"{f' (process {pid})' if pid else ''} has held it for over "
                f"{self.config.lock_timeout_s:g} s; try again later"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _store_dir(self, settings: LibrarySettings | None = None) -> Path:
        """The folder holding ``features/`` and ``index/`` of the library's current encoder."""
        settings = settings or self.settings
        return self.root / STORES_DIR / settings.feature_store if settings.feature_store else self.root

    def _features_path(self, video_id: str, settings: LibrarySettings | None = None) -> Path:
        return self._store_dir(settings) / "features" / f"{video_id}.npy"

    def _index_dir(self, settings: LibrarySettings | None = None) -> Path:
        return self._store_dir(settings) / "index"

    def _job_dead(self, rec: VideoRecord) -> bool:
        return not rec.job or lock_is_free(self.root / "jobs" / rec.job / "lock")

    def _drop_row(self, con, rec: VideoRecord, report: CheckReport) -> None:
        """Delete a row that is not (or no longer) in the index, and every file it may have left."""
        self.catalog.delete(con, rec.rowid)
        if rec.status != STATUS_INDEXING:
            self.catalog.bump_generation(con)
        self._delete_files(rec)

    def _delete_files(self, rec: VideoRecord) -> None:
        self._features_path(rec.id).unlink(missing_ok=True)
        shutil.rmtree(video_clips_dir(self.root, rec.id), ignore_errors=True)
        if rec.media_mode != "reference":
            for p in (self.root / "media").glob(f"{rec.id}.*"):
                p.unlink(missing_ok=True)
        if rec.job:
            shutil.rmtree(self.root / "jobs" / rec.job, ignore_errors=True)

    def _expected_meta(self, con, settings: LibrarySettings) -> IndexMeta:
        ready = [(r.rowid, r.num_rows) for r in self.catalog.videos(con, (STATUS_READY,))]
        factory = effective_factory(settings.index_factory, sum(n for _, n in ready), int(settings.dim))
        return IndexMeta(
            ntotal=index_vectors(factory, (n for _, n in ready)),
            dim=int(settings.dim),
            factory=factory,
            generation=self.catalog.generation(con),
            videos=video_set_checksum(ready),
        )

    def _factory(self, con=None, extra_rows: int = 0) -> str:
        """The index type the library needs with ``extra_rows`` more (or fewer) vectors than its ready videos."""
        if con is None:
            with self.catalog.connect() as own:
                return self._factory(own, extra_rows)
        settings = self.catalog.settings(con)
        ntotal = sum(r.num_rows for r in self.catalog.videos(con, (STATUS_READY,)))
        return effective_factory(settings.index_factory, ntotal + extra_rows, int(settings.dim or 1))

    def _build_index(self, con, extra: list[tuple[int, np.ndarray]] = ()) -> FrameIndex:
        """A new index from the feature files of every ready video (plus ``extra`` not yet marked ready)."""
        settings = self.catalog.settings(con)
        videos = [
            (r.rowid, load_features(self._features_path(r.id, settings), r.num_rows, r.dim))
            for r in self.catalog.videos(con, (STATUS_READY,))
        ]
        videos = [*videos, *extra]
        factory = effective_factory(settings.index_factory, sum(len(f) for _, f in videos), int(settings.dim))
        started = time.monotonic()
        index = FrameIndex.build(int(settings.dim), factory, videos, tuning=self.config.search)
        logger.info(
            "built the frame index of %s (%s): %d vectors in %.1f s",
            self.root,
            factory,
            index.ntotal,
            time.monotonic() - started,
        )
        return index

    def _writable_index(self) -> FrameIndex:
        """The index as the catalog says it must be; call under the write lock (rebuilds and saves if not)."""
        with self._index_lock, self.catalog.connect() as con:
            settings = self.catalog.settings(con)
            generation = self.catalog.generation(con)
            if settings.dim is None:
                return FrameIndex.new(1, effective_factory(settings.index_factory, 0, 1), self.config.search)
            if self._index is not None and self._index_generation == generation:
                return self._index
            expect = self._expected_meta(con, settings)
            index = FrameIndex.load(self._index_dir(settings), expect, self.config.search)
            if index is None:
                index = self._build_index(con)
                index.save(self._index_dir(settings), generation, expect.videos)
            self._index, self._index_generation = index, generation
            return index

    def _current_index(self) -> FrameIndex:
        """The index for searching, reloaded when another process changed the library (readers' path)."""
        with self.catalog.connect() as con:
            settings = self.catalog.settings(con)
            generation = self.catalog.generation(con)
            if self._index is not None and self._index_generation == generation:
                return self._index
            expect = self._expected_meta(con, settings)
            index = FrameIndex.load(self._index_dir(settings), expect, self.config.search)
        if index is None:
            if self._lock.try_acquire():
                try:
                    return self._writable_index()
                finally:
                    self._lock.release()
            with self.catalog.connect() as con:  # a writer is busy: build a private copy, save nothing
                index = self._build_index(con)
        self._index, self._index_generation = index, generation
        return index
