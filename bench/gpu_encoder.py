"""Encoder throughput on a GPU: frames per second of an open_clip image tower in fp16 and bf16.

    python bench/gpu_encoder.py --model ViT-B-16 --batch 256 --json out.json

Random weights (the cost is the same as trained ones; nothing is downloaded). Frames are 224 px uint8 arrays
already in memory, so the figure is the encoder alone (decoding is measured by ``bench_indexing.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    import open_clip
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    device = torch.device("cuda")
    out = {"gpu": torch.cuda.get_device_name(0), "model": args.model, "batch": args.batch, "frames_per_s": {}}
    for name in args.dtypes:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]
        model = open_clip.create_model(args.model, pretrained=None).to(device=device, dtype=dtype).eval()
        size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
        x = torch.randint(0, 256, (args.batch, 3, size, size), device=device, dtype=torch.uint8)
        with torch.inference_mode():
            for _ in range(3):  # warm-up (kernels, cudnn autotune)
                model.encode_image(x.to(dtype) / 255.0)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.batches):
                model.encode_image(x.to(dtype) / 255.0)
            torch.cuda.synchronize()
        rate = args.batch * args.batches / (time.perf_counter() - t0)
        out["frames_per_s"][name] = round(rate, 1)
        print(f"{args.model} {name}: {rate:,.0f} frames/s (batch {args.batch}, {out['gpu']})")
        del model
        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
