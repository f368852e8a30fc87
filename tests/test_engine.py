"""The one step loop of both training tasks (training/engine.py), on a toy task: a line fitted to points."""

from __future__ import annotations

import threading

import pytest
import torch

from training.distributed import DistInfo
from training.engine import Cadence, Optimization, StepLoop, StepOutput


class LineTask:
    """y = 3x + 1 by least squares; optionally a NaN gradient at one step, a stop or Ctrl-C at another."""

    unit = "points"

    def __init__(self, model, optimization, nan_at=None, stop_at=None, interrupt_at=None, stop=None):
        self.model, self.optimization = model, optimization
        self.nan_at, self.stop_at, self.interrupt_at, self.stop = nan_at, stop_at, interrupt_at, stop
        self.x = torch.linspace(-1, 1, 32)[:, None]
        self.y = 3 * self.x + 1

    def step(self, step: int) -> StepOutput:
        if step == self.interrupt_at:
            raise KeyboardInterrupt
        loss = ((self.model(self.x) - self.y) ** 2).mean()
        if step == self.nan_at:
            loss = loss * float("nan")
        self.optimization.scale(loss).backward()
        return StepOutput({"total": float(loss.detach())}, len(self.x))

    def after_step(self, step: int) -> dict:
        if step == self.stop_at:
            self.stop.set()
        return {"weight": float(self.model.weight.detach())}


def make(total_lr=0.3, **task_kwargs):
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=total_lr)
    optimization = Optimization(optimizer, list(model.parameters()), grad_clip=None)
    stop = threading.Event()
    task = LineTask(model, optimization, stop=stop, **task_kwargs)
    records = []

    def write(event, step, **values):
        records.append((event, step, values))

    loop = StepLoop(task, optimization, Cadence(log_every=5, eval_every=8, snapshot_every=6), DistInfo(), write, stop)
    return model, loop, records


def test_the_loop_trains_logs_evaluates_and_snapshots_on_its_schedule():
    model, loop, records = make()
    evaluated, snapshots = [], []
    end = loop.run(0, 20, evaluate=evaluated.append, snapshot=snapshots.append)
    assert end.step == 20 and not end.stopped and end.evaluated_at == 20
    w, b = float(model.weight.detach()), float(model.bias.detach())
    assert w == pytest.approx(3.0, abs=0.05) and b == pytest.approx(1.0, abs=0.05)
    train = [(s, v) for e, s, v in records if e == "train"]
    assert [s for s, _ in train] == [5, 10, 15, 20]
    assert train[-1][1]["loss"]["total"] < train[0][1]["loss"]["total"]
    assert all(v["points_per_s"] > 0 and v["lr"] == 0.3 and "weight" in v for _, v in train)
    assert evaluated == [8, 16, 20]
    assert snapshots == [6, 8, 12, 16, 18, 20]  # after every evaluation, every 6 steps, at the end


def test_resuming_continues_the_schedule_and_a_stop_ends_after_the_current_step():
    _, loop, _ = make(stop_at=11)
    evaluated, snapshots = [], []
    end = loop.run(7, 20, evaluate=evaluated.append, snapshot=snapshots.append)
    assert end.step == 11 and end.stopped
    assert evaluated == [8, 11] and snapshots == [8, 11]  # the stopped state is evaluated and saved


def test_a_non_finite_gradient_skips_the_update_and_is_counted():
    model, loop, records = make(nan_at=2)
    loop.run(0, 5, evaluate=None, snapshot=lambda s: None)
    assert torch.isfinite(model.weight).all()
    (last,) = [v for e, _, v in records if e == "train"]
    assert last["skipped_steps"] == 1


def test_ctrl_c_runs_the_interrupt_hook_with_the_steps_done():
    _, loop, _ = make(interrupt_at=3)
    saved = []
    with pytest.raises(KeyboardInterrupt):
        loop.run(0, 10, evaluate=None, snapshot=lambda s: None, on_interrupt=saved.append)
    assert saved == [3]


def test_the_learning_rate_can_follow_the_step():
    model, loop, records = make()
    loop.optimization.lr_at = lambda step: 0.1 / (1 + step)
    loop.run(0, 10, evaluate=None, snapshot=lambda s: None)
    lrs = [v["lr"] for e, _, v in records if e == "train"]
    assert lrs == pytest.approx([0.1 / 5, 0.1 / 10])  # the rate of the step each record closes
