import numpy as np
import pytest

from models.grid import TimeGrid
from models.windows import (
    LengthPrior,
    ProposalConfig,
    Window,
    best_window_scores,
    curve_to_windows,
    rank_across,
    smooth,
    span_windows,
    temporal_iou,
    temporal_nms,
)


def test_iou_uses_the_ego4d_union():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 1), (1, 2)) == 0.0  # touching windows do not overlap
    assert temporal_iou((0, 0), (0, 0)) == 0.0


def test_nms_keeps_distinct_moments_best_first():
    ws = [Window(0, 10, 0.9), Window(1, 11, 0.8), Window(20, 25, 0.7), Window(40, 41, 0.95)]
    kept = temporal_nms(ws, k=5, iou_threshold=0.3)
    assert [w.score for w in kept] == [0.95, 0.9, 0.7]


def test_curve_peaks_become_distinct_windows_inside_the_video():
    grid = TimeGrid(rate_hz=1.875, duration=120.0)
    rng = np.random.default_rng(0)
    curve = 0.2 + 0.01 * rng.standard_normal(grid.num_bins)
    peaks = [(30.0, 34.0, 0.6), (80.0, 83.0, 0.5), (100.0, 108.0, 0.45)]
    times = grid.sample_times()
    for s, e, v in peaks:
        curve[(times >= s) & (times < e)] = v
    windows = curve_to_windows(curve, grid, k=5)
    assert len(windows) == 5
    assert all(0 <= w.start < w.end <= 120.0 for w in windows)
    for (s, e, _), w in zip(peaks, windows[:3]):
        assert temporal_iou((s, e), w) > 0.5, (s, e, w)
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)
    for i, a in enumerate(windows):
        for b in windows[i + 1 :]:
            assert temporal_iou(a, b) <= 0.3


def test_length_limits_are_respected():
    grid = TimeGrid(rate_hz=2.0, duration=60.0)
    curve = np.zeros(grid.num_bins)
    curve[40:80] = 1.0  # a 20 s plateau
    cfg = ProposalConfig(min_length_s=3.0, max_length_s=6.0)
    for w in curve_to_windows(curve, grid, k=5, config=cfg):
        assert 3.0 - 1e-9 <= w.length <= 6.0 + 1e-9


def test_short_video_still_answers_with_non_empty_windows():
    grid = TimeGrid(rate_hz=1.875, duration=0.4)
    windows = curve_to_windows(np.array([0.3]), grid, k=5)
    assert len(windows) == 1 and windows[0].start == 0 and 0 < windows[0].end <= 0.4


def test_span_windows_pick_the_joint_best_span():
    grid = TimeGrid(rate_hz=1.0, duration=50.0)
    ps = np.full(50, 1e-3)
    pe = np.full(50, 1e-3)
    ps[10], pe[14] = 0.9, 0.9
    ps[30], pe[31] = 0.5, 0.5
    ws = span_windows(ps / ps.sum(), pe / pe.sum(), grid, k=5, max_length_bins=20)
    assert (ws[0].start, ws[0].end) == (10.0, 15.0)
    assert (ws[1].start, ws[1].end) == (30.0, 32.0)
    assert len(ws) == 5


def test_a_length_prior_ranks_spans_of_plausible_length_first():
    """A start and an end far apart can have the best product; with the prior of seconds-long answers, the
    span of a typical length comes first, and the prior changes nothing else about the windows."""
    grid = TimeGrid(rate_hz=1.0, duration=60.0)
    ps = np.full(60, 1e-3)
    pe = np.full(60, 1e-3)
    ps[5], pe[44] = 0.9, 0.9  # a 40-s span
    ps[20], pe[23] = 0.6, 0.6  # a 4-s span
    plain = span_windows(ps, pe, grid, k=3, max_length_bins=50)
    assert (plain[0].start, plain[0].end) == (5.0, 45.0)
    prior = LengthPrior.fit([3.0, 4.0, 4.0, 5.0])
    assert prior is not None and prior.log_mean == pytest.approx(np.mean(np.log([3.0, 4.0, 4.0, 5.0])))
    weighed = span_windows(ps, pe, grid, k=3, max_length_bins=50, length_prior=prior)
    assert (weighed[0].start, weighed[0].end) == (20.0, 24.0)
    assert all(0.0 <= w.start < w.end <= 60.0 for w in weighed) and len(weighed) == 3
    off = span_windows(ps, pe, grid, k=3, max_length_bins=50, length_prior=LengthPrior(prior.log_mean, 1.0, 0.0))
    assert off == plain  # weight 0: p_start * p_end alone


def test_a_length_prior_is_read_back_or_ignored():
    prior = LengthPrior(1.3, 0.4, 1.0)
    assert LengthPrior.from_dict(prior.to_dict()) == prior
    assert LengthPrior.from_dict({"log_mean": 1.3, "log_std": 0.4}) == prior  # weight 1 by default
    for bad in (None, {}, {"log_mean": "x", "log_std": 0.4}, {"log_mean": 1.0, "log_std": 0.0}, [1, 2]):
        assert LengthPrior.from_dict(bad) is None
    assert LengthPrior.fit([4.0]) is None and LengthPrior.fit([4.0, 4.0]).log_std == pytest.approx(0.1)  # floor
    f = prior.factors(np.array([np.exp(1.3), np.exp(1.3 + 0.4)]))
    assert f[0] == pytest.approx(1.0) and f[1] == pytest.approx(np.exp(-0.5))


def test_rank_across_videos_orders_by_score():
    ranked = rank_across([("a", [Window(0, 1, 0.2)]), ("b", [Window(5, 6, 0.9), Window(9, 10, 0.1)])], k=2)
    assert [(v, w.score) for v, w in ranked] == [("b", 0.9), ("a", 0.2)]


def test_nms_drops_pieces_of_a_kept_moment():
    kept = temporal_nms([Window(30, 34, 0.8), Window(30.4, 31.5, 0.7), Window(33, 40, 0.6)], k=5)
    assert [(w.start, w.end) for w in kept] == [(30, 34), (33, 40)]


def test_every_slot_holds_a_distinct_window_when_the_video_allows_it():
    """One broad bump used to fill the top 5 with shifted copies of itself; now each rank is another place."""
    grid = TimeGrid(rate_hz=1.875, duration=90.0)
    times = grid.sample_times()
    curve = 0.1 + 0.3 * np.exp(-0.5 * ((times - 40.0) / 6.0) ** 2)
    windows = curve_to_windows(curve, grid, k=5)
    assert len(windows) == 5
    assert all(temporal_iou(a, b) <= 0.3 for i, a in enumerate(windows) for b in windows[i + 1 :])
    assert windows[0].start <= 40.0 <= windows[0].end


def test_a_video_too_short_for_k_distinct_windows_still_gets_k():
    grid = TimeGrid(rate_hz=1.875, duration=6.0)
    windows = curve_to_windows(np.linspace(0.0, 1.0, grid.num_bins), grid, k=5)
    assert len(windows) == 5 and len({(w.start, w.end) for w in windows}) == 5
    assert all(0.0 <= w.start < w.end <= 6.0 for w in windows)


def test_window_lengths_follow_the_configured_answer_length():
    grid = TimeGrid(rate_hz=1.875, duration=120.0)
    curve = np.random.default_rng(3).random(grid.num_bins)
    for length in (2.0, 4.0, 8.0):
        cfg = ProposalConfig(answer_length_s=length)
        for w in curve_to_windows(curve, grid, k=5, config=cfg):
            assert 0.75 * length - 0.6 <= w.length <= 1.25 * length + 0.6


def test_fusion_mixes_highlight_and_cosine_on_one_scale_and_keeps_either_mode_at_the_ends():
    from app.answering.fusion import FUSION_FORMS, fuse_curves, unit_span

    grid = TimeGrid(rate_hz=1.875, duration=60.0)
    rng = np.random.default_rng(5)
    cos = 0.2 + 0.02 * rng.standard_normal(grid.num_bins)
    highlight = rng.random(grid.num_bins)
    np.testing.assert_allclose(unit_span(np.array([0.1, 0.3, 0.2])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(fuse_curves(highlight, cos, 0.0, "linear"), highlight)
    np.testing.assert_allclose(fuse_curves(highlight, cos, 0.0, "span"), unit_span(highlight))
    spans = lambda curve: [(w.start, w.end) for w in curve_to_windows(curve, grid, 5)]  # noqa: E731
    assert set(FUSION_FORMS) == {"linear", "span"}
    for form in FUSION_FORMS:
        assert spans(fuse_curves(highlight, cos, 1.0, form)) == spans(cos)  # w = 1 is zero-shot, exactly
        assert spans(fuse_curves(highlight, cos, 0.0, form)) == spans(highlight)
    # span: a model that finds little in a clip (its highlight peaking at 0.2) keeps its say in the mix
    low = 0.05 + 0.15 * highlight
    np.testing.assert_allclose(fuse_curves(low, cos, 0.5, "span"), fuse_curves(highlight, cos, 0.5, "span"))
    assert not np.allclose(fuse_curves(low, cos, 0.5, "linear"), fuse_curves(highlight, cos, 0.5, "linear"))


def test_ranking_across_videos_puts_a_short_videos_overlapping_fill_last():
    short = [Window(0.0, 4.0, 0.9), Window(0.5, 4.5, 0.8)]  # a 5 s video topped up with an overlapping window
    other = [Window(10.0, 14.0, 0.7), Window(30.0, 34.0, 0.6)]
    ranked = rank_across([("short", short), ("other", other)], k=3)
    assert [(v, w.score) for v, w in ranked] == [("short", 0.9), ("other", 0.7), ("other", 0.6)]
    assert len(rank_across([("short", short)], k=5)) == 2  # alone, the fill still counts


def test_batched_smoothing_matches_one_curve_at_a_time():
    curves = np.random.default_rng(3).standard_normal((3, 4, 50))
    batched = smooth(curves, 2.5)
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(batched[i, j], smooth(curves[i, j], 2.5), atol=1e-12)


def test_best_window_score_is_what_the_first_window_scores_for_each_curve_of_a_batch():
    """The bound a library search prunes with: exact, not merely an upper bound, for every curve."""
    grid = TimeGrid(rate_hz=1.875, duration=90.0)
    rng = np.random.default_rng(5)
    curves = smooth(rng.standard_normal((4, 3, grid.num_bins)), 4.0) * 0.05
    curves[0, 1, 60:66] += 0.3  # one clear peak among flat noise
    bounds = best_window_scores(curves, grid)
    assert bounds.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert bounds[i, j] == pytest.approx(curve_to_windows(curves[i, j], grid, k=5)[0].score, abs=1e-9)
