"""VSLNet (Zhang et al., ACL 2020), the Ego4D NLQ baseline, configured as NaQ trains it.

Video features → dropout + 1×1 projection; query token features → linear projection; one shared encoder
(learned positions, 4 depthwise-separable conv blocks, self-attention) for both; context–query attention;
query concatenation; query-guided highlighting (features × highlight score); conditioned span predictor.
Loss = CE(start) + CE(end) + 5 × weighted highlight BCE.

Differences from the reference code, all deliberate:

* Padding is zeroed before every convolution, so a clip's outputs do not depend on how much padding its batch
  had (the reference lets padding bleed into the last few bins through the kernel-7 convolutions).
* The default positional range is 1024 bins instead of 128 resampled bins: see :class:`VSLNetConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers import (
    AttentionPool,
    ConditionedSpanPredictor,
    Dropout,
    FeatureEncoder,
    FeatureStandardizer,
    split_linear,
    zero_padding,
)
from models.localizer import (
    DEFAULT_HIGHLIGHT_EXTEND,
    Localizer,
    LocalizerOutput,
    SpanTargets,
    absent_highlight_bce,
    highlight_labels,
    masked_logits,
    span_cross_entropy,
    weighted_highlight_bce,
)
from models.registry import register_localizer


@dataclass(frozen=True)
class VSLNetConfig:
    video_dim: int = 512
    """Input video feature size (CLIP ViT-B/16: 512, EgoVLP: 256, SlowFast/InternVideo: 2304)."""
    query_dim: int = 512
    """Text token feature size (CLIP ViT-B/16 text tokens: 512; BERT-base: 768)."""
    aux_video_dim: int = 0
    """VSLNet reads one video stream; kept for the common interface."""
    dim: int = 128
    num_heads: int = 4
    """The reference VSLNet uses 8 heads of 16 dimensions. 4 heads of 32 train a step ~25 % faster on a 2-core
    CPU at 900 bins (fused attention is most of a step there), and over two tuning worlds x two seeds they
    answered as well (R@1@0.3 / R@5@0.3 27.2 / 58.9 against 27.9 / 58.3; bench/README.md, 2026-12-07). Set 8
    to reproduce the reference exactly; checkpoints keep the heads they were trained with."""
    dropout: float = 0.2
    attention_dropout: float = 0.0
    """On the self-attention probabilities; 0 keeps the fused attention kernel (``layers.SelfAttentionBlock``)."""
    kernel_size: int = 7
    num_conv_layers: int = 4
    max_positions: int = 1024
    """Learned positions = the longest sequence one pass sees. Our features sit on Ego4D's native 1.875 Hz
    grid (no resampling to 128 bins, which is coarser than most answers), where an 8-minute clip is 900
    bins: 1024 covers the usual clip in one pass with headroom. Longer clips (Ego4D's go to 20 minutes =
    2,250 bins) are cut into overlapping windows at inference and cropped or resampled for training; a
    larger value costs memory quadratically in the self-attention."""
    highlight_extend: float = DEFAULT_HIGHLIGHT_EXTEND
    highlight_positive_weight: float = 2.0
    highlight_loss_weight: float = 5.0
    standardize_video: bool = False
    """Standardise input features per dimension with statistics fitted on the training data
    (:class:`models.layers.FeatureStandardizer`); for L2-normalised CLIP library features."""

    def __post_init__(self) -> None:
        for name in ("video_dim", "query_dim", "dim", "num_heads", "max_positions", "num_conv_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.aux_video_dim != 0:
            raise ValueError("VSLNet reads a single video stream; aux_video_dim must be 0")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} must be divisible by num_heads {self.num_heads}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attention_dropout < 1.0):
            raise ValueError("dropout and attention_dropout must be in [0, 1)")


class ContextQueryAttention(nn.Module):
    """Trilinear context–query attention: S = c·w_C + q·w_Q + (c∘w_m)·qᵀ, S_r = softmax over query tokens,
    S_c = softmax over video bins; A = S_r q, B = S_r S_cᵀ c; out = W[c, A, c∘A, c∘B]."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.w_c = nn.Linear(dim, 1, bias=False)
        self.w_q = nn.Linear(dim, 1, bias=False)
        self.w_m = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.xavier_uniform_(self.w_m)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, c: torch.Tensor, q: torch.Tensor, c_mask: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        cd, qd = self.dropout(c), self.dropout(q)
        s = self.w_c(cd) + self.w_q(qd).transpose(1, 2) + torch.matmul(cd * self.w_m, qd.transpose(1, 2))
        s_r = masked_logits(s, q_mask[:, None, :]).softmax(2).to(c.dtype)  # over query tokens
        s_c = masked_logits(s, c_mask[:, :, None]).softmax(1).to(c.dtype)  # over video bins
        a = torch.matmul(s_r, q)
        # B = S_r S_cᵀ c, multiplied right to left: (S_cᵀ c) is [T, d], so no [L, L] matrix is ever built.
        b = torch.matmul(s_r, torch.matmul(s_c.transpose(1, 2), c))
        return split_linear(self.out, [c, a, c * a, c * b])


@register_localizer("vslnet")
class VSLNet(Localizer):
    config_class = VSLNetConfig
    config: VSLNetConfig

    def __init__(self, config: VSLNetConfig | None = None) -> None:
        super().__init__(config or VSLNetConfig())
        cfg = self.config
        self.video_norm = FeatureStandardizer(cfg.video_dim) if cfg.standardize_video else None
        self.video_dropout = Dropout(cfg.dropout)
        self.video_proj = nn.Linear(cfg.video_dim, cfg.dim)  # = 1×1 conv
        self.query_proj = nn.Linear(cfg.query_dim, cfg.dim)
        self.encoder = FeatureEncoder(
            cfg.dim,
            cfg.num_heads,
            cfg.max_positions,
            cfg.kernel_size,
            cfg.num_conv_layers,
            cfg.dropout,
            cfg.attention_dropout,
        )
        self.cq_attention = ContextQueryAttention(cfg.dim, cfg.dropout)
        self.query_pool = AttentionPool(cfg.dim)
        self.cq_concat = nn.Linear(2 * cfg.dim, cfg.dim)
        self.highlight = nn.Linear(cfg.dim, 1)
        self.predictor = ConditionedSpanPredictor(
            cfg.dim, cfg.num_heads, cfg.max_positions, cfg.dropout, cfg.attention_dropout
        )

    def encode_video(self, video, video_mask, video_aux=None):
        if self.video_norm is not None:
            video = self.video_norm(video)
        x = self.video_proj(self.video_dropout(zero_padding(video, video_mask)))
        return {"video": self.encoder(x, video_mask), "video_mask": video_mask}

    def fuse(self, encoded, query, query_mask):
        # A shared clip (batch 1) stays batch 1: every query-independent product broadcasts instead of
        # being recomputed per query.
        c, c_mask = encoded["video"], encoded["video_mask"]
        q = self.encoder(self.query_proj(zero_padding(query, query_mask)), query_mask)
        x = self.cq_attention(c, q, c_mask, query_mask)
        pooled = self.query_pool(q, query_mask)
        x = split_linear(self.cq_concat, [x, pooled.unsqueeze(1)])  # = conv([x, pooled tiled over time])
        h_logits = masked_logits(self.highlight(x).squeeze(-1), c_mask)
        h = torch.sigmoid(h_logits)
        start, end = self.predictor(x * h.unsqueeze(-1).to(x.dtype), c_mask)
        return LocalizerOutput(start, end, c_mask.expand_as(start), highlight=h, aux={"highlight_logits": h_logits})

    def loss(self, outputs: LocalizerOutput, targets: SpanTargets) -> dict[str, torch.Tensor]:
        cfg = self.config
        mask = outputs.video_mask
        labels = targets.highlight
        if labels is None:
            labels = highlight_labels(targets.start, targets.end, mask, cfg.highlight_extend)
        span = span_cross_entropy(outputs.start_logits, outputs.end_logits, targets)
        highlight = cfg.highlight_loss_weight * weighted_highlight_bce(
            outputs.aux["highlight_logits"], labels, mask, cfg.highlight_positive_weight
        )
        return {"span": span, "highlight": highlight, "total": span + highlight}

    def absent_loss(self, outputs: LocalizerOutput) -> torch.Tensor:
        mask = outputs.video_mask
        return self.config.highlight_loss_weight * absent_highlight_bce(outputs.aux["highlight_logits"], mask)
