"""VSLNet really learns to localise on rendered video: trained with NLQ + NaQ queries on a synthetic world's
training videos, it answers the held-out videos' questions far above chance; and with few NLQ training clips,
adding narration queries (NaQ) helps.

Features are the library's: the videos are indexed with the tiny random ``egorecall-tiny`` encoder (64 px),
whose features tell the world's large, colour-distinct objects and places apart (``test_synthworld_visuals``),
and the queries are encoded by its random text tower -- no pretraining is needed for a localizer to learn
which word goes with which look. Chance is the evaluator of ``training/curve_eval.py`` on random windows of the
answers' median length. Every figure is the run's own validation (the app's inference path).

Calibration: see the numbers at the bottom of this docstring (2-core development box, another job running).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from indexing.library import Library
from models.clip_encoder import ClipEncoder
from training.config import TrainConfig
from training.curve_eval import answer_length_proposals, evaluate_curves, random_curve
from training.features import LibraryClipFeatures
from training.loop import run
from training.naq import build_naq_files
from training.nlq import load_nlq
from training.synthworld import generate_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SEED = int(os.environ.get("EGORECALL_LEARNS_SEED", "3"))
WORLD = dict(n_videos=20, duration=90.0, size=64, fps=4.0, val_fraction=0.3, max_queries_per_clip=10)
VSLNET = {"dim": 64, "num_heads": 4, "num_conv_layers": 2, "dropout": 0.1, "max_positions": 256,
          "standardize_video": True}
STEPS = int(os.environ.get("EGORECALL_LEARNS_STEPS", "150"))
FEW_SHOT = 0.2


@pytest.fixture(scope="module")
def task(tmp_path_factory, tiny_spec) -> dict:
    root = tmp_path_factory.mktemp("learns")
    world = root / "world"
    generate_world(world, seed=SEED, **WORLD)
    encoder = ClipEncoder.load(tiny_spec, device="cpu")
    library = Library.open(root / "library")
    for video in sorted((world / "videos").glob("*.mp4")):
        library.add(video, encoder)
    build_naq_files([world / "nlq_train.json"], world / "narration.json", root / "naq_train.json")
    val = load_nlq(world / "nlq_val.json")
    features = LibraryClipFeatures(library)
    chance = [evaluate_curves(val, features, random_curve(s), proposals=answer_length_proposals(val))
              for s in range(5)]
    return {"root": root, "world": world, "library": root / "library", "naq": root / "naq_train.json",
            "chance": {m: float(np.mean([c.recall[m] for c in chance])) for m in chance[0].recall},
            "val_queries": chance[0].num_queries}


def _train(task: dict, name: str, stage: str, nlq_fraction: float = 1.0) -> dict[str, float]:
    root: Path = task["root"]
    config = TrainConfig.from_dict({
        "name": name, "stage": stage, "seed": 0, "device": "cpu",
        "model": {"name": "vslnet", "config": dict(VSLNET)},
        "data": {"train": [str(task["naq"])], "val": str(task["world"] / "nlq_val.json"),
                 "library": str(task["library"]), "nlq_fraction": nlq_fraction},
        "optim": {"lr": 1e-3, "batch_size": 32, "steps": STEPS, "warmup_fraction": 0.05},
        "eval": {"every": STEPS // 3},
        "output": {"runs_dir": str(root / "runs"), "checkpoints_dir": str(root / "checkpoints"),
                   "snapshot_every": STEPS, "log_every": 10, "tensorboard": False},
    }, "test")
    result = run(config)
    return result.best["metrics"]


def test_vslnet_with_naq_localises_far_above_chance(task):
    got = _train(task, "joint-all", "joint")
    chance = task["chance"]["R1@0.3"]
    print(f"\nNLQ+NaQ, all NLQ clips: val R@1@0.3 {got['R@1@0.3']:.1f}, R@5@0.3 {got['R@5@0.3']:.1f}, "
          f"R@1@0.5 {got['R@1@0.5']:.1f} on {task['val_queries']} queries; chance R@1@0.3 {chance:.1f}, "
          f"R@5@0.3 {task['chance']['R5@0.3']:.1f}")
    assert got["R@1@0.3"] >= max(2.0 * chance, chance + 10.0)


def test_naq_helps_with_few_nlq_clips(task):
    nlq_only = _train(task, "few-nlq", "nlq", FEW_SHOT)
    with_naq = _train(task, "few-naq", "joint", FEW_SHOT)
    print(f"\n{FEW_SHOT:.0%} of NLQ clips: val R@1@0.3 NLQ only {nlq_only['R@1@0.3']:.1f}, NLQ+NaQ "
          f"{with_naq['R@1@0.3']:.1f}; R@5@0.3 {nlq_only['R@5@0.3']:.1f} vs {with_naq['R@5@0.3']:.1f} "
          f"(chance R@1@0.3 {task['chance']['R1@0.3']:.1f})")
    assert with_naq["R@1@0.3"] > nlq_only["R@1@0.3"]
