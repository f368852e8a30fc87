"""May a snapshot be resumed with this config? What may differ (how a run runs, not what it learns), how a
config recorded by an earlier EgoRecall is compared with today's, a finished run found again, and the random
streams a snapshot restores."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from training import distributed as ddp
from training.config import TrainConfig
from training.run_result import RESULT_FILE, TrainResult
from training.run_setup import TrainingError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
"""The run's config, written in its folder when it starts."""

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


def changed_settings(recorded: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings in which ``config`` differs from a recorded run's in what the run learns (paths compared
    where the run's folder now is: see :func:`moved`)."""
    old = with_defaults(moved(recorded, config.output.runs_dir)) if recorded else {}
    return [k for k in config_differences(old, config.to_dict()) if not k.startswith(RESUMABLE_CHANGES)]


def moved(recorded: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    """A recorded config with its paths carried to where its folder was moved.

    A library (the demo's: its data, runs and checkpoints inside it) moved to another place or disk holds the same
    runs, but their configs name the old place. The recorded and the current ``output.runs_dir`` share a tail
    (``demo/runs``); what precedes it is the old and the new base, and every recorded absolute path under the old
    base is read under the new one. Paths elsewhere, and a folder that was not moved, stay as they are."""
    before = (recorded.get("output") or {}).get("runs_dir")
    if not isinstance(before, str) or before == runs_dir or not Path(before).is_absolute():
        return recorded
    old, new = Path(before).parts, Path(runs_dir).parts
    tail = 0
    while tail < min(len(old), len(new)) - 1 and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    if tail == 0:
        return recorded
    old_base, new_base = Path(*old[: len(old) - tail]), Path(*new[: len(new) - tail])

    def carry(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: carry(v) for k, v in value.items()}
        if isinstance(value, list):
            return [carry(v) for v in value]
        path = Path(value) if isinstance(value, str) else None
        if path is not None and path.is_absolute() and path.is_relative_to(old_base):
            return str(new_base / path.relative_to(old_base))
        return value

    return carry(recorded)


def finished_result(run_dir: Path, config: TrainConfig, resume: bool | None) -> TrainResult | None:
    """The result of a run already finished in ``run_dir`` (refused when it was another config); None when there
    is none, or when ``resume`` asks to continue a run that was stopped early."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    recorded = run_dir / CONFIG_FILE
    diff = changed_settings(json.loads(recorded.read_text(encoding="utf-8")) if recorded.is_file() else {}, config)
    if diff:
        raise TrainingError(
            f"The run folder {run_dir} holds a finished run with a different config "
            f"({', '.join(diff[:6])}); choose another name (--set name=...)."
        )
    result = TrainResult.from_dict(saved)
    if result.stopped and resume:
        path.unlink(missing_ok=True)  # continue a run that was stopped early
        return None
    logger.info("%s is already complete; its result is in %s", config.name, path)
    return result


def resolved_model_config(config: TrainConfig) -> dict[str, Any]:
    """Every field of the model's config, the defaults of this EgoRecall filled in: what a snapshot records, so
    that a default changed by an upgrade is seen on resume (the config file holds only what it sets)."""
    from models.registry import config_from_dict, config_to_dict

    return config_to_dict(config_from_dict(config.model.name, config.model.config))


def check_resumable(meta: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a snapshot whose run learned with other settings. Snapshots that record the resolved model config
    compare the model by it: the same model resumes whichever fields the config sets explicitly, and a default
    that changed since is named."""
    recorded = meta.get("model_config")
    diff = changed_settings(meta.get("config") or {}, config)
    if recorded is not None:
        now = resolved_model_config(config)
        diff = [k for k in diff if k != "model.config"]
        diff += [f"model.config.{k}" for k in sorted(recorded) if k in now and recorded[k] != now[k]]
    if diff:
        raise TrainingError(
            f"The run folder {config.run_dir()} holds an unfinished run with a different config "
            f"({', '.join(diff[:6])}); resume it with its own config or choose another name (--set name=...)."
        )


def restore_rng(rng: dict[str, torch.Tensor], saved_world: int, info: ddp.DistInfo, seed: int, step: int) -> None:
    """This process's random streams as the snapshot saved them; reseeded (with a warning) when the snapshot was
    written by another number of processes."""
    key = f"cpu.rank{info.rank}"
    if saved_world == info.world_size and key in rng:
        torch.set_rng_state(rng[key])
        if info.device.type == "cuda" and f"cuda.rank{info.rank}" in rng:
            torch.cuda.set_rng_state(rng[f"cuda.rank{info.rank}"], info.device)
    else:
        logger.warning(
            "the snapshot was written by %d processes, this run has %d: RNG streams are reseeded",
            saved_world,
            info.world_size,
        )
        torch.manual_seed(seed * 1_000_003 + info.rank + 7919 * step)
