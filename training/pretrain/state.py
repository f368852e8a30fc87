"""A pretraining run's resume state: weights and optimiser moments in safetensors, the rest in JSON.

``<work dir>/state/step-00001200/`` holds ``state.safetensors`` (``model.*`` -- the open_clip state dict --
and ``optim.<param>.<name>`` -- AdamW's moment tensors) and ``state.json`` (step, elapsed time, optimiser
scalars and param-group settings, loss-scaler state, and the settings that define the run). A state folder
is written under a temporary name and renamed when complete, and older ones are deleted only after that, so
a process killed at any instant leaves the previous state usable. Nothing is pickled; RNG state need not be
saved because every random choice is a function of (seed, step) (see :mod:`training.pretrain.trainer`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from checkpoints.files import fsync_path
from indexing.fsutil import fsync_dir
from training.pretrain.config import PretrainError

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
WEIGHTS = "state.safetensors"
META = "state.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def save_state(
    directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, extra: dict[str, Any]
) -> Path:
    """Write the state after ``step`` optimiser steps and drop older states; returns its folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    tmp = directory / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        opt = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in opt["state"].items():
            for name, value in pstate.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{pid}.{name}"] = value.detach().to("cpu").contiguous()
                else:
                    scalars.setdefault(str(pid), {})[name] = value
        save_file(tensors, str(tmp / WEIGHTS), metadata={"kind": "egorecall-pretrain-state"})
        meta = {
            "format": STATE_FORMAT,
            "step": step,
            "optim_scalars": scalars,
            "param_groups": opt["param_groups"],
            **extra,
        }
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
        for f in (tmp / WEIGHTS, tmp / META):
            fsync_path(f)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in directory.iterdir():
        m = _STEP_DIR.match(old.name)
        if old != final and (m or old.name.startswith(".tmp-")) and (not m or int(m[1]) < step):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_state(directory: Path) -> Path | None:
    """The newest complete state folder, or None."""
    if not directory.is_dir():
        return None
    found = sorted(
        (int(m[1]), p)
        for p in directory.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / WEIGHTS).is_file() and (p / META).is_file()
    )
    return found[-1][1] if found else None


def read_state_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as exc:
        raise PretrainError(f"the resume state {folder} cannot be read ({exc}); delete it to start over") from None
    if meta.get("format") != STATE_FORMAT:
        raise PretrainError(
            f"the resume state {folder} has format {meta.get('format')!r}; this EgoRecall reads {STATE_FORMAT}"
        )
    return meta


def load_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load weights and optimiser state (strictly) from ``folder``; returns its JSON."""
    meta = read_state_meta(folder)
    try:
        tensors = load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise PretrainError(f"the resume state {folder} is unreadable ({exc}); delete it to start over") from None
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise PretrainError(f"the resume state {folder} does not fit the model: {str(exc).splitlines()[0]}") from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, scalars in meta.get("optim_scalars", {}).items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta
