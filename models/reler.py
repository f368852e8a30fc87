"""ReLER's multi-scale cross-modal transformer (Ego4D NLQ challenge 2022, runner-up), readable and small.

The idea: a question usually concerns one short moment, and attending over a whole 8-minute clip at once
dilutes it. So the clip is cut into ``N`` consecutive segments; inside each, video and question exchange
information through co-attention layers (ViLBERT-style: each stream attends to the other, then to itself);
a segment scorer says how likely the segment holds the answer and gates its features; the segments are
joined again and a highlight head plus a VSLNet-style conditioned span predictor find the answer. Training
picks a random ``N ∈ {2..6}`` per batch, so the model sees the clip at several granularities; inference runs
every scale in ``eval_scales`` and merges their top spans by score.

Input: the main features and an optional second stream (e.g. CLIP image features), each L2-normalised,
plus two temporal-endpoint features per bin (its start and end as fractions of the clip); two projection
layers to ``dim``, then sine position encodings. Text: frozen token features → linear → ``dim``.

Losses: start/end CE ×1, highlight weighted BCE ×20, saliency hinge (margin 0.2) ×1, segment BCE ×1,
frame–text InfoNCE (64-d, τ 0.07) ×1.

Where this differs from the ReLER paper/code (chosen for clarity and for EgoRecall's clips of any length):

* Segments are cut per clip on its own real length (segment ``n`` of a clip with ``l`` real bins is
  ``[floor(n·l/N), floor((n+1)·l/N))``), not on the padded batch length, so padding never moves a segment
  boundary and a clip's outputs do not depend on its batch.
* Each segment's copy of the question evolves with that segment only; segments do not talk to each other
  before they are joined (the span predictor's self-attention then sees the whole clip).
* The saliency hinge compares ``saliency_pairs`` random (answer bin, non-answer bin) pairs per query on the
  highlight probabilities (Moment-DETR's formulation), not all pairs.
* The contrastive loss is a per-clip, multi-positive InfoNCE: each bin's similarity to the question is the
  mean cosine similarity of its 64-d embedding with the question's 64-d token embeddings, and the answer bins
  must out-score the clip's other bins (temperature 0.07). It is computed on the projected inputs, before
  fusion, so it aligns the two modalities themselves.
* Our features live on the native 1.875 Hz grid (clips up to ``max_positions`` bins per pass) instead of being
  resampled to 600 bins; sine positions would allow any length, ``max_positions`` bounds memory.
* At evaluation, ``start_logits``/``end_logits`` hold the log of the scales' mean distributions (used for the
  validation loss and :meth:`span_probabilities`), while :meth:`span_distributions` returns every scale's own
  distributions for the top-spans-per-scale merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import (
    AttentionPool,
    ConditionedSpanPredictor,
    Dropout,
    FeatureStandardizer,
    sine_positions,
    zero_padding,
)
from models.localizer import (
    DEFAULT_HIGHLIGHT_EXTEND,
    MASK_VALUE,
    Localizer,
    LocalizerOutput,
    SpanTargets,
    absent_highlight_bce,
    answer_mask,
    expand_encoded,
    highlight_labels,
    masked_logits,
    span_cross_entropy,
    weighted_highlight_bce,
)
from models.registry import register_localizer


@dataclass(frozen=True)
class ReLERConfig:
    video_dim: int = 512
    """Main video feature size (CLIP ViT-B/16: 512; EgoVLP 256; SlowFast/InternVideo 2304)."""
    aux_video_dim: int = 0
    """Optional second video stream on the same grid (ReLER adds CLIP image features); 0 = none."""
    query_dim: int = 512
    """Text token feature size (CLIP ViT-B/16 text tokens: 512)."""
    dim: int = 256
    num_heads: int = 8
    num_co_layers: int = 3
    ffn_dim: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    """On attention probabilities; 0 keeps the fused attention kernel (non-zero materialises every
    [B, heads, T, T] mask: several times slower on CPU at 900 bins)."""
    max_positions: int = 1024
    """The longest sequence one pass sees; inference slides overlapping windows over longer clips."""
    train_scales: tuple[int, ...] = (2, 3, 4, 5, 6)
    """Segment counts N; each training batch picks one at random."""
    eval_scales: tuple[int, ...] = (2, 3, 4, 5, 6)
    """Segment counts run at evaluation/inference, whose top spans are merged by score."""
    contrastive_dim: int = 64
    temperature: float = 0.07
    saliency_margin: float = 0.2
    saliency_pairs: int = 4
    highlight_extend: float = DEFAULT_HIGHLIGHT_EXTEND
    highlight_positive_weight: float = 2.0
    span_loss_weight: float = 1.0
    highlight_loss_weight: float = 20.0
    saliency_loss_weight: float = 1.0
    segment_loss_weight: float = 1.0
    contrastive_loss_weight: float = 1.0
    standardize_video: bool = False
    """Standardise the main features per dimension (statistics fitted on the training data) before they are
    L2-normalised; see :class:`models.layers.FeatureStandardizer`."""

    def __post_init__(self) -> None:
        for name in (
            "video_dim",
            "query_dim",
            "dim",
            "num_heads",
            "num_co_layers",
            "ffn_dim",
            "max_positions",
            "contrastive_dim",
            "saliency_pairs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.aux_video_dim < 0:
            raise ValueError("aux_video_dim must be 0 (no second stream) or positive")
        if self.dim % self.num_heads or self.dim % 2:
            raise ValueError(f"dim {self.dim} must be even and divisible by num_heads {self.num_heads}")
        for name in ("train_scales", "eval_scales"):
            scales = getattr(self, name)
            if not scales or any(int(n) < 1 for n in scales):
                raise ValueError(f"{name} must list positive segment counts")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attention_dropout < 1.0):
            raise ValueError("dropout and attention_dropout must be in [0, 1)")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")


# ---------------------------------------------------------------------------------------------- blocks
class Attention(nn.Module):
    """Multi-head attention of ``x`` over ``context``; rows with no valid key attend to all (their output is
    discarded by the caller) so an empty segment cannot produce NaNs."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = context_mask | ~context_mask.any(-1, keepdim=True)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, dim))


class CoAttentionLayer(nn.Module):
    """One ViLBERT-style co-attention layer over (video segment, its copy of the question), all pre-LN
    residual: each stream attends to the other (both reading the layer's input), then to itself, then FFN.

    The last layer updates only the video: nothing reads the question stream after it, and parameters
    without gradients would only confuse optimisers and distributed training.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        update_text: bool = True,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_v, self.norm_t = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.v_from_t = Attention(dim, num_heads, attention_dropout)
        self.norm_v2 = nn.LayerNorm(dim)
        self.v_self = Attention(dim, num_heads, attention_dropout)
        self.ffn_v = FeedForward(dim, ffn_dim, dropout)
        self.update_text = update_text
        if update_text:
            self.t_from_v = Attention(dim, num_heads, attention_dropout)
            self.norm_t2 = nn.LayerNorm(dim)
            self.t_self = Attention(dim, num_heads, attention_dropout)
            self.ffn_t = FeedForward(dim, ffn_dim, dropout)
        self.drop = Dropout(dropout)

    def forward(self, v, v_mask, t, t_mask):
        vn, tn = self.norm_v(v), self.norm_t(t)
        v = v + self.drop(self.v_from_t(vn, tn, t_mask))
        if self.update_text:
            t = t + self.drop(self.t_from_v(tn, vn, v_mask))
            tn = self.norm_t2(t)
            t = t + self.drop(self.t_self(tn, tn, t_mask))
            t = t + self.drop(self.ffn_t(t))
        vn = self.norm_v2(v)
        v = v + self.drop(self.v_self(vn, vn, v_mask))
        v = v + self.drop(self.ffn_v(v))
        return zero_padding(v, v_mask), t


@dataclass
class Segmentation:
    """How each clip of a batch is cut into ``N`` segments, as gather indices.

    ``bounds`` ``[B, N+1]``: segment ``n`` of clip ``b`` is bins ``bounds[b, n] .. bounds[b, n+1]-1``;
    ``gather`` ``[B, N, S]``: the bin at slot ``s`` of segment ``n`` (``S`` = longest segment), valid where
    ``slot_mask``; ``scatter`` ``[B, L]``: where each bin sits in the flattened ``[N·S]`` segments.
    """

    num_segments: int
    bounds: torch.Tensor
    gather: torch.Tensor
    slot_mask: torch.Tensor
    scatter: torch.Tensor
    segment_of: torch.Tensor
    """``[B, L]``: the segment each bin belongs to (padding: 0)."""

    @classmethod
    def cut(cls, video_mask: torch.Tensor, num_segments: int) -> Segmentation:
        b, length = video_mask.shape
        device = video_mask.device
        real = video_mask.long().sum(1)
        n = torch.arange(num_segments + 1, device=device)
        bounds = torch.div(n[None, :] * real[:, None], num_segments, rounding_mode="floor")
        sizes = bounds[:, 1:] - bounds[:, :-1]
        slots = max(1, int(sizes.max()))
        s = torch.arange(slots, device=device)
        gather = bounds[:, :-1, None] + s[None, None, :]
        slot_mask = s[None, None, :] < sizes[:, :, None]
        gather = torch.where(slot_mask, gather, torch.zeros_like(gather))
        pos = torch.arange(length, device=device)
        segment_of = (pos[None, None, :] >= bounds[:, 1:, None]).sum(1).clamp(max=num_segments - 1)
        start = bounds.gather(1, segment_of)
        scatter = torch.where(video_mask, segment_of * slots + (pos[None, :] - start), torch.zeros_like(pos[None, :]))
        segment_of = torch.where(video_mask, segment_of, torch.zeros_like(segment_of))
        return cls(num_segments, bounds, gather, slot_mask, scatter, segment_of)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, D] -> [B·N, S, D]`` (invalid slots zeroed)."""
        b, _, d = x.shape
        idx = self.gather.reshape(b, -1, 1).expand(-1, -1, d)
        seg = x.gather(1, idx).view(b * self.num_segments, -1, d)
        return zero_padding(seg, self.slot_mask.reshape(b * self.num_segments, -1))

    def join(self, seg: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """``[B·N, S, D] -> [B, L, D]``, the inverse of :meth:`split` (padding zeroed)."""
        b, length = video_mask.shape
        d = seg.shape[-1]
        flat = seg.reshape(b, -1, d)
        return zero_padding(flat.gather(1, self.scatter.unsqueeze(-1).expand(-1, -1, d)), video_mask)

    def labels(self, in_answer: torch.Tensor) -> torch.Tensor:
        """``[B, N]``: 1 where the segment holds at least one answer bin."""
        hits = F.one_hot(self.segment_of, self.num_segments).bool() & in_answer.unsqueeze(-1)
        return hits.any(1).float()


# ---------------------------------------------------------------------------------------------- the model
@register_localizer("reler")
class ReLER(Localizer):
    config_class = ReLERConfig
    config: ReLERConfig

    def __init__(self, config: ReLERConfig | None = None) -> None:
        super().__init__(config or ReLERConfig())
        cfg = self.config
        in_dim = cfg.video_dim + cfg.aux_video_dim + 2
        self.video_norm = FeatureStandardizer(cfg.video_dim) if cfg.standardize_video else None
        self.video_proj = nn.Sequential(
            nn.Linear(in_dim, cfg.dim),
            nn.GELU(),
            Dropout(cfg.dropout),
            nn.Linear(cfg.dim, cfg.dim),
            nn.LayerNorm(cfg.dim),
        )
        self.query_proj = nn.Sequential(nn.Linear(cfg.query_dim, cfg.dim), nn.LayerNorm(cfg.dim))
        self.co_layers = nn.ModuleList(
            CoAttentionLayer(
                cfg.dim,
                cfg.num_heads,
                cfg.ffn_dim,
                cfg.dropout,
                update_text=i < cfg.num_co_layers - 1,
                attention_dropout=cfg.attention_dropout,
            )
            for i in range(cfg.num_co_layers)
        )
        self.segment_pool = AttentionPool(cfg.dim)
        self.segment_score = nn.Linear(cfg.dim, 1)
        self.highlight = nn.Linear(cfg.dim, 1)
        self.predictor = ConditionedSpanPredictor(cfg.dim, cfg.num_heads, None, cfg.dropout, cfg.attention_dropout)
        self.frame_embed = nn.Linear(cfg.dim, cfg.contrastive_dim)
        self.token_embed = nn.Linear(cfg.dim, cfg.contrastive_dim)

    # -------------------------------------------------------------- forward
    def encode_video(self, video, video_mask, video_aux=None):
        if self.video_norm is not None:
            video = self.video_norm(video.float())
        streams = [F.normalize(video.float(), dim=-1)]
        if video_aux is not None:
            streams.append(F.normalize(video_aux.float(), dim=-1))
        streams.append(endpoint_features(video_mask))
        x = self.video_proj(zero_padding(torch.cat(streams, -1).to(video.dtype), video_mask))
        frames = self.frame_embed(x)
        x = x + sine_positions(x.shape[1], x.shape[2], x.device, x.dtype).unsqueeze(0)
        return {"video": zero_padding(x, video_mask), "video_mask": video_mask, "frames": frames}

    def fuse(self, encoded, query, query_mask, scales: Sequence[int] | None = None):
        encoded = expand_encoded(encoded, query.shape[0])
        v, v_mask = encoded["video"], encoded["video_mask"]
        t = self.query_proj(query)
        if scales is None:
            scales = self._pick_scales()
        per_scale = [self._one_scale(v, v_mask, t, query_mask, int(n)) for n in scales]
        if len(per_scale) == 1:
            start, end = per_scale[0]["start_logits"], per_scale[0]["end_logits"]
            highlight = per_scale[0]["highlight"]
        else:
            start = _log_mean_softmax([p["start_logits"] for p in per_scale], v_mask)
            end = _log_mean_softmax([p["end_logits"] for p in per_scale], v_mask)
            highlight = torch.stack([p["highlight"] for p in per_scale]).mean(0)
        aux = {
            "scales": per_scale,
            "frames": encoded["frames"],
            "tokens": self.token_embed(t),
            "query_mask": query_mask,
        }
        return LocalizerOutput(start, end, v_mask, highlight=highlight, aux=aux)

    def _pick_scales(self) -> list[int]:
        cfg = self.config
        if self.training:
            return [cfg.train_scales[int(torch.randint(len(cfg.train_scales), (1,)))]]
        return list(cfg.eval_scales)

    def _one_scale(self, v, v_mask, t, t_mask, num_segments: int) -> dict:
        seg = Segmentation.cut(v_mask, num_segments)
        b = v.shape[0]
        sv = seg.split(v)
        sv_mask = seg.slot_mask.reshape(b * num_segments, -1)
        st = t.repeat_interleave(num_segments, 0)
        st_mask = t_mask.repeat_interleave(num_segments, 0)
        for layer in self.co_layers:
            sv, st = layer(sv, sv_mask, st, st_mask)
        seg_logits = self.segment_score(self.segment_pool(sv, sv_mask | ~sv_mask.any(-1, keepdim=True)))
        seg_logits = seg_logits.view(b, num_segments).float()
        gate = torch.sigmoid(seg_logits).view(b * num_segments, 1, 1).to(sv.dtype)
        x = seg.join(sv * gate, v_mask)
        h_logits = masked_logits(self.highlight(x).squeeze(-1), v_mask)
        h = torch.sigmoid(h_logits)
        start, end = self.predictor(x * h.unsqueeze(-1).to(x.dtype), v_mask)
        return {
            "start_logits": start,
            "end_logits": end,
            "highlight": h,
            "highlight_logits": h_logits,
            "segment_logits": seg_logits,
            "segmentation": seg,
        }

    # -------------------------------------------------------------- reading outputs
    def span_distributions(self, outputs):
        return [(p["start_logits"].softmax(-1), p["end_logits"].softmax(-1)) for p in outputs.aux["scales"]]

    # -------------------------------------------------------------- training
    def loss(self, outputs: LocalizerOutput, targets: SpanTargets) -> dict[str, torch.Tensor]:
        cfg = self.config
        mask = outputs.video_mask
        in_answer = answer_mask(targets.start, targets.end, mask.shape[1]) & mask
        labels = targets.highlight
        if labels is None:
            labels = highlight_labels(targets.start, targets.end, mask, cfg.highlight_extend)
        terms: dict[str, torch.Tensor] = {}
        scales = outputs.aux["scales"]
        for p in scales:
            seg: Segmentation = p["segmentation"]
            seg_valid = (seg.bounds[:, 1:] > seg.bounds[:, :-1]).float()
            seg_bce = F.binary_cross_entropy_with_logits(p["segment_logits"], seg.labels(in_answer), reduction="none")
            scale_terms = {
                "span": cfg.span_loss_weight * span_cross_entropy(p["start_logits"], p["end_logits"], targets),
                "highlight": cfg.highlight_loss_weight
                * weighted_highlight_bce(p["highlight_logits"], labels, mask, cfg.highlight_positive_weight),
                "saliency": cfg.saliency_loss_weight
                * saliency_hinge(p["highlight"], in_answer, mask, cfg.saliency_margin, cfg.saliency_pairs),
                "segment": cfg.segment_loss_weight * (seg_bce * seg_valid).sum() / seg_valid.sum().clamp(min=1),
            }
            for key, value in scale_terms.items():
                terms[key] = terms.get(key, 0.0) + value / len(scales)
        terms["contrastive"] = cfg.contrastive_loss_weight * frame_text_infonce(
            outputs.aux["frames"], outputs.aux["tokens"], outputs.aux["query_mask"], in_answer, mask, cfg.temperature
        )
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms

    def absent_loss(self, outputs: LocalizerOutput) -> torch.Tensor:
        mask, scales = outputs.video_mask, outputs.aux["scales"]
        per_scale = [absent_highlight_bce(p["highlight_logits"], mask) for p in scales]
        return self.config.highlight_loss_weight * torch.stack(per_scale).mean()


# ---------------------------------------------------------------------------------------------- functions
def endpoint_features(video_mask: torch.Tensor) -> torch.Tensor:
    """``[B, L, 2]``: each real bin's start and end as fractions of its clip (0 at padding)."""
    real = video_mask.float().sum(1, keepdim=True)
    pos = torch.arange(video_mask.shape[1], device=video_mask.device, dtype=torch.float32)[None, :]
    ends = torch.stack([pos / real, (pos + 1) / real], -1)
    return zero_padding(ends, video_mask)


def _log_mean_softmax(logits: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    mean = torch.stack([x.softmax(-1) for x in logits]).mean(0)
    return masked_logits(torch.log(mean.clamp(min=1e-30)), mask)


def saliency_hinge(
    scores: torch.Tensor, in_answer: torch.Tensor, mask: torch.Tensor, margin: float, pairs: int
) -> torch.Tensor:
    """mean of max(0, margin + s(neg) − s(pos)) over ``pairs`` random (answer bin, other bin) pairs per query;
    queries whose answer fills the clip have no negatives and are skipped."""
    negative = mask & ~in_answer
    usable = in_answer.any(1) & negative.any(1)
    if not bool(usable.any()):
        return scores.sum() * 0.0
    s, pos_w, neg_w = scores[usable].float(), in_answer[usable].float(), negative[usable].float()
    pos = torch.multinomial(pos_w, pairs, replacement=True)
    neg = torch.multinomial(neg_w, pairs, replacement=True)
    return F.relu(margin + s.gather(1, neg) - s.gather(1, pos)).mean()


def frame_text_infonce(
    frames: torch.Tensor,
    tokens: torch.Tensor,
    token_mask: torch.Tensor,
    in_answer: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Multi-positive InfoNCE over a clip's bins: −log(Σ_answer e^{s/τ} / Σ_all e^{s/τ}), where ``s`` is a bin's
    mean cosine similarity with the query's tokens."""
    f = F.normalize(frames.float(), dim=-1)
    tk = F.normalize(tokens.float(), dim=-1) * token_mask.unsqueeze(-1)
    mean_token = tk.sum(1) / token_mask.sum(1, keepdim=True).clamp(min=1)
    sim = torch.einsum("bld,bd->bl", f, mean_token) / temperature
    usable = in_answer.any(1)
    if not bool(usable.any()):
        return frames.sum() * 0.0
    all_ = torch.logsumexp(sim.masked_fill(~mask, MASK_VALUE), 1)
    pos = torch.logsumexp(sim.masked_fill(~in_answer, MASK_VALUE), 1)
    return (all_ - pos)[usable].mean()
