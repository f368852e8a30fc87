"""The library's index at 1,000 hours on a GPU: search latency there and on the CPU, and what it finds.

    python bench/gpu_faiss.py                        # 1,000 hours (6.75 M frames), 200 questions
    python bench/gpu_faiss.py --hours 10 --queries 20

Features are ``bench_query.py``'s concept model (:mod:`bench.query_data`: 30-minute videos at 1.875 Hz, scenes
of one concept each), generated in memory on every core -- no library on disk, so the figure is the index
alone and the run fits the GPU check's minutes. The index is the one a library of that size builds
(:func:`indexing.vectors.effective_factory`; ``Seg16,SQfp16`` from 37 hours on) through
:class:`indexing.vectors.FrameIndex`, searched for the 256 hits ``ask`` fetches, one question at a time, as
``Library.search`` searches it: on the CPU, and on the GPU (``use_gpu=True``: the float16 codes in a GPU flat
index) when faiss has GPU support and a GPU is present. Exact search over every *frame* is done on the GPU with
torch (on the CPU at small sizes) and gives the reference: how often the segment holding the question's best
frame is among the hits. On a GPU, exact frame search itself (a faiss GPU flat index of every frame in
float16) is timed too: what a GPU allows instead of segment summaries.

On the 2-core CPU box, 1,000 hours take ~2 minutes (frames 65 s, index 21 s) and 12 GB of memory; on a GPU
machine's many cores the frames take seconds.

Printed per row: p50 / p95 ms over the questions after warm-up, and the best-frame-segment share.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402
from bench.query_data import DIM, ROWS, VIDEO_S, concepts, make_queries, video_features  # noqa: E402

HITS = 256
"""Segments a library search fetches at this size (``indexing.searching``: the rescoring's minimum)."""
WARMUP = 5


def _video(args: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    seed, index = args
    return video_features(seed, index, concepts(seed))


def make_frames(hours: float, seed: int) -> tuple[np.ndarray, list[int]]:
    """float16 [videos * ROWS, DIM] of ``hours`` of concept-model video, and the concepts videos 0-1 show (the
    questions are drawn from them, as in ``bench_query.py``)."""
    videos = max(1, math.ceil(hours * 3600 / VIDEO_S))
    frames = np.empty((videos * ROWS, DIM), np.float16)
    shown: list[int] = []
    jobs = [(seed, i) for i in range(videos)]
    workers = max(1, min(os.cpu_count() or 1, videos // 8))
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        made = pool.map(_video, jobs, chunksize=8) if pool is not None else map(_video, jobs)
        for i, (feats, scenes) in enumerate(made):
            frames[i * ROWS : (i + 1) * ROWS] = feats
            if i < 2:
                shown += scenes
    return frames, shown


def exact_best_frames(frames: np.ndarray, queries: np.ndarray, device: str) -> np.ndarray:
    """Row of each question's best frame, by brute force (torch, in chunks of 1 M rows)."""
    import torch

    q = torch.from_numpy(queries).to(device, torch.float16 if device == "cuda" else torch.float32)
    best_s = torch.full((len(queries),), -math.inf, device=device)
    best_i = torch.zeros(len(queries), dtype=torch.int64, device=device)
    step = 1 << 20
    for start in range(0, len(frames), step):
        block = torch.from_numpy(frames[start : start + step]).to(device, q.dtype)
        s, i = (q @ block.T).float().max(dim=1)
        better = s > best_s
        best_s, best_i = torch.where(better, s, best_s), torch.where(better, i + start, best_i)
    return best_i.cpu().numpy()


def timed(search, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    """ms per question after :data:`WARMUP` questions, and each question's hit ids."""
    times, hits = [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        _, ids = search(q[None])
        dt = (time.perf_counter() - t0) * 1000
        if i >= WARMUP:
            times.append(dt)
        hits.append(ids[0])
    return times, hits


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    import faiss
    import torch

    from indexing.half_codes import half_flat_on_gpu
    from indexing.vectors import FrameIndex, decode_ids, effective_factory

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1000.0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--factory", default=None, help="faiss factory (default: the library's choice at this size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    gpu_faiss = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else None
    print(
        f"{cpu_model()}, {os.cpu_count()} cores; GPU: {gpu_name or 'none'}; faiss {faiss.__version__} "
        f"({'with' if gpu_faiss else 'without'} GPU support)",
        flush=True,
    )
    t0 = time.perf_counter()
    frames, shown = make_frames(args.hours, args.seed)
    rows = len(frames)
    factory = args.factory or effective_factory("auto", rows, DIM)
    print(f"{rows:,} frames ({rows // ROWS} videos) in {time.perf_counter() - t0:.1f} s; index {factory}", flush=True)

    t0 = time.perf_counter()
    index = FrameIndex.build(DIM, factory, ((v + 1, frames[v * ROWS : (v + 1) * ROWS]) for v in range(rows // ROWS)))
    build_s = time.perf_counter() - t0
    queries = make_queries(args.queries + WARMUP, args.seed, shown)
    best = exact_best_frames(frames, queries, device)
    best_video, best_bin = best // ROWS + 1, best % ROWS

    def found(hits: list[tuple[np.ndarray, np.ndarray]], span: int) -> float:
        """Share of questions whose best frame lies in a hit: ``(video rowids, first bins)`` of ``span`` bins."""
        got = 0
        for rowid, b, (r, starts) in zip(best_video.tolist(), best_bin.tolist(), hits):
            got += bool(np.any((r == rowid) & (starts <= b) & (b < starts + span)))
        return 100.0 * got / max(len(hits), 1)

    out: dict = {
        "hours": args.hours,
        "frames": rows,
        "factory": factory,
        "build_s": round(build_s, 1),
        "gpu": gpu_name,
        "faiss_gpu": gpu_faiss,
        "rows": {},
    }
    print(f"index built in {build_s:.1f} s ({index.ntotal:,} vectors); best frames found by brute force ({device})")
    print(f"{'search':<42} {'p50 ms':>8} {'p95 ms':>8} {'best-frame segment':>19}")

    def report(name: str, times: list[float], hits: list[tuple[np.ndarray, np.ndarray]], span: int) -> None:
        row = {"p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2)}
        row["best_found_pct"] = round(found(hits, span), 1)
        out["rows"][name] = row
        print(f"{name:<42} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} {row['best_found_pct']:>18.1f}%", flush=True)

    def segments(ids: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [decode_ids(i[i >= 0]) for i in ids]

    cpu_times, cpu_ids = timed(lambda q: index.search(q, HITS), queries)
    report("library index, CPU", cpu_times, segments(cpu_ids), index.span)
    if gpu_faiss:
        gpu_times, gpu_ids = timed(lambda q: index.search(q, HITS, use_gpu=True), queries)
        name = "library index, GPU" if index.on_gpu else "library index, GPU asked (fell back to CPU)"
        report(name, gpu_times, segments(gpu_ids), index.span)
        # Every frame in float16 in one GPU flat index (positions are rows): exact search, where memory allows.
        try:
            exact = half_flat_on_gpu(faiss.StandardGpuResources(), DIM, frames)
        except (RuntimeError, MemoryError) as exc:
            print(f"every frame on the GPU: not measured ({exc})")
        else:
            frame_times, frame_rows = timed(lambda q: exact.search(q, HITS), queries)
            hits = [(r[r >= 0] // ROWS + 1, r[r >= 0] % ROWS) for r in frame_rows]
            report("every frame (exact), GPU", frame_times, hits, 1)
    else:
        print("(no faiss GPU support or no GPU: the GPU rows are not measured)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
