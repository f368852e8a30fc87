"""Ego4D narration.json and EgoClip's table into one narration record type."""

from __future__ import annotations

import json

import pytest

from training.narrations import NarrationFileError, load_narrations, parse_narration_json, read_egoclip

NARRATION_JSON = {
    "vid-a": {
        "narration_pass_1": {
            "narrations": [
                {
                    "timestamp_sec": 1.5,
                    "timestamp_frame": 45,
                    "narration_text": "#C C opens the fridge",
                    "annotation_uid": "u1",
                },
                {
                    "timestamp_sec": 3.0,
                    "timestamp_frame": 90,
                    "narration_text": "#C C picks a cup",
                    "annotation_uid": "u1",
                },
                {"timestamp_frame": 99, "narration_text": "#C C has no time", "annotation_uid": "u1"},
            ],
            "summaries": [{"start_sec": 0, "end_sec": 10, "summary_text": "#Summary C cooks"}],
        },
        "narration_pass_2": {
            "narrations": [
                {
                    "timestamp_sec": 2.0,
                    "timestamp_frame": 60,
                    "narration_text": "#C C opens a door",
                    "annotation_uid": "u2",
                }
            ],
            "summaries": [],
        },
        "status": "complete",
    },
    "vid-b": {
        "narration_pass_1": {
            "narrations": [
                {
                    "timestamp_sec": 7.25,
                    "timestamp_frame": 217,
                    "narration_text": "#O man X waves",
                    "annotation_uid": "u3",
                }
            ]
        }
    },  # only one pass
    "vid-redacted": {"status": "redacted"},
}


def test_narration_json_reads_both_passes_and_skips_what_is_not_a_narration(tmp_path):
    path = tmp_path / "narration.json"
    path.write_text(json.dumps(NARRATION_JSON))
    nf = load_narrations(path)
    assert nf.format == "narration.json"
    got = [(n.video_uid, n.time, n.text, n.source, n.window) for n in nf]
    assert got == [
        ("vid-a", 1.5, "#C C opens the fridge", "narration_pass_1", None),
        ("vid-a", 3.0, "#C C picks a cup", "narration_pass_1", None),
        ("vid-a", 2.0, "#C C opens a door", "narration_pass_2", None),
        ("vid-b", 7.25, "#O man X waves", "narration_pass_1", None),
    ]
    assert nf.skipped == {"narration without a time": 1, "video without narration passes": 1}


def test_narration_json_of_the_wrong_shape_is_refused(tmp_path):
    with pytest.raises(NarrationFileError, match="top level is a list"):
        parse_narration_json([1, 2], "n.json")
    with pytest.raises(NarrationFileError, match="does not look like Ego4D's narration.json"):
        parse_narration_json({"videos": [], "version": "v2"}, "n.json")
    bad = tmp_path / "narration.json"
    bad.write_text('{"vid": {"narration_pass_1": ')
    with pytest.raises(NarrationFileError, match="not valid JSON"):
        load_narrations(bad)


EGOCLIP_HEADER = (
    "\tclip_idx\tvideo_uid\tvideo_dur\tnarration_source\tnarration_ind\tnarration_time\t"
    "clip_start\tclip_end\tclip_text\ttag_verb\ttag_noun"
)


def _egoclip_rows():
    return [
        "0\t0\tvid-a\t600.0\tnarration_pass_1\t0\t1.5\t1.1\t1.9\t#C C opens the fridge\t[12]\t[40]",
        '1\t1\tvid-a\t600.0\tnarration_pass_1\t1\t3.0\t2.6\t3.4\t"#C C picks a cup, then a plate"\t[3]\t[7]',
        "2\t2\tvid-b\t120.0\tnarration_pass_2\t0\t7.25\tbad\t7.7\t#O man X waves\t[1]\t[2]",
        "3\t3\tvid-b\t120.0",  # cut short
        "",
    ]


def test_egoclip_table_with_index_column_quotes_and_bad_rows(tmp_path):
    path = tmp_path / "egoclip.csv"  # tab-separated despite the name, as distributed
    path.write_text("\n".join([EGOCLIP_HEADER] + _egoclip_rows()) + "\n")
    nf = load_narrations(path)
    assert nf.format == "egoclip"
    got = [(n.video_uid, n.time, n.text, n.source, n.window) for n in nf]
    assert got == [
        ("vid-a", 1.5, "#C C opens the fridge", "narration_pass_1", (1.1, 1.9)),
        ("vid-a", 3.0, "#C C picks a cup, then a plate", "narration_pass_1", (2.6, 3.4)),
        ("vid-b", 7.25, "#O man X waves", "narration_pass_2", None),  # bad clip_start: instant only
    ]
    assert nf.skipped == {"short row": 1}


def test_egoclip_columns_are_found_by_name_in_any_order_and_with_commas(tmp_path):
    path = tmp_path / "egoclip_subset.csv"
    path.write_text('\ufeffclip_text,clip_end,video_uid,clip_start\n"#C C cuts, slowly",12.5,vid-z,11.0\n')
    (n,) = read_egoclip(path).narrations
    assert (n.video_uid, n.text, n.window, n.time, n.source) == (
        "vid-z",
        "#C C cuts, slowly",
        (11.0, 12.5),
        11.75,
        "egoclip",
    )


def test_tables_without_the_needed_columns_are_refused(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("video_uid\tsomething\nv\t1\n")
    with pytest.raises(NarrationFileError, match="lacks clip_text, clip_start/clip_end or narration_time"):
        load_narrations(path)
    with pytest.raises(NarrationFileError, match="does not exist"):
        load_narrations(tmp_path / "missing.tsv")
    with pytest.raises(NarrationFileError, match="is a folder"):
        load_narrations(tmp_path)
