"""What every trained natural-language-query localizer looks like to the rest of EgoRecall.

A localizer reads one clip's feature sequence and one question's token features and says, for every grid bin,
how likely the answer starts and ends there. The training loop, the evaluator, inference and the checkpoint
store only ever talk to this interface, so a new architecture is one registered class (see
:mod:`models.registry`) and nothing else changes.

Shapes (``B`` queries, ``L`` grid bins, ``T`` text tokens):

* ``video``  ``[B, L, Dv]`` float, ``video_mask`` ``[B, L]`` bool (True = a real bin, False = padding);
* ``query``  ``[B, T, Dt]`` float, ``query_mask`` ``[B, T]`` bool (from ``ClipEncoder.encode_text_tokens``);
* ``video_aux`` ``[B, L, Da]`` optional second video stream on the same grid (e.g. CLIP image features), only
  for models whose config has ``aux_video_dim > 0``.

Every real bin must come before the padding (``video_mask[b]`` is ``[True]*n + [False]*(L-n)`` with ``n >= 1``),
which is what any right-padding collate produces.

The forward pass is split in two (:meth:`Localizer.encode_video` then :meth:`Localizer.fuse`) because the
video half does not depend on the question: inference encodes a clip once and reuses it for every query.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.grid import TimeGrid

MASK_VALUE = -1e30
"""Logit given to padding bins. Logits are always float32 at this point, so it cannot overflow; softmax turns
it into an exact zero."""

DEFAULT_HIGHLIGHT_EXTEND = 0.1
"""VSLNet's highlight labels: the answer span widened by 10% of its length on each side."""


# ---------------------------------------------------------------------------------------------- outputs
@dataclass
class LocalizerOutput:
    """What a forward pass returns.

    ``start_logits``/``end_logits`` are float32 ``[B, L]`` with padding at :data:`MASK_VALUE`;
    ``highlight`` is the per-bin probability that the bin belongs to the answer (``[B, L]``, 0 at padding) or
    None for models without a highlight head; ``aux`` holds whatever else the model's own loss needs.
    """

    start_logits: torch.Tensor
    end_logits: torch.Tensor
    video_mask: torch.Tensor
    highlight: torch.Tensor | None = None
    aux: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpanTargets:
    """Training targets for one batch: inclusive answer bins, plus optional per-bin highlight labels.

    A dataset only has to provide ``start`` and ``end`` (``[B]`` long tensors on the model's grid): each
    model's :meth:`Localizer.loss` derives highlight labels from them with its own settings when
    ``highlight`` is None, so one collate function serves every registered model. Use :meth:`from_bins` to
    precompute them (e.g. in a worker process) with the default 10% extension.
    """

    start: torch.Tensor
    end: torch.Tensor
    highlight: torch.Tensor | None = None

    @classmethod
    def from_bins(cls, start, end, video_mask: torch.Tensor, extend: float = DEFAULT_HIGHLIGHT_EXTEND) -> SpanTargets:
        start = torch.as_tensor(start, dtype=torch.long, device=video_mask.device)
        end = torch.as_tensor(end, dtype=torch.long, device=video_mask.device)
        return cls(start, end, highlight_labels(start, end, video_mask, extend))

    def to(self, device: torch.device | str) -> SpanTargets:
        moved: dict[str, Any] = {
            f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device)) for f in fields(self)
        }
        return replace(self, **moved)


def answer_bins(grid: TimeGrid, start_s: float, end_s: float) -> tuple[int, int]:
    """The inclusive bin pair whose window best overlaps an answer in seconds (VSLNet's label rule).

    Starts from the bins that cover the answer and tries dropping an edge bin that mostly sticks out; only
    edge bins can stick out, so these four candidates contain the best pair.
    """
    s0, e0 = grid.seconds_to_bins(start_s, end_s)
    best, best_iou = (s0, e0), -1.0
    for s in (s0, s0 + 1):
        for e in (e0, e0 - 1):
            if s > e:
                continue
            ws, we = grid.bins_to_seconds(s, e)
            union = max(we, end_s) - min(ws, start_s)
            iou = max(0.0, min(we, end_s) - max(ws, start_s)) / union if union > 0 else 0.0
            if iou > best_iou + 1e-12:
                best, best_iou = (s, e), iou
    return best


def answer_mask(start: torch.Tensor, end: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, L]`` bool: True on the inclusive answer bins ``start..end``."""
    pos = torch.arange(length, device=start.device)
    return (pos[None, :] >= start[:, None]) & (pos[None, :] <= end[:, None])


def highlight_labels(
    start: torch.Tensor, end: torch.Tensor, video_mask: torch.Tensor, extend: float = DEFAULT_HIGHLIGHT_EXTEND
) -> torch.Tensor:
    """VSLNet's highlight labels: 1 on the answer widened by ``round(extend * length)`` bins each side.

    The widening rounds like the reference (so answers under 5 bins are not widened at all) and stops at the
    clip's last real bin.
    """
    length = (end - start + 1).clamp(min=1).float()
    pad = torch.round(extend * length).long()
    last = video_mask.long().sum(1) - 1
    lo = (start - pad).clamp(min=0)
    hi = torch.minimum(end + pad, last)
    return (answer_mask(lo, hi, video_mask.shape[1]) & video_mask).float()


# ---------------------------------------------------------------------------------------------- helpers
def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """float32 logits with padding set to :data:`MASK_VALUE` (computed in float32 so fp16 cannot overflow)."""
    return logits.float().masked_fill(~mask, MASK_VALUE)


def weighted_highlight_bce(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, positive_weight: float = 2.0
) -> torch.Tensor:
    """VSLNet's highlight loss: per-bin BCE, answer bins weighted ``positive_weight``, mean over real bins.

    Takes logits rather than sigmoid outputs for numerical stability; the value equals the reference's
    BCE-on-probabilities.
    """
    logits = logits.float()
    per_bin = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    weights = torch.where(labels > 0, positive_weight * labels, torch.ones_like(labels))
    m = mask.float()
    return (per_bin * weights * m).sum() / m.sum().clamp(min=1.0)


def absent_highlight_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The highlight loss of a question with no answer in the clip: every real bin labelled 0, mean over them."""
    logits = logits.float()
    per_bin = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    m = mask.float()
    return (per_bin * m).sum() / m.sum().clamp(min=1.0)


def span_cross_entropy(start_logits: torch.Tensor, end_logits: torch.Tensor, targets: SpanTargets) -> torch.Tensor:
    return F.cross_entropy(start_logits, targets.start) + F.cross_entropy(end_logits, targets.end)


def check_video_mask(video_mask: torch.Tensor) -> None:
    if video_mask.dtype != torch.bool:
        raise TypeError(f"video_mask must be bool, got {video_mask.dtype}")
    if not bool(video_mask[:, 0].all()):
        raise ValueError("every clip needs at least one real bin, and padding must come after the real bins")


# ---------------------------------------------------------------------------------------------- base class
class Localizer(nn.Module):
    """Base class of trained localizers; subclasses are registered with :func:`models.registry.register_localizer`.

    Subclasses implement :meth:`encode_video`, :meth:`fuse` and :meth:`loss`; the rest has sensible defaults.
    ``config`` is the model's config dataclass, whose fields ``video_dim``, ``query_dim``, ``aux_video_dim``
    and ``max_positions`` every model has.
    """

    name: ClassVar[str] = ""
    """Registry name, set by ``register_localizer``; recorded in checkpoints."""
    config_class: ClassVar[type] = object

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    # -------------------------------------------------------------- geometry
    @property
    def max_positions(self) -> int | None:
        """The longest sequence the model handles in one pass; inference slides windows over longer clips."""
        return self.config.max_positions

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -------------------------------------------------------------- forward
    def encode_video(
        self, video: torch.Tensor, video_mask: torch.Tensor, video_aux: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The query-independent half: everything computed from the clip alone. Values are ``[B, ...]``."""
        raise NotImplementedError

    def fuse(self, encoded: dict[str, torch.Tensor], query: torch.Tensor, query_mask: torch.Tensor) -> LocalizerOutput:
        """The query-dependent half: answer the questions about the encoded clips.

        ``encoded`` has either one clip per query or a single clip (batch 1) that every query is about;
        outputs always have the queries' batch size.
        """
        raise NotImplementedError

    def forward(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        query: torch.Tensor,
        query_mask: torch.Tensor,
        video_aux: torch.Tensor | None = None,
    ) -> LocalizerOutput:
        self.check_inputs(video, video_mask, query, query_mask, video_aux)
        return self.fuse(self.encode_video(video, video_mask, video_aux), query, query_mask)

    def check_inputs(self, video, video_mask, query, query_mask, video_aux=None) -> None:
        cfg = self.config
        if video.ndim != 3 or video.shape[-1] != cfg.video_dim:
            raise ValueError(f"{self.name} expects video features [B, L, {cfg.video_dim}], got {tuple(video.shape)}")
        if query.ndim != 3 or query.shape[-1] != cfg.query_dim:
            raise ValueError(f"{self.name} expects query tokens [B, T, {cfg.query_dim}], got {tuple(query.shape)}")
        if video_mask.shape != video.shape[:2] or query_mask.shape != query.shape[:2]:
            raise ValueError("masks must be [B, L] and [B, T], matching the features")
        if video.shape[0] != query.shape[0]:
            raise ValueError(f"{video.shape[0]} clips but {query.shape[0]} queries; expand the clips first")
        if self.max_positions is not None and video.shape[1] > self.max_positions:
            raise ValueError(
                f"{self.name} handles at most {self.max_positions} bins per pass, got {video.shape[1]}; "
                "use models.inference (sliding windows) or models.resample for longer clips"
            )
        aux_dim = getattr(cfg, "aux_video_dim", 0)
        if aux_dim and (video_aux is None or video_aux.shape != (*video.shape[:2], aux_dim)):
            raise ValueError(f"{self.name} expects a second video stream [B, L, {aux_dim}]")
        if not aux_dim and video_aux is not None:
            raise ValueError(f"{self.name} was configured without a second video stream (aux_video_dim=0)")
        check_video_mask(video_mask)
        if query_mask.dtype != torch.bool:
            raise TypeError(f"query_mask must be bool, got {query_mask.dtype}")
        if not bool(query_mask.any(1).all()):
            raise ValueError("every query needs at least one real token")

    # -------------------------------------------------------------- training
    def loss(self, outputs: LocalizerOutput, targets: SpanTargets) -> dict[str, torch.Tensor]:
        """Named loss terms (already weighted) and their sum under ``"total"``."""
        raise NotImplementedError

    def absent_loss(self, outputs: LocalizerOutput) -> torch.Tensor:
        """The loss of questions whose answer is nowhere in the clip (training negatives): a model whose
        comparable score is its highlight pushes every bin's highlight down, so "no good match" can be told
        from a match. Models that cannot be trained so raise (the training config is refused up front)."""
        raise NotImplementedError(f"{self.name} cannot be trained on questions without an answer")

    @classmethod
    def trains_on_absent_answers(cls) -> bool:
        return cls.absent_loss is not Localizer.absent_loss

    # -------------------------------------------------------------- reading the outputs
    def span_probabilities(self, outputs: LocalizerOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end distributions ``[B, L]`` (each sums to 1 over the real bins)."""
        return outputs.start_logits.softmax(-1), outputs.end_logits.softmax(-1)

    def span_distributions(self, outputs: LocalizerOutput) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One (start, end) distribution pair per independent prediction (per scale for multi-scale models);
        inference takes top spans from each and merges them by score."""
        return [self.span_probabilities(outputs)]

    def score_curve(self, outputs: LocalizerOutput) -> torch.Tensor:
        """A per-bin score ``[B, L]`` for plotting: the highlight probability, or the start+end mass."""
        if outputs.highlight is not None:
            return outputs.highlight.float()
        ps, pe = self.span_probabilities(outputs)
        return ps + pe


def expand_encoded(encoded: dict[str, torch.Tensor], batch: int) -> dict[str, torch.Tensor]:
    """Repeat a shared encoded clip (batch 1) for ``batch`` queries, as a view (no copy); for models whose
    :meth:`Localizer.fuse` needs one clip per query."""
    out = {}
    for key, value in encoded.items():
        if value.shape[0] not in (1, batch):
            raise ValueError(f"encoded clips have batch {value.shape[0]}, queries {batch}")
        out[key] = value.expand(batch, *value.shape[1:])
    return out
