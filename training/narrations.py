"""Ego4D narrations, from either of their two public forms, as one record type.

* ``narration.json``: ``{video_uid: {"narration_pass_1": {"narrations": [{"timestamp_sec",
  "timestamp_frame", "narration_text", "annotation_uid"}], "summaries": [...]}, "narration_pass_2": {...},
  "status": ...}}``. Two annotators narrated each video independently (the two passes); some videos have one
  pass or none (redacted: only a ``status``). Narrations here are instants; a window is derived later
  (:func:`training.naq.egovlp_windows`).
* EgoClip's table (``egoclip.csv``, tab-separated despite the name): one row per narration with
  ``video_uid, video_dur, narration_source, narration_ind, narration_time, clip_start, clip_end, clip_text,
  tag_verb, tag_noun`` (column order and extra columns vary: the header is read, and the delimiter sniffed).
  EgoClip already gives each narration its window (``clip_start``/``clip_end``, video seconds).

Texts are kept raw ("#C C picks a cup"); :func:`models.text_normalize.normalize_text` cleans them where they
become queries. Summaries are not narrations of a moment and are not read.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.nlq import NLQFileError, read_json

log = logging.getLogger(__name__)


class NarrationFileError(NLQFileError):
    """A narrations file that is missing, unreadable or not in either known format."""


@dataclass(frozen=True, slots=True)
class Narration:
    """One timestamped sentence about a video; times in video seconds (slots: EgoClip has 3.8 M of them)."""

    video_uid: str
    time: float
    text: str
    source: str
    """Which narration stream: ``narration_pass_1``/``narration_pass_2`` (EgoClip's ``narration_source``)."""
    window: tuple[float, float] | None = None
    """The narration's window when the file gives one (EgoClip ``clip_start``/``clip_end``), else None."""
    verb_tags: tuple[int, ...] = ()
    noun_tags: tuple[int, ...] = ()
    """EgoClip's verb and noun class ids (``tag_verb``/``tag_noun``, e.g. ``[93]``) when the file has them:
    the keys of EgoNCE's action-aware positives in pretraining."""


@dataclass
class NarrationFile:
    """What a narrations file held: the narrations, and how many entries were skipped and why."""

    path: str
    format: str
    """``"narration.json"`` or ``"egoclip"``."""
    narrations: list[Narration]
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.narrations)

    def __iter__(self) -> Iterator[Narration]:
        return iter(self.narrations)


_INT = re.compile(r"-?\d+")


def _tags(cell: str) -> tuple[int, ...]:
    """EgoClip's tag cells look like ``[93]`` or ``[192, 115]``; anything else reads as no tags."""
    return tuple(sorted({int(x) for x in _INT.findall(cell or "")}))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_narration_json(data: Any, source: str = "<narrations>") -> NarrationFile:
    """Ego4D ``narration.json`` content -> narrations, both passes, in file order."""
    if not isinstance(data, dict):
        raise NarrationFileError(
            f"{source}: narration.json should map video uids to narration passes, but "
            f"its top level is a {type(data).__name__}."
        )
    out: list[Narration] = []
    skipped: Counter = Counter()
    recognised = 0
    for video_uid, entry in data.items():
        if not isinstance(entry, dict):
            skipped["video entry not an object"] += 1
            continue
        passes = [p for p in entry if p.startswith("narration_pass")]
        if not passes:
            skipped["video without narration passes"] += 1  # e.g. only {"status": "redacted"}
            continue
        recognised += 1
        for pass_name in sorted(passes):
            block = entry.get(pass_name)
            items = block.get("narrations") if isinstance(block, dict) else None
            if not isinstance(items, list):
                skipped["pass without a narrations list"] += 1
                continue
            for item in items:
                if not isinstance(item, dict):
                    skipped["malformed narration"] += 1
                    continue
                time = _finite(item.get("timestamp_sec"))
                text = item.get("narration_text")
                if time is None:
                    skipped["narration without a time"] += 1
                elif not isinstance(text, str):
                    skipped["narration without text"] += 1
                else:
                    out.append(Narration(str(video_uid), time, text, pass_name))
    if data and not recognised and not out:
        raise NarrationFileError(
            f"{source}: none of its {len(data)} entries has a narration pass; it does "
            "not look like Ego4D's narration.json."
        )
    return NarrationFile(source, "narration.json", out, skipped)


REQUIRED_EGOCLIP = ("video_uid", "clip_text")
"""EgoClip columns we cannot do without; times come from ``clip_start``/``clip_end`` or ``narration_time``."""


def read_egoclip(path: str | os.PathLike) -> NarrationFile:
    """EgoClip's narration table (tab- or comma-separated, with a header) -> narrations with their windows."""
    path = Path(path)
    skipped: Counter = Counter()
    out: list[Narration] = []
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise NarrationFileError(f"The narrations file {path} cannot be read ({exc.strerror or exc}).") from None
    with fh:
        try:
            header_line = fh.readline()
        except UnicodeDecodeError:
            raise NarrationFileError(f"The narrations file {path} is not UTF-8 text.") from None
        delimiter = "\t" if header_line.count("\t") >= header_line.count(",") else ","
        header = next(csv.reader([header_line], delimiter=delimiter), [])
        columns = {name.strip(): i for i, name in enumerate(header) if name.strip()}
        missing = [c for c in REQUIRED_EGOCLIP if c not in columns]
        has_window = "clip_start" in columns and "clip_end" in columns
        if missing or not (has_window or "narration_time" in columns):
            need = missing + (
                [] if has_window or "narration_time" in columns else ["clip_start/clip_end or narration_time"]
            )
            raise NarrationFileError(
                f"The narrations file {path} is neither narration.json nor an EgoClip "
                f"table: its header lacks {', '.join(need)}."
            )
        col = columns.__getitem__  # every column read is checked present first
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < len(header):
                    skipped["short row"] += 1
                    continue
                video_uid = row[col("video_uid")].strip()
                text = row[col("clip_text")]
                start = _finite(row[col("clip_start")]) if has_window else None
                end = _finite(row[col("clip_end")]) if has_window else None
                time = _finite(row[col("narration_time")]) if "narration_time" in columns else None
                if not video_uid:
                    skipped["row without a video uid"] += 1
                    continue
                window = (start, end) if start is not None and end is not None else None
                if time is None:
                    if window is None:
                        skipped["row without a usable time"] += 1
                        continue
                    time = (window[0] + window[1]) / 2.0
                source = row[col("narration_source")].strip() if "narration_source" in columns else "egoclip"
                verbs = _tags(row[col("tag_verb")]) if "tag_verb" in columns else ()
                nouns = _tags(row[col("tag_noun")]) if "tag_noun" in columns else ()
                out.append(Narration(video_uid, time, text, source or "egoclip", window, verbs, nouns))
        except UnicodeDecodeError:
            raise NarrationFileError(f"The narrations file {path} is not UTF-8 text.") from None
        except csv.Error as exc:
            raise NarrationFileError(
                f"The narrations file {path} is not a readable table (line {reader.line_num}: {exc})."
            ) from None
    return NarrationFile(str(path), "egoclip", out, skipped)


def load_narrations(path: str | os.PathLike) -> NarrationFile:
    """Read narrations from Ego4D's ``narration.json`` or EgoClip's table; the format is sniffed."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
    except FileNotFoundError:
        raise NarrationFileError(f"The narrations file {path} does not exist.") from None
    except IsADirectoryError:
        raise NarrationFileError(f"The narrations file {path} is a folder, not a file.") from None
    except OSError as exc:
        raise NarrationFileError(f"The narrations file {path} cannot be read ({exc.strerror or exc}).") from None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if head[:1] in (b"{", b"["):
        nf = parse_narration_json(read_json(path, NarrationFileError, "narrations file"), str(path))
    else:
        nf = read_egoclip(path)
    log.info("%s: %d narrations (%s), skipped %s", path, len(nf), nf.format, dict(nf.skipped))
    return nf
