"""``python -m app demo [--library DIR] [--quick]``: the offline end-to-end demo (see :mod:`app.demo`).

Prints each stage with its time, the figures, the two answers to the demo question and the command that
browses the result. Ctrl-C or SIGTERM stops it cleanly at the next point where a stage can stop.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the offline end-to-end demo (synthetic world -> pretrain -> index -> NaQ -> VSLNet -> ask)",
        description="Synthesize a first-person world, pretrain the small demo encoder on its narrations, index "
        "its videos, build NaQ queries, train VSLNet, and answer 'where did I put the keys?' zero-shot "
        "and with the trained model. Nothing is downloaded. Running it again on the same library "
        "reuses the finished stages.",
    )
    p.add_argument(
        "--library",
        type=Path,
        default=None,
        metavar="DIR",
        help="library directory (default: $EGORECALL_LIBRARY or data/library); it must be empty or "
        "hold an earlier demo",
    )
    p.add_argument("--quick", action="store_true", help="a much smaller demo (a few short videos, a few steps)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    p.set_defaults(handler=demo_command)


def _mmss(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"


def _span(start: float, end: float) -> str:
    """Whole seconds that contain the moment (start rounded down, end up), so a short moment never reads
    as 01:55-01:55."""
    return f"{_mmss(math.floor(start))}-{_mmss(math.ceil(end))}"


def _print_answer(title: str, answer, report) -> None:
    print(f'\n{title} ({answer.mode}): "{answer.question}"')
    if not answer.moments:
        print("  no moments found")
    for m in answer.moments:
        truth = "  [true]" if report.is_true(m.video_name, m.start, m.end) else ""
        if not truth and report.is_earlier(m.video_name, m.start, m.end):
            truth = "  [an earlier put-down]"
        clip = m.clip if m.clip is not None else f"(no clip: {m.clip_error})"
        when = f"{m.when}  " if m.when else ""
        print(f"  {m.rank}. {when}{_span(m.start, m.end)}  {m.video_name}  score {m.score:.3f}  {clip}{truth}")
    if answer.order_note and answer.moments:
        print(f"  ({answer.order_note})")


def demo_command(args: argparse.Namespace) -> int:
    from app.demo import DemoConfig, run_demo
    from app.service import EgoRecall
    from app.settings import load_settings

    settings = load_settings()
    if args.library:
        settings.library = args.library
    config = DemoConfig.quick() if args.quick else DemoConfig()
    if args.threads:
        from dataclasses import replace

        config = replace(config, threads=args.threads)

    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum, frame):
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()
            print(
                "\nstopping at the next stage boundary or training step (Ctrl-C again to abort)...",
                file=sys.stderr,
                flush=True,
            )

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    last: dict[str, str | None] = {"text": None}

    def progress(text: str, fraction: float) -> None:
        if text != last["text"]:
            last["text"] = text
            print(f"[{100 * fraction:5.1f} %] {text}", file=sys.stderr, flush=True)

    try:
        report = run_demo(EgoRecall(settings), config, progress, stop)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

    print(f"EgoRecall demo in {report.library}")
    for stage in report.stages:
        note = " (reused)" if stage.reused else ""
        print(f"  {stage.name:<9} {stage.seconds:7.1f} s{note}  {stage.detail}")
    if report.pretrain_metrics:
        m = report.pretrain_metrics
        print(
            f"encoder: {report.encoder}\n  held-out text->moment retrieval R@1 {m.get('t2v_R@1', 0):.1f} "
            f"(chance {m.get('chance_t2v_R@1', 0):.1f}), R@5 {m.get('t2v_R@5', 0):.1f} "
            f"(chance {m.get('chance_t2v_R@5', 0):.1f})"
        )
    if report.train_metrics:
        m = report.train_metrics
        print(
            f"localizer: {report.checkpoint} (in {report.checkpoints_dir})\n  validation "
            + "  ".join(f"{k} {m[k]:.1f}" for k in ("R@1@0.3", "R@5@0.3", "R@1@0.5", "R@5@0.5") if k in m)
        )
    if report.zero_shot is not None:
        _print_answer("zero-shot", report.zero_shot, report)
    if report.trained is not None:
        _print_answer("trained", report.trained, report)
    state = "stopped after" if report.stopped else "total"
    print(f"\n{state}: {report.total_seconds:.1f} s ({_mmss(round(report.total_seconds))})")
    print(f"browse it: python -m app --library {args.library or settings.library}")
    return 130 if report.stopped else 0


__all__ = ["register"]
