"""The open_clip image/text encoder that turns frames and questions into one embedding space.

Everything that compares a question with video -- the library's faiss index, zero-shot answers, the text
token features of trained localizers -- goes through :class:`ClipEncoder`, so that the identity of the
weights (:attr:`EncoderSpec.key`) can be recorded next to every feature and checked before features of two
encoders are ever compared.

Weights follow the convention of open_clip, transformers and lighthouse: a pretrained tag is looked up in the
local weights folder and the Hugging Face cache, and downloaded on first use (a progress bar on the terminal,
:func:`current_download` for the app's status line, written to a temporary name and renamed once complete and
verified); ``HF_HUB_OFFLINE=1`` or ``EGORECALL_OFFLINE=1`` keep a machine offline, and then a missing tag is
one immediate, clear error. Random initialisation is
used only when asked for (``pretrained="none"``) and is seeded, so a library indexed with a random encoder
can still be queried by a later process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import text_forward
from models.download import fetch_url, offline, set_download
from models.errors import EncoderUnavailable

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).with_name("model_configs")
DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "openai"
RANDOM_INIT = "none"
RANDOM_INIT_SEED = 0
QUANTIZATIONS = ("", "int8", "openvino")
"""Runtimes of the image tower besides torch float: each gives features a key of their own (``EncoderSpec.key``
with ``+int8`` / ``+openvino``), so a library never mixes them."""


def weights_key(feature_key: str) -> str:
    """``feature_key`` without its image-tower runtime (``+int8``, ``+openvino``): the encoder's weights."""
    for runtime in QUANTIZATIONS:
        if runtime and feature_key.endswith(f"+{runtime}"):
            return feature_key[: -len(runtime) - 1]
    return feature_key


WEIGHT_FILE_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

_config_lock = threading.Lock()
_configs_registered = False


def register_model_configs() -> None:
    """Make EgoRecall's own architectures (tiny test models, pretraining targets) known to open_clip."""
    global _configs_registered
    with _config_lock:
        if not _configs_registered:
            import open_clip

            open_clip.add_model_config(MODEL_CONFIG_DIR)
            _configs_registered = True


def weights_dir() -> Path:
    """Where users drop pretrained weights on machines without internet access."""
    return Path(os.environ.get("EGORECALL_WEIGHTS", "data/weights")).expanduser()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class EncoderSpec:
    """Which open_clip architecture, with which weights: a tag, a weights file, or ``none`` (random)."""

    model: str = DEFAULT_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    quantize: str = ""
    """How the image tower runs on the CPU: ``int8`` -- its linear layers as torch's int8 dynamic quantisation
    (faster frames at a cosine of ~0.9998 to the float tower); ``openvino`` -- compiled by OpenVINO
    (:mod:`models.openvino_tower`: bfloat16 where the CPU has it, the fastest measured here). Either way its
    features are a different encoder's (another :attr:`key`)."""

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZATIONS:
            raise EncoderUnavailable(f"unknown quantisation {self.quantize!r}; use one of: int8, openvino (or none)")

    @classmethod
    def from_env(
        cls, model: str | None = None, pretrained: str | None = None, quantize: str | None = None
    ) -> EncoderSpec:
        q = os.environ.get("EGORECALL_QUANTIZE", "") if quantize is None else quantize
        return cls(
            model=model or os.environ.get("EGORECALL_MODEL", DEFAULT_MODEL),
            pretrained=pretrained or os.environ.get("EGORECALL_PRETRAINED", DEFAULT_PRETRAINED),
            quantize="" if q in ("", "none") else q,
        )

    @property
    def is_random(self) -> bool:
        return self.pretrained.lower() == RANDOM_INIT

    @property
    def is_file(self) -> bool:
        return not self.is_random and (os.sep in self.pretrained or Path(self.pretrained).suffix != "")

    @property
    def key(self) -> str:
        """A stable identity for the weights; features with different keys must never be compared."""
        suffix = f"+{self.quantize}" if self.quantize else ""
        if self.is_random:
            return f"{self.model}/random-seed{RANDOM_INIT_SEED}{suffix}"
        if self.is_file:
            path = Path(self.pretrained)
            if not path.is_file():
                raise EncoderUnavailable(f"encoder weights file not found: {path}")
            return f"{self.model}/file-{_file_digest(path)}{suffix}"
        return f"{self.model}/{self.pretrained}{suffix}"


def _sidecar_model_name(path: Path) -> str | None:
    """EgoRecall's own pretrained encoders carry a JSON sidecar that names their architecture."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("model")
    except (OSError, ValueError):
        return None


def _resolve_tag(model: str, tag: str) -> tuple[str, dict]:
    """Find a pretrained tag's weights locally (weights folder, then HF cache); download only if allowed."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise EncoderUnavailable(
            f"'{tag}' is not a pretrained tag of open_clip model '{model}' (known tags: {', '.join(tags) or 'none'}); "
            "pass a tag, a weights file path, or 'none' for random weights"
        )
    local_dir = weights_dir() / model / tag
    for name in WEIGHT_FILE_NAMES:
        if (local_dir / name).is_file():
            return str(local_dir / name), cfg
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo, filename = os.path.split(hub)
        for name in ([filename] if filename else []) + list(WEIGHT_FILE_NAMES):
            try:
                return hf_hub_download(repo_id=repo, filename=name, local_files_only=True), cfg
            except Exception:  # noqa: BLE001 - any miss means "not cached"; we try the next name
                continue
    if offline():
        raise EncoderUnavailable(
            f"pretrained weights for {model} ('{tag}') are not on this machine, and downloads are off "
            f"(HF_HUB_OFFLINE or EGORECALL_OFFLINE is set). Either put the open_clip weights file at "
            f"{local_dir / WEIGHT_FILE_NAMES[0]} (or {WEIGHT_FILE_NAMES[1]}; the folder is set by EGORECALL_WEIGHTS), "
            f"pass a weights file with --pretrained /path/to/weights (EGORECALL_PRETRAINED), unset the offline "
            f"variable on a machine with internet access, or use the offline demo encoder (the app's Library tab: "
            f"Make demo data; or `python -m app demo`)"
        )
    return download_weights(model, tag, cfg, local_dir), cfg


def _quantize_image_tower(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """int8 dynamic quantisation of the image tower's linear layers (weights int8, activations quantised on
    the fly): the attention and MLP matrices that dominate a ViT's frame cost on a CPU. The text tower stays
    float: questions are few, and their embeddings keep the float model's text space."""
    if device.type != "cpu":
        raise EncoderUnavailable("int8 quantisation runs on the CPU only; on a GPU use the float16 encoder")
    from torch.ao.quantization import quantize_dynamic

    model.visual = quantize_dynamic(model.visual.float(), {torch.nn.Linear}, dtype=torch.qint8)
    return model


def download_weights(model: str, tag: str, cfg: dict, local_dir: Path) -> str:
    """Fetch a pretrained tag's weights: from the Hugging Face hub into its standard cache when the tag has a
    hub entry (the hub client downloads to a temporary name and shows its own progress bar), else from its
    URL into ``local_dir`` (here: temp file, progress bar, SHA-256 check when the URL names one, rename)."""
    what = f"{model} ('{tag}')"
    logger.warning("downloading the pretrained weights for %s (first use only)", what)
    set_download({"what": what, "done": 0, "total": 0, "started": time.time()})
    try:
        hub = cfg.get("hf_hub", "")
        if hub:
            from huggingface_hub import hf_hub_download

            repo, filename = os.path.split(hub)
            path = hf_hub_download(repo_id=repo, filename=filename or WEIGHT_FILE_NAMES[1])
        elif cfg.get("url"):
            path = str(_download_url(cfg["url"], local_dir, what))
        else:
            raise EncoderUnavailable(f"open_clip names no download location for {what}")
    except EncoderUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - network, disk, hub: one message either way
        raise EncoderUnavailable(
            f"downloading the pretrained weights for {what} failed ({exc}); check the internet connection and try "
            f"again, or set HF_HUB_OFFLINE=1 and put the weights file at {local_dir / WEIGHT_FILE_NAMES[0]}"
        ) from exc
    finally:
        set_download(None)
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise EncoderUnavailable(f"the download of {what} produced no weights file ({path})")
    return path


def _download_url(url: str, local_dir: Path, what: str) -> Path:
    name = os.path.basename(url.split("?")[0]) or WEIGHT_FILE_NAMES[1]
    target = local_dir / (WEIGHT_FILE_NAMES[0] if Path(name).suffix == ".safetensors" else WEIGHT_FILE_NAMES[1])
    expected = url.split("/")[-2] if "openaipublic" in url else None  # openai's URLs carry the file's SHA-256
    return fetch_url(url, target, f"the pretrained weights of {what}", sha256=expected)


class ClipEncoder:
    """A frozen open_clip model with batched, device-aware frame and text encoding."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: EncoderSpec,
        key: str,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        tokenizer,
        device: torch.device,
    ) -> None:
        self.model: Any = model.eval().requires_grad_(False)
        """An open_clip model (CLIP, CustomTextCLIP, ...): typed loosely, as open_clip's own classes are."""
        self.spec = spec
        self.key = key
        self.image_size = image_size
        self.device = device
        self.dtype = next(model.parameters()).dtype
        self._mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        self.tokenizer = tokenizer
        self.dim = int(self._probe_dim())

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, spec: EncoderSpec, device: str | torch.device | None = None) -> ClipEncoder:
        import open_clip

        register_model_configs()
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        precision = "fp16" if device.type == "cuda" else "fp32"
        if spec.model not in open_clip.list_models():
            raise EncoderUnavailable(
                f"unknown open_clip model '{spec.model}'; known models include "
                f"{', '.join(sorted(m for m in open_clip.list_models() if m.startswith(('ViT-B', 'egorecall'))))}"
            )
        kwargs: dict = {}
        if spec.is_random:
            weights = None
        elif spec.is_file:
            path = Path(spec.pretrained)
            if not path.is_file():
                raise EncoderUnavailable(f"encoder weights file not found: {path}")
            named = _sidecar_model_name(path)
            if named and named != spec.model:
                raise EncoderUnavailable(
                    f"weights file {path} was trained for model '{named}', not '{spec.model}'; pass --model {named}"
                )
            weights = str(path)
        else:
            weights, tag_cfg = _resolve_tag(spec.model, spec.pretrained)
            kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
            kwargs["force_preprocess_cfg"] = {k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg}
        key = spec.key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            try:
                model = open_clip.create_model(
                    spec.model, pretrained=weights, precision=precision, device=device, **kwargs
                )
            except (RuntimeError, KeyError, ValueError, OSError) as exc:
                raise EncoderUnavailable(f"could not load encoder {spec.model} from {weights}: {exc}") from exc
        pp = model.visual.preprocess_cfg
        size = pp["size"] if isinstance(pp["size"], int) else pp["size"][0]
        if spec.quantize == "int8":
            model = _quantize_image_tower(model, device)
        elif spec.quantize == "openvino":
            from models.openvino_tower import openvino_image_tower

            model = openvino_image_tower(model, device, int(size))
        tokenizer = open_clip.get_tokenizer(spec.model)
        logger.info("loaded encoder %s on %s (%s)", key, device, precision)
        return cls(model, spec, key, int(size), pp["mean"], pp["std"], tokenizer, device)

    @torch.inference_mode()
    def _probe_dim(self) -> int:
        tokens = self.tokenizer(["a"]).to(self.device)
        return self.model.encode_text(tokens).shape[-1]

    # ------------------------------------------------------------------ frames
    def short_side(self) -> int:
        """Decoders resize frames so their short side is this; the encoder then centre-crops a square."""
        return self.image_size

    def _to_input(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NHWC frames (any size) -> normalised NCHW crops at the model's resolution, on device."""
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected frames shaped (N, H, W, 3), got {tuple(x.shape)}")
        if self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        if min(h, w) != self.image_size:
            scale = self.image_size / min(h, w)
            size = (max(self.image_size, round(h * scale)), max(self.image_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
            h, w = x.shape[-2:]
        top, left = (h - self.image_size) // 2, (w - self.image_size) // 2
        x = x[:, :, top : top + self.image_size, left : left + self.image_size]
        x = (x - self._mean) / self._std
        return x.to(self.dtype)

    @torch.inference_mode()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """L2-normalised float16 embeddings, one per frame."""
        if len(frames) == 0:
            return np.zeros((0, self.dim), dtype=np.float16)
        emb = self.model.encode_image(self._to_input(frames))
        return F.normalize(emb.float(), dim=-1).to(torch.float16).cpu().numpy()

    # ------------------------------------------------------------------ text
    @property
    def logit_scale(self) -> float:
        """The learned inverse temperature of image-text softmaxes (OpenAI's CLIP: 100; 100 when the model
        has none)."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().float().exp()) if isinstance(scale, torch.Tensor) else 100.0

    def _tokens(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not a single string")
        return self.tokenizer(list(texts)).to(self.device)

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 sentence embeddings, comparable with :meth:`encode_frames`."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = text_forward.encode_text(self.model, self._tokens(texts))
        return F.normalize(emb.float(), dim=-1).cpu().numpy()

    def _text_tower(self):
        """(final LayerNorm, projection) of the text transformer, for per-token features."""
        owner = self.model.text if hasattr(self.model, "text") else self.model
        ln = getattr(owner, "ln_final", None)
        proj = getattr(owner, "text_projection", None)
        if ln is None:
            raise EncoderUnavailable(f"{self.spec.model} has no transformer text tower with per-token outputs")
        return ln, proj

    @torch.inference_mode()
    def encode_text_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-token features (N, T, dim) float32 and a validity mask (N, T), for trained localizers.

        Tokens are taken after the text tower's final LayerNorm and projected like the pooled token, so they
        live in the embedding space. The mask keeps start-of-text through end-of-text and drops padding.
        """
        if len(texts) == 0:
            return np.zeros((0, 0, self.dim), np.float32), np.zeros((0, 0), bool)
        ln, proj = self._text_tower()
        captured: list[torch.Tensor] = []
        handle = ln.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            tokens = self._tokens(texts)
            text_forward.encode_text(self.model, tokens)
        finally:
            handle.remove()
        x = captured[-1]
        tokens = tokens[:, : x.shape[1]]  # the padding the text tower was spared
        if proj is not None:
            x = proj(x) if isinstance(proj, torch.nn.Module) else x @ proj
        mask = tokens != 0
        lengths = mask.sum(1)
        t_max = int(lengths.max())
        return x[:, :t_max].float().cpu().numpy(), mask[:, :t_max].cpu().numpy()


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextmanager
def quiet_random_init_warning(spec: EncoderSpec):
    """open_clip warns on the root logger about random weights; with ``--pretrained none`` that was the
    user's explicit choice, and the CLI promises one stderr line per problem, so the warning is dropped."""
    if not spec.is_random:
        yield
        return
    root, drop = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
