"""ReLER's data augmentations for NLQ training, as pure functions of features, answer bins and a seeded RNG.

Both change where the answer sits and how much context surrounds it, so a model cannot learn "answers are
near the middle of an 8-minute clip" and must read the question:

* :func:`variable_length_crop` keeps a random 40–80% stretch of the clip that still contains the answer;
* :func:`splice_into` inserts the whole clip into another video's features (with probability 0.5), so the
  answer sits among unrelated footage.

Both take extra streams aligned with the main features (e.g. CLIP image features for ReLER's second stream),
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
