"""Corrections of answers: stored in the library, checked, removed with their video, exported as NLQ data."""

from __future__ import annotations

import json

import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

from app.cli import main
from app.service import EgoRecall
from app.settings import Settings
from indexing.errors import UnknownVideo
from indexing.feedback import InvalidCorrection
from indexing.library import Library
from training.features import LibraryClipFeatures
from training.nlq import load_nlq


@pytest.fixture
def service(tmp_path):
    encoder = ColorEncoder()
    svc = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder=encoder)
    paths = [
        write_video(tmp_path / name, seconds=12.0, fps=10.0, width=64, height=48, frame=colored_frames(spans, 10.0))
        for name, spans in (("kitchen.mp4", {"red": [(4.0, 6.0)]}), ("hall.mp4", {"blue": [(2.0, 3.0)]}))
    ]
    results = svc.index(paths)
    assert all(r.ok for r in results)
    return svc


def ids(service):
    return {v.name: v.id for v in service.videos()}


def test_corrections_are_kept_checked_and_removed_with_their_video(service, tmp_path):
    kitchen, hall = ids(service)["kitchen.mp4"], ids(service)["hall.mp4"]
    answer = service.ask("where are my keys", video_id=kitchen, k=2, clips=False)
    m = answer.moments[0]
    right = service.correct(kitchen, answer.question, m.start, m.end, "right", mode=answer.mode)
    moved = service.correct(hall, "where is my phone", 2.0, 3.2, "adjusted", shown=(5.0, 7.0))
    service.correct(hall, "where is my phone", 8.0, 9.0, "wrong")
    assert right.verdict == "right" and moved.shown_start == 5.0

    before = [c.to_dict() for c in service.corrections()]
    bad = [
        ((kitchen, "  ", 1.0, 2.0, "right"), InvalidCorrection, "question"),
        ((kitchen, "keys", 3.0, 3.0, "adjusted"), InvalidCorrection, "start before it ends"),
        ((kitchen, "keys", 5.0, 2.0, "adjusted"), InvalidCorrection, "start before it ends"),
        ((kitchen, "keys", 10.0, 30.0, "adjusted"), InvalidCorrection, "outside kitchen.mp4"),
        ((kitchen, "keys", -1.0, 2.0, "adjusted"), InvalidCorrection, "outside"),
        ((kitchen, "keys", 1.0, 2.0, "maybe"), InvalidCorrection, "right, wrong, adjusted"),
        ((kitchen, "keys", "soon", 2.0, "right"), InvalidCorrection, "numbers"),
        (("nope", "keys", 1.0, 2.0, "right"), UnknownVideo, "no video"),
    ]
    for args, error, words in bad:
        with pytest.raises(error, match=words):
            service.correct(*args)
    assert [c.to_dict() for c in service.corrections()] == before  # nothing stored by a refused correction

    reopened = Library.open(tmp_path / "lib")  # they survive a restart
    assert [c.to_dict() for c in reopened.feedback.list()] == before
    reopened.close()
    service.remove(hall)
    assert [c.video_id for c in service.corrections()] == [kitchen]


def test_right_and_adjusted_corrections_export_as_nlq_training_data(service, tmp_path):
    kitchen, hall = ids(service)["kitchen.mp4"], ids(service)["hall.mp4"]
    service.correct(kitchen, "where are my keys", 4.0, 6.0, "right")
    service.correct(hall, "where is my phone", 2.0, 3.0, "adjusted", shown=(6.0, 8.0))
    service.correct(hall, "where is my phone", 8.0, 9.0, "wrong")
    report = service.export_feedback(tmp_path / "feedback.json")
    assert (report.queries, report.videos, report.skipped_wrong) == (2, 2, 1)
    dataset = load_nlq(tmp_path / "feedback.json")
    got = {(q.text, q.start, q.end) for q in dataset.evaluation_queries()}
    assert got == {("where are my keys", 4.0, 6.0), ("where is my phone", 2.0, 3.0)}
    source = LibraryClipFeatures(service.library)  # the clips are the library's videos, whole
    for clip in dataset.clips.values():
        feats = source.get(clip)
        assert feats.grid.num_bins == len(feats.features) > 0 and clip.video_start_sec == 0.0


def test_cli_corrects_lists_and_exports(service, tmp_path, capsys):
    kitchen = ids(service)["kitchen.mp4"]
    lib = str(tmp_path / "lib")
    assert (
        main(
            [
                "library",
                "correct",
                kitchen,
                "where are my keys",
                "--start",
                "4",
                "--end",
                "6",
                "--adjusted",
                "--library",
                lib,
            ]
        )
        == 0
    )
    assert "stored correction 1: adjusted" in capsys.readouterr().out
    assert main(["library", "correct", kitchen, "keys", "--start", "6", "--end", "4", "--right", "--library", lib]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "start before it ends" in err
    assert main(["library", "feedback", "--library", lib]) == 0
    assert "adjusted" in capsys.readouterr().out
    out = tmp_path / "fb.json"
    assert main(["library", "feedback", "--out", str(out), "--library", lib]) == 0
    assert "wrote 1 corrected answer of 1 video to" in capsys.readouterr().out
    assert (
        json.loads(out.read_text())["videos"][0]["clips"][0]["annotations"][0]["language_queries"][0]["query"]
        == "where are my keys"
    )
