"""When a video was recorded: from its container, its file name, or its file's time -- and where that came from.

A library spans days, and "where did I put my keys?" means the *last* time; so every video needs the wall-clock
time its first frame was recorded. Sources, most trusted first:

1. QuickTime's ``com.apple.quicktime.creationdate`` (iPhones, many cameras): local time *with* its UTC offset.
2. The container's ``creation_time`` (MP4/MOV/MKV, also per stream): UTC, as FFmpeg and cameras write it.
3. Camera and phone file names: ``VID_20261206_081500``, ``PXL_20261206_081500123``, ``20261206_081500``,
   ``GH010123``-style names carry none. Local time without an offset: read in this machine's time zone.
4. The file's modification time (copying may have changed it: marked so, the least trusted).

A time before 1990 or in the future is not trusted (a camera with an unset clock writes 1970 or 2000-01-01
... and 1990 is before any of these cameras): the next source is used and the note says why. The user can set
the time by hand (``library set-time``), which wins over everything.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from models.errors import EgoRecallError

EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp()
FUTURE_SLACK_S = 86_400.0
"""A clock a day ahead is still trusted (time zones, a camera set by hand)."""

SOURCES = ("quicktime", "container", "file name", "file time", "user", "added")
"""Where a recording time came from (``added``: a video indexed before recording times existed, dated when it
was added to the library)."""


class InvalidTime(EgoRecallError):
    """A time the user typed that cannot be read."""


@dataclass(frozen=True)
class RecordingTime:
    at: float
    """Unix seconds of the first frame."""
    tz_minutes: int | None
    """The UTC offset the recording was made in, when known (None: show it in this machine's zone)."""
    source: str
    note: str = ""
    """Why a more trusted source was not used, if one was passed over."""

    def local(self) -> datetime:
        """The recording time as its own clock showed it (this machine's zone when its own is unknown)."""
        if self.tz_minutes is None:
            return datetime.fromtimestamp(self.at).astimezone()
        return datetime.fromtimestamp(self.at, timezone(timedelta(minutes=self.tz_minutes)))


def trusted(at: float, now: float | None = None) -> bool:
    return EARLIEST <= at <= (time.time() if now is None else now) + FUTURE_SLACK_S


def _iso(text: str) -> datetime | None:
    """An ISO-8601 time as cameras write it ("2026-12-06T07:15:00.000000Z", "2026-12-06T08:15:00+0100")."""
    text = text.strip().replace(" ", "T", 1)
    text = re.sub(r"Z$", "+00:00", text)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)  # +0100 -> +01:00
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


_NAME_PATTERNS = (
    # VID_20261206_081500, IMG_20261206_081500, PXL_20261206_081500123, 20261206_081500, 2026-12-06 08.15.00
    re.compile(
        r"(?<!\d)(?P<y>(?:19|20)\d\d)[-_.]?(?P<mo>\d\d)[-_.]?(?P<d>\d\d)[-_. T]?"
        r"(?P<h>\d\d)[-_.:]?(?P<mi>\d\d)[-_.:]?(?P<s>\d\d)"
    ),
)


def from_file_name(name: str) -> datetime | None:
    """A local time in a camera's or phone's file name (no offset: read in this machine's zone)."""
    for pattern in _NAME_PATTERNS:
        m = pattern.search(Path(name).stem)
        if m:
            try:
                year, month, day, hour, minute, second = (int(m[g]) for g in ("y", "mo", "d", "h", "mi", "s"))
                return datetime(year, month, day, hour, minute, second).astimezone()
            except ValueError:
                continue
    return None


def _offset_minutes(moment: datetime) -> int | None:
    offset = moment.utcoffset()
    return None if offset is None else int(offset.total_seconds() // 60)


def recording_time(
    path: str | Path, format_tags: dict | None = None, stream_tags: dict | None = None, now: float | None = None
) -> RecordingTime:
    """The most trusted recording time of a file (see the module docstring)."""
    path = Path(path)
    tags = {str(k).lower(): str(v) for k, v in (format_tags or {}).items()}
    stags = {str(k).lower(): str(v) for k, v in (stream_tags or {}).items()}
    passed: list[str] = []
    candidates = [
        ("quicktime", tags.get("com.apple.quicktime.creationdate")),
        ("container", tags.get("creation_time") or stags.get("creation_time")),
    ]
    for source, raw in candidates:
        if not raw:
            continue
        moment = _iso(raw)
        if moment is None:
            passed.append(f"{source} time {raw!r} is unreadable")
            continue
        zoned = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if not trusted(zoned.timestamp(), now):
            passed.append(f"{source} time {zoned:%Y-%m-%d %H:%M} is not trusted (before 1990 or in the future)")
            continue
        tz = _offset_minutes(zoned) if source == "quicktime" else None  # creation_time is UTC, not the local zone
        return RecordingTime(zoned.timestamp(), tz, source, "; ".join(passed))
    named = from_file_name(path.name)
    if named is not None:
        if trusted(named.timestamp(), now):
            return RecordingTime(named.timestamp(), None, "file name", "; ".join(passed))
        passed.append(f"the time in the file name ({named:%Y-%m-%d}) is not trusted")
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = time.time() if now is None else now
    note = "; ".join(passed + ["no recording time in the file: its modification time is used"])
    return RecordingTime(mtime, None, "file time", note)


def parse_user_time(text: str, now: float | None = None) -> RecordingTime:
    """A time typed by the user ("2026-12-06T08:15", "2026-12-06 08:15+01:00", "2026-12-06"): local time of
    this machine unless an offset is given. Raises :class:`InvalidTime` with what it expects."""
    moment = _iso(text or "")
    if moment is None:
        raise InvalidTime(
            f"cannot read the time {text!r}; write it as YYYY-MM-DDTHH:MM (e.g. 2026-12-06T08:15), "
            "optionally with an offset such as +01:00"
        )
    zoned = moment if moment.tzinfo else moment.astimezone()
    if not trusted(zoned.timestamp(), now):
        raise InvalidTime(f"the time {text!r} is before 1990 or in the future")
    return RecordingTime(zoned.timestamp(), _offset_minutes(zoned) if moment.tzinfo else None, "user")


def short_time(at: float, tz_minutes: int | None = None) -> str:
    """As a person reads a moment of their week: "Tue 3 Dec, 08:14"."""
    moment = local_moment(at, tz_minutes)
    return f"{moment:%a} {moment.day} {moment:%b}, {moment:%H:%M}"


def local_moment(at: float, tz_minutes: int | None = None) -> datetime:
    zone = timezone(timedelta(minutes=tz_minutes)) if tz_minutes is not None else None
    return datetime.fromtimestamp(at, zone) if zone else datetime.fromtimestamp(at).astimezone()


def day_label(at: float, tz_minutes: int | None = None) -> str:
    """ "Tue 3 Dec 2026": the day a recording belongs to, in its own clock."""
    moment = local_moment(at, tz_minutes)
    return f"{moment:%a} {moment.day} {moment:%b %Y}"


def by_day(records, *, latest_day_first: bool = False) -> list[tuple[str, list]]:
    """Records (anything with ``recorded_at`` and ``recorded_tz``) grouped by the day they were recorded, days
    and records in time order; records with no time last, under "date unknown". ``latest_day_first`` turns the
    days around (a table read from the top starts at today) and keeps each day's recordings in time order."""
    dated = sorted((r for r in records if r.recorded_at is not None), key=lambda r: r.recorded_at)
    groups: list[tuple[str, list]] = []
    for r in dated:
        label = day_label(r.recorded_at, r.recorded_tz)
        if not groups or groups[-1][0] != label:
            groups.append((label, []))
        groups[-1][1].append(r)
    if latest_day_first:
        groups.reverse()
    undated = [r for r in records if r.recorded_at is None]
    return groups + ([("date unknown", undated)] if undated else [])


def file_recording_time(path: str | Path) -> RecordingTime:
    """:func:`recording_time` of a file, reading its container tags (a quick open, no decoding); a file FFmpeg
    cannot open is dated by its name or file time."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            video = container.streams.video
            return recording_time(path, dict(container.metadata or {}), dict(video[0].metadata or {}) if video else {})
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return recording_time(path)
