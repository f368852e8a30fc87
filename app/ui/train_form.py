"""The Train tab's form, without Gradio: which configs exist, the values a config starts from, and the
:class:`~training.config.TrainConfig` a filled-in form makes.

Every default comes from ``training/configs/*.yaml`` over the config dataclasses (:mod:`training.config`);
the form only shows them, so a number is never written twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.config_files import apply_values, nest, read_config_file
from training.config import CONFIG_DIR, TrainConfig, load_config

STAGE_LABELS = {"joint": "stage 1: joint NLQ + NaQ", "finetune": "stage 2: fine-tune on NLQ", "nlq": "NLQ only"}

HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("optim.lr", "Learning rate"),
    ("optim.batch_size", "Batch size (queries per step)"),
    ("optim.steps", "Steps (0: use epochs)"),
    ("optim.epochs", "Epochs"),
    ("eval.every", "Evaluate every N steps (0: once per epoch)"),
    ("data.jitter_factor", "NaQ temporal jitter factor (1: off)"),
    ("data.nlq_fraction", "Share of NLQ clips used (few-shot; 0: narrations only)"),
)
"""The key hyper-parameters the form shows, by dotted config key."""


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.yaml"
    if name not in config_names():
        from training.config import ConfigError

        raise ConfigError(f"there is no training config '{name}' (known: {', '.join(config_names())})")
    return path


def config_defaults(name: str) -> TrainConfig:
    """A config file over the dataclass defaults, not validated (the form fills in the data)."""
    config = TrainConfig()
    apply_values(config, read_config_file(config_path(name)), name)
    return config


def stage_label(config: TrainConfig) -> str:
    if config.stage == "joint" and config.data.nlq_fraction == 0.0:
        return "NaQ only (narrations, no NLQ)"
    return STAGE_LABELS.get(config.stage, config.stage)


def config_label(name: str) -> str:
    config = config_defaults(name)
    return f"{name} — {config.model.name}, {stage_label(config)}"


def get_value(config: TrainConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def make_config(name: str, settings: Mapping[str, Any], app_settings) -> TrainConfig:
    """The validated config: file ``name``, then ``settings`` (dotted keys). Unless told otherwise, features
    come from the app's library, runs go to ``<library>/runs``, and the run gets a fresh dated name (so a
    new run never resumes an old one by accident)."""
    settings = {k: v for k, v in settings.items()}
    if "data.features_dir" in settings and settings["data.features_dir"]:
        settings["data.library"] = None
    elif not settings.get("data.library"):
        settings["data.library"] = str(app_settings.library)
        settings["data.features_dir"] = None
    settings.setdefault("output.runs_dir", str(Path(app_settings.library) / "runs"))
    if not settings.get("name"):
        settings["name"] = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    values: dict[str, Any] = {}
    for key, value in settings.items():
        _merge(values, nest(key.split("."), value))
    return load_config(config_path(name), values=values)


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def curves(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Loss points (``train`` records) and recall points (``eval`` records) for the live plots."""
    loss = [
        {"step": r["step"], "value": float(r["loss"]["total"]), "series": "loss"}
        for r in records
        if r.get("event") == "train" and "total" in (r.get("loss") or {})
    ]
    recall = [
        {"step": r["step"], "value": float(r["metrics"][k]), "series": k}
        for r in records
        if r.get("event") == "eval"
        for k in ("R@1@0.3", "R@5@0.3", "R@1@0.5", "R@5@0.5")
        if k in (r.get("metrics") or {})
    ]
    return loss, recall
