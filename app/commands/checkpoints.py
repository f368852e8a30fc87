"""``python -m app checkpoints list|show|publish|fetch``: the trained localizers the app can answer with, and
their releases (:mod:`checkpoints.release`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.settings import load_settings

HEADLINE_METRICS = ("R@1@0.3", "R@5@0.3", "R@1@0.5", "R@5@0.5")


def register(subparsers) -> None:
    parser = subparsers.add_parser("checkpoints", help="list and inspect trained localizer checkpoints")
    actions = parser.add_subparsers(dest="checkpoints_action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="checkpoints folder (default: <library>/checkpoints, or EGORECALL_CHECKPOINTS)",
        )

    listing = actions.add_parser("list", help="list stored checkpoints, newest first")
    common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=list_command)

    show = actions.add_parser("show", help="print one checkpoint's metadata (meta.json)")
    common(show)
    show.add_argument("name", help="checkpoint name (in the folder) or path")
    show.set_defaults(handler=show_command)

    publish = actions.add_parser(
        "publish",
        help="write a checkpoint's release (weights, metadata, model card, manifest) for others to fetch",
    )
    common(publish)
    publish.add_argument("name", help="checkpoint name (in the folder) or path")
    publish.add_argument("--out", type=Path, required=True, metavar="DIR", help="the release goes to DIR/NAME")
    publish.add_argument("--licence", required=True, help="licence of the training data, e.g. 'Ego4D license'")
    publish.add_argument("--data", nargs="+", required=True, metavar="NAME", help="training data, e.g. ego4d-nlq-v2")
    publish.add_argument("--eval-file", default="", metavar="FILE", help="the file its metrics were measured on")
    publish.set_defaults(handler=publish_command)

    fetch = actions.add_parser(
        "fetch",
        help="install a published checkpoint (URL, hf:ORG/REPO[/FOLDER] or folder); checked before installing",
    )
    common(fetch)
    fetch.add_argument("source", help="https://.../NAME/ (or its manifest.json), hf:ORG/REPO[/FOLDER], or a folder")
    fetch.add_argument("--name", default=None, help="install under this name instead of the release's")
    fetch.set_defaults(handler=fetch_command)


def _directory(args) -> Path:
    return args.dir if args.dir is not None else load_settings().checkpoints_dir


def _metrics_summary(metrics: dict[str, float]) -> str:
    keys = [k for k in HEADLINE_METRICS if k in metrics] or sorted(metrics)[:3]
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys) or "-"


def list_command(args) -> int:
    from checkpoints import list_checkpoints

    directory = _directory(args)
    found = list_checkpoints(directory)
    if args.json:
        print(json.dumps([c.to_dict() for c in found], indent=2))
        return 0
    if not found:
        print(f"no checkpoints in {directory}")
        return 0
    rows = [
        (
            c.name,
            c.model,
            c.stage or "-",
            c.created,
            f"{c.feature_encoder.key} ({c.feature_encoder.dim}-d)",
            _metrics_summary(c.metrics),
        )
        for c in found
    ]
    header = ("NAME", "MODEL", "STAGE", "CREATED", "FEATURES", "METRICS")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def show_command(args) -> int:
    from checkpoints import read_metadata, resolve_checkpoint

    folder = resolve_checkpoint(args.name, _directory(args))
    print(json.dumps({"path": str(folder), **read_metadata(folder).to_dict()}, indent=2))
    return 0


def publish_command(args) -> int:
    from checkpoints.release import publish

    out = publish(
        args.name,
        args.out,
        licence=args.licence,
        training_data=list(args.data),
        evaluation_file=args.eval_file,
        directory=_directory(args),
    )
    print(f"wrote the release {out} (serve the folder; users run `checkpoints fetch URL/{out.name}/`)")
    return 0


def fetch_command(args) -> int:
    from checkpoints.release import install

    folder = install(args.source, _directory(args), name=args.name)
    print(f"installed {folder.name} in {folder.parent}")
    return 0
