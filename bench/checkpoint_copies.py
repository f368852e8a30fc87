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


def fitted_as_now(service, checkpoint: str, val_file: Path) -> bool:
    """Refit ``checkpoint``'s fusion weight and calibrations on ``val_file`` when an older EgoRecall fitted them
    for another fusion form (a cached benchmark checkpoint), as a training run fits them now; True if refitted.
    Its weights are untouched, so figures of the trained mode alone do not move."""
    from app.answering.fusion import FITTED_FORM, recorded_form
    from app.answering.tuning import fit_checkpoint
    from checkpoints import read_metadata, resolve_checkpoint
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    if (
        recorded_form(read_metadata(resolve_checkpoint(checkpoint, service.settings.checkpoints_dir)).fusion)
        == FITTED_FORM
    ):
        return False
    fit_checkpoint(service, checkpoint, load_nlq(val_file), LibraryClipFeatures(service.library))
    return True
