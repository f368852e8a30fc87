"""What can be wrong with a checkpoint, each as its own :class:`EgoRecallError` so callers can react to it."""

from models.errors import EgoRecallError


class CheckpointError(EgoRecallError):
    """Base of every checkpoint problem."""


class NotACheckpoint(CheckpointError):
    """The path is missing, or is not a complete EgoRecall checkpoint folder (missing or unreadable files)."""


class InvalidCheckpointMetadata(NotACheckpoint):
    """``meta.json`` is there but does not describe a usable checkpoint (bad fields, bad model config)."""


class PickleCheckpointRefused(NotACheckpoint):
    """A pickled PyTorch file (.pt/.pth/.bin/...): loading one can run arbitrary code, so it is never read."""


class WrongCheckpointKind(CheckpointError):
    """A real checkpoint or weights file, but not an NLQ localizer (e.g. pretrained encoder weights)."""


class UnsupportedCheckpointFormat(CheckpointError):
    """Written by a newer EgoRecall with a format this version cannot read."""


class UnknownCheckpointModel(CheckpointError):
    """The checkpoint names a localizer architecture this EgoRecall does not have."""


class CheckpointShapeMismatch(CheckpointError):
    """The weights do not fit the architecture their metadata describes (missing, extra or reshaped tensors)."""


class IncompatibleCheckpoint(CheckpointError):
    """The checkpoint was trained on other features than the library holds (encoder, size or rate)."""


class CheckpointExists(CheckpointError):
    """A checkpoint of that name is already stored; nothing is overwritten."""
