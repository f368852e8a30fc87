"""``python -m app``: serve the UI, or run one action (index, ask, train, ...) from the command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from models.errors import EgoRecallError

OUR_PACKAGES = ("app", "models", "indexing", "checkpoints", "training")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


DEFAULT_COMMAND = "serve"


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from app.commands import register_all

    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="EgoRecall: index first-person video and ask where things happened. "
        "With no command, serves the app on 127.0.0.1.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_all(subparsers)
    return parser, subparsers.choices


def with_default_command(argv: list[str], commands: dict) -> list[str]:
    """`python -m app [--library DIR ...]` means `python -m app serve [...]`."""
    first = next((a for a in argv if a not in ("-v", "--verbose")), None)
    if DEFAULT_COMMAND in commands and first not in commands and first not in ("-h", "--help"):
        return (
            [a for a in argv if a in ("-v", "--verbose")]
            + [DEFAULT_COMMAND]
            + [a for a in argv if a not in ("-v", "--verbose")]
        )
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    args = parser.parse_args(with_default_command(argv, commands))
    configure_logging(args.verbose)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except EgoRecallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `python -m app library list | head`: the reader left; say nothing more, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
