"""A localizer's training session: what it set up (:class:`RunContext`) and its part of an optimiser step
(:class:`SpanSteps`: micro-batches through the model and the span loss); :mod:`training.engine` runs the loop."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from checkpoints.metadata import CheckpointMetadata
from models.localizer import Localizer, SpanTargets
from models.text_tokens import TextEncoderSpec, TokenEncoder
from models.windows import LengthPrior
from training import distributed as ddp
from training.config import TrainConfig
from training.dataset import TrainingData
from training.engine import Optimization, StepOutput
from training.evaluation import Validator
from training.features import ClipFeatureSource


@dataclass
class RunContext:
    """What one training session set up and every later step reads (model, optimiser, data, schedule)."""

    cfg: TrainConfig
    info: ddp.DistInfo
    model: Localizer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    source: ClipFeatureSource
    encoder: TokenEncoder
    text_spec: TextEncoderSpec
    data: TrainingData
    validator: Validator | None
    total: int
    """Optimiser steps of the whole run."""
    per_epoch: int
    init_meta: CheckpointMetadata | None
    """Metadata of the checkpoint the run started from (``init_from``), if any."""
    resample_to: int | None
    max_bins: int | None
    max_span_s: float
    length_prior: LengthPrior | None = None
    """The prior on answer length validation decodes with, recorded in every checkpoint."""


class SpanSteps:
    """The localizer's part of an optimiser step: the step's micro-batches through the model and the span
    loss, gradients accumulated (weighted by micro-batch size; DDP syncs them on the last micro-batch)."""

    unit = "queries"

    def __init__(
        self, model: torch.nn.Module, core: Localizer, batches, info: ddp.DistInfo, autocast, optimization: Optimization
    ) -> None:
        self.model, self.core, self.batches, self.info = model, core, batches, info
        self.autocast, self.optimization = autocast, optimization
        self.cuda = info.device.type == "cuda"

    def step(self, step: int) -> StepOutput:
        micro = next(self.batches)
        n_batch = sum(len(mb) for mb in micro)
        sums: dict[str, float] = {}
        for j, mb in enumerate(micro):
            mb = mb.to(self.info.device, non_blocking=self.cuda)
            last = not self.info.distributed or j == len(micro) - 1
            with contextlib.nullcontext() if last else self.model.no_sync():  # type: ignore[operator]  # DDP's
                with self.autocast():
                    terms = self._loss(mb)
                self.optimization.scale(terms["total"] * (len(mb) / n_batch)).backward()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(mb) / n_batch
        return StepOutput(sums, n_batch)

    def _loss(self, mb) -> dict[str, torch.Tensor]:
        """The micro-batch's loss terms: the model's span loss, or -- for a micro-batch of questions without an
        answer (``data.negative_probability``; :class:`training.dataset.Collate` never mixes the two, so each
        micro-batch is one forward and one backward, as DDP wants) -- its absent loss."""
        out = self.model(mb.video, mb.video_mask, mb.query, mb.query_mask)
        if mb.answerable is not None and not bool(mb.answerable.any()):
            absent = self.core.absent_loss(out)
            return {"absent": absent, "total": absent}
        return self.core.loss(out, SpanTargets(mb.start, mb.end))

    def after_step(self, step: int) -> dict[str, Any]:
        return {}
