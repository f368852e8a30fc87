"""A running EgoRecall app for tests: a fresh library on the tiny random encoder, served on 127.0.0.1."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from tiny import TINY_SPEC

from app.service import EgoRecall
from app.settings import Settings
from app.ui import build_app, launch_app

TINY = TINY_SPEC


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    blocks: object
    service: EgoRecall

    @property
    def jobs(self):
        return self.blocks.egorecall_jobs

    def close(self) -> None:
        self.jobs.close()
        self.blocks.close()


def start_app(library: Path, *, max_file_size: str = "2gb", poll_s: float = 0.5) -> RunningApp:
    service = EgoRecall(Settings(library=library, device="cpu"), encoder_spec=TINY)
    blocks = build_app(service, poll_s=poll_s)
    _, url = launch_app(blocks, port=free_port(), max_file_size=max_file_size, prevent_thread_lock=True, quiet=True)
    return RunningApp(url.rstrip("/") + "/", blocks, service)
