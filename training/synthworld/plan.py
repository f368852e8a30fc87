"""Planning a synthetic world: every video's script, clips and questions decided before any pixel is drawn.

Every video draws from its own seed stream (``SeedSequence([seed, index])``), so video ``i`` is the same
whether 3 or 300 videos are generated; only the train/val split depends on the count. The settings that shape
a world (:class:`SynthConfig`) live here, with their defaults; :mod:`training.synthworld.generate` renders and
writes what is planned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from models.errors import EgoRecallError
from training.synthworld.catalog import DEFAULT_HOUSE, House
from training.synthworld.queries import ClipView, Query, clip_queries
from training.synthworld.script import Event, Sighting, plan_video, sightings
from training.synthworld.style import WorldStyle, video_style, world_styles

UID_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5c9e-8a10-5e9a7d3c2b01")


class SynthWorldError(EgoRecallError):
    """Bad generator settings or an output folder that would lose someone's files."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a generated world; defaults live here only."""

    n_videos: int = 12
    seed: int = 0
    duration: float = 90.0  # mean seconds per video
    duration_jitter: float = 0.2  # each video lasts duration * U(1 - j, 1 + j)
    size: int = 128  # square frames, pixels
    fps: float = 15.0
    val_fraction: float = 0.25
    max_queries_per_clip: int = 10
    two_clip_probability: float = 0.5  # videos of 60 s or more are sometimes cut into two clips
    crf: int = 23
    workers: int = 1
    style: str = "home"
    """How the world looks, moves and talks (:mod:`training.synthworld.style`): a tuning style (``home``,
    ``terrace``, ``bungalow``, ``cabin``), a report style (``flat``, ``cottage``, ``loft``), or a mix of one family
    (``home+terrace+bungalow``: several houses, video ``i`` in the ``i``-th, cyclically)."""
    val_style: str | None = None
    """In a mix of houses, the one whose videos -- all of them, and only they -- are the val split
    (``val_fraction`` is then unused): validation in a house training never saw, as a user's home is."""
    recorded_from: str | None = None
    """A week of recordings: video ``i`` is recorded on day ``i // videos_per_day`` after this UTC time
    (``2026-11-30T08:00:00Z``), ``hours_between`` hours after the day's previous one, and the time is written
    into the file as cameras do (``creation_time``). None: no recording times."""
    videos_per_day: int = 3
    hours_between: float = 5.0

    def validate(self) -> None:
        problems = []
        try:
            houses = [s.name for s in world_styles(self.style)]
        except KeyError as exc:
            houses = []
            problems.append(f"--style: {exc.args[0]}")
        if self.n_videos < 1:
            problems.append(f"--videos must be at least 1 (got {self.n_videos})")
        if not 10.0 <= self.duration <= 3600.0:
            problems.append(f"--duration must be between 10 and 3600 seconds (got {self.duration})")
        if not 0.0 <= self.duration_jitter < 1.0:
            problems.append(f"duration jitter must be in [0, 1) (got {self.duration_jitter})")
        if not 32 <= self.size <= 1024:
            problems.append(f"--size must be between 32 and 1024 pixels (got {self.size})")
        if not 1.0 <= self.fps <= 60.0:
            problems.append(f"--fps must be between 1 and 60 (got {self.fps})")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")
        if self.max_queries_per_clip < 1:
            problems.append(f"at least one query per clip is needed (got {self.max_queries_per_clip})")
        if self.workers < 1:
            problems.append(f"--workers must be at least 1 (got {self.workers})")
        if self.recorded_from is not None and recorded_at(self, 0) is None:
            problems.append(
                f"recorded_from must be an ISO time such as 2026-11-30T08:00:00Z (got {self.recorded_from!r})"
            )
        if self.val_style is not None:
            if self.val_style not in houses or len(houses) < 2:
                problems.append(
                    f"--val-house (val_style) must be one of the houses of a mix (got {self.val_style!r} for style "
                    f"{self.style!r})"
                )
            elif self.n_videos < len(houses):
                problems.append(f"a world holding its val house apart needs at least {len(houses)} videos")
        if self.videos_per_day < 1 or self.hours_between <= 0:
            problems.append("videos_per_day must be at least 1 and hours_between above 0")
        if problems:
            raise SynthWorldError("; ".join(problems) + ".")


def recorded_at(cfg: SynthConfig, index: int) -> float | None:
    """Unix time video ``index`` of a week-long world was recorded (None without ``recorded_from``)."""
    if cfg.recorded_from is None:
        return None
    try:
        start = datetime.fromisoformat(cfg.recorded_from.replace("Z", "+00:00"))
    except ValueError:
        return None
    start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    day, slot = divmod(index, cfg.videos_per_day)
    return start.timestamp() + day * 86_400.0 + slot * cfg.hours_between * 3600.0


@dataclass
class ClipPlan:
    clip_uid: str
    annotation_uid: str
    start: float
    end: float
    queries: list[Query] = field(default_factory=list)


@dataclass
class VideoPlan:
    """One video, fully decided before any pixel is drawn."""

    index: int
    video_uid: str
    duration: float
    n_frames: int
    events: list[Event]
    sightings: list[Sighting]
    clips: list[ClipPlan]
    motion_seed: int
    split: str = "train"

    @property
    def file(self) -> str:
        return f"videos/{self.video_uid}.mp4"


def world_uid(seed: int, *parts) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, "/".join(["egorecall-synthworld", str(seed), *map(str, parts)])))


def _plan_clips(rng: np.random.Generator, duration: float, cfg: SynthConfig) -> list[tuple[float, float]]:
    """Real time ranges of the video (rarely starting at 0), like Ego4D's clips of longer videos."""
    if duration >= 60.0 and rng.random() < cfg.two_clip_probability:
        a = round(float(rng.uniform(0.0, 0.05 * duration)), 1)
        m = round(float(rng.uniform(0.4, 0.6) * duration), 1)
        b = round(duration - float(rng.uniform(0.0, 0.05 * duration)), 1)
        return [(a, m), (m, b)]
    a = round(float(rng.uniform(0.0, 0.1 * duration)), 1)
    b = round(duration - float(rng.uniform(0.0, 0.08 * duration)), 1)
    return [(a, b)]


def plan_world_video(index: int, cfg: SynthConfig, house: House = DEFAULT_HOUSE) -> VideoPlan:
    """Script, clips and queries of video ``index`` of world ``cfg.seed`` (no rendering)."""
    meta_ss, script_ss, motion_ss, query_ss = np.random.SeedSequence([cfg.seed, index]).spawn(4)
    meta = np.random.default_rng(meta_ss)
    style = video_style(cfg.style, index)
    house = style.house(house)
    j = cfg.duration_jitter
    # Whole seconds: a whole number of frames at any integer frame rate, and event times on the 0.1 s grid.
    duration = float(max(10, round(cfg.duration * float(meta.uniform(1.0 - j, 1.0 + j)))))
    n_frames = int(round(duration * cfg.fps))
    events = plan_video(house, script_ss, duration, style.duration_scale)
    seen = sightings(events, house)
    uid = world_uid(cfg.seed, "video", index)
    qrng = np.random.default_rng(query_ss)
    words = style_rng(cfg, index, "questions")  # its own stream: the canonical world stays byte-identical
    clips = []
    for k, (start, end) in enumerate(_plan_clips(meta, duration, cfg)):
        view = ClipView.of(start, end, events, seen, house)
        queries = [_styled(q, style, words, start, end) for q in clip_queries(view, qrng, cfg.max_queries_per_clip)]
        clips.append(
            ClipPlan(world_uid(cfg.seed, "clip", index, k), world_uid(cfg.seed, "nlq", index, k), start, end, queries)
        )
    motion_seed = int(np.random.default_rng(motion_ss).integers(2**31))
    return VideoPlan(index, uid, duration, n_frames, events, seen, clips, motion_seed)


def style_rng(cfg: SynthConfig, index: int, what: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, index, {"questions": 7, "narrations": 8}[what]]))


def _styled(q: Query, style: WorldStyle, rng: np.random.Generator, clip_start: float, clip_end: float) -> Query:
    """The question in the style's words, its answer window drawn with the style's padding (within the clip)."""
    if style.answer_pad_s:
        q = replace(
            q,
            start=round(max(clip_start, q.start - style.answer_pad_s), 3),
            end=round(min(clip_end, q.end + style.answer_pad_s), 3),
        )
    return replace(q, query=style.question(q.query, rng), slot_x=style.rename(q.slot_x))


def assign_splits(plans: list[VideoPlan], cfg: SynthConfig) -> None:
    """Whole videos go to val (never split across train and val); at least one each when there are two."""
    if cfg.val_style is not None:
        for p in plans:
            p.split = "val" if video_style(cfg.style, p.index).name == cfg.val_style else "train"
        return
    n = len(plans)
    n_val = int(round(n * cfg.val_fraction))
    if cfg.val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    order = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2**31 - 1])).permutation(n)
    val = set(order[:n_val].tolist())
    for p in plans:
        p.split = "val" if p.index in val else "train"
