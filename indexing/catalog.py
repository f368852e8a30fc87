"""The library's metadata: one SQLite database (stdlib ``sqlite3``, WAL) with a row per video and the settings.

WAL mode lets readers (the app answering questions) read while a writer commits, without blocking either.
Connections are opened per operation, so a :class:`Catalog` can be shared by threads. The ``generation``
setting grows with every change to the set of searchable videos; other processes compare it with the
generation of the faiss index they loaded to know when to reload.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from indexing.errors import LibraryError
from models.grid import TimeGrid

SCHEMA_VERSION = 2

STATUS_INDEXING = "indexing"
STATUS_READY = "ready"
STATUS_DAMAGED = "damaged"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    job TEXT,
    duration REAL NOT NULL,
    fps REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    rotation INTEGER NOT NULL,
    codec TEXT NOT NULL,
    container TEXT NOT NULL,
    frame_count INTEGER,
    has_audio INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    backend TEXT,
    encoder_key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    rate_hz REAL NOT NULL,
    num_rows INTEGER NOT NULL,
    damaged_frames INTEGER NOT NULL DEFAULT 0,
    media_path TEXT,
    media_mode TEXT NOT NULL,
    source_path TEXT NOT NULL,
    added_at REAL NOT NULL,
    index_seconds REAL,
    recorded_at REAL,
    recorded_tz INTEGER,
    recorded_source TEXT
);
"""

_MIGRATIONS = {
    # 1 -> 2: when each video was recorded. Videos indexed before are dated when they were added, marked so.
    1: (
        "ALTER TABLE videos ADD COLUMN recorded_at REAL",
        "ALTER TABLE videos ADD COLUMN recorded_tz INTEGER",
        "ALTER TABLE videos ADD COLUMN recorded_source TEXT",
        "UPDATE videos SET recorded_at = added_at, recorded_source = 'added'",
    ),
}
"""Schema version -> the statements that bring a catalog of that version to the next one."""


@dataclass(frozen=True)
class VideoRecord:
    """One video of the library, as stored. Times in seconds; ``num_rows`` features on a ``rate_hz`` grid.

    ``status`` is ``ready`` (searchable), ``indexing`` (a job is running; not searchable) or ``damaged``
    (its feature file went missing or bad; remove and add it again). ``media_path`` is the library's copy
    (or hard link) of the video under ``media/``, or the original file when it was added by reference.
    """

    id: str
    name: str
    sha256: str
    status: str
    duration: float
    fps: float
    width: int
    height: int
    rotation: int
    codec: str
    container: str
    frame_count: int | None
    has_audio: bool
    size_bytes: int
    backend: str | None
    encoder_key: str
    dim: int
    rate_hz: float
    num_rows: int
    damaged_frames: int
    media_path: str | None
    media_mode: str
    """'link' (hard link), 'copy' or 'reference' (the original file, not kept by the library)."""
    source_path: str
    added_at: float
    """Unix time the video became part of the library."""
    index_seconds: float | None
    rowid: int
    """Internal: the key of the video's frames in the faiss index. Not stable across libraries; use ``id``."""
    job: str | None = None
    recorded_at: float | None = None
    """Unix time its first frame was recorded (:mod:`indexing.recording_time`); None only while unknown."""
    recorded_tz: int | None = None
    """The UTC offset (minutes) it was recorded in, when known."""
    recorded_source: str | None = None
    """Where ``recorded_at`` came from: quicktime, container, file name, file time, user, added."""

    def moment_time(self, seconds: float) -> float | None:
        """Unix time of a moment ``seconds`` into the video (None when the recording time is unknown)."""
        return None if self.recorded_at is None else self.recorded_at + seconds

    @property
    def grid(self) -> TimeGrid:
        return TimeGrid(self.rate_hz, self.duration)

    @property
    def ready(self) -> bool:
        return self.status == STATUS_READY

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("rowid")
        d.pop("job")
        return d


_RECORD_COLUMNS = [f.name for f in fields(VideoRecord)]


def _begin(con: sqlite3.Connection, statement: str, attempts: int = 100) -> None:
    """Start a transaction, retrying the rare immediate SQLITE_BUSY (another process closing its last
    connection, or recovering the WAL) for up to ~10 s."""
    for attempt in range(attempts):
        try:
            con.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


@dataclass(frozen=True)
class LibrarySettings:
    """What the whole library is made of: one encoder, one grid rate, one index type."""

    rate_hz: float
    index_factory: str
    encoder_key: str | None = None
    encoder_model: str | None = None
    encoder_pretrained: str | None = None
    encoder_quantize: str | None = None
    dim: int | None = None
    created_at: float = 0.0
    feature_store: str | None = None
    """Where the features and index of the current encoder live: None for ``features/`` and ``index/`` at the
    library's root (every library until its first re-index), else the folder ``encoders/<name>/``. Switching
    it is the single commit that moves a re-indexed library to its new encoder."""


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keeper: sqlite3.Connection | None = None
        self._keeper_lock = threading.Lock()

    def _keep_open(self) -> None:
        """Hold one idle connection for the catalog's lifetime. When the *last* connection to a WAL database
        closes it cleans up the WAL under an exclusive lock, and a connection opening at that instant gets
        'database is locked' at once (no busy wait); with per-operation connections from several threads
        that happens, so the last connection never closes while we use the catalog."""
        with self._keeper_lock:
            if self._keeper is None:
                self._keeper = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)

    def close(self) -> None:
        with self._keeper_lock:
            if self._keeper is not None:
                self._keeper.close()
                self._keeper = None

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction: committed on success, rolled back on error, always closed.

        ``write=True`` takes SQLite's write lock up front (``BEGIN IMMEDIATE``), so a transaction never has
        to upgrade a read snapshot that another writer made stale (which fails at once, without waiting).
        """
        try:
            self._keep_open()
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise LibraryError(f"cannot open the library database {self.path}: {exc}") from exc
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA synchronous=FULL")
            _begin(con, "BEGIN IMMEDIATE" if write else "BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def exists(self) -> bool:
        return self.path.is_file()

    def migrate(self) -> None:
        """Bring a catalog written by an older EgoRecall to :data:`SCHEMA_VERSION` in one write transaction (a
        crash leaves the old version whole); a current one is only read (opening never waits for a writer), a
        newer one is refused by :meth:`settings`."""
        with self.connect() as con:
            if self._settings_dict(con).get("schema_version") not in _MIGRATIONS:
                return
        with self.connect(write=True) as con:
            version = self._settings_dict(con).get("schema_version")
            while version in _MIGRATIONS:
                for statement in _MIGRATIONS[version]:
                    con.execute(statement)
                version += 1
                self.set_setting(con, "schema_version", version)

    def create(self, settings: LibrarySettings) -> None:
        """Make the database file (WAL mode, schema, settings) with one connection that is closed at the end,
        so the file can be renamed into place afterwards."""
        con = sqlite3.connect(self.path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    con.execute(stmt)
            values = {"schema_version": SCHEMA_VERSION, "generation": 0, **asdict(settings)}
            for key, value in values.items():
                con.execute("INSERT OR IGNORE INTO settings(key, value) VALUES (?, ?)", (key, json.dumps(value)))
            con.execute("COMMIT")
        finally:
            con.close()

    # ---------------------------------------------------------------------------------------- settings
    def settings(self, con: sqlite3.Connection | None = None) -> LibrarySettings:
        if con is None:
            with self.connect() as con:
                return self.settings(con)
        raw = self._settings_dict(con)
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise LibraryError(
                f"the library database {self.path} has schema version {version}; this EgoRecall "
                f"reads version {SCHEMA_VERSION}"
            )
        values: dict[str, Any] = {f.name: raw.get(f.name) for f in fields(LibrarySettings)}
        return LibrarySettings(**values)

    def _settings_dict(self, con: sqlite3.Connection) -> dict:
        try:
            rows = con.execute("SELECT key, value FROM settings").fetchall()
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"the library database {self.path} cannot be read: {exc}") from exc
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def set_setting(self, con: sqlite3.Connection, key: str, value) -> None:
        con.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def generation(self, con: sqlite3.Connection | None = None) -> int:
        if con is None:
            with self.connect() as con:
                return self.generation(con)
        row = con.execute("SELECT value FROM settings WHERE key='generation'").fetchone()
        return int(json.loads(row["value"])) if row else 0

    def bump_generation(self, con: sqlite3.Connection) -> int:
        gen = self.generation(con) + 1
        self.set_setting(con, "generation", gen)
        return gen

    # ---------------------------------------------------------------------------------------- videos
    @staticmethod
    def _record(row: sqlite3.Row) -> VideoRecord:
        d = {k: row[k] for k in _RECORD_COLUMNS}
        d["has_audio"] = bool(d["has_audio"])
        return VideoRecord(**d)

    def videos(self, con: sqlite3.Connection, statuses: tuple[str, ...] | None = None) -> list[VideoRecord]:
        if statuses:
            marks = ",".join("?" * len(statuses))
            rows = con.execute(
                f"SELECT * FROM videos WHERE status IN ({marks}) ORDER BY added_at, rowid", statuses
            ).fetchall()
        else:
            rows = con.execute("SELECT * FROM videos ORDER BY added_at, rowid").fetchall()
        return [self._record(r) for r in rows]

    def by_id(self, con: sqlite3.Connection, video_id: str) -> VideoRecord | None:
        row = con.execute("SELECT * FROM videos WHERE id=?", (video_id,)).fetchone()
        return self._record(row) if row else None

    def by_sha(self, con: sqlite3.Connection, sha256: str) -> VideoRecord | None:
        row = con.execute("SELECT * FROM videos WHERE sha256=?", (sha256,)).fetchone()
        return self._record(row) if row else None

    def by_rowids(self, con: sqlite3.Connection, rowids: list[int]) -> dict[int, VideoRecord]:
        out: dict[int, VideoRecord] = {}
        for i in range(0, len(rowids), 500):
            chunk = rowids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in con.execute(f"SELECT * FROM videos WHERE rowid IN ({marks})", chunk):
                out[row["rowid"]] = self._record(row)
        return out

    def insert(self, con: sqlite3.Connection, values: dict) -> int:
        values = {**values, "added_at": values.get("added_at", time.time())}
        cols = ",".join(values)
        marks = ",".join("?" * len(values))
        rowid = con.execute(f"INSERT INTO videos({cols}) VALUES ({marks})", list(values.values())).lastrowid
        assert rowid is not None  # an INSERT always sets it
        return rowid

    def update(self, con: sqlite3.Connection, rowid: int, **values) -> None:
        sets = ",".join(f"{k}=?" for k in values)
        con.execute(f"UPDATE videos SET {sets} WHERE rowid=?", [*values.values(), rowid])

    def delete(self, con: sqlite3.Connection, rowid: int) -> None:
        con.execute("DELETE FROM videos WHERE rowid=?", (rowid,))
