"""A user's corrections change the very next answer, before any retraining: a moment marked wrong never comes
back for that question or a close paraphrase, a confirmed or adjusted one comes first (controlled embeddings:
``answer_fixtures.ColorEncoder`` -- the keys are red, the cup green)."""

from __future__ import annotations

import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

from app.answering.corrections import same_question
from app.service import EgoRecall
from app.settings import Settings
from models.windows import temporal_iou

FPS = 10.0
VIDEOS = {
    "kitchen.mp4": (20.0, {"red": [(10.0, 13.0)]}),
    "garden.mp4": (20.0, {"green": [(4.0, 7.0)], "pink": [(15.0, 17.0)]}),  # pink: a weaker red
}


@pytest.fixture()
def service(tmp_path):
    encoder = ColorEncoder()
    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder=encoder)
    paths = [
        write_video(tmp_path / name, seconds=sec, fps=FPS, width=64, height=48, frame=colored_frames(spans, FPS))
        for name, (sec, spans) in VIDEOS.items()
    ]
    assert all(r.ok for r in service.index(paths))
    return service


def spans(answer):
    return [(m.video_name, round(m.start, 2), round(m.end, 2)) for m in answer.moments]


def test_a_wrong_moment_never_comes_back_for_the_question_or_a_paraphrase(service):
    before = service.ask("where are my keys", mode="zeroshot", k=3, clips=False)
    first = before.moments[0]
    assert first.video_name == "kitchen.mp4"  # the red frames
    service.correct(first.video_id, "where are my keys", first.start, first.end, "wrong", mode="zeroshot")
    for question in ("where are my keys", "Where did I put the keys?", "where did I leave my keys"):
        after = service.ask(question, mode="zeroshot", k=3, clips=False)
        assert len(after.moments) == 3
        assert not any(
            m.video_id == first.video_id and temporal_iou((m.start, m.end), (first.start, first.end)) > 0.3
            for m in after.moments
        ), question
    # another question is answered as before
    cup = service.ask("where is the cup", mode="zeroshot", k=3, clips=False)
    assert cup.moments[0].video_name == "garden.mp4" and not cup.moments[0].corrected


def test_an_adjusted_moment_comes_first_and_is_marked(service):
    garden = next(v.id for v in service.videos() if v.name == "garden.mp4")
    service.correct(garden, "where did I put my keys?", 15.0, 17.0, "adjusted", mode="zeroshot", shown=(14.0, 18.0))
    answer = service.ask("where are the keys", mode="zeroshot", k=3, clips=False)
    top = answer.moments[0]
    assert (top.video_id, top.start, top.end, top.corrected) == (garden, 15.0, 17.0, "adjusted")
    assert [m.rank for m in answer.moments] == [1, 2, 3] and not any(m.corrected for m in answer.moments[1:])
    assert answer.to_dict()["moments"][0]["corrected"] == "adjusted"
    # asked within one video, a correction of another video does not appear
    kitchen = next(v.id for v in service.videos() if v.name == "kitchen.mp4")
    inside = service.ask("where are the keys", mode="zeroshot", video_id=kitchen, k=2, clips=False)
    assert all(m.video_id == kitchen and not m.corrected for m in inside.moments)


@pytest.mark.parametrize(
    "a,b,same",
    [
        ("where are my keys", "Where did I put the keys?", True),
        ("where did I leave my keys", "where's the keys", True),
        ("where are my keys", "where is the cup", False),
        ("what did I put in the fridge", "What did I put in the fridge?", True),
        ("what did I put in the fridge", "what did I take out of the fridge", False),
        ("where was the mug before I opened the fridge", "where is the mug", False),
    ],
)
def test_which_questions_are_close(a, b, same):
    assert same_question(a, b) is same
