"""Adding and removing videos: the library's writes, each committed under the write lock in seconds.

One of :class:`~indexing.library.Library`'s parts (see :mod:`indexing.state` for the lock rules and the
library's module docstring for crash safety). Decoding and encoding run outside the write lock, in a job's own
folder under the job's own flock; the write lock is held only to register the job and to commit it.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from indexing.catalog import STATUS_INDEXING, STATUS_READY, LibrarySettings, VideoRecord
from indexing.decode import probe_isolated
from indexing.errors import EncoderMismatch, GridMismatch, InvalidVideo, LibraryBusy, LibraryError, UnknownVideo
from indexing.extract import FrameEncoder, Progress
from indexing.feedback import FeedbackStore
from indexing.fsutil import FileLock, HashCache, link_or_copy, replace_durably
from indexing.layout import ID_LENGTH, load_features, resolved_weights, stored_weights
from indexing.staging import EncoderIdentity, StagedVideo, identity_of, write_features
from indexing.state import LibraryState
from indexing.vectors import FrameIndex, NeedsRebuild, video_set_checksum
from models.grid import TimeGrid

logger = logging.getLogger(__name__)


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


class Writer:
    """Adds and removes one library's videos; handed the library's state, it reads nothing else."""

    def __init__(self, state: LibraryState) -> None:
        self._state = state
        self._catalog = state.catalog
        self._hash = HashCache()

    def require_encoder(self, key: str, dim: int | None = None, settings: LibrarySettings | None = None) -> None:
        """Raise :class:`EncoderMismatch` unless features of encoder ``key`` may go into this library."""
        settings = settings or self._catalog.settings()
        if settings.encoder_key is None or key == settings.encoder_key and dim in (None, settings.dim):
            return
        with self._catalog.connect() as con:
            if not self._catalog.videos(con):
                return  # claimed by an encoder whose every file failed: nothing to be incompatible with
        if key != settings.encoder_key or (dim is not None and settings.dim is not None and dim != settings.dim):
            weights = resolved_weights(settings.encoder_pretrained or "", self._state.root)
            raise EncoderMismatch(
                f"the library at {self._state.root} holds features of encoder {settings.encoder_key} "
                f"({settings.dim}-d) and cannot mix in features of {key}; index with --model "
                f"{settings.encoder_model} --pretrained {weights}, switch the whole library "
                f"to the new encoder with `python -m app library reindex --model NAME --pretrained TAG|FILE`, "
                f"or use another library (--library DIR)"
            )

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
        self.require_encoder(encoder.key, encoder.dim, self._catalog.settings())
        if not path.is_file():
            raise InvalidVideo(path, "the file does not exist" if not path.exists() else "it is not a regular file")
        sha = self.sha(path)
        existing = self._existing(sha)
        if existing is not None:
            return existing
        settings = self._catalog.settings()
        info = probe_isolated(path, rate_hz=settings.rate_hz, config=self._state.config.decode)
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
                path, encoder, info, grid, job.features, config=self._state.config.decode, progress=progress
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
        folder, when the same bytes are already in. Raises :class:`EncoderMismatch` / :class:`GridMismatch` for
        features of another encoder or grid, LibraryError for a folder whose files do not match its manifest.
        """
        settings = self._catalog.settings()
        self.require_encoder(staged.encoder.key, staged.encoder.dim, settings)
        if abs(staged.rate_hz - settings.rate_hz) > 1e-9:
            raise GridMismatch(
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

    def sha(self, path: Path) -> str:
        """The sha256 of a file (cached by path, size and modification time); InvalidVideo if unreadable."""
        try:
            return self._hash(path)
        except OSError as exc:
            raise InvalidVideo(path, f"the file cannot be read ({exc.strerror or exc})") from None

    def _existing(self, sha: str) -> VideoRecord | None:
        with self._catalog.connect() as con:
            rec = self._catalog.by_sha(con, sha)
        return rec if rec is not None and rec.status == STATUS_READY else None

    def _register(
        self, path: Path, sha: str, info, grid: TimeGrid, encoder: EncoderIdentity, copy_media: bool
    ) -> _Job | VideoRecord:
        """Under the write lock: claim the library's encoder if unclaimed, insert the 'indexing' row, make
        the job directory and take the job's own lock (which marks the job alive for other processes)."""
        with self._state.lock.held(), self._catalog.connect(write=True) as con:
            settings = self._catalog.settings(con)
            self.require_encoder(encoder.key, encoder.dim, settings)
            if settings.encoder_key != encoder.key:  # unclaimed, or claimed but still empty
                for key, value in (
                    ("encoder_key", encoder.key),
                    ("encoder_model", encoder.model),
                    ("encoder_pretrained", stored_weights(encoder.pretrained, self._state.root)),
                    ("encoder_quantize", encoder.quantize),
                    ("dim", int(encoder.dim)),
                ):
                    self._catalog.set_setting(con, key, value)
            rec = self._catalog.by_sha(con, sha)
            if rec is not None:
                if rec.status == STATUS_READY:
                    return rec
                if rec.status == STATUS_INDEXING and not self._state.paths.job_dead(rec):
                    raise LibraryBusy(
                        f"{path.name} is being indexed by another job right now; try again when it has finished"
                    )
                self._state.drop_row(con, rec)  # a dead job or damaged entry: index it afresh
            video_id = sha[:ID_LENGTH]
            other = self._catalog.by_id(con, video_id)
            if other is not None and other.sha256 != sha:
                video_id = sha[: 2 * ID_LENGTH]
            name = f"{video_id}-{uuid.uuid4().hex[:8]}"
            job_dir = self._state.paths.jobs_dir() / name
            job_dir.mkdir(parents=True)
            lock = FileLock(job_dir / "lock")
            if not lock.try_acquire():
                raise LibraryError(f"could not lock the new job directory {job_dir}")
            try:
                rowid = self._catalog.insert(
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
        with self._state.lock.held():
            settings = self._catalog.settings()
            if settings.encoder_key != job.encoder_key:
                raise EncoderMismatch(
                    f"{source.name}: the library at {self._state.root} was re-indexed with encoder "
                    f"{settings.encoder_key} while this video was being indexed; index it again"
                )
            index: FrameIndex | None = self._state.frames.writable()
            features_path = self._state.paths.features(job.video_id, settings)
            replace_durably(job.features, features_path)
            if media_tmp is not None:
                media_path = self._state.root / "media" / f"{job.video_id}{source.suffix.lower()}"
                replace_durably(media_tmp, media_path)
                media_ref = str(media_path.relative_to(self._state.root))
            else:
                media_ref = str(source.absolute())
            features = load_features(features_path, len(result.features), result.features.shape[1])
            try:
                with self._state.frames.lock:
                    assert index is not None
                    if index.factory != self._state.frames.factory(extra_rows=len(features)):
                        index = None  # grown past what this index type is for: rebuild as the new type
                    else:
                        try:
                            index.add(job.rowid, features)
                        except NeedsRebuild:
                            index = None
                with self._catalog.connect(write=True) as con:
                    ready = [(r.rowid, r.num_rows) for r in self._catalog.videos(con, (STATUS_READY,))]
                    ready.append((job.rowid, len(features)))
                    generation = self._catalog.bump_generation(con)
                    if index is None:
                        index = self._state.frames.build(con, extra=[(job.rowid, features)])
                    index.save(self._state.paths.index_dir(settings), generation, video_set_checksum(ready))
                    self._catalog.update(
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
                    record = self._catalog.by_id(con, job.video_id)
                    assert record is not None  # written in this very transaction
            except BaseException:
                self._state.frames.install(None, None)  # it may hold this video's vectors: reload from disk
                raise
            self._state.frames.install(index, generation)
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
            with self._state.lock.held(), self._catalog.connect(write=True) as con:
                rec = self._catalog.by_id(con, job.video_id)
                if rec is not None and rec.status == STATUS_INDEXING and rec.job == job.name:
                    self._state.drop_row(con, rec)
                else:
                    shutil.rmtree(job.dir, ignore_errors=True)
        except LibraryBusy:
            logger.warning("could not clean up job %s now; the next repair will", job.name)
            shutil.rmtree(job.dir, ignore_errors=True)

    def remove(self, video_id: str) -> VideoRecord:
        """Remove a video: its index entries, features, metadata, corrections and (unless referenced) its media
        file."""
        with self._state.lock.held():
            with self._catalog.connect(write=True) as con:
                rec = self._catalog.by_id(con, video_id)
                if rec is None:
                    raise UnknownVideo(f"there is no video {video_id!r} in the library at {self._state.root}")
                if rec.status == STATUS_INDEXING and not self._state.paths.job_dead(rec):
                    raise LibraryBusy(
                        f"video {video_id} ({rec.name}) is being indexed right now; remove it when that has finished"
                    )
                index = self._state.frames.writable() if rec.status == STATUS_READY else None
                if index is not None and index.factory != self._state.frames.factory(con, extra_rows=-rec.num_rows):
                    index = None  # shrunk below what this index type is for: rebuild as the new type
                try:
                    if index is not None:
                        with self._state.frames.lock:
                            try:
                                index.remove(rec.rowid)
                            except NeedsRebuild:
                                index = None
                    self._catalog.delete(con, rec.rowid)
                    FeedbackStore.delete_video(con, rec.id)
                    generation = self._catalog.bump_generation(con)
                    if rec.status == STATUS_READY:
                        if index is None:
                            index = self._state.frames.build(con)
                        ready = [(r.rowid, r.num_rows) for r in self._catalog.videos(con, (STATUS_READY,))]
                        index.save(self._state.paths.index_dir(), generation, video_set_checksum(ready))
                except BaseException:
                    self._state.frames.install(None, None)
                    raise
            if index is not None:
                self._state.frames.install(index, generation)
            self._state.delete_files(rec)
        logger.info("removed %s (%s)", rec.id, rec.name)
        return rec
