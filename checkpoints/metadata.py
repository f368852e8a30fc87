"""The ``meta.json`` of a trained localizer checkpoint: what it is, what it reads, how it was made.

A checkpoint is only useful with the features it was trained on, so the metadata pins the video feature
encoder (identity key, size, grid rate) and the text encoder whose token features its questions need; the
app checks them before answering with it (:func:`checkpoints.store.check_compatible`).

Schema (format version 1)::

    {
      "kind": "nlq-localizer", "format_version": 1,
      "model": "vslnet", "model_config": {...registry config dict...},
      "feature_encoder": {"key": "ViT-B-16/openai", "dim": 512, "rate_hz": 1.875},
      "aux_feature_encoder": null | {"key", "dim", "rate_hz"},
      "text_encoder": {"model": "ViT-B-16", "pretrained": "openai", "key": "ViT-B-16/openai", "dim": 512,
                       "token_features": "open_clip-text-tokens", "reading": "question"},
      "stage": "nlq-finetune", "data": {...free-form summary...}, "metrics": {"R@1@0.3": 0.12, ...},
      "fusion": {"weight": 0.7, "form": "span", "chosen_on": "nlq_val.json", ...}, "calibration": {...},
      "created": "2026-11-22T07:00:00+00:00", "egorecall_version": "0.1.0", "notes": "",
      "weights_sha256": "..."
    }
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from checkpoints.errors import (
    IncompatibleCheckpoint,
    InvalidCheckpointMetadata,
    UnsupportedCheckpointFormat,
    WrongCheckpointKind,
)
from models.text_readings import PLAIN_READING, TEXT_READINGS
from models.text_tokens import TextEncoderSpec

logger = logging.getLogger(__name__)

KIND = "nlq-localizer"
FORMAT_VERSION = 1
CLIP_TOKEN_FEATURES = "open_clip-text-tokens"
"""Token features from ``ClipEncoder.encode_text_tokens`` (final LayerNorm, projected, start..end tokens)."""
HF_TOKEN_FEATURES = "hf-last-hidden-state"
"""Token features of a local transformers model (``last_hidden_state``; ``model`` is its folder)."""

TOKEN_FEATURE_KINDS = {CLIP_TOKEN_FEATURES: "open_clip", HF_TOKEN_FEATURES: "hf"}
"""``text_encoder.token_features`` -> the :mod:`models.text_tokens` kind that produces them."""


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidCheckpointMetadata(message)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class FeatureEncoderInfo:
    """Which video features the model reads: the encoder's identity key, feature size, and grid rate."""

    key: str
    dim: int
    rate_hz: float

    def validate(self, what: str = "feature_encoder") -> None:
        _need(isinstance(self.key, str) and bool(self.key), f"{what}.key must be a non-empty string")
        _need(_positive_int(self.dim), f"{what}.dim must be a positive integer, got {self.dim!r}")
        _need(
            isinstance(self.rate_hz, (int, float)) and math.isfinite(self.rate_hz) and self.rate_hz > 0,
            f"{what}.rate_hz must be a positive number, got {self.rate_hz!r}",
        )

    def describe(self) -> str:
        return f"{self.dim}-d features from '{self.key}' at {self.rate_hz:g} Hz"


@dataclass(frozen=True)
class TextEncoderInfo:
    """Which text encoder produces the query token features (``model``/``pretrained`` rebuild it)."""

    model: str
    pretrained: str
    key: str
    dim: int
    token_features: str = CLIP_TOKEN_FEATURES
    reading: str = PLAIN_READING
    """How its texts were read before encoding (``models.text_readings.TEXT_READINGS``); checkpoints made before
    readings existed name none and were trained on the plain one."""

    def validate(self) -> None:
        for name in ("model", "pretrained", "key", "token_features", "reading"):
            value = getattr(self, name)
            _need(isinstance(value, str) and bool(value), f"text_encoder.{name} must be a non-empty string")
        _need(_positive_int(self.dim), f"text_encoder.dim must be a positive integer, got {self.dim!r}")


def text_encoder_spec(info: TextEncoderInfo) -> TextEncoderSpec:
    """How to rebuild the token encoder a checkpoint's questions need (``models.text_tokens.load_text_encoder``).

    Raises :class:`IncompatibleCheckpoint` for token features this EgoRecall cannot produce.
    """
    kind = TOKEN_FEATURE_KINDS.get(info.token_features)
    if kind is None:
        raise IncompatibleCheckpoint(
            f"this checkpoint reads '{info.token_features}' query features, which this EgoRecall cannot make "
            f"(known: {', '.join(sorted(TOKEN_FEATURE_KINDS))})"
        )
    if info.reading not in TEXT_READINGS:
        raise IncompatibleCheckpoint(
            f"this checkpoint reads its questions the '{info.reading}' way, which this EgoRecall cannot "
            f"(known: {', '.join(sorted(TEXT_READINGS))}); a newer EgoRecall made it"
        )
    return TextEncoderSpec(kind=kind, model=info.model, pretrained=info.pretrained, reading=info.reading)


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def egorecall_version() -> str:
    """The installed package's version, or the source tree's ``pyproject.toml`` when run from a checkout."""
    try:
        return importlib.metadata.version("egorecall")
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (ImportError, OSError, KeyError, ValueError):
        return "unknown"


IDENTITY_FIELDS = frozenset(
    {
        "kind",
        "format_version",
        "model",
        "model_config",
        "feature_encoder",
        "aux_feature_encoder",
        "text_encoder",
        "weights_sha256",
        "created",
        "egorecall_version",
    }
)
"""What a checkpoint *is*: fixed when it is saved (:func:`checkpoints.store.update_metadata` refuses to change
them); the other fields (stage, data, metrics, fusion, calibration, notes) describe it and may be updated."""


@dataclass(frozen=True)
class CheckpointMetadata:
    """Everything ``meta.json`` records. ``model``, ``model_config``, ``created``, ``egorecall_version`` and
    ``weights_sha256`` are filled in by :func:`checkpoints.store.save_checkpoint`."""

    feature_encoder: FeatureEncoderInfo
    text_encoder: TextEncoderInfo
    aux_feature_encoder: FeatureEncoderInfo | None = None
    """The second video stream (ReLER's CLIP image features), if the model reads one."""
    stage: str = ""
    """Which training stage produced it, e.g. ``naq-pretrain`` or ``nlq-finetune``."""
    data: dict[str, Any] = field(default_factory=dict)
    """Free-form summary of the training data (annotation files, splits, numbers of clips and queries)."""
    metrics: dict[str, float] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)
    """How the app's fused mode mixes this model with zero-shot CLIP: ``{"weight": w, "form": name, "chosen_on":
    file, "metrics": {...}}``, chosen on validation data (:func:`checkpoints.store.update_metadata`); empty = not
    chosen; no ``form`` = the mix weights were chosen for before forms were recorded (the app's ``linear``)."""
    calibration: dict[str, Any] = field(default_factory=dict)
    """Per answering mode (``checkpoint``, ``fused``): the score -> probability-of-a-right-answer map and the
    "no good match" threshold (``app.answering.calibration.Calibration.to_dict``); empty = not calibrated."""
    notes: str = ""
    model: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    egorecall_version: str = ""
    weights_sha256: str = ""
    kind: str = KIND
    format_version: int = FORMAT_VERSION

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`InvalidCheckpointMetadata` (or a kind/format error) unless this is a usable record."""
        if self.kind != KIND:
            raise WrongCheckpointKind(f"this is a '{self.kind}' checkpoint, not an NLQ localizer ('{KIND}')")
        _need(
            _positive_int(self.format_version),
            f"format_version must be a positive integer, got {self.format_version!r}",
        )
        if self.format_version > FORMAT_VERSION:
            raise UnsupportedCheckpointFormat(
                f"this checkpoint has format version {self.format_version}, written by a newer EgoRecall "
                f"(this one reads up to version {FORMAT_VERSION}); upgrade EgoRecall to load it"
            )
        self.feature_encoder.validate()
        if self.aux_feature_encoder is not None:
            self.aux_feature_encoder.validate("aux_feature_encoder")
        self.text_encoder.validate()
        _need(isinstance(self.model, str) and bool(self.model), "model must name a localizer architecture")
        _need(isinstance(self.model_config, dict), "model_config must be an object")
        _need(isinstance(self.data, dict), "data must be an object")
        _need(
            isinstance(self.fusion, dict)
            and (
                "weight" not in self.fusion
                or (isinstance(self.fusion["weight"], (int, float)) and 0.0 <= self.fusion["weight"] <= 1.0)
            )
            and isinstance(self.fusion.get("form", ""), str),
            "fusion must be an object whose weight is a number in [0, 1] and whose form is a name",
        )
        _need(
            isinstance(self.calibration, dict) and all(isinstance(v, dict) for v in self.calibration.values()),
            "calibration must map answering modes to objects",
        )
        _need(
            isinstance(self.metrics, dict)
            and all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in self.metrics.items()
            ),
            "metrics must map names to numbers",
        )
        for name in ("stage", "notes", "egorecall_version", "weights_sha256"):
            _need(isinstance(getattr(self, name), str), f"{name} must be a string")
        try:
            datetime.fromisoformat(self.created)
        except (TypeError, ValueError):
            raise InvalidCheckpointMetadata(f"created must be an ISO date, got {self.created!r}") from None

    # -------------------------------------------------------------- plain dicts
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        order = [
            "kind",
            "format_version",
            "model",
            "model_config",
            "feature_encoder",
            "aux_feature_encoder",
            "text_encoder",
            "stage",
            "data",
            "metrics",
            "fusion",
            "calibration",
            "created",
            "egorecall_version",
            "notes",
            "weights_sha256",
        ]
        return {k: out[k] for k in order}

    @classmethod
    def from_dict(cls, values: Any) -> CheckpointMetadata:
        """Parse and validate; unknown keys are ignored so later format-1 writers may add optional fields."""
        if not isinstance(values, dict):
            raise InvalidCheckpointMetadata("meta.json must hold a JSON object")
        kind = values.get("kind")
        if kind != KIND:
            raise WrongCheckpointKind(
                f"this is {'a ' + repr(kind) if kind else 'not a'} checkpoint of kind '{KIND}' "
                f"(meta.json says kind={kind!r})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            logger.debug("ignoring unknown meta.json fields: %s", ", ".join(unknown))
        try:
            fe = FeatureEncoderInfo(**values["feature_encoder"])
            aux = values.get("aux_feature_encoder")
            aux = None if aux is None else FeatureEncoderInfo(**aux)
            te = TextEncoderInfo(**values["text_encoder"])
            kwargs = {
                k: values[k] for k in known - {"feature_encoder", "aux_feature_encoder", "text_encoder"} if k in values
            }
            meta = cls(feature_encoder=fe, aux_feature_encoder=aux, text_encoder=te, **kwargs)
        except KeyError as exc:
            raise InvalidCheckpointMetadata(f"meta.json lacks the field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise InvalidCheckpointMetadata(f"meta.json has malformed fields: {exc}") from None
        meta.validate()
        return meta
