"""Encoder weights made by EgoRecall (narration pretraining): one open_clip state dict, safetensors + JSON.

Unlike a localizer checkpoint (a folder), a pretrained encoder is a plain weights file, because that is what
open_clip and the indexer take (``--model NAME --pretrained FILE``). Its identity travels in a sidecar of the
same stem, ``encoder.safetensors`` -> ``encoder.json``, which
:meth:`models.clip_encoder.ClipEncoder.load` reads to refuse the file for another architecture, and in the
safetensors header (``kind``, ``model``), which :func:`checkpoints.load_checkpoint` reads to refuse it as the
wrong kind. Nothing here ever unpickles.

Sidecar schema (format version 1)::

    {
      "kind": "open_clip-encoder", "format_version": 1,
      "model": "egorecall-small",                      # open_clip architecture: --model
      "base": {"pretrained": "none", "key": "egorecall-small/random-seed0"},   # where training started
      "image_size": 96, "embed_dim": 128, "context_length": 32,
      "data": {...narrations file, videos, pairs, windows...},
      "training": {"steps": 2000, "epochs": 41.7, "batch_size": 64, "world_size": 1, "loss": "egonce", ...},
      "metrics": {"t2v_R@1": ..., "t2v_R@5": ..., "chance_t2v_R@5": ..., ...},   # held-out retrieval
      "created": "2026-11-22T07:00:00+00:00", "egorecall_version": "0.1.0",
      "weights_sha256": "..."
    }
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from checkpoints.errors import CheckpointError, NotACheckpoint, WrongCheckpointKind
from checkpoints.files import fsync_path, sha256_file
from checkpoints.metadata import egorecall_version, utc_now

ENCODER_KIND = "open_clip-encoder"
ENCODER_FORMAT_VERSION = 1


def sidecar_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_encoder_weights(path: str | Path, model: torch.nn.Module, model_name: str, info: dict[str, Any]) -> dict:
    """Write ``model``'s state dict to ``path`` (.safetensors) and its sidecar; returns the sidecar.

    Both files are written under temporary names and renamed into place (weights first), so a reader never
    sees half a file; ``info`` holds the free-form parts (base, data, training, metrics, sizes).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"encoder weights must be saved as .safetensors, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_path = sidecar_path(path)
    tmp_w = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp_m = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(
            tensors,
            str(tmp_w),
            metadata={"kind": ENCODER_KIND, "model": model_name, "format_version": str(ENCODER_FORMAT_VERSION)},
        )
        sidecar = {
            "kind": ENCODER_KIND,
            "format_version": ENCODER_FORMAT_VERSION,
            "model": model_name,
            **info,
            "created": utc_now(),
            "egorecall_version": egorecall_version(),
            "weights_sha256": sha256_file(tmp_w),
        }
        tmp_m.write_text(json.dumps(sidecar, indent=2) + "\n")
        for f in (tmp_w, tmp_m):
            fsync_path(f)
        os.replace(tmp_w, path)
        os.replace(tmp_m, meta_path)
        fsync_path(path.parent)
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_m.unlink(missing_ok=True)
    return sidecar


def read_encoder_metadata(path: str | Path) -> dict:
    """The sidecar of EgoRecall encoder weights; raises if missing, unreadable or of another kind."""
    meta_path = sidecar_path(path)
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise NotACheckpoint(f"{path} has no {meta_path.name} sidecar; it was not made by EgoRecall") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotACheckpoint(f"{meta_path} cannot be read as JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != ENCODER_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise WrongCheckpointKind(f"{meta_path} describes a {kind!r}, not encoder weights ({ENCODER_KIND!r})")
    return meta


def record_encoder_calibration(path: str | Path, mode: str, calibration: dict[str, Any]) -> dict:
    """Store a calibration (``calibration[mode]``) in the sidecar of EgoRecall encoder weights, atomically."""
    meta = read_encoder_metadata(path)
    meta.setdefault("calibration", {})[mode] = dict(calibration)
    meta_path = sidecar_path(path)
    tmp = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    fsync_path(tmp)
    tmp.replace(meta_path)
    fsync_path(meta_path.parent)
    return meta
