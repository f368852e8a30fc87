"""NaQ: narrations inside training clips become narration queries in an NLQ-format file; jittering."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nlq_samples import write

from training.naq import (
    DROP_BAD_WINDOW,
    DROP_CROSSES,
    DROP_EMPTY_TEXT,
    DROP_NO_CLIP,
    DROP_OUTSIDE,
    NaQConfig,
    NaQError,
    build_naq,
    build_naq_files,
    egovlp_windows,
    jitter_bins,
    jitter_window,
    stream_gaps,
)
from training.narrations import Narration
from training.nlq import NARRATION_TEMPLATE, AnnotationFileError, clips_from_data, load_nlq, parse_nlq
from training.nlq_writer import NLQFileBuilder


def _nlq_train() -> dict:
    b = NLQFileBuilder(version="v2")
    b.add_clip("c1", "v1", 100.0, 200.0)
    b.add_clip("c2", "v1", 300.0, 400.0)
    b.add_clip("c3", "v2", 0.0, 50.0)
    b.add_query(
        "c1", "where did I put the cup?", 10.0, 12.0, template="Objects: Where did I put X?", annotation_uid="a1"
    )
    b.add_query("c1", "no text later", 20.0, 21.0, annotation_uid="a1")
    b.add_query("c3", "how many plates?", 1.0, 3.0, annotation_uid="a3")
    return b.to_dict()


def _extra_clips() -> dict:  # VQ-style: clips only (one repeats an NLQ clip, two overlap)
    return {
        "version": "v2",
        "videos": [
            {
                "video_uid": "v3",
                "split": "train",
                "clips": [
                    {
                        "clip_uid": "e1",
                        "video_start_sec": 10.0,
                        "video_end_sec": 110.0,
                        "annotations": [{"query_sets": {}}],
                    },
                    {"clip_uid": "e2", "video_start_sec": 0.0, "video_end_sec": 60.0, "annotations": []},
                ],
            },
            {
                "video_uid": "v1",
                "split": "train",
                "clips": [{"clip_uid": "c1", "video_start_sec": 100.0, "video_end_sec": 200.0, "annotations": []}],
            },
        ],
    }


def _extra_clip_map():
    return clips_from_data(_extra_clips(), "vq_train.json")


def _egoclip_narrations() -> list[Narration]:
    def n(video, t, text, window):
        return Narration(video, t, text, "narration_pass_1", window)

    return [
        n("v1", 150.0, "#C C picks the cup.", (149.5, 150.5)),  # kept in c1 at 49.5..50.5
        n("v1", 100.2, "#C C opens the drawer", (100.0, 100.5)),  # kept: touches c1's start
        n("v1", 399.8, "#O man X closes the door", (399.5, 400.0)),  # kept: touches c2's end
        n("v1", 200.0, "#C C walks out", (199.5, 200.5)),  # crosses c1's end
        n("v1", 250.0, "#C C walks in the corridor", (249.5, 250.5)),  # between clips
        n("v9", 5.0, "#C C waves", (4.5, 5.5)),  # video without training clips
        n("v1", 120.0, "#unsure", (119.5, 120.5)),  # nothing left to ask
        n("v1", 160.0, "#C C drops a spoon", (160.5, 159.5)),  # reversed window
        n("v3", 20.5, "#C C holds a knife", (20.0, 21.0)),  # inside both extra clips e1 and e2
    ]


def test_narrations_inside_training_clips_become_narration_queries(tmp_path):
    data, report = build_naq([("nlq_train.json", _nlq_train())], _egoclip_narrations(), _extra_clip_map())
    assert report.narrations_read == 9 and report.kept == 4
    assert dict(report.dropped) == {
        DROP_CROSSES: 1,
        DROP_OUTSIDE: 1,
        DROP_NO_CLIP: 1,
        DROP_EMPTY_TEXT: 1,
        DROP_BAD_WINDOW: 1,
    }
    assert report.kept + sum(report.dropped.values()) == report.narrations_read
    assert report.queries_written == 5 and report.clips_with_narrations == 4  # c1, c2, e1, e2
    assert report.training_clips == 5 and report.windows == {"given": 4}
    assert report.nlq_queries_kept == 3

    path = write(tmp_path / "naq.json", data)
    ds = load_nlq(path)
    # NLQ queries keep their keys, windows and templates.
    assert ds.query(("c1", "a1", 0)).end == 12.0 and not ds.query(("c1", "a1", 0)).is_narration
    assert ds.query(("c3", "a3", 0)).text == "how many plates?"
    # One narration annotation per clip, sorted by time, clip-relative, normalised text, marked by template.
    c1 = [q for q in ds if q.annotation_uid == "naq-c1"]
    assert [(q.query_idx, q.text, q.start, q.end) for q in c1] == [
        (0, "opens the drawer", 0.0, 0.5),
        (1, "picks the cup", 49.5, 50.5),
    ]
    assert all(q.is_narration and q.template == NARRATION_TEMPLATE for q in c1)
    (c2,) = [q for q in ds if q.annotation_uid == "naq-c2"]
    assert (c2.text, c2.start, c2.end) == ("man closes the door", 99.5, 100.0)
    e1 = ds.query(("e1", "naq-e1", 0))
    e2 = ds.query(("e2", "naq-e2", 0))
    assert (e1.start, e1.end, e2.start, e2.end) == (10.0, 11.0, 20.0, 21.0)
    assert ds.clips["e1"].video_uid == "v3" and ds.clips["e1"].duration == 100.0
    raw_q = data["videos"][0]["clips"][0]["annotations"][-1]["language_queries"][1]
    assert raw_q["narration_text"] == "#C C picks the cup." and raw_q["video_start_sec"] == 149.5
    # Only narrations are jittered later: the split is by template.
    assert len(ds.narrations_only()) == 5 and len(ds.without_narrations()) == 3


def test_egovlp_windows_follow_the_gap_rule():
    ns = (
        [Narration("A", t, "x", "narration_pass_1") for t in (0.0, 2.0, 4.0)]  # beta 2
        + [Narration("B", t, "x", "narration_pass_1") for t in (12.0, 0.0, 8.0, 4.0)]  # beta 4 (unsorted)
        + [Narration("B", 1.0, "x", "narration_pass_2")]
    )  # a single narration: beta = alpha
    assert stream_gaps(ns) == {("A", "narration_pass_1"): 2.0, ("B", "narration_pass_1"): 4.0}
    windows, alpha = egovlp_windows(ns)
    assert alpha == 3.0
    assert windows[1] == pytest.approx((2.0 - 1 / 3, 2.0 + 1 / 3))  # half = beta / (2 alpha) = 2/6
    assert windows[3] == pytest.approx((12.0 - 2 / 3, 12.0 + 2 / 3))
    assert windows[-1] == pytest.approx((0.5, 1.5))
    fixed, alpha = egovlp_windows(ns, alpha=4.0)
    assert alpha == 4.0 and fixed[1] == pytest.approx((1.75, 2.25))


def test_narration_json_end_to_end_uses_egovlp_windows(tmp_path):
    ann = write(tmp_path / "nlq_train.json", _nlq_train())
    narr = {
        "v1": {
            "narration_pass_1": {
                "narrations": [
                    {
                        "timestamp_sec": t,
                        "timestamp_frame": int(t * 30),
                        "narration_text": f"#C C step {i}",
                        "annotation_uid": "n",
                    }
                    for i, t in enumerate([110.0, 112.0, 114.0, 199.9])
                ]
            }
        },
        "v2": {"status": "redacted"},
    }
    narr_path = tmp_path / "narration.json"
    narr_path.write_text(json.dumps(narr))
    out = tmp_path / "out" / "naq.json"
    report = build_naq_files([ann], narr_path, out)
    assert report.unreadable == {"video without narration passes": 1}
    # beta = (199.9 - 110) / 3 = 29.97 = alpha, so each window is t +- 0.5 s; 199.9 + 0.5 crosses c1's end.
    assert report.alpha == pytest.approx(29.966666, abs=1e-4)
    assert report.kept == 3 and report.dropped[DROP_CROSSES] == 1 and report.windows == {"egovlp": 3}
    ds = load_nlq(out)
    assert [(q.text, q.start, q.end) for q in ds.narrations_only()] == [
        ("step 0", pytest.approx(9.5), pytest.approx(10.5)),
        ("step 1", pytest.approx(11.5), pytest.approx(12.5)),
        ("step 2", pytest.approx(13.5), pytest.approx(14.5)),
    ]


def test_nlq_fraction_zero_keeps_only_narrations_and_all_clips_still_receive_them():
    data, report = build_naq(
        [("nlq_train.json", _nlq_train())], _egoclip_narrations(), config=NaQConfig(nlq_fraction=0.0)
    )
    ds = parse_nlq(data)
    assert all(q.is_narration for q in ds) and len(ds) == 3
    assert set(ds.clips) == {"c1", "c2"}  # c3 had NLQ queries only
    assert report.nlq_clips == 2 and report.nlq_clips_kept == 0 and report.nlq_queries_kept == 0


def test_merging_several_nlq_files_and_refusing_naq_twice():
    other = NLQFileBuilder()
    other.add_clip("c1", "v1", 100.0, 200.0)
    other.add_query("c1", "second file", 5.0, 6.0, annotation_uid="b1")
    data, report = build_naq([("a.json", _nlq_train()), ("b.json", other.to_dict())], _egoclip_narrations())
    ds = parse_nlq(data)
    assert ds.query(("c1", "b1", 0)).text == "second file" and ds.query(("c1", "a1", 1)) is not None
    with pytest.raises(NaQError, match="already contains NaQ"):
        build_naq([("naq.json", data)], _egoclip_narrations())
    clash = NLQFileBuilder()
    clash.add_clip("c1", "v1", 100.0, 250.0)
    with pytest.raises(AnnotationFileError, match="different time range"):
        build_naq([("a.json", _nlq_train()), ("b.json", clash.to_dict())], _egoclip_narrations())


# ------------------------------------------------------------------------------------------ jittering


def test_jitter_with_factor_one_is_the_identity():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 100, 1000)
    e = s + rng.uniform(0, 10, 1000)
    js, je = jitter_window(s, e, 120.0, rng, factor=1.0)
    assert np.array_equal(js, s) and np.array_equal(je, e)
    bs, be = jitter_bins(np.array([3, 10]), np.array([5, 10]), 20, rng, factor=1.0)
    assert bs.tolist() == [3, 10] and be.tolist() == [5, 10]


def test_jittered_windows_grow_contain_the_original_and_shift_within_bounds():
    rng = np.random.default_rng(1)
    n, limit, factor = 20000, 100.0, 2.5
    s = rng.uniform(0, 90, n)
    e = s + rng.uniform(0.1, 10, n)
    js, je = jitter_window(s, e, limit, rng, factor=factor)
    w, w2 = e - s, je - js
    assert np.all(js >= 0) and np.all(je <= limit)
    assert np.all(js <= s + 1e-9) and np.all(je >= e - 1e-9)  # always contains the truth
    assert np.all(w2 <= factor * w + 1e-9)
    unclamped = (js > 0) & (je < limit)
    assert unclamped.mean() > 0.9
    ratio = w2[unclamped] / w[unclamped]
    assert np.all(ratio >= 1 - 1e-9)  # never shrinks unless clamped
    assert ratio.mean() == pytest.approx((1 + factor) / 2, abs=0.03)  # w' = w * U(1, F)
    shift = (js + je) / 2 - (s + e) / 2
    bound = (w2 - w) / 2
    assert np.all(np.abs(shift[unclamped]) <= bound[unclamped] + 1e-9)
    assert abs(shift[unclamped].mean()) < 0.05 and shift[unclamped].std() > 0.3  # symmetric, really moves
    ns, ne = jitter_window(s, e, limit, np.random.default_rng(2), factor=factor, shift=False)
    keep = (ns > 0) & (ne < limit)
    assert np.allclose(((ns + ne) / 2)[keep], ((s + e) / 2)[keep])


def test_jitter_clamps_to_the_sequence_and_works_on_scalars_and_bins():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = jitter_window(0.0, 4.0, 5.0, rng, factor=5.0)
        assert 0.0 <= a <= 0.0 + 1e-12 and 4.0 <= b <= 5.0
        assert isinstance(a, float)
    s = rng.integers(0, 60, 5000)
    e = s + rng.integers(0, 5, 5000)
    bs, be = jitter_bins(s, e, 64, rng, factor=3.0)
    assert bs.dtype == np.int64 and np.all(bs <= s) and np.all(be >= e)
    assert np.all(be <= 63) and np.all(bs >= 0)
    assert np.mean((be - bs) > (e - s)) > 0.5
    with pytest.raises(ValueError):
        jitter_window(0.0, 1.0, 5.0, rng, factor=0.5)
