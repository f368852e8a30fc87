"""Training data for NLQ localizers: which queries, what one item is, how items become batches.

An item is one query about one clip: the clip's features (float32 ``[L, D]``), the answer as inclusive bins
on the clip's grid (:func:`models.localizer.answer_bins`), and the query's token features (from a
:class:`training.text_features.TextFeatureCache`). Training items are where the randomness lives:

* NaQ's temporal response jittering widens (and shifts) narration answers (:func:`training.naq.jitter_bins`);
* augmentations (optional): ReLER's random 40-80% crop holding the answer and splicing into another clip;
  playing the clip faster or slower;
* questions without an answer (optional, ``negative_probability``): the question asked of a clip of another
  video none of whose own queries and narrations name its object or place, so the model learns to say "not
  here" (every highlight low; :meth:`models.localizer.Localizer.absent_loss`) -- what "no good match" reads;
* a clip longer than ``max_bins`` is cut to a random ``max_bins`` window that holds the answer (``crop``,
  the default: the model keeps the native grid, and inference slides windows over that same grid), or every
  clip is averaged to ``resample_to`` bins (``resample``, the reference code's way; inference must do the
  same, so checkpoints record it).

Every random choice of an item comes from ``numpy.random.default_rng([seed, epoch, index])``, so an item is
the same whichever process or worker loads it and whether or not the run was interrupted and resumed.

Batches: :class:`EpochBatchSampler` wraps ``torch.utils.data.DistributedSampler`` (one replica when not
distributed) and can start in the middle of an epoch; :func:`collate` right-pads clips and tokens, sorts
the batch by clip length and splits it into micro-batches so padding stays small.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from models.grid import TimeGrid
from models.localizer import answer_bins
from models.resample import resample_clip
from models.windows import LengthPrior
from training.augment import (
    DEFAULT_CROP_FRACTION,
    DEFAULT_SPEED_RANGE,
    change_speed,
    splice_into,
    variable_length_crop,
)
from training.features import ClipFeatures, ClipFeatureSource
from training.naq import jitter_bins
from training.negatives import AbsentHosts
from training.nlq import Clip, NLQDataset, Query, few_shot_clips, load_nlq
from training.text_features import TextFeatureCache, pad_tokens

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- query selection
@dataclass
class TrainingData:
    """The queries one run trains on, with the clips they are about and a summary for logs and checkpoints."""

    queries: list[Query]
    clips: dict[str, Clip]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [q.text for q in self.queries]


SPAN_QUANTILE = 0.99
MIN_SPAN_S = 2.0


def answer_span_limit(queries: Sequence[Query], quantile: float = SPAN_QUANTILE, floor: float = MIN_SPAN_S) -> float:
    """The longest answer worth predicting for a model trained on ``queries``: a high quantile of their
    answers' lengths (seconds, at least ``floor``)."""
    lengths = [q.answer_length for q in queries if q.has_answer]
    if not lengths:
        return floor
    return max(floor, float(np.quantile(np.asarray(lengths, np.float64), quantile)))


def answer_length_prior(queries: Sequence[Query], weight: float) -> LengthPrior | None:
    """The prior on answer length a model trained on ``queries`` decodes with: fitted on their NLQ answers
    (narration windows are NaQ's construction, not what people ask about), on every answer when there are no
    NLQ ones; None for ``weight`` 0 or too few answers."""
    if weight <= 0:
        return None
    answered = [q for q in queries if q.has_answer and not q.is_empty_window]
    asked = [q for q in answered if not q.is_narration] or answered
    return LengthPrior.fit([q.answer_length for q in asked], weight)


def merge_nlq_files(paths: Sequence[str]) -> NLQDataset:
    """Several NLQ-format files as one dataset; a query found in two files (an NLQ train file listed next to
    the NaQ file built from it) is kept once."""
    clips: dict[str, Clip] = {}
    queries: list[Query] = []
    seen: set = set()
    sizes: dict = {}
    for path in paths:
        ds = load_nlq(path)
        for uid, clip in ds.clips.items():
            clips.setdefault(uid, clip)
        for q in ds.queries:
            if q.key not in seen:
                seen.add(q.key)
                queries.append(q)
        for k, n in ds.annotation_sizes.items():
            sizes[k] = max(n, sizes.get(k, 0))
    return NLQDataset(
        source=", ".join(map(str, paths)), version=None, clips=clips, queries=queries, annotation_sizes=sizes
    )


def repeat_queries(data: TrainingData, repeat: Mapping[str, int]) -> TrainingData:
    """The training queries with those of each file in ``repeat`` used that many times (a query listed in
    several files counts once, at the largest repeat). Copies are separate items, so each draws its own
    jitter and crop."""
    times: dict = {}
    for path, n in repeat.items():
        if n > 1:
            for q in load_nlq(path).queries:
                times[q.key] = max(n, times.get(q.key, 1))
    if not times:
        return data
    extra = [q for q in data.queries for _ in range(times.get(q.key, 1) - 1)]
    summary = dict(data.summary, repeated_queries=len(extra), repeat={str(k): v for k, v in repeat.items()})
    return TrainingData(data.queries + extra, data.clips, summary)


def select_training_queries(
    dataset: NLQDataset,
    source: ClipFeatureSource,
    *,
    narrations: bool,
    nlq_fraction: float = 1.0,
    few_shot_seed: int = 0,
    drop_empty: bool = True,
) -> TrainingData:
    """NLQ queries (of a seeded share of clips when few-shot) plus, if asked, narration queries; without
    (almost) empty answers; only clips the feature source has (the others are counted and skipped)."""
    nlq_clips = set(few_shot_clips(dataset, nlq_fraction, few_shot_seed)) if nlq_fraction < 1.0 else None
    usable = dataset.training_queries(drop_empty=drop_empty, include_narrations=narrations)
    chosen = [q for q in usable if q.is_narration or nlq_clips is None or q.clip_uid in nlq_clips]
    missing = sorted({q.clip_uid for q in chosen if not source.has(dataset.clips[q.clip_uid])})
    if missing:
        logger.warning(
            "%d training clips have no features (e.g. %s, video %s); their queries are skipped",
            len(missing),
            missing[0],
            dataset.clips[missing[0]].video_uid,
        )
    drop = set(missing)
    chosen = [q for q in chosen if q.clip_uid not in drop]
    clips = {q.clip_uid: dataset.clips[q.clip_uid] for q in chosen}
    n_narr = sum(q.is_narration for q in chosen)
    summary = {
        "train_files": dataset.source,
        "nlq_queries": len(chosen) - n_narr,
        "narration_queries": n_narr,
        "clips": len(clips),
        "nlq_fraction": nlq_fraction,
        "few_shot_seed": few_shot_seed,
        "narrations": narrations,
        "clips_without_features": len(missing),
    }
    return TrainingData(chosen, clips, summary)


# ---------------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class ItemOptions:
    """How training items are made (see the module docstring); defaults = plain items, no randomness."""

    train: bool = True
    jitter_factor: float = 1.0
    jitter_shift: bool = True
    max_bins: int | None = None
    resample_to: int | None = None
    crop_probability: float = 0.0
    crop_fraction: tuple[float, float] = DEFAULT_CROP_FRACTION
    splice_probability: float = 0.0
    speed_probability: float = 0.0
    speed_range: tuple[float, float] = DEFAULT_SPEED_RANGE
    negative_probability: float = 0.0


class ClipStore:
    """A feature source with an optional in-memory cache and the optional resampling applied once."""

    def __init__(
        self, source: ClipFeatureSource, clips: dict[str, Clip], resample_to: int | None = None, cache: bool = True
    ) -> None:
        self.source = source
        self.clips = clips
        self.resample_to = resample_to
        self.cache = cache
        self._cached: dict[str, ClipFeatures] = {}

    def get(self, clip_uid: str) -> ClipFeatures:
        got = self._cached.get(clip_uid)
        if got is not None:
            return got
        cf = self.source.get(self.clips[clip_uid])
        feats = np.asarray(cf.features, dtype=np.float32)
        grid = cf.grid
        if self.resample_to is not None:
            r = resample_clip(feats, grid, self.resample_to)
            feats, grid = np.asarray(r.features, dtype=np.float32), r.grid
        got = ClipFeatures(feats, grid)
        if self.cache:
            self._cached[clip_uid] = got
        return got


class QueryDataset(Dataset):
    """One item per query. Index with ``(index, epoch)`` pairs (what :class:`EpochBatchSampler` yields) or a
    plain index (epoch 0)."""

    def __init__(
        self,
        queries: Sequence[Query],
        store: ClipStore,
        texts: TextFeatureCache,
        options: ItemOptions = ItemOptions(),
        seed: int = 0,
    ) -> None:
        self.queries = list(queries)
        self.store = store
        self.texts = texts
        self.options = options
        self.seed = seed
        self._clip_uids = sorted({q.clip_uid for q in self.queries})
        self._absent_hosts: AbsentHosts | None = None

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, key) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        q = self.queries[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        cf = self.store.get(q.clip_uid)
        feats = cf.features
        n = feats.shape[0]
        clip = self.store.clips[q.clip_uid]
        s, e = answer_bins(cf.grid, *q.training_window(clip.duration))
        opt = self.options
        if opt.train and opt.negative_probability > 0 and rng.random() < opt.negative_probability:
            host = self._negative_host(q, rng)
            if host is not None:
                return self._absent_item(q, host, rng)
        if opt.train:
            if q.is_narration and opt.jitter_factor > 1.0:
                s, e = jitter_bins(s, e, n, rng, opt.jitter_factor, opt.jitter_shift)
            if opt.speed_probability > 0 and rng.random() < opt.speed_probability:
                a = change_speed(feats, s, e, rng, opt.speed_range)
                feats, s, e = np.asarray(a.features), a.start_bin, a.end_bin
            if opt.crop_probability > 0 and rng.random() < opt.crop_probability:
                a = variable_length_crop(feats, s, e, rng, opt.crop_fraction)
                feats, s, e = np.asarray(a.features), a.start_bin, a.end_bin
            if opt.splice_probability > 0 and len(self._clip_uids) > 1:
                host_uid = self._clip_uids[int(rng.integers(len(self._clip_uids)))]
                if host_uid != q.clip_uid:
                    a = splice_into(
                        feats,
                        s,
                        e,
                        self.store.get(host_uid).features,
                        rng,
                        opt.splice_probability,
                        max_length=opt.max_bins,
                    )
                    feats, s, e = np.asarray(a.features), a.start_bin, a.end_bin
        if opt.max_bins is not None and feats.shape[0] > opt.max_bins:
            feats, s, e = crop_around(feats, s, e, opt.max_bins, rng if opt.train else None)
        return {
            "video": feats,
            "start": int(s),
            "end": int(e),
            "tokens": self.texts.get(q.text),
            "is_narration": q.is_narration,
            "key": q.key,
            "answerable": True,
        }

    def _negative_host(self, q: Query, rng: np.random.Generator) -> str | None:
        if self._absent_hosts is None:
            self._absent_hosts = AbsentHosts(self.queries, self.store.clips)
        return self._absent_hosts.draw(q, rng)

    def _absent_item(self, q: Query, host: str, rng: np.random.Generator) -> dict[str, Any]:
        feats = self.store.get(host).features
        if self.options.max_bins is not None and feats.shape[0] > self.options.max_bins:
            at = int(rng.integers(feats.shape[0]))
            feats, _, _ = crop_around(feats, at, at, self.options.max_bins, rng)
        return {
            "video": feats,
            "start": 0,
            "end": 0,
            "tokens": self.texts.get(q.text),
            "is_narration": q.is_narration,
            "key": q.key,
            "answerable": False,
        }


def crop_around(
    features: np.ndarray, start: int, end: int, length: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, int, int]:
    """A ``length``-bin window holding the answer (random placement with ``rng``, else centred on it); an
    answer longer than the window keeps its start and is cut."""
    n = features.shape[0]
    lo, hi = max(0, end - length + 1), min(start, n - length)
    if lo > hi:  # the answer alone is longer than the window
        first = min(start, n - length)
    elif rng is None:
        first = int(np.clip((start + end + 1) // 2 - length // 2, lo, hi))
    else:
        first = int(rng.integers(lo, hi + 1))
    last = first + length - 1
    return features[first : first + length], max(start, first) - first, min(end, last) - first


# ---------------------------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """A (micro-)batch ready for a localizer: right-padded, masks True on real entries."""

    video: torch.Tensor
    video_mask: torch.Tensor
    query: torch.Tensor
    query_mask: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    is_narration: torch.Tensor
    keys: list
    answerable: torch.Tensor | None = None
    """False for training negatives (the answer is not in the clip); None: every item answerable."""

    def __len__(self) -> int:
        return self.video.shape[0]

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(
            move(self.video),
            move(self.video_mask),
            move(self.query),
            move(self.query_mask),
            move(self.start),
            move(self.end),
            move(self.is_narration),
            self.keys,
            None if self.answerable is None else move(self.answerable),
        )

    def pin_memory(self) -> Batch:
        return Batch(
            self.video.pin_memory(),
            self.video_mask.pin_memory(),
            self.query.pin_memory(),
            self.query_mask.pin_memory(),
            self.start,
            self.end,
            self.is_narration,
            self.keys,
            self.answerable,
        )


def collate_one(items: Sequence[dict[str, Any]]) -> Batch:
    longest = max(it["video"].shape[0] for it in items)
    dim = items[0]["video"].shape[1]
    video = torch.zeros(len(items), longest, dim)
    video_mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, it in enumerate(items):
        n = it["video"].shape[0]
        video[i, :n] = torch.from_numpy(np.ascontiguousarray(it["video"], dtype=np.float32))
        video_mask[i, :n] = True
    query, query_mask = pad_tokens([it["tokens"] for it in items])
    return Batch(
        video,
        video_mask,
        query,
        query_mask,
        torch.tensor([it["start"] for it in items], dtype=torch.long),
        torch.tensor([it["end"] for it in items], dtype=torch.long),
        torch.tensor([it["is_narration"] for it in items], dtype=torch.bool),
        [it["key"] for it in items],
        torch.tensor([it.get("answerable", True) for it in items], dtype=torch.bool),
    )


class Collate:
    """Items -> a list of micro-batches of at most ``micro_batch_size`` (sorted by clip length first, so
    each micro-batch pads to similar lengths). Questions without an answer (training negatives) get
    micro-batches of their own, first: a micro-batch is then all span loss or all absent loss, and the last
    one -- where DDP synchronises gradients -- reaches every parameter. A class, not a closure, so DataLoader
    workers can use it."""

    def __init__(self, micro_batch_size: int | None = None) -> None:
        self.micro_batch_size = micro_batch_size

    def __call__(self, items: Sequence[dict[str, Any]]) -> list[Batch]:
        absent = [it for it in items if not it.get("answerable", True)]
        answerable = [it for it in items if it.get("answerable", True)]
        return [mb for group in (absent, answerable) if group for mb in self._split(group)]

    def _split(self, items: Sequence[dict[str, Any]]) -> list[Batch]:
        size = self.micro_batch_size or len(items)
        if size >= len(items):
            return [collate_one(items)]
        ordered = sorted(items, key=lambda it: it["video"].shape[0])
        return [collate_one(ordered[i : i + size]) for i in range(0, len(ordered), size)]


class EpochBatchSampler:
    """Per-process batches of ``(index, epoch)`` pairs for one epoch at a time, resumable mid-epoch.

    Shuffling and the split over processes are ``DistributedSampler``'s (seeded by ``seed`` and the epoch),
    so every process gets as many batches as the others. Call :meth:`set_epoch` before iterating.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if num_items < 1:
            raise ValueError("nothing to train on: no training queries")
        self.batch_size = batch_size
        self.sampler: DistributedSampler = DistributedSampler(
            range(num_items),  # type: ignore[arg-type]  # it only needs len()
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.epoch = 0
        self.skip = 0

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip_batches
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.skip

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = list(self.sampler)
        for b in range(self.skip, self.batches_per_epoch):
            chunk = indices[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(i, self.epoch) for i in chunk]


def clip_grid(store: ClipStore, clip_uid: str) -> TimeGrid:
    return store.get(clip_uid).grid
