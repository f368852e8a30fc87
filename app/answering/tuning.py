"""Fitting a checkpoint for answering: its fusion weight with zero-shot and its confidence calibrations.

Why here and not in training. A checkpoint answers users in the ``fused`` and ``auto`` modes, whose weight and
"no good match" threshold must be chosen on validation data, not left at a default (an untuned 0.5 fell 3
points of R@5 behind the checkpoint alone on an independent world). Fitting needs the library's CLIP and the
answerers, which live above ``training``; so the service runs :func:`fit_checkpoint` after every training run
(``eval.fit_answering``), and ``calibrate`` runs it again on another file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.answering.base import FeatureMismatch
from app.answering.fusion import FITTED_FORM, FUSED, FusedAnswerer, choose_fusion_weight
from app.answering.rejection import CalibrationError, calibrate_mode, negative_queries
from models.errors import EgoRecallError
from training.config import TrainConfig
from training.features import ClipFeatureSource
from training.nlq import NLQDataset
from training.run_result import TrainResult

logger = logging.getLogger(__name__)


@dataclass
class CheckpointFit:
    """What :func:`fit_checkpoint` stored (and what it could not fit, with why)."""

    checkpoint: str
    fitted_on: str
    fusion: dict | None = None
    """``{"weight", "chosen_on", "metrics": {weight: {R@1@0.3, R@5@0.3}}}`` as stored in ``meta.json``."""
    calibrations: dict[str, dict] = field(default_factory=dict)
    """Mode (``checkpoint``, ``fused``) -> the stored calibration's threshold and its cross-fitted figures."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Step -> why it was not fitted (e.g. a validation file about a single video has no negatives)."""

    def summary(self) -> str:
        parts = []
        if self.fusion is not None:
            parts.append(f"fusion weight {self.fusion['weight']:.1f}")
        for mode, report in self.calibrations.items():
            parts.append(
                f"{mode} confidence: threshold {100 * report['threshold']:.0f} %, on held-out halves "
                f"{report['negatives_flagged']:.0f} % of negatives flagged 'no good match' at "
                f"{report['R@1@0.3_lost']:.1f} points of R@1@0.3 lost"
            )
        parts += [f"no {step} ({why})" for step, why in self.skipped.items()]
        return f"{self.checkpoint} fitted on {self.fitted_on}: " + "; ".join(parts)


def record_fusion(service, checkpoint: str, dataset: NLQDataset, source: ClipFeatureSource) -> dict:
    """Choose the fused mode's weight on ``dataset``'s annotated queries and store it, with the form it was chosen
    for (:data:`~app.answering.fusion.FITTED_FORM`, whatever form an earlier fit recorded), in the checkpoint."""
    from checkpoints import update_metadata

    fused = FusedAnswerer(service.answer_context(), checkpoint, form=FITTED_FORM)
    choice = choose_fusion_weight(fused, dataset, source)
    fusion = {
        "weight": choice.weight,
        "form": choice.form,
        "chosen_on": str(dataset.source),
        "queries": choice.queries,
        "metrics": {str(w): s for w, s in choice.scores.items()},
    }
    update_metadata(checkpoint, {"fusion": fusion}, service.settings.checkpoints_dir)
    return fusion


def fit_checkpoint(
    service,
    checkpoint: str,
    dataset: NLQDataset,
    source: ClipFeatureSource,
    *,
    negatives_per_clip: int = 3,
    max_r1_loss: float = 2.0,
) -> CheckpointFit:
    """Fusion weight first (the fused calibration depends on it), then the calibration of the checkpoint alone
    and of the fused mode. A step that cannot be fitted on this file is skipped with its reason; the others
    still are."""
    fit = CheckpointFit(checkpoint, str(dataset.source))
    try:
        fit.fusion = record_fusion(service, checkpoint, dataset, source)
    except (FeatureMismatch, ValueError) as exc:  # no CLIP of these features / no annotated query with features
        fit.skipped["fusion"] = str(exc)
    negatives = negative_queries(dataset, per_clip=negatives_per_clip)
    modes = [checkpoint] + ([f"{FUSED}:{checkpoint}"] if fit.fusion is not None else [])
    for mode in modes:
        name = FUSED if mode.startswith(f"{FUSED}:") else "checkpoint"
        if not negatives:
            fit.skipped[f"{name} confidence"] = (
                "no negatives: no other video's question asks about an object or place a clip's own questions never "
                "name (a file about one video has none)"
            )
            continue
        try:
            out = calibrate_mode(service, mode, dataset, source, negatives, max_r1_loss=max_r1_loss)
        except CalibrationError as exc:
            fit.skipped[f"{name} confidence"] = str(exc)
            continue
        fit.calibrations[name] = dict(out["cross_fitted"], threshold=out["calibration"]["threshold"])
    logger.info("%s", fit.summary())
    return fit


def fit_for_answering(service, config: TrainConfig, result: TrainResult) -> dict[str, str]:
    """Each published checkpoint's fusion weight and calibrations, fitted on the validation file
    (:func:`fit_checkpoint`), when the run trained on the service's library (whose CLIP fusion needs) and
    published where the app reads checkpoints. Returns checkpoint -> what was fitted, or why not."""
    if int(os.environ.get("RANK", "0")) != 0 or not result.checkpoints:
        return {}
    library = config.data.library
    same_library = bool(library) and Path(library or "").resolve() == Path(service.settings.library).resolve()
    ours = all(
        Path(p).parent.resolve() == service.settings.checkpoints_dir.resolve() for p in result.checkpoints.values()
    )
    if not config.data.val and config.init_from and same_library and ours:
        return _inherit_fusion(service, config.init_from, result)
    if not config.data.val or not same_library or not ours:
        why = "no validation file" if not config.data.val else "not trained on this app's library and checkpoints"
        return {Path(p).name: f"not fitted for answering ({why})" for p in result.checkpoints.values()}
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    dataset = load_nlq(config.data.val)
    source = LibraryClipFeatures(service.library)
    fitted = {}
    for path in dict.fromkeys(result.checkpoints.values()):  # best and final may be one folder
        name = Path(path).name
        try:
            fitted[name] = fit_checkpoint(service, name, dataset, source).summary()
        except EgoRecallError as exc:  # the checkpoint stays usable; only its fitting failed
            logger.warning("%s: not fitted for answering: %s", name, exc)
            fitted[name] = f"not fitted for answering: {exc}"
    return fitted


def _inherit_fusion(service, base: str, result: TrainResult) -> dict[str, str]:
    """A fine-tune with no validation file (e.g. ``EgoRecall.adapt``) keeps its starting checkpoint's fusion
    weight, which was chosen on that checkpoint's validation data; its calibrations are not carried over (they
    described the base's scores)."""
    from checkpoints import read_metadata, resolve_checkpoint, update_metadata

    fusion = read_metadata(resolve_checkpoint(base, service.settings.checkpoints_dir)).fusion
    if not fusion:
        return {Path(p).name: "not fitted for answering (no validation file)" for p in result.checkpoints.values()}
    inherited = {**fusion, "inherited_from": Path(base).name}
    for path in dict.fromkeys(result.checkpoints.values()):
        update_metadata(path, {"fusion": inherited})
    said = f"fusion weight {fusion['weight']} of {Path(base).name}"
    return {Path(p).name: said for p in result.checkpoints.values()}
