"""The synthetic world generator: real videos, Ego4D-format files, and answers that match what happened."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from training.synthworld.catalog import DEFAULT_HOUSE
from training.synthworld.generate import generate_world
from training.synthworld.plan import SynthConfig, SynthWorldError, plan_world_video
from training.synthworld.queries import (
    TEMPLATE_BEFORE_AFTER,
    TEMPLATE_HOW_MANY,
    TEMPLATE_PUT,
    TEMPLATE_PUT_IN,
    TEMPLATE_SEEN,
    TEMPLATE_STATE,
    TEMPLATE_WHAT_DID,
    TEMPLATE_WHERE_IS,
    ClipView,
    clip_queries,
    where_did_i_put,
)
from training.synthworld.script import Event, plan_video, sightings

EGO4D_TEMPLATES = {
    "Objects: Where is object X before / after event Y?",
    "Place: Where did I put X?",
    "Objects: Where is object X?",
    "Objects: What did I put in X?",
    "Objects: How many X\u2019s? (quantity question)",
    "Objects: In what location did I see object X ?",
    "Objects: What X did I Y?",
    "Objects: What X is Y?",
    "Objects: State of an object",
    "Objects: Where is my object X?",
}
SMALL = dict(n_videos=3, seed=7, duration=40.0, size=64, fps=10.0, val_fraction=0.34)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(out, **SMALL)
    return out, summary, json.loads((out / "world.json").read_text())


def load(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


# ---------------------------------------------------------------------- files and videos
def test_videos_decode_to_their_recorded_length(world):
    out, summary, w = world
    assert summary.n_videos == len(w["videos"]) == 3
    for v in w["videos"]:
        path = out / v["file"]
        assert path.is_file() and path.suffix == ".mp4"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            decoded = list(container.decode(stream))
        frames = [f.to_ndarray(format="rgb24") for f in decoded]
        times = [float(f.pts * f.time_base) for f in decoded]
        assert len(frames) == v["n_frames"] == round(v["duration"] * v["fps"])
        assert frames[0].shape == (64, 64, 3)
        # A real, moving video: frames a second apart differ, and not just by compression noise.
        diffs = [
            np.abs(frames[i].astype(int) - frames[i + 10].astype(int)).mean() for i in range(0, len(frames) - 10, 10)
        ]
        assert np.median(diffs) > 2.0
        assert times[-1] == pytest.approx(v["duration"] - 1 / v["fps"], abs=1e-3)


def test_readme_and_summary_describe_what_was_written(world):
    out, summary, _ = world
    names = [name for name, _ in summary.files]
    for name in ("nlq_train.json", "nlq_val.json", "narration.json", "world.json", "README.txt"):
        assert name in names and (out / name).is_file()
    assert "narration_pass_1" in (out / "README.txt").read_text()
    assert summary.n_train_queries > 0 and summary.n_val_queries > 0


# ---------------------------------------------------------------------- the event log
def test_events_tile_the_video_and_replay_consistently():
    cfg = SynthConfig(seed=3, duration=120.0)
    for index in range(3):
        plan = plan_world_video(index, cfg)
        ev = plan.events
        assert ev[0].start == 0.0 and ev[-1].end == pytest.approx(plan.duration)
        assert all(a.end == pytest.approx(b.start) for a, b in zip(ev, ev[1:]))
        # Replay the log from the snapshots: every pick takes what lay there, every put fills a free slot.
        where: dict[str, tuple[str, int]] = {}
        held = None
        for e in ev:
            assert e.held == held
            if e.place:
                here = {(k, o) for o, (p, k) in where.items() if p == e.place}
                assert here <= set(e.contents), (e, here)
                for k, o in e.contents:
                    where[o] = (e.place, k)
            if e.kind == "pick":
                assert (e.slot, e.obj) in e.contents and held is None
                del where[e.obj]
                held = e.obj
            elif e.kind == "put":
                assert held == e.obj and e.slot not in {k for k, _ in e.contents}
                where[e.obj] = (e.place, e.slot)
                held = None
            if e.kind in ("pick", "put", "look") and DEFAULT_HOUSE.place(e.place).closable:
                assert e.is_open, "things are only taken from or put into open containers"


def test_narrations_are_dense_and_match_the_event_log(world):
    out, summary, w = world
    narr = load(out, "narration.json")
    assert set(narr) == {v["video_uid"] for v in w["videos"]}
    total, kinds = 0, set()
    for v in w["videos"]:
        entries = narr[v["video_uid"]]["narration_pass_1"]["narrations"]
        logged = [e for e in v["events"] if e["narration"]]
        assert [n["narration_text"] for n in entries] == [e["narration"] for e in logged]
        for n, e in zip(entries, logged):
            assert e["start"] <= n["timestamp_sec"] <= e["end"]
            assert n["timestamp_sec"] == pytest.approx((e["start"] + e["end"]) / 2, abs=1e-3)
            assert n["timestamp_frame"] == round(n["timestamp_sec"] * v["fps"])
            assert 0 <= n["timestamp_sec"] <= v["duration"]
            assert n["narration_text"].startswith("#C C ")
        kinds |= {e["kind"] for e in logged}
        assert len(entries) / v["duration"] * 60 >= 10  # Ego4D narrates ~13 actions a minute
        total += len(entries)
    assert total == summary.n_narrations
    assert {"walk", "pick", "put"} <= kinds
    texts = [n["narration_text"] for v in narr.values() for n in v["narration_pass_1"]["narrations"]]
    assert any(re.fullmatch(r"#C C puts the \w+ (in|on) the \w+", t) for t in texts)
    assert any(re.fullmatch(r"#C C (picks up the \w+ from|takes the \w+ out of) the \w+", t) for t in texts)


# ---------------------------------------------------------------------- NLQ files
def _clips(nlq: dict):
    for v in nlq["videos"]:
        for c in v["clips"]:
            yield v, c


def test_nlq_files_follow_the_ego4d_schema_and_split_by_video(world):
    out, summary, w = world
    train, val = load(out, "nlq_train.json"), load(out, "nlq_val.json")
    train_uids = {v["video_uid"] for v in train["videos"]}
    val_uids = {v["video_uid"] for v in val["videos"]}
    assert train_uids and val_uids and not train_uids & val_uids
    assert set(summary.val_videos) >= val_uids and set(summary.train_videos) >= train_uids
    for nlq, split in ((train, "train"), (val, "val")):
        assert nlq["version"] == "v2"
        for v, c in _clips(nlq):
            assert v["split"] == split
            assert c["clip_start_sec"] == 0.0
            assert c["clip_end_sec"] == pytest.approx(c["video_end_sec"] - c["video_start_sec"], abs=1e-3)
            for ann in c["annotations"]:
                assert ann["annotation_uid"]
                for q in ann["language_queries"]:
                    assert set(q) >= {
                        "clip_start_sec",
                        "clip_end_sec",
                        "video_start_sec",
                        "video_end_sec",
                        "template",
                        "query",
                        "slot_x",
                        "verb_x",
                    }
                    assert q["template"] in EGO4D_TEMPLATES
    n = sum(len(a["language_queries"]) for nlq in (train, val) for _, c in _clips(nlq) for a in c["annotations"])
    assert n == summary.n_train_queries + summary.n_val_queries


def test_clips_are_real_time_ranges_of_their_videos():
    cfg = SynthConfig(seed=11, duration=120.0)
    plans = [plan_world_video(i, cfg) for i in range(8)]
    starts = [c.start for p in plans for c in p.clips]
    assert any(s > 0 for s in starts), "clips must not always start at the video's start"
    assert any(len(p.clips) == 2 for p in plans)
    for p in plans:
        for a, b in zip(p.clips, p.clips[1:]):
            assert a.end <= b.start
        assert all(0 <= c.start < c.end <= p.duration for c in p.clips)


def test_every_query_window_is_inside_its_clip_and_is_the_logged_answer(world):
    out, _, w = world
    videos = {v["video_uid"]: v for v in w["videos"]}
    n = 0
    for name in ("nlq_train.json", "nlq_val.json"):
        for v, c in _clips(load(out, name)):
            log = videos[v["video_uid"]]
            by_clip = [q for q in log["queries"] if q["clip_uid"] == c["clip_uid"]]
            texts = [q["query"] for a in c["annotations"] for q in a["language_queries"]]
            assert len(texts) == len(set(texts)) == len(by_clip), "one answer per question per clip"
            for q, logged in zip(c["annotations"][0]["language_queries"], by_clip):
                length = c["clip_end_sec"]
                assert 0 <= q["clip_start_sec"] < q["clip_end_sec"] <= length + 1e-6
                assert q["clip_end_sec"] - q["clip_start_sec"] >= 1.0
                start = c["video_start_sec"]
                assert q["video_start_sec"] == pytest.approx(start + q["clip_start_sec"], abs=2e-3)
                assert q["video_end_sec"] == pytest.approx(start + q["clip_end_sec"], abs=2e-3)
                assert logged["query"] == q["query"]
                evidence = [log["events"][i] for i in logged["evidence"]]
                assert q["video_start_sec"] == pytest.approx(evidence[0]["start"], abs=1e-3)
                assert q["video_end_sec"] == pytest.approx(evidence[-1]["end"], abs=1e-3)
                n += 1
    assert n > 0


# ---------------------------------------------------------------------- answers, checked independently
def _touching(events: list[dict], start: float, end: float) -> list[dict]:
    return [e for e in events if e["start"] < end and e["end"] > start]


def _check_answer(q: dict, clip: dict, events: list[dict]) -> bool:
    """Re-derive the answer of the common templates from the raw event log, by a route of its own."""
    touching = _touching(events, clip["video_start_sec"], clip["video_end_sec"])
    window = (q["video_start_sec"], q["video_end_sec"])
    text = q["query"]
    if q["template"] == TEMPLATE_PUT:
        obj = re.fullmatch(r"Where did I put the (\w+)\?", text).group(1)
        puts = [e for e in touching if e["kind"] == "put" and e["obj"] == obj]
        assert len(puts) == 1 and window == pytest.approx((puts[0]["start"], puts[0]["end"]))
        return True
    if q["template"] == TEMPLATE_PUT_IN:
        prep, place = re.fullmatch(r"What did I put (in|on) the (\w+)\?", text).groups()
        puts = [e for e in touching if e["kind"] == "put" and e["place"] == place]
        assert len(puts) == 1 and window == pytest.approx((puts[0]["start"], puts[0]["end"]))
        assert DEFAULT_HOUSE.place(place).preposition == prep
        return True
    if q["template"] == TEMPLATE_WHAT_DID:
        place = re.fullmatch(r"What object did I (?:pick up from|take out of) the (\w+)\?", text).group(1)
        picks = [e for e in touching if e["kind"] == "pick" and e["place"] == place]
        assert len(picks) == 1 and window == pytest.approx((picks[0]["start"], picks[0]["end"]))
        return True
    if q["template"] == TEMPLATE_STATE:
        place = re.fullmatch(r"Did I (?:close|leave) the (\w+)(?: open)?\?", text).group(1)
        changes = [e for e in touching if e["kind"] in ("open", "close") and e["place"] == place]
        assert window == pytest.approx((changes[-1]["start"], changes[-1]["end"]))
        assert ("close" in text) == (changes[-1]["kind"] == "close" and "leave" not in text)
        return True
    if q["template"] in (TEMPLATE_SEEN, TEMPLATE_WHERE_IS, TEMPLATE_BEFORE_AFTER):
        obj = re.search(r"the (\w+)", text).group(1)
        inside = [e for e in events if window[0] - 1e-6 <= e["start"] and e["end"] <= window[1] + 1e-6]
        assert inside and all(e["place"] == inside[0]["place"] for e in inside), "one place in view"

        def shown(e):
            return obj in [o for _, o in e["contents"]] or (e["kind"] == "put" and e["obj"] == obj)

        assert any(shown(e) for e in inside), f"{obj} is not at the {inside[0]['place']} in {window}"
        return True
    if q["template"] == TEMPLATE_HOW_MANY:
        inside = [e for e in touching if window[0] - 1e-6 <= e["start"] and e["end"] <= window[1] + 1e-6]
        m = re.fullmatch(r"How many things did I put (?:in|on) the (\w+)\?", text)
        if m:
            puts = [e for e in touching if e["kind"] == "put" and e["place"] == m.group(1)]
            assert len(puts) >= 2 and all(e in inside for e in puts)
        return True
    raise AssertionError(f"unknown template {q['template']}")


def test_answers_rederived_from_the_event_log():
    cfg = SynthConfig(seed=21, duration=150.0)
    seen_templates = set()
    for index in range(6):
        plan = plan_world_video(index, cfg)
        events = [e.to_dict() for e in plan.events]
        for c in plan.clips:
            clip = {"video_start_sec": c.start, "video_end_sec": c.end}
            for q in c.queries:
                d = {"query": q.query, "template": q.template, "video_start_sec": q.start, "video_end_sec": q.end}
                assert _check_answer(d, clip, events)
                seen_templates.add(q.template)
    assert len(seen_templates) >= 6, seen_templates
    per_clip = [len(c.queries) for i in range(6) for c in plan_world_video(i, cfg).clips]
    assert np.mean(per_clip) >= 4


def test_no_question_when_the_answer_is_not_unique():
    house = DEFAULT_HOUSE
    t = [0.0]

    def ev(kind, **kw):
        e = Event(idx=len(log), kind=kind, start=t[0], end=t[0] + 2.5, room="kitchen", **kw)
        t[0] += 2.5
        log.append(e)

    log: list[Event] = []
    ev("approach", place="table", contents=((0, "keys"),))
    ev("pick", place="table", obj="keys", slot=0, contents=((0, "keys"),))
    ev("put", place="counter", obj="keys", slot=0, held="keys")
    ev("pick", place="counter", obj="keys", slot=0, contents=((0, "keys"),))
    ev("put", place="sink", obj="keys", slot=1, held="keys")
    view = ClipView.of(0.0, t[0], log, sightings(log, house), house)
    assert where_did_i_put(view) == []  # put twice in the clip: "where did I put the keys?" has two answers
    # The first put straddles the clip's start: it still makes the question ambiguous.
    later = ClipView.of(6.0, t[0], log, sightings(log, house), house)
    assert where_did_i_put(later) == []
    only_last = ClipView.of(7.5, t[0], log, sightings(log, house), house)
    (q,) = where_did_i_put(only_last)
    assert (q.start, q.end) == (10.0, 12.5)
    texts = [q.query for q in clip_queries(view, np.random.default_rng(0), 20)]
    assert len(texts) == len(set(texts))
    assert "What did I put on the counter?" in texts and "What did I put in the sink?" in texts


# ---------------------------------------------------------------------- determinism, errors, CLI
def test_same_seed_same_annotations_different_seed_different(tmp_path, world):
    out, _, _ = world
    again = tmp_path / "again"
    generate_world(again, **SMALL)
    for name in ("nlq_train.json", "nlq_val.json", "narration.json", "world.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    generate_world(other, **{**SMALL, "seed": 8, "n_videos": 2})
    assert (other / "narration.json").read_bytes() != (out / "narration.json").read_bytes()
    # A video does not depend on how many others are generated with it.
    assert (
        plan_world_video(1, SynthConfig(seed=7, n_videos=2)).events
        == plan_world_video(1, SynthConfig(seed=7, n_videos=9)).events
    )


def test_the_same_world_at_another_frame_rate_asks_the_same_questions(tmp_path, world):
    """What ``bench_index_variants --skip-at-fps`` relies on: the plans, events, questions and their answers are
    in seconds, so rendering at 30 fps changes the pictures' rate and nothing else."""
    out, _, _ = world
    fast = tmp_path / "fast"
    generate_world(fast, **{**SMALL, "fps": 30.0})

    def seconds(world_dir: Path) -> list:
        videos = load(world_dir, "world.json")["videos"]
        return [(v["video_uid"], v["duration"], v["events"], v["queries"]) for v in videos]

    assert seconds(fast) == seconds(out)
    with av.open(str(fast / "videos" / f"{load(fast, 'world.json')['videos'][0]['video_uid']}.mp4")) as container:
        assert float(container.streams.video[0].average_rate) == 30.0


def test_scripts_differ_between_seeds_and_videos():
    a = plan_video(DEFAULT_HOUSE, np.random.SeedSequence([1, 0]), 60.0)
    b = plan_video(DEFAULT_HOUSE, np.random.SeedSequence([1, 1]), 60.0)
    assert [e.kind for e in a] != [e.kind for e in b] or [e.obj for e in a] != [e.obj for e in b]


def test_bad_settings_and_non_empty_folders_are_refused(tmp_path):
    with pytest.raises(SynthWorldError, match="--videos"):
        generate_world(tmp_path / "x", n_videos=0)
    with pytest.raises(SynthWorldError, match="--size"):
        generate_world(tmp_path / "x", n_videos=1, size=8)
    with pytest.raises(SynthWorldError, match="unknown synthetic world setting"):
        generate_world(tmp_path / "x", n_video=1)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SynthWorldError, match="not empty"):
        generate_world(foreign, n_videos=1, duration=10, size=32)
    with pytest.raises(SynthWorldError, match="no world.json"):
        generate_world(foreign, n_videos=1, duration=10, size=32, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_cli_writes_a_world_and_reports_it(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "app",
        "synth",
        "--out",
        str(out),
        "--videos",
        "2",
        "--seed",
        "4",
        "--duration",
        "20",
        "--duration-jitter",
        "0",
        "--size",
        "48",
        "--fps",
        "8",
        "--workers",
        "2",
    ]
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert sum(line.startswith("wrote videos/") for line in lines) == 2
    assert any(line.startswith("wrote nlq_train.json") for line in lines)
    assert lines[-1].startswith("total: 2 videos")
    assert len(list((out / "videos").glob("*.mp4"))) == 2
    assert [v["duration"] for v in json.loads((out / "world.json").read_text())["videos"]] == [20.0, 20.0]
    again = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "Traceback" not in again.stderr
    replaced = subprocess.run(cmd + ["--overwrite"], cwd=root, capture_output=True, text=True, timeout=300)
    assert replaced.returncode == 0, replaced.stderr


def test_objects_shown_counts_what_lies_in_view_and_what_is_handled():
    from training.synthworld.script import objects_shown

    video = {
        "sightings": [{"obj": "keys", "place": "table", "start": 10.0, "end": 14.0}],
        "events": [
            {"start": 0.0, "end": 3.0, "held": None, "obj": "mug"},  # picked up
            {"start": 3.0, "end": 6.0, "held": "mug", "obj": None},  # carried
            {"start": 20.0, "end": 22.0, "held": "book", "obj": None},
        ],
    }
    assert objects_shown(video, 0.0, 5.0) == {"mug"}
    assert objects_shown(video, 13.0, 21.0) == {"keys", "book"}  # lying in view though never narrated
    assert objects_shown(video, 14.0, 20.0) == set()  # half-open: touching ends do not count
