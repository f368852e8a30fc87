"""Query token features from the frozen text encoder, computed once per distinct text.

Training reads the same texts every epoch, and NaQ brings hundreds of thousands of narrations, so features are
computed once, kept in memory as float16 (trimmed to each text's real tokens), and optionally written to a
disk cache that later runs with the same encoder reuse. Texts are keyed by the form the encoder itself reads
(``TokenEncoder.read``: its reading, :data:`models.text_readings.TEXT_READINGS`), so "Where did I put the
keys?" and "where did i put the keys" are one entry.

Disk layout, one folder per encoder key: ``shard-00000.npy`` (float16 ``[sum of token counts, D]``, loaded
memory-mapped) next to ``shard-00000.json`` (``{"texts": [...], "offsets": [...], "dim": D}``). A shard is
written under a temporary name and renamed, and its JSON is written last, so a killed run leaves either a
whole shard or nothing. No pickles anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from models.text_normalize import normalize_text
from models.text_tokens import TokenEncoder

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def _safe_dirname(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_") or "encoder"


class TextFeatureCache:
    """Token features per text: ``get(text) -> float16 [T, D]`` after :meth:`ensure` has seen the text.

    ``encoder`` may be None when every text is already cached on disk (e.g. ranks other than 0 under
    distributed training, after rank 0 filled the cache); ``read`` is then how that encoder reads a text
    (default: its own ``read``, else the plain reading).
    """

    def __init__(
        self,
        encoder: TokenEncoder | None,
        key: str,
        dim: int,
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = 256,
        read: Callable[[str], str] | None = None,
    ) -> None:
        self.encoder = encoder
        self.read: Callable[[str], str] = read or (encoder.read if encoder is not None else normalize_text)
        self.key = key
        self.dim = int(dim)
        self.batch_size = batch_size
        self.folder = Path(cache_dir) / _safe_dirname(key) if cache_dir else None
        self._features: dict[str, np.ndarray] = {}
        self._shards: list[np.ndarray] = []
        if self.folder is not None:
            self._load_disk(self.folder)

    @classmethod
    def for_encoder(cls, encoder: TokenEncoder, cache_dir=None, batch_size: int = 256) -> TextFeatureCache:
        return cls(encoder, encoder.key, encoder.dim, cache_dir, batch_size)

    # ------------------------------------------------------------------ lookup
    def __contains__(self, text: str) -> bool:
        return self.read(text) in self._features

    def __len__(self) -> int:
        return len(self._features)

    def get(self, text: str) -> np.ndarray:
        try:
            return self._features[self.read(text)]
        except KeyError:
            raise KeyError(f"no token features for {text!r}; call ensure() with it first") from None

    # ------------------------------------------------------------------ filling
    def missing(self, texts: Iterable[str]) -> list[str]:
        seen: set[str] = set()
        out = []
        for t in texts:
            n = self.read(t)
            if n not in self._features and n not in seen:
                seen.add(n)
                out.append(n)
        return out

    def ensure(self, texts: Iterable[str], progress: Progress | None = None) -> int:
        """Encode every text not cached yet (in batches), add it to memory and, with a cache folder, to disk.
        Returns how many were encoded."""
        todo = self.missing(texts)
        if not todo:
            return 0
        if self.encoder is None:
            raise RuntimeError(f"{len(todo)} texts have no cached token features and no text encoder was given")
        logger.info("encoding %d distinct texts with %s", len(todo), self.key)
        done = 0
        shard_texts: list[str] = []
        shard_rows: list[np.ndarray] = []
        for first in range(0, len(todo), self.batch_size):
            batch = todo[first : first + self.batch_size]
            with torch.inference_mode():
                feats, mask = self.encoder.encode(batch)
            feats, mask = np.asarray(feats), np.asarray(mask, dtype=bool)
            if feats.shape[-1] != self.dim:
                raise ValueError(f"text encoder {self.key} gave {feats.shape[-1]}-d tokens, expected {self.dim}")
            for text, f, m in zip(batch, feats, mask):
                rows = f[m].astype(np.float16)
                if len(rows) == 0:  # an encoder that masked everything: keep one token so masks stay valid
                    rows = f[:1].astype(np.float16)
                self._features[text] = rows
                shard_texts.append(text)
                shard_rows.append(rows)
            done += len(batch)
            if progress:
                progress(done, len(todo))
            if self.folder is not None and len(shard_texts) >= 16384:
                self._write_shard(self.folder, shard_texts, shard_rows)
                shard_texts, shard_rows = [], []
        if self.folder is not None and shard_texts:
            self._write_shard(self.folder, shard_texts, shard_rows)
        return len(todo)

    # ------------------------------------------------------------------ disk
    def reload(self) -> None:
        """Pick up shards another process wrote to the cache folder since this cache was made."""
        if self.folder is not None:
            self._load_disk(self.folder)

    def _load_disk(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for meta_path in sorted(folder.glob("shard-*.json")):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                array = np.load(meta_path.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
                texts, offsets = meta["texts"], meta["offsets"]
                if (
                    int(meta["dim"]) != self.dim
                    or array.ndim != 2
                    or array.shape[1] != self.dim
                    or len(offsets) != len(texts) + 1
                    or offsets[-1] != array.shape[0]
                ):
                    raise ValueError("shape does not match its index")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring text feature shard %s: %s", meta_path, exc)
                continue
            self._shards.append(array)
            for i, text in enumerate(texts):
                self._features.setdefault(text, array[offsets[i] : offsets[i + 1]])
        if self._features:
            logger.info("loaded token features of %d texts from %s", len(self._features), folder)

    def _write_shard(self, folder: Path, texts: Sequence[str], rows: Sequence[np.ndarray]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        stem = f"shard-{uuid.uuid4().hex[:12]}"
        npy, meta = folder / f"{stem}.npy", folder / f"{stem}.json"
        tmp_npy, tmp_meta = folder / f".{stem}.npy.tmp", folder / f".{stem}.json.tmp"
        try:
            with open(tmp_npy, "wb") as fh:
                np.save(fh, np.concatenate(rows).astype(np.float16), allow_pickle=False)
            os.replace(tmp_npy, npy)
            tmp_meta.write_text(
                json.dumps({"key": self.key, "dim": self.dim, "texts": list(texts), "offsets": offsets.tolist()}),
                encoding="utf-8",
            )
            os.replace(tmp_meta, meta)
        except BaseException:
            for p in (tmp_npy, tmp_meta):
                p.unlink(missing_ok=True)
            raise


def pad_tokens(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-query token features to ``[B, T, D]`` float32 with a bool mask ``[B, T]``."""
    longest = max(len(a) for a in arrays)
    dim = arrays[0].shape[1]
    out = torch.zeros(len(arrays), longest, dim)
    mask = torch.zeros(len(arrays), longest, dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        mask[i, : len(a)] = True
    return out, mask
