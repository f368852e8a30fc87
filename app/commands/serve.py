"""``python -m app [serve]``: serve the app (Library, Ask, Train) on 127.0.0.1.

The app is a thin layer over the same service the other commands call (:mod:`app.service`), on the library
that ``--library`` / ``$EGORECALL_LIBRARY`` names. It binds to the loopback address unless told otherwise;
``--auth`` asks for a user name and password, and uploads above ``--max-file-size`` are refused.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from app.commands.common import add_library_args, command_settings
from models.errors import EgoRecallError

DEFAULT_PORT = 7860


class ServeError(EgoRecallError):
    """The app cannot be served as asked (bad --auth, port taken)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the app in the browser (the default command)",
        description="Serve EgoRecall's app: add videos, ask questions, train models. Binds to 127.0.0.1 by default.",
    )
    add_library_args(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the app to the network -- use --auth then)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="N",
        help=f"port (default {DEFAULT_PORT}, or a free one if it is taken)",
    )
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require this user name and password")
    p.add_argument(
        "--watch",
        type=Path,
        default=os.environ.get("EGORECALL_WATCH") or None,
        metavar="FOLDER",
        help="a folder new recordings arrive in: the Library tab can switch watching it on ($EGORECALL_WATCH)",
    )
    p.add_argument(
        "--max-file-size", default="2gb", metavar="SIZE", help="largest upload accepted, e.g. 500mb, 2gb (default 2gb)"
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where models run")
    p.set_defaults(handler=serve_command)


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ServeError("--auth takes USER:PASS (a user name and a password separated by ':')")
    return user, password


def free_port(host: str, preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` when nothing listens there, else a port the system picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ServeError(f"no free port on {host}")


def serve_command(args: argparse.Namespace) -> int:
    from app.service import EgoRecall
    from app.ui import app_jobs, build_app, launch_app

    auth = parse_auth(args.auth)
    port = args.port if args.port is not None else free_port(args.host)
    service = EgoRecall(command_settings(args))
    blocks = build_app(service, watch_folder=args.watch)
    print(f"EgoRecall: library {service.settings.library}; open http://{args.host}:{port}", flush=True)
    try:
        launch_app(blocks, host=args.host, port=port, auth=auth, max_file_size=args.max_file_size)
    finally:
        app_jobs(blocks).close()
    return 0
