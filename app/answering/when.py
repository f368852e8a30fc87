"""When to look: time words in a question ("yesterday", "the day before yesterday", "this morning", "last night",
"on Monday", "last week", "last weekend", "this month", "on 3 December", "two days ago", "a few days ago", "an hour
ago", "at 8:15") and explicit ``since``/``until`` filters, as a range of wall-clock time.

Finding the phrase is ours (a closed list of the ways people say when, so "may" or "second" in a question are
never read as dates); resolving it to a day is dateparser's (a well-kept library that knows weekdays, month
names, "2 days ago" and relative dates in many languages, offline, with the base time we give it). Parts of the
day are fixed ranges of local time: morning 05-12, afternoon 12-17, evening 17-22, night 22-05; "last night" is
yesterday from 17 to 05; a weekend is the latest Saturday and Sunday ("last weekend" said on one of them: the
one before); "a couple of days ago" is 1-3 days ago, "a few days ago" 2-5. "N hours (minutes) ago" is the stretch
from 1.5 N to 0.5 N before now (at least a quarter of an hour either side): people round. A clock time ("at
8:15", "around 8am"; written with minutes, am/pm or o'clock, so "at 3 places" is not one) is the hour around it,
on the day the question names or else its latest past occurrence. The phrases are taken out of the question
before it is read for prompts, and the answer says what it searched ("searching: yesterday, Sat 5 Dec").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.errors import EgoRecallError

PARTS_OF_DAY = {
    "morning": (5, 12),
    "afternoon": (12, 17),
    "evening": (17, 22),
    "night": (22, 29),
    "tonight": (17, 29),
    "last night": (17, 29),
}
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_NUMBERS = {w: i + 1 for i, w in enumerate("one two three four five six seven eight nine ten".split())}
_FEW_DAYS = {"a couple of": (1, 3), "a few": (2, 5)}
"""Days ago people mean by a vague count: from the first to the last, both whole days."""
_PHRASE = re.compile(
    r"\b(?:"
    r"(?P<week>(?:last|this|previous) week)"
    r"|(?P<weekend>(?:(?:this|last|the|over the|on the) )weekend)"
    r"|(?P<month>(?:last|this|previous) month)"
    r"|(?P<fewdays>a couple of|a few) days ago"
    r"|(?P<daybefore>the day before yesterday)"
    r"|(?P<this>this (?P<thispart>morning|afternoon|evening))"
    r"|(?P<tonight>tonight)"
    r"|(?P<lastnight>last night)"
    rf"|(?P<ago>(?:\d+|{'|'.join(_NUMBERS)}) days? ago)"
    r"|(?P<since>(?P<amount>an?|half an?|\d+|a few|a couple of) (?P<unit>hours?|minutes?|mins?) ago)"
    r"|(?P<rel>today|yesterday)"
    rf"|(?:on |last )?(?P<weekday>{_DAYS})"
    rf"|(?:on )?(?:the )?(?P<date>\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})"
    rf"|(?:{_MONTHS}) \d{{1,2}}(?:st|nd|rd|th)?)"
    r")(?: (?:in the )?(?P<part>morning|afternoon|evening|night))?\b",
    re.IGNORECASE,
)


_CLOCK = re.compile(
    r"\b(?:at|around|about|by) (?P<hour>\d{1,2})(?:(?::|\.)(?P<minute>\d{2}))? ?"
    r"(?:(?P<half>[ap])\.?m\.?|(?P<oclock>o'?clock))?\b",
    re.IGNORECASE,
)
CLOCK_SLACK_S = 1800.0
"""A clock time means the half hour either side of it: people say "at 8:15" for 8:05 or 8:40."""
_AMOUNTS = {"a": 1.0, "an": 1.0, "half a": 0.5, "half an": 0.5, "a few": 3.0, "a couple of": 2.0}


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
    """``question`` without its time phrases, and the range they mean (None when it names no time)."""
    local_now = datetime.fromtimestamp(time.time() if now is None else now)
    text, day = _read_day(question or "", local_now)
    without_clock = (text, day[0]) if day is not None else (question, None)
    clock = _CLOCK.search(text)
    if clock is None or not (clock["minute"] or clock["half"] or clock["oclock"]):
        return without_clock
    hour, minute = int(clock["hour"]), int(clock["minute"] or 0)
    if clock["half"]:
        hour = hour % 12 + (12 if clock["half"].lower() == "p" else 0)
    if hour > 23 or minute > 59:
        return without_clock
    if day is not None and day[1] is not None:  # "at 8:15 this morning": that day
        at = day[1].replace(hour=hour, minute=minute)
        if day[0].since is not None and at.timestamp() < day[0].since:  # "at 1 am tonight": past midnight
            at += timedelta(days=1)
    else:  # its latest past occurrence
        at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at > local_now:
            at -= timedelta(days=1)
    said = f"{clock.group(0).lower()}" + (f", {day[0].said}" if day is not None else f", {_day(at)}")
    rest = _without(text, clock)
    start = at.timestamp() - CLOCK_SLACK_S
    return rest or question, TimeRange(start, at.timestamp() + CLOCK_SLACK_S, said)


def _read_day(question: str, local_now: datetime) -> tuple[str, tuple[TimeRange, datetime | None] | None]:
    """The question without its day phrase, and that phrase's range with the day it names (None for a week
    or a stretch before now)."""
    m = _PHRASE.search(question)
    if m is None:
        return question, None
    phrase = m.group(0)
    part = (
        m.group("thispart")
        or ("tonight" if m.group("tonight") else None)
        or ("last night" if m.group("lastnight") else None)
        or m.group("part")
    )
    day: datetime | None = None
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    if m.group("weekend"):  # the latest Saturday and Sunday ("last weekend" on one of them: the one before)
        saturday = midnight - timedelta(days=(local_now.weekday() - 5) % 7)
        if phrase.lower().startswith("last") and local_now.weekday() >= 5:
            saturday -= timedelta(days=7)
        start, end = saturday, saturday + timedelta(days=2)
        said = f"{phrase.lower()}, {_day(start)} - {_day(end - timedelta(days=1))}"
    elif m.group("month"):
        start = midnight.replace(day=1)
        if not phrase.lower().startswith("this"):
            start = (start - timedelta(days=1)).replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        said = f"{phrase.lower()}, {start:%B %Y}"
    elif m.group("fewdays"):
        nearest, farthest = _FEW_DAYS[m.group("fewdays").lower()]
        start, end = midnight - timedelta(days=farthest), midnight - timedelta(days=nearest - 1)
        said = f"{phrase.lower()}, {_day(start)} - {_day(end - timedelta(days=1))}"
    elif m.group("week"):
        monday = midnight - timedelta(days=local_now.weekday())
        start = monday - timedelta(days=7) if not phrase.lower().startswith("this") else monday
        end = start + timedelta(days=7)
        said = f"{phrase.lower()}, {_day(start)} - {_day(end - timedelta(days=1))}"
    elif m.group("since"):
        amount = m.group("amount").lower()
        span = _AMOUNTS.get(amount) or float(amount)
        span *= 3600.0 if m.group("unit").lower().startswith("h") else 60.0
        slack = max(0.5 * span, 900.0)
        end = min(local_now, local_now - timedelta(seconds=span - slack))
        start = local_now - timedelta(seconds=span + slack)
        said = f"{phrase.lower()}, {start:%H:%M}-{end:%H:%M}"
    else:
        if m.group("this") or m.group("tonight"):
            day = midnight
        elif m.group("lastnight"):
            day = midnight - timedelta(days=1)
        elif m.group("daybefore"):
            day = midnight - timedelta(days=2)
        else:
            core = m.group("ago") or m.group("rel") or m.group("weekday") or m.group("date")
            number = core.split()[0].lower()
            core = f"{_NUMBERS[number]} {core.split(' ', 1)[1]}" if number in _NUMBERS else core
            day = _resolve_day(core, local_now)
            if day is None:
                return question, None
        if part:
            lo, hi = PARTS_OF_DAY[part]
            start, end = day + timedelta(hours=lo), day + timedelta(hours=hi)
        else:
            start, end = day, day + timedelta(days=1)
        said = f"{phrase.lower()}, {_day(day)}"
    return _without(question, m) or question, (TimeRange(start.timestamp(), end.timestamp(), said), day)


def _without(question: str, m: re.Match) -> str:
    rest = re.sub(r"\s+", " ", (question[: m.start()] + " " + question[m.end() :])).strip(" ,")
    return re.sub(r"\s+([?!.])", r"\1", rest)


def explicit_range(since: str | float | None, until: str | float | None, now: float | None = None) -> TimeRange | None:
    """``--since``/``--until`` as a range: a time as ``library set-time`` reads it ("2026-12-06T08:15",
    "2026-12-06"), unix seconds, or the time words a question may say ("yesterday", "Monday", "this morning",
    "last week", "3 days ago"): from the start of what they name (``since``) or up to its end (``until``)."""
    from indexing.recording_time import InvalidTime, parse_user_time, short_time

    if since in (None, "") and until in (None, ""):
        return None

    in_words: list[str] = []  # the values read as time words (said back as the user put them)

    def read(value, end: bool) -> float | None:
        if value in (None, ""):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_user_time(str(value)).at
        except InvalidTime as exc:
            rest, words = read_time(str(value), now)
            edge = None if words is None or rest not in ("", str(value)) else words.until if end else words.since
            if edge is None:
                raise InvalidTimeRange(
                    f"{exc}, or in words such as 'yesterday', 'Monday', 'this morning', 'last week'"
                ) from None
            in_words.append(str(value))
            return edge

    lo, hi = read(since, False), read(until, True)
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidTimeRange("--until must be later than --since")
    said = " - ".join(
        [short_time(lo) if lo is not None else "the beginning", short_time(hi) if hi is not None else "now"]
    )
    if in_words:  # told back in the user's words too: "until yesterday" ends at today's midnight
        said = f"{since or 'the beginning'} - {until or 'now'} ({said})"
    return TimeRange(lo, hi, said)
