"""The ``auto`` mode, everyone's default: the best answer this library can give without the user choosing.

On a world nobody tuned on, a NaQ-trained localizer answered twice as well as zero-shot CLIP (bench/README.md),
and fusing the two at a weight chosen on validation data keeps the better of them; with no checkpoint, only
zero-shot can answer. So ``auto`` resolves, at every question, to

* ``fused:BEST`` when a checkpoint trained on this library's features exists -- BEST is the one whose fusion was
  fitted on its own validation data (``app.answering.tuning``; a weight inherited from the checkpoint it was
  fine-tuned from, as *Adapt to my library* does, is no evidence about the fine-tuned weights), then the highest
  validation R@1@0.3 + R@5@0.3 it recorded (at its chosen weight when fitted, else its own metrics), then the
  newest;
* the checkpoint alone when zero-shot cannot read the features (another encoder's features);
* ``zeroshot`` otherwise.

It builds no answerer of its own: it names one of the registered modes, so the answer says which mode answered
(``Answer.mode``) and the answerer cache is shared with the explicit modes.
"""

from __future__ import annotations

from app.answering.base import ZEROSHOT, AnswerContext, Answerer, FeatureMismatch
from app.answering.fusion import FUSED, FUSION_FORMS, recorded_form
from app.answering.registry import answerer_cache_key, make_answerer, register_answerer
from models.text_readings import TEXT_READINGS

AUTO = "auto"


def _validation_merit(info) -> float:
    """R@1@0.3 + R@5@0.3 on the checkpoint's validation data: at its fitted fusion weight when it has one."""
    fusion = info.fusion or {}
    scores = (fusion.get("metrics") or {}).get(str(fusion.get("weight")))
    if isinstance(scores, dict):
        return float(scores.get("R@1@0.3", 0.0)) + float(scores.get("R@5@0.3", 0.0))
    return float(info.metrics.get("R@1@0.3", 0.0)) + float(info.metrics.get("R@5@0.3", 0.0))


def best_checkpoint(context: AnswerContext):
    """The :class:`~checkpoints.CheckpointInfo` ``auto`` fuses with, or None when no checkpoint reads these
    features."""
    from checkpoints import list_checkpoints, reads_features

    if context.checkpoints_dir is None:
        return None
    infos = list_checkpoints(context.checkpoints_dir)
    if context.rate_hz is None:  # features of varying rate: the encoder and size decide
        infos = [c for c in infos if c.feature_encoder.dim == context.feature_dim]
        if context.feature_key_known:
            infos = [c for c in infos if c.feature_encoder.key == context.feature_key]
    else:
        infos = [
            c
            for c in infos
            if reads_features(c.feature_encoder, context.feature_key, context.feature_dim, context.rate_hz)
        ]
    # a text reading or a fusion form this EgoRecall does not know (a newer one's): asked for by name only
    infos = [c for c in infos if c.text_reading in TEXT_READINGS and recorded_form(c.fusion or {}) in FUSION_FORMS]
    if not infos:
        return None
    # list_checkpoints is newest first and max() keeps the first of equals: the newest wins ties.
    return max(infos, key=lambda c: (_validated(c), _validation_merit(c)))


def _validated(info) -> bool:
    """Whether the checkpoint's own fusion weight was chosen on validation data (not inherited)."""
    fusion = info.fusion or {}
    return "chosen_on" in fusion and "inherited_from" not in fusion


def resolve_auto(context: AnswerContext) -> str:
    """The mode ``auto`` stands for in this context (see the module docstring)."""
    best = best_checkpoint(context)
    return ZEROSHOT if best is None else f"{FUSED}:{best.name}"


def _auto_key(context: AnswerContext, arg: str | None) -> tuple:
    return answerer_cache_key(resolve_auto(context), context)


@register_answerer(AUTO, cache_key=_auto_key)
def auto_answerer(context: AnswerContext, _arg: str | None = None) -> Answerer:
    mode = resolve_auto(context)
    try:
        return make_answerer(mode, context)
    except FeatureMismatch:
        if mode == ZEROSHOT:
            raise
        return make_answerer(mode.partition(":")[2], context)  # the checkpoint alone reads any CLIP's features
