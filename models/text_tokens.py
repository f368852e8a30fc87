"""Frozen text encoders that give trained localizers per-token query features.

A localizer is trained on the token features of one particular frozen encoder and is useless with any other,
so the encoder is described by a small, JSON-able :class:`TextEncoderSpec` that checkpoints record, and both
training and answering build it through :func:`load_text_encoder`. Every text passes through the spec's
*reading* (:mod:`models.text_readings`) *inside* the encoder, so narrations at training time and questions at query
time can never be read differently.

Two kinds are registered: ``open_clip`` (the default: the text tower of the same CLIP that indexed the video)
and ``hf`` (a BERT-family model from a local folder through ``transformers``, as in the VSLNet references).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.clip_encoder import ClipEncoder, EncoderSpec, EncoderUnavailable
from models.text_readings import PLAIN_READING, reading_key, text_reading

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextEncoderSpec:
    kind: str = "open_clip"
    model: str = "ViT-B-16"
    """open_clip architecture name, or for ``hf`` the local folder holding a transformers model."""
    pretrained: str = "openai"
    """open_clip weights (tag, file or ``none``); unused for ``hf``."""
    reading: str = PLAIN_READING
    """How texts are read before encoding (:data:`models.text_readings.TEXT_READINGS`); a spec that names none
    was made before readings existed. New training runs choose theirs (``training.run_setup``)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TextEncoderSpec:
        values = {k: data[k] for k in ("kind", "model", "pretrained", "reading") if k in data}
        return cls(**{"reading": PLAIN_READING, **values})

    @classmethod
    def from_clip(cls, spec: EncoderSpec, reading: str = PLAIN_READING) -> TextEncoderSpec:
        return cls(kind="open_clip", model=spec.model, pretrained=spec.pretrained, reading=reading)


class TokenEncoder(Protocol):
    spec: TextEncoderSpec
    key: str
    dim: int

    def read(self, text: str) -> str:
        """``text`` as this encoder reads it (its spec's reading): what it encodes, and what caches key on."""

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(features float32 [N, T, dim], mask bool [N, T]) for ``texts``, each read first."""


_KINDS: dict[str, Callable[[TextEncoderSpec, torch.device], TokenEncoder]] = {}


def register_text_encoder(kind: str):
    def wrap(factory):
        _KINDS[kind] = factory
        return factory

    return wrap


def text_encoder_kinds() -> list[str]:
    return sorted(_KINDS)


@register_text_encoder("open_clip")
class OpenClipTokens:
    """Token features of an open_clip text tower (after its final LayerNorm, projected to the joint space)."""

    def __init__(self, spec: TextEncoderSpec, device: torch.device, encoder: ClipEncoder | None = None) -> None:
        self.spec = spec
        self.read = text_reading(spec.reading)
        self.encoder = encoder or ClipEncoder.load(EncoderSpec(spec.model, spec.pretrained), device=device)
        self.key = reading_key(f"open_clip:{self.encoder.key}", spec.reading)
        self.dim = self.encoder.dim

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.encoder.encode_text_tokens([self.read(t) for t in texts])


@register_text_encoder("hf")
class HuggingFaceTokens:
    """A BERT-family encoder loaded from a local folder only (no hub): ``last_hidden_state`` per token."""

    def __init__(self, spec: TextEncoderSpec, device: torch.device) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.read = text_reading(spec.reading)
        path = Path(spec.model).expanduser()
        if not (path / "config.json").is_file():
            raise EncoderUnavailable(
                f"no transformers model at {path}: the 'hf' text encoder loads a local folder (config.json, "
                f"tokenizer files and weights, e.g. a downloaded bert-base-uncased); put one there or use "
                f"the default open_clip text encoder"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise EncoderUnavailable(f"could not load the transformers model in {path}: {exc}") from exc
        self.model.requires_grad_(False)
        self.device = device
        self.spec = spec
        self.key = reading_key(f"hf:{path.name}", spec.reading)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        batch = self.tokenizer(
            [self.read(t) for t in texts], padding=True, truncation=True, max_length=64, return_tensors="pt"
        ).to(self.device)
        out = self.model(**batch).last_hidden_state
        return out.float().cpu().numpy(), batch["attention_mask"].bool().cpu().numpy()


_cache: dict[tuple[TextEncoderSpec, str], TokenEncoder] = {}
_cache_lock = threading.Lock()


def load_text_encoder(
    spec: TextEncoderSpec, device: str | torch.device | None = None, encoder: ClipEncoder | None = None
) -> TokenEncoder:
    """Build (once per process and device) the token encoder a spec describes.

    Pass ``encoder`` to reuse an already loaded :class:`ClipEncoder` with the same weights instead of loading a
    second copy.
    """
    if spec.kind not in _KINDS:
        raise EncoderUnavailable(f"unknown text encoder kind '{spec.kind}' (known: {', '.join(text_encoder_kinds())})")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with _cache_lock:
        key = (spec, str(device))
        if key not in _cache:
            if (
                encoder is not None
                and spec.kind == "open_clip"
                and (encoder.spec.model, encoder.spec.pretrained) == (spec.model, spec.pretrained)
            ):
                _cache[key] = OpenClipTokens(spec, device, encoder=encoder)
            else:
                _cache[key] = _KINDS[spec.kind](spec, device)
            logger.info("loaded text encoder %s", _cache[key].key)
        return _cache[key]
