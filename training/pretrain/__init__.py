"""Egocentric video-language pretraining on narrations (EgoVLP-style), so zero-shot answers understand words.

``pretrain(PretrainConfig(...))`` fine-tunes an open_clip model on (frames in a narration's window, normalised
narration) pairs with EgoNCE and writes encoder weights the indexer loads with ``--pretrained FILE``
(``python -m app pretrain`` wraps it). Modules: ``config`` (settings), ``actions`` (verb/noun keys),
``data`` (moments, frame cache, scene-aware batches), ``loss`` (EgoNCE), ``evaluate`` (held-out retrieval),
``state`` (resume), ``trainer`` (the loop; torchrun through :mod:`training.distributed`).
"""

from training.pretrain.config import PretrainConfig, PretrainError, load_pretrain_config
from training.pretrain.trainer import PretrainResult, pretrain

__all__ = ["PretrainConfig", "PretrainError", "PretrainResult", "load_pretrain_config", "pretrain"]
