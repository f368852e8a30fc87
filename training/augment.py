"""Data augmentations for NLQ training, as pure functions of features, answer bins and a seeded RNG.

ReLER's two change where the answer sits and how much context surrounds it, so a model cannot learn "answers
are near the middle of an 8-minute clip" and must read the question:

* :func:`variable_length_crop` keeps a random 40–80% stretch of the clip that still contains the answer;
* :func:`splice_into` inserts the whole clip into another video's features (with probability 0.5), so the
  answer sits among unrelated footage.

A third changes how long things take, so a model trained in a few homes does not learn their one pace:

* :func:`change_speed` plays the clip faster or slower (its features resampled in time, the answer with it).
  People, and the same person on another day, put things down at their own pace; answers of 2 s in one corpus
  last 3 s in another home. Speed perturbation is how speech recognisers stopped learning one speaker's rate
  (Ko et al., Interspeech 2015); here it is the same idea on the feature timeline.

All take extra streams aligned with the main features (e.g. CLIP image features for ReLER's second stream),
transform them identically, and return the answer bins remapped to the new sequence. Features may be numpy
arrays or torch tensors (``[N, D]``); nothing is modified in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

DEFAULT_CROP_FRACTION = (0.4, 0.8)
DEFAULT_SPLICE_PROBABILITY = 0.5
DEFAULT_SPEED_RANGE = (0.7, 1.4)
"""Slowest and fastest playback factor (a factor f makes every action last f times as long): about the spread of
walking and handling speeds between people, set before any measurement and not tuned on any world."""


@dataclass(frozen=True)
class Augmented:
    """The augmented features, the answer's new inclusive bins, and the same change applied to ``extra``."""

    features: np.ndarray | torch.Tensor
    start_bin: int
    end_bin: int
    extra: tuple = field(default_factory=tuple)
    offset: int = 0
    """Where original bin 0 went: new bin = old bin + offset (negative when cropped from the left)."""
    applied: bool = True


def _check_answer(num_bins: int, start_bin: int, end_bin: int) -> None:
    if not 0 <= start_bin <= end_bin < num_bins:
        raise ValueError(f"answer bins {start_bin}..{end_bin} are not inside a clip of {num_bins} bins")


def _check_extra(features, extra: Sequence) -> None:
    for x in extra:
        if x.shape[0] != features.shape[0]:
            raise ValueError(f"an extra stream has {x.shape[0]} bins, the features {features.shape[0]}")


def variable_length_crop(
    features,
    start_bin: int,
    end_bin: int,
    rng: np.random.Generator,
    fraction: tuple[float, float] = DEFAULT_CROP_FRACTION,
    extra: Sequence = (),
) -> Augmented:
    """Keep ``U(fraction)`` of the clip (at least the answer), placed uniformly among the crops that contain
    the whole answer."""
    n = features.shape[0]
    _check_answer(n, start_bin, end_bin)
    _check_extra(features, extra)
    lo, hi = fraction
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"crop fraction must satisfy 0 < low <= high <= 1, got {fraction}")
    answer_len = end_bin - start_bin + 1
    length = min(n, max(answer_len, 1, int(round(rng.uniform(lo, hi) * n))))
    first = int(rng.integers(max(0, end_bin - length + 1), min(start_bin, n - length) + 1))
    window = slice(first, first + length)
    return Augmented(
        features[window], start_bin - first, end_bin - first, tuple(x[window] for x in extra), offset=-first
    )


def _concat(parts: list):
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts, 0)
    return np.concatenate(parts, 0)


def splice_into(
    features,
    start_bin: int,
    end_bin: int,
    host,
    rng: np.random.Generator,
    probability: float = DEFAULT_SPLICE_PROBABILITY,
    max_length: int | None = None,
    extra: Sequence = (),
    host_extra: Sequence = (),
) -> Augmented:
    """With ``probability``, insert the whole clip at a random bin of ``host`` (another video's features on
    the same grid); otherwise return the clip unchanged (``applied=False``).

    ``max_length`` bounds the result: a random contiguous piece of the host is used so that clip + host fits
    (no splicing when the clip alone fills it). ``host_extra`` are the host's streams matching ``extra``.
    """
    n = features.shape[0]
    _check_answer(n, start_bin, end_bin)
    _check_extra(features, extra)
    _check_extra(host, host_extra)
    if len(extra) != len(host_extra):
        raise ValueError("give the host the same extra streams as the clip")
    if host.shape[1:] != features.shape[1:]:
        raise ValueError(f"host features {tuple(host.shape)} do not match the clip's {tuple(features.shape)}")
    unchanged = Augmented(features, start_bin, end_bin, tuple(extra), 0, applied=False)
    if rng.random() >= probability:
        return unchanged
    room = host.shape[0] if max_length is None else min(host.shape[0], max_length - n)
    if room <= 0:
        return unchanged
    host_first = int(rng.integers(0, host.shape[0] - room + 1))
    piece = slice(host_first, host_first + room)
    at = int(rng.integers(0, room + 1))

    def splice(clip, other):
        other = other[piece]
        return _concat([other[:at], clip, other[at:]])

    return Augmented(
        splice(features, host),
        start_bin + at,
        end_bin + at,
        tuple(splice(x, h) for x, h in zip(extra, host_extra)),
        offset=at,
    )


def change_speed(
    features,
    start_bin: int,
    end_bin: int,
    rng: np.random.Generator,
    speed_range: tuple[float, float] = DEFAULT_SPEED_RANGE,
    extra: Sequence = (),
) -> Augmented:
    """Stretch the clip in time by a factor drawn log-uniformly from ``speed_range`` (> 1: everything lasts
    longer), resampling every stream by linear interpolation and moving the answer with it.

    The answer keeps at least one bin; the new answer covers every new bin whose centre falls inside the old
    answer's span, so a stretched answer grows and a shrunk one never vanishes.
    """
    n = features.shape[0]
    _check_answer(n, start_bin, end_bin)
    _check_extra(features, extra)
    lo, hi = speed_range
    if not 0.0 < lo <= hi:
        raise ValueError(f"speed range must satisfy 0 < slowest <= fastest, got {speed_range}")
    factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    m = max(1, int(round(n * factor)))
    if m == n:
        return Augmented(features, start_bin, end_bin, tuple(extra), 0, applied=False)
    scale = n / m
    # New bin j's centre sits at old position (j + 0.5) * scale - 0.5 (bin centres on both grids).
    positions = np.clip((np.arange(m) + 0.5) * scale - 0.5, 0.0, n - 1.0)
    # The old answer spans [start_bin, end_bin + 1) on the old time axis; keep the new bins whose centre is in it.
    new_start = int(np.clip(np.ceil(start_bin / scale - 0.5), 0, m - 1))
    new_end = int(np.clip(np.ceil((end_bin + 1) / scale - 0.5) - 1, 0, m - 1))
    if new_end < new_start:  # a shrunk answer keeps the bin nearest its centre
        centre = int(np.clip(round(((start_bin + end_bin) / 2 + 0.5) / scale - 0.5), 0, m - 1))
        new_start = new_end = centre
    return Augmented(
        _resample(features, positions),
        new_start,
        new_end,
        tuple(_resample(x, positions) for x in extra),
        offset=0,
    )


def _resample(x, positions: np.ndarray):
    """``x`` read at fractional bin ``positions`` by linear interpolation between neighbouring bins."""
    left = np.floor(positions).astype(np.int64)
    right = np.minimum(left + 1, x.shape[0] - 1)
    w = (positions - left).astype(np.float32)
    if isinstance(x, torch.Tensor):
        wt = torch.from_numpy(w).to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return x[torch.from_numpy(left)] * (1 - wt) + x[torch.from_numpy(right)] * wt
    wn = w.reshape(-1, *([1] * (x.ndim - 1)))
    return (x[left] * (1 - wn) + x[right] * wn).astype(x.dtype, copy=False)
