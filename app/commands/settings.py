"""``settings``: the app's settings as this command line and environment make them, as YAML -- every key
``--set`` and a ``--settings`` file accept, with its value."""

from __future__ import annotations

import yaml

from app.commands.common import add_library_args, command_settings


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "settings",
        help="show the app's settings",
        description="Print the settings the other commands would run with (defaults, environment, --settings "
        "FILE, --set KEY=VALUE) as YAML: a starting point for a settings file.",
    )
    add_library_args(p)
    p.set_defaults(handler=settings_command)


def settings_command(args) -> int:
    print(yaml.safe_dump(command_settings(args).to_dict(), sort_keys=False).rstrip())
    return 0
