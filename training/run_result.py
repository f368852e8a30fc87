"""What a training run produced (:class:`TrainResult`), as the loop returns it and as its run folder keeps it
(``result.json``, so the same command again returns it without training)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    steps: int
    total_steps: int
    stopped: bool
    best: dict[str, Any] | None
    """``{"step", "metric", "value", "metrics"}`` of the best evaluation, or None without a validation set."""
    final_metrics: dict[str, float]
    checkpoints: dict[str, Path]
    """``{"best": path, "final": path}`` of the published checkpoints."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One ``{"step", "metrics"}`` per evaluation."""
    replica_digests: list[str] = field(default_factory=list)
    """Each process's weight digest at the end: all equal, or distributed training diverged."""
    answering: dict[str, str] = field(default_factory=dict)
    """Checkpoint -> how it was fitted for answering after the run (fusion weight, calibrations), filled in by
    the app's service (``eval.fit_answering``)."""

    @property
    def best_checkpoint(self) -> Path | None:
        return self.checkpoints.get("best")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["checkpoints"] = {k: str(v) for k, v in self.checkpoints.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        d = dict(d)
        d["run_dir"] = Path(d["run_dir"])
        d["checkpoints"] = {k: Path(v) for k, v in d.get("checkpoints", {}).items()}
        return cls(**d)
