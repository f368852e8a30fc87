"""The localizers' dropout: nn.Dropout's distribution and scaling with a cheaper CPU mask, reproducible under a
seed (resumed runs repeat their batches' masks), identity outside training."""

from __future__ import annotations

import torch

from models.layers import Dropout


def test_keeps_one_minus_p_scaled_and_passes_gradients():
    torch.manual_seed(0)
    drop = Dropout(0.2).train()
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.8) < 0.005  # 200,000 draws: the sd of the share is 0.0009
    assert torch.allclose(y[y > 0], torch.full_like(y[y > 0], 1.25))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient is the mask times the scale


def test_seeded_masks_repeat_and_evaluation_is_the_identity():
    drop = Dropout(0.5).train()
    x = torch.randn(4, 50, 8)
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), a)
    assert not torch.equal(drop(x), a)  # the next mask is another one
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
