"""Building blocks shared by the localizers (VSLNet's encoder, pooling, the conditioned span predictor).

All blocks take ``[B, L, D]`` features and a bool mask ``[B, L]`` and keep padding from leaking into real
positions: features are zeroed at padding before every convolution and attention never looks at padded keys,
so a clip's outputs are the same whether or not it was padded into a longer batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.localizer import masked_logits

LAYER_NORM_EPS = 1e-6


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask.unsqueeze(-1).to(x.dtype)


class Dropout(nn.Module):
    """``nn.Dropout`` with a cheaper mask on the CPU: the same Bernoulli(1 - p) keep-mask (to 1/65,536) and 1 / (1 - p)
    scaling, drawn from 16-bit random integers of NumPy's PCG64 seeded by one draw of torch's generator (so
    seeded runs and resumed ones stay reproducible). Torch's CPU ``bernoulli_`` draws one 64-bit number per
    element: a profile of a VSLNet step at 900 bins put 29 % of it there, and this mask costs about a third.
    On other devices, and outside training, it is ``F.dropout``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        self.p = float(p)
        self._threshold = round(self.p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        seed = int(torch.randint(0, 2**62, (1,)).item())
        draws = np.random.default_rng(seed).integers(0, 65536, x.numel(), dtype=np.uint16)
        keep = torch.from_numpy(draws >= self._threshold).view(x.shape)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FeatureStandardizer(nn.Module):
    """Per-dimension ``(x - mean) / std`` of the input video features, statistics kept as buffers.

    Why: library features are L2-normalised CLIP embeddings. Nearly all of their length is one direction shared
    by every frame (cosine ~0.96 between any two frames of the tiny test encoder), and what tells frames apart
    is a per-dimension variation of a few hundredths -- far below VSLNet's N(0, 1) learned positions and
    slow for a first linear layer to pick out. Standardising with statistics of the training features puts
    that variation at unit scale. The statistics are fitted by the training loop (:meth:`fit`) and travel
    in the checkpoint's weights, so inference keeps reading raw library features. Identity until fitted.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp(min=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class DepthwiseSeparableConvs(nn.Module):
    """``num_layers`` × (pre-LayerNorm → depthwise conv k → pointwise conv → ReLU → dropout), each residual."""

    def __init__(self, dim: int, kernel_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd so the sequence keeps its length")
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=LAYER_NORM_EPS) for _ in range(num_layers))
        self.depthwise = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
            for _ in range(num_layers)
        )
        self.pointwise = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))  # = 1×1 conv, faster
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for norm, depthwise, pointwise in zip(self.norms, self.depthwise, self.pointwise):
            y = depthwise(zero_padding(norm(x), mask).transpose(1, 2)).transpose(1, 2)
            x = x + self.dropout(torch.relu(pointwise(y)))
        return x


class SelfAttentionBlock(nn.Module):
    """VSLNet's attention block: x + MHA(LN(x)), then + Conv1x1(LN(·)); padded keys are never attended."""

    def __init__(self, dim: int, num_heads: int, dropout: float, attention_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)
        self.attn_dropout = attention_dropout
        """Dropout on the attention probabilities. Non-zero forces the math kernel, which materialises
        [B, heads, T, T] probabilities and masks (at 900 bins: 4.5x slower training on CPU, measured); 0 lets
        scaled_dot_product_attention use its fused kernel. The block's other dropouts stay."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.dropout(self.norm1(x))
        q, k, v = self.qkv(h).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.attn_dropout if self.training else 0.0
        )
        x = x + self.dropout(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.dropout(self.out(self.dropout(self.norm2(x))))


class FeatureEncoder(nn.Module):
    """VSLNet's shared encoder: (+ learned positions) → depthwise-separable conv blocks → self-attention.

    ``max_positions=None`` drops the positional embedding, for models that encode positions before.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        max_positions: int | None,
        kernel_size: int = 7,
        num_conv_layers: int = 4,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.position = nn.Embedding(max_positions, dim) if max_positions else None
        self.convs = DepthwiseSeparableConvs(dim, kernel_size, num_conv_layers, dropout)
        self.attention = SelfAttentionBlock(dim, num_heads, dropout, attention_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.position is not None:
            n = x.shape[1]
            if n > self.position.num_embeddings:
                raise ValueError(f"sequence of {n} exceeds the {self.position.num_embeddings} learned positions")
            x = x + self.position.weight[:n].unsqueeze(0)
        return self.attention(self.convs(x, mask), mask)


class AttentionPool(nn.Module):
    """One learned query vector attending over the (masked) sequence: ``[B, L, D] -> [B, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = masked_logits(self.score(x).squeeze(-1), mask).softmax(-1)
        return torch.einsum("bl,bld->bd", weights.to(x.dtype), x)


class ConditionedSpanPredictor(nn.Module):
    """VSLNet's span head: hs = Enc(x), he = Enc(hs) (one encoder, used twice), each + LayerNorm;
    start = MLP([hs, x]), end = MLP([he, x]). Conditioning the end on the start features keeps the two
    predictions consistent with each other."""

    def __init__(
        self, dim: int, num_heads: int, max_positions: int | None, dropout: float, attention_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = FeatureEncoder(
            dim, num_heads, max_positions, dropout=dropout, attention_dropout=attention_dropout
        )
        self.start_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.end_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.start_hidden, self.start_out = nn.Linear(2 * dim, dim), nn.Linear(dim, 1)
        self.end_hidden, self.end_out = nn.Linear(2 * dim, dim), nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs = self.encoder(x, mask)
        he = self.encoder(hs, mask)
        start = self.start_out(torch.relu(split_linear(self.start_hidden, [self.start_norm(hs), x]))).squeeze(-1)
        end = self.end_out(torch.relu(split_linear(self.end_hidden, [self.end_norm(he), x]))).squeeze(-1)
        return masked_logits(start, mask), masked_logits(end, mask)


def split_linear(linear: nn.Linear, parts: list[torch.Tensor]) -> torch.Tensor:
    """``linear(torch.cat(parts, -1))`` without building the concatenation.

    Each part meets its own slice of the weight, and parts may broadcast (e.g. a pooled query ``[B, 1, D]``
    against video ``[B, L, D]``), which saves the copy and the multiply-adds of tiling it over time.
    """
    out = None
    offset = 0
    for part in parts:
        width = part.shape[-1]
        y = torch.matmul(part, linear.weight[:, offset : offset + width].t())
        out = y if out is None else out + y
        offset += width
    if offset != linear.in_features:
        raise ValueError(f"parts add up to {offset} features, the layer takes {linear.in_features}")
    assert out is not None  # no parts add up to 0 features: refused just above
    return out + linear.bias if linear.bias is not None else out


def sine_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The Transformer's fixed sinusoidal position encoding ``[length, dim]`` (any length)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    enc = torch.zeros(length, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return enc.to(dtype)
