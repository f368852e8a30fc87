"""Narration pretraining throughput: (frame, narration) pairs per second through one full training step.

Times ``training.pretrain.step.train_step`` -- forward of both towers, EgoNCE, backward, gradient clipping,
fused AdamW -- plus the batch's random resized crops, on random frames at the model's resolution and
narration-like texts, for the demo encoder (egorecall-small) and ViT-B-16, on CPU (and CUDA, with bf16
autocast, when present). Also times decoding a synthetic world's frames into the pretraining cache. Prints
one line per configuration with wall-clock pairs/s and the process's CPU seconds per 100 pairs (which counts
the work done even when other jobs share the cores).

    .venv/bin/python bench/bench_pretrain.py
    .venv/bin/python bench/bench_pretrain.py --models egorecall-small --threads 1 --steps 10
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.clip_encoder import ClipEncoder, EncoderSpec  # noqa: E402
from training.pretrain.loss import EgoNCELoss  # noqa: E402
from training.pretrain.step import make_optimizer, random_resized_crops, train_step  # noqa: E402

TEXTS = [
    "picks up the wallet from the bed",
    "puts the mug in the fridge",
    "opens the drawer",
    "walks into the kitchen holding the keys",
    "looks at the phone on the desk",
    "closes the cabinet",
    "takes the glasses out of the basket",
    "cuts the onion with a knife on the chopping board",
]
BATCH = {
    ("egorecall-small", "cpu"): 64,
    ("ViT-B-16", "cpu"): 16,
    ("egorecall-small", "cuda"): 512,
    ("ViT-B-16", "cuda"): 256,
}


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def bench_model(name: str, device: torch.device, steps: int, batch: int | None) -> str:
    enc = ClipEncoder.load(EncoderSpec(name, "none"), device="cpu")
    model = enc.model.to(device).train().requires_grad_(True)
    size = enc.image_size
    batch = batch or BATCH[(name, device.type)]
    amp = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" else None
    optimizer = make_optimizer(model, 1e-5, 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    loss_fn = EgoNCELoss()
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    tokens = enc.tokenizer([TEXTS[i % len(TEXTS)] for i in range(batch)]).to(device)
    keys = torch.from_numpy(
        np.stack([np.arange(batch) % len(TEXTS), np.arange(batch) % 5, np.arange(batch) % 7], axis=1)
    ).to(device)

    def step(i: int) -> None:
        x = frames.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else frames
        x = random_resized_crops(x.permute(0, 3, 1, 2).float().div(255.0), np.random.default_rng(i))
        train_step(model, model, optimizer, scaler, loss_fn, x, tokens, keys, amp=amp)

    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), cpu_seconds()
    for i in range(steps):
        step(i + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    pairs = steps * batch
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return (
        f"{name:16} {device.type:4} {size:3d}px  batch {batch:4d}  {params:6.1f} M params  "
        f"{pairs / wall:8.1f} pairs/s  ({wall / steps:6.2f} s/step, {100 * cpu / pairs:6.2f} CPU-s/100 pairs)"
    )


def bench_cache(threads: int) -> str:
    from training.narrations import load_narrations
    from training.pretrain.data import FrameCache, build_moments, cache_videos, find_videos
    from training.synthworld import generate_world

    with tempfile.TemporaryDirectory() as d:
        world = Path(d) / "world"
        generate_world(world, n_videos=4, seed=0, duration=120.0, size=128, fps=15.0)
        files = find_videos(world / "videos")
        cache = FrameCache(Path(d) / "frames", 96)
        t0 = time.perf_counter()
        durations = {u: cache.probe_duration(u, p) for u, p in files.items()}
        moments, _ = build_moments(load_narrations(world / "narration.json").narrations, durations)
        frames, _ = cache_videos(cache, files, moments, k=4)
        wall = time.perf_counter() - t0
        n = sum(len(v.times) for v in frames.values())
        seconds = sum(durations.values())
    return (
        f"frame cache      cpu  96px  {len(files)} videos, {seconds:.0f} s of 128px/15fps video, {len(moments)} "
        f"moments -> {n} frames in {wall:.1f} s ({seconds / wall:.0f} x real time, {n / wall:.0f} frames/s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["egorecall-small", "ViT-B-16"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-cache", action="store_true", help="skip the frame-cache timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} CPU thread(s), {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for name in args.models:
            steps = args.steps if device.type == "cuda" or name == "egorecall-small" else max(2, args.steps // 2)
            print(bench_model(name, device, steps, args.batch), flush=True)
    if not args.no_cache:
        print(bench_cache(args.threads), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
