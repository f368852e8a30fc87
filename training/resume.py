"""May a snapshot be resumed with this config? What may differ (how a run runs, not what it learns), and how
a config recorded by an earlier EgoRecall is compared with today's."""

from __future__ import annotations

from typing import Any

from training.config import TrainConfig

RESUMABLE_CHANGES = (
    "device",
    "threads",
    "data.num_workers",
    "text.cache_dir",
    "text.batch_size",
    "eval.every",
    "eval.query_batch",
    "output.snapshot_every",
    "output.log_every",
    "output.tensorboard",
    "output.checkpoints_dir",
)
"""Config fields that may differ when a run is resumed (how it runs, not what it learns)."""


def with_defaults(recorded: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """A recorded config with the fields it predates filled in from today's defaults: a field added by a later
    EgoRecall (with a default that keeps the old behaviour) must not make an earlier run look different."""
    defaults = TrainConfig().to_dict() if defaults is None else defaults
    out = dict(recorded)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict) and k != "model":
            out[k] = with_defaults(out[k], v)
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        name = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict) and name not in ("model.config",):
            keys += config_differences(a, b, f"{name}.")
        elif a != b:
            keys.append(name)
    return keys
