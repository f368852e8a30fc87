"""What the offline demo (:mod:`app.demo`) reports: its stages and their share of the progress bar, the
progress it hands the app's button while it runs, and the report it returns."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.answering import Answer

logger = logging.getLogger(__name__)

DemoProgress = Callable[[str, float], None]
"""``progress(stage_text, overall_fraction)``: what the app's one-click demo button shows (fraction in 0-1)."""


@dataclass
class StageReport:
    name: str
    seconds: float
    reused: bool = False
    """True when a finished earlier result was used instead of redoing the stage."""
    detail: str = ""


@dataclass
class DemoReport:
    """What the demo did, where it put things, how well it worked, and its two answers."""

    library: Path
    world: Path
    encoder: Path | None = None
    """The pretrained encoder weights (``.safetensors``)."""
    checkpoint: str | None = None
    """The trained localizer's name in the app's checkpoints folder (``ask(mode=...)``)."""
    checkpoints_dir: Path | None = None
    stages: list[StageReport] = field(default_factory=list)
    total_seconds: float = 0.0
    videos: int = 0
    pretrain_metrics: dict[str, float] = field(default_factory=dict)
    """Held-out text -> moment retrieval of the pretrained encoder (``t2v_R@1``, ``t2v_R@5`` and chance)."""
    train_metrics: dict[str, float] = field(default_factory=dict)
    """Validation figures of the trained checkpoint: ``R@1@0.3``, ``R@5@0.3``, ``R@1@0.5``, ``R@5@0.5``, ..."""
    question: str = ""
    zero_shot: Answer | None = None
    trained: Answer | None = None
    truth: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per video file name: the true windows of the asked event (from the world's ground-truth log); in a world
    recorded over days, its last occurrence only (what "where did I put the keys?" asks for)."""
    earlier: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """The asked event's earlier occurrences in a world recorded over days (not the answer)."""
    stopped: bool = False

    @property
    def stage_seconds(self) -> dict[str, float]:
        return {s.name: s.seconds for s in self.stages}

    def is_true(self, video_name: str, start: float, end: float) -> bool:
        """Whether a moment overlaps a true occurrence of the asked event in that video."""
        return any(start < e and s < end for s, e in self.truth.get(video_name, []))

    def is_earlier(self, video_name: str, start: float, end: float) -> bool:
        """Whether a moment overlaps an earlier occurrence of the asked event (a week's older put-downs)."""
        return any(start < e and s < end for s, e in self.earlier.get(video_name, []))

    def summary(self) -> str:
        """One line for the app's status display."""
        if self.stopped:
            return f"demo stopped after {self.total_seconds:.0f} s; run it again to continue where it stopped"
        r1 = self.train_metrics.get("R@1@0.3")
        trained = f"; checkpoint {self.checkpoint} (R@1@0.3 {r1:.1f})" if self.checkpoint and r1 is not None else ""
        return (
            f"demo ready in {self.total_seconds:.0f} s: {self.videos} videos indexed with the pretrained "
            f'encoder{trained}. Ask "{self.question}" in the Ask tab, zero-shot or with the checkpoint.'
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "library": str(self.library),
            "world": str(self.world),
            "encoder": str(self.encoder) if self.encoder else None,
            "checkpoint": self.checkpoint,
            "checkpoints_dir": str(self.checkpoints_dir) if self.checkpoints_dir else None,
            "stages": [asdict(s) for s in self.stages],
            "total_seconds": round(self.total_seconds, 2),
            "videos": self.videos,
            "pretrain_metrics": self.pretrain_metrics,
            "train_metrics": self.train_metrics,
            "question": self.question,
            "zero_shot": self.zero_shot.to_dict() if self.zero_shot else None,
            "trained": self.trained.to_dict() if self.trained else None,
            "truth": {k: [list(w) for w in v] for k, v in self.truth.items()},
            "earlier": {k: [list(w) for w in v] for k, v in self.earlier.items()},
            "stopped": self.stopped,
        }


STAGES = (
    ("world", "synthesizing a world", 0.18),
    ("pretrain", "pretraining the encoder", 0.30),
    ("index", "indexing the videos", 0.14),
    ("naq", "building NaQ queries", 0.01),
    ("train", "training VSLNet (NLQ + NaQ)", 0.27),
    ("finetune", "fine-tuning VSLNet (NLQ)", 0.05),
    ("ask", "asking", 0.05),
)
"""(name, what the progress line says, share of the progress bar)."""


class StageProgress:
    """Turns (stage, fraction inside it) into the overall fraction the caller's callback receives."""

    def __init__(self, callback: DemoProgress | None, skip: set[str]) -> None:
        self.callback = callback
        stages = [s for s in STAGES if s[0] not in skip]
        total = sum(w for _, _, w in stages)
        self.start: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        self.text = {n: t for n, t, _ in STAGES}
        self.last = 0.0
        self.lock = threading.Lock()
        at = 0.0
        for name, _, w in stages:
            self.start[name], self.weight[name] = at, w / total
            at += w / total

    def __call__(self, stage: str, inside: float = 0.0, detail: str = "") -> None:
        if self.callback is None:
            return
        inside = min(1.0, max(0.0, inside))
        text = self.text.get(stage, stage) + (f": {detail}" if detail else "")
        # Never backwards: a training run also reports earlier steps (the best checkpoint's) when it ends.
        with self.lock:  # pretraining's progress comes from a log-following thread
            self.last = max(self.last, min(1.0, self.start.get(stage, 1.0) + inside * self.weight.get(stage, 0.0)))
            self.callback(text, self.last)


@contextmanager
def follow_jsonl(path: Path, on_record: Callable[[dict[str, Any]], None], every_s: float = 1.0):
    """Call ``on_record`` for each line appended to a JSONL log while the block runs: pretraining reports its
    steps only to its log, and the demo's progress bar should move during its longest stage."""
    done = threading.Event()
    offset = path.stat().st_size if path.is_file() else 0

    def follow() -> None:
        nonlocal offset
        while not done.wait(every_s):
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                try:
                    on_record(json.loads(line))
                except Exception:  # a progress display must never break the run
                    logger.debug("progress record skipped", exc_info=True)

    thread = threading.Thread(target=follow, name="demo-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
