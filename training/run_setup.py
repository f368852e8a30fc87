"""What a localizer training run is set up from: its clip features, its text encoder, its learning-rate
schedule, mixed precision, the features' statistics, and the small records a run keeps of itself (weight
digests, RNG states). :mod:`training.loop` runs the session; these pieces have no state of their own."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from checkpoints.metadata import CheckpointMetadata
from models.grid import EGO4D_RATE_HZ
from models.text_tokens import TextEncoderSpec
from training.checkpoint_info import text_spec_from_metadata
from training.config import ConfigError, TrainConfig
from training.dataset import ClipStore
from training.features import ClipFeatureSource, DirectoryClipFeatures, LibraryClipFeatures


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
    return DirectoryClipFeatures(d.features_dir, key=d.features_key, layout=d.features_layout)


def source_rate(source: ClipFeatureSource) -> float:
    return float(getattr(source, "rate_hz", EGO4D_RATE_HZ))


def resolve_text_spec(
    config: TrainConfig, source: ClipFeatureSource, init_meta: CheckpointMetadata | None
) -> TextEncoderSpec:
    """Explicit text settings, else the stage-1 checkpoint's encoder, else the library's CLIP text tower."""
    t = config.text
    if t.kind or t.model:
        base = TextEncoderSpec()
        return TextEncoderSpec(
            kind=t.kind or "open_clip",
            model=t.model or base.model,
            pretrained=t.pretrained or (base.pretrained if (t.kind or "open_clip") == "open_clip" else "-"),
        )
    if init_meta is not None:
        return text_spec_from_metadata(init_meta)
    if isinstance(source, LibraryClipFeatures):
        spec = source.library.encoder_spec
        if spec is not None:
            return TextEncoderSpec.from_clip(spec)
    return TextEncoderSpec()


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total`` (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


def feature_statistics(store: ClipStore, clip_uids) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation over every bin of the training clips (float64 sums)."""
    total, count, sq = None, 0, None
    for uid in clip_uids:
        x = np.asarray(store.get(uid).features, dtype=np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
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
