"""Speed of the trained localizers: inference latency per query per 8-minute clip, and training throughput.

Runs the default VSLNet and ReLER configs (512-d video features, 512-d CLIP-like text tokens) on CPU, and on
CUDA when available, and prints one table:

* inference: ``models.inference.localize`` end to end (features → windows in seconds, NMS included) on a
  900-bin clip (8 minutes at Ego4D's 1.875 Hz), one query per call and 16 queries per call (the clip is then
  encoded once), reported per query as p50/p95 over repeats;
* training: forward + loss + backward + AdamW step on a batch of 900-bin clips, in queries per second.

    python bench/bench_localizers.py [--models vslnet reler] [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.grid import EGO4D_RATE_HZ, TimeGrid  # noqa: E402
from models.inference import InferenceConfig, localize  # noqa: E402
from models.localizer import SpanTargets  # noqa: E402
from models.registry import build_localizer  # noqa: E402

CLIP_SECONDS = 480.0
FEATURE_DIM = 512
TEXT_DIM = 512
TOKENS = 14  # a typical NLQ question ("where did i put the scissors?") is 8-14 CLIP tokens with start/end


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def queries(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = rng.standard_normal((n, TOKENS, TEXT_DIM)).astype(np.float32)
    mask = np.zeros((n, TOKENS), bool)
    for i, length in enumerate(rng.integers(8, TOKENS + 1, n)):
        mask[i, :length] = True
    return tokens, mask


def bench_inference(model, device, batch: int, repeats: int) -> tuple[float, float, float]:
    """Per-query wall-clock p50 and p95, and the process's CPU time per query (p50) in ms. CPU time counts
    the work done whatever else runs on the machine; on a quiet machine wall ≈ CPU / threads."""
    rng = np.random.default_rng(0)
    grid = TimeGrid(EGO4D_RATE_HZ, CLIP_SECONDS)
    feats = rng.standard_normal((grid.num_bins, FEATURE_DIM)).astype(np.float32)
    tokens, mask = queries(rng, batch)
    config = InferenceConfig(query_batch=batch)
    localize(model, feats, grid, tokens, mask, config=config)  # warm-up (allocator, kernels)
    per_query, cpu = [], []
    for _ in range(repeats):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        localize(model, feats, grid, tokens, mask, config=config)
        sync(device)
        per_query.append((time.perf_counter() - t0) * 1000.0 / batch)
        cpu.append((time.process_time() - c0) * 1000.0 / batch)
    return percentile(per_query, 50), percentile(per_query, 95), percentile(cpu, 50)


def bench_training(model, device, batch: int, steps: int, length: int) -> float:
    rng = np.random.default_rng(1)
    video = torch.randn(batch, length, FEATURE_DIM, device=device)
    video_mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    tokens, mask = queries(rng, batch)
    query, query_mask = torch.from_numpy(tokens).to(device), torch.from_numpy(mask).to(device)
    starts = torch.from_numpy(rng.integers(0, length - 10, batch)).to(device)
    targets = SpanTargets(starts, starts + torch.from_numpy(rng.integers(0, 10, batch)).to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    def step():
        with amp:
            losses = model.loss(model(video, video_mask, query, query_mask), targets)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    model.eval()
    return batch * steps / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vslnet", "reler"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--train-batch-cpu", type=int, default=16)
    parser.add_argument("--train-batch-cuda", type=int, default=128)
    parser.add_argument("--train-length", type=int, default=900, help="bins per training clip")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} CPU threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name(0)}")
    print(
        f"clip: {CLIP_SECONDS:.0f} s at {EGO4D_RATE_HZ} Hz = {TimeGrid(EGO4D_RATE_HZ, CLIP_SECONDS).num_bins} bins, "
        f"{FEATURE_DIM}-d video, {TOKENS} x {TEXT_DIM}-d text tokens; training clips {args.train_length} bins"
    )
    print("inference: ms per query, wall p50 / p95 [CPU time p50]; training: queries/s (batch)")
    print(
        f"{'model':8} {'device':6} {'params':>7}  {'1 query per call':>26}  {'16 queries per call':>26}  "
        f"{'training':>14}"
    )
    for name in args.models:
        for dev in devices:
            device = torch.device(dev)
            torch.manual_seed(0)
            model = build_localizer(name, {"video_dim": FEATURE_DIM, "query_dim": TEXT_DIM}).to(device).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            repeats = args.repeats if not (name == "reler" and dev == "cpu") else max(3, args.repeats // 3)
            one = bench_inference(model, device, 1, repeats)
            many = bench_inference(model, device, 16, repeats)
            batch = args.train_batch_cuda if dev == "cuda" else args.train_batch_cpu
            qps = bench_training(model, device, batch, args.train_steps, args.train_length)
            print(
                f"{name:8} {dev:6} {params:6.2f}M  {one[0]:8.1f} / {one[1]:7.1f} [{one[2]:6.1f}]  "
                f"{many[0]:8.1f} / {many[1]:7.1f} [{many[2]:6.1f}]  {qps:8.2f} ({batch:3d})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
