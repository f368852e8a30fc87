"""Confidence calibration: a score -> probability-of-a-right-answer map, and its "no good match" threshold."""

from __future__ import annotations

import numpy as np
import pytest

from app.answering.calibration import Calibration, InvalidCalibration, fit_calibration, rejection_report


def _scores(seed: int, n: int = 400):
    """Answerable queries: higher scores hit more often; negatives score lower on average, with overlap."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.30, 0.05, n)
    hits = rng.random(n) < 1 / (1 + np.exp(-(pos - 0.28) * 60))
    neg = rng.normal(0.20, 0.05, n)
    return pos, hits, neg


def test_probability_rises_with_the_score_and_matches_the_hit_rate():
    pos, hits, neg = _scores(0)
    cal = fit_calibration(pos, hits, neg)
    grid = np.linspace(0.1, 0.4, 31)
    assert np.all(np.diff(cal.probability(grid)) > 0)
    # Calibrated: among all queries, the mean predicted probability matches the share of right answers.
    every = np.concatenate([pos, neg])
    right = np.concatenate([hits, np.zeros(len(neg), bool)])
    assert abs(float(np.mean(cal.probability(every))) - float(np.mean(right))) < 0.02


def test_the_threshold_loses_at_most_the_allowed_share_of_hits_and_rejects_negatives():
    pos, hits, neg = _scores(1)
    cal = fit_calibration(pos, hits, neg, max_r1_loss=2.0)
    seen = rejection_report(cal, pos, hits, neg)
    assert seen["R@1@0.3_lost"] <= 2.0 + 1e-9
    assert seen["negatives_flagged"] > 50.0  # well-separated classes: most negatives fall below
    fresh = rejection_report(cal, *_scores(2))  # on queries it was not fitted on, it stays close
    assert fresh["R@1@0.3_lost"] <= 5.0 and fresh["negatives_flagged"] > 40.0
    strict = fit_calibration(pos, hits, neg, max_r1_loss=0.0)
    assert strict.threshold <= cal.threshold


def test_stored_calibrations_round_trip_and_bad_ones_are_refused():
    cal = Calibration(12.0, -3.0, 0.4, "val.json", 10, 5)
    assert Calibration.from_dict(cal.to_dict()) == cal
    for bad in (
        {"a": 1.0, "b": 0.0},
        {"a": "x", "b": 0, "threshold": 0.5},
        {"a": 1, "b": 0, "threshold": 2},
        {"a": float("nan"), "b": 0, "threshold": 0.5},
        [1, 2],
    ):
        with pytest.raises(InvalidCalibration):
            Calibration.from_dict(bad)
    with pytest.raises(ValueError):
        fit_calibration([], [], [0.1])
