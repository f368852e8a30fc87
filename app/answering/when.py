"""When to look: time words in a question ("yesterday", "this morning", "on Monday", "last week", "on 3
December") and explicit ``since``/``until`` filters, as a range of wall-clock time.

Finding the phrase is ours (a closed list of the ways people say when, so "may" or "second" in a question are
never read as dates); resolving it to a day is dateparser's (a well-kept library that knows weekdays, month
names, "2 days ago" and relative dates in many languages, offline, with the base time we give it). Parts of the
day are fixed ranges of local time: morning 05-12, afternoon 12-17, evening 17-22, night 22-05. The phrase is
taken out of the question before it is read for prompts, and the answer says what it searched
("searching: yesterday, Sat 5 Dec").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.errors import EgoRecallError

PARTS_OF_DAY = {"morning": (5, 12), "afternoon": (12, 17), "evening": (17, 22), "night": (22, 29), "tonight": (17, 29)}
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_PHRASE = re.compile(
    r"\b(?:"
    r"(?P<week>(?:last|this|previous) week)"
    r"|(?P<this>this (?P<thispart>morning|afternoon|evening))"
    r"|(?P<tonight>tonight)"
    r"|(?P<ago>\d+ days? ago)"
    r"|(?P<rel>today|yesterday)"
    rf"|(?:on |last )?(?P<weekday>{_DAYS})"
    rf"|(?:on )?(?:the )?(?P<date>\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})"
    rf"|(?:{_MONTHS}) \d{{1,2}}(?:st|nd|rd|th)?)"
    r")(?: (?:in the )?(?P<part>morning|afternoon|evening|night))?\b",
    re.IGNORECASE,
)


class InvalidTimeRange(EgoRecallError):
    """``since``/``until`` that cannot be read, or that leave no time."""


class NothingAtThatTime(EgoRecallError):
    """No video of the library was recorded in the asked time."""


@dataclass(frozen=True)
class TimeRange:
    since: float | None
    """Unix seconds, inclusive; None = from the beginning."""
    until: float | None
    """Unix seconds, exclusive; None = until now."""
    said: str
    """How the answer tells it back: "yesterday, Sat 5 Dec"."""

    def overlaps(self, start: float, end: float) -> bool:
        return (self.since is None or end > self.since) and (self.until is None or start < self.until)

    def contains(self, t: float) -> bool:
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)


def _day(moment: datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b}"


def _resolve_day(text: str, now: datetime) -> datetime | None:
    import dateparser

    settings = {
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    found = dateparser.parse(re.sub(r"^(?:on|last|the) ", "", text), languages=["en"], settings=settings)
    if found is None:
        return None
    return found.replace(hour=0, minute=0, second=0, microsecond=0)


def read_time(question: str, now: float | None = None) -> tuple[str, TimeRange | None]:
    """``question`` without its time phrase, and the range the phrase means (None when it names no time)."""
    m = _PHRASE.search(question or "")
    if m is None:
        return question, None
    local_now = datetime.fromtimestamp(time.time() if now is None else now)
    phrase = m.group(0)
    part = m.group("thispart") or ("tonight" if m.group("tonight") else None) or m.group("part")
    if m.group("week"):
        monday = (local_now - timedelta(days=local_now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        start = monday - timedelta(days=7) if not phrase.lower().startswith("this") else monday
        end = start + timedelta(days=7)
        said = f"{phrase.lower()}, {_day(start)} - {_day(end - timedelta(days=1))}"
    else:
        if m.group("this") or m.group("tonight"):
            day = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            core = m.group("ago") or m.group("rel") or m.group("weekday") or m.group("date")
            day = _resolve_day(core, local_now)
            if day is None:
                return question, None
        if part:
            lo, hi = PARTS_OF_DAY[part]
            start, end = day + timedelta(hours=lo), day + timedelta(hours=hi)
        else:
            start, end = day, day + timedelta(days=1)
        said = f"{phrase.lower()}, {_day(day)}"
    rest = re.sub(r"\s+", " ", (question[: m.start()] + " " + question[m.end() :])).strip(" ,")
    rest = re.sub(r"\s+([?!.])", r"\1", rest)
    return rest or question, TimeRange(start.timestamp(), end.timestamp(), said)


def explicit_range(since: str | float | None, until: str | float | None) -> TimeRange | None:
    """``--since``/``--until`` (a time as ``library set-time`` reads it, or unix seconds) as a range."""
    from indexing.recording_time import InvalidTime, parse_user_time, short_time

    if since in (None, "") and until in (None, ""):
        return None

    def read(value):
        if value in (None, ""):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_user_time(str(value)).at
        except InvalidTime as exc:
            raise InvalidTimeRange(str(exc)) from None

    lo, hi = read(since), read(until)
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidTimeRange("--until must be later than --since")
    said = " - ".join(
        [short_time(lo) if lo is not None else "the beginning", short_time(hi) if hi is not None else "now"]
    )
    return TimeRange(lo, hi, said)
