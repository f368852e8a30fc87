import numpy as np
import pytest

from models.grid import EGO4D_RATE_HZ, TimeGrid


def test_bins_cover_the_video_and_partial_last_bin_counts():
    grid = TimeGrid(rate_hz=2.0, duration=10.0)
    assert grid.num_bins == 20
    assert TimeGrid(2.0, 10.2).num_bins == 21
    times = TimeGrid(2.0, 10.2).sample_times()
    assert times[0] == pytest.approx(0.25)
    assert times[-1] == pytest.approx(10.1)  # half-way through the 0.2 s that the last bin holds
    assert np.all(np.diff(times) > 0) and times[-1] < 10.2


def test_window_seconds_match_the_ego4d_convention_and_clamp():
    grid = TimeGrid(rate_hz=EGO4D_RATE_HZ, duration=480.0)
    s, e = grid.bins_to_seconds(3, 5)
    assert (s, e) == pytest.approx((3 / 1.875, 6 / 1.875))
    assert grid.bins_to_seconds(grid.num_bins - 1, grid.num_bins - 1)[1] == 480.0


def test_seconds_to_bins_round_trips_inside_the_grid():
    grid = TimeGrid(rate_hz=2.0, duration=10.0)
    assert grid.seconds_to_bins(1.0, 2.0) == (2, 3)
    assert grid.seconds_to_bins(1.1, 1.2) == (2, 2)
    assert grid.seconds_to_bins(-5, 50) == (0, 19)
    s, e = grid.seconds_to_bins(*grid.bins_to_seconds(4, 7))
    assert (s, e) == (4, 7)


@pytest.mark.parametrize("rate, duration", [(0, 1), (1, 0), (float("nan"), 1)])
def test_bad_grids_are_refused(rate, duration):
    with pytest.raises(ValueError):
        TimeGrid(rate, duration)
