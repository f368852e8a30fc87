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
        "--config",
        default=None,
        metavar="FILE",
        help="YAML/JSON file of pretraining settings (any field of training.pretrain.PretrainConfig)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set augment=false --set eval_every=100 (repeatable)",
    )
    # The everyday settings as flags (each is the PretrainConfig field of the same name; a test keeps them so).
    p.add_argument("--videos-dir", type=Path, metavar="DIR", help="folder of <video_uid>.mp4 (or .mkv, ...) files")
    p.add_argument(
        "--narrations", type=Path, metavar="FILE", help="Ego4D narration.json or an EgoClip table (egoclip.csv)"
    )
    p.add_argument(
        "--out", type=Path, metavar="FILE.safetensors", help="the encoder weights to write (+ a .json sidecar)"
    )
    p.add_argument("--model", metavar="NAME", help="open_clip architecture (default egorecall-small; e.g. ViT-B-16)")
    p.add_argument("--pretrained", metavar="TAG|FILE|none", help="starting weights (default none: random)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimiser steps")
    length.add_argument("--epochs", type=float, help="passes over the training pairs (default 10)")
    p.add_argument("--batch-size", type=int, help="pairs per process per step (default 64)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 5e-4; ~1e-5 fine-tuning pretrained weights)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", default=None, help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace --out and start over")
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (how it runs)")
    p.set_defaults(handler=pretrain_command)


EVERYDAY = (
    "videos_dir",
    "narrations",
    "out",
    "model",
    "pretrained",
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "resume",
    "overwrite",
    "device",
)
"""The settings with a flag of their own; every other one is ``--set NAME=VALUE`` or a config file's."""


def pretrain_command(args: argparse.Namespace) -> int:
    import torch

    from training.pretrain import load_pretrain_config, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    flags = {name: getattr(args, name) for name in EVERYDAY if getattr(args, name) is not None}
    config = load_pretrain_config(args.config, args.overrides, flags)
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
