"""The concept model of ``bench_query.py``'s library (``--features concepts``) and where its feature files go:
every video a run of 20-120 s scenes, each showing one of 4,096 "concepts"; a frame is 0.6 concept + 0.5 video
look + 0.62 noise, a question 0.3 concept + 0.95 noise (CLIP's text-to-image cosines look like that)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "query"
"""Where the concepts library lives (``--features worlds``: its sibling ``query-worlds``)."""
DIM = 512
RATE_HZ = 1.875
VIDEO_S = 1800.0
ROWS = math.ceil(VIDEO_S * RATE_HZ - 1e-6)  # 3375
CONCEPTS = 4096


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def concepts(seed: int) -> np.ndarray:
    return unit(np.random.default_rng((seed, 0)).standard_normal((CONCEPTS, DIM), dtype=np.float32))


def video_features(seed: int, index: int, table: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """float16 [ROWS, DIM] of one synthetic video, and the concepts its scenes show."""
    rng = np.random.default_rng((seed, 1, index))
    look = unit(rng.standard_normal(DIM, dtype=np.float32))
    scene_of = np.empty(ROWS, np.int64)
    shown, t = [], 0
    while t < ROWS:
        length = int(rng.uniform(20, 120) * RATE_HZ)
        c = int(rng.integers(CONCEPTS))
        scene_of[t : t + length] = c
        shown.append(c)
        t += length
    noise = rng.standard_normal((ROWS, DIM), dtype=np.float32) / np.float32(math.sqrt(DIM))
    x = 0.6 * table[scene_of] + 0.5 * look + 0.62 * noise
    return unit(x).astype(np.float16), shown


def make_features(folder: Path, videos: int, seed: int, source=None) -> list[int]:
    """Feature files for ``videos`` videos in ``folder`` (kept across sizes); concepts shown in video 0-1.
    ``source``: a :class:`bench.query_worlds.WorldSource` to tile instead of the concept model."""
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        return make_world_features(videos, seed, source, folder)
    table = concepts(seed)
    early: set[int] = set()
    started = time.monotonic()
    for i in range(videos):
        path = folder / f"{i:012x}.npy"
        if path.exists() and i >= 2:
            continue
        feats, shown = video_features(seed, i, table)
        if i < 2:
            early.update(shown)
        if not path.exists():
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, feats)
            os.replace(tmp, path)
    print(
        f"features: {videos} videos ({videos * ROWS:,} vectors) ready in {time.monotonic() - started:.0f} s", flush=True
    )
    return sorted(early)


def make_world_features(videos: int, seed: int, source, folder: Path) -> list[int]:
    started = time.monotonic()
    for i in range(videos):
        path = folder / f"{i:012x}.npy"
        if not path.exists():
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, source.video(seed, i, ROWS))
            os.replace(tmp, path)
    print(
        f"features: {videos} videos tiled from {source.hours:.1f} h of world recordings in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return []


def make_queries(n: int, seed: int, shown: list[int]) -> np.ndarray:
    rng = np.random.default_rng((seed, 2))
    table = concepts(seed)
    picked = rng.choice(shown, size=n)
    return unit(0.3 * table[picked] + 0.95 * unit(rng.standard_normal((n, DIM), dtype=np.float32)))
