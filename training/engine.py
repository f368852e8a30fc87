"""The one step loop both training tasks run: localizer training (:mod:`training.loop`) and EgoNCE pretraining
(:mod:`training.pretrain.trainer`).

What is the same in both lives here, once: the optimiser step (mixed-precision scaling, gradient clipping, a
step skipped on a non-finite gradient, the learning rate of each step), the progress bar, ``train`` records
in the run log with loss means and throughput (time spent evaluating or saving does not count), the stop
request honoured after the current step on every rank, and when to evaluate and when to write a resumable
snapshot. Each task brings only what is its own: its batches and losses (:meth:`TrainingTask.step`), its
evaluation and its snapshot (the two callbacks of :meth:`StepLoop.run`).

The schedule of evaluations and snapshots: evaluate every ``eval_every`` steps, after the last step and when
stopped; snapshot after every evaluation, every ``snapshot_every`` steps, after the last step and when
stopped -- so a stopped or killed run resumes from a state whose figures are in the log.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from training import distributed as ddp

logger = logging.getLogger(__name__)


@dataclass
class StepOutput:
    """What one optimiser step's forward and backward passes gave (gradients accumulated, not yet applied)."""

    terms: dict[str, float]
    """Loss terms, means over the step's batch on this rank (``total`` is the optimised one)."""
    items: int
    """Training examples this rank processed (queries, pairs): the throughput's unit."""


class TrainingTask(Protocol):
    unit: str
    """Name of the examples for the throughput record (``queries`` -> ``queries_per_s``)."""

    def step(self, step: int) -> StepOutput:
        """Forward and backward of the batch of optimiser step ``step`` (0-based); raise to end the run."""

    def after_step(self, step: int) -> dict[str, Any]:
        """Called after the optimiser step ``step`` (1-based, the steps done); what it returns joins the next
        ``train`` record (e.g. a learned temperature)."""


@dataclass
class Optimization:
    """How gradients become an update."""

    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    grad_clip: float | None = 1.0
    """Largest gradient norm (None or 0 = unclipped; the norm is still measured and logged)."""
    scaler: torch.amp.GradScaler | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    """Stepped after every update (the learning rate it sets applies to the next)."""
    lr_at: Callable[[int], float] | None = None
    """Or: the learning rate of step ``step`` (0-based), set on every parameter group before it."""

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call ``backward`` on (scaled when mixed precision needs it)."""
        return self.scaler.scale(loss) if self.scaler is not None and self.scaler.is_enabled() else loss

    def apply(self, step: int) -> tuple[float, float, bool]:
        """Update the weights from the accumulated gradients: (learning rate used, gradient norm, skipped)."""
        if self.lr_at is not None:
            lr = self.lr_at(step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        scaler = self.scaler if self.scaler is not None and self.scaler.is_enabled() else None
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        clip = self.grad_clip if self.grad_clip else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        skipped = False
        if scaler is not None:
            scaler.step(self.optimizer)  # skips the update itself on inf/NaN gradients
            scaler.update()
        elif torch.isfinite(grad_norm):
            self.optimizer.step()
        else:
            skipped = True
            logger.warning("step %d: non-finite gradient norm, step skipped", step + 1)
        lr_used = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return lr_used, float(grad_norm), skipped


@dataclass
class Cadence:
    log_every: int = 10
    eval_every: int = 0
    """0 = only after the last step (and when stopped)."""
    snapshot_every: int = 100


@dataclass
class LoopEnd:
    step: int
    stopped: bool
    evaluated_at: int | None
    """The last step evaluated in this session (None if none)."""


@dataclass
class StepLoop:
    task: TrainingTask
    optimization: Optimization
    cadence: Cadence
    info: ddp.DistInfo
    write: Callable[..., Any]
    """``write(event, step, **values)``: the task's run-log writer (it stamps records with the run's time)."""
    stop: threading.Event = field(default_factory=threading.Event)
    bar: Any = None
    """A tqdm bar (main process only), advanced and annotated here."""

    def run(
        self,
        step: int,
        total: int,
        *,
        evaluate: Callable[[int], None] | None,
        snapshot: Callable[[int], None],
        on_interrupt: Callable[[int], None] | None = None,
    ) -> LoopEnd:
        """Train from ``step`` (the steps already done) to ``total``, or until :attr:`stop` is set.
        ``evaluate`` and ``snapshot`` run on every rank (they may hold collectives); ``on_interrupt(step)``, if
        given, runs when a ``KeyboardInterrupt`` ends the loop, before it propagates."""
        sums: dict[str, float] = {}
        logged, items, skipped = 0, 0, 0
        interval = time.monotonic()
        stopped, evaluated_at = False, None
        try:
            while step < total:
                out = self.task.step(step)
                lr, grad_norm, was_skipped = self.optimization.apply(step)
                skipped += was_skipped
                step += 1
                extra = self.task.after_step(step)
                logged += 1
                items += out.items * self.info.world_size
                for k, v in out.terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.bar is not None:
                    self.bar.update(1)
                if step % self.cadence.log_every == 0 or step == total:
                    elapsed = max(1e-9, time.monotonic() - interval)
                    means = {k: v / logged for k, v in sums.items()}
                    record = {
                        "loss": means,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        f"{self.task.unit}_per_s": items / elapsed,
                        **extra,
                    }
                    if skipped:
                        record["skipped_steps"] = skipped
                    self.write("train", step, **record)
                    if self.bar is not None:
                        self.bar.set_postfix(
                            loss=f"{means.get('total', float('nan')):.3f}", lr=f"{lr:.2e}", refresh=False
                        )
                    sums, logged, items, interval = {}, 0, 0, time.monotonic()

                stopped = ddp.any_rank(self.info, self.stop.is_set())
                paused = time.monotonic()
                evaluated = False
                every = self.cadence.eval_every
                if evaluate is not None and ((every and step % every == 0) or step == total or stopped):
                    evaluate(step)
                    evaluated, evaluated_at = True, step
                if evaluated or step % self.cadence.snapshot_every == 0 or step == total or stopped:
                    snapshot(step)
                interval += time.monotonic() - paused  # throughput counts training time only
                if stopped:
                    break
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt(step)
            raise
        return LoopEnd(step, stopped, evaluated_at)
