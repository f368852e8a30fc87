"""The video library: a directory holding videos, their features, a searchable index and their metadata.

Layout of a library directory::

    library.sqlite          metadata (SQLite, WAL): one row per video, library settings
    lock                    the writers' flock
    features/<id>.npy       float16 [num_bins, dim] L2-normalised, one row per grid bin (memory-mappable)
    media/<id>.<ext>        the library's hard link to (or copy of) each video, to cut answer clips from
    index/frames.faiss      faiss index over every frame of every ready video (+ frames.json sidecar)
    clips/<id>/             cached answer clips and thumbnails (``indexing.excerpts``), removed with the video
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

Parts. A :class:`Library` is a thin front: its jobs are parts, each handed one declared
:class:`~indexing.state.LibraryState` (where the lock rules are written): :class:`~indexing.writing.Writer`
adds and removes, :class:`~indexing.searching.FrameSearch` searches, :class:`~indexing.reindexing.Reindexer`
switches encoders, :class:`~indexing.repairing.Repairer` checks and repairs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexing.catalog import STATUS_READY, Catalog, LibrarySettings, VideoRecord
from indexing.config import LibraryConfig
from indexing.errors import GridMismatch, LibraryError, UnknownVideo
from indexing.extract import FrameEncoder, Progress
from indexing.feedback import FeedbackStore
from indexing.fsutil import replace_durably, tmp_name
from indexing.layout import DB_FILE, resolved_weights
from indexing.recording_time import RecordingTime
from indexing.reindexing import Reindexer, ReindexReport
from indexing.repairing import CheckReport, Repairer
from indexing.searching import FrameSearch, SearchHit
from indexing.staging import StagedVideo
from indexing.state import LibraryState
from indexing.view import LibraryView
from indexing.writing import Writer
from models.grid import EGO4D_RATE_HZ, TimeGrid

logger = logging.getLogger(__name__)


__all__ = [
    "Library",
    "VideoRecord",
    "SearchHit",
    "CheckReport",
    "ReindexReport",
    "LibrarySettings",
    "LibraryConfig",
    "LibraryView",
]


class Library:
    """A persistent, crash-safe, searchable video library in one directory. Create with :meth:`open`."""

    def __init__(self, root: Path, config: LibraryConfig) -> None:
        self.root = root
        self.config = config
        self.catalog = Catalog(root / DB_FILE)
        self.state = LibraryState.at(root, config, self.catalog)
        """What the library's parts share (:mod:`indexing.state`): paths, write lock, index in memory."""
        self.feedback = FeedbackStore(self.catalog)
        """Users' corrections of answers (:mod:`indexing.feedback`), removed with their video."""
        self._writer = Writer(self.state)
        self._search = FrameSearch(self.state)
        self._reindexer = Reindexer(self.state)
        self._repairer = Repairer(self.state)

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
        built with. Raises :class:`GridMismatch` or :class:`EncoderMismatch`, :class:`LibraryError` when
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
            raise GridMismatch(
                f"the library at {root} uses a {settings.rate_hz:g} Hz time grid, not "
                f"{float(rate_hz):g} Hz; leave out --rate or use another library"
            )
        if encoder_spec is not None:
            lib.require_encoder(encoder_spec.key, None, settings)
        if repair:
            with lib.state.lock.attempt() as held:  # never wait here: a reader must not block on a writer
                if held:
                    lib._repairer.run_locked(CheckReport(), fix=True)
        return lib

    def _create(self, rate_hz: float) -> None:
        for sub in ("features", "media", "index", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self.state.lock.held():
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
        self.state.frames.install(None, None)
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
        if not s.encoder_model:
            return None
        weights = resolved_weights(s.encoder_pretrained or "", self.root)
        return EncoderSpec(s.encoder_model, weights, s.encoder_quantize or "")

    def require_encoder(self, key: str, dim: int | None = None, settings: LibrarySettings | None = None) -> None:
        """Raise :class:`EncoderMismatch` unless features of encoder ``key`` may go into this library."""
        self._writer.require_encoder(key, dim, settings)

    # ================================================================================== reading
    def videos(self, *, include_pending: bool = False) -> list[VideoRecord]:
        """Videos in the order they were added: ready ones, or every row (indexing, damaged) if asked."""
        with self.catalog.connect() as con:
            return self.catalog.videos(con) if include_pending else list(self.state.ready.read(con))

    def view(self) -> LibraryView:
        """Settings, generation, ready videos and corrections in one read (:mod:`indexing.view`): what one
        question needs, handed to :meth:`search` and :meth:`features_of` so that they read nothing more."""
        with self.catalog.connect() as con:
            return LibraryView(
                self.catalog.settings(con),
                self.catalog.generation(con),
                self.state.ready.read(con),
                tuple(self.feedback.read(con)),
            )

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
        sha = self._writer.sha(Path(path))
        with self.catalog.connect() as con:
            rec = self.catalog.by_sha(con, sha)
        return rec if rec is not None and rec.status == STATUS_READY else None

    def features(self, video: str | VideoRecord) -> np.ndarray:
        """A read-only memory map of the video's features: float16 [num_bins, dim], L2-normalised rows.

        ``video`` is an id or a record (only its id is used: the catalog's current record decides)."""
        return self.features_of([video])[video.id if isinstance(video, VideoRecord) else video]

    def features_of(
        self, videos: Sequence[str | VideoRecord], *, view: LibraryView | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`features` of several videos (id -> memory map) with one catalog read (a library question
        answers eight candidates, and a connection per candidate was a tenth of its time), or none when
        ``view`` holds them all ready."""
        ids = [v.id if isinstance(v, VideoRecord) else v for v in videos]
        for attempt in range(2):
            if attempt == 0 and view is not None and all(vid in view.by_id for vid in ids):
                records: dict[str, VideoRecord | None] = {vid: view.by_id[vid] for vid in ids}
                settings, generation = view.settings, view.generation
            else:
                with self.catalog.connect() as con:
                    records = {vid: self.catalog.by_id(con, vid) for vid in ids}
                    settings = self.catalog.settings(con)
                    generation = self.catalog.generation(con)
            maps = {}
            try:
                for vid, rec in records.items():
                    if rec is None:
                        raise UnknownVideo(f"there is no video {vid!r} in the library at {self.root}")
                    if rec.status != STATUS_READY:
                        raise LibraryError(f"video {vid} ({rec.name}) is {rec.status}, not ready")
                    try:
                        path = self.state.paths.features(rec.id, settings)
                        maps[vid] = self.state.maps.load(path, rec.num_rows, rec.dim)
                    except LibraryError as exc:
                        raise _Unusable(vid, exc) from None
            except _Unusable as bad:
                if attempt == 0 and self.catalog.generation() != generation:
                    continue  # a re-index switched stores between reading the records and the files
                message = f"the features of video {bad.video_id} are unusable ({bad.cause}); run repair"
                raise LibraryError(message) from None
            return maps
        raise AssertionError("unreachable")

    def feature_path(self, video_id: str) -> Path:
        """Where the ready video's feature file lies now (it moves with a re-index: read, never keep)."""
        return self.state.paths.features(self._ready(video_id).id)

    def grid(self, video_id: str) -> TimeGrid:
        """The time grid of the video's features: row i covers [i / rate, (i + 1) / rate) seconds."""
        return self.get(video_id).grid

    def media_path(self, video_id: str) -> Path:
        """The video file to cut answer clips from (the library's copy, or the original if referenced)."""
        return self.state.paths.media(self.get(video_id))

    def num_frames(self) -> int:
        """Feature rows over all ready videos (the size the frame index must have)."""
        return sum(r.num_rows for r in self.videos())

    # ================================================================================== writing
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
        return self._writer.add(path, encoder, progress=progress, copy_media=copy_media)

    def commit_staged(self, staged: StagedVideo) -> VideoRecord:
        """Commit a video that a worker indexed into ``staging/`` (:func:`indexing.staging.stage_video`); see
        :meth:`indexing.writing.Writer.commit_staged`."""
        return self._writer.commit_staged(staged)

    def remove(self, video_id: str) -> VideoRecord:
        """Remove a video: its index entries, features, metadata, corrections and (unless referenced) its media
        file."""
        return self._writer.remove(video_id)

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
            updated = self.catalog.by_id(con, video_id)
            assert updated is not None  # updated in this very transaction
            return updated

    # ================================================================================== the other parts
    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        video_ids: Sequence[str] | None = None,
        encoder_key: str | None = None,
        view: LibraryView | None = None,
    ) -> list[list[SearchHit]]:
        """The ``k`` frames most similar to each query vector, best first, as one list per query
        (:meth:`indexing.searching.FrameSearch.search`); ``view``: the catalog as the caller read it."""
        return self._search.search(queries, k, video_ids=video_ids, encoder_key=encoder_key, view=view)

    def reindex(self, encoder: FrameEncoder, *, progress: Progress | None = None) -> ReindexReport:
        """Re-encode every video with ``encoder`` and switch the whole library to it in one commit
        (:meth:`indexing.reindexing.Reindexer.run`)."""
        return self._reindexer.run(encoder, progress=progress)

    def check(self) -> CheckReport:
        """List inconsistencies without changing anything (under the write lock; see :mod:`indexing.repairing`)."""
        return self._repairer.check()

    def repair(self) -> CheckReport:
        """Fix what :meth:`check` finds: drop dead jobs, orphan and temporary files; mark videos whose
        features are gone as damaged; rebuild a stale index. Waits for the write lock."""
        return self._repairer.repair()


class _Unusable(Exception):
    """A ready video's feature file could not be read (re-read once: a re-index may have moved it)."""

    def __init__(self, video_id: str, cause: Exception) -> None:
        super().__init__(video_id)
        self.video_id, self.cause = video_id, cause
