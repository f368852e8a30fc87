"""Every setting of narration pretraining, with its default, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from models.config_files import configure
from models.errors import EgoRecallError

PRETRAIN_CONFIG_DIR = Path(__file__).parents[1] / "configs" / "pretrain"
"""One YAML per pretraining experiment (``--config NAME.yaml``)."""


class PretrainError(EgoRecallError):
    """Pretraining cannot start or go on: bad settings, no usable data, a run that cannot be resumed."""


VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
"""Files ``<video_uid><suffix>`` in the videos folder are the narrated videos."""


@dataclass
class PretrainConfig:
    """A pretraining run: data, model, optimisation, bookkeeping. Read like a training config
    (:func:`load_pretrain_config`: defaults, a YAML file, the command's everyday flags, ``--set key=value``)."""

    videos_dir: Path | None = None
    narrations: Path | None = None
    """Ego4D narration.json or an EgoClip table (required)."""
    out: Path | None = None
    """The encoder weights to write (``.safetensors``, required); the sidecar is ``out`` with ``.json``."""
    model: str = "egorecall-small"
    pretrained: str = "none"
    """Starting weights: an open_clip tag, a weights file, or ``none`` (random, seeded like the indexer's)."""
    cache_dir: Path | None = None
    """Decoded frames (uint8 at the model's resolution), reused across runs; default ``<out>.train/frames``."""
    work_dir: Path | None = None
    """Resume state and the JSONL log; default ``<out stem>.train`` beside ``out``."""

    # data
    use_given_windows: bool = True
    """EgoClip's clip_start/clip_end where the file has them; else EgoVLP's window rule."""
    alpha: float | None = None
    """EgoVLP's alpha (mean narration gap over videos); None computes it from the file."""
    frames_per_window: int = 4
    """Frames decoded and cached per narration window (evenly spaced inside it)."""
    val_fraction: float = 0.1
    """Share of videos held out (whole videos) for the retrieval metrics; 0 for none."""
    val_videos: tuple[str, ...] = ()
    """Explicit held-out video uids (instead of a random ``val_fraction``)."""
    max_val_moments: int = 2000

    # batches and loss
    batch_size: int = 64
    """Pairs per process per step."""
    moments_per_video: int = 4
    """Scene-aware negatives: each batch is filled with groups of this many moments of one video."""
    frames_per_clip: int = 1
    """Frames drawn per pair per step (inside its window); their embeddings are averaged. 1 trains text
    against single frames -- what the library's per-frame index compares questions with."""
    action_aware: bool = True
    augment: bool = True
    """Random resized crops (scale 0.6-1). No flips or colour changes: words like "left" and colours of
    objects must keep their meaning."""

    # optimisation
    steps: int | None = None
    epochs: float | None = None
    """Length: ``steps`` optimiser steps, or ``epochs`` passes over the training pairs (default 10 epochs)."""
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0

    # bookkeeping
    eval_every: int = 200
    log_every: int = 10
    save_every: int = 200
    """Steps between resume states (also written when the run ends or is interrupted)."""
    resume: bool = False
    overwrite: bool = False
    device: str | None = None
    amp: bool = True
    """bf16 (or fp16 with loss scaling) autocast on CUDA; CPU always runs fp32."""
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("videos_dir", "narrations", "out", "cache_dir", "work_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value).expanduser())
        self.val_videos = tuple(self.val_videos)

    def _given(self, name: str) -> Path:
        value = getattr(self, name)
        if value is None:
            raise PretrainError(f"pretraining needs --{name.replace('_', '-')}.")
        return value

    @property
    def out_file(self) -> Path:
        """:attr:`out`, which every run needs (:meth:`validate` says so first)."""
        return self._given("out")

    @property
    def videos_folder(self) -> Path:
        """:attr:`videos_dir`, which every run needs."""
        return self._given("videos_dir")

    @property
    def narrations_file(self) -> Path:
        """:attr:`narrations`, which every run needs."""
        return self._given("narrations")

    @property
    def resolved_work_dir(self) -> Path:
        return self.work_dir or self.out_file.with_name(self.out_file.stem + ".train")

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.resolved_work_dir / "frames"

    def validate(self) -> None:
        missing = [f"--{n.replace('_', '-')}" for n in ("videos_dir", "narrations", "out") if getattr(self, n) is None]
        if missing:
            raise PretrainError(f"pretraining needs {', '.join(missing)}.")
        problems = []
        if self.out_file.suffix != ".safetensors":
            problems.append(f"--out must name a .safetensors file (got {self.out_file.name})")
        if self.steps is not None and self.epochs is not None:
            problems.append("give --steps or --epochs, not both")
        if self.steps is not None and self.steps < 1:
            problems.append(f"--steps must be at least 1 (got {self.steps})")
        if self.epochs is not None and not self.epochs > 0:
            problems.append(f"--epochs must be positive (got {self.epochs})")
        if self.batch_size < 2:
            problems.append(
                f"--batch-size must be at least 2 (contrastive learning needs negatives; got {self.batch_size})"
            )
        if not 1 <= self.moments_per_video <= self.batch_size:
            problems.append(f"--moments-per-video must be between 1 and the batch size (got {self.moments_per_video})")
        if not 1 <= self.frames_per_clip <= self.frames_per_window:
            problems.append(
                f"--frames-per-clip must be between 1 and --frames-per-window "
                f"({self.frames_per_window}; got {self.frames_per_clip})"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")
        if not self.lr > 0:
            problems.append(f"--lr must be positive (got {self.lr})")
        for name in ("eval_every", "log_every", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if not self.videos_folder.is_dir():
            problems.append(f"the videos folder {self.videos_dir} does not exist")
        if problems:
            raise PretrainError("; ".join(problems) + ".")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        d["val_videos"] = list(self.val_videos)
        return d


DEFAULT_EPOCHS = 10.0
RUN_DEFINING = (
    "model",
    "pretrained",
    "use_given_windows",
    "alpha",
    "frames_per_window",
    "val_fraction",
    "val_videos",
    "batch_size",
    "moments_per_video",
    "frames_per_clip",
    "action_aware",
    "augment",
    "steps",
    "epochs",
    "lr",
    "weight_decay",
    "warmup_fraction",
    "grad_clip",
    "seed",
)
"""Settings a resumed run must share with the run it continues (else its batches or schedule would differ)."""


def load_pretrain_config(path: str | Path | None = None, overrides=(), values: dict | None = None) -> PretrainConfig:
    """A pretraining config read as every config is (:func:`models.config_files.configure`), validated; a bare
    file name is also looked for in ``training/configs/pretrain`` (one file per experiment)."""
    config = configure(PretrainConfig(), path, overrides, values, search_dir=PRETRAIN_CONFIG_DIR)
    config.validate()
    return config


__all__ = [
    "PretrainConfig",
    "PretrainError",
    "VIDEO_SUFFIXES",
    "DEFAULT_EPOCHS",
    "RUN_DEFINING",
    "load_pretrain_config",
]
