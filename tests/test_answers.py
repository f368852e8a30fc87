"""Asking questions: ranking within and across videos, scope, k, narrowing by the index, errors -- with
controlled embeddings (see ``answer_fixtures.ColorEncoder``: the keys are red, the cup green, the phone blue)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

from app.answering import InvalidRequest, NothingToSearch, SearchConfig, TrainedAnswerer, ZeroShotAnswerer, window_mean
from app.service import EgoRecall
from app.settings import Settings
from checkpoints import NotACheckpoint
from indexing.errors import UnknownVideo
from models.grid import TimeGrid
from models.windows import Window, containment, temporal_iou
from models.zeroshot import EmptyQuestion

FPS = 10.0
# name -> (seconds, {colour: [(start, end), ...]})
VIDEOS = {
    "kitchen.mp4": (20.0, {"red": [(10.0, 13.0)]}),
    "garden.mp4": (20.0, {"green": [(4.0, 7.0)], "pink": [(15.0, 17.0)]}),  # pink: a weaker red
    "hall.mp4": (16.0, {"blue": [(2.0, 4.0)]}),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A library of three videos indexed with the colour encoder; returns (settings, encoder, ids by name)."""
    root = tmp_path_factory.mktemp("answers")
    encoder = ColorEncoder()
    settings = Settings(library=root / "lib", device="cpu")
    service = EgoRecall(settings, encoder=encoder)
    paths = [
        write_video(root / name, seconds=sec, fps=FPS, width=64, height=48, frame=colored_frames(spans, FPS))
        for name, (sec, spans) in VIDEOS.items()
    ]
    results = service.index(paths)
    assert all(r.ok for r in results), [r.error for r in results]
    return settings, encoder, {r.record.name: r.record.id for r in results}


def service_for(world, search_config: SearchConfig | None = None) -> EgoRecall:
    settings, encoder, _ = world
    if search_config is not None:
        settings = dataclasses.replace(settings, answers=search_config)
    return EgoRecall(settings, encoder=encoder)


def overlaps(moment, start, end) -> bool:
    return temporal_iou((moment.start, moment.end), (start, end)) > 0.3


def check_valid(answer, durations):
    assert [m.rank for m in answer.moments] == list(range(1, len(answer.moments) + 1))

    # Best first: distinct moments by score, then (short videos only) overlapping top-ups by score.
    def overlaps_earlier(i, m):
        return any(
            o.video_id == m.video_id and temporal_iou((o.start, o.end), (m.start, m.end)) > 0.3
            for o in answer.moments[:i]
        )

    flags = [overlaps_earlier(i, m) for i, m in enumerate(answer.moments)]
    assert flags == sorted(flags)
    for group in (False, True):
        scores = [m.score for m, f in zip(answer.moments, flags) if f == group]
        assert scores == sorted(scores, reverse=True)
    for m in answer.moments:
        assert 0.0 <= m.start < m.end <= durations[m.video_id] + 1e-9


def durations_of(service):
    return {v.id: v.duration for v in service.videos()}


def test_top_moment_is_the_video_and_time_where_the_object_is(world):
    _, _, ids = world
    service = service_for(world)
    answer = service.ask("Where did I put my keys?", k=3, clips=False)
    check_valid(answer, durations_of(service))
    best, second = answer.moments[:2]
    assert best.video_id == ids["kitchen.mp4"] and overlaps(best, 10.0, 13.0)
    assert best.video_name == "kitchen.mp4" and best.clip is None
    # Ranked across videos: the weaker red of the garden comes next, before any other kitchen window.
    assert second.video_id == ids["garden.mp4"] and overlaps(second, 15.0, 17.0)
    assert best.score > second.score > answer.moments[2].score
    assert answer.mode == "zeroshot" and answer.candidates == 3 and answer.video_id is None
    assert ("puts the keys", 1.0) in answer.prompts

    cup = service.ask("how many cups did I wash", k=1, clips=False).moments
    phone = service.ask("Where is my phone?", k=1, clips=False).moments
    assert len(cup) == 1 and cup[0].video_id == ids["garden.mp4"] and overlaps(cup[0], 4.0, 7.0)
    assert phone[0].video_id == ids["hall.mp4"] and overlaps(phone[0], 2.0, 4.0)


def test_single_video_scope(world):
    _, _, ids = world
    service = service_for(world)
    garden = ids["garden.mp4"]
    answer = service.ask("where did I put my keys", video_id=garden, k=4, clips=False)
    assert answer.video_id == garden and {m.video_id for m in answer.moments} == {garden}
    assert overlaps(answer.moments[0], 15.0, 17.0)
    assert [s.video_id for s in answer.series] == [garden]
    check_valid(answer, durations_of(service))


def test_k_gives_distinct_moments_inside_the_video(world):
    _, _, ids = world
    service = service_for(world)
    kitchen = ids["kitchen.mp4"]
    durations = durations_of(service)
    assert len(service.ask("keys", video_id=kitchen, k=1, clips=False).moments) == 1
    five = service.ask("keys", video_id=kitchen, k=5, clips=False).moments
    assert len(five) == 5
    for i, a in enumerate(five):
        for b in five[i + 1 :]:
            assert temporal_iou((a.start, a.end), (b.start, b.end)) <= 0.3
    many = service.ask("keys", video_id=kitchen, k=50, clips=False)
    assert 5 <= len(many.moments) <= 50
    check_valid(many, durations)
    for bad in (0, -1, 2.5, 51, 1_000_000_000):
        with pytest.raises(InvalidRequest):
            service.ask("keys", k=bad, clips=False)


def test_score_series_for_the_ui(world):
    _, _, ids = world
    service = service_for(world)
    answer = service.ask("where is the cup", k=2, clips=False)
    assert answer.series[0].video_id == answer.moments[0].video_id == ids["garden.mp4"]
    assert {s.video_id for s in answer.series} == set(ids.values())
    for s in answer.series:
        assert len(s.times) == len(s.scores) and np.all(np.diff(s.times) > 0)
        assert 0 < s.times[0] and s.times[-1] < s.duration
        assert all(any(w == (m.start, m.end, m.rank) for m in answer.moments) for w in s.windows)
    garden = answer.series[0]
    inside = (garden.times >= 4.0) & (garden.times < 7.0)
    assert garden.scores[inside].min() > garden.scores[~inside].max()
    json.dumps(answer.to_dict())  # the UI and --json can serialise it


def test_library_search_narrows_to_candidate_videos(world):
    _, _, ids = world
    service = service_for(world, search_config=SearchConfig(max_videos=1, frame_hits=16))
    answer = service.ask("where did I put my keys", k=3, clips=False)
    assert answer.candidates == 1 and {m.video_id for m in answer.moments} == {ids["kitchen.mp4"]}
    assert overlaps(answer.moments[0], 10.0, 13.0)
    cup = service.ask("what did i do with the cup", k=1, clips=False)
    assert cup.candidates == 1 and cup.moments[0].video_id == ids["garden.mp4"]


def test_a_question_reads_the_catalog_once(world, monkeypatch):
    """Settings, ready videos, corrections, the index's generation and the candidates' records come from one
    read (:meth:`Library.view`), whatever the question's path: the whole library, narrowed by the index, one
    video, an anchor event across videos."""
    from indexing.catalog import Catalog

    _, _, ids = world
    narrowed = service_for(world, search_config=SearchConfig(max_videos=1, frame_hits=16))
    whole = service_for(world)
    asks = [
        (narrowed, dict(question="where did I put my keys")),
        (narrowed, dict(question="where was the cup before I picked up the keys")),
        (whole, dict(question="where is the phone")),
        (whole, dict(question="where is the phone", video_id=ids["hall.mp4"])),
    ]
    for service, kwargs in asks:
        service.ask(k=3, clips=False, **kwargs)  # answerers, encoders and the index loaded once
    reads = []
    connect = Catalog.connect

    def counted(self, *args, **kwargs):
        reads.append(args)
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "connect", counted)
    for service, kwargs in asks:
        reads.clear()
        answer = service.ask(k=3, clips=False, **kwargs)
        assert answer.moments and len(reads) == 1, (kwargs, len(reads))


def test_zero_shot_answers_regions_around_its_hits(world, monkeypatch):
    _, _, ids = world
    monkeypatch.setattr(ZeroShotAnswerer, "local_context_s", lambda self, q: 1.0)
    config = SearchConfig(max_videos=2, frame_hits=6, local_region_s=2.0, region_cost_bins=0)
    service = service_for(world, search_config=config)
    answer = service.ask("where did I put my keys", k=3, clips=False)
    check_valid(answer, durations_of(service))
    assert answer.moments[0].video_id == ids["kitchen.mp4"] and overlaps(answer.moments[0], 10.0, 13.0)
    kitchen = next(s for s in answer.series if s.video_id == ids["kitchen.mp4"])
    real = kitchen.times[np.isfinite(kitchen.scores)]
    # hits +- 2 s, padded by 1 s of context and a bin
    assert real.min() >= 10.0 - 2.0 - 1.6 - 0.6 and real.max() <= 13.0 + 2.0 + 1.6 + 0.6
    assert len(real) < 20 * 1.875
    in_kitchen = [m for m in answer.moments if m.video_id == ids["kitchen.mp4"]]
    assert all(10.0 - 2.6 <= m.start and m.end <= 13.0 + 2.6 for m in in_kitchen)  # cores, never the padding


def test_whole_clip_answerers_answer_long_videos_around_their_hits(world, monkeypatch):
    _, _, ids = world
    monkeypatch.setattr(ZeroShotAnswerer, "local_context_s", lambda self, q: None)  # as a trained model
    config = SearchConfig(max_videos=2, frame_hits=6, long_video_s=5.0, region_s=2.0)
    service = service_for(world, search_config=config)
    answer = service.ask("where did I put my keys", k=3, clips=False)
    check_valid(answer, durations_of(service))
    assert answer.moments[0].video_id == ids["kitchen.mp4"] and overlaps(answer.moments[0], 10.0, 13.0)
    kitchen = next(s for s in answer.series if s.video_id == ids["kitchen.mp4"])
    real = kitchen.times[np.isfinite(kitchen.scores)]
    assert real.min() >= 10.0 - 2.0 - 1.0 and real.max() <= 13.0 + 2.0 + 1.0  # only the region around the hits
    assert len(real) < 20 * 1.875


def test_errors_are_clear(world, tmp_path):
    service = service_for(world)
    with pytest.raises(UnknownVideo):
        service.ask("keys", video_id="nope", clips=False)
    for question in ("", "   ", "?"):
        with pytest.raises(EmptyQuestion):
            service.ask(question, clips=False)
    with pytest.raises(NotACheckpoint):
        service.ask("keys", mode="no-such-checkpoint", clips=False)
    empty = EgoRecall(Settings(library=tmp_path / "empty", device="cpu"), encoder=ColorEncoder())
    with pytest.raises(NothingToSearch):
        empty.ask("keys")
    assert service.modes() == ["auto", "zeroshot"]


def test_answerers_are_cached(world):
    service = service_for(world)
    a = service.answerer("zeroshot")
    assert isinstance(a, ZeroShotAnswerer) and service.answerer("zeroshot") is a


def test_clips_come_with_moments_and_go_with_their_video(world, tmp_path):
    settings, encoder, ids = world
    service = service_for(world)
    answer = service.ask("where is my phone", k=2)
    for m in answer.moments:
        assert m.clip is not None and m.clip.is_file() and m.thumbnail.is_file() and m.clip_error is None
        assert m.clip_start == pytest.approx(max(0.0, m.start - 1.0))
    hall = ids["hall.mp4"]
    excerpts_dir = settings.excerpts_dir / hall
    assert excerpts_dir.is_dir()
    service.remove(hall)
    assert not excerpts_dir.exists()
    assert hall not in {m.video_id for m in service.ask("where is my phone", k=3, clips=False).moments}


def test_trained_windows_rank_by_their_mean_highlight():
    grid = TimeGrid(2.0, 10.0)
    curve = np.zeros(grid.num_bins)
    curve[4:8] = 0.9
    assert window_mean(curve, grid, Window(2.0, 4.0, 0.1)) == pytest.approx(0.9)
    assert window_mean(curve, grid, Window(0.0, 4.0, 0.1)) == pytest.approx(0.45)
    assert math.isfinite(window_mean(curve, grid, Window(9.9, 10.0, 0.0)))
    assert TrainedAnswerer.max_candidate_videos <= ZeroShotAnswerer.max_candidate_videos


def test_calibrated_answers_carry_confidence_and_say_no_good_match(world):
    """The cup (green) is in the garden only: asked of the kitchen, its best moment is below the threshold."""
    from app.answering.calibration import Calibration

    _, _, ids = world
    service = service_for(world)
    found = service.ask("where is my cup?", video_id=ids["garden.mp4"], k=3, clips=False)
    absent = service.ask("where is my cup?", video_id=ids["kitchen.mp4"], k=3, clips=False)
    assert found.moments[0].confidence is None and not found.no_good_match  # not calibrated: raw scores only
    middle = (found.moments[0].score + absent.moments[0].score) / 2
    service.answerer("zeroshot").calibration = Calibration(a=40.0, b=-40.0 * middle, threshold=0.5)
    found = service.ask("where is my cup?", video_id=ids["garden.mp4"], k=3, clips=False)
    absent = service.ask("where is my cup?", video_id=ids["kitchen.mp4"], k=3, clips=False)
    assert not found.no_good_match and found.moments[0].confidence > 0.5 and found.threshold == 0.5
    assert absent.no_good_match and len(absent.moments) == 3  # the candidates are still shown
    assert all(m.confidence < 0.5 for m in absent.moments)
    record = absent.to_dict()
    assert record["no_good_match"] is True and 0.0 <= record["moments"][0]["confidence"] < 0.5


def test_presence_tells_where_the_object_is_on_screen_and_a_calibration_can_rest_on_it(world):
    """The cup (green) is in the garden only. Presence (the frames classified among everyday names) is high
    there and low in the kitchen, whatever the raw scores; a calibration weighing only presence says "no good
    match" in the kitchen, and a question that names no object is judged without it."""
    from app.answering.calibration import Calibration

    _, _, ids = world
    service = service_for(world)
    plain = service.ask("where is my cup?", video_id=ids["garden.mp4"], k=3, clips=False)
    assert plain.moments[0].presence is None  # not measured without a calibration that uses it
    answerer = service.answerer("zeroshot")
    answerer.calibration = Calibration(a=0.0, b=-4.0 * math.log(0.5), threshold=0.5, presence_weight=4.0)
    answerer.measure_presence = True
    found = service.ask("where is my cup?", video_id=ids["garden.mp4"], k=3, clips=False)
    absent = service.ask("where is my cup?", video_id=ids["kitchen.mp4"], k=3, clips=False)
    assert found.moments[0].presence > 0.9 and absent.moments[0].presence < 0.1
    assert not found.no_good_match and absent.no_good_match
    assert absent.to_dict()["moments"][0]["presence"] == pytest.approx(absent.moments[0].presence, abs=1e-4)
    everywhere = service.ask("where is my cup?", k=3, clips=False)  # the library: the garden answers
    assert everywhere.moments[0].video_id == ids["garden.mp4"] and not everywhere.no_good_match
    objectless = service.ask("what did I do?", video_id=ids["kitchen.mp4"], k=3, clips=False)
    assert objectless.moments[0].presence is None
    # judged on its score alone: the presence term is 0, as for an object surely on screen
    assert objectless.moments[0].confidence == pytest.approx(answerer.calibration.probability(0.0, 1.0))
    assert not objectless.no_good_match


def test_a_checkpoints_comparable_scores_keep_its_span_order():
    """Across videos a trained window is scored by its mean highlight; within a video the model's order stands."""
    from app.answering.trained import comparable_windows

    grid = TimeGrid(1.0, 10.0)
    curve = np.array([0.1, 0.1, 0.9, 0.9, 0.2, 0.2, 0.6, 0.6, 0.3, 0.3])
    model_order = [Window(4.0, 6.0, 0.5), Window(2.0, 4.0, 0.3), Window(8.0, 10.0, 0.1)]  # means .2, .9, .3
    got = comparable_windows(model_order, curve, grid)
    assert [(w.start, w.end) for w in got] == [(w.start, w.end) for w in model_order]
    assert [w.score for w in got] == pytest.approx([0.2, 0.2, 0.2])
    assert [w.score for w in comparable_windows(model_order[1:], curve, grid)] == pytest.approx([0.9, 0.3])
