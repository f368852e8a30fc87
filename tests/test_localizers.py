"""The trained localizers: shapes, masking, learning, and the registry."""

from __future__ import annotations

import json

import pytest
import torch
from localizer_fixtures import TINY_CONFIGS, marked_moments, one_thread, random_batch

from models.grid import TimeGrid
from models.localizer import MASK_VALUE, SpanTargets, answer_bins, highlight_labels
from models.registry import (
    InvalidLocalizerConfig,
    UnknownLocalizer,
    build_localizer,
    config_from_dict,
    config_to_dict,
    localizer_names,
)

NAMES = ["vslnet", "reler"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    return build_localizer(name, {**TINY_CONFIGS[name], **overrides})


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_shapes(name):
    model = tiny(name)
    video, video_mask, query, query_mask, aux = random_batch(name)
    out = model(video, video_mask, query, query_mask, aux)
    assert out.start_logits.shape == out.end_logits.shape == out.highlight.shape == (3, 20)
    assert out.start_logits.dtype == torch.float32
    losses = model.loss(out, SpanTargets(torch.tensor([1, 4, 9]), torch.tensor([3, 8, 9])))
    assert losses["total"].ndim == 0 and torch.isfinite(losses["total"])
    assert losses["total"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "total"), rel=1e-5)
    losses["total"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    ps, pe = model.span_probabilities(out)
    assert torch.allclose(ps.sum(1), torch.ones(3)) and torch.allclose(pe.sum(1), torch.ones(3))


@pytest.mark.parametrize("name", NAMES)
def test_padding_gets_masked_and_changes_nothing(name):
    model = tiny(name).eval()
    video, video_mask, query, query_mask, aux = random_batch(name)
    out = model(video, video_mask, query, query_mask, aux)
    assert (out.start_logits[1, 14:] == MASK_VALUE).all() and (out.end_logits[1, 14:] == MASK_VALUE).all()
    assert (out.highlight[1, 14:] == 0).all()
    ps, _ = model.span_probabilities(out)
    assert (ps[1, 14:] == 0).all()
    # Clip 1 alone, unpadded, with garbage where the padding was: same outputs for its real bins.
    alone = model(
        video[1:2, :14], video_mask[1:2, :14], query[1:2], query_mask[1:2], None if aux is None else aux[1:2, :14]
    )
    assert torch.allclose(alone.start_logits[0], out.start_logits[1, :14], atol=1e-5)
    assert torch.allclose(alone.end_logits[0], out.end_logits[1, :14], atol=1e-5)
    garbage = video.clone()
    garbage[1, 14:] = 1e3
    again = model(garbage, video_mask, query, query_mask, aux)
    assert torch.allclose(again.start_logits, out.start_logits, atol=1e-5)
    # Padded query tokens do not matter either.
    q2 = query.clone()
    q2[-1, 3:] = -50.0
    assert torch.allclose(model(video, video_mask, q2, query_mask, aux).end_logits, out.end_logits, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_shared_clip_answers_every_query_like_separate_clips(name):
    model = tiny(name).eval()
    video, video_mask, query, query_mask, aux = random_batch(name)
    one = model.encode_video(video[:1], video_mask[:1], None if aux is None else aux[:1])
    shared = model.fuse(one, query, query_mask)
    separate = model(
        video[:1].expand(3, -1, -1),
        video_mask[:1].expand(3, -1),
        query,
        query_mask,
        None if aux is None else aux[:1].expand(3, -1, -1),
    )
    assert shared.start_logits.shape == (3, 20)
    assert torch.allclose(shared.start_logits, separate.start_logits, atol=1e-5)
    assert torch.allclose(shared.end_logits, separate.end_logits, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_absent_loss_pushes_every_real_bins_highlight_down(name):
    """A question whose answer is not in the clip: the loss is the highlight BCE against 0 on real bins only,
    and a few steps on it lower the highlight everywhere (what "no good match" reads)."""
    model = tiny(name)
    assert type(model).trains_on_absent_answers()
    video, video_mask, query, query_mask, aux = random_batch(name)
    out = model(video, video_mask, query, query_mask, aux)
    loss = model.absent_loss(out)
    probs = out.highlight.float().clamp(1e-6, 1 - 1e-6)
    by_hand = -(torch.log1p(-probs) * video_mask).sum() / video_mask.sum() * model.config.highlight_loss_weight
    if name == "vslnet":  # one head: the loss is exactly the mean BCE against 0 over real bins
        assert loss.item() == pytest.approx(by_hand.item(), rel=1e-3)
    before = out.highlight[video_mask].mean().item()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        model.absent_loss(model(video, video_mask, query, query_mask, aux)).backward()
        opt.step()
    with torch.no_grad():
        after = model(video, video_mask, query, query_mask, aux).highlight[video_mask].mean().item()
    assert after < 0.5 * before


@pytest.mark.parametrize("name,steps", [("vslnet", 40), ("reler", 40)])
def test_overfits_a_tiny_batch(name, steps):
    model = tiny(name)
    video, video_mask, query, query_mask, aux, start, end = marked_moments()
    targets = SpanTargets(start, end)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(steps):
        losses = model.loss(model(video, video_mask, query, query_mask, aux if name == "reler" else None), targets)
        first = first if first is not None else losses["total"].item()
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(video, video_mask, query, query_mask, aux if name == "reler" else None)
        final = model.loss(out, targets)
    assert final["span"].item() < 0.1 * first
    assert torch.equal(out.start_logits.argmax(1), start)
    assert torch.equal(out.end_logits.argmax(1), end)


def test_highlight_labels_widen_the_answer_by_ten_percent():
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    labels = highlight_labels(torch.tensor([10, 20]), torch.tensor([29, 29]), mask)
    assert labels[0].nonzero().flatten().tolist() == list(range(8, 32))  # 20 bins: 2 more each side
    assert labels[1].nonzero().flatten().tolist() == list(range(19, 30))  # stops at the last real bin
    short = highlight_labels(torch.tensor([5]), torch.tensor([7]), torch.ones(1, 40, dtype=torch.bool))
    assert short[0].nonzero().flatten().tolist() == [5, 6, 7]  # round(0.3) = 0: not widened


def test_answer_bins_pick_the_best_overlapping_pair():
    grid = TimeGrid(rate_hz=1.0, duration=20.0)
    assert answer_bins(grid, 3.0, 6.0) == (3, 5)
    assert answer_bins(grid, 2.9, 6.1) == (3, 5)  # the covering bins 2..6 stick out by 0.9 s each side
    assert answer_bins(grid, 2.2, 6.8) == (2, 6)
    assert answer_bins(grid, 4.5, 4.5) == (4, 4)


def test_targets_from_bins_match_what_the_loss_derives():
    model = tiny("vslnet").eval()
    video, video_mask, query, query_mask, _ = random_batch("vslnet")
    out = model(video, video_mask, query, query_mask)
    implicit = model.loss(out, SpanTargets(torch.tensor([1, 4, 9]), torch.tensor([3, 8, 9])))
    explicit = model.loss(out, SpanTargets.from_bins([1, 4, 9], [3, 8, 9], video_mask))
    assert implicit["highlight"].item() == pytest.approx(explicit["highlight"].item())


@pytest.mark.parametrize("name", NAMES)
def test_registry_round_trips_configs_through_json(name):
    assert name in localizer_names()
    model = tiny(name)
    as_json = json.dumps(config_to_dict(model.config))
    rebuilt = build_localizer(name, json.loads(as_json))
    assert rebuilt.config == model.config
    assert type(rebuilt).name == name
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_registry_refuses_unknown_names_and_fields():
    with pytest.raises(UnknownLocalizer, match="known models: reler, vslnet"):
        build_localizer("moment-detr")
    with pytest.raises(InvalidLocalizerConfig, match="hidden_dim"):
        config_from_dict("vslnet", {"hidden_dim": 64})
    with pytest.raises(InvalidLocalizerConfig, match="dim"):
        config_from_dict("vslnet", {"dim": "wide"})
    with pytest.raises(InvalidLocalizerConfig):
        config_from_dict("vslnet", {"dim": 130, "num_heads": 8})


def test_defaults_match_the_reference_sizes():
    vsl = config_from_dict("vslnet")  # the reference's sizes, but 4 attention heads of 32 instead of 8 of 16
    assert (vsl.dim, vsl.num_heads, vsl.dropout, vsl.kernel_size, vsl.num_conv_layers) == (128, 4, 0.2, 7, 4)
    assert vsl.highlight_loss_weight == 5.0 and vsl.max_positions == 1024
    rel = config_from_dict("reler")
    assert (rel.dim, rel.num_co_layers, rel.train_scales) == (256, 3, (2, 3, 4, 5, 6))
    assert (rel.highlight_loss_weight, rel.saliency_margin, rel.contrastive_dim, rel.temperature) == (
        20.0,
        0.2,
        64,
        0.07,
    )


def test_inputs_are_checked():
    model = tiny("vslnet")
    video, video_mask, query, query_mask, _ = random_batch("vslnet")
    with pytest.raises(ValueError, match="video features"):
        model(video[..., :8], video_mask, query, query_mask)
    with pytest.raises(ValueError, match="at most 64 bins"):
        model(torch.randn(1, 65, 16), torch.ones(1, 65, dtype=torch.bool), query[:1], query_mask[:1])
    bad_mask = video_mask.clone()
    bad_mask[0, 0] = False
    with pytest.raises(ValueError, match="padding must come after"):
        model(video, bad_mask, query, query_mask)


def test_reler_runs_every_eval_scale_and_handles_clips_shorter_than_a_segment_count():
    model = tiny("reler", eval_scales=[2, 4, 6]).eval()
    video, _, query, query_mask, aux = random_batch("reler", length=3)
    video_mask = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    out = model(video, video_mask, query, query_mask, aux)
    assert len(model.span_distributions(out)) == 3
    assert torch.isfinite(out.start_logits[video_mask]).all()
    losses = model.loss(out, SpanTargets(torch.tensor([0, 1, 2]), torch.tensor([1, 1, 2])))
    assert torch.isfinite(losses["total"])


@pytest.mark.parametrize("name", NAMES)
def test_attention_dropout_is_its_own_setting_and_off_by_default(name):
    """Dropout on attention probabilities forces PyTorch's unfused attention (4.5x slower VSLNet training on
    CPU at 900 bins), so it is a setting of its own, off by default, while the other dropouts stay."""
    fixed = {"train_scales": [2]} if name == "reler" else {}
    assert config_from_dict(name, {}).attention_dropout == 0.0  # a config saved before the field loads as off
    video, video_mask, query, query_mask, aux = random_batch(name)
    for attention_dropout, same in ((0.0, True), (0.5, False)):
        model = tiny(name, dropout=0.0, attention_dropout=attention_dropout, **fixed).train()
        a, b = (model(video, video_mask, query, query_mask, aux).start_logits for _ in range(2))
        assert torch.equal(a, b) == same
    with pytest.raises(InvalidLocalizerConfig):
        tiny(name, attention_dropout=1.0)
