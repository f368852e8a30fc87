"""The (frame, narration) pairs a pretraining run learns from, made once at its start.

Every narrated video found is probed, its narrations become moments (:func:`training.pretrain.data.build_moments`),
their frames are decoded into the frame cache -- each process its share, then every process reads the whole
cache -- and the moments are split into training and held-out pairs *by video*, so held-out retrieval is
measured on videos the encoder never saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from indexing.errors import VideoError
from training.distributed import DistInfo, barrier, gather_objects, share
from training.narrations import load_narrations
from training.pretrain.config import PretrainConfig, PretrainError
from training.pretrain.data import (
    FrameCache,
    KeyVocabulary,
    MomentReport,
    MomentSet,
    attach_frames,
    build_moments,
    cache_videos,
    find_videos,
    split_videos,
)

logger = logging.getLogger(__name__)


@dataclass
class PretrainPairs:
    train: MomentSet
    val: MomentSet
    """Held-out pairs (at most ``max_val_moments``), from videos none of the training pairs comes from."""
    train_videos: int
    val_videos: int
    failed: dict[str, str]
    """Video uid -> why it could not be read (the run goes on without it)."""
    keys: torch.Tensor
    """int64 [N, 3]: each training pair's text, verb and noun ids, which EgoNCE compares (:class:`KeyVocabulary`)."""
    tokens: torch.Tensor
    """Each training pair's tokenised narration."""
    digest: str
    """Identity of the training pairs: a resumed run must see the same ones."""
    moment_report: MomentReport


def load_pairs(config: PretrainConfig, ctx: DistInfo, image_size: int, tokenizer) -> PretrainPairs:
    """The run's pairs (every process gets the same), decoding what the frame cache lacks."""
    narrations = load_narrations(config.narrations_file)
    files = find_videos(config.videos_folder)
    narrated = sorted({n.video_uid for n in narrations.narrations})
    present = [u for u in narrated if u in files]
    if not present:
        raise PretrainError(
            f"none of the {len(narrated)} narrated videos of {config.narrations_file.name} is in {config.videos_dir} "
            f"(expected files named <video_uid>.mp4 or another video suffix)"
        )
    cache = FrameCache(config.resolved_cache_dir, image_size)
    durations, failed = {}, {}
    for part in gather_objects(ctx, _durations(cache, files, share(ctx, present))):
        durations.update(part[0])
        failed.update(part[1])
    moments, report = build_moments(
        narrations.narrations, durations, use_given=config.use_given_windows, alpha=config.alpha
    )
    if not moments:
        raise PretrainError(f"no usable narration windows in {config.narrations} for the videos in {config.videos_dir}")
    cache_videos(
        cache,
        files,
        moments,
        config.frames_per_window,
        uids=share(ctx, list(durations)),
        progress=_bar(config, "decoding", "video") if ctx.is_main else None,
    )
    barrier(ctx)
    frames, more_failed = cache_videos(cache, files, moments, config.frames_per_window)
    failed.update(more_failed)
    train_uids, val_uids = split_videos(frames, config.val_fraction, config.seed, config.val_videos)
    train_ids = set(train_uids)
    everything = attach_frames(moments, frames, config.frames_per_window)
    train = everything.subset([i for i, m in enumerate(everything.moments) if m.video_uid in train_ids])
    val_idx = [i for i, m in enumerate(everything.moments) if m.video_uid not in train_ids]
    if len(val_idx) > config.max_val_moments:
        pick = np.random.default_rng(np.random.SeedSequence([config.seed, 11])).choice(
            len(val_idx), config.max_val_moments, replace=False
        )
        val_idx = [val_idx[i] for i in sorted(pick)]
    val = everything.subset(val_idx)
    vocab = KeyVocabulary(train.moments)
    pairs = PretrainPairs(
        train=train,
        val=val,
        train_videos=len(train_uids),
        val_videos=len(val_uids),
        failed=failed,
        keys=torch.from_numpy(vocab.keys(train.moments)),
        tokens=tokenizer([m.text for m in train.moments]),
        digest=_digest([(m.video_uid, m.start, m.end, m.text) for m in train.moments]),
        moment_report=report,
    )
    logger.info(
        "pretraining on %d pairs from %d videos; %d held-out pairs from %d videos; %d videos failed",
        len(train),
        pairs.train_videos,
        len(val),
        pairs.val_videos,
        len(failed),
    )
    return pairs


def _durations(cache: FrameCache, files, uids: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    durations, failed = {}, {}
    for uid in uids:
        try:
            durations[uid] = cache.probe_duration(uid, files[uid])
        except VideoError as exc:
            logger.warning("skipping video %s: %s", uid, exc)
            failed[uid] = str(exc)
    return durations, failed


def _bar(config: PretrainConfig, desc: str, unit: str) -> Callable[[int, int], None] | None:
    """A tqdm bar fed with (done, total), opened on the first update; None when progress is off."""
    if not config.progress:
        return None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _digest(rows) -> str:
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:16]
