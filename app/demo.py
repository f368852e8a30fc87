"""The offline end-to-end demo: a synthetic world, an encoder pretrained on its narrations, a library, NaQ and a
trained VSLNet, and the question "where did I put the keys?" answered zero-shot and by the trained model.

Everything runs on this machine with nothing downloaded: the world comes from :mod:`training.synthworld`, the
encoder is ``egorecall-small`` pretrained from random weights (:mod:`training.pretrain`), and the rest is the
app's own service (:class:`app.service.EgoRecall`: index, train, ask). It is the shortest honest proof that
the whole pipeline works, so every stage is the real one, only small.

Files: ``<library>/demo/`` holds the world, the encoder weights, the NaQ file, the training runs and
``demo.json`` (the config the demo was built with); the videos, their features and the published checkpoints
live in the library itself, so ``python -m app --library DIR`` browses the result. Running the demo again on
the same library reuses every finished stage (world, encoder, indexed videos, finished training runs).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.answering.base import ZEROSHOT
from app.demo_config import DEMO_DIR, DEMO_FILE, DemoConfig, DemoError
from app.demo_report import DemoProgress, DemoReport, StageProgress, StageReport, follow_jsonl
from app.text import counted

if TYPE_CHECKING:
    from app.service import EgoRecall

logger = logging.getLogger(__name__)


class _Demo:
    def __init__(
        self, service: EgoRecall, config: DemoConfig, progress: DemoProgress | None, stop: threading.Event | None
    ) -> None:
        self.service = service
        self.config = config
        self.stop = stop or threading.Event()
        self.library_root = Path(service.settings.library).expanduser().resolve()
        self.root = self.library_root / DEMO_DIR
        self.world = self.root / "world"
        self.encoder_path = self.root / "encoder" / f"{config.model}-demo.safetensors"
        self.progress = StageProgress(progress, set() if config.finetune_steps else {"finetune"})
        self.report = DemoReport(
            library=self.library_root,
            world=self.world,
            question=config.question,
            checkpoints_dir=Path(service.settings.checkpoints_dir),
        )

    # ------------------------------------------------------------------ the run
    def run(self) -> DemoReport:
        started = time.monotonic()
        import torch

        threads = torch.get_num_threads()
        try:
            if self.config.threads:
                torch.set_num_threads(self.config.threads)
            return self._run(started)
        finally:
            torch.set_num_threads(threads)

    def _run(self, started: float) -> DemoReport:
        cfg = self.config
        self._check_library()
        self._claim_demo_folder()
        steps = [
            ("world", self._world),
            ("pretrain", self._pretrain),
            ("index", self._index),
            ("naq", self._naq),
            ("train", self._train),
        ]
        if cfg.finetune_steps:
            steps.append(("finetune", self._finetune))
        steps.append(("ask", self._ask))
        for name, fn in steps:
            if self.stop.is_set():
                self.report.stopped = True
                logger.info("demo stopped before stage %s", name)
                break
            self.progress(name, 0.0)
            t0 = time.monotonic()
            reused, detail = fn()
            self.report.stages.append(StageReport(name, time.monotonic() - t0, reused, detail))
            self.progress(name, 1.0)
            logger.info("demo stage %s: %.1f s%s", name, time.monotonic() - t0, " (reused)" if reused else "")
            if self.report.stopped:
                break
        self.report.total_seconds = time.monotonic() - started
        return self.report

    # ------------------------------------------------------------------ checks
    def _check_library(self) -> None:
        """Refuse, before writing anything, a library that holds videos of another encoder."""
        library = self.service.library
        videos = library.videos()
        if not videos:
            return
        key = None
        if self.encoder_path.is_file():
            from models.clip_encoder import EncoderSpec

            key = EncoderSpec(self.config.model, str(self.encoder_path)).key
        foreign = [v for v in videos if v.encoder_key != key]
        if foreign:
            raise DemoError(
                f"the library at {self.library_root} already holds {counted(len(videos), 'video')} indexed with "
                f"another encoder ({foreign[0].encoder_key}), and the demo indexes its own videos with its own "
                f"pretrained encoder; run the demo with another library (--library DIR), e.g. "
                f"--library data/demo-library."
            )

    def _claim_demo_folder(self) -> None:
        """``<library>/demo/demo.json`` records the settings its files were made with; other settings would
        silently mix two demos, so they are refused."""
        path = self.root / DEMO_FILE
        recorded = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else None
        self.config = self.config.resolved(recorded)
        wanted = self.config.defining()
        if recorded is not None:
            if recorded != json.loads(json.dumps(wanted)):
                changed = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
                raise DemoError(
                    f"the demo in {self.root} was built with other settings ({', '.join(changed[:5])}); "
                    f"run this demo with another library (--library DIR)."
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": wanted}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    # ------------------------------------------------------------------ 1. world
    def _world(self) -> tuple[bool, str]:
        from training.synthworld import SynthConfig, generate_world

        cfg = self.config
        done = self.world / "world.json"
        if done.is_file():  # written last: the world is complete
            return True, self._world_detail()
        if self.world.exists():  # an interrupted generation: ours to replace
            shutil.rmtree(self.world)
        synth = SynthConfig(**cfg.world_settings(), workers=cfg.world_workers)
        summary = generate_world(self.world, synth)
        logger.info("demo world: %s", summary.totals_line())
        return False, self._world_detail()

    def _world_detail(self) -> str:
        world = json.loads((self.world / "world.json").read_text(encoding="utf-8"))
        videos = world["videos"]
        n_val = sum(v["split"] == "val" for v in videos)
        queries = sum(len(v["queries"]) for v in videos)
        return (
            f"{len(videos)} videos, {sum(v['duration'] for v in videos):.0f} s "
            f"({len(videos) - n_val} train / {n_val} held out), {queries} NLQ queries"
        )

    def _split(self, split: str) -> list[str]:
        world = json.loads((self.world / "world.json").read_text(encoding="utf-8"))
        return [v["video_uid"] for v in world["videos"] if v["split"] == split]

    # ------------------------------------------------------------------ 2. encoder
    def _pretrain(self) -> tuple[bool, str]:
        from checkpoints.encoder import read_encoder_metadata

        cfg = self.config
        reused = self.encoder_path.is_file()
        if not reused:
            from models.clip_encoder import EncoderSpec, quiet_random_init_warning
            from training.pretrain import PretrainConfig, pretrain

            log = PretrainConfig(self.world, self.world, self.encoder_path).resolved_work_dir / "log.jsonl"

            def on_record(record: dict[str, Any]) -> None:
                if "loss" in record:
                    self.progress(
                        "pretrain",
                        record["step"] / cfg.pretrain_steps,
                        f"step {record['step']} of {cfg.pretrain_steps}, loss {record['loss']:.2f}",
                    )

            # Random initial weights are the demo's point (nothing downloaded); open_clip's warning is noise.
            with quiet_random_init_warning(EncoderSpec(cfg.model, "none")), follow_jsonl(log, on_record):
                pretrain(
                    PretrainConfig(
                        videos_dir=self.world / "videos",
                        narrations=self.world / "narration.json",
                        out=self.encoder_path,
                        model=cfg.model,
                        pretrained="none",
                        steps=cfg.pretrain_steps,
                        batch_size=cfg.pretrain_batch,
                        lr=cfg.pretrain_lr,
                        val_videos=tuple(self._split("val")),
                        seed=cfg.seed,
                        eval_every=cfg.pretrain_steps,
                        save_every=max(1, cfg.pretrain_steps // 2),
                        log_every=max(1, min(5, cfg.pretrain_steps // 4)),
                        resume=True,
                        progress=False,
                    )
                )
        meta = read_encoder_metadata(self.encoder_path)
        self.report.encoder = self.encoder_path
        self.report.pretrain_metrics = {
            k: float(v) for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))
        }
        m = self.report.pretrain_metrics
        detail = f"{meta.get('training', {}).get('steps', '?')} steps"
        if "t2v_R@5" in m:
            detail += (
                f"; held-out text->moment R@1 {m['t2v_R@1']:.1f} (chance {m['chance_t2v_R@1']:.1f}), "
                f"R@5 {m['t2v_R@5']:.1f} (chance {m['chance_t2v_R@5']:.1f})"
            )
        return reused, detail

    # ------------------------------------------------------------------ 3. library
    def _index(self) -> tuple[bool, str]:
        from models.clip_encoder import ClipEncoder, EncoderSpec

        service = self.service
        spec = EncoderSpec(self.config.model, str(self.encoder_path))
        encoder = ClipEncoder.load(spec, service.settings.device)
        service.use_encoder(encoder)
        files = sorted((self.world / "videos").glob("*.mp4"))
        new = 0
        for i, path in enumerate(files):
            if self.stop.is_set():
                self.report.stopped = True
                break
            self.progress("index", i / len(files), path.name)
            (result,) = service.index([path])
            if result.error is not None:
                raise DemoError(f"the demo could not index its own video {path}: {result.error}")
            new += not result.existed
        self.report.videos = len(service.videos())
        return new == 0, f"{new} new, {self.report.videos} in the library"

    # ------------------------------------------------------------------ 4. NaQ
    @property
    def naq_file(self) -> Path:
        return self.root / "naq_train.json"

    def _naq(self) -> tuple[bool, str]:
        from training.naq import build_naq_files

        # Cheap and deterministic: always rebuilt, so the file matches the world it is next to.
        report = build_naq_files([self.world / "nlq_train.json"], self.world / "narration.json", self.naq_file)
        return False, (
            f"{report.queries_written} narration queries + {report.nlq_queries_kept} NLQ queries in "
            f"{report.training_clips} training clips"
        )

    # ------------------------------------------------------------------ 5. training
    def _train_config(
        self, name: str, stage: str, steps: int, lr: float, train: list[Path], init_from: str | None = None
    ):
        from training.config import TrainConfig

        cfg = self.config
        values = {
            "name": name,
            "stage": stage,
            "init_from": init_from,
            "seed": cfg.seed,
            "threads": cfg.threads,
            "model": {"name": cfg.localizer, "config": dict(cfg.localizer_config)},
            "data": {
                "train": [str(p) for p in train],
                "val": str(self.world / "nlq_val.json"),
                "library": str(self.library_root),
                "jitter_factor": cfg.jitter_factor,
                "nlq_fraction": cfg.nlq_fraction,
                "few_shot_seed": cfg.seed,
                **cfg.augment,
            },
            "text": {"cache_dir": str(self.root / "text_cache")},
            "optim": {"lr": lr, "batch_size": cfg.train_batch, "steps": steps, "warmup_fraction": 0.05},
            "eval": {"every": min(cfg.eval_every, steps)},
            "output": {
                "runs_dir": str(self.root / "runs"),
                "snapshot_every": max(1, steps // 2),
                "log_every": max(1, min(10, steps // 4)),
                "tensorboard": False,
            },
        }
        config = TrainConfig.from_dict(values, "demo")
        config.validate()
        return config

    def _run_training(self, stage_name: str, config) -> tuple[bool, str]:
        from training.run_result import RESULT_FILE

        reused = (config.run_dir() / RESULT_FILE).is_file()

        def on_record(record: dict[str, Any]) -> None:
            if record.get("event") not in ("train", "eval"):
                return
            total = record.get("total_steps") or 1
            detail = f"step {record.get('step', 0)} of {total}"
            if record.get("event") == "eval":
                detail += f", val R@1@0.3 {record['metrics'].get('R@1@0.3', 0.0):.1f}"
            self.progress(stage_name, float(record.get("step", 0)) / total, detail)

        result = self.service.train(config, progress=on_record, stop=self.stop)
        if result.stopped:
            self.report.stopped = True
        best = result.checkpoints.get("best") or result.checkpoints.get("final")
        self.report.checkpoint = Path(best).name if best else None
        metrics = (result.best or {}).get("metrics") or result.final_metrics
        self.report.train_metrics = {k: float(v) for k, v in metrics.items()}
        m = self.report.train_metrics
        detail = f"{result.steps} steps, checkpoint {self.report.checkpoint}"
        if "R@1@0.3" in m:
            detail += (
                f"; val R@1@0.3 {m['R@1@0.3']:.1f}, R@5@0.3 {m['R@5@0.3']:.1f}, R@1@0.5 {m['R@1@0.5']:.1f}, "
                f"R@5@0.5 {m['R@5@0.5']:.1f} ({int(m.get('num_queries', 0))} queries)"
            )
        return reused, detail

    def _train(self) -> tuple[bool, str]:
        cfg = self.config
        config = self._train_config(
            f"demo-{cfg.localizer}-naq", "joint", cfg.train_steps, cfg.train_lr, [self.naq_file]
        )
        return self._run_training("train", config)

    def _finetune(self) -> tuple[bool, str]:
        cfg = self.config
        stage1 = self.report.checkpoint
        config = self._train_config(
            f"demo-{cfg.localizer}-finetune",
            "finetune",
            cfg.finetune_steps,
            cfg.finetune_lr,
            [self.world / "nlq_train.json"],
            init_from=stage1,
        )
        return self._run_training("finetune", config)

    # ------------------------------------------------------------------ 6. answers
    def _ask(self) -> tuple[bool, str]:
        cfg = self.config
        self.report.truth, self.report.earlier = self._truth(cfg.question)
        self.progress("ask", 0.0, "zero-shot")
        self.report.zero_shot = self.service.ask(cfg.question, mode=ZEROSHOT, k=cfg.k)
        if self.report.checkpoint:
            self.progress("ask", 0.5, self.report.checkpoint)
            self.report.trained = self.service.ask(cfg.question, mode=self.report.checkpoint, k=cfg.k)
        hits = [
            sum(self.report.is_true(m.video_name, m.start, m.end) for m in a.moments)
            for a in (self.report.zero_shot, self.report.trained)
            if a is not None
        ]
        what = "the last put-down" if self.report.earlier else "true moments"
        return False, "{} in the top {}: {}".format(what, cfg.k, " / ".join(map(str, hits)))

    def _truth(
        self, question: str
    ) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
        """The world's true windows for a "where did I put the X?" question (empty for other questions), and
        the earlier put-downs: in a world recorded over days the question asks for the last time (as the app
        reads it), so only the latest put-down is the answer."""
        import re

        found = re.search(r"put (?:the |my )?([a-z ]+?)\s*\??$", question.strip().lower())
        if not found:
            return {}, {}
        obj = found.group(1)
        world = json.loads((self.world / "world.json").read_text(encoding="utf-8"))
        puts = [
            (v.get("recorded_at"), Path(v["file"]).name, float(e["start"]), float(e["end"]))
            for v in world["videos"]
            for e in v["events"]
            if e["kind"] == "put" and e.get("obj") == obj
        ]
        truth: dict[str, list[tuple[float, float]]] = {}
        earlier: dict[str, list[tuple[float, float]]] = {}
        dated = bool(puts) and all(at is not None for at, *_ in puts)
        last = max(puts, key=lambda p: p[0] + p[2]) if dated else None
        for put in puts:
            (truth if last is None or put is last else earlier).setdefault(put[1], []).append((put[2], put[3]))
        return truth, earlier


def run_demo(
    service: EgoRecall,
    config: DemoConfig = DemoConfig(),
    progress: DemoProgress | None = None,
    stop: threading.Event | None = None,
) -> DemoReport:
    """Run (or finish, or re-show) the offline demo in ``service``'s library; see the module docstring.

    ``progress(stage_text, overall_fraction)`` follows it; ``stop.set()`` ends it cleanly between stages, between
    videos while indexing, and after the current step while training (pretraining and world generation run to
    their end). Raises :class:`DemoError` for a library that holds videos of another encoder, before anything
    is written.
    """
    return _Demo(service, config, progress, stop).run()


def demo_train_config(
    service: EgoRecall,
    config: DemoConfig,
    *,
    name: str,
    stage: str,
    train: list[Path],
    steps: int | None = None,
    lr: float | None = None,
    init_from: str | None = None,
):
    """The demo's training recipe (model, batch, schedule, evaluation, data of ``service``'s demo library) for
    another run: e.g. the NLQ-only baseline that NaQ is compared with, trained with the same budget."""
    return _Demo(service, config, None, None)._train_config(
        name,
        stage,
        config.train_steps if steps is None else steps,
        config.train_lr if lr is None else lr,
        list(train),
        init_from,
    )


__all__ = ["DemoConfig", "DemoError", "DemoProgress", "DemoReport", "StageReport", "demo_train_config", "run_demo"]
