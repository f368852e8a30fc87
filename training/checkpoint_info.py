"""What a trained checkpoint tells the code that answers with it: which text encoder, which inference settings.

Training records these in the checkpoint's metadata (``text_encoder`` and ``data["inference"]``); answering
rebuilds them from it with the two functions below, so a model trained on resampled clips is also asked on
resampled clips, and its questions get the token features it was trained on.
"""

from __future__ import annotations

from typing import Any

from checkpoints.metadata import TOKEN_FEATURE_KINDS, CheckpointMetadata, TextEncoderInfo, text_encoder_spec
from models.inference import InferenceConfig
from models.text_tokens import TextEncoderSpec, TokenEncoder
from models.windows import LengthPrior

TOKEN_FEATURES_BY_KIND = {kind: features for features, kind in TOKEN_FEATURE_KINDS.items()}
"""A text encoder kind -> the token features a checkpoint records (the inverse of the metadata's table)."""


def text_encoder_info(spec: TextEncoderSpec, encoder: TokenEncoder) -> TextEncoderInfo:
    return TextEncoderInfo(
        model=spec.model,
        pretrained=spec.pretrained or "-",
        key=encoder.key,
        dim=int(encoder.dim),
        token_features=TOKEN_FEATURES_BY_KIND.get(spec.kind, spec.kind),
        reading=spec.reading,
    )


def text_spec_from_metadata(meta: CheckpointMetadata) -> TextEncoderSpec:
    """The text encoder a checkpoint's questions must be encoded with (its reading included); the same
    spec answering builds (:func:`checkpoints.text_encoder_spec`), so a stage-2 run reads as stage 1 did."""
    return text_encoder_spec(meta.text_encoder)


def inference_settings(meta: CheckpointMetadata) -> dict[str, Any]:
    """The ``data["inference"]`` record training wrote (empty for checkpoints made elsewhere)."""
    value = meta.data.get("inference") if isinstance(meta.data, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def inference_config_from_metadata(meta: CheckpointMetadata, **overrides: Any) -> InferenceConfig:
    """An :class:`InferenceConfig` as the checkpoint's validation ran (the resampled grid of a model trained
    on resampled clips, the longest span), plus ``overrides``; what is not recorded keeps the defaults."""
    settings = inference_settings(meta)
    values: dict[str, Any] = {}
    resample = settings.get("resample_to")
    if isinstance(resample, int) and not isinstance(resample, bool) and resample > 0:
        values["resample_to"] = resample
    span = settings.get("max_span_s", InferenceConfig.max_span_s)
    if span is None or (isinstance(span, (int, float)) and not isinstance(span, bool) and span > 0):
        values["max_span_s"] = None if span is None else float(span)  # None: validation allowed any length
    values["length_prior"] = LengthPrior.from_dict(settings.get("length_prior"))  # None: checkpoints made before
    values.update(overrides)
    return InferenceConfig(**values)
