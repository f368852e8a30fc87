"""What a training run reports, and where: one JSON object per line in ``<run>/log.jsonl``, the same object to
the caller's progress callback, and (when installed) TensorBoard scalars in ``<run>/tensorboard``.

Every record has ``event``, ``step``, ``total_steps``, ``epoch`` (fractional), ``time`` (seconds of training
so far, summed over resumed sessions) and ``wall`` (Unix time). Per event:

* ``start``: ``run_dir``, ``resumed_from`` (step or null), ``model``, ``parameters``, ``device``,
  ``world_size``, ``data`` (query/clip counts), ``config`` (the resolved config);
* ``train``: ``loss`` (mean of each loss term since the last record, ``total`` included), ``lr``,
  ``grad_norm``, ``queries_per_s``, ``skipped_steps`` (non-finite gradients, if any);
* ``eval``: ``metrics`` (``R@1@0.3``, ``R@5@0.3``, ``R@1@0.5``, ``R@5@0.5``, ``mean_R1``, ``mean_R5``,
  ``mIoU`` in percent, ``num_queries``), ``is_best``, ``best`` (``{"step", "value", "metric"}``);
* ``snapshot``: ``path``;  ``checkpoint``: ``which`` (``best``/``final``), ``name``, ``path``;
* ``done``: ``stopped`` (true when stopped early), ``best``, ``checkpoints`` (``{which: path}``).

After a kill, the log is cut back to its length at the snapshot the run resumes from, so a curve never shows
the same step twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
Progress = Callable[[dict[str, Any]], None]


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete record of a run's log (a torn last line from a kill is skipped)."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class RunLog:
    """Writes records (rank 0 only: other ranks get ``enabled=False`` and write nothing)."""

    def __init__(
        self, run_dir: Path, enabled: bool = True, progress: Progress | None = None, tensorboard: bool = True
    ) -> None:
        self.path = Path(run_dir) / LOG_FILE
        self.enabled = enabled
        self.progress = progress
        self._fh = None
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    logger.debug("TensorBoard is not installed; logging to %s only", self.path)
                else:
                    self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def size(self) -> int:
        """Bytes written so far (recorded in snapshots)."""
        if self._fh is None:
            return 0
        self._fh.flush()
        return self._fh.tell()

    def truncate(self, size: int) -> None:
        """Cut the log back to ``size`` bytes (resuming from a snapshot taken at that length)."""
        if self._fh is None:
            return
        self._fh.flush()
        self._fh.truncate(min(size, self._fh.tell()))
        self._fh.seek(0, os.SEEK_END)

    def write(
        self, event: str, step: int, total_steps: int, epoch: float, run_time: float, **values: Any
    ) -> dict[str, Any]:
        record = {
            "event": event,
            "step": step,
            "total_steps": total_steps,
            "epoch": round(epoch, 4),
            "time": round(run_time, 3),
            "wall": round(time.time(), 3),
            **values,
        }
        if not self.enabled or self._fh is None:
            return record
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        if self._tb is not None:
            self._scalars(record)
        if self.progress is not None:
            try:
                self.progress(record)
            except Exception:  # noqa: BLE001 - a broken UI callback must not kill a training run
                logger.exception("progress callback failed")
        return record

    def _scalars(self, record: dict[str, Any]) -> None:
        if self._tb is None:
            return
        step = record["step"]
        if record["event"] == "train":
            for k, v in record.get("loss", {}).items():
                self._tb.add_scalar(f"loss/{k}", v, step)
            for k in ("lr", "grad_norm", "queries_per_s"):
                if record.get(k) is not None:
                    self._tb.add_scalar(f"train/{k}", record[k], step)
        elif record["event"] == "eval":
            for k, v in record.get("metrics", {}).items():
                self._tb.add_scalar(f"val/{k}", v, step)

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
