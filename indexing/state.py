"""What the library's jobs share, declared: its directory, catalog, write lock and frame index in memory.

:class:`~indexing.library.Library` is a thin front over parts that each do one job -- adding and removing
videos (:mod:`indexing.writing`), searching (:mod:`indexing.searching`), switching encoders
(:mod:`indexing.reindexing`), checking and repairing (:mod:`indexing.repairing`). Each part is handed one
:class:`LibraryState` and reads nothing else, so what a part may touch is written here, typed.

The lock rules, all of them:

1. **Writers hold the write lock** (:class:`WriteLock`, an ``flock`` on ``<root>/lock`` shared by every process
   and thread): registering and committing a video, removing one, checking and repairing, the re-index's
   catch-up and switch. A method that must run under it calls :meth:`WriteLock.require` first, so forgetting
   the lock is an error at once rather than a race that shows once a month.
2. **Readers never take it** and never wait for a writer: a search reads the catalog (SQLite, WAL) and the
   index file the catalog names.
3. **The index in memory has its own thread lock** (:attr:`FrameIndexCache.lock`). It is taken *inside* the
   write lock, never the other way round; under it the write lock is only ever *tried*
   (:meth:`WriteLock.attempt`), never waited for, so the two cannot deadlock.
4. **Decoding and encoding run outside both**, in a job's own directory under the job's own ``flock``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexing.catalog import STATUS_INDEXING, STATUS_READY, Catalog, LibrarySettings, VideoRecord
from indexing.config import LibraryConfig
from indexing.errors import LibraryBusy, LibraryError
from indexing.excerpts import video_excerpts_dir
from indexing.fsutil import FileLock, lock_is_free
from indexing.layout import LOCK_FILE, STORES_DIR, FeatureMaps, load_features
from indexing.vectors import FrameIndex, IndexMeta, effective_factory, index_vectors, video_set_checksum

logger = logging.getLogger(__name__)


class WriteLock:
    """The library's one write lock: an ``flock`` every process takes in turn, with the timeout and message a
    user sees when another writer keeps it, and a record of which threads hold it (rule 1)."""

    def __init__(self, path: Path, timeout_s: float, root: Path) -> None:
        self._lock = FileLock(path)
        self._timeout_s = timeout_s
        self._root = root
        self._mine = threading.local()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block, waiting up to the configured timeout; :class:`LibraryBusy` after it."""
        if not self._lock.acquire(self._timeout_s):
            pid = self._lock.holder_pid()
            raise LibraryBusy(
                f"the library at {self._root} is busy: another writer"
                f"{f' (process {pid})' if pid else ''} has held it for over "
                f"{self._timeout_s:g} s; try again later"
            )
        self._enter()
        try:
            yield
        finally:
            self._leave()

    @contextmanager
    def attempt(self) -> Iterator[bool]:
        """Hold the lock for the block if it is free right now; yields whether it is held (never waits)."""
        if not self._lock.try_acquire():
            yield False
            return
        self._enter()
        try:
            yield True
        finally:
            self._leave()

    @property
    def is_held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return getattr(self._mine, "depth", 0) > 0

    def require(self) -> None:
        """Refuse to go on unless the calling thread holds the lock (a programming error, not a user's)."""
        if not self.is_held:
            raise RuntimeError(f"the library at {self._root} is being written without its write lock")

    def _enter(self) -> None:
        self._mine.depth = getattr(self._mine, "depth", 0) + 1

    def _leave(self) -> None:
        self._mine.depth -= 1
        self._lock.release()


@dataclass(frozen=True)
class LibraryPaths:
    """Where each file of a library lies. Features and the index live in the current encoder's store, which
    moves with a re-index: ask each time, never keep a path."""

    root: Path
    catalog: Catalog

    def store_dir(self, settings: LibrarySettings | None = None) -> Path:
        """The folder holding ``features/`` and ``index/`` of the library's current encoder."""
        settings = settings or self.catalog.settings()
        return self.root / STORES_DIR / settings.feature_store if settings.feature_store else self.root

    def features_dir(self, settings: LibrarySettings | None = None) -> Path:
        return self.store_dir(settings) / "features"

    def features(self, video_id: str, settings: LibrarySettings | None = None) -> Path:
        return self.features_dir(settings) / f"{video_id}.npy"

    def index_dir(self, settings: LibrarySettings | None = None) -> Path:
        return self.store_dir(settings) / "index"

    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def media(self, rec: VideoRecord) -> Path:
        """The video file to cut answer clips from (the library's copy, or the original if referenced)."""
        if not rec.media_path:
            raise LibraryError(f"video {rec.id} has no media file yet")
        path = Path(rec.media_path)
        if not path.is_absolute():
            path = self.root / path
        if not path.is_file():
            raise LibraryError(f"the media file of video {rec.id} ({rec.name}) is missing: {path}")
        return path

    def job_dead(self, rec: VideoRecord) -> bool:
        """Whether the job indexing ``rec`` is gone (its flock free): its row and files are leftovers."""
        return not rec.job or lock_is_free(self.jobs_dir() / rec.job / "lock")


class ReadyRecords:
    """The ready videos' records, re-read only when the catalog's generation moved. Every change to the set of
    ready videos (commit, removal, marking damaged) bumps the generation in the same transaction, and a ready
    record never changes otherwise; reading 2,000 records costs ~50 ms, the generation ~0.5 ms, and every
    question needs the list."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._cached: tuple[int, tuple[VideoRecord, ...]] | None = None

    def read(self, con: Any) -> tuple[VideoRecord, ...]:
        generation = self._catalog.generation(con)
        cached = self._cached
        if cached is not None and cached[0] == generation:
            return cached[1]
        records = tuple(self._catalog.videos(con, (STATUS_READY,)))
        self._cached = (generation, records)
        return records


class FrameIndexCache:
    """The frame index in memory, kept equal to what the catalog says it must be.

    Writers ask :meth:`writable` (under the write lock: a stale index is rebuilt and saved); readers ask
    :meth:`current` (a stale one is rebuilt and saved if the write lock happens to be free, else built as a
    private copy and saved nowhere). Both reload from disk when another process moved the generation.
    """

    def __init__(self, paths: LibraryPaths, config: LibraryConfig, lock: WriteLock) -> None:
        self._paths = paths
        self._catalog = paths.catalog
        self._config = config
        self._write_lock = lock
        self.lock = threading.RLock()
        """Guards :attr:`index` within this process (rule 3)."""
        self.index: FrameIndex | None = None
        self.generation: int | None = None

    def install(self, index: FrameIndex | None, generation: int | None) -> None:
        """Make ``index`` (of catalog ``generation``) the one in memory; None forgets it (reload next time)."""
        with self.lock:
            self.index, self.generation = index, generation if index is not None else None

    def writable(self) -> FrameIndex:
        """The index as the catalog says it must be; rebuilt and saved when it is not."""
        self._write_lock.require()
        with self.lock, self._catalog.connect() as con:
            settings = self._catalog.settings(con)
            generation = self._catalog.generation(con)
            if settings.dim is None:
                return FrameIndex.new(1, effective_factory(settings.index_factory, 0, 1), self._config.search)
            if self.index is not None and self.generation == generation:
                return self.index
            expect = self.expected_meta(con, settings)
            index = FrameIndex.load(self._paths.index_dir(settings), expect, self._config.search)
            if index is None:
                index = self.build(con)
                index.save(self._paths.index_dir(settings), generation, expect.videos)
            self.index, self.generation = index, generation
            return index

    def current(self, generation: int | None = None) -> FrameIndex:
        """The index for searching, reloaded when another process changed the library (readers' path).
        ``generation``: the catalog's, as the caller just read it -- the index in memory is that
        generation's without another read."""
        with self.lock:
            if generation is not None and self.index is not None and self.generation == generation:
                return self.index
            with self._catalog.connect() as con:
                settings = self._catalog.settings(con)
                generation = self._catalog.generation(con)
                if self.index is not None and self.generation == generation:
                    return self.index
                expect = self.expected_meta(con, settings)
                index = FrameIndex.load(self._paths.index_dir(settings), expect, self._config.search)
            if index is None:
                with self._write_lock.attempt() as held:
                    if held:
                        return self.writable()
                with self._catalog.connect() as con:  # a writer is busy: build a private copy, save nothing
                    index = self.build(con)
            self.index, self.generation = index, generation
            return index

    def expected_meta(self, con: Any, settings: LibrarySettings) -> IndexMeta:
        """What the index file must say to be the index of the catalog's ready videos."""
        ready = [(r.rowid, r.num_rows) for r in self._catalog.videos(con, (STATUS_READY,))]
        dim = int(settings.dim or 1)
        factory = effective_factory(settings.index_factory, sum(n for _, n in ready), dim)
        return IndexMeta(
            ntotal=index_vectors(factory, (n for _, n in ready)),
            dim=dim,
            factory=factory,
            generation=self._catalog.generation(con),
            videos=video_set_checksum(ready),
        )

    def factory(self, con: Any = None, extra_rows: int = 0) -> str:
        """The index type the library needs with ``extra_rows`` more (or fewer) vectors than its ready videos."""
        if con is None:
            with self._catalog.connect() as own:
                return self.factory(own, extra_rows)
        settings = self._catalog.settings(con)
        ntotal = sum(r.num_rows for r in self._catalog.videos(con, (STATUS_READY,)))
        return effective_factory(settings.index_factory, ntotal + extra_rows, int(settings.dim or 1))

    def build(self, con: Any, extra: Sequence[tuple[int, np.ndarray]] = ()) -> FrameIndex:
        """A new index from the feature files of every ready video (plus ``extra`` not yet marked ready)."""
        settings = self._catalog.settings(con)
        dim = int(settings.dim or 1)
        videos = [
            (r.rowid, load_features(self._paths.features(r.id, settings), r.num_rows, r.dim))
            for r in self._catalog.videos(con, (STATUS_READY,))
        ]
        videos = [*videos, *extra]
        factory = effective_factory(settings.index_factory, sum(len(f) for _, f in videos), dim)
        started = time.monotonic()
        index = FrameIndex.build(dim, factory, videos, tuning=self._config.search)
        logger.info(
            "built the frame index of %s (%s): %d vectors in %.1f s",
            self._paths.root,
            factory,
            index.ntotal,
            time.monotonic() - started,
        )
        return index

    def rebuild_and_save(self, con: Any, settings: LibrarySettings) -> FrameIndex:
        """Under the write lock: build the index anew from the feature files, save it and keep it."""
        self._write_lock.require()
        with self.lock:
            index = self.build(con)
            generation = self._catalog.generation(con)
            index.save(self._paths.index_dir(settings), generation, self.expected_meta(con, settings).videos)
            self.index, self.generation = index, generation
            return index


@dataclass(frozen=True)
class LibraryState:
    """Everything a library's part may use; nothing of the library is reached otherwise."""

    root: Path
    config: LibraryConfig
    catalog: Catalog
    paths: LibraryPaths
    lock: WriteLock
    frames: FrameIndexCache
    maps: FeatureMaps = field(default_factory=FeatureMaps)
    """Memory maps of ready videos' feature files, for searches and answers (never for writes)."""
    ready: ReadyRecords = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ready", ReadyRecords(self.catalog))

    @classmethod
    def at(cls, root: Path, config: LibraryConfig, catalog: Catalog) -> LibraryState:
        paths = LibraryPaths(root, catalog)
        lock = WriteLock(root / LOCK_FILE, config.lock_timeout_s, root)
        return cls(root, config, catalog, paths, lock, FrameIndexCache(paths, config, lock))

    def ready_records(self) -> list[VideoRecord]:
        with self.catalog.connect() as con:
            return list(self.ready.read(con))

    def drop_row(self, con: Any, rec: VideoRecord) -> None:
        """Under the write lock: delete a row that is not (or no longer) in the index, and all its files."""
        self.lock.require()
        self.catalog.delete(con, rec.rowid)
        if rec.status != STATUS_INDEXING:
            self.catalog.bump_generation(con)
        self.delete_files(rec)

    def delete_files(self, rec: VideoRecord) -> None:
        """A video's features, answer clips, media copy and job folder (never a referenced original)."""
        self.paths.features(rec.id).unlink(missing_ok=True)
        shutil.rmtree(video_excerpts_dir(self.root, rec.id), ignore_errors=True)
        if rec.media_mode != "reference":
            for p in (self.root / "media").glob(f"{rec.id}.*"):
                p.unlink(missing_ok=True)
        if rec.job:
            shutil.rmtree(self.paths.jobs_dir() / rec.job, ignore_errors=True)
