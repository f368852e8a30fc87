"""``python -m app train --config FILE [--set key=value ...] [--resume]``: train one stage of a localizer.

Configs live in ``training/configs/`` (a bare file name is looked up there too). Progress goes to stderr
(tqdm) and the run's ``log.jsonl``; the final figures and the published checkpoints go to stdout. Ctrl-C or
SIGTERM stops the run cleanly after the current step (snapshot written, checkpoints published); a killed run
continues where its last snapshot left off when the same command is run again.

Several GPUs or machines: ``torchrun --nproc_per_node N -m app train --config FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a localizer (VSLNet, ReLER) on NLQ and NaQ queries",
        description="Train one stage of a trained localizer as a config file says (stage 1 'joint': NLQ + "
        "narration queries; stage 2 'finetune': NLQ only, from a stage-1 checkpoint). Evaluates on the "
        "validation file every eval.every steps and publishes <name>-best and <name>-final to the "
        "checkpoints folder. Running the same command again resumes an interrupted run.",
    )
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML/JSON training config (e.g. training/configs/vslnet_naq_joint.yaml)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set optim.lr=1e-4 --set data.train=[a.json,b.json] (repeatable)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="require a snapshot to continue from (also continues a run that was stopped early)",
    )
    p.add_argument("--library", type=Path, default=None, metavar="DIR", help="shorthand for --set data.library=DIR")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=train_command)
    _register_adapt(subparsers)


def _register_adapt(subparsers) -> None:
    from app.commands.common import add_library_args

    p = subparsers.add_parser(
        "adapt",
        help="adapt a checkpoint to this library without labels (its own pseudo-narrations)",
        description="The library narrates itself (which everyday object stands out where, and what is done with "
        "it), NaQ turns the narrations into queries, and a short fine-tune of the checkpoint on them is "
        "published as <checkpoint>-adapted-<date>, beside the checkpoint. No annotation is needed.",
    )
    p.add_argument(
        "--checkpoint", default=None, metavar="NAME", help="the checkpoint to adapt (default: the one auto uses)"
    )
    p.add_argument("--steps", type=int, default=None, metavar="N", help="fine-tuning steps (default 200)")
    p.add_argument(
        "--min-z",
        type=float,
        default=None,
        metavar="Z",
        help="how clearly an object must stand out to be narrated, in standard deviations over the library "
        "(default 2.5; lower narrates more, and more wrongly)",
    )
    add_library_args(p)
    p.set_defaults(handler=adapt_command)


def adapt_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from app.adaptation import AdaptSettings
    from app.commands.common import command_settings
    from app.commands.stopping import stop_on_signals
    from app.service import EgoRecall

    settings = AdaptSettings() if args.steps is None else replace(AdaptSettings(), steps=args.steps)
    if args.min_z is not None:
        settings = replace(settings, narration=replace(settings.narration, min_z=args.min_z))
    if settings.steps < 1:
        from models.errors import EgoRecallError

        raise EgoRecallError(f"--steps must be at least 1, not {settings.steps}")
    stop = threading.Event()
    previous = stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else {}
    try:
        result = EgoRecall(command_settings(args)).adapt(args.checkpoint, settings, stop=stop)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    state = "stopped early at" if result.stopped else "finished after"
    print(f"adapted: {state} step {result.steps} of {result.total_steps}")
    for which, path in result.checkpoints.items():
        print(f"checkpoint ({which}): {path}")
    for line in result.answering.values():
        print(line)
    return 0


def train_command(args: argparse.Namespace) -> int:
    from app.commands.stopping import stop_on_signals
    from app.service import EgoRecall
    from app.settings import load_settings
    from training.config import load_config

    overrides = list(args.overrides)
    if args.library:
        overrides.append(f"data.library={args.library}")
    config = load_config(args.config, overrides)
    settings = load_settings()
    if config.data.library:
        settings.library = Path(config.data.library)
    stop = threading.Event()
    previous = stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else {}
    try:
        result = EgoRecall(settings).train(config, stop=stop, resume=True if args.resume else None, show_progress=True)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    state = "stopped early at" if result.stopped else "finished after"
    print(f"{config.name}: {state} step {result.steps} of {result.total_steps} (run folder {result.run_dir})")
    if result.best:
        m = result.best["metrics"]
        print(
            f"best at step {result.best['step']}: "
            + "  ".join(f"{k} {m[k]:.2f}" for k in ("R@1@0.3", "R@5@0.3", "R@1@0.5", "R@5@0.5", "mIoU") if k in m)
        )
    for which, path in result.checkpoints.items():
        print(f"checkpoint ({which}): {path}")
    for line in result.answering.values():
        print(line)
    return 0
