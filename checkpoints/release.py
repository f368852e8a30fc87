"""A checkpoint as a release: published once by a team that trained it, installed by every user on first use.

A release is a folder anyone can serve (a web server, object storage, a Hugging Face repository)::

    NAME/
      model.safetensors   the weights, as saved (never a pickle)
      meta.json           the checkpoint's metadata, as saved (model config, feature encoder, fusion, ...)
      card.json           the model card: encoder, training data and its licence, metrics and the file they
                          were measured on, date, the weights' SHA-256
      manifest.json       every file above with its size and SHA-256

:func:`publish` writes one from a stored checkpoint; :func:`install` fetches one (``https://.../NAME/``, a
``manifest.json`` URL, ``hf:ORG/REPO[/FOLDER]``, or a local folder) the way encoder weights are fetched
(:mod:`models.download`: temporary files, progress, checksums, an offline switch), checks that the card matches
the weights and the metadata and that the weights load, and only then renames the folder into the checkpoints
folder. Anything short of that installs nothing and says why.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from checkpoints.errors import CheckpointError, CheckpointExists
from checkpoints.files import sha256_file
from checkpoints.metadata import utc_now
from checkpoints.store import META_FILE, NAME_PATTERN, WEIGHTS_FILE, load_checkpoint, read_metadata, resolve_checkpoint

CARD_FILE = "card.json"
MANIFEST_FILE = "manifest.json"
RELEASE_FILES = (WEIGHTS_FILE, META_FILE, CARD_FILE)


class ReleaseError(CheckpointError):
    """A release that cannot be published or installed as it is (nothing was installed)."""


@dataclass
class ModelCard:
    name: str
    model: str
    encoder: dict
    """The features it reads: ``{"key", "dim", "rate_hz"}`` (a library of another encoder refuses it)."""
    training_data: list[str]
    licence: str
    """The licence of the training data (Ego4D's, for a checkpoint trained on it)."""
    metrics: dict = field(default_factory=dict)
    evaluation_file: str = ""
    """The annotation file the metrics were measured on."""
    created: str = ""
    weights_sha256: str = ""
    notes: str = ""

    @classmethod
    def from_file(cls, path: Path) -> ModelCard:
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ReleaseError(f"the model card {path} cannot be read ({exc})") from None


def publish(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    licence: str,
    training_data: list[str],
    evaluation_file: str = "",
    notes: str = "",
    directory: str | Path | None = None,
) -> Path:
    """Write the release of a stored checkpoint into ``out_dir/NAME`` (see the module docstring)."""
    folder = resolve_checkpoint(checkpoint, directory)
    meta = read_metadata(folder)
    if not licence.strip() or not training_data:
        raise ReleaseError("a release names its training data and their licence (--data, --licence)")
    target = Path(out_dir) / folder.name
    if target.exists():
        raise ReleaseError(f"{target} exists; publish into an empty folder")
    target.mkdir(parents=True)
    for name in (WEIGHTS_FILE, META_FILE):
        shutil.copyfile(folder / name, target / name)
    card = ModelCard(
        name=folder.name,
        model=meta.model,
        encoder=asdict(meta.feature_encoder),
        training_data=list(training_data),
        licence=licence,
        metrics=dict(meta.metrics),
        evaluation_file=evaluation_file,
        created=utc_now(),
        weights_sha256=sha256_file(target / WEIGHTS_FILE),
        notes=notes,
    )
    (target / CARD_FILE).write_text(json.dumps(asdict(card), indent=1) + "\n", encoding="utf-8")
    files = {n: {"sha256": sha256_file(target / n), "size": (target / n).stat().st_size} for n in RELEASE_FILES}
    manifest = {"name": folder.name, "files": files}
    (target / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return target


def _fetcher(source: str):
    """A function ``fetch(name, target, sha256, size)`` that brings one release file to ``target``."""
    from models.download import fetch_url

    if source.startswith("hf:"):  # hf:ORG/REPO[/FOLDER]
        parts = source[3:].strip("/").split("/")
        repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:])

        def from_hub(name: str, target: Path, sha256: str | None, size: int | None) -> None:
            from huggingface_hub import hf_hub_download

            from models.download import DownloadFailed, offline

            if offline():
                raise DownloadFailed(f"{source} is not on this machine and downloads are off")
            try:
                path = hf_hub_download(repo_id=repo_id, filename=f"{sub}/{name}" if sub else name)
            except Exception as exc:  # noqa: BLE001 - hub, network: one message
                raise DownloadFailed(f"cannot download {name} of {source} ({exc})") from None
            if sha256 and sha256_file(Path(path)) != sha256:
                raise DownloadFailed(f"{name} of {source} does not match its published checksum")
            shutil.copyfile(path, target)

        return from_hub
    local = Path(source).expanduser()
    if local.is_dir():

        def from_folder(name: str, target: Path, sha256: str | None, size: int | None) -> None:
            if not (local / name).is_file():
                raise ReleaseError(f"{local} has no {name}")
            shutil.copyfile(local / name, target)

        return from_folder
    # https://host/releases/NAME/, .../NAME/manifest.json or .../NAME: the files lie beside the manifest
    if source.endswith(MANIFEST_FILE):
        base = source[: -len(MANIFEST_FILE)]
    else:
        base = source if source.endswith("/") else source + "/"

    def from_url(name: str, target: Path, sha256: str | None, size: int | None) -> None:
        fetch_url(urljoin(base, name), target, f"{name} of the checkpoint at {source}", sha256=sha256, size=size)

    return from_url


def install(
    source: str, directory: str | Path, *, name: str | None = None, features: tuple[str, int, float] | None = None
) -> Path:
    """Fetch the release at ``source`` into ``directory`` (see the module docstring); returns the installed
    checkpoint's folder (the same folder when that release is already installed). ``features`` (encoder key,
    dimension, grid rate): refuse, before installing, a checkpoint that cannot read them."""
    directory = Path(directory)
    fetch = _fetcher(str(source))
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=_ensure(directory)) as tmp_dir:
        tmp = Path(tmp_dir)
        fetch(MANIFEST_FILE, tmp / MANIFEST_FILE, None, None)
        try:
            manifest = json.loads((tmp / MANIFEST_FILE).read_text(encoding="utf-8"))
            files = manifest["files"]
            target_name = name or manifest["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(
                f"{source} has no readable {MANIFEST_FILE} ({exc}): it is not a checkpoint release"
            ) from None
        if not NAME_PATTERN.match(str(target_name)) or set(RELEASE_FILES) - set(files):
            raise ReleaseError(f"the manifest of {source} names no valid checkpoint (name {target_name!r})")
        release = tmp / str(target_name)
        release.mkdir()
        for file_name in RELEASE_FILES:
            entry = files[file_name]
            fetch(file_name, release / file_name, entry.get("sha256"), entry.get("size"))
            if entry.get("sha256") and sha256_file(release / file_name) != entry["sha256"]:
                raise ReleaseError(f"{file_name} of {source} does not match its manifest; nothing was installed")
        _check_card(source, release)
        if features is not None:
            from checkpoints.store import check_compatible

            check_compatible(read_metadata(release), *features)
        final = directory / str(target_name)
        if final.exists():
            if (final / WEIGHTS_FILE).is_file() and sha256_file(final / WEIGHTS_FILE) == sha256_file(
                release / WEIGHTS_FILE
            ):
                return final
            raise CheckpointExists(f"a different checkpoint named {target_name} is already installed in {directory}")
        release.rename(final)
    return final


def _check_card(source: str, release: Path) -> None:
    card = ModelCard.from_file(release / CARD_FILE)
    meta = read_metadata(release)
    weights = sha256_file(release / WEIGHTS_FILE)
    if card.weights_sha256 != weights:
        raise ReleaseError(f"the model card of {source} describes other weights than it ships; nothing was installed")
    if card.encoder != asdict(meta.feature_encoder) or card.model != meta.model:
        raise ReleaseError(
            f"the model card of {source} does not match its metadata (card: {card.model} on {card.encoder}; "
            f"metadata: {meta.model} on {asdict(meta.feature_encoder)}); nothing was installed"
        )
    if not card.licence or not card.training_data:
        raise ReleaseError(f"the model card of {source} names no training data or licence; nothing was installed")
    load_checkpoint(release, device="cpu")  # the weights load into the model they claim to be


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
