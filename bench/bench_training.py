"""Training throughput through EgoRecall's own loop: queries per second for VSLNet and ReLER.

    python bench/bench_training.py                          # VSLNet + ReLER, CPU (and CUDA when present)
    python bench/bench_training.py --models vslnet --bins 900 --batch 16 --steps 12 --threads 2
    python bench/bench_training.py --device cuda --batch 256 --micro-batch 64 --amp auto

What runs: ``training.run`` end to end on a folder of random per-clip feature files (``--bins`` bins of
``--dim``-d features, Ego4D's 8-minute clips = 900 bins at 1.875 Hz) with NLQ-style and narration queries,
the default model configs (VSLNet dim 128, ReLER dim 256) with ``standardize_video``, and a random
open_clip ViT-B-16 text tower (512-d tokens, computed once and cached before the first step, so they are not
in the figures). Each step is data loading (features from disk, cached after the first read, NaQ jittering,
right-padding) + forward + loss + backward + AdamW. The figure is the median of the loop's own
``queries_per_s`` records (one per ``--log-every`` steps) after the first record, which includes warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.grid import EGO4D_RATE_HZ  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loop import run  # noqa: E402
from training.nlq import NARRATION_TEMPLATE  # noqa: E402
from training.nlq_writer import NLQFileBuilder  # noqa: E402
from training.runlog import read_log  # noqa: E402

WORDS = ("keys", "mug", "phone", "wallet", "book", "bottle", "knife", "towel")


def make_data(root: Path, clips: int, bins: int, dim: int, per_clip: int) -> dict[str, str]:
    rng = np.random.default_rng(0)
    feats = root / "features"
    feats.mkdir(parents=True)
    duration = bins / EGO4D_RATE_HZ
    builder = NLQFileBuilder()
    for c in range(clips):
        uid = f"clip-{c:04d}"
        x = rng.standard_normal((bins, dim)).astype(np.float32)
        np.save(feats / uid, x / np.linalg.norm(x, axis=1, keepdims=True))
        builder.add_clip(uid, f"video-{c:04d}", 0.0, duration)
        for q in range(per_clip):
            start = float(rng.uniform(0, duration - 8))
            word = WORDS[q % len(WORDS)]
            builder.add_query(
                uid, f"Where did I put the {word} {q}?", start, start + 4.0, template="Place: Where did I put X?"
            )
            builder.add_query(
                uid,
                f"c picks the {word} {q}",
                start,
                start + 1.0,
                template=NARRATION_TEMPLATE,
                annotation_uid=f"naq-{uid}",
            )
    builder.write(root / "train.json")
    return {"features": str(feats), "train": str(root / "train.json")}


def bench(model: str, args, data: dict[str, str], runs: Path) -> dict:
    config = TrainConfig.from_dict(
        {
            "name": f"bench-{model}-{time.time_ns()}",
            "threads": args.threads,
            "device": args.device,
            "amp": args.amp,
            "model": {"name": model, "config": {"standardize_video": True}},
            "data": {"train": [data["train"]], "features_dir": data["features"], "num_workers": args.workers},
            "text": {"kind": "open_clip", "model": "ViT-B-16", "pretrained": "none"},
            "optim": {"batch_size": args.batch, "micro_batch_size": args.micro_batch, "steps": args.steps},
            "output": {
                "runs_dir": str(runs),
                "snapshot_every": 10**9,
                "log_every": args.log_every,
                "tensorboard": False,
            },
        }
    )
    t0 = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - t0
    rates = [r["queries_per_s"] for r in read_log(result.run_dir) if r["event"] == "train"]
    steady = rates[1:] or rates
    return {
        "model": model,
        "median": statistics.median(steady),
        "min": min(steady),
        "max": max(steady),
        "records": len(steady),
        "wall": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vslnet", "reler"])
    ap.add_argument("--bins", type=int, default=900)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--queries-per-clip", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--log-every", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu / cuda (default: CUDA when available)")
    ap.add_argument("--amp", default="auto")
    args = ap.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.device = device
    print(
        f"device {device}, torch {torch.__version__}, threads {args.threads}, {args.bins} bins x {args.dim}-d, "
        f"batch {args.batch}" + (f" (micro {args.micro_batch})" if args.micro_batch else "") + f", {args.steps} steps"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.clips, args.bins, args.dim, args.queries_per_clip)
        for model in args.models:
            r = bench(model, args, data, Path(tmp) / "runs")
            print(
                f"{model:7s} {r['median']:8.2f} queries/s (median of {r['records']} records; min {r['min']:.2f}, "
                f"max {r['max']:.2f}); whole run {r['wall']:.1f} s incl. model/text-encoder set-up"
            )


if __name__ == "__main__":
    main()
