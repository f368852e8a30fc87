"""A folder that new recordings arrive in every day: which of its files are ready to index, and which were done.

A file being copied (from a camera, a phone, a sync client) grows until the copy ends; indexing it then would
refuse it as truncated, or index half a video. A file is *ready* once its size and modification time stayed
the same for ``settle_s`` seconds over at least two looks, and it is not a partial download (``.part``,
``.crdownload``, ``.tmp``, hidden files). Ready files are handed over in recording-time order (the order the
day happened), and what was handed over is remembered in a small JSON state file beside the library, written
atomically, so a restarted watcher neither indexes a file twice nor re-hashes the whole folder (the library
itself also refuses a file it holds, by content).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexing.fsutil import write_json_atomic
from indexing.recording_time import file_recording_time

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(".mp4 .mov .mkv .m4v .webm .avi .mts .m2ts .ts .3gp".split())
PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".!qb")


@dataclass
class _Seen:
    size: int
    mtime: float
    since: float
    """When this size and time were first seen (monotonic clock)."""


@dataclass
class FolderWatch:
    folder: Path
    state_file: Path
    settle_s: float = 5.0
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _done: dict[str, list] = field(default_factory=dict)
    _missing_reported: bool = False

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).expanduser().absolute()
        try:
            self._done = json.loads(self.state_file.read_text(encoding="utf-8")).get("done", {})
        except (OSError, ValueError):
            self._done = {}

    @classmethod
    def for_library(cls, library_root: Path, folder: Path, settle_s: float = 5.0) -> FolderWatch:
        """The watch of ``folder`` whose state lives in the library (one state file per watched folder)."""
        folder = Path(folder).expanduser().absolute()
        key = hashlib.sha1(str(folder).encode()).hexdigest()[:16]
        return cls(folder, Path(library_root) / "watch" / f"{key}.json", settle_s)

    def _candidates(self) -> list[Path]:
        out = []
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES) or not entry.is_file():
                continue
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                out.append(Path(entry.path))
        return out

    def poll(self, now: float | None = None) -> list[Path]:
        """Files that finished arriving and were not handed over before, in recording-time order. A folder
        that is gone is reported once (and again once it is back) and yields nothing: the library is left as
        it is."""
        now = time.monotonic() if now is None else now
        if not self.folder.is_dir():
            if not self._missing_reported:
                logger.warning("the watch folder %s is not there (any more); waiting for it", self.folder)
                self._missing_reported = True
            return []
        if self._missing_reported:
            logger.warning("the watch folder %s is back", self.folder)
            self._missing_reported = False
        ready = []
        for path in self._candidates():
            try:
                st = path.stat()
            except OSError:
                continue
            key = str(path)
            done = self._done.get(key)
            if done is not None and done == [st.st_size, st.st_mtime]:
                continue
            seen = self._seen.get(key)
            if seen is None or (seen.size, seen.mtime) != (st.st_size, st.st_mtime):
                self._seen[key] = _Seen(st.st_size, st.st_mtime, now)  # new, or still growing
                continue
            if now - seen.since >= self.settle_s and st.st_size > 0:
                ready.append(path)
        return sorted(ready, key=lambda p: (file_recording_time(p).at, p.name))

    def mark_done(self, path: Path) -> None:
        """Remember ``path`` (at its current size and time) as handed over, durably."""
        try:
            st = Path(path).stat()
        except OSError:
            return
        self._done[str(path)] = [st.st_size, st.st_mtime]
        self._seen.pop(str(path), None)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.state_file, {"folder": str(self.folder), "done": self._done})
