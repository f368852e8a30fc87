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


def _with_presence(seed: int, n: int = 300):
    """Negatives score like answerable queries but their object is rarely on screen (low presence); a third
    of the answerable questions name no object (presence NaN)."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.30, 0.05, n)
    hits = rng.random(n) < 0.5
    neg = rng.normal(0.29, 0.05, n)
    pos_p = np.clip(rng.beta(8, 2, n), 1e-6, 1)
    pos_p[rng.random(n) < 1 / 3] = np.nan
    neg_p = np.clip(rng.beta(1, 12, n), 1e-6, 1)
    return pos, hits, neg, pos_p, neg_p


def test_presence_is_a_second_input_that_rejects_what_the_score_cannot():
    pos, hits, neg, pos_p, neg_p = _with_presence(0)
    score_only = fit_calibration(pos, hits, neg)
    both = fit_calibration(pos, hits, neg, answerable_presence=pos_p, negative_presence=neg_p)
    assert score_only.presence_weight == 0.0 and both.presence_weight > 0.0
    fresh = _with_presence(1)
    alone = rejection_report(score_only, *fresh[:3])
    helped = rejection_report(both, *fresh)
    assert helped["negatives_flagged"] > alone["negatives_flagged"] + 30.0
    assert helped["R@1@0.3_lost"] <= 5.0
    # A question about no object is judged on its score alone; presence 0 is floored, never -inf.
    assert both.probability(0.3, None) == both.probability(0.3, float("nan"))
    assert 0.0 <= both.probability(0.3, 0.0) < both.probability(0.3, 1.0)
    # Stored and read back; a record from before presence loads with weight 0.
    assert Calibration.from_dict(both.to_dict()) == both
    old = {k: v for k, v in both.to_dict().items() if k != "presence_weight"}
    assert Calibration.from_dict(old).presence_weight == 0.0
    with pytest.raises(InvalidCalibration):
        Calibration.from_dict({**both.to_dict(), "presence_weight": float("inf")})


def test_presence_is_kept_only_where_cross_fitting_says_it_helps():
    from app.answering.rejection import TopScores, choose_evidence

    def scores(seed: int, informative: bool) -> TopScores:
        pos, hits, neg, pos_p, neg_p = _with_presence(seed)
        if not informative:  # every question names an object, and absent ones look as present as the rest
            rng = np.random.default_rng(seed + 7)
            pos_p, neg_p = rng.beta(8, 2, len(pos)), rng.beta(8, 2, len(neg))
        clips_a = [f"c{i % 20}" for i in range(len(pos))]
        clips_n = [f"c{i % 20}" for i in range(len(neg))]
        return TopScores(pos, hits, neg, clips_a, clips_n, pos_p, neg_p)

    kept, report, candidates = choose_evidence(scores(3, informative=True))
    assert kept.answerable_presence is not None and report is candidates["score+presence"]
    assert candidates["score+presence"]["negatives_flagged"] > candidates["score"]["negatives_flagged"]
    for seed in range(3, 23):  # a presence that carries nothing is dropped, whatever chance does
        dropped, report, candidates = choose_evidence(scores(seed, informative=False))
        assert dropped.answerable_presence is None and report is candidates["score"], (seed, candidates)


def test_naming_an_object_is_an_explicit_input_not_a_present_object():
    """Negatives are object questions; many answerable questions name no object. Before, a question naming no
    object counted as one whose object is surely present (log 1 = 0): the confound that let a calibration
    learn "no object named" = "good". Now it has its own intercept, and presence moves only object questions."""
    rng = np.random.default_rng(5)
    n = 300
    pos = rng.normal(0.5, 0.1, n)
    hits = rng.random(n) < 0.5
    neg = rng.normal(0.45, 0.1, n)
    pos_p = np.where(np.arange(n) % 2 == 0, np.nan, rng.beta(8, 2, n))  # half the questions name no object
    neg_p = rng.beta(2, 8, n)
    cal = fit_calibration(pos, hits, neg, answerable_presence=pos_p, negative_presence=neg_p)
    assert cal.object_bias != 0.0 and cal.presence_weight > 0.0
    no_object = cal.probability(0.5, None)
    # a question about no object sits between absent and present objects, not with the surely present ones
    assert cal.probability(0.5, 0.01) < no_object < cal.probability(0.5, 1.0)
    assert Calibration.from_dict(cal.to_dict()) == cal
    old = {k: v for k, v in cal.to_dict().items() if k != "object_bias"}
    assert Calibration.from_dict(old).object_bias == 0.0


def test_calibrations_are_cross_fitted_over_videos_never_splitting_one():
    from app.answering.rejection import TopScores, cross_fitted_report

    pos, hits, neg, pos_p, neg_p = _with_presence(2)
    seen = []

    class Spy(TopScores):
        def subset(self, videos):
            seen.append(set(videos))
            return super().subset(videos)

    videos_a = [f"v{i % 6}" for i in range(len(pos))]
    videos_n = [f"v{(i + 3) % 6}" for i in range(len(neg))]
    cross_fitted_report(Spy(pos, hits, neg, videos_a, videos_n))
    everyone = {f"v{i}" for i in range(6)}
    fits, tests = seen[0::2], seen[1::2]
    assert len(fits) == 2 and all(f | t == everyone and not f & t for f, t in zip(fits, tests))


def _with_clip(seed: int, n: int = 300, informative: bool = True):
    """A trained model's scores that barely tell negatives apart (it places its answer somewhere, confidently,
    whatever is asked), beside CLIP's best window score in the clip, which does when ``informative``."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.5, 0.1, n)
    hits = rng.random(n) < 0.5
    neg = rng.normal(0.48, 0.1, n)
    pos_c = rng.normal(0.40, 0.03, n)
    neg_c = rng.normal(0.32 if informative else 0.40, 0.03, n)
    return pos, hits, neg, pos_c, neg_c


def test_clips_zero_shot_score_is_a_further_input_for_a_trained_models_confidence():
    pos, hits, neg, pos_c, neg_c = _with_clip(0)
    score_only = fit_calibration(pos, hits, neg)
    both = fit_calibration(pos, hits, neg, answerable_clip=pos_c, negative_clip=neg_c)
    assert score_only.clip_weight == 0.0 and both.clip_weight > 0.0
    fresh = _with_clip(1)
    alone = rejection_report(score_only, *fresh[:3])
    helped = rejection_report(both, *fresh[:3], answerable_clip=fresh[3], negative_clip=fresh[4])
    assert helped["negatives_flagged"] > alone["negatives_flagged"] + 30.0
    assert helped["R@1@0.3_lost"] <= 5.0
    assert both.probability(0.5, None, 0.30) < both.probability(0.5, None, 0.42)
    assert both.probability(0.5, None, None) == both.probability(0.5, None, float("nan"))  # not measured: term 0
    # Stored and read back; a record from before it loads with weight 0; a non-finite weight is refused.
    assert Calibration.from_dict(both.to_dict()) == both
    old = {k: v for k, v in both.to_dict().items() if k != "clip_weight"}
    assert Calibration.from_dict(old).clip_weight == 0.0
    with pytest.raises(InvalidCalibration):
        Calibration.from_dict({**both.to_dict(), "clip_weight": float("nan")})
    with pytest.raises(ValueError):
        fit_calibration(pos, hits, neg, answerable_clip=pos_c[:-1], negative_clip=neg_c)


def test_clips_score_is_kept_only_where_cross_fitting_says_it_helps():
    from app.answering.rejection import TopScores, choose_evidence

    def scores(seed: int, informative: bool) -> TopScores:
        pos, hits, neg, pos_c, neg_c = _with_clip(seed, informative=informative)
        clips_a = [f"c{i % 20}" for i in range(len(pos))]
        clips_n = [f"c{i % 20}" for i in range(len(neg))]
        return TopScores(pos, hits, neg, clips_a, clips_n, answerable_clip=pos_c, negative_clip=neg_c)

    kept, report, candidates = choose_evidence(scores(3, informative=True))
    assert set(candidates) == {"score", "score+clip"}  # presence was not measured
    assert kept.answerable_clip is not None and report is candidates["score+clip"]
    for seed in range(3, 23):  # a CLIP score that carries nothing is dropped, whatever chance does
        dropped, report, candidates = choose_evidence(scores(seed, informative=False))
        assert dropped.answerable_clip is None and report is candidates["score"], (seed, candidates)


def test_negatives_are_other_videos_questions_about_what_the_clip_never_names():
    """Other videos' questions are negatives of a clip only when none of the clip's own questions names their
    object or place (in a house, another video's "where did I put the keys" is often answerable here too), and
    a question naming neither is never one; a caller that knows the truth passes its own test."""
    from app.answering.rejection import negative_queries
    from training.nlq import parse_nlq
    from training.nlq_writer import NLQFileBuilder

    builder = NLQFileBuilder()
    asked = {
        "kitchen": ["where did I put the keys?", "where is the mug?"],
        "garden": ["where did I put the keys?", "where is the shovel?", "what did I do?"],
        "garage": ["where did I leave the drill?", "where is the ladder?"],
    }
    for video, questions in asked.items():
        builder.add_clip(f"{video}-clip", video, 0.0, 60.0, split="val")
        for i, text in enumerate(questions):
            builder.add_query(f"{video}-clip", text, 10.0 * i, 10.0 * i + 4.0, template="test")
    dataset = parse_nlq(builder.to_dict())
    negatives = negative_queries(dataset, per_clip=10)
    by_clip: dict[str, set[str]] = {}
    for q in negatives:
        by_clip.setdefault(q.clip_uid, set()).add(q.text)
        assert q.start is None and q.end is None and q.video_uid == q.clip_uid.split("-")[0]
    assert by_clip["kitchen-clip"] == {"where is the shovel?", "where did I leave the drill?", "where is the ladder?"}
    assert by_clip["garden-clip"] == {"where is the mug?", "where did I leave the drill?", "where is the ladder?"}
    assert "what did I do?" not in set().union(*by_clip.values())  # names nothing: absent from nowhere
    everything = negative_queries(dataset, per_clip=10, keep=lambda q, clip_uid: True)
    kitchen = {q.text for q in everything if q.clip_uid == "kitchen-clip"}
    assert kitchen >= {"where did I put the keys?", "what did I do?"}


def test_confidence_in_words_never_calls_a_moment_under_even_odds_likely():
    from app.answering.results import confidence_text, confidence_words

    line = 0.19  # small models: the good-match line sits far under 50 %
    assert confidence_words(0.62, line) == "likely"
    assert confidence_words(0.21, line) == "possible"  # over the line, yet wrong more often than right
    assert confidence_words(0.12, line) == "unsure"
    assert confidence_words(0.05, line) == "probably not in these videos"
    assert confidence_words(0.40, 0.6) == "unsure"  # a strict line: under it is never a match, whatever the odds
    assert confidence_words(0.5, None) is None and confidence_text(None, line) == ""
    assert confidence_text(0.62, line) == "62 % · likely"


def test_a_percentage_next_to_the_line_shows_which_side_it_is_on():
    from app.answering.results import confidence_text, percent

    line = 0.1878
    assert percent(0.1851, line) == "18.5 %" and percent(line, 0.1851) == "18.8 %"  # both read "19 %" rounded
    assert confidence_text(0.1851, line) == "18.5 % · unsure"
    assert confidence_text(0.1904, line) == "19.0 % · possible"
    assert percent(0.31, line) == "31 %" and percent(0.2, None) == "20 %"
