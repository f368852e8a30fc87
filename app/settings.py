"""Where the app keeps its data and which encoder it uses: the defaults, and the environment that moves them.

Command-line flags win over environment variables, which win over these defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from models.clip_encoder import EncoderSpec

DEFAULT_LIBRARY = Path("data/library")


def default_library_dir() -> Path:
    return Path(os.environ.get("EGORECALL_LIBRARY", DEFAULT_LIBRARY)).expanduser()


@dataclass
class Settings:
    library: Path = field(default_factory=default_library_dir)
    encoder: EncoderSpec = field(default_factory=EncoderSpec.from_env)
    device: str | None = field(default_factory=lambda: os.environ.get("EGORECALL_DEVICE") or None)
    default_checkpoint: str | None = field(default_factory=lambda: os.environ.get("EGORECALL_CHECKPOINT_URL") or None)
    """A published checkpoint (``checkpoints.release``: URL, ``hf:ORG/REPO``) that ``auto`` fetches on first use
    when the library has no compatible checkpoint of its own."""

    def __post_init__(self) -> None:
        self.library = Path(self.library).expanduser()  # scripts pass strings

    @property
    def checkpoints_dir(self) -> Path:
        return Path(os.environ.get("EGORECALL_CHECKPOINTS", self.library / "checkpoints")).expanduser()

    @property
    def clips_dir(self) -> Path:
        return self.library / "clips"
