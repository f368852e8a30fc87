"""One module per group of CLI subcommands; each exposes ``register(subparsers)``.

A command's handler receives the parsed arguments and returns an exit code. It calls the same service
functions as the UI, so the CLI and the app cannot drift apart.
"""

from importlib import import_module

COMMAND_MODULES = (
    "serve",
    "index",
    "library",
    "ask",
    "nlq",
    "synth",
    "checkpoints",
    "train",
    "pretrain",
    "demo",
    "settings",
)
"""Module names under ``app.commands``, in the order their commands appear in ``--help``."""


def register_all(subparsers) -> None:
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").register(subparsers)
