"""What indexing one file came to, whichever way it was indexed (one process or a Ray cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexing.catalog import VideoRecord
from indexing.errors import VideoError


@dataclass(frozen=True)
class IndexResult:
    """The outcome for one file: its record (new or already present) or the error that refused it."""

    path: Path
    record: VideoRecord | None = None
    existed: bool = False
    """True when the same bytes were already in the library (nothing was re-indexed)."""
    error: VideoError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
