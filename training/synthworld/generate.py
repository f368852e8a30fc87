"""Generating a synthetic world on disk: videos, narrations, NLQ train/val files and the ground-truth log.

What is drawn and written is planned first (:mod:`training.synthworld.plan`: scripts, clips, questions, the
split). All JSON is written with fixed key order and rounded times, so the same seed gives byte-identical
annotation files.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from training.synthworld import ego4d_files as ego4d
from training.synthworld.catalog import DEFAULT_HOUSE, House
from training.synthworld.language import narration
from training.synthworld.plan import (
    SynthConfig,
    SynthWorldError,
    VideoPlan,
    assign_splits,
    plan_world_video,
    recorded_at,
    style_rng,
    world_uid,
)
from training.synthworld.style import describe_styles, video_style, world_styles

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
OUR_FILES = ("world.json", "narration.json", "nlq_train.json", "nlq_val.json", "README.txt")


@dataclass
class WorldSummary:
    out_dir: Path
    files: list[tuple[str, str]]  # (relative path, one-line description)
    n_videos: int
    seconds: float
    n_narrations: int
    n_train_queries: int
    n_val_queries: int
    train_videos: list[str]
    val_videos: list[str]

    def totals_line(self) -> str:
        return (
            f"{self.n_videos} videos, {self.seconds:.1f} s, {self.n_narrations} narrations, "
            f"{self.n_train_queries} train / {self.n_val_queries} val queries "
            f"({len(self.train_videos)} train / {len(self.val_videos)} val videos) in {self.out_dir}"
        )


# ---------------------------------------------------------------------- rendering (process-pool friendly)
_ASSETS: dict = {}


def _assets(house: House, size: int):
    from training.synthworld.render import SceneAssets

    key = (id(house), size)
    if key not in _ASSETS:
        _ASSETS[key] = SceneAssets(house, size)
    return _ASSETS[key]


def render_video_file(plan: VideoPlan, path: Path, cfg: SynthConfig, house: House = DEFAULT_HOUSE) -> int:
    """Render and encode one video (H.264 MP4); returns the file size. Writes to a temp name, then renames."""
    from indexing.mp4_writer import VideoWriter
    from training.synthworld.render import CameraMotion, VideoRenderer

    style = video_style(cfg.style, plan.index)
    motion = CameraMotion(style.shake, style.pan_period_s, style.step_hz)
    renderer = VideoRenderer(_assets(style.house(house), cfg.size), plan.events, cfg.fps, plan.motion_seed, motion)
    tmp = path.with_name(path.stem + ".partial.mp4")
    try:
        when = recorded_at(cfg, plan.index)
        meta = None
        if when is not None:
            stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
            meta = {"creation_time": stamp}
        with VideoWriter(
            tmp, cfg.fps, cfg.size, cfg.size, crf=cfg.crf, gop=int(round(2 * cfg.fps)), threads=1, metadata=meta
        ) as writer:
            for frame in renderer.frames(plan.n_frames):
                writer.write(frame)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def _render_job(args) -> int:
    plan, path, cfg = args
    return render_video_file(plan, Path(path), cfg)


# ---------------------------------------------------------------------- the world on disk
def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthWorldError(f"output path {out} exists and is not a folder.")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise SynthWorldError(
            f"output folder {out} is not empty; choose an empty folder or pass --overwrite "
            "to replace a synthetic world generated there before."
        )
    if not (out / "world.json").is_file():
        raise SynthWorldError(
            f"--overwrite only replaces a synthetic world, and {out} has no world.json; choose an empty folder."
        )
    for name in OUR_FILES:
        (out / name).unlink(missing_ok=True)
    videos = out / "videos"
    if videos.is_dir():
        for f in videos.glob("*.mp4"):
            f.unlink()


def _narrations(plan: VideoPlan, house: House, cfg: SynthConfig) -> tuple[list[dict], list[tuple[int, str]]]:
    pass_uid = world_uid(cfg.seed, "narration", plan.index)
    style = video_style(cfg.style, plan.index)
    words = style_rng(cfg, plan.index, "narrations")
    entries, per_event = [], []
    for ev in plan.events:
        text = narration(ev, house)
        if text:
            text = style.narration(text, words)
            entries.append(ego4d.narration_entry(ev.mid, cfg.fps, text, pass_uid))
            per_event.append((ev.idx, text))
    return entries, per_event


def _summary_text(plan: VideoPlan) -> str:
    moved = sorted({e.moved_object for e in plan.events if e.kind == "put"})
    rooms = sorted({e.room for e in plan.events})
    text = f"#summary C moves around the {', '.join(rooms)}"
    return text + (f" and puts away the {', '.join(moved)}." if moved else ".")


README = """EgoRecall synthetic world (seed {seed})
=====================================

A seeded first-person day in a small house, generated by `python -m app synth`.

videos/<video_uid>.mp4   {n} H.264 videos, {size}x{size} px, {fps:g} fps, {seconds:.0f} s in all.
narration.json           Ego4D narrations: {{video_uid: {{narration_pass_1: {{narrations: [{{
                         timestamp_sec, timestamp_frame, narration_text, annotation_uid}}], summaries}}}}}};
                         one per visible action ("#C C puts the mug in the fridge"), at its midpoint.
nlq_train.json           Ego4D NLQ v2 annotations (videos -> clips -> annotations -> language_queries) for the
nlq_val.json             train / val videos (disjoint). Clips are time ranges of their video
                         (video_start_sec..video_end_sec); query windows are clip_start_sec..clip_end_sec
                         relative to the clip, and video_start_sec..video_end_sec in the video.
                         Frame numbers are at the video's own frame rate, not Ego4D's 30 fps.
world.json               Ground truth: the house (rooms, places, objects), and per video the event log
                         (every action with start/end, place, object, narration), sightings (when each
                         object was seen where) and, for every query, the rule and events behind its answer.

Every answer window is the exact span of the action (or sighting) that answers the question, and a question is
only asked when that answer is unique within its clip.
"""


def generate_world(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    *,
    overwrite: bool = False,
    house: House = DEFAULT_HOUSE,
    **settings,
) -> WorldSummary:
    """Write a synthetic world to ``out_dir`` and return what was written.

    ``settings`` are :class:`SynthConfig` fields overriding ``config`` (or the defaults), e.g.
    ``generate_world(out, n_videos=3, seed=7, duration=30)``. Raises :class:`SynthWorldError` for bad settings
    or a non-empty output folder (unless ``overwrite`` and the folder holds an earlier synthetic world).
    """
    try:
        cfg = replace(config or SynthConfig(), **settings)
    except TypeError as exc:
        raise SynthWorldError(f"unknown synthetic world setting: {exc}.") from exc
    cfg.validate()
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    (out / "videos").mkdir(parents=True, exist_ok=True)

    plans = [plan_world_video(i, cfg, house) for i in range(cfg.n_videos)]
    assign_splits(plans, cfg)
    files = _render_videos(out, plans, cfg, house)
    n_narr, counts, world_videos = _write_annotations(out, plans, cfg, house, files)
    # How it ran (worker count) must not change the bytes.
    recorded = {k: v for k, v in asdict(cfg).items() if k != "workers"}
    world = {
        "generator": "egorecall-synthworld",
        "format_version": FORMAT_VERSION,
        "config": recorded,
        "house": video_style(cfg.style, 0).house(house).describe(),
        "style": describe_styles(cfg.style),
        "videos": world_videos,
    }
    nbytes = ego4d.write_json(out / "world.json", world)
    files.append(("world.json", f"ground-truth events, sightings and query evidence, {nbytes / 1024:.0f} KiB"))
    seconds = sum(p.duration for p in plans)
    (out / "README.txt").write_text(
        README.format(seed=cfg.seed, n=len(plans), size=cfg.size, fps=cfg.fps, seconds=seconds), encoding="utf-8"
    )
    files.append(("README.txt", "what these files are"))
    summary = WorldSummary(
        out,
        files,
        len(plans),
        seconds,
        n_narr,
        counts["train"],
        counts["val"],
        [p.video_uid for p in plans if p.split == "train"],
        [p.video_uid for p in plans if p.split == "val"],
    )
    logger.info("synthetic world: %s", summary.totals_line())
    return summary


def _render_videos(out: Path, plans: list[VideoPlan], cfg: SynthConfig, house: House) -> list[tuple[str, str]]:
    """Render every planned video (in worker processes when asked); returns (file, description) lines."""
    jobs = [(p, str(out / p.file), cfg) for p in plans]
    if cfg.workers > 1 and len(plans) > 1:
        pool = ProcessPoolExecutor(max_workers=min(cfg.workers, len(plans)), mp_context=get_context("spawn"))
        with pool as ex:
            sizes = list(tqdm(ex.map(_render_job, jobs), total=len(jobs), desc="videos", unit="video", disable=None))
    else:
        sizes = [
            render_video_file(p, Path(path), c, house)
            for p, path, c in tqdm(jobs, desc="videos", unit="video", disable=None)
        ]
    return [
        (p.file, f"{p.duration:.1f} s, {p.n_frames} frames, {cfg.size}x{cfg.size}, {p.split}, {nbytes / 1024:.0f} KiB")
        for p, nbytes in zip(plans, sizes)
    ]


def _write_annotations(
    out: Path, plans: list[VideoPlan], cfg: SynthConfig, house: House, files: list[tuple[str, str]]
) -> tuple[int, dict[str, int], list[dict]]:
    """Write the Ego4D-style NLQ files (train, val) and narrations; returns the narration count, the query
    count per split and each video's ground truth for ``world.json`` (``files`` gains their lines)."""
    narration_json, world_videos = {}, []
    n_narr = 0
    splits: dict[str, list[dict]] = {"train": [], "val": []}
    for p in plans:
        entries, per_event = _narrations(p, video_style(cfg.style, p.index).house(house), cfg)
        n_narr += len(entries)
        narration_json[p.video_uid] = ego4d.narration_video(
            entries, _summary_text(p), p.duration, world_uid(cfg.seed, "narration", p.index)
        )
        splits[p.split].append(
            {
                "video_uid": p.video_uid,
                "clips": [
                    ego4d.nlq_clip(c.clip_uid, c.start, c.end, cfg.fps, c.annotation_uid, c.queries)
                    for c in p.clips
                    if c.queries
                ],
            }
        )
        world_videos.append(_world_video(p, dict(per_event), cfg))
    counts = {}
    for split in ("train", "val"):
        data = ego4d.nlq_file(splits[split], split, f"EgoRecall synthetic world, seed {cfg.seed}, {split} split")
        nbytes = ego4d.write_json(out / f"nlq_{split}.json", data)
        counts[split] = sum(
            len(a["language_queries"]) for v in data["videos"] for c in v["clips"] for a in c["annotations"]
        )
        files.append(
            (
                f"nlq_{split}.json",
                f"{counts[split]} queries in "
                f"{sum(len(v['clips']) for v in data['videos'])} clips of "
                f"{len(data['videos'])} videos, {nbytes / 1024:.0f} KiB",
            )
        )
    nbytes = ego4d.write_json(out / "narration.json", narration_json)
    files.append(("narration.json", f"{n_narr} narrations, {nbytes / 1024:.0f} KiB"))
    return n_narr, counts, world_videos


def _world_video(p: VideoPlan, narr: dict[int, str], cfg: SynthConfig) -> dict:
    events = []
    for ev in p.events:
        d = ev.to_dict()
        d["narration"] = narr.get(ev.idx)
        d["narration_sec"] = round(ev.mid, 3) if ev.idx in narr else None
        events.append(d)
    queries = []
    for c in p.clips:
        for k, q in enumerate(c.queries):
            queries.append(
                {
                    "clip_uid": c.clip_uid,
                    "annotation_uid": c.annotation_uid,
                    "query_idx": k,
                    "query": q.query,
                    "template": q.template,
                    "rule": q.rule,
                    "video_start_sec": round(q.start, 3),
                    "video_end_sec": round(q.end, 3),
                    "evidence": q.evidence,
                }
            )
    video = {
        "video_uid": p.video_uid,
        "index": p.index,
        "recorded_at": recorded_at(cfg, p.index),
        "split": p.split,
        "file": p.file,
        "duration": p.duration,
        "n_frames": p.n_frames,
        "fps": cfg.fps,
        "size": cfg.size,
        "clips": [
            {"clip_uid": c.clip_uid, "video_start_sec": c.start, "video_end_sec": c.end, "n_queries": len(c.queries)}
            for c in p.clips
        ],
        "events": events,
        "sightings": [s.to_dict() for s in p.sightings],
        "queries": queries,
    }
    if len(world_styles(cfg.style)) > 1:  # a corpus of several houses: which one this video was recorded in
        video["style"] = video_style(cfg.style, p.index).name
    return video
