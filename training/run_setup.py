"""What a localizer training run is set up from: its clip features, its text encoder, its model (fresh or from
a stage-1 checkpoint), its batches, its optimiser and learning-rate schedule, mixed precision, the features'
statistics, and the small records a run keeps of itself (weight digests, RNG states). :mod:`training.loop`
runs the session; these pieces have no state of their own."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from checkpoints import load_checkpoint
from checkpoints.metadata import CheckpointMetadata
from checkpoints.store import check_compatible
from models.grid import EGO4D_RATE_HZ
from models.localizer import Localizer
from models.registry import build_localizer, config_from_dict, localizer_class
from models.text_readings import DEFAULT_READING
from models.text_tokens import TextEncoderSpec
from training import distributed as ddp
from training.checkpoint_info import text_spec_from_metadata
from training.config import ConfigError, TrainConfig
from training.dataset import ClipStore, Collate, EpochBatchSampler, ItemOptions, QueryDataset, TrainingData
from training.features import ClipFeatureSource, DirectoryClipFeatures, LibraryClipFeatures
from training.text_features import TextFeatureCache


class TrainingError(ConfigError):
    """A run that cannot start or continue (nothing to train on, a resumed run with another config, ...)."""


def open_feature_source(config: TrainConfig) -> ClipFeatureSource:
    d = config.data
    if d.library:
        from indexing.library import Library

        root = Path(d.library)
        if not root.exists():
            raise TrainingError(f"There is no EgoRecall library at {root} (data.library).")
        return LibraryClipFeatures(Library.open(root, create=False, repair=False))
    if not d.features_dir:
        raise TrainingError("training needs features: data.library or data.features_dir.")
    return DirectoryClipFeatures(d.features_dir, key=d.features_key, layout=d.features_layout)


def source_rate(source: ClipFeatureSource) -> float:
    return float(getattr(source, "rate_hz", EGO4D_RATE_HZ))


def resolve_text_spec(
    config: TrainConfig, source: ClipFeatureSource, init_meta: CheckpointMetadata | None
) -> TextEncoderSpec:
    """Explicit text settings, else the stage-1 checkpoint's encoder, else the library's CLIP text tower; read
    as ``text.reading`` says, else as the stage-1 checkpoint was, else in the default reading."""
    t = config.text
    base = TextEncoderSpec()
    init_spec = text_spec_from_metadata(init_meta) if init_meta is not None else None
    reading = t.reading or (init_spec.reading if init_spec is not None else DEFAULT_READING)
    if t.kind or t.model:
        return TextEncoderSpec(
            kind=t.kind or "open_clip",
            model=t.model or base.model,
            pretrained=t.pretrained or (base.pretrained if (t.kind or "open_clip") == "open_clip" else "-"),
            reading=reading,
        )
    if init_spec is not None:
        return replace(init_spec, reading=reading)
    if isinstance(source, LibraryClipFeatures):
        library_spec = source.library.encoder_spec
        if library_spec is not None:
            return TextEncoderSpec.from_clip(library_spec, reading)
    return replace(base, reading=reading)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total`` (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


def feature_statistics(store: ClipStore, clip_uids) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation over every bin of the training clips (float64 sums)."""
    total: np.ndarray | float = 0.0
    sq: np.ndarray | float = 0.0
    count = 0
    for uid in clip_uids:
        x = np.asarray(store.get(uid).features, dtype=np.float64)
        total = total + x.sum(0)
        sq = sq + (x * x).sum(0)
        count += x.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def autocast_for(device: torch.device, amp: str) -> tuple[Callable[[], Any], torch.dtype | None]:
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext, None
    if amp == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return (lambda: torch.autocast("cuda", dtype=dtype)), dtype


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def load_init(config: TrainConfig, source: ClipFeatureSource) -> tuple[Localizer | None, CheckpointMetadata | None]:
    """The checkpoint a stage-2 run starts from (``init_from``), checked against the features it will read."""
    if not config.init_from:
        return None, None
    model, meta = load_checkpoint(config.init_from, directory=config.checkpoints_dir(), device="cpu")
    check_compatible(meta, source.key, source.dim, source_rate(source))
    if config.model.name and config.model.name != meta.model:
        raise TrainingError(
            f"The checkpoint {config.init_from} is a {meta.model} model, but the config asks for {config.model.name}."
        )
    return model, meta


def build_model(
    config: TrainConfig,
    source: ClipFeatureSource,
    text_dim: int,
    init_model: Localizer | None,
    init_meta: CheckpointMetadata | None,
) -> Localizer:
    """The model to train: the stage-1 checkpoint's (its config overridden by ``model.config``, if any), or a
    fresh one of ``model.name`` sized by the features and the text encoder; seeded alike on every process."""
    torch.manual_seed(config.seed)  # identical initial weights on every process
    if init_model is not None and init_meta is not None:
        if not config.model.config:
            return init_model.train()
        values = {**init_meta.model_config, **config.model.config}
        model = build_localizer(init_meta.model, config_from_dict(init_meta.model, values))
        model.load_state_dict(init_model.state_dict(), strict=True)
        return model
    localizer_class(config.model.name)
    values = {**config.model.config, "video_dim": source.dim, "query_dim": int(text_dim)}
    for key in ("video_dim", "query_dim"):
        if key in config.model.config and config.model.config[key] != values[key]:
            raise TrainingError(
                f"model.config.{key} = {config.model.config[key]} does not match the data "
                f"({values[key]}); leave it out, it is filled in from the features."
            )
    if values.get("aux_video_dim"):
        raise TrainingError(
            "Training with a second video stream (aux_video_dim) is not supported yet; "
            "the library's features are the model's only video input."
        )
    return build_localizer(config.model.name, values)


def training_loader(
    cfg: TrainConfig,
    info: ddp.DistInfo,
    model: Localizer,
    source: ClipFeatureSource,
    data: TrainingData,
    texts: TextFeatureCache,
    max_bins: int | None,
    resample_to: int | None,
    fit_norm: bool,
) -> tuple[DataLoader, EpochBatchSampler]:
    """This process's batches: its share of the global batch, augmented, in a seeded epoch order. With
    ``fit_norm`` (a fresh model) the model's video normalisation learns the training features' statistics."""
    world = info.world_size
    if cfg.optim.batch_size % world:
        raise TrainingError(f"optim.batch_size {cfg.optim.batch_size} must be divisible by the {world} processes.")
    d = cfg.data
    options = ItemOptions(
        train=True,
        jitter_factor=d.jitter_factor,
        jitter_shift=d.jitter_shift,
        max_bins=max_bins,
        resample_to=resample_to,
        crop_probability=d.crop_probability,
        crop_fraction=d.crop_fraction,
        splice_probability=d.splice_probability,
        speed_probability=d.speed_probability,
        speed_range=(float(d.speed_range[0]), float(d.speed_range[1])),
        negative_probability=d.negative_probability,
    )
    store = ClipStore(source, data.clips, resample_to, d.cache_clips)
    norm = getattr(model, "video_norm", None)
    if norm is not None and fit_norm:
        norm.fit(*feature_statistics(store, data.clips))
    dataset = QueryDataset(data.queries, store, texts, options, seed=cfg.seed)
    per_process = cfg.optim.batch_size // world
    sampler = EpochBatchSampler(len(dataset), per_process, seed=cfg.seed, rank=info.rank, world_size=world)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=Collate(cfg.optim.micro_batch_size),
        num_workers=d.num_workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=d.num_workers > 0,
    )
    return loader, sampler


def optimisation(cfg: TrainConfig, info: ddp.DistInfo, model: Localizer, total: int):
    """(the model as trained -- DDP-wrapped across processes --, AdamW, the schedule, the loss scaler,
    autocast)."""
    model.to(info.device)
    torch.manual_seed(cfg.seed * 1_000_003 + info.rank)  # dropout streams, distinct per process
    train_model: torch.nn.Module = model
    if info.distributed:
        cuda = info.device.type == "cuda"
        # With training negatives a process's last micro-batch may hold only questions without an answer,
        # whose loss never reaches the span heads: DDP must look for parameters a step did not use.
        train_model = DistributedDataParallel(
            model,
            device_ids=[info.device.index] if cuda else None,
            find_unused_parameters=cfg.data.negative_probability > 0,
        )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    warmup = int(round(cfg.optim.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.optim.schedule))
    autocast, amp_dtype = autocast_for(info.device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    return train_model, optimizer, scheduler, scaler, autocast
