"""Save, list and load trained localizers: one folder per checkpoint, ``model.safetensors`` + ``meta.json``.

Safety rules: weights are safetensors only (a pickle can run code when loaded, so ``.pt``/``.pth``/``.bin``
files are refused, never opened); a checkpoint appears under its name only once it is complete (written in a
hidden temporary folder, then renamed); nothing existing is ever overwritten; a broken entry is skipped with a
warning when listing and explained precisely when loading.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from checkpoints.errors import (
    CheckpointError,
    CheckpointExists,
    CheckpointShapeMismatch,
    IncompatibleCheckpoint,
    InvalidCheckpointMetadata,
    NotACheckpoint,
    PickleCheckpointRefused,
    UnknownCheckpointModel,
    WrongCheckpointKind,
)
from checkpoints.files import fsync_path, sha256_file
from checkpoints.metadata import (
    FORMAT_VERSION,
    IDENTITY_FIELDS,
    KIND,
    CheckpointMetadata,
    FeatureEncoderInfo,
    egorecall_version,
    utc_now,
)
from models.clip_encoder import weights_key
from models.localizer import Localizer
from models.registry import InvalidLocalizerConfig, UnknownLocalizer, build_localizer, config_to_dict, localizer_class
from models.text_readings import PLAIN_READING

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class CheckpointInfo:
    """One row of :func:`list_checkpoints`."""

    name: str
    path: Path
    model: str
    stage: str
    metrics: dict[str, float]
    created: str
    feature_encoder: FeatureEncoderInfo
    fusion: dict = dataclasses.field(default_factory=dict)
    """Its fusion with zero-shot as fitted on validation data (``weight``, ``fitted_on``, ``scores``), if any."""
    text_reading: str = PLAIN_READING
    """How it reads question texts (``text_encoder.reading``): one a newer EgoRecall knows cannot be asked here."""

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


# ---------------------------------------------------------------------------------------------- saving


def _check_dims(model: Localizer, meta: CheckpointMetadata) -> None:
    cfg = model.config
    if meta.feature_encoder.dim != cfg.video_dim:
        raise ValueError(f"feature_encoder.dim {meta.feature_encoder.dim} != model video_dim {cfg.video_dim}")
    if meta.text_encoder.dim != cfg.query_dim:
        raise ValueError(f"text_encoder.dim {meta.text_encoder.dim} != model query_dim {cfg.query_dim}")
    aux_dim = getattr(cfg, "aux_video_dim", 0)
    aux = meta.aux_feature_encoder
    if bool(aux_dim) != (aux is not None) or (aux is not None and aux_dim and aux.dim != aux_dim):
        raise ValueError(f"aux_feature_encoder must describe the model's {aux_dim}-d second stream (or be None if 0)")


def default_name(model_name: str, stage: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return "-".join(part for part in (model_name, re.sub(r"[^A-Za-z0-9._-]", "_", stage), stamp) if part)


def save_checkpoint(
    directory: str | Path, model: Localizer, metadata: CheckpointMetadata, name: str | None = None
) -> Path:
    """Write ``model`` as a new checkpoint folder under ``directory`` and return its path.

    The model's registry name and config, the creation time, EgoRecall's version and the weights' digest
    are filled into ``metadata``. Without ``name``, one is made from the model, stage and time (with a
    suffix if taken); an explicit ``name`` that exists raises :class:`CheckpointExists`.
    """
    directory = Path(directory)
    if not model.name:
        raise ValueError("only registered localizers can be saved (register_localizer)")
    localizer_class(model.name)
    _check_dims(model, metadata)
    if name is not None and not NAME_PATTERN.match(name):
        raise CheckpointError(f"'{name}' is not a valid checkpoint name (letters, digits, '.', '_', '-')")
    directory.mkdir(parents=True, exist_ok=True)

    base = name or default_name(model.name, metadata.stage)
    tmp = directory / f"{TEMP_PREFIX}{base}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        weights = tmp / WEIGHTS_FILE
        save_file(
            tensors, str(weights), metadata={"kind": KIND, "format_version": str(FORMAT_VERSION), "model": model.name}
        )
        meta = dataclasses.replace(
            metadata,
            model=model.name,
            model_config=config_to_dict(model.config),
            created=utc_now(),
            egorecall_version=egorecall_version(),
            weights_sha256=sha256_file(weights),
            kind=KIND,
            format_version=FORMAT_VERSION,
        )
        meta.validate()
        (tmp / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n")
        for f in (weights, tmp / META_FILE):
            fsync_path(f)
        final = _publish(tmp, directory, base, auto_suffix=name is None)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(directory)
    logger.info("saved checkpoint %s", final)
    return final


def _publish(tmp: Path, directory: Path, base: str, auto_suffix: bool) -> Path:
    """Rename the finished temporary folder to its name: the checkpoint appears complete or not at all."""
    for attempt in range(1, 1000):
        final = directory / (base if attempt == 1 else f"{base}-{attempt}")
        if final.exists():
            if not auto_suffix:
                raise CheckpointExists(f"a checkpoint named '{base}' already exists in {directory}")
            continue
        try:
            os.rename(tmp, final)
            return final
        except OSError:
            if not final.exists():
                raise
            if not auto_suffix:
                raise CheckpointExists(f"a checkpoint named '{base}' already exists in {directory}") from None
    raise CheckpointError(f"could not find a free checkpoint name for '{base}' in {directory}")


# ---------------------------------------------------------------------------------------------- reading
def read_metadata(folder: Path) -> CheckpointMetadata:
    """The validated metadata of a checkpoint folder (raises a :class:`CheckpointError` subclass)."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
        if pickles:
            raise PickleCheckpointRefused(
                f"{folder} holds pickled PyTorch files ({', '.join(pickles)}), which EgoRecall never loads because "
                "unpickling can run arbitrary code; EgoRecall checkpoints are folders with model.safetensors and "
                "meta.json"
            )
        raise NotACheckpoint(f"{folder} is not an EgoRecall checkpoint: it has no {META_FILE}")
    try:
        values = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCheckpointMetadata(f"{meta_path} cannot be read as JSON ({exc})") from None
    try:
        return CheckpointMetadata.from_dict(values)
    except WrongCheckpointKind as exc:
        raise WrongCheckpointKind(f"{folder} is not an NLQ localizer checkpoint: {exc}") from None
    except InvalidCheckpointMetadata as exc:
        raise InvalidCheckpointMetadata(f"{meta_path} is invalid: {exc}") from None


def update_metadata(
    path_or_name: str | Path, changes: dict[str, Any], directory: str | Path | None = None
) -> CheckpointMetadata:
    """Replace fields of a checkpoint's metadata after training (e.g. ``fusion``, ``calibration``): validated,
    then written atomically (a temp file renamed over ``meta.json``, so a crash leaves the old metadata, never
    half of the new). Weights are never touched; identity fields cannot be changed this way."""
    frozen = set(IDENTITY_FIELDS)
    if set(changes) & frozen:
        raise InvalidCheckpointMetadata(f"{', '.join(sorted(set(changes) & frozen))} cannot be changed after saving")
    folder = resolve_checkpoint(path_or_name, directory)
    meta = dataclasses.replace(read_metadata(folder), **changes)
    meta.validate()
    target = folder / META_FILE
    tmp = target.with_name(f".{META_FILE}.tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2) + "\n")
    fsync_path(tmp)
    tmp.replace(target)
    fsync_path(folder)
    return meta


def list_checkpoints(directory: str | Path) -> list[CheckpointInfo]:
    """Every complete checkpoint in ``directory``, newest first; broken entries are logged and skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for folder in sorted(directory.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            meta = read_metadata(folder)
            if not (folder / WEIGHTS_FILE).is_file():
                raise NotACheckpoint(f"{folder} has no {WEIGHTS_FILE}")
        except CheckpointError as exc:
            logger.warning("skipping %s: %s", folder.name, exc)
            continue
        found.append(
            CheckpointInfo(
                folder.name,
                folder,
                meta.model,
                meta.stage,
                dict(meta.metrics),
                meta.created,
                meta.feature_encoder,
                dict(meta.fusion),
                meta.text_encoder.reading,
            )
        )
    found.sort(key=lambda c: (c.created, c.name), reverse=True)
    return found


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise PickleCheckpointRefused(
            f"{path.name} is a pickled PyTorch file; EgoRecall never loads pickles because unpickling can run "
            "arbitrary code. Use an EgoRecall checkpoint folder (model.safetensors + meta.json)"
        )


def _safetensors_file_kind(path: Path) -> None:
    """A lone .safetensors file is never a checkpoint; say what it looks like."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise NotACheckpoint(f"{path} is not a readable safetensors file ({exc})") from None
    sidecar = path.with_suffix(".json")
    if header.get("kind") == KIND:
        raise NotACheckpoint(f"{path} is the weights of a localizer checkpoint but its {META_FILE} is missing")
    if sidecar.is_file():
        raise WrongCheckpointKind(
            f"{path} looks like encoder weights (it has a {sidecar.name} sidecar), not an NLQ localizer checkpoint; "
            "use it as an encoder (--pretrained) instead"
        )
    raise WrongCheckpointKind(
        f"{path} is a safetensors file without EgoRecall localizer metadata, not an NLQ localizer checkpoint"
    )


def resolve_checkpoint(path_or_name: str | Path, directory: str | Path | None = None) -> Path:
    """The checkpoint folder meant by a path (folder, or a file in it) or by a name in ``directory``."""
    path = Path(path_or_name).expanduser()
    _refuse_pickle(path)
    if not path.exists() and directory is not None and NAME_PATTERN.match(str(path_or_name)):
        path = Path(directory) / str(path_or_name)
        if not path.exists():
            names = [c.name for c in list_checkpoints(directory)]
            raise NotACheckpoint(
                f"there is no checkpoint named '{path_or_name}' in {directory} "
                f"(available: {', '.join(names) or 'none'})"
            )
    if not path.exists():
        raise NotACheckpoint(f"checkpoint not found: {path}")
    if path.is_file():
        if path.name in (WEIGHTS_FILE, META_FILE):
            return path.parent
        if path.suffix == ".safetensors":
            _safetensors_file_kind(path)
        raise NotACheckpoint(
            f"{path} is not an EgoRecall checkpoint (expected a folder with {WEIGHTS_FILE} and {META_FILE})"
        )
    return path


def load_checkpoint(
    path_or_name: str | Path, directory: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[Localizer, CheckpointMetadata]:
    """Rebuild the model a checkpoint describes and load its weights (strictly), in eval mode on ``device``
    (default: CUDA when available, else CPU)."""
    folder = resolve_checkpoint(path_or_name, directory)
    meta = read_metadata(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise NotACheckpoint(f"{folder} is incomplete: {WEIGHTS_FILE} is missing")
    if meta.weights_sha256 and sha256_file(weights) != meta.weights_sha256:
        raise NotACheckpoint(f"{weights} is corrupt: its contents do not match the digest in {META_FILE}")
    try:
        model = build_localizer(meta.model, meta.model_config)
    except UnknownLocalizer as exc:
        raise UnknownCheckpointModel(f"checkpoint {folder.name} needs a model this EgoRecall lacks: {exc}") from None
    except InvalidLocalizerConfig as exc:
        raise InvalidCheckpointMetadata(f"checkpoint {folder.name} has an unusable model config: {exc}") from None
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise NotACheckpoint(f"{weights} cannot be read ({exc})") from None
    _check_state(folder.name, model.state_dict(), tensors)
    model.load_state_dict(tensors, strict=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(device).eval(), meta


def _check_state(name: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    if not (missing or extra or reshaped):
        return

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    problems = []
    if missing:
        problems.append(f"missing {some(missing)}")
    if extra:
        problems.append(f"unexpected {some(extra)}")
    if reshaped:
        problems.append(
            "wrong shape for "
            + some([f"{k} ({tuple(found[k].shape)} instead of {tuple(expected[k].shape)})" for k in reshaped])
        )
    raise CheckpointShapeMismatch(f"checkpoint {name}'s weights do not fit its model config: {'; '.join(problems)}")


def reads_features(trained_on: FeatureEncoderInfo, feature_key: str, dim: int, rate_hz: float) -> bool:
    """Whether a model trained on ``trained_on`` features can read these: same encoder weights, size and grid
    rate. The image tower's runtime does not matter (``models.clip_encoder.weights_key``): OpenVINO's and int8's
    features lie within cosine 0.9998 of torch float's, and a checkpoint's answers on a library indexed that way
    hold (bench/README.md, ``bench_index_variants.py``) -- the default checkpoint, trained on GPUs in float,
    must serve a library indexed on a laptop's fastest runtime."""
    fe = trained_on
    return (
        weights_key(fe.key) == weights_key(feature_key)
        and fe.dim == dim
        and abs(fe.rate_hz - rate_hz) <= 1e-6 * max(1.0, rate_hz)
    )


def compatible_checkpoints(directory: str | Path, feature_key: str, dim: int, rate_hz: float) -> list[CheckpointInfo]:
    """The checkpoints of ``directory`` that can read these features, newest first."""
    return [c for c in list_checkpoints(directory) if reads_features(c.feature_encoder, feature_key, dim, rate_hz)]


def check_compatible(meta: CheckpointMetadata, feature_key: str, dim: int, rate_hz: float) -> None:
    """Raise :class:`IncompatibleCheckpoint` unless the library's features are those the model was trained on."""
    fe = meta.feature_encoder
    if reads_features(fe, feature_key, dim, rate_hz):
        return
    here = FeatureEncoderInfo(feature_key, dim, rate_hz)
    raise IncompatibleCheckpoint(
        f"this {meta.model} checkpoint expects {fe.describe()}, but the library holds {here.describe()}; "
        "choose a checkpoint trained on the library's features, or re-index the videos with the checkpoint's encoder"
    )
