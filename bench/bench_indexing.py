"""Indexing speed and memory: decode-only, encode-only and end-to-end, on a synthetic 720p H.264 recording.

    python bench/bench_indexing.py                      # ViT-B-32 and ViT-B-16, random weights, 1.875 Hz
    python bench/bench_indexing.py --models ViT-B-32 --workers 1 2 --lengths 150 600
    python bench/bench_indexing.py --models ViT-B-32 ViT-B-32+int8 --lengths 150   # +int8: the int8 image tower
    python bench/bench_indexing.py --models ViT-B-32+openvino ViT-B-16+openvino --lengths 150 --height 1080 --plain

``--plain`` also runs, in a fresh process on the same file, model and weights, the loop anyone would write first
-- PyAV decodes every frame, the frame on screen at each grid time goes through open_clip's own preprocess
(PIL), batches of 32 through the float model -- and prints the ratio of its wall time to ``Library.add``'s.

The test videos (a scrolling texture with moving blocks and a scene change every 10 s, H.264 superfast,
30 fps) are made once and cached under bench/out/. Every end-to-end run is a fresh process that indexes the
video into an empty library with ``Library.add`` (hash, probe, decode in children, encode, store, index) and
reports its own peak RSS and the decoder children's. Figures: x real time = video seconds / wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RATE_HZ = 1.875
FPS = 30


def spec_of(name: str):
    """``ViT-B-32`` or ``ViT-B-32+int8`` (the int8 image tower) -> a randomly initialised encoder spec."""
    from models.clip_encoder import EncoderSpec

    model, _, quantize = name.partition("+")
    return EncoderSpec(model, "none", quantize)


PHONE_OPTIONS = {"bf": "0", "g": str(FPS), "x264-params": "scenecut=0"}
"""How phones encode: I- and P-pictures only, an IDR picture every second."""


def make_video(seconds: int, width: int = 1280, height: int = 720, seed: int = 0, phone: bool = False) -> Path:
    """The cached test recording (B-frames, as x264 and many cameras write; ``phone``: I/P pictures only, an IDR
    picture a second); another ``seed`` gives other bytes (a corpus of distinct videos)."""
    import numpy as np

    from indexing.mp4_writer import VideoWriter

    path = OUT / f"synthetic_{height}p_{seconds}s{f'_seed{seed}' if seed else ''}{'_phone' if phone else ''}.mp4"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16, width // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(small, 16, axis=0), 16, axis=1)  # 2 x width wide, blocky
    tmp = path.with_suffix(".tmp.mp4")
    started = time.monotonic()
    options = PHONE_OPTIONS if phone else None
    with VideoWriter(
        tmp, FPS, width, height, codec="libx264", preset="superfast", crf=23, codec_options=options
    ) as writer:
        for i in range(seconds * FPS):
            x = (i * 6) % width
            frame = texture[:, x : x + width].copy()
            scene = i // (FPS * 10)
            frame += np.uint8((scene * 37) % 256)  # a new look every 10 s
            for k in range(3):  # moving blocks
                bx = int((i * (3 + k) + k * 300) % (width - 160))
                by = int((i * (2 + k) + k * 150) % (height - 160))
                frame[by : by + 160, bx : bx + 160] = ((k * 80 + scene * 50) % 256, 255 - k * 60, (i // 15) % 256)
            writer.write(frame)
    tmp.rename(path)
    print(f"made {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s", flush=True)
    return path


def decode_config(workers: int, skip: tuple[bool, bool], hardware: str):
    """The benchmark's decoding: ``skip`` = (non-reference pictures, GOP tails) left undecoded or not."""
    from indexing.config import DecodeConfig

    return DecodeConfig(
        workers=workers, min_segment_s=60, skip_non_reference=skip[0], skip_gop_tails=skip[1], hardware=hardware
    )


def decode_only(video: Path, workers: int, skip: tuple[bool, bool], hardware: str, short_side: int = 224) -> dict:
    from indexing.decode import GridDecoder
    from indexing.probe import probe

    info = probe(video)
    grid = info.grid(RATE_HZ)
    import torch

    config = decode_config(workers, skip, hardware)
    # as indexing does: "auto" decodes on the GPU's decoder when the encoder would run on one
    decoder = GridDecoder(
        video, info, grid, short_side, config, hardware=config.resolved_hardware(torch.cuda.is_available())
    )
    started = time.monotonic()
    n = sum(len(batch.frames) for batch in decoder)
    wall = time.monotonic() - started
    return {
        "wall_s": wall,
        "grid_frames": n,
        "video_frames": decoder.report.frames,
        "skipped": decoder.report.skipped,
        "hardware": decoder.report.hardware or "software",
        "child_peak_rss_mb": decoder.report.child_peak_rss_kb / 1024,
        "workers": decoder.report.workers,
        "duration": info.duration,
        "child_cpu_s": decoder.report.child_cpu_s,
    }


def encode_only(model: str, frames: int = 256, short_side: int = 224) -> dict:
    import numpy as np
    import torch

    from models.clip_encoder import ClipEncoder

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    encoder = ClipEncoder.load(spec_of(model), device=None)
    batch = np.random.default_rng(0).integers(0, 256, (32, short_side, short_side * 16 // 9, 3), dtype=np.uint8)
    encoder.encode_frames(batch[:4])  # warm-up
    started, cpu = time.monotonic(), time.process_time()
    for _ in range(frames // 32):
        encoder.encode_frames(batch)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu
    return {"frames_per_s": frames / wall, "frames_per_cpu_s": frames / cpu, "device": str(encoder.device)}


def end_to_end_child(model: str, video: Path, workers: int, skip: tuple[bool, bool], hardware: str) -> None:
    """Runs in a fresh process: index ``video`` into an empty library; print one JSON line."""
    import torch

    from indexing.config import LibraryConfig
    from indexing.library import Library
    from models.clip_encoder import ClipEncoder

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    encoder = ClipEncoder.load(spec_of(model), device=None)
    lib_dir = OUT / f"lib-{os.getpid()}"
    shutil.rmtree(lib_dir, ignore_errors=True)
    decode = decode_config(workers, skip, hardware)
    lib = Library.open(lib_dir, config=LibraryConfig(decode=decode))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    reports = []
    import indexing.staging as staging_module

    extract = staging_module.extract_features

    def keep_report(*a, **kw):  # Library.add keeps the extraction details to itself; the benchmark wants them
        reports.append(extract(*a, **kw))
        return reports[-1]

    staging_module.extract_features = keep_report
    started = time.monotonic()
    rec = lib.add(video, encoder)
    wall = time.monotonic() - started
    result = reports[0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "parent_cpu_s": usage.ru_utime + usage.ru_stime - cpu_before,
                "child_cpu_s": result.report.child_cpu_s,
                "wall_s": wall,
                "duration": rec.duration,
                "grid_frames": rec.num_rows,
                "encode_s": result.encode_seconds,
                "extract_s": result.seconds,
                "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "parent_rss_after_model_mb": rss_before / 1024,
                "child_peak_rss_mb": result.report.child_peak_rss_kb / 1024,
                "workers": result.report.workers,
                "skipped": result.report.skipped,
                "hardware": result.report.hardware or "software",
                "device": str(encoder.device),
            }
        ),
        flush=True,
    )
    shutil.rmtree(lib_dir, ignore_errors=True)


def plain_loop_child(model: str, video: Path) -> None:
    """Runs in a fresh process: the hand-written baseline (see the module docstring); print one JSON line."""
    import av
    import open_clip
    import torch
    from PIL import Image

    from models.clip_encoder import ClipEncoder

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    float_model = model.partition("+")[0]
    encoder = ClipEncoder.load(spec_of(float_model), device="cpu")  # same architecture, same seeded weights
    preprocess = open_clip.image_transform(encoder.image_size, is_train=False)
    started = time.monotonic()
    batch, frames, next_t = [], 0, 0.5 / RATE_HZ
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            while t + 1e-9 >= next_t:  # this frame is on screen at the next grid time
                batch.append(preprocess(Image.fromarray(frame.to_ndarray(format="rgb24"))))
                next_t += 1.0 / RATE_HZ
                if len(batch) == 32:
                    with torch.inference_mode():
                        encoder.model.encode_image(torch.stack(batch))
                    frames, batch = frames + len(batch), []
    if batch:
        with torch.inference_mode():
            encoder.model.encode_image(torch.stack(batch))
        frames += len(batch)
    print(json.dumps({"wall_s": time.monotonic() - started, "grid_frames": frames, "model": float_model}), flush=True)


def plain_loop(model: str, video: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--plain-child", model, str(video)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(model: str, video: Path, workers: int, skip: tuple[bool, bool], hardware: str) -> dict:
    skipping = ":".join("on" if s else "off" for s in skip)
    out = subprocess.run(
        [sys.executable, __file__, "--e2e-child", model, str(video), str(workers), skipping, hardware],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def decoded_on(result: dict, asked: str) -> str:
    """Where a run decoded, and what was asked when the device could not be used."""
    got = result["hardware"]
    return got if asked in ("auto", "none", got) else f"{got} ({asked} asked, not opened)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-B-16"])
    p.add_argument("--lengths", nargs="+", type=int, default=[150, 600], help="video lengths in seconds")
    p.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[1, 2],
        help="decoder processes to compare (the first is used for every run, the others on the longest video only)",
    )
    p.add_argument("--height", type=int, default=720, choices=(720, 1080), help="the test recording's height")
    p.add_argument(
        "--encoding",
        choices=("camera", "phone"),
        default="camera",
        help="camera: x264 with B-frames; phone: I/P pictures only, an IDR picture a second",
    )
    p.add_argument(
        "--skip-gop-tails",
        choices=("on", "off", "both"),
        default="on",
        help="leave undecoded the pictures after a GOP's last sampled one (streams without B-frames)",
    )
    p.add_argument("--plain", action="store_true", help="also time the hand-written baseline loop per model")
    p.add_argument(
        "--skip-non-reference",
        choices=("on", "off", "both"),
        default="on",
        help="let the decoder skip pictures nothing refers to (the default); 'both' runs each way, alternated",
    )
    p.add_argument(
        "--hardware",
        nargs="+",
        default=["auto"],
        help="where to decode: auto (the GPU's decoder when the encoder is on CUDA), none (software), or an FFmpeg "
        "device type such as cuda; several values run each",
    )
    p.add_argument("--e2e-child", nargs=5, metavar=("MODEL", "VIDEO", "WORKERS", "SKIP", "HW"), help=argparse.SUPPRESS)
    p.add_argument("--plain-child", nargs=2, metavar=("MODEL", "VIDEO"), help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.e2e_child:
        model, video, workers, skip, hardware = args.e2e_child
        nonref, tails = (s == "on" for s in skip.split(":"))
        end_to_end_child(model, Path(video), int(workers), (nonref, tails), hardware)
        return
    if args.plain_child:
        plain_loop_child(args.plain_child[0], Path(args.plain_child[1]))
        return

    from bench.machine import cpu_model

    cores = os.cpu_count() or 1
    print(
        f"CPU: {cpu_model()}, {cores} cores; load average now {os.getloadavg()[0]:.1f}; torch threads 2; grid "
        f"{RATE_HZ} Hz; frames resized to short side 224 in the decoder children",
        flush=True,
    )
    width = args.height * 16 // 9
    phone = args.encoding == "phone"
    videos = {s: make_video(s, width=width, height=args.height, phone=phone) for s in sorted(args.lengths)}
    longest = max(videos)
    plan = [(args.workers[0], s) for s in videos] + [(w, longest) for w in args.workers[1:]]
    choice = {"on": [True], "off": [False], "both": [False, True]}
    skips = [(n, t) for n in choice[args.skip_non_reference] for t in choice[args.skip_gop_tails]]
    ways = [(skip, hardware) for hardware in args.hardware for skip in skips]

    print("\n== decode only (children decode + resize; parent just receives) ==", flush=True)
    for (workers, seconds), (skip, hardware) in [(run, way) for run in plan for way in ways]:
        r = decode_only(videos[seconds], workers, skip, hardware)
        print(
            f"{seconds:4d} s video, {r['workers']} worker(s), {decoded_on(r, hardware)}, "
            f"skipping {r['skipped']} pictures: "
            f"{r['duration'] / r['wall_s']:6.1f} x real time, "
            f"{r['video_frames'] / r['wall_s']:5.0f} decoded fps, {r['grid_frames'] / r['wall_s']:5.1f} grid "
            f"frames/s; decoder CPU {r['child_cpu_s']:.0f} s ({r['duration'] / r['child_cpu_s']:.1f} x real time "
            f"per core); child peak RSS {r['child_peak_rss_mb']:.0f} MB",
            flush=True,
        )

    print("\n== encode only (random weights; 256 frames of 224x398, batches of 32) ==", flush=True)
    for model in args.models:
        r = encode_only(model)
        print(
            f"{model}: {r['frames_per_s']:.1f} frames/s on {r['device']} = {r['frames_per_s'] / RATE_HZ:.1f} x "
            f"real time at {RATE_HZ} Hz ({r['frames_per_cpu_s']:.1f} frames per CPU second)",
            flush=True,
        )

    print("\n== end to end (Library.add in a fresh process: hash, probe, decode, encode, store, index) ==", flush=True)
    for model in args.models:
        runs = plan if model == args.models[0] else [(args.workers[0], longest)]
        for (workers, seconds), (skip, hardware) in [(run, way) for run in runs for way in ways]:
            r = end_to_end(model, videos[seconds], workers, skip, hardware)
            cpu = r["parent_cpu_s"] + r["child_cpu_s"]
            print(
                f"{model}, {seconds:4d} s video, {r['workers']} worker(s), {decoded_on(r, hardware)} decoding, "
                f"skipping {r['skipped']} pictures: "
                f"{r['duration'] / r['wall_s']:5.1f} x real "
                f"time ({r['wall_s']:.0f} s, of which encoding {r['encode_s']:.0f} s), "
                f"{r['grid_frames'] / r['wall_s']:.1f} grid frames/s; CPU {cpu:.0f} s (idle-machine bound "
                f"{r['duration'] / (cpu / cores):.1f} x real time); peak RSS parent {r['parent_peak_rss_mb']:.0f} MB "
                f"(after loading the model {r['parent_rss_after_model_mb']:.0f} MB), decoder child "
                f"{r['child_peak_rss_mb']:.0f} MB",
                flush=True,
            )
            if args.plain and (workers, seconds) == (args.workers[0], longest) and (skip, hardware) == ways[-1]:
                base = plain_loop(model, videos[seconds])
                print(
                    f"  plain loop ({base['model']} float, PyAV every frame, open_clip preprocess, batch 32): "
                    f"{r['duration'] / base['wall_s']:5.1f} x real time ({base['wall_s']:.0f} s); EgoRecall is "
                    f"{base['wall_s'] / r['wall_s']:.2f} x faster",
                    flush=True,
                )


if __name__ == "__main__":
    main()
