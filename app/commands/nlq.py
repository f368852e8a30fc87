"""Ego4D NLQ commands: ``evaluate`` (the official metrics, divided by ground truth) and ``naq`` (build NaQ).

Library code is imported inside the handlers so that ``python -m app --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="score an NLQ submission against Ego4D NLQ annotations",
        description="Score a submission (Ego4D NLQ challenge format) against an annotated NLQ file: R@1/R@5 "
        "at IoU > 0.3/0.5, their means, rank-1 mIoU and R@1@0.3 per template. Unlike the "
        "official script, figures are divided by the number of ground-truth queries, so a "
        "query without a prediction counts as a miss.",
    )
    ev.add_argument("--annotations", required=True, metavar="NLQ.json", help="annotated NLQ file (v1 or v2)")
    ev.add_argument("--predictions", required=True, metavar="PRED.json", help="submission file")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.set_defaults(handler=run_evaluate)

    nq = subparsers.add_parser(
        "naq",
        help="turn Ego4D narrations into NLQ training queries (Narrations-as-Queries)",
        description="Keep the narrations whose window lies inside a training clip, make each a query about "
        "that clip, and write the NLQ train file(s) plus one narration annotation per clip.",
    )
    nq.add_argument(
        "--annotations",
        required=True,
        nargs="+",
        metavar="NLQ_TRAIN.json",
        help="NLQ train file(s): their queries are kept and their clips receive narrations",
    )
    nq.add_argument(
        "--extra-clips",
        nargs="+",
        default=[],
        metavar="EM_TRAIN.json",
        help="more training clips, e.g. the VQ and Moments train files (only clips are read)",
    )
    nq.add_argument(
        "--narrations",
        required=True,
        metavar="narration.json|egoclip.tsv",
        help="Ego4D narration.json or EgoClip's table (format detected)",
    )
    nq.add_argument("--out", required=True, metavar="NAQ.json", help="where to write the NLQ-format result")
    nq.add_argument(
        "--nlq-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="keep the NLQ queries of this share of clips (few-shot; 0 = narrations only)",
    )
    nq.add_argument("--seed", type=int, default=0, help="seed for --nlq-fraction")
    nq.add_argument(
        "--alpha", type=float, default=None, help="EgoVLP's alpha in seconds (default: computed from the narrations)"
    )
    nq.add_argument(
        "--ignore-given-windows",
        action="store_true",
        help="use EgoVLP's window rule even where EgoClip gives clip_start/clip_end",
    )
    nq.add_argument("--json", action="store_true", help="print the report as one JSON object")
    nq.set_defaults(handler=run_naq)


def run_evaluate(args: argparse.Namespace) -> int:
    from training.metrics import evaluate
    from training.nlq import load_nlq
    from training.submission import load_submission

    dataset = load_nlq(args.annotations)
    predictions = load_submission(args.predictions)
    scores = evaluate(dataset, predictions, source=args.predictions)
    if args.json:
        print(json.dumps(scores.to_dict()))
    else:
        print(f"Annotations: {args.annotations}\nPredictions: {args.predictions}\n")
        print(scores.table())
    return 0


def run_naq(args: argparse.Namespace) -> int:
    from models.errors import EgoRecallError
    from training.naq import NaQConfig, build_naq_files

    if not 0.0 <= args.nlq_fraction <= 1.0:
        raise EgoRecallError(f"--nlq-fraction must lie between 0 and 1, not {args.nlq_fraction}.")
    if args.alpha is not None and not args.alpha > 0:
        raise EgoRecallError(f"--alpha must be a positive number of seconds, not {args.alpha}.")
    config = NaQConfig(
        alpha=args.alpha,
        use_given_windows=not args.ignore_given_windows,
        nlq_fraction=args.nlq_fraction,
        seed=args.seed,
    )
    report = build_naq_files(args.annotations, args.narrations, args.out, args.extra_clips, config)
    if args.json:
        print(json.dumps({"out": str(args.out), **report.to_dict()}))
    else:
        print(report.to_text())
        print(f"written: {args.out}")
    return 0
