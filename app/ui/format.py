"""Pure helpers that turn the service's results into what the page shows and the API returns.

No Gradio here (only plain data and HTML strings), so every rule of presentation is unit-tested on its own.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.commands.ask import clock
from app.text import counted

__all__ = [
    "clock",
    "span",
    "file_url",
    "moment_record",
    "moment_caption",
    "video_rows",
    "VIDEO_COLUMNS",
    "VIDEO_COLUMN_WIDTHS",
    "progress_html",
    "series_points",
    "eta_text",
    "playback_offset",
]

VIDEO_COLUMNS = ["Day", "Recorded", "Name", "Duration", "Status", "Frames", "Encoder", "ID"]
"""Status beside the name, before the wide technical columns: a failed video shows without scrolling."""
VIDEO_COLUMN_WIDTHS: list[str | int] = ["12%", "13%", "24%", "7%", "8%", "6%", "19%", "11%"]
"""Widths of :data:`VIDEO_COLUMNS` in the Library tab: headers on one line, the long names and encoder keys
wrapped rather than pushing the ID out of view."""


def span(start: float, end: float) -> str:
    """``m:ss–m:ss``; a window inside one second shows its end rounded up, so it never reads as empty."""
    a, b = clock(start), clock(end)
    if a == b and end > start:
        b = clock(math.ceil(end))
    return f"{a}–{b}"


def file_url(path: str | Path | None) -> str | None:
    """The app's URL path of a file it may serve (answer clips and thumbnails live in an allowed folder)."""
    if path is None:
        return None
    return "gradio_api/file=" + quote(str(Path(path).resolve()))


def playback_offset(record: dict[str, Any]) -> float:
    """Where a moment record's window starts inside its (padded) clip, so the player can begin at the moment
    itself."""
    if record.get("clip_start") is None:
        return 0.0
    return max(0.0, float(record["start"]) - float(record["clip_start"]))


def moment_record(moment) -> dict[str, Any]:
    """One answer moment as JSON for the API: ids, times (seconds and m:ss), score and its files."""
    return {
        "rank": moment.rank,
        "video_id": moment.video_id,
        "video_name": moment.video_name,
        "start": round(float(moment.start), 3),
        "end": round(float(moment.end), 3),
        "span": span(moment.start, moment.end),
        "score": round(float(moment.score), 6),
        "clip": str(moment.clip) if moment.clip else None,
        "clip_url": file_url(moment.clip),
        "thumbnail": str(moment.thumbnail) if moment.thumbnail else None,
        "thumbnail_url": file_url(moment.thumbnail),
        "clip_start": None if moment.clip_start is None else round(float(moment.clip_start), 3),
        "clip_error": moment.clip_error,
        "confidence": None if moment.confidence is None else round(float(moment.confidence), 4),
        "recorded_at": getattr(moment, "recorded_at", None),
        "when": getattr(moment, "when", None),
        "corrected": getattr(moment, "corrected", None),
    }


def moment_caption(record: dict[str, Any]) -> str:
    """A moment record's caption under its thumbnail and player: ``#1 · Tue 3 Dec, 08:14 · kitchen.mp4 ·
    0:12–0:18 · 62 % · likely`` (the raw score where the mode has no calibration)."""
    head = f"#{record['rank']} · " + (f"{record['when']} · " if record.get("when") else "")
    head += f"{record['video_name']} · {record['span']}"
    if record.get("confidence_text"):
        return f"{head} · {record['confidence_text']}"
    return f"{head} · score {record['score']:.3f}"


def _date(unix: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix)) if unix else ""


def video_rows(records: Iterable, pending: Iterable = ()) -> list[list[Any]]:
    """Rows of the library table (:data:`VIDEO_COLUMNS`), read from the top: files still being indexed, then
    ready videos by the day they were recorded, the latest day first (the day named on its first row, its
    recordings in time order). Months of recordings fill the table; what is new is where it opens."""
    from indexing.recording_time import by_day, local_moment

    rows = []
    for f in pending:
        if f.state == "indexing" and f.frames_total:
            status = f"indexing {100 * f.frames_done / f.frames_total:.0f}%"
        else:
            status = f.state
        rows.append(["", "", f.name, "", status, "", "", ""])
    for day, group in by_day(list(records), latest_day_first=True):
        for i, r in enumerate(group):
            frames = r.frame_count if r.frame_count else int(round(r.duration * r.fps)) if r.fps else None
            at = local_moment(r.recorded_at, r.recorded_tz).strftime("%H:%M") if r.recorded_at else ""
            source = getattr(r, "recorded_source", None)
            rows.append(
                [
                    day if i == 0 else "",
                    f"{at} ({source})" if source else at,
                    r.name,
                    clock(r.duration),
                    r.status,
                    frames if frames is not None else "",
                    r.encoder_key,
                    r.id,
                ]
            )
    return rows


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "estimating time left"
    return f"about {clock(math.ceil(seconds))} left"


def progress_html(status: dict[str, Any], limit: int = 6) -> str:
    """The indexing panel: a real progress bar for the file being indexed (frames done of total, ETA), the
    queue, and the outcome of recent files (errors as one line each)."""
    parts = []
    download = status.get("download")
    if download:
        mb = f"{download['done'] / 1e6:.0f}" + (f" of {download['total'] / 1e6:.0f}" if download.get("total") else "")
        pct = 100.0 * download["done"] / download["total"] if download.get("total") else 0.0
        parts.append(
            f'<div class="er-progress" data-state="downloading">'
            f"<div>Downloading the encoder weights <b>{html.escape(download['what'])}</b> (first use only): "
            f"{mb} MB</div>"
            f'<progress max="100" value="{pct:.1f}" style="width:100%">{pct:.0f}%</progress></div>'
        )
    cur = status.get("current")
    if cur:
        total, done = cur["frames_total"], cur["frames_done"]
        pct = 100.0 * done / total if total else 0.0
        parts.append(
            f'<div class="er-progress" data-state="indexing">'
            f"<div>Indexing <b>{html.escape(cur['name'])}</b> (file {cur['file']} of {cur['files']}): "
            f"{done} / {total or '?'} frames, {html.escape(eta_text(cur['eta_s']))}</div>"
            f'<progress max="100" value="{pct:.1f}" style="width:100%">{pct:.0f}%</progress></div>'
        )
    if status.get("queued_files"):
        parts.append(f"<div>{counted(status['queued_files'], 'file')} waiting</div>")
    lines = []
    for job in status.get("jobs", []):
        for f in job["files"]:
            if f["state"] in ("indexed", "existed"):
                lines.append(f'<li class="er-ok">{html.escape(f["name"])}: {html.escape(f["message"])}</li>')
            elif f["state"] == "failed":
                lines.append(f'<li class="er-failed">not added: {html.escape(f["message"])}</li>')
    if lines:
        parts.append("<ul>" + "".join(lines[:limit]) + "</ul>")
    if not parts:
        return '<div class="er-progress" data-state="idle">No indexing in progress.</div>'
    if not cur:
        parts.insert(0, '<div class="er-progress" data-state="idle"></div>')
    return "".join(parts)


def series_points(series, *, max_points: int = 4000) -> list[dict[str, Any]]:
    """Points of one video's score curve for a line plot: the curve itself (``series = "score"``) and, over
    each answer window, the same points again under ``"#rank"`` so the windows stand out in colour.
    Long curves are thinned to ``max_points`` (every n-th point) and gaps (NaN) are dropped."""
    times, scores = list(series.times), list(series.scores)
    step = max(1, math.ceil(len(times) / max_points))
    pts = [
        {"time": round(float(t), 3), "score": float(s), "series": "score"}
        for t, s in zip(times[::step], scores[::step])
        if math.isfinite(float(s))
    ]
    for start, end, rank in series.windows:
        inside = [(float(t), float(s)) for t, s in zip(times, scores) if start <= t <= end and math.isfinite(s)]
        if not inside:  # a window shorter than a bin: mark its two ends at the nearest curve value
            near = min(zip(times, scores), key=lambda ts: abs(ts[0] - (start + end) / 2), default=None)
            if near is None or not math.isfinite(float(near[1])):
                continue
            inside = [(start, float(near[1])), (end, float(near[1]))]
        pts += [{"time": round(t, 3), "score": s, "series": f"#{rank}"} for t, s in inside]
    return pts
