"""A library's features as a folder of per-video Ego4D-style files, to train on elsewhere.

Ego4D publishes features per video (``<video_uid>.pt`` at 1.875 Hz); training reads such folders
(``training.features.DirectoryClipFeatures``). An exported folder holds ``<video name stem>.npy`` -- float16
``[bins, dim]``, the library's own rows -- and ``features.json``, which names the encoder and grid so that a
localizer trained on the folder is known to match the library's features (and is accepted by ``ask``).
Files are copies, never hard links: a tool that rewrote an exported file in place would otherwise rewrite the
library's (1,000 hours of ViT-B-32 features are about 7 GB).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexing.catalog import VideoRecord
from indexing.errors import LibraryError
from indexing.fsutil import tmp_name, write_json_atomic

if TYPE_CHECKING:
    from indexing.library import Library

logger = logging.getLogger(__name__)

SIDECAR = "features.json"


@dataclass(frozen=True)
class FeatureExport:
    folder: Path
    videos: int


def export_features(library: Library, out: str | Path) -> FeatureExport:
    """Write every ready video's features to ``out`` (created; existing files of the same names replaced).

    Raises LibraryError when two videos share a file-name stem (a folder is keyed by ``video_uid``) or the
    library has no videos."""
    records = library.videos()
    if not records:
        raise LibraryError(f"the library at {library.root} has no indexed videos to export")
    by_stem: dict[str, VideoRecord] = {}
    for rec in records:
        stem = Path(rec.name).stem
        if stem in by_stem:
            raise LibraryError(
                f"videos {by_stem[stem].id} and {rec.id} are both named {stem}: an exported folder is keyed by "
                f"file name (Ego4D's video_uid), so rename one and index it again"
            )
        by_stem[stem] = rec
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = library.settings
    for stem, rec in by_stem.items():
        library.features(rec.id)  # checks the file against the catalog before it leaves the library
        dst = out / f"{stem}.npy"
        tmp = tmp_name(dst)
        shutil.copyfile(library.feature_path(rec.id), tmp)
        tmp.replace(dst)
    write_json_atomic(
        out / SIDECAR,
        {
            "encoder_key": settings.encoder_key,
            "dim": settings.dim,
            "rate_hz": settings.rate_hz,
            "layout": "video",
            "videos": {stem: rec.id for stem, rec in by_stem.items()},
        },
    )
    logger.info("exported the features of %d videos to %s", len(by_stem), out)
    return FeatureExport(out, len(by_stem))


__all__ = ["FeatureExport", "export_features", "SIDECAR"]
