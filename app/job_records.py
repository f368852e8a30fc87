"""What each background job of the app is and reports: plain records whose ``to_dict`` is the JSON the UI renders
and the HTTP API returns (:mod:`app.jobs` runs them)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# ---------------------------------------------------------------------------------------------- indexing
@dataclass
class IndexFile:
    path: Path
    name: str
    state: str = "queued"
    """queued | indexing | indexed | existed | failed"""
    message: str = ""
    video_id: str | None = None
    frames_done: int = 0
    frames_total: int = 0
    started: float | None = None

    def eta_s(self, now: float) -> float | None:
        """Seconds left for this file, from its encoding rate so far (None until it is measurable)."""
        if self.started is None or self.frames_done <= 0 or self.frames_total <= 0:
            return None
        rate = self.frames_done / max(now - self.started, 1e-6)
        return max(0.0, (self.frames_total - self.frames_done) / rate)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "message": self.message,
            "video_id": self.video_id,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "eta_s": None if self.state != "indexing" else self.eta_s(now),
        }


@dataclass
class IndexJob:
    id: str
    files: list[IndexFile]
    created: float = field(default_factory=time.time)
    state: str = "queued"
    """queued | running | done"""

    @property
    def finished(self) -> bool:
        return self.state == "done"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "id": self.id,
            "kind": "index",
            "state": self.state,
            "created": self.created,
            "files": [f.to_dict(now) for f in self.files],
        }


# ---------------------------------------------------------------------------------------------- training / demo
@dataclass
class TrainJob:
    id: str
    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "running"
    """running | stopping | finished | stopped | failed"""
    message: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ("running", "stopping")

    def to_dict(self, since: int = 0) -> dict[str, Any]:
        """``since``: only records from this index on (a page that already has the first ones)."""
        last = next((r for r in reversed(self.records) if r.get("event") in ("train", "eval", "start")), None)
        return {
            "id": self.id,
            "kind": "train",
            "name": self.name,
            "state": self.state,
            "message": self.message,
            "step": last.get("step", 0) if last else 0,
            "total_steps": last.get("total_steps", 0) if last else 0,
            "started": self.started,
            "ended": self.ended,
            "result": self.result,
            "num_records": len(self.records),
            "records": self.records[since:],
        }


@dataclass
class DemoJob:
    id: str
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    """queued | running | finished | stopped | failed"""
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    report: Any = None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "demo",
            "state": self.state,
            "stage": self.stage,
            "fraction": round(self.fraction, 4),
            "message": self.message,
        }


def describe_report(report: Any) -> str:
    """A one-line summary of whatever the demo returned (its ``summary()``/``to_dict()`` when it has one)."""
    for attr in ("summary", "describe"):
        fn = getattr(report, attr, None)
        if callable(fn):
            return str(fn())
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        d = to_dict()
        return ", ".join(f"{k}: {v}" for k, v in d.items() if isinstance(v, (str, int, float, bool)))
    return "" if report is None else str(report)
