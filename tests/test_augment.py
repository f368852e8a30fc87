"""ReLER's augmentations keep the answer inside and remap it to the right bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.augment import splice_into, variable_length_crop


def ramp(n: int, d: int = 3) -> np.ndarray:
    """Bin i holds the value i in every channel, so a bin's origin can be read back."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)


def test_crop_keeps_the_answer_and_a_40_to_80_percent_stretch():
    rng = np.random.default_rng(0)
    x = ramp(200)
    lengths, firsts = [], set()
    for _ in range(300):
        s = int(rng.integers(0, 190))
        e = s + int(rng.integers(0, 10))
        out = variable_length_crop(x, s, e, rng, extra=(x * 2,))
        n = out.features.shape[0]
        lengths.append(n)
        assert 0 <= out.start_bin <= out.end_bin < n
        assert out.features[out.start_bin, 0] == s and out.features[out.end_bin, 0] == e  # the same bins
        assert np.array_equal(out.extra[0], out.features * 2)
        assert out.start_bin - s == out.offset
        firsts.add(-out.offset)
    assert 0.4 * 200 - 1 <= min(lengths) and max(lengths) <= 0.8 * 200 + 1
    assert np.std(lengths) > 10 and len(firsts) > 50  # really random, in length and in place


def test_crop_never_cuts_an_answer_longer_than_the_crop():
    out = variable_length_crop(ramp(50), 5, 44, np.random.default_rng(1))
    assert out.features.shape[0] >= 40 and out.features[out.start_bin, 0] == 5 and out.features[out.end_bin, 0] == 44


def test_crop_is_reproducible_from_the_seed():
    a = variable_length_crop(ramp(100), 30, 35, np.random.default_rng(7))
    b = variable_length_crop(ramp(100), 30, 35, np.random.default_rng(7))
    assert (a.offset, a.start_bin, a.features.shape) == (b.offset, b.start_bin, b.features.shape)


def test_splice_inserts_the_whole_clip_and_shifts_the_answer():
    rng = np.random.default_rng(0)
    clip = ramp(30) + 1000
    host = ramp(100)
    applied = 0
    for _ in range(200):
        out = splice_into(clip, 10, 14, host, rng, extra=(clip[:, :1],), host_extra=(host[:, :1],))
        if not out.applied:
            assert out.features is clip and (out.start_bin, out.end_bin) == (10, 14)
            continue
        applied += 1
        assert out.features.shape[0] == 130
        assert out.features[out.start_bin, 0] == 1010 and out.features[out.end_bin, 0] == 1014
        at = out.offset
        assert np.array_equal(out.features[at : at + 30], clip)
        assert np.array_equal(out.features[:at], host[:at]) and np.array_equal(out.features[at + 30 :], host[at:])
        assert np.array_equal(out.extra[0][:, 0], out.features[:, 0])
    assert 70 < applied < 130  # p = 0.5


def test_splice_respects_max_length_and_works_on_tensors():
    rng = np.random.default_rng(3)
    clip = torch.from_numpy(ramp(30) + 1000)
    host = torch.from_numpy(ramp(100))
    out = splice_into(clip, 0, 2, host, rng, probability=1.0, max_length=50)
    assert isinstance(out.features, torch.Tensor) and out.features.shape[0] == 50
    assert out.features[out.start_bin, 0] == 1000 and out.features[out.end_bin, 0] == 1002
    full = splice_into(clip, 0, 2, host, rng, probability=1.0, max_length=30)
    assert not full.applied


def test_bad_answers_and_mismatched_streams_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="not inside"):
        variable_length_crop(ramp(10), 5, 12, rng)
    with pytest.raises(ValueError, match="do not match"):
        splice_into(ramp(10), 1, 2, ramp(10, d=4), rng, probability=1.0)
