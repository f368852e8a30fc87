"""Zero-shot library questions answer padded regions around their hits instead of whole videos: the windows
of the regions' cores must be exactly the whole video's (``models.windows.window_context_s``)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from app.answering.base import ClipAnswer, PreparedQuestion
from app.answering.search import Region, _regions, _score_video
from models.grid import TimeGrid
from models.questions import rewrite_question
from models.windows import curve_to_windows, smooth, window_context_s

RATE = 1.875
QUESTION = PreparedQuestion("where is the cup", rewrite_question("where is the cup"))


class CurveAnswerer:
    """Zero-shot's windows over a known curve: the 'features' are the curve itself, one column."""

    def answer(self, questions, features, grid, k, *, comparable=False, region=False):
        curve = np.asarray(features[:, 0], np.float64)
        return [ClipAnswer(curve_to_windows(curve, grid, k, fill=not region), curve)]


def video(seed: int, minutes: float = 20.0):
    rng = np.random.default_rng(seed)
    grid = TimeGrid(RATE, minutes * 60.0)
    curve = smooth(rng.standard_normal(grid.num_bins), 3.0) * 0.02
    for centre in rng.integers(0, grid.num_bins, size=6):  # a few events, some near each other
        curve += 0.1 * rng.random() * np.exp(-0.5 * ((np.arange(grid.num_bins) - centre) / 4.0) ** 2)
    record = SimpleNamespace(grid=grid, num_rows=grid.num_bins)
    library = SimpleNamespace(features=lambda rec: curve[:, None])
    return grid, curve, record, library


def answer_in_regions(seed: int, half_s: float, pad_s: float, k: int = 5):
    grid, curve, record, library = video(seed)
    whole = curve_to_windows(curve, grid, k)
    hits = [int(grid.seconds_to_bins(w.start, w.end)[0]) for w in whole]  # the index found the right places
    regions = _regions(hits, grid.num_bins, math.ceil(half_s * RATE), math.ceil(pad_s * RATE) + 1 if pad_s else 0)
    scored = _score_video(library.features(record), CurveAnswerer(), QUESTION, record, regions, k)
    return whole, scored, regions


def same(a, b) -> bool:
    """The same windows, up to float rounding (a region's cumulative sums start elsewhere)."""
    return len(a) == len(b) and np.allclose(
        [(w.start, w.end, w.score) for w in a], [(w.start, w.end, w.score) for w in b], rtol=0, atol=1e-9
    )


def test_padded_regions_give_the_whole_videos_windows():
    for seed in range(12):
        whole, scored, regions = answer_in_regions(seed, half_s=10.0, pad_s=window_context_s())
        assert same(scored.windows, whole), seed
        assert sum(r.stop - r.start for r in regions) < 0.4 * scored.record.num_rows  # far less than all of it


def test_without_padding_the_windows_differ():
    """The test above can fail: cut regions without context and the windows change."""
    differs = 0
    for seed in range(12):
        whole, scored, _ = answer_in_regions(seed, half_s=2.0, pad_s=0.0)
        differs += not same(scored.windows, whole)
    assert differs >= 3


def test_regions_merge_and_keep_their_cores():
    regions = _regions([100, 110, 400], 500, half=5, pad=20)
    assert regions == [Region(75, 136, 95, 116), Region(375, 426, 395, 406)]
    assert _regions([2, 498], 500, half=5, pad=20) == [Region(0, 28, 0, 8), Region(473, 500, 493, 500)]
    assert _regions([100, 160], 500, half=5, pad=30) == [Region(65, 196, 95, 166)]  # paddings overlap: one
