"""Memory across days: a synthetic week of recordings, questions whose answers are defined by time.

    python bench/bench_days.py            # 24 videos (12 held out = the week: 4 days x 3), ~5 min the first time
    python bench/bench_days.py --quick    # a smoke run

What runs. The demo's pipeline on a world whose videos carry recording times in their own files (three a day,
``creation_time`` as cameras write it): ``egorecall-small`` pretrained on the training videos' narrations; the
*held-out* videos alone make the week's library (indexed with that encoder, times read from the files). The
objects move between sessions, so the keys are put down on several days.

Questions, from the world's event log (``world.json``), in the world's own words:

* ``last``: "where did I put the X?" asked at the end of the week, for every object put down in two or more
  videos: the answer is the *last* put-down before that time;
* ``first``: "where did I first put the X?", the same objects: the answer is the *first* put-down of the week;
* ``yesterday``: "where did I put the X yesterday?" / "what did I take out of the Y yesterday?" asked on the
  evening after a day on which it happened exactly once, for objects (places) it also happened to on other
  days: the answer is that day's;
* ``before`` / ``after``: "where was the X before (after) I opened the Y yesterday?" asked on the next evening,
  for a Y opened exactly once that day and on other days too: the answer is X's last sighting before (first
  after) that opening on that day, which may lie in another of the day's recordings (reported apart as
  ``... across``) -- unless X was picked up in between (two answers: skipped).

Questions are written in each world's own words: its style's question rules and renames (the report week's
"keyring", "stash"), with the time word appended.

Each is answered by zero-shot three ways: **score only** (every video of the week ranked by score, the time
words left out), **time-aware** (``app.answering.answer_question`` at the question's time: time words as a
range, the latest confident moment first), and **inside its own video** (the answer's video given: the ceiling
a week can reach). ``--corpus DIR`` answers with a corpus's encoder and final checkpoint instead (``bench_transfer``'s
``<work>/corpus``; the week indexed anew with that encoder), as a user who fetched the default checkpoint would.
Printed per kind: rank 1 in the right video, R@1/R@5 at IoU 0.3/0.5 counting a moment in a
wrong video as a miss, with chance (1 / the videos in scope) beside.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.checkpoint_copies import copy_checkpoint, fitted_as_now  # noqa: E402
from bench.machine import cpu_model  # noqa: E402

WEEK_START = "2026-11-30T07:00:00Z"
TUNING_WEEK = ("home", 4242)
REPORT_WEEK = ("loft", 4343)
"""(style, seed) of the week tuned on (the default) and of the week reported on (``--report``): other words,
pace, camera and house, never tuned on. Neither seed is used by a test, the demo or another benchmark."""


@dataclass(frozen=True)
class TimedQuestion:
    kind: str
    text: str
    asked_at: float
    video_uid: str
    start: float
    end: float
    """The answer: seconds in ``video_uid``."""


def week_config(quick: bool, report: bool = False, seed: int | None = None):
    """The week's demo settings; ``seed`` draws another tuning week (the report week is one, never tuned on)."""
    from app.demo import DemoConfig

    style, seed = REPORT_WEEK if report else (TUNING_WEEK[0], seed or TUNING_WEEK[1])
    full = DemoConfig(
        videos=24, duration=90.0, seed=seed, style=style, val_fraction=0.5, recorded_from=WEEK_START, world_workers=1
    )
    if not quick:
        return full
    return replace(full, videos=12, duration=60.0, pretrain_steps=30, pretrain_batch=32, train_steps=30, eval_every=30)


def day_of(t: float) -> datetime:
    """The day of a moment on this machine's clock, as "yesterday" is read."""
    return datetime.fromtimestamp(t).replace(hour=0, minute=0, second=0, microsecond=0)


def evening_after(day: datetime) -> float:
    return (day + timedelta(days=1, hours=21)).timestamp()  # 21:00 the next day


class Wording:
    """A canonical question in the world's own words (its style's rules and renames), a time word appended."""

    def __init__(self, world: dict, stream: int = 0) -> None:
        """``stream``: another kind's own draws, so adding a kind leaves the others' wording as it was."""
        from training.synthworld.style import world_style

        self.style = world_style(world["style"]["name"])
        seed = int(world["config"].get("seed", 0)) + 7
        self.rng = np.random.default_rng((seed, stream) if stream else seed)

    def __call__(self, canonical: str, when: str = "") -> str:
        text = self.style.question(canonical, self.rng)
        return f"{text.rstrip('?')} {when}".strip() + "?" if when else text


def questions(world: dict) -> list[TimedQuestion]:
    """The week's time-defined questions (see the module docstring), from the held-out videos' event log."""
    say = Wording(world)
    videos = [v for v in world["videos"] if v["split"] == "val"]
    puts, takes = defaultdict(list), defaultdict(list)  # object -> [(time, uid, start, end)], place -> ...
    for v in videos:
        for e in v["events"]:
            at = v["recorded_at"] + e["start"]
            if e["kind"] == "put":
                puts[e["obj"]].append((at, v["video_uid"], e["start"], e["end"]))
            elif e["kind"] == "pick" and e["narration"] and " out of " in e["narration"]:
                takes[e["place"]].append((at, v["video_uid"], e["start"], e["end"], e["obj"]))
    end_of_week = max(v["recorded_at"] + v["duration"] for v in videos) + 3600.0
    out, firsts, say_first = [], [], Wording(world, stream=1)
    for obj, events in sorted(puts.items()):
        if len({uid for _, uid, _, _ in events}) >= 2:
            at, uid, s, e = max(events)
            out.append(TimedQuestion("last", say(f"Where did I put the {obj}?"), end_of_week, uid, s, e))
            at, uid, s, e = min(events)
            firsts.append(
                TimedQuestion("first", say_first(f"Where did I first put the {obj}?"), end_of_week, uid, s, e)
            )

    for table, phrase in ((puts, "Where did I put the {}?"), (takes, "What did I take out of the {}?")):
        for key, events in sorted(table.items()):
            days = defaultdict(list)
            for ev in events:
                days[day_of(ev[0])].append(ev)
            if len(days) < 2:
                continue
            for day, evs in sorted(days.items()):
                if len(evs) != 1:
                    continue
                at, uid, s, e = evs[0][:4]
                out.append(
                    TimedQuestion("yesterday", say(phrase.format(key), "yesterday"), evening_after(day), uid, s, e)
                )
    return out + ordered_questions(videos, say) + firsts


def ordered_questions(videos: list[dict], say: Wording) -> list[TimedQuestion]:
    """``before`` / ``after`` questions (module docstring): anchors opened once on their day and on other days."""
    opens, sights, picks = defaultdict(list), defaultdict(list), defaultdict(list)
    for v in videos:
        t0 = v["recorded_at"]
        for e in v["events"]:
            if e["kind"] == "open":
                opens[e["place"]].append((t0 + e["start"], t0 + e["end"]))
            elif e["kind"] == "pick":
                picks[e["obj"]].append(t0 + e["start"])
        for s in v["sightings"]:
            sights[s["obj"]].append((t0 + s["start"], t0 + s["end"], v["video_uid"], s["start"], s["end"]))
    out = []
    for place, times in sorted(opens.items()):
        days = defaultdict(list)
        for y in times:
            days[day_of(y[0])].append(y)
        if len(days) < 2:
            continue
        for day, ys in sorted(days.items()):
            if len(ys) != 1:
                continue
            y0, y1 = ys[0]
            anchor_video = next(
                v["video_uid"] for v in videos if v["recorded_at"] <= y0 <= v["recorded_at"] + v["duration"]
            )
            for obj, seen in sorted(sights.items()):
                on_day = sorted(x for x in seen if day_of(x[0]) == day)
                for relation, pick in (
                    ("before", [x for x in on_day if x[1] <= y0][-1:]),
                    ("after", [x for x in on_day if x[0] >= y1][:1]),
                ):
                    if not pick:
                        continue
                    a, b, uid, s, e = pick[0]
                    lo, hi = (b, y0) if relation == "before" else (y1, a)
                    if any(lo <= t <= hi for t in picks[obj]):
                        continue  # picked up in between: "where was it" has two answers
                    kind = relation + (" across" if uid != anchor_video else "")
                    text = say(f"Where was the {obj} {relation} I opened the {place}?", "yesterday")
                    out.append(TimedQuestion(kind, text, evening_after(day), uid, s, e))
    return out


def hits(moments, q: TimedQuestion, k: int, iou: float) -> bool:
    from models.windows import temporal_iou

    return any(
        Path(name).stem == q.video_uid and temporal_iou((s, e), (q.start, q.end)) > iou for name, s, e in moments[:k]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", action="store_true", help="the report week (another style); never tune on it")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="answer with a corpus's encoder and checkpoint instead of the week's own (bench_transfer's "
        "<work>/corpus folder), as a user who fetched the default checkpoint would",
    )
    ap.add_argument("--seed", type=int, default=None, help=f"another tuning week (default {TUNING_WEEK[1]})")
    args = ap.parse_args(argv)
    if args.report and args.seed is not None:
        ap.error("--seed draws tuning weeks; the report week is fixed")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from app.demo import run_demo
    from app.service import EgoRecall
    from app.settings import Settings
    from models.clip_encoder import EncoderSpec

    other = args.seed is not None and args.seed != TUNING_WEEK[1]
    name = (
        "days"
        + ("-report" if args.report else "")
        + (f"-seed{args.seed}" if other else "")
        + ("-quick" if args.quick else "")
    )
    work = args.work or Path(__file__).resolve().parent / "out" / name
    config = week_config(args.quick, args.report, args.seed)
    started = time.monotonic()
    report = run_demo(EgoRecall(Settings(library=work / "demo-library")), config)
    world = json.loads((report.world / "world.json").read_text())
    answered_by, week_dir = report, work / "week"
    if args.corpus is not None:  # the corpus's encoder indexes the week, its checkpoint answers
        answered_by = corpus_report(args.corpus)
        week_dir = work / f"week-{args.corpus.resolve().parent.name}"
    spec = EncoderSpec(config.model, str(answered_by.encoder))
    week = EgoRecall(Settings(library=week_dir), encoder_spec=spec)
    have = {Path(v.name).stem for v in week.videos()}
    todo = [report.world / v["file"] for v in world["videos"] if v["split"] == "val" and v["video_uid"] not in have]
    for result in week.index(todo):
        assert result.ok, result.error
    build_s = time.monotonic() - started
    videos = {Path(v.name).stem: v for v in week.videos()}
    assert all(v.recorded_source == "container" for v in videos.values()), "times must come from the files"
    # the demo's (or corpus's) checkpoint reads these features (same encoder): the week's auto mode fuses with it
    chosen = answered_by.checkpoint
    if chosen:
        if args.corpus is None:  # the week's own checkpoint, fitted on its demo's validation file
            demo = EgoRecall(Settings(library=work / "demo-library"))
            fitted_as_now(demo, chosen, report.world / "nlq_val.json")
        copy_checkpoint(answered_by.checkpoints_dir / chosen, week.settings.checkpoints_dir / chosen)
    qs = questions(world)

    rows: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for mode in ("zeroshot", "auto"):
        answerer = week.answerer(mode)
        for q in qs:
            for how, moments in answers(week, answerer, mode, q, videos).items():
                in_scope = (
                    len(videos)
                    if q.kind in ("last", "first")
                    else sum(aware_range_overlaps(v, q) for v in videos.values())
                )
                rows[(q.kind, mode, how)].append(
                    {
                        "video@1": bool(moments) and Path(moments[0][0]).stem == q.video_uid,
                        **{f"R{k}@{iou}": hits(moments, q, k, iou) for k in (1, 5) for iou in (0.3, 0.5)},
                        "chance_video@1": 1.0 / max(1, len(videos) if how == "score only" else in_scope),
                    }
                )

    days = len({datetime.fromtimestamp(v.recorded_at).date() for v in videos.values()})
    print(
        f"# Multi-day benchmark ({'quick' if args.quick else 'full'}, {config.style} week, seed {config.seed}): "
        f"{len(videos)} videos over {days} days, {len(qs)} questions"
    )
    if args.corpus is not None:
        print(f"answered with the corpus {args.corpus} (its encoder, checkpoint {chosen})")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"{time.strftime('%Y-%m-%d')}; world+pretrain+index {build_s:.0f} s\n"
    )
    print(
        "| kind | mode | answered | questions | rank 1 in the right video | chance | R@1@0.3 | R@5@0.3 | "
        "R@1@0.5 | R@5@0.5 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for (kind, mode, how), rs in sorted(rows.items()):
        mean = {key: 100.0 * float(np.mean([r[key] for r in rs])) for key in rs[0]}
        summary[f"{kind} / {mode} / {how}"] = {**mean, "questions": len(rs)}
        print(
            f"| {kind} | {mode} | {how} | {len(rs)} | {mean['video@1']:.1f} | {mean['chance_video@1']:.1f} | "
            f"{mean['R1@0.3']:.1f} | {mean['R5@0.3']:.1f} | {mean['R1@0.5']:.1f} | {mean['R5@0.5']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


def corpus_report(corpus: Path):
    """The finished corpus demo in ``corpus`` (every stage reused), its checkpoint the *final* one, as
    ``bench_transfer`` answers with."""
    from app.demo import DemoConfig, run_demo
    from app.service import EgoRecall
    from app.settings import Settings

    record = corpus / "demo" / "demo.json"
    if not record.is_file():
        raise SystemExit(f"{corpus} is not a corpus bench_transfer.py built (no demo/demo.json in it)")
    recorded = json.loads(record.read_text())["config"]
    report = run_demo(EgoRecall(Settings(library=corpus)), replace(DemoConfig(**recorded), world_workers=1))
    return replace(report, checkpoint=report.checkpoint.replace("-best", "-final"))


def answers(week, answerer, mode: str, q: TimedQuestion, videos: dict) -> dict[str, list]:
    """(video name, start, end) of the five moments of each way of answering ``q``."""
    from app.answering import answer_question, find_moments
    from app.answering.when import read_time

    text, _ = read_time(q.text, q.asked_at)
    ranking = find_moments(week.library, answerer, text, k=5)
    by_score = [(week.library.get(vid).name, w.start, w.end) for vid, w in ranking.ranked]
    aware = answer_question(week.library, answerer, q.text, asked_mode=mode, k=5, now=q.asked_at)
    own = answer_question(week.library, answerer, text, asked_mode=mode, k=5, video_id=videos[q.video_uid].id)
    return {
        "score only": by_score,
        "time-aware": [(m.video_name, m.start, m.end) for m in aware.moments],
        "inside its video": [(m.video_name, m.start, m.end) for m in own.moments],
    }


def aware_range_overlaps(record, q: TimedQuestion) -> bool:
    """Whether a video lies in the day a "yesterday" question names (its chance is 1 / those videos)."""
    from app.answering.when import read_time

    _, when = read_time(q.text, q.asked_at)
    return when is not None and when.overlaps(record.recorded_at, record.recorded_at + record.duration)


if __name__ == "__main__":
    sys.exit(main())
