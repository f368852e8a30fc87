"""``python -m app pretrain``: narration pretraining of an open_clip encoder (EgoVLP-style, EgoNCE loss).

Several processes: ``torchrun --nproc_per_node N -m app pretrain ...`` (NCCL on GPUs, gloo on CPUs). The
result is a weights file for ``python -m app index --model NAME --pretrained FILE`` (or ``library reindex``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain an encoder on narrated videos (EgoVLP-style)",
        description="Fine-tune an open_clip model's image and text towers on (frames of a narration's window, "
        "narration) pairs with EgoNCE, so that zero-shot questions find the right moments. Frames are "
        "decoded once into a cache; a killed run continues with --resume.",
    )
    p.add_argument(
        "--videos-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder of <video_uid>.mp4 (or .mkv, .webm, ...) files",
    )
    p.add_argument(
        "--narrations",
        type=Path,
        required=True,
        metavar="FILE",
        help="Ego4D narration.json or an EgoClip table (egoclip.csv / .tsv)",
    )
    p.add_argument(
        "--model",
        default="egorecall-small",
        metavar="NAME",
        help="open_clip architecture (default egorecall-small, the demo encoder; e.g. ViT-B-16)",
    )
    p.add_argument(
        "--pretrained",
        default="none",
        metavar="TAG|FILE|none",
        help="starting weights: an open_clip tag, a weights file, or 'none' for random (default)",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.safetensors",
        help="where to write the encoder weights (a .json sidecar is written beside them)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimiser steps")
    length.add_argument("--epochs", type=float, default=None, help="passes over the training pairs (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per process per step (default 64)")
    p.add_argument(
        "--lr",
        type=float,
        default=5e-4,
        help="peak learning rate (default 5e-4; ~1e-5 when fine-tuning pretrained weights)",
    )
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--moments-per-video",
        type=int,
        default=4,
        help="scene-aware negatives: moments of one video per group in a batch (default 4)",
    )
    p.add_argument(
        "--frames-per-clip", type=int, default=1, help="frames drawn per pair per step, embeddings averaged (default 1)"
    )
    p.add_argument("--frames-per-window", type=int, default=4, help="frames cached per narration window")
    p.add_argument("--no-action-positives", action="store_true", help="plain InfoNCE targets (no verb+noun positives)")
    p.add_argument("--no-augment", action="store_true", help="no random resized crops")
    p.add_argument(
        "--egovlp-windows",
        action="store_true",
        help="use EgoVLP's window rule even where the narrations file gives windows",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of videos held out (default 0.1)")
    p.add_argument("--val-videos", nargs="+", default=(), metavar="UID", help="held-out video uids instead")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="decoded frame cache (default <out stem>.train/frames)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="resume state and log.jsonl (default <out stem>.train beside --out)",
    )
    p.add_argument("--eval-every", type=int, default=200, metavar="STEPS")
    p.add_argument("--save-every", type=int, default=200, metavar="STEPS", help="steps between resume states")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last state")
    p.add_argument("--overwrite", action="store_true", help="replace --out and start over")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    p.set_defaults(handler=pretrain_command)


def pretrain_command(args: argparse.Namespace) -> int:
    import torch

    from training.pretrain import PretrainConfig, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PretrainConfig(
        videos_dir=args.videos_dir,
        narrations=args.narrations,
        out=args.out,
        model=args.model,
        pretrained=args.pretrained,
        cache_dir=args.cache_dir,
        work_dir=args.work_dir,
        use_given_windows=not args.egovlp_windows,
        frames_per_window=args.frames_per_window,
        val_fraction=args.val_fraction,
        val_videos=tuple(args.val_videos),
        batch_size=args.batch_size,
        moments_per_video=args.moments_per_video,
        frames_per_clip=args.frames_per_clip,
        action_aware=not args.no_action_positives,
        augment=not args.no_augment,
        steps=args.steps,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        eval_every=args.eval_every,
        log_every=args.log_every,
        save_every=args.save_every,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        amp=not args.no_amp,
    )
    import signal
    import threading

    from app.commands.stopping import stop_on_signals

    stop = threading.Event()
    previous = stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else {}
    try:
        result = pretrain(config, stop=stop)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if result is None:  # not the main process of a distributed run
        return 0
    if result.stopped:
        print(f"stopped at step {result.steps}; the same command with --resume continues the run")
        return 0
    print(f"wrote {result.out} ({result.steps} steps); use it with --model {config.model} --pretrained {result.out}")
    if result.metrics:
        m = result.metrics
        print(
            f"held-out retrieval ({m['moments']} moments, {m['texts']} texts): "
            f"text->moment R@1 {m['t2v_R@1']:.1f} (chance {m['chance_t2v_R@1']:.1f}), "
            f"R@5 {m['t2v_R@5']:.1f} (chance {m['chance_t2v_R@5']:.1f}); "
            f"moment->text R@1 {m['v2t_R@1']:.1f} (chance {m['chance_v2t_R@1']:.1f})"
        )
    print(f"log: {result.log}")
    return 0


__all__ = ["register"]
