"""Checkpoints that benchmarks answer with in libraries of their own."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_checkpoint(source: Path, target: Path) -> None:
    """Copy a published checkpoint folder to ``target`` afresh, replacing any earlier copy: a copy kept from
    an earlier run would answer with that run's metadata (fusion weight, calibration, inference settings) after
    the source was refitted -- a benchmark once reported a change as no change that way."""
    if Path(source).resolve() == Path(target).resolve():
        return  # already where it is answered from
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
