"""The demo's settings, in one place: every size and step count of ``python -m app demo`` (:mod:`app.demo`).

Kept apart from the demo's stages so benchmarks and tests can describe a demo world (other sizes, a style, a
week of recording times) without reading how it is built.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from models.errors import EgoRecallError

DEMO_DIR = "demo"
DEMO_FILE = "demo.json"
RECENT_WEEK = "recent"
"""``DemoConfig.recorded_from``: the days just before the world is made (see :func:`recent_start`)."""
VIDEOS_PER_DAY = 3
"""A synthetic week's recordings a day (``SynthConfig.videos_per_day``'s default)."""
FIRST_HOUR = 8
"""The local hour of each day's first recording (the others follow ``SynthConfig.hours_between`` apart)."""


def recent_start(videos: int, now: float | None = None) -> str:
    """The UTC time (ISO, ``...Z``) a world of ``videos`` recordings, :data:`VIDEOS_PER_DAY` a day from
    :data:`FIRST_HOUR` local time, starts so that its last day is yesterday: the demo's library then reads like
    the past days of a diary, and "yesterday" or "last week" find its videos."""
    days = max(1, math.ceil(videos / VIDEOS_PER_DAY))
    today = datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    first = (today - timedelta(days=days)).replace(hour=FIRST_HOUR, minute=0, second=0, microsecond=0)
    return first.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DemoError(EgoRecallError):
    """The demo cannot run here (a library holding other videos, a demo folder built with other settings)."""


@dataclass(frozen=True)
class DemoConfig:
    """Every size and step count of the demo, in one place.

    The defaults follow the pretraining proof (``tests/test_pretrain_proof.py``: 20 videos of 120 s at 96 px /
    8 fps, egorecall-small from random weights, 120 steps of 64 pairs), which is what makes zero-shot answers
    meaningful, plus a small VSLNet trained on NLQ + NaQ queries of the world's training videos.

    Measured once on the 2-core development box (no GPU, one torch thread, another helper's benchmark on one
    core for half the run): world 13 s, pretraining 97 s, indexing 25 s, NaQ 0 s, VSLNet 157 s, answers 1 s --
    **293 s (4 min 53 s) in all**. Details and figures: ``bench/README.md``, section "Demo".
    """

    # the world
    videos: int = 20
    duration: float = 120.0
    size: int = 96
    fps: float = 8.0
    val_fraction: float = 0.4
    """Held-out videos: never seen by pretraining or VSLNet training; their NLQ queries are the val set."""
    max_queries_per_clip: int = 10
    seed: int = 1
    style: str = "home"
    """The world's style (:mod:`training.synthworld.style`): ``home``, another tuning house, a report style of
    the benchmarks, or a corpus of several houses of one family (``home+terrace+bungalow``)."""
    val_house: str | None = None
    """In a corpus of several houses, the one held out whole as the val split (``SynthConfig.val_style``): the
    checkpoint is chosen and its fusion weight fitted in a house it never trained on."""
    recorded_from: str | None = RECENT_WEEK
    """When the videos were recorded (written into the files as cameras do; ``SynthConfig.recorded_from``,
    three a day): :data:`RECENT_WEEK` -- the days before the world is made, fixed then and kept in
    ``demo.json`` --, an ISO time (the multi-day benchmark's fixed week), or None (no recording times: the
    benchmarks of answers within a video)."""
    world_workers: int = 2
    # the encoder
    model: str = "egorecall-small"
    pretrain_steps: int = 120
    pretrain_batch: int = 64
    pretrain_lr: float = 5e-4
    # the localizer
    localizer: str = "vslnet"
    localizer_config: dict[str, Any] = field(
        default_factory=lambda: {
            "dim": 64,
            "num_heads": 4,
            "num_conv_layers": 2,
            "dropout": 0.0,
            "max_positions": 256,
            "standardize_video": True,
        }
    )
    """Small and without dropout (the recipe was tuned so). Dropout on attention probabilities, now its own
    ``attention_dropout`` setting and off by default, forces PyTorch's unfused CPU attention: 3.5x slower here
    (measured: 55 vs 16 queries/s, one thread)."""
    train_steps: int = 300
    train_batch: int = 32
    train_lr: float = 1e-3
    eval_every: int = 100
    jitter_factor: float = 2.5
    augment: dict[str, Any] = field(default_factory=dict)
    """Training augmentations as ``data`` settings of the training config (``TrainConfig.data``), e.g.
    ``{"speed_probability": 0.5}``; none by default."""
    nlq_fraction: float = 1.0
    """Share of the training clips whose NLQ queries VSLNet sees (NaQ's few-shot setting); narrations are all
    kept. 1.0 uses every NLQ query."""
    finetune_steps: int = 0
    """NaQ's stage 2 (NLQ only, from the stage-1 best checkpoint); 0 skips it."""
    finetune_lr: float = 1e-4
    # the question
    question: str = "where did I put the keys?"
    k: int = 5
    threads: int | None = 1
    """torch CPU threads while the demo runs (restored afterwards; None leaves them as they are). One thread,
    because on a 2-core machine shared with other work two OpenMP threads mostly wait for each other: VSLNet
    training ran at 4 queries/s with two threads and 16 with one (same load), pretraining likewise
    (``bench/README.md``). Work on a GPU is not affected."""

    @classmethod
    def quick(cls) -> DemoConfig:
        """A much smaller demo for tests: every stage runs for real, on a few short videos."""
        # Seed 7: two of its four short videos put the keys down (most 4-video worlds never do).
        return cls(
            videos=4,
            duration=40.0,
            val_fraction=0.25,
            max_queries_per_clip=6,
            seed=7,
            world_workers=1,
            pretrain_steps=6,
            pretrain_batch=16,
            train_steps=8,
            train_batch=8,
            eval_every=4,
            finetune_steps=4,
            localizer_config={
                "dim": 32,
                "num_heads": 2,
                "num_conv_layers": 1,
                "dropout": 0.0,
                "max_positions": 128,
                "standardize_video": True,
            },
        )

    def resolved(self, recorded: dict[str, Any] | None = None, now: float | None = None) -> DemoConfig:
        """This config with :data:`RECENT_WEEK` made a time: the one a demo folder already recorded
        (``recorded``: its ``demo.json`` config; a demo made before recording times keeps none), else the days
        before ``now``."""
        if self.recorded_from != RECENT_WEEK:
            return self
        if recorded is not None:
            return replace(self, recorded_from=recorded.get("recorded_from"))
        return replace(self, recorded_from=recent_start(self.videos, now))

    def world_settings(self) -> dict[str, Any]:
        return {
            "n_videos": self.videos,
            "seed": self.seed,
            "duration": self.duration,
            "size": self.size,
            "fps": self.fps,
            "val_fraction": self.val_fraction,
            "max_queries_per_clip": self.max_queries_per_clip,
            "style": self.style,
            "recorded_from": self.recorded_from,
            "val_style": self.val_house,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def defining(self) -> dict[str, Any]:
        """What the files under ``<library>/demo`` depend on (how it runs -- threads, workers -- excluded)."""
        d = self.to_dict()
        for k in ("threads", "world_workers", "question", "k"):
            d.pop(k)
        if d["style"] == "home":  # libraries made before styles existed recorded none
            d.pop("style")
        if d["recorded_from"] is None:
            d.pop("recorded_from")
        if d["val_house"] is None:
            d.pop("val_house")
        if not d["augment"]:
            d.pop("augment")
        return d
