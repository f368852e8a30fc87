"""The pretraining run: narrations + videos -> an open_clip encoder that matches words with egocentric frames.

Both towers of an open_clip model (and its temperature) are fine-tuned with EgoNCE
(:mod:`training.pretrain.loss`) on (frame, narration) pairs (:mod:`training.pretrain.pairs`); one optimiser
step's parts (schedule, crops, loss, optimiser) are :mod:`training.pretrain.step`.

One step, per process: take the step's batch of moments (scene-aware, see ``SceneBatchSampler``); for each
draw ``frames_per_clip`` of its cached frames at random (their embeddings are averaged); random-resized-crop
them; embed frames and normalised narrations; EgoNCE over the global batch; AdamW with linear warm-up and
cosine decay, gradient clipping, the temperature clamped as in CLIP (at most 100). On CUDA the forward pass
runs under bf16 autocast (fp16 with loss scaling where bf16 is missing); CPU runs fp32.

Determinism and resuming: the batches of epoch e are a function of (seed, e), and every random draw of step
s (frames, crops) is a function of (seed, s, rank), so a run resumed from the snapshot saved after step s
(:mod:`training.snapshot`, the resume format of every training task) continues exactly as the uninterrupted
run would have (up to floating-point non-determinism of the kernels).

Bookkeeping: ``<work dir>/log.jsonl`` is the same run log as localizer training's (:mod:`training.runlog`:
``start``, ``train`` every ``log_every`` steps with loss, lr, temperature and pairs/s, ``eval`` with the held-out
retrieval metrics of :mod:`training.pretrain.evaluate`, ``done``), cut back to the snapshot's length on resume;
a tqdm bar shows progress. The result is written with
:func:`checkpoints.encoder.save_encoder_weights`, after which the resume state is deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from checkpoints.encoder import save_encoder_weights
from models.clip_encoder import ClipEncoder, EncoderSpec
from training.distributed import DistInfo, barrier, setup, teardown
from training.engine import Cadence, Optimization, StepLoop, StepOutput
from training.pretrain.config import DEFAULT_EPOCHS, RUN_DEFINING, PretrainConfig, PretrainError
from training.pretrain.data import (
    SceneBatchSampler,
)
from training.pretrain.evaluate import retrieval_metrics
from training.pretrain.loss import EgoNCELoss
from training.pretrain.pairs import load_pairs
from training.pretrain.step import (
    clamp_logit_scale,
    egonce_loss,
    lr_at,
    make_optimizer,
    random_resized_crops,
    step_rng,
)
from training.runlog import LOG_FILE, RunLog
from training.snapshot import (
    SNAPSHOT_DIR,
    SnapshotError,
    latest_snapshot,
    load_snapshot,
    remove_snapshots,
    write_snapshot,
)

logger = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    out: Path
    sidecar: dict
    metrics: dict
    """Held-out retrieval metrics of the final weights (empty without held-out videos)."""
    steps: int
    log: Path
    stopped: bool = False
    """Ended early by a stop request: no weights were written; ``--resume`` continues from the snapshot."""


class _EgoNCESteps:
    """Pretraining's part of an optimiser step: the scene batch of the step, its frames augmented, EgoNCE."""

    unit = "pairs"

    def __init__(self, run: _Run, net: torch.nn.Module, loss_fn: EgoNCELoss, sampler, optimization: Optimization):
        self.run, self.net, self.loss_fn, self.sampler = run, net, loss_fn, sampler
        self.optimization = optimization
        self._epoch: tuple[int, list[np.ndarray]] | None = None

    def step(self, step: int) -> StepOutput:
        run, cfg, ctx = self.run, self.run.cfg, self.run.ctx
        epoch, pos = divmod(step, self.sampler.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self.sampler.epoch(epoch))
        batch = self._epoch[1][pos]
        images = run._images(batch, step)
        tokens = run.pairs.tokens[batch].to(ctx.device, non_blocking=True)
        keys = run.pairs.keys[batch].to(ctx.device)
        loss = egonce_loss(
            self.net, self.loss_fn, images, tokens, keys, frames_per_clip=cfg.frames_per_clip, amp=run._amp()
        )
        value = float(loss.detach())
        if not math.isfinite(value):
            raise PretrainError(f"the loss became {value} at step {step + 1}; lower --lr")
        self.optimization.scale(loss).backward()
        return StepOutput({"egonce": value, "total": value}, len(batch))

    def after_step(self, step: int) -> dict:
        clamp_logit_scale(self.run.model)
        return {"logit_scale": float(self.run.model.logit_scale.detach().exp())}


class _Run:
    def __init__(self, config: PretrainConfig, ctx: DistInfo, stop: threading.Event | None = None) -> None:
        self.cfg = config
        self.ctx = ctx
        self.stop = stop or threading.Event()
        self.work = config.resolved_work_dir
        self.state_dir = self.work / SNAPSHOT_DIR
        self.log_path = self.work / LOG_FILE
        self.log: RunLog | None = None
        self.total = self.steps_per_epoch = 1
        self.started = time.monotonic()
        self.wall_before = 0.0
        self.metrics: dict = {}
        """The last evaluation's retrieval metrics (main process)."""

    # ------------------------------------------------------------------------------------------ set-up
    def _check_paths(self) -> None:
        cfg = self.cfg
        if cfg.out_file.exists() and not cfg.overwrite:
            raise PretrainError(f"{cfg.out} already exists; choose another --out or pass --overwrite")
        if latest_snapshot(self.work) is not None and not (cfg.resume or cfg.overwrite):
            raise PretrainError(
                f"an interrupted run left its state in {self.state_dir}; pass --resume to continue "
                f"it, or --overwrite to start over"
            )
        barrier(self.ctx)
        if cfg.overwrite and not cfg.resume and self.ctx.is_main:
            remove_snapshots(self.work)
            self.log_path.unlink(missing_ok=True)
        barrier(self.ctx)

    def _load_model(self) -> None:
        cfg = self.cfg
        spec = EncoderSpec(cfg.model, cfg.pretrained)
        base = ClipEncoder.load(spec, device="cpu")  # fp32 master weights; seeded when random
        self.base_key = base.key
        self.image_size = base.image_size
        self.tokenizer = base.tokenizer
        self.embed_dim = base.dim
        pp = base.model.visual.preprocess_cfg
        self.mean = torch.tensor(pp["mean"], dtype=torch.float32, device=self.ctx.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pp["std"], dtype=torch.float32, device=self.ctx.device).view(1, 3, 1, 1)
        self.model = base.model.to(self.ctx.device).train().requires_grad_(True)
        self.context_length = int(getattr(self.model, "context_length", 0) or 0)

    def _load_data(self) -> None:
        self.pairs = load_pairs(self.cfg, self.ctx, self.image_size, self.tokenizer)
        self.train, self.val = self.pairs.train, self.pairs.val

    # ------------------------------------------------------------------------------------------ steps
    def _images(self, batch: np.ndarray, step: int) -> torch.Tensor:
        cfg = self.cfg
        rng = step_rng(cfg.seed, step, self.ctx.rank, 2)
        k = cfg.frames_per_window
        frames = np.stack([self.train.frames(int(i), rng.choice(k, cfg.frames_per_clip, replace=False)) for i in batch])
        x = torch.from_numpy(frames.reshape(-1, *frames.shape[2:]))
        if self.ctx.device.type == "cuda":
            x = x.pin_memory().to(self.ctx.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if cfg.augment:
            x = random_resized_crops(x, step_rng(cfg.seed, step, self.ctx.rank, 3))
        return (x - self.mean) / self.std

    def _amp(self):
        if self.ctx.device.type != "cuda" or not self.cfg.amp:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self):
        amp = self._amp()
        return torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()

    def _run_defining(self) -> dict:
        d = self.cfg.to_dict()
        return {k: d[k] for k in RUN_DEFINING} | {"world_size": self.ctx.world_size, "data": self.pairs.digest}

    # ------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _encode_frames(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.ctx.device)
        x = (x.permute(0, 3, 1, 2).float().div_(255.0) - self.mean) / self.std
        with self._autocast():
            emb = self.model.encode_image(x)
        return F.normalize(emb.float(), dim=-1).cpu().numpy()

    @torch.no_grad()
    def _encode_text(self, texts) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.ctx.device)
        with self._autocast():
            emb = self.model.encode_text(tokens)
        return F.normalize(emb.float(), dim=-1).cpu().numpy()

    def evaluate(self) -> dict:
        if len(self.val) == 0:
            return {}
        self.model.eval()
        try:
            return retrieval_metrics(self._encode_frames, self._encode_text, self.val)
        finally:
            self.model.train()

    # ------------------------------------------------------------------------------------------ the loop
    def _log(self, event: str, step: int, **values) -> None:
        self.runlog.write(event, step, self.total, step / self.steps_per_epoch, self._wall(), **values)

    @property
    def runlog(self) -> RunLog:
        """The run's log, opened when the run starts."""
        if self.log is None:
            raise RuntimeError("the pretraining run has not started")
        return self.log

    def _wall(self) -> float:
        return self.wall_before + time.monotonic() - self.started

    def run(self) -> PretrainResult | None:
        """Pretrain (or resume) to the end or a stop; the result on the main process, None on the others."""
        cfg, ctx = self.cfg, self.ctx
        self._check_paths()
        self.work.mkdir(parents=True, exist_ok=True)
        self._load_model()
        self._load_data()
        sampler = SceneBatchSampler(
            self.train.by_video(), cfg.batch_size, cfg.moments_per_video, cfg.seed, ctx.rank, ctx.world_size
        )
        spe = sampler.steps_per_epoch
        total = cfg.steps or max(1, int(math.ceil((cfg.epochs or DEFAULT_EPOCHS) * spe)))
        optimizer = make_optimizer(self.model, cfg.lr, cfg.weight_decay)
        amp = self._amp()
        scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
        loss_fn = EgoNCELoss(action_aware=cfg.action_aware, rank=ctx.rank, world_size=ctx.world_size)
        self.total, self.steps_per_epoch = total, spe
        self.log = RunLog(self.work, enabled=ctx.is_main, tensorboard=False)
        step, resumed = self._resume(optimizer, scaler)
        self._log(
            "start",
            step,
            resumed_from=step if resumed else None,
            model=cfg.model,
            device=str(ctx.device),
            world_size=ctx.world_size,
        )
        net: torch.nn.Module = self.model
        if ctx.distributed:
            net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
            )
        bar = None
        if ctx.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=step, desc="pretraining", unit="step", disable=None)
        self.metrics = {}
        optimization = Optimization(
            optimizer,
            list(self.model.parameters()),
            cfg.grad_clip,
            scaler,
            lr_at=lambda s: lr_at(s, total, cfg.lr, cfg.warmup_fraction),
        )
        steps = _EgoNCESteps(self, net, loss_fn, sampler, optimization)
        cadence = Cadence(cfg.log_every, cfg.eval_every, cfg.save_every)
        loop = StepLoop(steps, optimization, cadence, ctx, self._log, self.stop, bar)
        save = functools.partial(self._snapshot, optimizer=optimizer, scaler=scaler)
        try:
            end = loop.run(step, total, evaluate=self._evaluate_at, snapshot=save, on_interrupt=save)
        finally:
            if bar is not None:
                bar.close()
        return self._finish(end.step, end.stopped, total, amp)

    def _resume(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> tuple[int, bool]:
        """The step to start from and whether it comes from an interrupted run (``--resume``), whose model,
        optimizer, scaler and log are restored; a run started with other settings or data is refused."""
        cfg, ctx = self.cfg, self.ctx
        state = latest_snapshot(self.work) if cfg.resume else None
        if state is None:
            if cfg.resume and ctx.is_main:
                logger.info("nothing to resume in %s; starting from the beginning", self.state_dir)
            self.runlog.truncate(0)
            return 0, False
        try:
            resumed = load_snapshot(state, self.model, optimizer)
        except SnapshotError as exc:
            raise PretrainError(str(exc)) from None
        meta = resumed.meta
        if meta.get("run") != self._run_defining():
            changed = sorted(k for k in self._run_defining() if meta.get("run", {}).get(k) != self._run_defining()[k])
            raise PretrainError(
                f"the interrupted run in {self.state_dir} was started with other settings or "
                f"data ({', '.join(changed)}); resume it with the same ones, or pass "
                f"--overwrite to start over"
            )
        self.wall_before = float(meta.get("wall_s", 0.0))
        if meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        self.runlog.truncate(int(meta.get("log_bytes", 0)))  # a curve never shows a step twice
        logger.info("resuming from %s (step %d of %d)", state, resumed.step, self.total)
        return resumed.step, True

    def _snapshot(self, at: int, *, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        if self.ctx.is_main:
            write_snapshot(
                self.work,
                at,
                self.model.state_dict(),
                optimizer.state_dict(),
                {
                    "run": self._run_defining(),
                    "wall_s": self._wall(),
                    "log_bytes": self.runlog.size(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                },
            )

    def _evaluate_at(self, at: int) -> None:
        if self.ctx.is_main:
            self.metrics = self.evaluate()
            if self.metrics:
                self._log("eval", at, metrics=self.metrics)
        barrier(self.ctx)

    def _finish(self, step: int, stopped: bool, total: int, amp) -> PretrainResult | None:
        """Pause (a stop before the end: ``--resume`` continues) or save the encoder and drop the snapshots."""
        cfg, ctx = self.cfg, self.ctx
        if stopped and step < total:  # the localizer loop's stop, too: --resume continues
            self._log("done", step, stopped=True)
            logger.info("stop requested: pretraining paused at step %d of %d (--resume continues)", step, total)
            barrier(ctx)
            return (
                PretrainResult(cfg.out_file, {}, self.metrics, step, self.log_path, stopped=True)
                if ctx.is_main
                else None
            )
        result = None
        if ctx.is_main:
            sidecar = save_encoder_weights(
                cfg.out_file, self.model, cfg.model, self._sidecar(total, self.steps_per_epoch, self.metrics, amp)
            )
            remove_snapshots(self.work)
            self._log("done", total, out=str(cfg.out), metrics=self.metrics)
            self.runlog.close()
            result = PretrainResult(cfg.out_file, sidecar, self.metrics, total, self.log_path)
        barrier(ctx)
        return result

    def _sidecar(self, total: int, spe: int, metrics: dict, amp) -> dict:
        cfg = self.cfg
        return {
            "base": {"pretrained": cfg.pretrained, "key": self.base_key},
            "image_size": self.image_size,
            "embed_dim": self.embed_dim,
            "context_length": self.context_length,
            "data": {
                "narrations": str(cfg.narrations),
                "videos_dir": str(cfg.videos_dir),
                "train_videos": self.pairs.train_videos,
                "val_videos": self.pairs.val_videos,
                "train_pairs": len(self.train),
                "val_pairs": len(self.val),
                "failed_videos": self.pairs.failed,
                **self.pairs.moment_report.to_dict(),
                "frames_per_window": cfg.frames_per_window,
            },
            "training": {
                "steps": total,
                "epochs": round(total / spe, 3),
                "batch_size": cfg.batch_size,
                "world_size": self.ctx.world_size,
                "global_batch": cfg.batch_size * self.ctx.world_size,
                "lr": cfg.lr,
                "weight_decay": cfg.weight_decay,
                "warmup_fraction": cfg.warmup_fraction,
                "grad_clip": cfg.grad_clip,
                "loss": "egonce",
                "action_aware": cfg.action_aware,
                "moments_per_video": cfg.moments_per_video,
                "frames_per_clip": cfg.frames_per_clip,
                "augment": cfg.augment,
                "seed": cfg.seed,
                "device": self.ctx.device.type,
                "amp": {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp],
                "seconds": round(self._wall(), 1),
            },
            "metrics": metrics,
        }


def pretrain(config: PretrainConfig, stop: threading.Event | None = None) -> PretrainResult | None:
    """Run (or resume) pretraining; returns the result in the main process (None in the others).

    ``stop.set()`` ends the run after the current step with a snapshot (``stopped`` result, no weights), as
    it ends a localizer run; ``resume`` continues it."""
    config.validate()
    # Decoding the frame cache happens between collectives and may take a while on a first run.
    ctx = setup(config.device, timeout=datetime.timedelta(hours=2))
    try:
        return _Run(config, ctx, stop).run()
    finally:
        teardown(ctx)
