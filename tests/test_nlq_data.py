"""Reading and writing Ego4D NLQ annotation files, and picking few-shot subsets."""

from __future__ import annotations

import json

import pytest
from nlq_samples import make_nlq, write

from training.nlq import (
    EMPTY_WINDOW_S,
    NARRATION_TEMPLATE,
    AnnotationFileError,
    few_shot_clips,
    few_shot_subset,
    load_nlq,
    parse_nlq,
    read_clips,
)
from training.nlq_writer import NLQFileBuilder


def test_v2_file_reads_into_clips_and_queries(tmp_path):
    path = write(
        tmp_path / "nlq_val.json",
        make_nlq(seed=0, version="v2", videos=3, clips_per_video=2, annotations_per_clip=2, queries_per_annotation=4),
    )
    ds = load_nlq(path)
    assert ds.version == "v2" and ds.source == str(path)
    assert len(ds.clips) == 6 and len(ds) == 48
    clip = ds.clips["clip0-01-1"]
    assert clip.video_uid == "vid0-01" and clip.video_start_sec == 570.0 and clip.duration == 480.0
    assert clip.split == "val"
    q = ds.queries[5]
    assert q.key == ("clip0-00-0", "ann-clip0-00-0-1", 1)  # query_idx counts within its annotation
    assert q.video_uid == "vid0-00" and q.text.startswith("where is thing")
    assert ds.query(q.key) is q
    assert any(q.template is None for q in ds) and any(q.template for q in ds)
    assert not any(q.is_narration for q in ds)
    assert ds.is_annotated
    by_clip = ds.queries_by_clip()
    assert sum(len(v) for v in by_clip.values()) == 48 and set(by_clip) == set(ds.clips)


def test_v1_missing_texts_are_skipped_without_shifting_query_indices():
    data = make_nlq(seed=1, version="v1")
    lqs = data["videos"][0]["clips"][0]["annotations"][0]["language_queries"]
    del lqs[1]["query"]
    lqs[2]["query"] = "   "
    lqs.append(None)
    ds = parse_nlq(data, "nlq_train.json")
    assert ds.version == "v1"
    assert ds.skipped == {"no query text": 2, "null entry": 1}
    ann_uid = data["videos"][0]["clips"][0]["annotations"][0]["annotation_uid"]
    first = [q for q in ds if q.annotation_uid == ann_uid]
    assert [q.query_idx for q in first] == [0, 3]  # the file's positions, as submissions use them
    assert ds.annotation_sizes[(first[0].clip_uid, first[0].annotation_uid)] == 5


def test_empty_windows_stay_for_evaluation_but_not_training():
    b = NLQFileBuilder()
    b.add_clip("c", "v", 0, 60)
    b.add_query("c", "zero", 5.0, 5.0)
    b.add_query("c", "one frame", 5.0, 5.0 + EMPTY_WINDOW_S)
    b.add_query("c", "two frames", 5.0, 5.0 + 2 * EMPTY_WINDOW_S)
    ds = parse_nlq(b.to_dict())
    assert [q.is_empty_window for q in ds] == [True, True, False]
    assert ds.notes["empty window"] == 2
    assert len(ds.evaluation_queries()) == 3
    assert [q.text for q in ds.training_queries()] == ["two frames"]
    assert len(ds.training_queries(drop_empty=False)) == 3


def test_answers_past_the_clip_end_are_raw_for_evaluation_and_clamped_for_training():
    b = NLQFileBuilder()
    b.add_clip("c", "v", 100, 160)
    b.add_query("c", "late", 58.0, 63.5)
    b.add_query("c", "reversed", 12.0, 10.0)
    b.add_query("c", "wholly past the end", 61.0, 64.0)
    ds = parse_nlq(b.to_dict())
    late, rev, gone = ds.queries
    assert gone.training_window(60.0) == (60.0, 60.0)
    assert ds.training_queries() == [late, rev] and len(ds.evaluation_queries()) == 3
    assert (late.start, late.end) == (58.0, 63.5)
    assert late.training_window(ds.clip_of(late).duration) == (58.0, 60.0)
    assert rev.training_window(60.0) == (10.0, 12.0)
    assert ds.notes["answer past clip end"] == 2 and ds.notes["start after end"] == 1


def test_the_unannotated_test_form_has_queries_without_answers(tmp_path):
    b = NLQFileBuilder(version="v2")
    b.add_clip("c", "v", 0, 60, split="test")
    b.add_query("c", "where is the cup?", 1.0, 2.0, template="Objects: Where is object X?")
    path = b.write(tmp_path / "nlq_test_unannotated.json", with_answers=False)
    lq = json.loads(path.read_text())["videos"][0]["clips"][0]["annotations"][0]["language_queries"][0]
    assert set(lq) == {"query", "template"}
    ds = load_nlq(path)
    assert len(ds) == 1 and not ds.is_annotated
    q = ds.queries[0]
    assert q.start is None and q.end is None and not q.has_answer and not q.is_empty_window
    assert ds.training_queries() == [] and ds.evaluation_queries() == []
    with pytest.raises(ValueError):
        q.training_window(60.0)


def test_builder_writes_a_file_the_reader_reads_back_exactly(tmp_path):
    b = NLQFileBuilder(version="v2", description="synthetic world")
    b.add_clip("clipA", "video1", 10.0, 70.0, split="train", source="synth")
    b.add_clip("clipB", "video1", 80.0, 140.0)
    k0 = b.add_query("clipA", "where did I put the red ball?", 3.0, 7.5, template="Objects: Where did I put X?")
    k1 = b.add_query("clipA", "what did I pick up?", 20.0, 22.0, annotation_uid="other")
    k2 = b.add_query("clipA", "where is the cup?", 30.0, 31.0)
    k3 = b.add_query("clipB", "narrated", 1.0, 2.0, template=NARRATION_TEMPLATE)
    assert k0 == ("clipA", "clipA-nlq", 0) and k1 == ("clipA", "other", 0) and k2 == ("clipA", "clipA-nlq", 1)
    path = b.write(tmp_path / "synthetic.json")
    raw = json.loads(path.read_text())
    assert raw["videos"][0]["clips"][0]["source"] == "synth"
    lq = raw["videos"][0]["clips"][0]["annotations"][0]["language_queries"][0]
    assert lq["video_start_sec"] == 13.0 and lq["video_end_sec"] == 17.5
    ds = load_nlq(path)
    assert [q.key for q in ds] == [k0, k2, k1, k3]
    assert ds.query(k0).template == "Objects: Where did I put X?" and ds.query(k0).end == 7.5
    assert ds.query(k3).is_narration and not ds.query(k0).is_narration
    assert ds.clips["clipB"].video_start_sec == 80.0
    assert [q.key for q in ds.without_narrations()] == [k0, k2, k1]
    assert [q.key for q in ds.narrations_only()] == [k3]
    with pytest.raises(ValueError):
        b.add_query("nope", "q", 0, 1)
    with pytest.raises(ValueError):
        b.add_clip("clipA", "video1", 0, 1)


def test_read_clips_accepts_vq_and_moments_style_files(tmp_path):
    vq = {
        "version": "v2",
        "videos": [
            {
                "video_uid": "v",
                "split": "train",
                "clips": [
                    {
                        "clip_uid": "c1",
                        "video_start_sec": 5.0,
                        "video_end_sec": 485.0,
                        "annotations": [{"query_sets": {"1": {"object_title": "cup"}}}],
                    }
                ],
            }
        ],
    }
    clips = read_clips(write(tmp_path / "vq_train.json", vq))
    assert clips["c1"].duration == 480.0 and clips["c1"].video_uid == "v"
    with pytest.raises(AnnotationFileError, match="language_queries.*is this an NLQ file"):
        load_nlq(tmp_path / "vq_train.json")


@pytest.mark.parametrize(
    "content,match",
    [
        ("{bad json", r"not valid JSON \(line 1"),
        ("[1, 2]", "top level should be an object"),
        ('{"version": "v2"}', "should have a list named 'videos' but has nothing"),
        ('{"videos": [{"clips": []}]}', r"videos\[0\] has no 'video_uid'"),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"video_start_sec": 0, "video_end_sec": 1}]}]}',
            r"videos\[0\].clips\[0\] has no 'clip_uid'",
        ),
        ('{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c"}]}]}', "neither video_start_sec"),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": "0",'
            ' "video_end_sec": 1}]}]}',
            "video_start_sec = '0', which is not a finite number",
        ),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": 9, "video_end_sec": 1}]}]}',
            "before it starts",
        ),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": 0, "video_end_sec": 9,'
            ' "annotations": [{"annotation_uid": "a", "language_queries": [{"query": "q", "clip_start_sec": 1,'
            ' "clip_end_sec": null}]}]}]}]}',
            "clip_end_sec = None",
        ),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": 0, "video_end_sec": 9,'
            ' "annotations": [{"annotation_uid": "a", "language_queries": []}, {"annotation_uid": "a",'
            ' "language_queries": []}]}]}]}',
            "repeats annotation a",
        ),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": 0, "video_end_sec": 9,'
            ' "annotations": []}, {"clip_uid": "c", "video_start_sec": 5, "video_end_sec": 9,'
            ' "annotations": []}]}]}',
            "repeats clip c",
        ),
        (
            '{"videos": [{"video_uid": "v", "clips": [{"clip_uid": "c", "video_start_sec": 0, "video_end_sec": 9}]}]}',
            "should have a list named 'annotations'",
        ),
    ],
)
def test_malformed_annotation_files_name_the_file_and_the_problem(tmp_path, content, match):
    path = tmp_path / "nlq_bad.json"
    path.write_text(content)
    with pytest.raises(AnnotationFileError, match=match) as err:
        load_nlq(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(AnnotationFileError, match="does not exist"):
        load_nlq(tmp_path / "nope.json")
    with pytest.raises(AnnotationFileError, match="is a folder"):
        load_nlq(tmp_path)


def test_a_clip_listed_twice_with_the_same_range_merges_its_annotations():
    data = make_nlq(seed=4, videos=1, clips_per_video=1)
    clip = data["videos"][0]["clips"][0]
    twin = {
        **clip,
        "annotations": [
            {
                "annotation_uid": "extra",
                "language_queries": [{"query": "again?", "clip_start_sec": 1.0, "clip_end_sec": 2.0, "template": None}],
            }
        ],
    }
    data["videos"][0]["clips"].append(twin)
    ds = parse_nlq(data)
    assert len(ds.clips) == 1 and ds.query((clip["clip_uid"], "extra", 0)).text == "again?"


def test_few_shot_subsets_are_seeded_nested_and_cover_zero_to_all():
    ds = parse_nlq(make_nlq(seed=6, videos=10, clips_per_video=2))
    assert len(ds.clips) == 20
    assert few_shot_clips(ds, 0.0) == []
    assert sorted(few_shot_clips(ds, 1.0)) == sorted(ds.clips)
    quarter, half = few_shot_clips(ds, 0.25, seed=3), few_shot_clips(ds, 0.5, seed=3)
    assert len(quarter) == 5 and len(half) == 10
    assert set(quarter) <= set(half)
    assert few_shot_clips(ds, 0.5, seed=3) == half
    assert few_shot_clips(ds, 0.5, seed=4) != half
    sub = few_shot_subset(ds, 0.25, seed=3)
    assert set(sub.clips) == set(quarter)
    assert {q.clip_uid for q in sub} == set(quarter) and len(sub) == 5 * 8
    assert len(few_shot_subset(ds, 0.0)) == 0
    with pytest.raises(ValueError):
        few_shot_clips(ds, 1.5)
