"""What every command that opens a library shares: its ``--library``/``--settings``/``--set`` arguments, the
settings they make, the service built from them, and how a duration is printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.settings import EVERYDAY_FLAGS, Settings, load_settings


def add_library_args(parser: argparse.ArgumentParser) -> None:
    """``--library`` and the app's settings (``--settings FILE``, ``--set KEY=VALUE``), for every command that
    opens a library."""
    parser.add_argument(
        "--library",
        type=Path,
        default=None,
        metavar="DIR",
        help="library directory (default: $EGORECALL_LIBRARY or data/library)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        metavar="FILE",
        help="a YAML file of the app's settings (default: $EGORECALL_CONFIG; `python -m app settings` lists them)",
    )
    parser.add_argument(
        "--set",
        dest="settings_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting, e.g. --set indexing.decode.workers=2 --set clips.pad_s=2 (repeatable)",
    )


def command_settings(args) -> Settings:
    """The settings a command runs with: defaults, environment, ``--settings``, its everyday flags, ``--set``."""
    flags = {name: getattr(args, name, None) for name in EVERYDAY_FLAGS}
    return load_settings(getattr(args, "settings", None), getattr(args, "settings_overrides", None) or (), flags)


def service_for(args):
    from app.service import EgoRecall
    from models.clip_encoder import EncoderSpec

    spec = None
    if getattr(args, "model", None) or getattr(args, "pretrained", None) or getattr(args, "quantize", None):
        spec = EncoderSpec.from_env(model=args.model, pretrained=args.pretrained, quantize=args.quantize)
    return EgoRecall(command_settings(args), encoder_spec=spec, rate_hz=getattr(args, "rate", None))


def duration_text(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
