"""One video indexed without the library's lock, to be committed later by the library's single writer.

A worker anywhere (a Ray actor on another node of a cluster, :mod:`indexing.cluster`) probes, decodes and
encodes a file into a folder of the library's ``staging/`` area: its features, optionally a link to (or copy
of) the media, and last of all ``staged.json``, the manifest that says the folder is complete. The writer
then moves the files into place with :meth:`indexing.library.Library.commit_staged`, the same commit that
:meth:`~indexing.library.Library.add` makes -- so the catalog row becomes ``ready`` only after the feature
file and the index entries are in place, whoever did the work.

Staged folders are work in progress, never library state: a folder without its manifest is an interrupted
attempt, and whatever is left when no driver holds ``staging/lock`` is deleted by the library's repair.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from indexing.config import DecodeConfig
from indexing.damage import DecodeReport
from indexing.decode import probe_isolated
from indexing.errors import InvalidVideo, LibraryError
from indexing.extract import Extraction, FrameEncoder, Progress, extract_features
from indexing.fsutil import link_or_copy, sha256_file, write_json_atomic
from indexing.layout import STAGING_DIR
from indexing.probe import VideoInfo
from models.grid import TimeGrid

logger = logging.getLogger(__name__)

MANIFEST = "staged.json"
FEATURES = "features.npy"
WORKER_PID = "worker.pid"
"""The pid of the process writing the folder: whoever looks at a stuck folder sees which worker it was."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What a commit records of the encoder that made a staged video's features."""

    key: str
    dim: int
    model: str
    pretrained: str
    quantize: str = ""


@dataclass(frozen=True)
class StagedVideo:
    """A complete staged folder: what the commit needs to make the video a ready library entry."""

    dir: Path
    source: Path
    sha256: str
    info: VideoInfo
    encoder: EncoderIdentity
    rate_hz: float
    num_rows: int
    backend: str
    damaged: int
    seconds: float
    encode_seconds: float
    media_file: str | None
    """Name of the media link/copy inside :attr:`dir`, or None when the library references the original."""
    media_mode: str
    """``link``, ``copy`` or ``reference``."""

    @property
    def features_path(self) -> Path:
        return self.dir / FEATURES

    @property
    def grid(self) -> TimeGrid:
        return TimeGrid(self.rate_hz, self.info.duration)

    def extraction(self, features: np.ndarray) -> Extraction:
        """The commit's view of the work, as :func:`extract_features` would have returned it."""
        report = DecodeReport(backend=self.backend, workers=0, corrupt=self.damaged)
        return Extraction(features=features, report=report, seconds=self.seconds, encode_seconds=self.encode_seconds)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(dir=None, source=str(self.source), info=self.info.to_dict())
        return d

    @classmethod
    def load(cls, directory: Path) -> StagedVideo:
        """Read a staged folder's manifest; LibraryError when it is missing or unreadable (an unfinished attempt)."""
        try:
            d = json.loads((directory / MANIFEST).read_text())
            return cls(
                **{
                    **d,
                    "dir": Path(directory),
                    "source": Path(d["source"]),
                    "info": VideoInfo(**d["info"]),
                    "encoder": EncoderIdentity(**d["encoder"]),
                }
            )
        except FileNotFoundError:
            raise LibraryError(f"staged folder {directory.name} is unfinished (no {MANIFEST})") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise LibraryError(f"staged folder {directory.name} has an unreadable manifest ({exc})") from None


def write_features(
    path: Path,
    encoder: FrameEncoder,
    info: VideoInfo,
    grid: TimeGrid,
    dest: Path,
    *,
    config: DecodeConfig,
    progress: Progress | None = None,
) -> Extraction:
    """Encode a video's grid frames straight into a durable float16 ``.npy`` file (memory flat in length)."""
    feats = np.lib.format.open_memmap(dest, mode="w+", dtype=np.float16, shape=(grid.num_bins, encoder.dim))
    try:
        result = extract_features(path, encoder, info, grid, out=feats, config=config, progress=progress)
        feats.flush()
    finally:
        del feats
    with open(dest, "rb+") as f:
        os.fsync(f.fileno())
    return result


def identity_of(encoder: FrameEncoder) -> EncoderIdentity:
    spec = encoder.spec
    return EncoderIdentity(
        key=encoder.key,
        dim=int(encoder.dim),
        model=spec.model,
        pretrained=spec.pretrained,
        quantize=getattr(spec, "quantize", ""),
    )


def staging_root(library_root: Path) -> Path:
    return Path(library_root) / STAGING_DIR


def stage_video(
    path: str | Path,
    library_root: Path,
    encoder: FrameEncoder,
    *,
    rate_hz: float,
    config: DecodeConfig | None = None,
    copy_media: bool = True,
    skip: frozenset[str] = frozenset(),
    progress: Progress | None = None,
) -> StagedVideo | str:
    """Index ``path`` into a new staged folder of the library at ``library_root`` and return it.

    Returns the file's sha256 instead, doing nothing more, when it is in ``skip`` (the library already holds
    those bytes). Raises the :class:`~indexing.errors.VideoError` s of probing and decoding, leaving nothing.
    Needs no lock and never touches the catalog, so any number of workers may stage at once.
    """
    path = Path(path)
    config = config or DecodeConfig()
    if not path.is_file():
        raise InvalidVideo(path, "the file does not exist" if not path.exists() else "it is not a regular file")
    try:
        sha = sha256_file(path)
    except OSError as exc:
        raise InvalidVideo(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if sha in skip:
        return sha
    info = probe_isolated(path, rate_hz=rate_hz, config=config)
    grid = TimeGrid(rate_hz, info.duration)
    folder = staging_root(library_root) / f"{sha[:16]}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        (folder / WORKER_PID).write_text(f"{os.getpid()}\n")
        media_file, media_mode = None, "reference"
        if copy_media:
            media_file = f"media{path.suffix.lower()}"
            media_mode = link_or_copy(path, folder / media_file)
        result = write_features(path, encoder, info, grid, folder / FEATURES, config=config, progress=progress)
        staged = StagedVideo(
            dir=folder,
            source=path.absolute(),
            sha256=sha,
            info=info,
            encoder=identity_of(encoder),
            rate_hz=float(rate_hz),
            num_rows=grid.num_bins,
            backend=result.report.backend,
            damaged=int(result.report.damaged),
            seconds=result.seconds,
            encode_seconds=result.encode_seconds,
            media_file=media_file,
            media_mode=media_mode,
        )
        write_json_atomic(folder / MANIFEST, staged.to_json())  # last: the folder is complete from here on
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    logger.info("staged %s: %d frames in %.1f s", path.name, grid.num_bins, result.seconds)
    return staged


__all__ = ["EncoderIdentity", "StagedVideo", "identity_of", "stage_video", "staging_root", "write_features", "MANIFEST"]
