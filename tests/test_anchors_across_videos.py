""" "Where was the cup before I picked up the phone?" over a library: the anchor event is found in whichever
video it happened in, and orders the moments of the others (controlled embeddings: the cup is green, the phone
blue; see ``answer_fixtures``)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

from app.service import EgoRecall
from app.settings import Settings
from models.grid import TimeGrid
from models.zeroshot import anchor_occurrences, anchor_span, order_by_occurrences

FPS = 10.0
# One morning: the cup is seen in the first recording, the phone picked up in the second (the cup seen again
# after that), and the cup seen once more in the evening.
VIDEOS = {
    "morning-1.mp4": ("2026-12-01T08:00", {"green": [(5.0, 8.0)]}),
    "morning-2.mp4": ("2026-12-01T08:05", {"blue": [(6.0, 9.0)], "green": [(14.0, 17.0)]}),
    "evening.mp4": ("2026-12-01T18:00", {"green": [(10.0, 13.0)]}),
}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("day")
    settings = Settings(library=root / "lib", device="cpu")
    service = EgoRecall(settings, encoder=ColorEncoder())
    for name, (when, spans) in VIDEOS.items():
        utc = datetime.fromtimestamp(datetime.fromisoformat(when).astimezone().timestamp(), timezone.utc)
        meta = {"creation_time": utc.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}
        path = write_video(
            root / name, seconds=20.0, fps=FPS, width=64, height=48, frame=colored_frames(spans, FPS), metadata=meta
        )
        (result,) = service.index([path])
        assert result.ok
    return settings


def test_before_an_event_in_another_video_is_the_sighting_before_it(day):
    service = EgoRecall(day, encoder=ColorEncoder())
    answer = service.ask("where was the cup before I picked up the phone?", mode="zeroshot", k=3, clips=False)
    top = answer.moments[0]
    assert answer.ordered == "before" and top.video_name == "morning-1.mp4" and 4.0 <= top.start <= 8.0
    assert "before that event" in answer.order_note and answer.to_dict()["order_note"] == answer.order_note


def test_after_an_event_in_another_video_are_the_sightings_after_it(day):
    """The morning's phone orders the evening's recording too: both later sightings come before the one that
    was earlier (each video's own noise would have found a 'phone' in every video)."""
    service = EgoRecall(day, encoder=ColorEncoder())
    answer = service.ask("where was the cup after I picked up the phone?", mode="zeroshot", k=3, clips=False)
    names = [m.video_name for m in answer.moments]
    assert answer.ordered == "after" and set(names[:2]) == {"morning-2.mp4", "evening.mp4"}
    assert names[2] == "morning-1.mp4"


def test_inside_one_video_the_clip_orders_itself(day):
    service = EgoRecall(day, encoder=ColorEncoder())
    vid = next(v.id for v in service.videos() if v.name == "morning-2.mp4")
    answer = service.ask("where was the cup after I picked up the phone?", mode="zeroshot", video_id=vid, clips=False)
    assert answer.ordered is None and 13.0 <= answer.moments[0].start <= 17.0


def test_a_video_where_the_event_never_happens_has_no_occurrence_against_the_librarys_range():
    grid = TimeGrid(rate_hz=2.0, duration=60.0)
    times = grid.sample_times()
    rng = np.random.default_rng(1)
    quiet = 0.1 + 0.02 * rng.standard_normal(times.size)  # the fridge never opens here
    busy = 0.1 + 0.02 * rng.standard_normal(times.size) + 0.6 * np.exp(-0.5 * ((times - 20.0) / 1.5) ** 2)
    assert anchor_occurrences(quiet, grid).size >= 1  # on its own range, noise peaks count
    lo_q, hi_q = anchor_span(quiet, grid)
    lo_b, hi_b = anchor_span(busy, grid)
    span = (min(lo_q, lo_b), max(hi_q, hi_b))
    assert anchor_occurrences(quiet, grid, span=span).size == 0
    assert np.allclose(anchor_occurrences(busy, grid, span=span), [20.0], atol=1.0)


def test_occurrences_outside_the_clip_order_it_across_the_boundary():
    grid = TimeGrid(rate_hz=1.0, duration=60.0)
    times = grid.sample_times()
    seen = np.exp(-0.5 * ((times - 10) / 2) ** 2) + np.exp(-0.5 * ((times - 55) / 2) ** 2)
    # the event 10 s after this clip ends: the sighting at 55 s is shortly before it, the one at 10 s is not
    before = order_by_occurrences(seen, np.array([70.0]), "before", grid)
    assert abs(times[np.argmax(before)] - 55) <= 1
    # an event 10 s before the clip starts: the sighting at 10 s is shortly after it
    after = order_by_occurrences(seen, np.array([-10.0]), "after", grid)
    assert abs(times[np.argmax(after)] - 10) <= 1
    assert np.array_equal(order_by_occurrences(seen, np.zeros(0), "after", grid), seen)


def test_across_a_library_only_the_wrong_side_is_lowered():
    """Inside one clip "after Y" means shortly after; across recordings the first sighting may be an hour
    later, so a far moment on the right side keeps its score (the ranking then puts the nearest first)."""
    grid = TimeGrid(rate_hz=1.0, duration=600.0)
    times = grid.sample_times()
    seen = np.exp(-0.5 * ((times - 400) / 2) ** 2)  # 400 s after an opening 100 s before the clip
    near = order_by_occurrences(seen, np.array([-100.0]), "after", grid)
    anywhere = order_by_occurrences(seen, np.array([-100.0]), "after", grid, horizon=False)
    assert near.max() < seen.max() and np.array_equal(anywhere, seen)
    wrong_side = order_by_occurrences(seen, np.array([700.0]), "after", grid, horizon=False)
    assert wrong_side.max() < seen.max()


def test_the_event_is_looked_for_near_the_candidates_in_time():
    """Half a day either way of a candidate video (overlaps count); a video without a time brings only itself."""
    from types import SimpleNamespace

    from app.answering.anchoring import ANCHOR_HORIZON_S, near_in_time

    hour = 3600.0

    def video(vid, at, duration=600.0):
        return SimpleNamespace(id=vid, recorded_at=at, duration=duration)

    library = [
        video("mon-8h", 8 * hour),
        video("mon-19h", 19 * hour),
        video("tue-7h", 31 * hour),
        video("fri-8h", 104 * hour),
        video("untimed", None),
    ]
    assert ANCHOR_HORIZON_S == 12 * hour
    near = near_in_time(library, [library[0]])
    assert [v.id for v in near] == ["mon-8h", "mon-19h"]  # Tuesday 7:00 is 22 h 50 min after its end
    assert [v.id for v in near_in_time(library, [library[1]])] == ["mon-8h", "mon-19h", "tue-7h"]
    assert [v.id for v in near_in_time(library, [library[4]])] == ["untimed"]
    long_day = [video("all-day", 0.0, duration=20 * hour), video("next-evening", 31 * hour)]
    assert [v.id for v in near_in_time(long_day, [long_day[0]])] == ["all-day", "next-evening"]
