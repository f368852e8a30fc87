"""EgoNCE: CLIP's symmetric InfoNCE with EgoVLP's action-aware positives, across processes.

For a (global) batch of N frame embeddings ``v`` and narration embeddings ``t`` (L2-normalised) and the
temperature ``s = exp(logit_scale)``, with ``S = s * v @ t.T``::

    P[i, j] = 1  if  i == j,  or narrations i and j are the same text,
                 or they share a verb AND a noun (action-aware positives)
    L_v2t = - mean_i log( sum_{j: P[i,j]} exp(S[i, j]) / sum_j exp(S[i, j]) )
    L_t2v = - mean_j log( sum_{i: P[i,j]} exp(S[i, j]) / sum_i exp(S[i, j]) )
    L = (L_v2t + L_t2v) / 2

With ``P`` the identity this is exactly open_clip's ``ClipLoss`` (a test checks it). The scene-aware half of
EgoNCE is not in the formula but in the batch: :class:`training.pretrain.data.SceneBatchSampler` fills every
batch with groups of moments from the same video, so each denominator holds hard negatives -- other moments
of the same scene -- that differ only in what is being done.

Across processes (torchrun), embeddings are all-gathered with gradients (open_clip's ``gather_features``)
and every process computes the loss of the whole global batch; the action keys are gathered alongside.
"""

from __future__ import annotations

import torch
from open_clip.loss import ClipLoss

NO_KEY = -1
"""Key id of an unknown verb/noun: never matches anything."""


def positive_mask(
    text_ids: torch.Tensor, verb_ids: torch.Tensor, noun_ids: torch.Tensor, action_aware: bool = True
) -> torch.Tensor:
    """``P`` above, as bool [N, N]: the diagonal, equal texts, and (optionally) equal verb AND noun."""
    n = text_ids.shape[0]
    mask = torch.eye(n, dtype=torch.bool, device=text_ids.device)
    mask |= text_ids[:, None] == text_ids[None, :]
    if action_aware:
        verb = (verb_ids[:, None] == verb_ids[None, :]) & (verb_ids[:, None] != NO_KEY)
        noun = (noun_ids[:, None] == noun_ids[None, :]) & (noun_ids[:, None] != NO_KEY)
        mask |= verb & noun
    return mask


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-log(sum of exp over positives / sum of exp over the row)``."""
    logits = logits.float()
    pos = logits.masked_fill(~positives, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(pos, dim=1)).mean()


class EgoNCELoss(ClipLoss):
    """open_clip's ClipLoss (same gathering and logits) with a multi-positive target."""

    def __init__(self, *, action_aware: bool = True, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(local_loss=False, gather_with_grad=True, rank=rank, world_size=world_size)
        self.action_aware = action_aware

    def _gather_keys(self, keys: torch.Tensor) -> torch.Tensor:
        if self.world_size <= 1:
            return keys
        out = [torch.empty_like(keys) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, keys.contiguous())
        return torch.cat(out)

    def forward(
        self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, keys: torch.Tensor
    ) -> torch.Tensor:
        """``keys``: long [B, 3] per local pair -- text id, verb id, noun id (``NO_KEY`` when unknown)."""
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        keys = self._gather_keys(keys)
        positives = positive_mask(keys[:, 0], keys[:, 1], keys[:, 2], self.action_aware)
        # Row i of logits_per_image is frame i against every text; row j of logits_per_text is text j against
        # every frame, whose positives are column j of P (P is symmetric).
        return 0.5 * (
            multi_positive_nce(logits_per_image, positives) + multi_positive_nce(logits_per_text, positives.T)
        )
