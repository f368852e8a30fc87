"""``python -m app synth``: write a synthetic first-person world (videos, narrations, NLQ files)."""

from __future__ import annotations

import argparse
import os

from training.synthworld.plan import SynthConfig
from training.synthworld.style import REPORT_STYLES, TUNING_STYLES


def register(subparsers) -> None:
    defaults = SynthConfig()
    p = subparsers.add_parser(
        "synth",
        help="generate a synthetic egocentric world with Ego4D-format narrations and NLQ annotations",
        description="Generate seeded first-person videos of a day in a small house, with Ego4D-format "
        "narration.json, nlq_train.json / nlq_val.json (exact answer windows) and world.json "
        "(the ground-truth event log). Used by tests, the offline demo and benchmarks.",
    )
    p.add_argument("--out", required=True, help="output folder (must be empty, or see --overwrite)")
    p.add_argument("--videos", type=int, default=defaults.n_videos, help="number of videos (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="world seed (default %(default)s)")
    p.add_argument(
        "--duration", type=float, default=defaults.duration, help="mean video length in seconds (default %(default)s)"
    )
    p.add_argument(
        "--duration-jitter",
        type=float,
        default=defaults.duration_jitter,
        help="each video lasts duration x U(1-j, 1+j), rounded to whole seconds; "
        "0 makes every video exactly --duration long (default %(default)s)",
    )
    p.add_argument("--size", type=int, default=defaults.size, help="square frame side in pixels (default %(default)s)")
    p.add_argument("--fps", type=float, default=defaults.fps, help="frames per second (default %(default)s)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=defaults.val_fraction,
        help="share of videos in the val split (default %(default)s)",
    )
    p.add_argument(
        "--max-queries",
        type=int,
        default=defaults.max_queries_per_clip,
        help="most NLQ queries per clip (default %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes rendering videos in parallel (default %(default)s)",
    )
    p.add_argument(
        "--style",
        default=defaults.style,
        help="how the world looks, moves and talks: a tuning style (" + ", ".join(TUNING_STYLES) + "), a report "
        "style never tuned on (" + ", ".join(REPORT_STYLES) + "), or several houses of one family joined by + "
        "(home+terrace+bungalow: a training corpus) (default %(default)s)",
    )
    p.add_argument(
        "--val-house",
        default=None,
        metavar="STYLE",
        help="in a mix of houses, the one held out whole as the val split (a house training never sees)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a synthetic world previously generated in --out")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.synthworld.generate import generate_world

    cfg = SynthConfig(
        n_videos=args.videos,
        seed=args.seed,
        duration=args.duration,
        duration_jitter=args.duration_jitter,
        size=args.size,
        fps=args.fps,
        val_fraction=args.val_fraction,
        max_queries_per_clip=args.max_queries,
        workers=args.workers,
        style=args.style,
        val_style=args.val_house,
    )
    summary = generate_world(args.out, cfg, overwrite=args.overwrite)
    width = max(len(name) for name, _ in summary.files)
    for name, description in summary.files:
        print(f"wrote {name:<{width}}  {description}")
    print(f"total: {summary.totals_line()}")
    return 0
