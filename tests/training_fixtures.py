"""A small, learnable NLQ task on disk for the training tests: per-clip feature files and NLQ/NaQ-style files.

Each clip is noise with a few "objects" marked by their own feature vector over a few bins; an NLQ query
("where is the red ball?") or a narration query ("c touches the red ball") names one object and its answer is
where it is marked. It trains in seconds, so the loop's machinery (resume, DDP, stop, checkpoints) can be
tested quickly; real learning on rendered video is ``test_training_learning.py``'s job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny import TINY_TEXT  # noqa: F401 (re-exported for the training tests)

from models.grid import EGO4D_RATE_HZ
from training.nlq import NARRATION_TEMPLATE
from training.nlq_writer import NLQFileBuilder

OBJECTS = ("red ball", "blue cup", "green key", "yellow book")
DIM = 16
TINY_VSLNET = {
    "dim": 16,
    "num_heads": 2,
    "num_conv_layers": 1,
    "dropout": 0.0,
    "max_positions": 64,
    "standardize_video": True,
}


def make_task(
    root: Path, n_train: int = 6, n_val: int = 2, bins: int = 40, seed: int = 0, unnamed: int = 0
) -> dict[str, str]:
    """Write ``features/``, ``train.json`` (NLQ + narration queries), ``nlq_train.json`` and ``val.json``.

    The last ``unnamed`` training clips never name the first object (no query, no narration): hosts for
    training negatives about it."""
    rng = np.random.default_rng(seed)
    markers = 3.0 * rng.standard_normal((len(OBJECTS), DIM))
    feats_dir = root / "features"
    feats_dir.mkdir(parents=True, exist_ok=True)
    duration = bins / EGO4D_RATE_HZ
    builders = {"train": NLQFileBuilder(), "nlq": NLQFileBuilder(), "val": NLQFileBuilder()}
    for c in range(n_train + n_val):
        split = "train" if c < n_train else "val"
        uid = f"clip-{c:02d}"
        x = 0.3 * rng.standard_normal((bins, DIM)) + 1.0  # a shared offset, like normalised CLIP features
        slots = rng.permutation(bins // 8)[: len(OBJECTS)]
        answers = []
        for k, slot in enumerate(slots):
            start = int(slot) * 8 + int(rng.integers(0, 4))
            length = int(rng.integers(2, 4))
            x[start : start + length] += markers[k]
            answers.append((start / EGO4D_RATE_HZ, (start + length) / EGO4D_RATE_HZ))
        np.save(feats_dir / f"{uid}.npy", x.astype(np.float32))
        targets = [builders["train"], builders["nlq"]] if split == "train" else [builders["val"]]
        for b in targets:
            b.add_clip(uid, f"video-{c:02d}", 10.0, 10.0 + duration, split=split)
            for k, name in enumerate(OBJECTS):
                if k == 0 and n_train - unnamed <= c < n_train:
                    continue
                b.add_query(uid, f"Where is the {name}?", *answers[k], template="Objects: Where is object X?")
        if split == "train":
            for k, name in enumerate(OBJECTS):
                if k == 0 and n_train - unnamed <= c:
                    continue
                s, e = answers[k]
                mid = (s + e) / 2
                builders["train"].add_query(
                    uid,
                    f"c touches the {name}",
                    mid - 0.4,
                    mid + 0.4,
                    template=NARRATION_TEMPLATE,
                    annotation_uid=f"naq-{uid}",
                )
    paths = {
        "features": str(feats_dir),
        "train": str(root / "train.json"),
        "nlq_train": str(root / "nlq_train.json"),
        "val": str(root / "val.json"),
    }
    builders["train"].write(paths["train"])
    builders["nlq"].write(paths["nlq_train"])
    builders["val"].write(paths["val"])
    return paths


def tiny_config_values(paths: dict[str, str], runs: Path, **changes) -> dict:
    """Config values (nested) for a tiny VSLNet run on :func:`make_task`'s files."""
    values = {
        "name": "tiny",
        "seed": 0,
        "threads": 1,
        "device": "cpu",
        "model": {"name": "vslnet", "config": dict(TINY_VSLNET)},
        "data": {"train": [paths["train"]], "val": paths["val"], "features_dir": paths["features"]},
        "text": dict(TINY_TEXT),
        "optim": {"lr": 3e-3, "batch_size": 8, "steps": 12, "warmup_fraction": 0.1},
        "eval": {"every": 6},
        "output": {
            "runs_dir": str(runs),
            "checkpoints_dir": str(runs / "checkpoints"),
            "snapshot_every": 4,
            "log_every": 2,
            "tensorboard": False,
        },
    }
    for key, value in changes.items():
        node = values
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return values
