"""The training augmentations (ReLER's crop and splice, the change of speed) keep the answer inside and remap
it to the right bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.augment import change_speed, splice_into, variable_length_crop


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


def test_speed_change_stretches_the_clip_and_moves_the_answer_with_it():
    rng = np.random.default_rng(0)
    n = 120
    x = ramp(n)
    factors = []
    for _ in range(300):
        s = int(rng.integers(2, 100))
        e = s + int(rng.integers(0, 15))
        out = change_speed(x, s, e, rng, extra=(x * 2,))
        m = out.features.shape[0]
        factors.append(m / n)
        assert 0 <= out.start_bin <= out.end_bin < m
        assert np.allclose(out.extra[0], out.features * 2)
        got = out.features[:, 0]
        if (e - s + 1) * m / n < 1:  # shrunk below a bin: the bin nearest the old answer's centre is kept
            assert out.start_bin == out.end_bin and abs(got[out.start_bin] - (s + e) / 2) <= n / m
            continue
        # A ramp reads back where each new bin came from: the answer's bins from the old answer's span, the
        # bins beside them from outside it.
        assert s - 0.5 - 1e-4 <= got[out.start_bin] and got[out.end_bin] < e + 0.5 + 1e-4
        assert got[out.start_bin - 1] < s - 0.5 + 1e-4 and got[out.end_bin + 1] >= e + 0.5 - 1e-4
        # The answer lasts as much longer as the clip does (within a bin at each end).
        assert abs((out.end_bin - out.start_bin + 1) - (e - s + 1) * m / n) <= 1.0 + 1e-6
    assert 0.7 - 0.01 <= min(factors) < 0.8 and 1.3 < max(factors) <= 1.4 + 0.01  # both ways, within the range
    assert 0.35 < np.mean(np.array(factors) > 1.0) < 0.65  # log-uniform: as often slower as faster


def test_speed_change_keeps_a_one_bin_answer_when_sped_up_and_works_on_tensors():
    x = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3)
    out = change_speed(x, 10, 10, np.random.default_rng(3), speed_range=(0.5, 0.5), extra=(x + 1,))
    assert isinstance(out.features, torch.Tensor) and out.features.shape == (20, 3)
    assert out.start_bin == out.end_bin and abs(float(out.features[out.start_bin, 0]) - 10.0) <= 1.0
    assert torch.allclose(out.extra[0], out.features + 1)


def test_speed_change_at_factor_one_changes_nothing_and_bad_ranges_are_refused():
    x = ramp(50)
    out = change_speed(x, 5, 9, np.random.default_rng(0), speed_range=(1.0, 1.0))
    assert not out.applied and out.features is x and (out.start_bin, out.end_bin) == (5, 9)
    with pytest.raises(ValueError, match="speed range"):
        change_speed(x, 5, 9, np.random.default_rng(0), speed_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="not inside"):
        change_speed(x, 5, 60, np.random.default_rng(0))
