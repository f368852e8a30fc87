"""Trained localizers on disk: safetensors weights + JSON metadata, saved atomically, loaded safely."""

from checkpoints.errors import (CheckpointError, CheckpointExists, CheckpointShapeMismatch, IncompatibleCheckpoint,
                                InvalidCheckpointMetadata, NotACheckpoint, PickleCheckpointRefused,
                                UnknownCheckpointModel, UnsupportedCheckpointFormat, WrongCheckpointKind)
from checkpoints.metadata import (CLIP_TOKEN_FEATURES, FORMAT_VERSION, HF_TOKEN_FEATURES, KIND, TOKEN_FEATURE_KINDS,
                                  CheckpointMetadata, FeatureEncoderInfo, TextEncoderInfo, text_encoder_spec)
from checkpoints.store import (CheckpointInfo, check_compatible, list_checkpoints, load_checkpoint, read_metadata,
                               record_fusion, resolve_checkpoint, save_checkpoint)

__all__ = [
    "CLIP_TOKEN_FEATURES", "FORMAT_VERSION", "HF_TOKEN_FEATURES", "KIND", "TOKEN_FEATURE_KINDS", "CheckpointError", "CheckpointExists", "CheckpointInfo",
    "CheckpointMetadata", "CheckpointShapeMismatch", "FeatureEncoderInfo", "IncompatibleCheckpoint",
    "InvalidCheckpointMetadata", "NotACheckpoint", "PickleCheckpointRefused", "TextEncoderInfo",
    "UnknownCheckpointModel", "UnsupportedCheckpointFormat", "WrongCheckpointKind", "check_compatible",
    "list_checkpoints", "load_checkpoint", "read_metadata", "record_fusion", "resolve_checkpoint", "save_checkpoint",
    "text_encoder_spec",
]
