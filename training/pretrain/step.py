"""One optimiser step of EgoNCE pretraining, in parts: the learning-rate schedule, the frames' augmentation, the
loss of a batch, the temperature's cap, the optimiser -- what the run (:mod:`training.pretrain.trainer`) repeats
and ``bench/bench_pretrain.py`` times (:func:`train_step`)."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from training.engine import Optimization
from training.pretrain.loss import EgoNCELoss

CROP_SCALE = (0.6, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
MAX_LOGIT_SCALE = math.log(100.0)


def lr_at(step: int, total: int, base: float, warmup_fraction: float) -> float:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to zero."""
    warm = max(1, int(round(total * warmup_fraction)))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def step_rng(seed: int, step: int, rank: int, purpose: int) -> np.random.Generator:
    """The random draws of one step of one process for one purpose: a function of (seed, step, rank), so a
    resumed run draws what the uninterrupted one would have."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose, step, rank]))


def random_resized_crops(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Per image: a random crop of 60-100 % of the area (aspect 3:4-4:3), resized back to the input size."""
    n, _c, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        area = h * w * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        cw = int(min(w, max(8, round(math.sqrt(area * ratio)))))
        ch = int(min(h, max(8, round(math.sqrt(area / ratio)))))
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        crop = x[i : i + 1, :, top : top + ch, left : left + cw]
        out[i : i + 1] = F.interpolate(crop, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return out


def egonce_loss(
    net: torch.nn.Module,
    loss_fn: EgoNCELoss,
    images: torch.Tensor,
    tokens: torch.Tensor,
    keys: torch.Tensor,
    *,
    frames_per_clip: int = 1,
    amp: torch.dtype | None = None,
) -> torch.Tensor:
    """EgoNCE of a batch (``images``: B * frames_per_clip normalised crops; a clip is its frames' mean)."""
    context = torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()
    with context:
        img, txt, scale = net(images, tokens)[:3]
    img = F.normalize(img.float().view(len(tokens), frames_per_clip, -1).mean(1), dim=-1)
    return loss_fn(img, txt.float(), scale.float(), keys)


def clamp_logit_scale(model: torch.nn.Module) -> None:
    """CLIP's cap on the learned temperature (a scale of at most 100)."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)  # type: ignore[operator]  # a parameter


def train_step(
    net: torch.nn.Module,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: EgoNCELoss,
    images: torch.Tensor,
    tokens: torch.Tensor,
    keys: torch.Tensor,
    *,
    frames_per_clip: int = 1,
    grad_clip: float = 1.0,
    amp: torch.dtype | None = None,
) -> torch.Tensor:
    """One optimiser step on a batch, as the training run takes it (``bench/bench_pretrain.py`` times it);
    returns the loss. ``net`` is ``model`` or its DistributedDataParallel wrapper."""
    optimization = Optimization(optimizer, list(model.parameters()), grad_clip, scaler)
    loss = egonce_loss(net, loss_fn, images, tokens, keys, frames_per_clip=frames_per_clip, amp=amp)
    optimization.scale(loss).backward()
    optimization.apply(0)
    clamp_logit_scale(model)
    return loss.detach()


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW as open_clip trains CLIP (betas 0.9/0.98, eps 1e-6, no decay on gains, biases, temperature)."""
    decay = [p for n, p in model.named_parameters() if not _no_decay(n, p)]
    no_decay = [p for n, p in model.named_parameters() if _no_decay(n, p)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel is ~4x faster on CPU (the 49k-token embedding table dominates the update)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def _no_decay(name: str, p: torch.nn.Parameter) -> bool:
    """open_clip's rule: no weight decay on gains, biases, norms, embeddings of one dimension, temperature."""
    return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
