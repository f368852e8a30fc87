"""Cluster indexing: the same corpus indexed by the plain path and by ``index --ray`` with 1 and 2 workers.

    python bench/bench_cluster.py                                # 4 distinct 60 s 720p videos, ViT-B-32
    python bench/bench_cluster.py --videos 6 --seconds 150 --workers 1 2
    python bench/bench_cluster.py --model ViT-B-16 --workers 0    # on a GPU machine: one worker per GPU

Every run is a fresh process indexing the corpus into an empty library (the videos of
``bench_indexing.make_video`` with different seeds, cached under bench/out/). ``plain`` is the one-process
path (``EgoRecall.index``: one video after another, decoder children beside the encoder); the Ray runs start
a local Ray instance (its start-up is timed apart) and split the machine's CPUs between the workers.
Figures: x real time = corpus seconds / wall seconds; overhead = Ray wall / plain wall - 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_indexing import OUT, make_video, spec_of  # noqa: E402


def child(mode: str, model: str, workers: int, videos: list[Path]) -> None:
    """In a fresh process: index ``videos`` into an empty library; print one JSON line."""
    import torch

    from app.service import EgoRecall
    from app.settings import Settings
    from indexing.cluster import ClusterConfig

    lib_dir = OUT / f"cluster-lib-{os.getpid()}"
    shutil.rmtree(lib_dir, ignore_errors=True)
    service = EgoRecall(Settings(library=lib_dir), encoder_spec=spec_of(model))
    service.library  # noqa: B018 -- open (create) it before the clock starts
    ray_start = 0.0
    if mode == "ray":
        import ray

        t = time.monotonic()
        ray.init(include_dashboard=False, logging_level="WARNING")
        ray_start = time.monotonic() - t
        slots = workers or max(1, torch.cuda.device_count())  # 0: one worker per GPU
        cpus = max(1.0, (os.cpu_count() or 1) // slots)
        config = ClusterConfig(workers=workers or None, cpus_per_worker=cpus)
        started = time.monotonic()
        results = service.index_on_cluster(videos, config)
    else:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        service.encoder()  # loaded before the clock starts, as the Ray workers' start is timed apart
        started = time.monotonic()
        results = service.index(videos)
    wall = time.monotonic() - started
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
    seconds = sum(r.record.duration for r in results)
    print(json.dumps({"wall_s": wall, "video_s": seconds, "ray_start_s": ray_start, "files": len(results)}))
    shutil.rmtree(lib_dir, ignore_errors=True)


def run(mode: str, model: str, workers: int, videos: list[Path]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, model, str(workers), *map(str, videos)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32", help="random weights; +int8 for the int8 image tower")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="Ray workers per run (0: one per GPU)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, model, workers, *videos = args.child
        child(mode, model, int(workers), [Path(v) for v in videos])
        return

    from bench.machine import cpu_model

    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}; "
        f"{args.videos} videos x {args.seconds} s 720p30 H.264; {args.model}, random weights",
        flush=True,
    )
    videos = [make_video(args.seconds, seed=100 + i) for i in range(args.videos)]
    figures = {"plain": run("plain", args.model, 0, videos)}
    plain = figures["plain"]
    print(f"plain:        {plain['video_s'] / plain['wall_s']:5.2f} x real time ({plain['wall_s']:.1f} s)", flush=True)
    for w in args.workers:
        r = figures[f"ray-{w}"] = run("ray", args.model, w, videos)
        print(
            f"ray, {w or 'per-GPU'} worker(s): {r['video_s'] / r['wall_s']:5.2f} x real time ({r['wall_s']:.1f} s; "
            f"overhead {r['wall_s'] / plain['wall_s'] - 1:+.0%} against plain; Ray start-up {r['ray_start_s']:.1f} s "
            f"not counted)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
