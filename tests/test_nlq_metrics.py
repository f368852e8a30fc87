"""NLQ metrics: equal to the official Ego4D algorithm on complete submissions, stricter on partial ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from nlq_samples import gt_windows, make_nlq, make_predictions, write

from training.metrics import (
    METRIC_NAMES,
    NO_TEMPLATE,
    EvaluationError,
    evaluate,
    score_windows,
    temporal_iou_array,
    windows_array,
)
from training.nlq import parse_nlq
from training.nlq_writer import NLQFileBuilder
from training.submission import (
    Prediction,
    SubmissionError,
    load_submission,
    parse_submission,
    submission_dict,
    write_submission,
)


# ------------------------------------------------------------------------------------------ the oracle
def official_oracle(ground_truth: dict, predictions: list[dict], thresholds=(0.3, 0.5), top_k=(1, 5)):
    """An independent re-implementation of the official evaluator's algorithm (evaluate_ego4d_nlq.py).

    Facts it follows: ground truth is looked up by (clip_uid, annotation_uid) then by query_idx in
    language_queries; per prediction, IoU = inter / union with union = max end - min start (0/0 is NaN);
    a hit at (k, theta) is any of the first k IoUs > theta; recalls and the rank-1 mIoU are averaged over
    the PREDICTIONS received. Returns percentages keyed like ours.
    """
    gt = {}
    for video in ground_truth["videos"]:
        for clip in video["clips"]:
            for ann in clip["annotations"]:
                gt[(clip["clip_uid"], ann["annotation_uid"])] = ann
    hits = {(k, t): 0 for t in thresholds for k in top_k}
    rank1 = []
    for p in predictions:
        lq = gt[(p["clip_uid"], p["annotation_uid"])]["language_queries"][p["query_idx"]]
        gs, ge = lq["clip_start_sec"], lq["clip_end_sec"]
        ious = []
        for s, e in p["predicted_times"]:
            inter = max(0.0, min(e, ge) - max(s, gs))
            union = max(0.0, max(e, ge) - min(s, gs))
            ious.append(inter / union if union != 0 else math.nan)
        rank1.append(ious[0])
        for t in thresholds:
            for k in top_k:
                hits[(k, t)] += any(iou > t for iou in ious[:k])
    n = len(predictions)
    out = {f"R{k}@{t}": 100.0 * hits[(k, t)] / n for t in thresholds for k in top_k}
    out["mIoU"] = 100.0 * sum(rank1) / n
    return out


def _ours(data, submission):
    return evaluate(parse_nlq(data, "gt"), parse_submission(submission, "pred")).to_dict()


@pytest.mark.parametrize("version,seed", [("v1", 0), ("v1", 1), ("v2", 2), ("v2", 3), ("v2", 4)])
def test_complete_submissions_match_the_official_algorithm(version, seed):
    data = make_nlq(seed=seed, version=version, videos=4, clips_per_video=3, queries_per_annotation=6)
    sub = make_predictions(data, seed=100 + seed, max_windows=7)
    ours, oracle = _ours(data, sub), official_oracle(data, sub["results"])
    assert ours["num_queries"] == ours["num_predicted"] == len(sub["results"]) == 144
    for name in METRIC_NAMES + ("mIoU",):
        assert ours[name] == pytest.approx(oracle[name], abs=1e-9), name
    # The generated data really exercises the metric: neither all hits nor all misses.
    assert 0 < ours["R1@0.5"] < ours["R5@0.3"] < 100


def test_integer_grid_ties_fall_on_the_same_side_as_the_official_algorithm():
    # Integer windows give many IoUs of exactly 0.3 and 0.5; a hit needs IoU strictly above.
    rng = np.random.default_rng(7)
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, 100)
    preds = []
    ties = 0
    for i in range(400):
        gs = int(rng.integers(0, 20))
        ge = gs + int(rng.integers(1, 11))
        key = b.add_query("c", f"q{i}", gs, ge)
        wins = []
        for _ in range(int(rng.integers(1, 6))):
            ps = int(rng.integers(0, 30))
            wins.append([ps, ps + int(rng.integers(1, 21))])
            ties += temporal_iou_array(np.array(wins[-1], float), np.array([gs, ge], float)) in (0.3, 0.5)
        preds.append({"clip_uid": key[0], "annotation_uid": key[1], "query_idx": key[2], "predicted_times": wins})
    assert ties > 20
    data = b.to_dict()
    sub = {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": preds}
    ours, oracle = _ours(data, sub), official_oracle(data, preds)
    for name in METRIC_NAMES + ("mIoU",):
        assert ours[name] == pytest.approx(oracle[name], abs=1e-9), name


@pytest.mark.parametrize("fraction", [0.3, 0.8])
def test_partial_submissions_are_divided_by_ground_truth(fraction):
    data = make_nlq(seed=5, videos=4, clips_per_video=3, queries_per_annotation=6)
    sub = make_predictions(data, seed=11, fraction=fraction)
    n_gt, n_pred = len(gt_windows(data)), len(sub["results"])
    assert 0 < n_pred < n_gt
    ours, oracle = _ours(data, sub), official_oracle(data, sub["results"])
    assert ours["num_queries"] == n_gt and ours["num_predicted"] == n_pred
    for name in METRIC_NAMES + ("mIoU",):
        assert ours[name] == pytest.approx(oracle[name] * n_pred / n_gt, abs=1e-9), name
        if oracle[name] > 0:
            assert ours[name] < oracle[name]


def _one_query(gt, windows, clip_len=100.0):
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, clip_len)
    key = b.add_query("c", "where?", *gt)
    preds = [] if windows is None else [Prediction.for_query(key, windows)]
    return evaluate(parse_nlq(b.to_dict()), preds)


def test_iou_exactly_at_the_threshold_is_not_a_hit():
    at_half = _one_query((0, 10), [(0, 5)])  # IoU 5/10 == 0.5 exactly
    assert at_half["R1@0.5"] == 0 and at_half["R1@0.3"] == 100 and at_half["mIoU"] == 50
    at_03 = _one_query((0, 10), [(0, 3)])  # 3/10 == 0.3 exactly
    assert at_03["R1@0.3"] == 0
    just_above = _one_query((0, 10), [(0, 5.01)])
    assert just_above["R1@0.5"] == 100
    # Overlap 2, union 4 (not the sum of lengths): IoU 0.5, again not a hit at 0.5.
    assert _one_query((0, 3), [(1, 4)])["R1@0.5"] == 0
    assert _one_query((0, 3), [(1, 4)])["mIoU"] == 50


def test_touching_and_degenerate_windows_score_zero():
    touching = _one_query((10, 20), [(20, 30), (0, 10)])
    assert touching["R5@0.3"] == 0 and touching["mIoU"] == 0
    # Zero-length truth and prediction on the same instant: union 0 -> IoU 0 (official: NaN, no hit).
    point = _one_query((10, 10), [(10, 10)])
    assert point["R5@0.3"] == 0 and point["mIoU"] == 0


def test_answers_past_the_clip_end_are_evaluated_raw():
    exact = _one_query((98, 103.5), [(98, 103.5)])
    assert exact["R1@0.5"] == 100
    clamped = _one_query((98, 103.5), [(98, 100)])  # IoU 2 / 5.5 = 0.36
    assert clamped["R1@0.3"] == 100 and clamped["R1@0.5"] == 0


def test_only_the_first_five_windows_count_for_r5():
    far = [(50 + 5 * i, 52 + 5 * i) for i in range(5)]
    sixth = _one_query((0, 10), far + [(0, 10)])
    assert sixth["R5@0.3"] == 0
    fifth = _one_query((0, 10), far[:4] + [(0, 10)])
    assert fifth["R5@0.3"] == 100 and fifth["R1@0.3"] == 0
    fewer = _one_query((0, 10), [(40, 50), (1, 9)])  # two windows: R@5 sees both
    assert fewer["R5@0.5"] == 100 and fewer["R1@0.5"] == 0


def test_missing_and_empty_predictions_are_misses():
    assert _one_query((0, 10), None)["num_predicted"] == 0
    none = _one_query((0, 10), None)
    assert none["R5@0.3"] == 0 and none["num_queries"] == 1
    empty = _one_query((0, 10), [])
    assert empty["R5@0.3"] == 0 and empty["num_predicted"] == 1


def test_empty_results_score_zero_not_an_error():
    data = make_nlq(seed=1)
    scores = _ours(data, {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": []})
    assert scores["num_predicted"] == 0 and scores["num_queries"] == len(gt_windows(data))
    assert all(scores[m] == 0 for m in METRIC_NAMES)


def test_per_template_names_null_and_divides_by_that_templates_queries():
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, 100)
    k1 = b.add_query("c", "a", 0, 10, template="Objects: Where did I put X?")
    k2 = b.add_query("c", "b", 20, 30, template="Objects: Where did I put X?")
    k3 = b.add_query("c", "c", 40, 50, template=None)
    b.add_query("c", "d", 60, 70, template=None)  # no prediction: a miss for its template
    preds = [
        Prediction.for_query(k1, [(0, 10)]),
        Prediction.for_query(k2, [(80, 90)]),
        Prediction.for_query(k3, [(40, 49)]),
    ]
    scores = evaluate(parse_nlq(b.to_dict()), preds)
    per = scores.per_template
    assert set(per) == {"Objects: Where did I put X?", NO_TEMPLATE}
    assert per["Objects: Where did I put X?"]["num_queries"] == 2
    assert per["Objects: Where did I put X?"]["R1@0.3"] == 50
    assert per[NO_TEMPLATE]["R1@0.3"] == 50
    assert scores["R1@0.3"] == 50 and scores["num_predicted"] == 3
    assert NO_TEMPLATE in scores.table()


def test_mean_recalls_and_miou():
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, 100)
    k1 = b.add_query("c", "a", 0, 10)
    k2 = b.add_query("c", "b", 20, 30)
    preds = [
        Prediction.for_query(k1, [(0, 4), (0, 10)]),  # rank 1 IoU 0.4, rank 2 exact
        Prediction.for_query(k2, [(20, 30)]),
    ]
    s = evaluate(parse_nlq(b.to_dict()), preds)
    assert s.recall == {"R1@0.3": 100, "R5@0.3": 100, "R1@0.5": 50, "R5@0.5": 100}
    assert s.mean_r1 == 75 and s.mean_r5 == 100
    assert s.miou == pytest.approx(70)


def test_duplicate_entries_are_refused_never_double_counted(tmp_path):
    data = make_nlq(seed=2)
    sub = make_predictions(data, seed=3)
    sub["results"].append(dict(sub["results"][0]))
    with pytest.raises(SubmissionError, match="each query may appear once"):
        parse_submission(sub, "dup.json")
    preds = parse_submission(make_predictions(data, seed=3), "ok.json")
    with pytest.raises(SubmissionError, match="more than one prediction"):
        evaluate(parse_nlq(data), preds + preds[:1])
    with pytest.raises(SubmissionError):
        write_submission(tmp_path / "x.json", preds + preds[:1])


def test_predictions_for_unknown_queries_are_an_error_and_textless_ones_ignored():
    data = make_nlq(seed=3)
    first_clip = data["videos"][0]["clips"][0]
    ann = first_clip["annotations"][0]
    del ann["language_queries"][1]["query"]  # a query nobody can ask: loaded as skipped
    ds = parse_nlq(data)
    assert ds.skipped["no query text"] == 1
    ok = Prediction(first_clip["clip_uid"], ann["annotation_uid"], 0, ((0.0, 1.0),))
    textless = Prediction(first_clip["clip_uid"], ann["annotation_uid"], 1, ((0.0, 1.0),))
    scores = evaluate(ds, [ok, textless])
    assert scores.num_ignored == 1 and scores.num_predicted == 1
    for bad in (
        Prediction("nope", ann["annotation_uid"], 0, ()),
        Prediction(first_clip["clip_uid"], ann["annotation_uid"], 99, ()),
    ):
        with pytest.raises(SubmissionError, match="does not contain"):
            evaluate(ds, [ok, bad])


def test_unannotated_files_cannot_be_evaluated():
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, 100)
    b.add_query("c", "a", 0, 10)
    with pytest.raises(EvaluationError, match="no ground-truth"):
        evaluate(parse_nlq(b.to_dict(with_answers=False), "test.json"), [])


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level should be an object"),
        ('{"version": "1.0"}', "no 'results' list"),
        ('{"challenge": "ego4d_vq2d_challenge", "results": []}', "'challenge' is"),
        ('{"results": [3]}', r"results\[0\] should be an object"),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": "0", "predicted_times": []}]}',
            "query_idx",
        ),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": -1, "predicted_times": []}]}',
            "query_idx",
        ),
        ('{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0}]}', "predicted_times"),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[1]]}]}',
            r"\[start, end\] pair",
        ),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[1, "x"]]}]}',
            "not a finite number",
        ),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[1, NaN]]}]}',
            "not a finite number",
        ),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[true, 2]]}]}',
            "not a finite number",
        ),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[5, 2]]}]}',
            "after it ends",
        ),
        ('{"results": [{"annotation_uid": "a", "query_idx": 0, "predicted_times": []}]}', "clip_uid"),
    ],
)
def test_bad_submissions_give_one_clear_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(SubmissionError, match=match) as err:
        load_submission(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_submission_file(tmp_path):
    with pytest.raises(SubmissionError, match="does not exist"):
        load_submission(tmp_path / "nope.json")


def test_submission_round_trip_keeps_five_windows_best_first(tmp_path):
    preds = [Prediction("c", "a", 0, tuple((float(i), float(i) + 1) for i in range(7))), Prediction("c", "a", 1, ())]
    path = write_submission(tmp_path / "out.json", preds)
    raw = json.loads(path.read_text())
    assert raw["version"] == "1.0" and raw["challenge"] == "ego4d_nlq_challenge"
    back = load_submission(path)
    assert [p.key for p in back] == [("c", "a", 0), ("c", "a", 1)]
    assert back[0].windows == tuple((float(i), float(i) + 1) for i in range(5))
    assert submission_dict(preds, max_windows=7)["results"][0]["predicted_times"][6] == [6.0, 7.0]
    # A float query_idx such as 3.0 (some writers produce it) reads as 3.
    assert (
        parse_submission(
            {"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 3.0, "predicted_times": []}]}
        )[0].query_idx
        == 3
    )


def test_fast_path_equals_file_path_and_handles_thousands():
    data = make_nlq(seed=9, videos=10, clips_per_video=5, annotations_per_clip=4, queries_per_annotation=25)
    sub = make_predictions(data, seed=9, fraction=0.9)
    ds = parse_nlq(data)
    queries = ds.evaluation_queries()
    assert len(queries) == 5000
    by_key = {(r["clip_uid"], r["annotation_uid"], r["query_idx"]): r["predicted_times"] for r in sub["results"]}
    pred = windows_array([by_key.get(q.key) for q in queries])
    gt = np.array([(q.start, q.end) for q in queries])
    fast = score_windows(pred, gt, [q.template for q in queries]).to_dict()
    slow = evaluate(ds, parse_submission(sub)).to_dict()
    assert fast == slow
    assert fast["num_predicted"] == len(sub["results"]) < 5000


def test_windows_array_accepts_window_objects_and_pads_with_nan():
    from models.windows import Window

    arr = windows_array([[Window(1, 2, 0.9)], None, [(3, 4)] * 7], k=5)
    assert arr.shape == (3, 5, 2)
    assert arr[0, 0].tolist() == [1, 2] and np.isnan(arr[0, 1]).all() and np.isnan(arr[1]).all()
    assert not np.isnan(arr[2]).any()
