"""Users' corrections of answers, kept in the library's catalog: the start of training on one's own videos.

A correction says of one moment that answered a question: it was right, it was wrong, or its start/end should
be these. Corrections live in the catalog's ``feedback`` table (SQLite, so they survive restarts and commit
with the library's other writes), are checked against the video they name before anything is written, and
go when their video goes (:meth:`indexing.library.Library.remove` deletes them in the same transaction).
``training.feedback`` turns them into an Ego4D NLQ file.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from indexing.catalog import Catalog
from indexing.errors import LibraryError, UnknownVideo

RIGHT = "right"
WRONG = "wrong"
ADJUSTED = "adjusted"
VERDICTS = (RIGHT, WRONG, ADJUSTED)

_TABLE = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id TEXT NOT NULL,
    question TEXT NOT NULL,
    mode TEXT NOT NULL,
    verdict TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    shown_start REAL,
    shown_end REAL,
    created REAL NOT NULL
)
"""


class InvalidCorrection(LibraryError):
    """A correction that cannot be stored (empty question, start >= end, outside the video, ...)."""


@dataclass(frozen=True)
class Correction:
    id: int
    video_id: str
    question: str
    mode: str
    verdict: str
    """``right`` (the moment answers it), ``wrong`` (it does not) or ``adjusted`` (the answer is start-end)."""
    start: float
    """Seconds from the video's start: the moment as shown (right/wrong) or as corrected (adjusted)."""
    end: float
    shown_start: float | None
    """What the app had shown, when the correction moved it."""
    shown_end: float | None
    created: float

    def to_dict(self) -> dict:
        return asdict(self)


class FeedbackStore:
    """The ``feedback`` table of one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @staticmethod
    def ensure(con: sqlite3.Connection) -> None:
        """Libraries made before corrections existed get the table on first use (an additive change)."""
        con.execute(_TABLE)

    def add(
        self,
        video_id: str,
        question: str,
        start: float,
        end: float,
        verdict: str,
        *,
        mode: str = "",
        shown: tuple[float, float] | None = None,
    ) -> Correction:
        """Store one correction after checking it against its video; raises :class:`InvalidCorrection` or
        :class:`UnknownVideo`, with nothing written."""
        question = (question or "").strip() if isinstance(question, str) else ""
        if not question:
            raise InvalidCorrection("a correction needs the question it answers")
        if verdict not in VERDICTS:
            raise InvalidCorrection(f"a correction is one of {', '.join(VERDICTS)} (got {verdict!r})")
        try:
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise InvalidCorrection(f"start and end must be numbers of seconds (got {start!r}, {end!r})") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InvalidCorrection("start and end must be finite numbers of seconds")
        if start >= end:
            raise InvalidCorrection(f"the corrected moment must start before it ends (got {start:.2f}-{end:.2f} s)")
        with self.catalog.connect(write=True) as con:
            rec = self.catalog.by_id(con, video_id)
            if rec is None:
                raise UnknownVideo(f"there is no video {video_id!r} in the library")
            if start < 0.0 or end > rec.duration + 1e-6:
                raise InvalidCorrection(
                    f"{start:.2f}-{end:.2f} s lies outside {rec.name}, which is {rec.duration:.2f} s long"
                )
            self.ensure(con)
            cur = con.execute(
                "INSERT INTO feedback(video_id, question, mode, verdict, start, end, shown_start, shown_end, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (video_id, question, mode, verdict, start, end, *(shown or (None, None)), time.time()),
            )
            row = con.execute("SELECT * FROM feedback WHERE id=?", (cur.lastrowid,)).fetchone()
        return _correction(row)

    @staticmethod
    def read(con: sqlite3.Connection, video_id: str | None = None) -> list[Correction]:
        """:meth:`list` inside the caller's transaction."""
        if not _has_table(con):
            return []
        if video_id is None:
            rows = con.execute("SELECT * FROM feedback ORDER BY id").fetchall()
        else:
            rows = con.execute("SELECT * FROM feedback WHERE video_id=? ORDER BY id", (video_id,)).fetchall()
        return [_correction(r) for r in rows]

    def list(self, video_id: str | None = None) -> list[Correction]:
        """Corrections, oldest first (of one video, or all)."""
        with self.catalog.connect() as con:
            return self.read(con, video_id)

    def delete(self, ids: Iterable[int]) -> int:
        """Forget corrections by id (e.g. one the user takes back); returns how many were removed."""
        with self.catalog.connect(write=True) as con:
            if not _has_table(con):
                return 0
            return sum(int(con.execute("DELETE FROM feedback WHERE id=?", (int(i),)).rowcount) for i in ids)

    @staticmethod
    def delete_video(con: sqlite3.Connection, video_id: str) -> int:
        """Inside the caller's transaction: forget a removed video's corrections."""
        if not _has_table(con):
            return 0
        return con.execute("DELETE FROM feedback WHERE video_id=?", (video_id,)).rowcount


def _has_table(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='feedback'").fetchone() is not None


def _correction(row: sqlite3.Row) -> Correction:
    return Correction(
        id=int(row["id"]),
        video_id=row["video_id"],
        question=row["question"],
        mode=row["mode"],
        verdict=row["verdict"],
        start=float(row["start"]),
        end=float(row["end"]),
        shown_start=row["shown_start"],
        shown_end=row["shown_end"],
        created=float(row["created"]),
    )
