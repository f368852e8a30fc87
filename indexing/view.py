"""What one question reads of the catalog, read in one transaction.

A library question used to open the catalog seven times -- the answerer's settings, the ready videos, the
user's corrections, the search's settings and videos, the index's generation, the candidates' records: a few
milliseconds of a 50 ms budget at 1,000 hours, and seven snapshots a writer could tell apart. A
:class:`LibraryView` is read once (:meth:`indexing.library.Library.view`) and handed to each part, which then
reads nothing more -- unless what it holds turned out stale (a re-index moved the feature files between the
read and their use), where the part reads the catalog again as it would without a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from indexing.catalog import LibrarySettings, VideoRecord
from indexing.feedback import Correction


@dataclass(frozen=True)
class LibraryView:
    settings: LibrarySettings
    generation: int
    """The catalog's generation when read: it moves with every change of the set of ready videos."""
    ready: tuple[VideoRecord, ...]
    """Ready videos in the order they were added."""
    corrections: tuple[Correction, ...]
    """Every correction of the library, oldest first."""

    @cached_property
    def by_id(self) -> dict[str, VideoRecord]:
        return {r.id: r for r in self.ready}

    @cached_property
    def by_rowid(self) -> dict[int, VideoRecord]:
        return {r.rowid: r for r in self.ready}
