"""The training loop of EgoRecall's trained modes: NaQ's two stages for any registered localizer.

``run(config)`` trains one stage end to end: it opens the clip features and the frozen text encoder, picks the
training queries (NLQ, narrations, few-shot share), builds the model (fresh, or from ``init_from`` for stage
2), and runs AdamW with linear warm-up and decay, gradient clipping, gradient accumulation and mixed
precision on GPU through the step loop both training tasks share (:mod:`training.engine`; set-up pieces in
:mod:`training.run_setup`; resume checks, a finished run found again and restored RNGs in
:mod:`training.resume`). Every ``eval.every`` steps rank 0 answers the validation queries exactly as the app
will (:mod:`training.evaluation`) and keeps the best weights by ``eval.metric``. At the end (or when stopped)
it publishes ``<name>-best`` and ``<name>-final`` to the checkpoints folder with full metadata, so
``checkpoints list`` and the app find them.

Interruptions: a snapshot (:mod:`training.snapshot`) is written every ``output.snapshot_every`` steps and at
every evaluation; running the same config again continues from the newest one (``resume=None``, the
default) and reproduces the uninterrupted run (same batches, same augmentations, same RNG streams). A stop
request (``stop.set()``, or Ctrl-C / SIGTERM in the CLI) ends the run cleanly after the current step,
with a snapshot and published checkpoints.

Under ``torchrun`` the model is wrapped in DistributedDataParallel and the batch is split over processes
(:mod:`training.distributed`); only rank 0 evaluates, logs and writes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from models.clip_encoder import ClipEncoder
from models.inference import InferenceConfig
from models.localizer import Localizer
from models.text_tokens import load_text_encoder
from models.windows import LengthPrior
from training import distributed as ddp
from training.config import TrainConfig
from training.dataset import (
    ClipStore,
    EpochBatchSampler,
    answer_length_prior,
    answer_span_limit,
    merge_nlq_files,
    repeat_queries,
    select_training_queries,
)
from training.engine import Cadence, Optimization, StepLoop
from training.evaluation import Validator, headline_metrics
from training.features import ClipFeatureSource
from training.nlq import load_nlq
from training.publishing import checkpoint_metadata, publish_checkpoint
from training.resume import CONFIG_FILE, check_resumable, finished_result, resolved_model_config, restore_rng
from training.run_result import RESULT_FILE, TrainResult
from training.run_setup import (
    TrainingError,
    build_model,
    load_init,
    open_feature_source,
    optimisation,
    resolve_text_spec,
    rng_state,
    training_loader,
    weights_digest,
)
from training.runlog import Progress, RunLog
from training.snapshot import latest_snapshot, load_snapshot, read_snapshot_meta, remove_temporaries, write_snapshot
from training.span_steps import RunContext, SpanSteps
from training.text_features import TextFeatureCache

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- the trainer
class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        encoder: ClipEncoder | None = None,
        resume: bool | None = None,
        show_progress: bool = False,
    ) -> None:
        config.validate()
        self.config = config
        self.progress = progress
        self.stop = stop or threading.Event()
        self.encoder = encoder
        """An already loaded image-text encoder, reused for the text tokens when its weights are theirs."""
        self.resume = resume
        self.show_progress = show_progress

    # ------------------------------------------------------------------ entry
    def run(self) -> TrainResult:
        info = ddp.setup(self.config.device)
        self.info = info
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run()
        finally:
            ddp.teardown(info)

    def _run(self) -> TrainResult:
        """The run's steps in order: its folder, text and data, batches, optimiser, state, the loop."""
        cfg, info = self.config, self.info
        run_dir = self.run_dir = cfg.run_dir()
        done = finished_result(run_dir, self.config, self.resume)
        if done is not None:
            return done
        snapshot = self._prepare_run_dir(run_dir)
        source = open_feature_source(cfg)
        init_model, init_meta = load_init(self.config, source)
        encoder, text_spec, texts = self._text_encoder(source, init_meta)
        data = self._training_queries(source)
        model = build_model(self.config, source, encoder.dim, init_model, init_meta)
        core: Localizer = model
        if cfg.data.negative_probability > 0 and not core.trains_on_absent_answers():
            raise TrainingError(
                f"data.negative_probability needs a localizer that can learn 'the answer is not here'; "
                f"{core.name} has no absent loss (set data.negative_probability: 0)"
            )
        max_bins, resample_to, max_span_s = self._limits(core, data)
        length_prior = answer_length_prior(data.queries, cfg.eval.length_prior_weight)
        validator = self._validator(source, texts, max_span_s, resample_to, length_prior)
        self._encode_texts(texts, data.texts + (validator.texts_needed if validator else []))
        fit_norm = init_model is None and snapshot is None  # a fresh model learns the features' statistics
        loader, sampler = training_loader(cfg, info, model, source, data, texts, max_bins, resample_to, fit_norm)
        per_epoch = sampler.batches_per_epoch
        total = cfg.optim.steps or max(1, math.ceil((cfg.optim.epochs or 0.0) * per_epoch))  # validated: one is set
        train_model, optimizer, scheduler, scaler, autocast = optimisation(cfg, info, model, total)
        step, resumed_from = self._restore_or_start(snapshot, run_dir, model, optimizer, scheduler, scaler)
        self.ctx = RunContext(
            cfg=cfg,
            info=info,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            source=source,
            encoder=encoder,
            text_spec=text_spec,
            data=data,
            validator=validator,
            total=total,
            per_epoch=per_epoch,
            init_meta=init_meta,
            resample_to=resample_to,
            max_bins=max_bins,
            max_span_s=max_span_s,
            length_prior=length_prior,
        )
        self._log(
            "start",
            step,
            run_dir=str(run_dir),
            resumed_from=resumed_from,
            model=core.name,
            parameters=sum(p.numel() for p in model.parameters()),
            device=str(info.device),
            world_size=info.world_size,
            data={
                **data.summary,
                "val_queries": len(validator.queries) if validator else 0,
                "steps_per_epoch": per_epoch,
                "batch_size": cfg.optim.batch_size,
            },
            config=cfg.to_dict(),
        )
        params = [p for p in model.parameters() if p.requires_grad]
        optimization = Optimization(optimizer, params, cfg.optim.grad_clip, scaler, scheduler=scheduler)
        steps = SpanSteps(
            train_model, core, self._batches(loader, sampler, step, per_epoch), info, autocast, optimization
        )
        return self._loop(steps, optimization, train_model, step, total, per_epoch)

    # ------------------------------------------------------------------ the run's steps
    def _prepare_run_dir(self, run_dir: Path):
        """The run folder (made by the main process, temporaries of a killed run removed) and the snapshot to
        resume from, if any (refused when it belongs to another run)."""
        if self.info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_temporaries(run_dir)
        ddp.barrier(self.info)
        snapshot = latest_snapshot(run_dir)
        if self.resume and snapshot is None:
            raise TrainingError(f"There is nothing to resume in {run_dir}: it holds no training snapshot.")
        if snapshot is not None:
            check_resumable(read_snapshot_meta(snapshot), self.config)
        return snapshot

    def _text_encoder(self, source: ClipFeatureSource, init_meta):
        """The frozen text encoder (the init checkpoint's own, if any) and its feature cache."""
        cfg, info = self.config, self.info
        text_spec = resolve_text_spec(cfg, source, init_meta)
        device = info.device if info.device.type == "cuda" else "cpu"
        encoder = load_text_encoder(text_spec, device, encoder=self.encoder)
        if init_meta is not None and init_meta.text_encoder.key != encoder.key:
            raise TrainingError(
                f"The checkpoint {cfg.init_from} was trained with text encoder "
                f"'{init_meta.text_encoder.key}', not '{encoder.key}'; leave the text settings "
                "out to use the checkpoint's own."
            )
        return encoder, text_spec, TextFeatureCache.for_encoder(encoder, cfg.text.cache_dir, cfg.text.batch_size)

    def _training_queries(self, source: ClipFeatureSource):
        cfg = self.config
        data = select_training_queries(
            merge_nlq_files(cfg.data.train),
            source,
            narrations=cfg.uses_narrations,
            nlq_fraction=cfg.data.nlq_fraction,
            few_shot_seed=cfg.data.few_shot_seed,
            drop_empty=cfg.data.drop_empty,
        )
        data = repeat_queries(data, cfg.data.repeat)
        if not data.queries:
            raise TrainingError(
                f"No training queries are left in {', '.join(cfg.data.train)} (stage {cfg.stage}, "
                f"nlq_fraction {cfg.data.nlq_fraction}, narrations {cfg.uses_narrations}); "
                "check the files and that their videos are in the feature source."
            )
        return data

    def _limits(self, core: Localizer, data) -> tuple[int | None, int | None, float]:
        """(bins per training clip or None for any, the grid clips are resampled to or None, the longest answer
        in seconds)."""
        cfg = self.config
        max_bins = cfg.data.max_bins or core.max_positions
        if core.max_positions is not None and max_bins is not None and max_bins > core.max_positions:
            raise TrainingError(f"data.max_bins {max_bins} exceeds the model's {core.max_positions} positions.")
        resample_to = cfg.data.resample_to if cfg.data.long_clips == "resample" else None
        if resample_to and core.max_positions is not None and resample_to > core.max_positions:
            raise TrainingError(f"data.resample_to {resample_to} exceeds the model's {core.max_positions} positions.")
        max_span_s = cfg.eval.max_span_s if cfg.eval.max_span_s is not None else answer_span_limit(data.queries)
        return max_bins, resample_to, max_span_s

    def _validator(
        self, source, texts, max_span_s: float, resample_to: int | None, length_prior: LengthPrior | None
    ) -> Validator | None:
        cfg = self.config
        if not cfg.data.val:
            return None
        val_ds = load_nlq(cfg.data.val)
        inference = InferenceConfig(
            k=cfg.eval.k,
            max_span_s=max_span_s,
            query_batch=cfg.eval.query_batch,
            resample_to=resample_to,
            length_prior=length_prior,
        )
        validator = Validator(val_ds, ClipStore(source, val_ds.clips, None, cfg.data.cache_clips), texts, inference)
        if not validator.queries:
            raise TrainingError(f"The validation file {cfg.data.val} has no annotated queries.")
        return validator

    def _restore_or_start(self, snapshot, run_dir: Path, model, optimizer, scheduler, scaler) -> tuple[int, int | None]:
        """The state a resumed run continues from (weights, optimiser, schedule, RNGs, the best so far, the log
        cut back to the snapshot), or a fresh one; returns (step, the step resumed from or None)."""
        cfg, info = self.config, self.info
        self.log = RunLog(run_dir, enabled=info.is_main, progress=self.progress, tensorboard=cfg.output.tensorboard)
        step, run_time, best, history, best_weights, resumed_from = 0, 0.0, None, [], None, None
        if snapshot is not None:
            st = load_snapshot(snapshot, model, optimizer, info.device)
            step, resumed_from = st.step, st.step
            run_time = float(st.meta.get("time", 0.0))
            best, history, best_weights = st.meta.get("best"), list(st.meta.get("history", [])), st.best_weights
            scheduler.load_state_dict(st.meta["scheduler"])
            if scaler is not None and st.meta.get("scaler"):
                scaler.load_state_dict(st.meta["scaler"])
            restore_rng(st.rng, int(st.meta.get("world_size", 1)), self.info, cfg.seed, step)
            self.log.truncate(int(st.meta.get("log_bytes", 0)))
            logger.info("resuming %s from step %d", run_dir, step)
        elif info.is_main:
            (run_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
        self.best, self.history, self.best_weights = best, history, best_weights
        self.run_time, self.session_start = run_time, time.monotonic()
        return step, resumed_from

    def _loop(self, steps, optimization, train_model, step: int, total: int, per_epoch: int) -> TrainResult:
        """The loop (``training/engine.py``: the step, the log, stopping, when to evaluate and snapshot), then
        the final evaluation if the last one is still due, and the published checkpoints."""
        cfg, info, validator = self.config, self.info, self.ctx.validator
        bar = None
        if self.show_progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=step, desc=cfg.name, unit="step", dynamic_ncols=True)
        cadence = Cadence(cfg.output.log_every, cfg.eval.every or per_epoch, cfg.output.snapshot_every)
        loop = StepLoop(steps, optimization, cadence, info, self._log, self.stop, bar)
        train_model.train()
        try:
            end = loop.run(
                step,
                total,
                evaluate=(lambda at: self._evaluate(at, bar)) if validator is not None else None,
                snapshot=self._snapshot,
            )
        finally:
            if bar is not None:
                bar.close()
        if end.stopped:
            logger.info("stop requested: ending %s at step %d of %d", cfg.name, end.step, total)
        final_done = end.evaluated_at == end.step or (self.history and self.history[-1]["step"] == end.step)
        if validator is not None and not final_done:
            self._evaluate(end.step, None)  # resumed from the last snapshot: the final figures are still due
        return self._finish(end.step, end.stopped)

    # ------------------------------------------------------------------ pieces
    def _encode_texts(self, texts: TextFeatureCache, needed: list[str]) -> None:
        """Rank 0 fills a shared disk cache first; then every rank has every text in memory."""
        info = self.info
        if info.distributed and texts.folder is not None:
            if info.is_main:
                texts.ensure(needed, self._text_progress())
            ddp.barrier(info)
            if not info.is_main:
                texts.reload()
        texts.ensure(needed, self._text_progress() if info.is_main else None)

    def _text_progress(self):
        if not (self.show_progress and self.info.is_main):
            return None
        from tqdm import tqdm

        bar = {"bar": None}

        def update(done: int, total: int) -> None:
            if bar["bar"] is None:
                bar["bar"] = tqdm(total=total, desc="text features", unit="text", dynamic_ncols=True)
            bar["bar"].n = done
            bar["bar"].refresh()
            if done >= total:
                bar["bar"].close()

        return update

    def _batches(self, loader: DataLoader, sampler: EpochBatchSampler, step: int, per_epoch: int):
        epoch, skip = divmod(step, per_epoch)
        while True:
            sampler.set_epoch(epoch, skip)
            yield from loader
            epoch, skip = epoch + 1, 0

    def _now(self) -> float:
        return self.run_time + (time.monotonic() - self.session_start)

    def _log(self, event: str, step: int, **values) -> dict[str, Any]:
        c = self.ctx
        return self.log.write(event, step, c.total, step / c.per_epoch, self._now(), **values)

    def _evaluate(self, step: int, bar) -> None:
        c, info = self.ctx, self.info
        if info.is_main and c.validator is not None:
            scores = c.validator.evaluate(c.model)
            metrics = headline_metrics(scores)
            metric = self.config.eval.metric
            if metric not in metrics:
                raise TrainingError(f"eval.metric '{metric}' is not one of {', '.join(metrics)}.")
            value = metrics[metric]
            is_best = self.best is None or value > self.best["value"]
            if self.best is None or is_best:
                self.best = {"step": step, "metric": metric, "value": value, "metrics": metrics}
                self.best_weights = {k: v.detach().to("cpu").clone() for k, v in c.model.state_dict().items()}
            best = self.best
            self.history.append({"step": step, "metrics": metrics})
            self._log(
                "eval", step, metrics=metrics, is_best=is_best, best={k: best[k] for k in ("step", "metric", "value")}
            )
            if bar is not None:
                bar.write(
                    f"step {step}: {metric} {value:.2f} (best {best['value']:.2f} at step {best['step']})",
                    file=sys.stderr,
                )
        ddp.barrier(info)

    def _snapshot(self, step: int) -> None:
        c, info = self.ctx, self.info
        states = ddp.gather_objects(info, rng_state(info.device))
        if info.is_main:
            rng = {}
            for r, s in enumerate(states):
                for k, v in s.items():
                    rng[f"{k}.rank{r}"] = v
            meta = {
                "time": self._now(),
                "world_size": info.world_size,
                "scheduler": c.scheduler.state_dict(),
                "scaler": c.scaler.state_dict() if c.scaler is not None else None,
                "best": self.best,
                "history": self.history,
                "log_bytes": 0,
                "config": self.config.to_dict(),
                "model_config": resolved_model_config(self.config),
            }
            # the snapshot record itself is part of the log the snapshot restores
            self._log("snapshot", step, path=str(self.run_dir / "snapshots" / f"step-{step:09d}"))
            self.log.sync()
            meta["log_bytes"] = self.log.size()
            write_snapshot(
                self.run_dir, step, c.model.state_dict(), c.optimizer.state_dict(), meta, self.best_weights, rng
            )
        ddp.barrier(info)

    # ------------------------------------------------------------------ the end
    def _publish(self, which: str, weights: dict[str, torch.Tensor], step: int, metrics: dict[str, float]) -> Path:
        meta = checkpoint_metadata(self.ctx, self.run_dir, self.best, step, metrics, which)
        return publish_checkpoint(self.ctx, self.run_dir, which, weights, step, meta, self._log)

    def _finish(self, step: int, stopped: bool) -> TrainResult:
        c, info = self.ctx, self.info
        digests = ddp.gather_objects(info, weights_digest(c.model))
        checkpoints: dict[str, Path] = {}
        final_metrics = self.history[-1]["metrics"] if self.history and self.history[-1]["step"] == step else {}
        result = None
        if info.is_main:
            if self.best is not None and self.best_weights is not None:
                checkpoints["best"] = self._publish("best", self.best_weights, self.best["step"], self.best["metrics"])
            checkpoints["final"] = self._publish("final", c.model.state_dict(), step, final_metrics)
            result = TrainResult(
                self.run_dir,
                step,
                c.total,
                stopped,
                self.best,
                final_metrics,
                checkpoints,
                list(self.history),
                digests,
            )
            self._log(
                "done",
                step,
                stopped=stopped,
                best=self.best,
                checkpoints={k: str(v) for k, v in checkpoints.items()},
                replica_digests=digests,
            )
            tmp = self.run_dir / (RESULT_FILE + ".tmp")
            tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.run_dir / RESULT_FILE)
            self.log.close()
        result = ddp.broadcast_object(info, result.to_dict() if result is not None else None)
        return TrainResult.from_dict(result)


def run(
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    encoder: ClipEncoder | None = None,
    resume: bool | None = None,
    show_progress: bool = False,
) -> TrainResult:
    """Train one stage as ``config`` says and return what it produced.

    ``progress(record)`` receives every log record (see :mod:`training.runlog`) as it is written; ``stop`` ends
    the run cleanly after the current step; ``encoder`` reuses an already loaded encoder for the text tokens;
    ``resume``: None continues from the run folder's snapshot if there is one, True requires one (and also
    continues a run that was stopped early). ``show_progress`` draws tqdm bars (the CLI).
    """
    trainer = Trainer(config, progress=progress, stop=stop, encoder=encoder, resume=resume, show_progress=show_progress)
    return trainer.run()
