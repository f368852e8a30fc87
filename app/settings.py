"""Everything the app, the CLI and the service are set up from: one dataclass tree, every default in one place.

Read like every EgoRecall config (:func:`models.config_files.configure`): the defaults below (a few environment
variables fill them, read once when the settings are made), then a YAML file (``--config FILE``, else
``$EGORECALL_CONFIG``), then a command's everyday flags, then ``--set KEY=VALUE``; a key that is not a field is
refused by its dotted name. ``python -m app settings`` prints the result, so any key can be looked up::

    # my-settings.yaml
    library: ~/egorecall
    encoder: {model: ViT-B-16, pretrained: openai}
    indexing:
      decode: {workers: 2, still_frame_diff: 2.0}
    excerpts: {pad_s: 2.0}
    answers: {frame_hits: 512}

To add a setting: add a field (with its default and a docstring) to the dataclass that uses it; it can then be
set from any file and by ``--set``. A flag of its own is for everyday settings only (``EVERYDAY_FLAGS``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.answering.search import SearchConfig
from indexing.config import LibraryConfig
from indexing.excerpts import EXCERPTS_DIR, ExcerptConfig
from models.clip_encoder import EncoderSpec
from models.config_files import configure, plain

logger = logging.getLogger(__name__)

DEFAULT_LIBRARY = Path("data/library")
CONFIG_ENV = "EGORECALL_CONFIG"
"""A settings file read when no ``--config`` is given."""


def default_library_dir() -> Path:
    return Path(os.environ.get("EGORECALL_LIBRARY", DEFAULT_LIBRARY)).expanduser()


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


@dataclass
class Settings:
    """The app's settings; the service (:class:`app.service.EgoRecall`) takes them whole."""

    library: Path = field(default_factory=default_library_dir)
    """The library directory ($EGORECALL_LIBRARY)."""
    checkpoints: Path | None = field(default_factory=lambda: _env_path("EGORECALL_CHECKPOINTS"))
    """Where checkpoints are kept ($EGORECALL_CHECKPOINTS); None: ``<library>/checkpoints``."""
    encoder: EncoderSpec = field(default_factory=EncoderSpec.from_env)
    """The encoder of a *new* library ($EGORECALL_MODEL, $EGORECALL_PRETRAINED, $EGORECALL_QUANTIZE); a library
    keeps the encoder it was built with (``library reindex`` switches it), and a different choice here is
    logged, not silently dropped."""
    device: str | None = field(default_factory=lambda: os.environ.get("EGORECALL_DEVICE") or None)
    """``cpu``, ``cuda``, ``cuda:1``...; None picks a GPU when there is one ($EGORECALL_DEVICE)."""
    default_checkpoint: str | None = field(default_factory=lambda: os.environ.get("EGORECALL_CHECKPOINT_URL") or None)
    """A published checkpoint (``checkpoints.release``: URL, ``hf:ORG/REPO``) that ``auto`` fetches on first use
    when the library has no compatible checkpoint of its own ($EGORECALL_CHECKPOINT_URL)."""
    indexing: LibraryConfig = field(default_factory=LibraryConfig)
    """How this process decodes, indexes and searches the library (:class:`indexing.config.LibraryConfig`)."""
    excerpts: ExcerptConfig = field(default_factory=ExcerptConfig)
    """How each answer's playable excerpt (its clip, to the user) is cut (:class:`indexing.excerpts.ExcerptConfig`)."""
    answers: SearchConfig = field(default_factory=SearchConfig)
    """How library-wide questions pick and answer candidate videos (:class:`app.answering.search.SearchConfig`)."""

    def __post_init__(self) -> None:
        self.library = Path(self.library).expanduser()  # scripts pass strings
        if self.checkpoints is not None:
            self.checkpoints = Path(self.checkpoints).expanduser()

    @property
    def checkpoints_dir(self) -> Path:
        return self.checkpoints if self.checkpoints is not None else self.library / "checkpoints"

    @property
    def excerpts_dir(self) -> Path:
        return self.library / EXCERPTS_DIR

    def to_dict(self) -> dict[str, Any]:
        return plain({k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()})


EVERYDAY_FLAGS: dict[str, str] = {
    "library": "library",
    "device": "device",
    "workers": "indexing.decode.workers",
    "reuse_still": "indexing.decode.still_frame_diff",
}
"""Command-line flag (its argparse name) -> the setting it sets; every other setting is ``--set KEY=VALUE`` or a
settings file's (a test checks each names a real setting)."""


def load_settings(
    path: str | Path | None = None, overrides: Iterable[str] = (), flags: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from the defaults, a file (``path``, else ``$EGORECALL_CONFIG``), the everyday ``flags`` given
    (argparse names, None = not given) and ``--set`` overrides; ``ConfigError`` names what is wrong."""
    path = path if path is not None else os.environ.get(CONFIG_ENV) or None
    values: dict[str, Any] = {}
    for name, value in (flags or {}).items():
        if value is not None:
            _put(values, EVERYDAY_FLAGS[name].split("."), value)
    return configure(Settings(), path, overrides, values)


def _put(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value
