"""Resumable training state on disk, without pickles: safetensors for tensors, JSON for everything else.

The one resume format of every training task: localizer training (:mod:`training.loop`) and narration
pretraining (:mod:`training.pretrain.trainer`) both save and resume through these functions; each task puts
its own run state into ``meta``.

A snapshot is a folder ``<run>/snapshots/step-000001234/`` holding

* ``model.safetensors`` -- the model's weights;
* ``best.safetensors`` -- the best weights so far (by the validation metric), if any;
* ``optimizer.safetensors`` -- the optimiser's per-parameter state, flattened to ``state.<param>.<name>``;
* ``rng.safetensors`` -- every process's torch RNG states (``cpu.rank<r>``, ``cuda.rank<r>``);
* ``state.json`` -- step, epoch position, optimiser param groups and scalar state, LR scheduler, grad scaler,
  best metric so far, evaluation history, run time, the JSONL log's length, and the config.

It is written in a hidden temporary folder, flushed, and renamed into place (a rename is atomic), so a run
killed at any moment -- SIGKILL included -- leaves the previous snapshot or the new one, never half of one.
Older snapshots are deleted only after the new one is in place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from checkpoints.files import fsync_path
from indexing.fsutil import fsync_dir
from models.errors import EgoRecallError

logger = logging.getLogger(__name__)

FORMAT = 1
SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"^step-(\d{9})$")


class SnapshotError(EgoRecallError):
    """A snapshot cannot be resumed from: unreadable, of another format, or of another model."""


@dataclass
class TrainingState:
    """What a snapshot restores besides the modules (which are loaded into the live objects)."""

    step: int
    meta: dict[str, Any] = field(default_factory=dict)
    """JSON-able run state: best metric, history, time, log length, config, ..."""
    best_weights: dict[str, torch.Tensor] | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- optimiser
def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors for safetensors, the JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in rest.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in rest["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------- writing
def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def write_snapshot(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    meta: dict[str, Any],
    best_weights: dict[str, torch.Tensor] | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    keep: int = 1,
) -> Path:
    """Write a complete snapshot for ``step`` and return its folder; then drop all but the ``keep`` newest."""
    root = Path(run_dir) / SNAPSHOT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        save_file(_cpu(model_state), str(tmp / "model.safetensors"))
        opt_tensors, opt_rest = flatten_optimizer(optimizer_state)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        if best_weights is not None:
            save_file(_cpu(best_weights), str(tmp / "best.safetensors"))
        save_file(_cpu(rng or {}), str(tmp / "rng.safetensors"))
        body = {"format": FORMAT, "step": step, "optimizer": opt_rest, **meta}
        (tmp / "state.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            fsync_path(f)
        final = root / f"step-{step:09d}"
        if final.exists():  # the same step again (e.g. a snapshot right after resuming): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    for old in list_snapshots(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------- reading
def list_snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshot folders, oldest first (temporary folders of a killed writer are ignored)."""
    root = Path(run_dir) / SNAPSHOT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_snapshot(run_dir: Path) -> Path | None:
    found = list_snapshots(run_dir)
    return found[-1] if found else None


def read_snapshot_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"the snapshot {folder} cannot be read ({exc}); delete it to start over") from None
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"{folder} has snapshot format {meta.get('format')!r}; this EgoRecall reads {FORMAT}")
    return meta


def load_snapshot(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu"
) -> TrainingState:
    """Load weights and optimiser state (strictly) into the live objects; return the rest."""
    meta = read_snapshot_meta(folder)
    try:
        weights = load_file(str(folder / "model.safetensors"), device=str(device))
        opt_tensors = load_file(str(folder / "optimizer.safetensors"), device="cpu")
        best_path = folder / "best.safetensors"
        best = load_file(str(best_path), device="cpu") if best_path.is_file() else None
        rng = load_file(str(folder / "rng.safetensors"), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise SnapshotError(f"the snapshot {folder} is unreadable ({exc}); delete it to start over") from None
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise SnapshotError(f"the snapshot {folder} does not fit the model: {str(exc).splitlines()[0]}") from None
    optimizer.load_state_dict(unflatten_optimizer(opt_tensors, meta.pop("optimizer")))
    return TrainingState(step=int(meta["step"]), meta=meta, best_weights=best, rng=rng)


def remove_snapshots(run_dir: Path) -> None:
    """Delete every snapshot of a run (when it has finished, or is started over)."""
    shutil.rmtree(Path(run_dir) / SNAPSHOT_DIR, ignore_errors=True)


def remove_temporaries(run_dir: Path) -> None:
    """Delete what a killed writer left behind."""
    root = Path(run_dir) / SNAPSHOT_DIR
    if root.is_dir():
        for p in root.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
