"""'First' and 'last' order episodes, not single moments: picking the keys up and putting them down seconds later
look alike to a small encoder, and the earliest of them is the pick (bench/README.md, bench_days: "first")."""

from __future__ import annotations

from dataclasses import dataclass

from app.answering.recency import EPISODE_S, order_by_time
from models.questions import rewrite_question
from models.windows import Window


@dataclass
class Recording:
    recorded_at: float

    def moment_time(self, seconds: float) -> float:
        return self.recorded_at + seconds


RECORDS = {"monday": Recording(1_000_000.0), "friday": Recording(1_345_600.0)}


def ordered(question: str, per_video: dict[str, list[Window]]) -> list[tuple[str, Window]]:
    """``order_by_time`` without a calibration, each video's windows padded with unconfident ones far away."""
    background = [Window(300.0 + 10 * i, 303.0 + 10 * i, 0.1) for i in range(5)]
    per_video = {v: sorted(ws + background, key=lambda w: -w.score) for v, ws in per_video.items()}
    ranked = sorted(((v, w) for v, ws in per_video.items() for w in ws), key=lambda c: -c[1].score)
    result, order = order_by_time(ranked, per_video, RECORDS, rewrite_question(question), lambda v, w: None, None, 5)
    assert order is not None
    return result


def test_first_leads_with_the_best_moment_of_the_first_episode_not_its_earliest():
    pick, put = Window(10.0, 13.0, 0.80), Window(18.0, 21.0, 0.90)  # one episode: 8 s apart
    later = Window(40.0, 43.0, 0.85)
    result = ordered("where did I first put the keys?", {"monday": [put, pick], "friday": [later]})
    assert result[0] == ("monday", put)  # the earliest confident moment is the pick; the episode's best leads
    assert result[1] == ("monday", pick)  # the rest of the episode follows, then the next episode
    assert result[2] == ("friday", later)


def test_moments_further_apart_than_an_episode_keep_their_time_order():
    early = Window(10.0, 13.0, 0.80)
    late = Window(10.0 + EPISODE_S + 20.0, 13.0 + EPISODE_S + 20.0, 0.90)
    result = ordered("when did I first see the keys?", {"monday": [late, early]})
    assert [w for _, w in result][:2] == [early, late]
    result = ordered("when did I last see the keys?", {"monday": [late, early]})
    assert [w for _, w in result][:2] == [late, early]


def test_last_orders_recordings_by_time_and_an_episode_by_score():
    pick, put = Window(10.0, 13.0, 0.90), Window(18.0, 21.0, 0.86)
    old = Window(5.0, 8.0, 0.92)
    result = ordered("where did I last put the keys?", {"friday": [pick, put], "monday": [old]})
    assert result[:3] == [("friday", pick), ("friday", put), ("monday", old)]
