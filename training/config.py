"""Training configuration: one dataclass tree holding every default, overridden by a YAML/JSON file and by
``key=value`` pairs from the command line.

One file per experiment lives in ``training/configs/`` (ActionFormer style). A file only names what differs
from the defaults below; ``--set optim.lr=1e-4 data.train=[a.json,b.json]`` changes single fields. Any key
that is not a field here is refused with its full dotted name, so a typo can never silently train the
default. Relative paths in a config are relative to the working directory, as on the command line.

Stages (NaQ's recipe):

* ``joint`` -- stage 1: NLQ and narration queries together, large batches;
* ``finetune`` -- stage 2: starts from a stage-1 checkpoint (``init_from``) and trains on NLQ queries only;
* ``nlq`` -- NLQ queries only, from scratch (the baseline NaQ is compared with).

Few-shot runs keep the NLQ queries of a seeded share of clips (``data.nlq_fraction``); ``0`` with stage
``joint`` is NaQ's "zero-shot NLQ" (narrations only).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.config_files import ConfigError, apply_values, plain
from models.config_files import configure as _configure
from models.text_readings import TEXT_READINGS
from models.windows import LENGTH_PRIOR_WEIGHT

STAGES = ("joint", "finetune", "nlq")
AMP_MODES = ("auto", "bf16", "fp16", "off")
LONG_CLIP_MODES = ("crop", "resample")
SCHEDULES = ("linear", "constant")
CONFIG_DIR = Path(__file__).with_name("configs")


# ---------------------------------------------------------------------------------------------- sections
@dataclass
class ModelSection:
    name: str = "vslnet"
    """Registered localizer (``models.registry.localizer_names()``)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Overrides of the model's config dataclass. ``video_dim``/``query_dim`` are filled in from the
    feature source and the text encoder; a stage-2 run takes the whole config from its checkpoint."""


@dataclass
class DataSection:
    train: list[str] = field(default_factory=list)
    """NLQ-format training files: Ego4D NLQ train and/or the output of ``python -m app naq``."""
    repeat: dict[str, int] = field(default_factory=dict)
    """Times each query of a training file is used per epoch, by the file's path as listed in ``train``
    (others: once). A user's 20 corrections beside a NaQ file of thousands of queries would otherwise be 1 %
    of what the model sees."""
    val: str | None = None
    """Annotated NLQ file evaluated every ``eval.every`` steps (best checkpoint by ``eval.metric``)."""
    library: str | None = None
    """Read clip features from this EgoRecall library (clips are found by ``video_uid`` = file name)."""
    features_dir: str | None = None
    """... or from a folder of Ego4D-style feature files: per clip (``{clip_uid}.npy``/``.pt``) or per video
    (``{video_uid}.pt``, Ego4D's downloads; clips are cut from them), see ``features_layout``."""
    features_layout: str = "auto"
    """``auto`` (each clip's own file, else its video's), ``clip`` or ``video``."""
    features_key: str | None = None
    """Identity of the encoder that made ``features_dir`` (recorded in checkpoints; default from the folder)."""
    nlq_fraction: float = 1.0
    """Few-shot: share of NLQ clips whose NLQ queries are used (seeded by ``few_shot_seed``)."""
    few_shot_seed: int = 0
    narrations: bool | None = None
    """Train on narration queries too; None = the stage's default (``joint``: yes, others: no)."""
    jitter_factor: float = 2.5
    """NaQ's temporal response jittering of narration answers (F; 1 = off). Training only."""
    jitter_shift: bool = True
    long_clips: str = "crop"
    """Clips longer than ``max_bins``: ``crop`` (a random window holding the answer, native grid -- inference
    slides windows over the native grid) or ``resample`` (EVERY clip averaged to ``resample_to`` bins, as the
    reference code does; inference must resample too, which the checkpoint records)."""
    max_bins: int | None = None
    """Longest training sequence; None = the model's ``max_positions``."""
    resample_to: int | None = None
    """With ``long_clips: resample``: bins per clip (VSLNet's references: 128; ReLER's: 600)."""
    crop_probability: float = 0.0
    """ReLER's variable-length crop (a random 40-80% of the clip holding the answer), per item."""
    crop_fraction: tuple[float, float] = (0.4, 0.8)
    splice_probability: float = 0.0
    """ReLER's splicing of the clip into another training clip's features, per item."""
    speed_probability: float = 0.0
    """Play the clip faster or slower (features resampled in time, the answer with them), per item: a model
    trained in a few homes otherwise learns their pace (``training.augment.change_speed``)."""
    speed_range: tuple[float, float] = (0.7, 1.4)
    """Slowest and fastest stretch (1.4: every action lasts 1.4 times as long)."""
    negative_probability: float = 0.0
    """Share of training items asked of a clip of another video that never names the question's object or
    place (by its own queries and narrations), with no answer there: the model learns to keep every highlight
    low, which is what "no good match" reads (``training.dataset``)."""
    drop_empty: bool = True
    """Drop (almost) empty answers from training, as the references do (evaluation keeps them)."""
    cache_clips: bool = True
    """Keep every clip's features in memory after the first read."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process)."""


@dataclass
class TextSection:
    kind: str | None = None
    """``open_clip`` or ``hf``; None = the open_clip text tower of the library's video encoder."""
    model: str | None = None
    """open_clip architecture, or for ``hf`` a local transformers folder (e.g. bert-base-uncased)."""
    pretrained: str | None = None
    reading: str | None = None
    """How texts are read before encoding (``models.text_readings.TEXT_READINGS``: ``question`` reads them as the
    question grammar does, ``plain`` only cleans them); None = the default reading, or the init checkpoint's."""
    cache_dir: str | None = None
    """Keep token features on disk here (one folder per encoder key) so NaQ's many narrations are encoded
    once across runs; None = memory only."""
    batch_size: int = 256


@dataclass
class OptimSection:
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_fraction: float = 0.025
    """Share of the steps with a linear warm-up from 0 to ``lr``."""
    schedule: str = "linear"
    """After warm-up: ``linear`` decay to 0 at the last step, or ``constant``."""
    grad_clip: float | None = 1.0
    """Max global gradient norm; None = no clipping."""
    batch_size: int = 32
    """Queries per optimiser step, over all processes."""
    micro_batch_size: int | None = None
    """Queries per forward pass and process (gradient accumulation); None = the whole per-process batch."""
    epochs: float | None = None
    steps: int | None = None
    """Length of the run: ``steps`` wins over ``epochs``; one of them is required."""


@dataclass
class EvalSection:
    every: int = 0
    """Evaluate on ``data.val`` every N steps (0 = once per epoch); always after the last step."""
    metric: str = "R@1@0.3"
    """Which figure picks the best checkpoint."""
    k: int = 5
    max_span_s: float | None = None
    """Longest answer a prediction may be, in seconds; None = the 99th percentile of the training answers'
    lengths (:func:`training.dataset.answer_span_limit`): the model learnt to give answers of those lengths,
    and a longer span is one of its start/end mistakes (bench/README.md: 120 s -> the p99 raised VSLNet's
    R@1@0.3 by 6 points). It is stored in the checkpoint, so the app answers as validation scored."""
    length_prior_weight: float = LENGTH_PRIOR_WEIGHT
    """Spans are weighed by how long the training answers were (a log-normal fitted on the NLQ answers,
    :class:`models.windows.LengthPrior`, to this power), in validation and, stored in the checkpoint, in the
    app; 0 = p_start * p_end alone."""
    query_batch: int = 64
    fit_answering: bool = True
    """After the run, fit each published checkpoint for answering on ``data.val`` (when its features are a
    library's, so its CLIP is at hand): the fusion weight with zero-shot and the confidence calibration, stored
    in the checkpoint's metadata, so ``auto`` answers as validation chose (``app.answering.tuning``)."""


@dataclass
class OutputSection:
    runs_dir: str = "data/runs"
    """The run folder is ``runs_dir/<name>``: config, JSONL log, TensorBoard, resumable snapshots."""
    checkpoints_dir: str | None = None
    """Where ``<name>-best`` and ``<name>-final`` are published; None = ``<library>/checkpoints`` when
    training on a library, else ``<run folder>/checkpoints`` (the CLI and the app pass the app's folder)."""
    snapshot_every: int = 200
    """Write a resumable training-state snapshot every N steps (and at every evaluation)."""
    log_every: int = 10
    tensorboard: bool = True
    """Also log to TensorBoard when ``torch.utils.tensorboard`` can be imported."""


@dataclass
class TrainConfig:
    name: str = ""
    """Run name (run folder, checkpoint names); the CLI defaults it to the config file's stem."""
    stage: str = "joint"
    init_from: str | None = None
    """Checkpoint (name in the checkpoints folder, or path) whose weights start this run; required for
    ``finetune``."""
    seed: int = 0
    device: str | None = None
    """``cpu``/``cuda``/``cuda:1``; None = CUDA when available (under torchrun: the local rank's GPU)."""
    amp: str = "auto"
    """Mixed precision on GPU: ``auto`` (bf16 where supported, else fp16), ``bf16``, ``fp16``, ``off``.
    Always off on CPU."""
    threads: int | None = None
    """torch CPU threads (None = leave as is)."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    output: OutputSection = field(default_factory=OutputSection)

    # ------------------------------------------------------------------ derived
    @property
    def uses_narrations(self) -> bool:
        if self.data.narrations is not None:
            return self.data.narrations
        return self.stage == "joint"

    def run_dir(self) -> Path:
        return Path(self.output.runs_dir) / self.name

    def checkpoints_dir(self) -> Path:
        if self.output.checkpoints_dir:
            return Path(self.output.checkpoints_dir)
        if self.data.library:
            return Path(self.data.library) / "checkpoints"
        return self.run_dir() / "checkpoints"

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use (cheap checks only; files are checked when
        the run opens them)."""
        d, o, e, out = self.data, self.optim, self.eval, self.output
        problems: list[str] = []

        def need(cond: bool, message: str) -> None:
            if not cond:
                problems.append(message)

        need(bool(self.name), "name must be set (the run folder and checkpoint names come from it)")
        need(
            all(c.isalnum() or c in "._-" for c in self.name) and not self.name.startswith("."),
            f"name '{self.name}' may only hold letters, digits, '.', '_' and '-'",
        )
        need(self.stage in STAGES, f"stage must be one of {', '.join(STAGES)}, not '{self.stage}'")
        need(
            self.stage != "finetune" or bool(self.init_from),
            "stage finetune needs init_from (the stage-1 checkpoint to start from)",
        )
        need(self.amp in AMP_MODES, f"amp must be one of {', '.join(AMP_MODES)}, not '{self.amp}'")
        need(self.threads is None or self.threads >= 1, "threads must be at least 1")
        need(bool(d.train), "data.train must list at least one NLQ-format training file")
        for path, times in d.repeat.items():
            need(str(path) in map(str, d.train), f"data.repeat names {path}, which is not in data.train")
            whole = isinstance(times, int) and not isinstance(times, bool)
            need(whole and times >= 1, f"data.repeat of {path} must be a whole number of at least 1, not {times!r}")
        need(bool(d.library) != bool(d.features_dir), "set exactly one of data.library and data.features_dir")
        need(0.0 <= d.nlq_fraction <= 1.0, f"data.nlq_fraction must lie in [0, 1], not {d.nlq_fraction}")
        need(d.jitter_factor >= 1.0, f"data.jitter_factor must be at least 1 (1 = no jittering), not {d.jitter_factor}")
        need(d.long_clips in LONG_CLIP_MODES, f"data.long_clips must be one of {', '.join(LONG_CLIP_MODES)}")
        need(
            d.long_clips != "resample" or (d.resample_to or 0) >= 1,
            "data.long_clips resample needs data.resample_to (bins per clip)",
        )
        need(d.max_bins is None or d.max_bins >= 2, "data.max_bins must be at least 2")
        lo, hi = d.crop_fraction
        need(0.0 < lo <= hi <= 1.0, f"data.crop_fraction must satisfy 0 < low <= high <= 1, not {d.crop_fraction}")
        slow, fast = d.speed_range
        need(0.0 < slow <= fast <= 4.0, f"data.speed_range must satisfy 0 < low <= high <= 4, not {d.speed_range}")
        for name in ("crop_probability", "splice_probability", "speed_probability", "negative_probability"):
            value = getattr(d, name)
            need(0.0 <= value <= 1.0, f"data.{name} must lie in [0, 1], not {value}")
        need(d.num_workers >= 0, "data.num_workers cannot be negative")
        need(self.text.batch_size >= 1, "text.batch_size must be positive")
        readings = ", ".join(sorted(TEXT_READINGS))
        need(self.text.reading in (None, *TEXT_READINGS), f"text.reading must be one of {readings}")
        need(o.lr > 0 and math.isfinite(o.lr), f"optim.lr must be a positive number, not {o.lr}")
        need(o.weight_decay >= 0, "optim.weight_decay cannot be negative")
        need(0.0 <= o.warmup_fraction < 1.0, "optim.warmup_fraction must lie in [0, 1)")
        need(o.schedule in SCHEDULES, f"optim.schedule must be one of {', '.join(SCHEDULES)}")
        need(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip must be positive (or null for none)")
        need(o.batch_size >= 1, "optim.batch_size must be positive")
        need(o.micro_batch_size is None or o.micro_batch_size >= 1, "optim.micro_batch_size must be positive")
        need(o.steps is not None or o.epochs is not None, "set optim.steps or optim.epochs (the run's length)")
        need(o.steps is None or o.steps >= 1, "optim.steps must be positive")
        need(o.epochs is None or o.epochs > 0, "optim.epochs must be positive")
        need(e.every >= 0, "eval.every cannot be negative")
        need(e.k >= 1 and e.query_batch >= 1, "eval.k and eval.query_batch must be positive")
        need(
            math.isfinite(e.length_prior_weight) and e.length_prior_weight >= 0,
            "eval.length_prior_weight must be a number >= 0",
        )
        need(
            out.snapshot_every >= 1 and out.log_every >= 1,
            "output.snapshot_every and output.log_every must be positive",
        )
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems) + ".")

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        config = cls()
        apply_values(config, values, source)
        return config


def configure(target: Any, path: str | Path | None = None, overrides: Iterable[str] = (), values=None) -> Any:
    """:func:`models.config_files.configure`, looking for bare names in ``training/configs``."""
    return _configure(target, path, overrides, values, search_dir=CONFIG_DIR)


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), values: Mapping[str, Any] | None = None
) -> TrainConfig:
    """A training config (:func:`configure` over :class:`TrainConfig`); the name defaults to the file's stem."""
    config = configure(TrainConfig(), path, (), None)
    if path is not None and not config.name:
        config.name = Path(path).stem
    configure(config, None, overrides, values)
    config.validate()
    return config
