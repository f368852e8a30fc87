"""Adapt to my library: fine-tune a checkpoint on the library's own pseudo-narrations, with no labels.

A checkpoint trained on a corpus answers in homes it never saw (``bench_transfer.py``); this takes it the rest of
the way towards the user's own: the library narrates itself (:mod:`training.pseudo_narrations`), NaQ turns the
narrations into queries, and a short stage-2 run fine-tunes the checkpoint on them. The result is a new
checkpoint (``<base>-adapted``) beside the base, listed like any other; it keeps the base's fusion weight, which
was chosen on the base's validation data (there is none here). Whether it helps is measured on report worlds
(``bench/bench_transfer.py``, the ``adapted`` rows), and ``auto`` keeps choosing by validation merit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from models.errors import EgoRecallError
from training.pseudo_narrations import PseudoNarrationConfig

if TYPE_CHECKING:
    from app.answering.base import AnswerContext
    from app.settings import Settings
    from indexing.library import Library, VideoRecord
    from models.clip_encoder import ClipEncoder
    from training.config import TrainConfig


class LibraryService(Protocol):
    """What adapting reads of the service (:class:`app.service.EgoRecall` is one)."""

    settings: Settings

    @property
    def library(self) -> Library: ...

    def videos(self) -> list[VideoRecord]: ...

    def encoder(self) -> ClipEncoder: ...

    def answer_context(self) -> AnswerContext: ...


ADAPT_DIR = "adapt"
"""Inside the library: one folder per adaptation (its narrations, NaQ file and text cache)."""


class NothingToAdapt(EgoRecallError):
    """No checkpoint to adapt, no video to adapt to, or nothing in the videos to narrate."""


@dataclass(frozen=True)
class AdaptSettings:
    """The fine-tune's budget; the defaults are a few minutes on two CPU cores for a small library."""

    steps: int = 200
    batch_size: int = 32
    lr: float = 2e-4
    """A tenth of a corpus run's: the pseudo-narrations are noisy, the base checkpoint is what they adjust."""
    narration: PseudoNarrationConfig = field(default_factory=PseudoNarrationConfig)
    """How the library narrates itself (:class:`training.pseudo_narrations.PseudoNarrationConfig`)."""


def adaptation_config(
    service: LibraryService, checkpoint: str | None = None, settings: AdaptSettings = AdaptSettings(), name: str = ""
) -> TrainConfig:
    """Write this library's pseudo-narrations and NaQ file, and return the fine-tune's training config.

    ``checkpoint`` defaults to the one ``auto`` fuses with. Raises :class:`NothingToAdapt` when there is none,
    when the library holds no video, or when no object stands out in any of them."""
    from app.answering.auto import best_checkpoint
    from training.config import TrainConfig
    from training.pseudo_narrations import VideoFeatures, adaptation_files

    base = checkpoint
    if base is None:
        best = best_checkpoint(service.answer_context())
        if best is None:
            raise NothingToAdapt(
                "there is no checkpoint for this library's features to adapt; train one (Train tab, `train`) or "
                "install a published one (`checkpoints fetch`)"
            )
        base = best.name
    records = service.videos()
    if not records:
        raise NothingToAdapt("the library holds no videos to adapt to; add some first")
    library = service.library
    videos = [VideoFeatures(Path(r.name).stem, library.features(r.id), r.rate_hz, r.duration) for r in records]
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"  # two adaptations in one second stay apart
    folder = Path(service.settings.library) / ADAPT_DIR / stamp
    try:
        data = adaptation_files(videos, service.encoder(), folder, settings.narration)
    except ValueError as exc:
        raise NothingToAdapt(f"cannot adapt to this library: {exc}") from None
    values = {
        "name": name or f"{Path(base).name}-adapted-{stamp}",
        "stage": "finetune",
        "init_from": base,
        "data": {
            "train": [str(data.naq_file)],
            "val": None,
            "library": str(service.settings.library),
            "narrations": True,
        },
        "text": {"cache_dir": str(folder / "text_cache")},
        "optim": {
            "lr": settings.lr,
            "batch_size": settings.batch_size,
            "steps": settings.steps,
            "warmup_fraction": 0.05,
        },
        "output": {"runs_dir": str(Path(service.settings.library) / "runs"), "tensorboard": False},
    }
    config = TrainConfig.from_dict(values, "adaptation")
    config.validate()
    return config
