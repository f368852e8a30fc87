"""The one object the CLI and the UI both call: it owns the library and a lazily loaded, cached encoder.

Keep it thin: each method is a user-level action (index these files, list, remove, later ask and train) that
delegates to ``indexing``/``models``/``training`` and turns per-file failures into results, so a batch of
uploads where one file is bad still indexes the others.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from app.settings import Settings
from indexing.config import LibraryConfig
from indexing.errors import VideoError
from indexing.library import Library, ReindexReport, VideoRecord
from models.clip_encoder import ClipEncoder, EncoderSpec

logger = logging.getLogger(__name__)

IndexProgress = Callable[[Path, int, int], None]
"""``progress(path, frames_done, frames_total)`` while one file of a batch is being indexed."""


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


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextmanager
def _quiet_random_init_warning(spec: EncoderSpec):
    """open_clip warns on the root logger about random weights; with ``--pretrained none`` that was the
    user's explicit choice, and the CLI promises one stderr line per problem, so the warning is dropped."""
    if not spec.is_random:
        yield
        return
    root, drop = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


class EgoRecall:
    """EgoRecall's service facade.

    ``encoder_spec`` chooses the encoder for indexing (and later for questions); when None, a library that
    already holds videos uses the encoder it was built with, and a new library uses ``settings.encoder``.
    Both the library and the encoder are opened on first use; the encoder is loaded once and shared by
    threads.
    """

    def __init__(self, settings: Settings | None = None, *, encoder_spec: EncoderSpec | None = None,
                 rate_hz: float | None = None, library_config: LibraryConfig | None = None) -> None:
        self.settings = settings or Settings()
        self._explicit_spec = encoder_spec
        self._rate_hz = rate_hz
        self._library_config = library_config
        self._library: Library | None = None
        self._encoder: ClipEncoder | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------ resources
    @property
    def library(self) -> Library:
        with self._lock:
            if self._library is None:
                self._library = Library.open(self.settings.library, rate_hz=self._rate_hz,
                                             config=self._library_config)
            return self._library

    @property
    def encoder_spec(self) -> EncoderSpec:
        """Explicit choice, else the library's own encoder, else the settings' default."""
        return self._explicit_spec or self.library.encoder_spec or self.settings.encoder

    def encoder(self) -> ClipEncoder:
        """The encoder, loaded on first call (EncoderUnavailable says what is missing) and then reused."""
        with self._lock:
            if self._encoder is None:
                spec = self.encoder_spec
                # Refuse a mismatch before spending seconds loading weights.
                self.library.require_encoder(spec.key)
                with _quiet_random_init_warning(spec):
                    self._encoder = ClipEncoder.load(spec, self.settings.device)
            return self._encoder

    # ------------------------------------------------------------------------------------------ actions
    def index(self, paths: Iterable[str | Path], progress: IndexProgress | None = None, *,
              copy_media: bool = True) -> list[IndexResult]:
        """Index files one after another; a file that cannot be indexed gets an error result, the rest go on.

        Errors about the library or the encoder (busy, mismatch, weights missing) are raised: they would
        fail every file alike.
        """
        paths = [Path(p) for p in paths]
        if not paths:
            return []
        library, encoder = self.library, self.encoder()
        results = []
        for path in paths:
            try:
                before = library.find_file(path) if path.is_file() else None
                if before is not None:
                    results.append(IndexResult(path, before, existed=True))
                    continue
                callback = (lambda done, total, _p=path: progress(_p, done, total)) if progress else None
                record = library.add(path, encoder, progress=callback, copy_media=copy_media)
                results.append(IndexResult(path, record))
            except VideoError as exc:
                logger.info("not indexed: %s", exc)
                results.append(IndexResult(path, error=exc))
        return results

    def videos(self) -> list[VideoRecord]:
        """Ready videos, in the order they were added."""
        return self.library.videos()

    def remove(self, video_id: str) -> VideoRecord:
        """Remove one video and everything the library stored for it."""
        return self.library.remove(video_id)

    def reindex(self, spec: EncoderSpec, progress: Callable[[int, int], None] | None = None) -> ReindexReport:
        """Switch the library to another encoder: re-encode every video with ``spec`` (see
        :meth:`Library.reindex`), then use that encoder for questions and new videos.

        ``progress(frames_done, frames_total)`` follows the re-encoding. The old encoder keeps answering
        questions until the switch.
        """
        library = self.library
        with _quiet_random_init_warning(spec):
            encoder = ClipEncoder.load(spec, self.settings.device)
        report = library.reindex(encoder, progress=progress)
        with self._lock:
            self._explicit_spec, self._encoder = spec, encoder
        return report
