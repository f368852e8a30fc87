"""Time in answers: every moment says when it happened, questions and filters may say when to look, and "where
did I put my keys" puts the latest confident moment first (controlled embeddings: the keys are red)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

from app.answering.when import InvalidTimeRange, NothingAtThatTime, explicit_range, read_time
from app.cli import main
from app.service import EgoRecall
from app.settings import Settings

FPS = 10.0
# name -> (recorded at, local time of this machine; seconds; spans). The keys are put down on three days.
VIDEOS = {
    "monday.mp4": ("2026-11-30T08:00", 20.0, {"red": [(5.0, 8.0)]}),
    "wednesday.mp4": ("2026-12-02T18:30", 20.0, {"red": [(12.0, 15.0)], "green": [(2.0, 4.0)]}),
    "thursday.mp4": ("2026-12-03T07:45", 20.0, {"red": [(9.0, 12.0)]}),
}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).astimezone().timestamp()


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    root = tmp_path_factory.mktemp("week")
    settings = Settings(library=root / "lib", device="cpu")
    service = EgoRecall(settings, encoder=ColorEncoder())
    for name, (when, seconds, spans) in VIDEOS.items():
        utc = datetime.fromtimestamp(ts(when), timezone.utc)
        meta = {"creation_time": utc.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}  # UTC, as cameras write it
        path = write_video(
            root / name, seconds=seconds, fps=FPS, width=64, height=48, frame=colored_frames(spans, FPS), metadata=meta
        )
        (result,) = service.index([path])
        assert result.ok and result.record.recorded_source == "container"
    return settings


def service_of(settings) -> EgoRecall:
    return EgoRecall(settings, encoder=ColorEncoder())


def test_every_moment_carries_its_wall_clock_time(week):
    answer = service_of(week).ask("where is the cup", mode="zeroshot", k=2, clips=False)
    top = answer.moments[0]
    assert top.video_name == "wednesday.mp4" and top.recorded_at == pytest.approx(ts("2026-12-02T18:30") + top.start)
    assert top.when.startswith("Wed 2 Dec, 18:3") and answer.to_dict()["moments"][0]["when"] == top.when


def test_where_did_i_put_my_keys_means_the_last_time(week):
    service = service_of(week)
    answer = service.ask("where did I put my keys?", mode="zeroshot", k=3, clips=False)
    assert answer.ordered == "last" and answer.moments[0].video_name == "thursday.mp4"
    assert {m.video_name for m in answer.moments} == {"monday.mp4", "wednesday.mp4", "thursday.mp4"}
    first = service.ask("when did I first put down the keys", mode="zeroshot", k=3, clips=False)
    assert first.ordered == "first" and [m.video_name for m in first.moments] == [
        "monday.mp4",
        "wednesday.mp4",
        "thursday.mp4",
    ]  # the question asked for an order: the confident moments follow in it


def test_questions_and_filters_say_when_to_look(week):
    service = service_of(week)
    answer = service.ask("where did I put my keys on 2 December?", mode="zeroshot", k=3, clips=False)
    assert answer.searching == "on 2 december, Wed 2 Dec"
    assert {m.video_name for m in answer.moments} == {"wednesday.mp4"}
    filtered = service.ask(
        "where are my keys", mode="zeroshot", k=3, clips=False, since="2026-11-30T00:00", until="2026-12-01T00:00"
    )
    assert {m.video_name for m in filtered.moments} == {"monday.mp4"} and filtered.searching
    with pytest.raises(NothingAtThatTime, match="no video"):
        service.ask("where are my keys on 25 December", mode="zeroshot", clips=False)
    with pytest.raises(InvalidTimeRange):
        service.ask("keys", mode="zeroshot", clips=False, since="2026-12-03T00:00", until="2026-12-01T00:00")


def test_the_cli_refuses_an_unreadable_time_before_any_work(week, capsys):
    lib = str(week.library)
    rc = main(["ask", "where are my keys", "--library", lib, "--no-clips", "--since", "not a time"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and err.startswith("error: ") and "YYYY-MM-DD" in err and err.count("\n") == 1


def test_a_last_time_question_answers_only_the_few_videos_the_search_ranks_best(tmp_path):
    """The latest confident moment comes from the videos answered: the more of them, the more later ones where the
    object is merely in view. So "where did I put X" answers at most RECENCY_VIDEOS of the best-matching videos
    (zero-shot otherwise answers up to eight); other questions keep the full budget."""
    from app.answering.recency import RECENCY_VIDEOS

    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder=ColorEncoder())
    for day in range(RECENCY_VIDEOS + 2):  # the keys (red) on screen every day; the cup (green) too
        meta = {"creation_time": f"2026-11-{20 + day:02d}T08:00:00.000000Z"}
        spans = {"red": [(2.0 + day % 3, 5.0 + day % 3)], "green": [(8.0, 10.0)]}
        frame = colored_frames(spans, FPS)
        path = write_video(
            tmp_path / f"day{day}.mp4", seconds=12.0, fps=FPS, width=64, height=48, frame=frame, metadata=meta
        )
        assert service.index([path])[0].ok
    last = service.ask("where did I put my keys?", mode="zeroshot", k=5, clips=False)
    assert last.ordered == "last" and last.candidates == RECENCY_VIDEOS
    latest = max((m for m in last.moments), key=lambda m: m.recorded_at)
    assert last.moments[0] == latest  # the latest of the videos answered comes first
    other = service.ask("how many cups did I see?", mode="zeroshot", k=5, clips=False)
    assert other.ordered is None and other.candidates == RECENCY_VIDEOS + 2  # a small library: every video


NOW = datetime(2026, 12, 6, 15, 0).timestamp()  # a Sunday afternoon


@pytest.mark.parametrize(
    "question,rest,start,end,said",
    [
        (
            "where did I put my keys yesterday",
            "where did I put my keys",
            "2026-12-05T00:00",
            "2026-12-06T00:00",
            "yesterday, Sat 5 Dec",
        ),
        (
            "what did I eat this morning?",
            "what did I eat?",
            "2026-12-06T05:00",
            "2026-12-06T12:00",
            "this morning, Sun 6 Dec",
        ),
        (
            "where was the mug on Monday",
            "where was the mug",
            "2026-11-30T00:00",
            "2026-12-01T00:00",
            "on monday, Mon 30 Nov",
        ),
        (
            "did I water the plants last week",
            "did I water the plants",
            "2026-11-23T00:00",
            "2026-11-30T00:00",
            "last week, Mon 23 Nov - Sun 29 Nov",
        ),
        (
            "where were my glasses on 3 December",
            "where were my glasses",
            "2026-12-03T00:00",
            "2026-12-04T00:00",
            "on 3 december, Thu 3 Dec",
        ),
        (
            "yesterday evening, where did I leave the phone",
            "where did I leave the phone",
            "2026-12-05T17:00",
            "2026-12-05T22:00",
            "yesterday evening, Sat 5 Dec",
        ),
        (
            "where is my bag 2 days ago",
            "where is my bag",
            "2026-12-04T00:00",
            "2026-12-05T00:00",
            "2 days ago, Fri 4 Dec",
        ),
        (
            "where did I put my glasses last night",
            "where did I put my glasses",
            "2026-12-05T17:00",
            "2026-12-06T05:00",
            "last night, Sat 5 Dec",
        ),
        (
            "where did I put my keys an hour ago",
            "where did I put my keys",
            "2026-12-06T13:30",
            "2026-12-06T14:30",
            "an hour ago, 13:30-14:30",
        ),
        (
            "where did I put the keys at 8:15 this morning?",
            "where did I put the keys?",
            "2026-12-06T07:45",
            "2026-12-06T08:45",
            "at 8:15, this morning, Sun 6 Dec",
        ),
        (  # a clock time later than now today: its latest past occurrence, yesterday
            "where is my bag at 4:30 pm",
            "where is my bag",
            "2026-12-05T16:00",
            "2026-12-05T17:00",
            "at 4:30 pm, Sat 5 Dec",
        ),
        (
            "where did I put the keys the day before yesterday",
            "where did I put the keys",
            "2026-12-04T00:00",
            "2026-12-05T00:00",
            "the day before yesterday, Fri 4 Dec",
        ),
        (
            "where are my keys two days ago",
            "where are my keys",
            "2026-12-04T00:00",
            "2026-12-05T00:00",
            "two days ago, Fri 4 Dec",
        ),
        (  # said on a Sunday: this weekend is the one under way, last weekend the one before
            "where did I leave the charger over the weekend",
            "where did I leave the charger",
            "2026-12-05T00:00",
            "2026-12-07T00:00",
            "over the weekend, Sat 5 Dec - Sun 6 Dec",
        ),
        (
            "where did I put my passport last weekend",
            "where did I put my passport",
            "2026-11-28T00:00",
            "2026-11-30T00:00",
            "last weekend, Sat 28 Nov - Sun 29 Nov",
        ),
        (
            "where did I put my passport last month",
            "where did I put my passport",
            "2026-11-01T00:00",
            "2026-12-01T00:00",
            "last month, November 2026",
        ),
        (  # a vague count of days is a stretch of whole days
            "where did I put my keys a few days ago",
            "where did I put my keys",
            "2026-12-01T00:00",
            "2026-12-05T00:00",
            "a few days ago, Tue 1 Dec - Fri 4 Dec",
        ),
    ],
)
def test_time_words(question, rest, start, end, said):
    text, when = read_time(question, NOW)
    assert text == rest and when.said == said
    assert (when.since, when.until) == (ts(start), ts(end))


@pytest.mark.parametrize(
    "since, until, start, end",
    [
        ("yesterday", None, "2026-12-05T00:00", None),  # from the start of the day named
        (None, "yesterday", None, "2026-12-06T00:00"),  # up to its end
        ("Monday", "yesterday", "2026-11-30T00:00", "2026-12-06T00:00"),
        ("last week", "this morning", "2026-11-23T00:00", "2026-12-06T12:00"),
        ("2026-12-01", "2 days ago", "2026-12-01T00:00", "2026-12-05T00:00"),  # a date and words mix
    ],
)
def test_filters_take_the_time_words_a_question_takes(since, until, start, end):
    when = explicit_range(since, until, NOW)
    assert (when.since, when.until) == (None if start is None else ts(start), None if end is None else ts(end))
    assert when.said.startswith(f"{since or 'the beginning'} - {until or 'now'} (")  # said back in the user's words


def test_filters_given_as_times_are_said_back_as_times():
    assert explicit_range("2026-12-01T08:00", None, NOW).said == "Tue 1 Dec, 08:00 - now"


@pytest.mark.parametrize("since", ["not a time", "yesterday at the shop", "tomorrow-ish"])
def test_filters_refuse_what_is_neither_a_time_nor_time_words(since):
    with pytest.raises(InvalidTimeRange, match="YYYY-MM-DD.*in words such as 'yesterday'"):
        explicit_range(since, None, NOW)


@pytest.mark.parametrize(
    "question",
    ["where did I put the may flowers", "how many times did I open the fridge", "where did I put 2 cups at 3 places"],
)
def test_questions_without_a_time(question):
    assert read_time(question, NOW) == (question, None)
