"""User-facing errors of the indexing layer: one video that cannot be indexed, or a library that cannot be used.

A :class:`VideoError` is about one file, and its message starts with the file's name (``"clip.mp4: the file is
empty (0 bytes)."``), so the CLI can print ``error: <message>`` as the one line a bad file gets while the other
files go on being indexed. Errors about the library as a whole (busy, made for another encoder) stop the whole
command instead.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import EgoRecallError


class VideoError(EgoRecallError):
    """One video could not be indexed; ``reason`` says why in words a user can act on."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".") + "."
        super().__init__(f"{self.path.name}: {self.reason}")

    def __reduce__(self):  # picklable, so decoder children can hand errors to the parent
        return (type(self), (str(self.path), self.reason))


class InvalidVideo(VideoError):
    """The file is not something we can index: empty, not media, no video stream, undecodable, too short."""


class DamagedVideo(InvalidVideo):
    """The file is a video but is damaged (truncated, corrupt data) beyond the tolerance of the damage policy."""


class DecoderFailed(VideoError):
    """The decoder itself failed on this file (crashed, exited, raised) with every backend we tried."""


class DecoderCrashed(DecoderFailed):
    """A decoder child process died (a signal such as SIGSEGV/SIGABRT, or an unexpected exit)."""


class DecoderHung(DecoderFailed):
    """A decoder child process stopped making progress and was killed by the watchdog."""


VIDEO_ERRORS: dict[str, type[VideoError]] = {
    cls.__name__: cls for cls in (VideoError, InvalidVideo, DamagedVideo, DecoderFailed, DecoderCrashed, DecoderHung)
}
"""By name, so a child process can send ``(class name, reason)`` and the parent raise the same error."""


class LibraryError(EgoRecallError):
    """The library cannot do what was asked (missing files, unreadable metadata, bad arguments)."""


class LibraryBusy(LibraryError):
    """Another writer holds the library's write lock for longer than we were willing to wait."""


class FeatureMismatch(LibraryError):
    """Features that cannot go together with the library's: another encoder's, or on another time grid."""


class EncoderMismatch(FeatureMismatch):
    """The library was built with one encoder and was asked to mix in (or search with) another's."""


class GridMismatch(FeatureMismatch):
    """The library's features lie on one time grid (rate) and were asked to go with another's."""


class UnknownVideo(LibraryError):
    """No video with this id is in the library."""
