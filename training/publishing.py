"""Publishing a training run's checkpoints: their metadata and a name the app lists (``<run>-best``,
``<run>-final``), once per step even when a killed run is resumed."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from checkpoints import save_checkpoint
from checkpoints.errors import CheckpointExists
from checkpoints.metadata import CheckpointMetadata, FeatureEncoderInfo
from models.registry import build_localizer
from training.checkpoint_info import text_encoder_info
from training.run_setup import TrainingError, source_rate
from training.span_steps import RunContext

PUBLISHED_FILE = "published.json"


def checkpoint_metadata(
    c: RunContext, run_dir: Path, best: dict | None, step: int, metrics: dict[str, float], which: str
) -> CheckpointMetadata:
    """The metadata a published checkpoint of this run carries: its data, inference settings and lineage."""
    cfg = c.cfg
    source = c.source
    data = dict(c.data.summary)
    data.update(
        {
            "val_file": cfg.data.val,
            "val_queries": len(c.validator.queries) if c.validator else 0,
            "run": cfg.name,
            "run_dir": str(run_dir),
            "which": which,
            "step": step,
            "total_steps": c.total,
            "best_step": best["step"] if best else None,
            "jitter_factor": cfg.data.jitter_factor if cfg.uses_narrations else None,
            "long_clips": cfg.data.long_clips,
            "max_bins": c.max_bins,
            "inference": {
                "resample_to": c.resample_to,
                "max_span_s": c.max_span_s,
                "length_prior": None if c.length_prior is None else c.length_prior.to_dict(),
                "grid": "resampled" if c.resample_to else "native",
            },
            "init_from": (
                {"checkpoint": str(cfg.init_from), "stage": c.init_meta.stage, "metrics": c.init_meta.metrics}
                if c.init_meta is not None
                else None
            ),
            "config": cfg.to_dict(),
        }
    )
    return CheckpointMetadata(
        feature_encoder=FeatureEncoderInfo(source.key, int(source.dim), source_rate(source)),
        text_encoder=text_encoder_info(c.text_spec, c.encoder),
        stage=cfg.stage,
        data=data,
        metrics={k: float(v) for k, v in metrics.items()},
        notes=f"EgoRecall training run '{cfg.name}' ({which} weights, step {step} of {c.total}).",
    )


def publish_checkpoint(
    c: RunContext, run_dir: Path, which: str, weights: dict[str, torch.Tensor], step: int, meta: CheckpointMetadata, log
) -> Path:
    """Save one checkpoint as ``<name>-<which>`` (``-2``, ``-3``... if a continued run published before); a
    run resumed after publishing finds it in ``published.json`` instead of publishing it twice."""
    published_path = run_dir / PUBLISHED_FILE
    published = json.loads(published_path.read_text()) if published_path.is_file() else {}
    key = f"{which}@{step}"
    if key in published and Path(published[key]).is_dir():
        return Path(published[key])
    cfg = c.cfg
    model = build_localizer(c.model.name, c.model.config)
    model.load_state_dict(weights, strict=True)
    directory = cfg.checkpoints_dir()
    base = f"{cfg.name}-{which}"
    for attempt in range(1, 1000):
        name = base if attempt == 1 else f"{base}-{attempt}"
        try:
            path = save_checkpoint(directory, model, meta, name=name)
            break
        except CheckpointExists:
            continue
    else:
        raise TrainingError(f"no free checkpoint name for {base} in {directory}")
    published[key] = str(path)
    tmp = published_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(published, indent=1))
    tmp.replace(published_path)
    log("checkpoint", step, which=which, name=path.name, path=str(path))
    return path
