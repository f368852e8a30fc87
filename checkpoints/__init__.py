"""Trained localizers on disk: safetensors weights + JSON metadata, saved atomically, loaded safely."""

from checkpoints.errors import (CheckpointError, CheckpointExists, CheckpointShapeMismatch, IncompatibleCheckpoint,
                                InvalidCheckpointMetadata, NotACheckpoint, PickleCheckpointRefused,
                                UnknownCheckpointModel, UnsupportedCheckpointFormat, WrongCheckpointKind)
from checkpoints.metadata import (CLIP_TOKEN_FEATURES, FORMAT_VERSION, KIND, CheckpointMetadata, FeatureEncoderInfo,
                                  TextEncoderInfo)
from checkpoints.store import (CheckpointInfo, check_compatible, list_checkpoints, load_checkpoint, read_metadata,
                               resolve_checkpoint, save_checkpoint)

__all__ = [
    "CLIP_TOKEN_FEATURES", "FORMAT_VERSION", "KIND", "CheckpointError", "CheckpointExists", "CheckpointInfo",
    "CheckpointMetadata", "CheckpointShapeMismatch", "FeatureEncoderInfo", "IncompatibleCheckpoint",
    "InvalidCheckpointMetadata", "NotACheckpoint", "PickleCheckpointRefused", "TextEncoderInfo",
    "UnknownCheckpointModel", "UnsupportedCheckpointFormat", "WrongCheckpointKind", "check_compatible",
    "list_checkpoints", "load_checkpoint", "read_metadata", "resolve_checkpoint", "save_checkpoint",
]
