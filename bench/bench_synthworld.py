"""Synthetic world: generation speed, and how well an encoder tells its objects, rooms and places apart.

    python bench/bench_synthworld.py [--videos 12] [--duration 90] [--workers 2] [--model egorecall-tiny]

Prints wall time for the whole world (target: 12 x 90 s well under a minute on 2 cores), the share spent
rendering, and nearest-centroid / linear-probe accuracies on frames of held-out videos -- once on frames
rendered directly and once on the same moments decoded from the written MP4s (what indexing sees).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402


def decoded_frames(path: Path, times: np.ndarray, fps: float) -> np.ndarray:
    wanted = {int(t * fps + 1e-6): i for i, t in enumerate(times)}
    out: list = [None] * len(times)
    with av.open(str(path)) as c:
        for k, frame in enumerate(c.decode(c.streams.video[0])):
            if k in wanted:
                out[wanted[k]] = frame.to_ndarray(format="rgb24")
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--duration", type=float, default=90.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="egorecall-tiny")
    ap.add_argument("--pretrained", default="none")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    from models.clip_encoder import ClipEncoder, EncoderSpec
    from training.synthworld.catalog import DEFAULT_HOUSE
    from training.synthworld.diagnostics import distinguishability, labelled_frames
    from training.synthworld.generate import generate_world
    from training.synthworld.plan import SynthConfig, plan_world_video
    from training.synthworld.render import SceneAssets, VideoRenderer

    cfg = SynthConfig(
        n_videos=args.videos, seed=args.seed, duration=args.duration, size=args.size, workers=args.workers
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_world(Path(tmp) / "world", cfg)
        wall = time.perf_counter() - t0
        print(f"generate: {summary.totals_line()}")
        print(
            f"generate: {wall:.1f} s wall with {args.workers} worker(s) = "
            f"{summary.seconds / wall:.0f} video-seconds per second"
        )

        plans = [plan_world_video(i, cfg) for i in range(cfg.n_videos)]
        assets = SceneAssets(DEFAULT_HOUSE, cfg.size)
        t0 = time.perf_counter()
        n = 0
        for p in plans:
            for _ in VideoRenderer(assets, p.events, cfg.fps, p.motion_seed).frames(p.n_frames):
                n += 1
        render = time.perf_counter() - t0
        print(f"render only (1 process): {n} frames in {render:.1f} s = {1000 * render / n:.2f} ms/frame")

        encoder = ClipEncoder.load(EncoderSpec(args.model, args.pretrained))
        n_train = max(1, int(round(0.7 * cfg.n_videos)))
        lf = labelled_frames(plans, assets, cfg.fps)
        rendered = distinguishability(encoder.encode_frames(lf.frames), lf, n_train)
        world = Path(tmp) / "world"
        dec = np.concatenate([decoded_frames(world / p.file, lf.time[lf.video == p.index], cfg.fps) for p in plans])
        decoded = distinguishability(encoder.encode_frames(dec), lf, n_train)
    print(f"distinguishability, encoder {encoder.key}, {n_train} train / {cfg.n_videos - n_train} held-out videos:")
    print(f"  {'task':<16}{'chance':>7}  {'source':<9}{'NC':>6}{'NC-std':>8}{'probe':>7}  n_train/n_test")
    for task in rendered:
        for source, s in (("rendered", rendered[task]), ("decoded", decoded[task])):
            print(
                f"  {task:<16}{s['chance']:>7.3f}  {source:<9}{s['nearest_centroid']:>6.3f}"
                f"{s['nearest_centroid_standardised']:>8.3f}{s['linear_probe']:>7.3f}  "
                f"{s['n_train']}/{s['n_test']}"
            )


if __name__ == "__main__":
    main()
