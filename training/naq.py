"""Narrations-as-Queries (NaQ, Ramakrishnan et al., CVPR 2023): Ego4D narrations as NLQ training data.

Every narration whose window lies fully inside a training clip becomes a query about that clip, with the
window (shifted to clip seconds) as its answer. The result is an ordinary NLQ file: the NLQ annotations of
the given files, plus ONE extra annotation per clip, ``naq-<clip_uid>``, holding the clip's narration
queries sorted by start time.

How narration queries are marked: ``template`` is :data:`training.nlq.NARRATION_TEMPLATE` (``"narration"``),
which :attr:`training.nlq.Query.is_narration` reads. The reference implementation instead keeps a leading
"#" in the text; we keep the text clean (normalised by :func:`models.text_normalize.normalize_text`, exactly
as user questions are at query time) so no text encoder ever sees the marker. Each narration query also
keeps its raw text (``narration_text``), its stream (``narration_source``) and its instant
(``narration_time``).

Windows: EgoClip's ``clip_start``/``clip_end`` where the file gives them, else EgoVLP's rule
``[t - beta_v / (2 alpha), t + beta_v / (2 alpha)]`` (:func:`egovlp_windows`).

Also here: temporal response jittering (:func:`jitter_window`, :func:`jitter_bins`), NaQ's training-time
augmentation for narration queries.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import EgoRecallError
from models.text_normalize import normalize_text
from training.narrations import Narration, NarrationFile, load_narrations
from training.nlq import (
    NAQ_ANNOTATION_PREFIX,
    NARRATION_TEMPLATE,
    AnnotationFileError,
    Clip,
    clips_from_data,
    few_shot_clips,
    parse_nlq,
    read_json,
)
from training.nlq_writer import write_json_atomic

log = logging.getLogger(__name__)

DROP_NO_CLIP = "video not in any training clip"
DROP_EMPTY_TEXT = "empty text after normalisation"
DROP_BAD_WINDOW = "invalid window (end before start)"
DROP_OUTSIDE = "outside every training clip of its video"
DROP_CROSSES = "window crosses a clip boundary"
DROP_REASONS = (DROP_NO_CLIP, DROP_EMPTY_TEXT, DROP_BAD_WINDOW, DROP_OUTSIDE, DROP_CROSSES)
"""Why a narration is not used, in the order the checks run (each narration is counted once, first reason)."""

DEFAULT_JITTER_FACTOR = 2.5
"""NaQ's F for Ego4D v1 (the paper uses 5.0 for v2)."""


class NaQError(EgoRecallError):
    """NaQ cannot be built from the given inputs."""


@dataclass(frozen=True)
class NaQConfig:
    """How narrations become queries; the defaults follow the paper."""

    alpha: float | None = None
    """EgoVLP's alpha (mean of beta_v over videos); None computes it from the narrations given."""
    use_given_windows: bool = True
    """Use EgoClip's clip_start/clip_end where present; False applies EgoVLP's rule to every narration."""
    nlq_fraction: float = 1.0
    """Share of NLQ clips whose NLQ queries are kept (few-shot runs; 0 = narrations only, "zero-shot NLQ").
    Every clip still receives its narrations."""
    seed: int = 0


# --------------------------------------------------------------------------------------------- windows


def stream_gaps(narrations: Sequence[Narration]) -> dict[tuple[str, str], float]:
    """beta per narration stream: mean gap between consecutive narrations of one video and pass.

    The two passes of a video are separate annotators narrating the same footage; pooling them would halve
    every gap, so each (video, pass) stream gets its own beta. Streams with one narration have none.
    """
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for n in narrations:
        times[(n.video_uid, n.source)].append(n.time)
    gaps = {}
    for key, ts in times.items():
        if len(ts) >= 2:
            gaps[key] = (max(ts) - min(ts)) / (len(ts) - 1)  # mean of consecutive gaps of the sorted times
    return gaps


def egovlp_windows(
    narrations: Sequence[Narration], alpha: float | None = None
) -> tuple[list[tuple[float, float]], float]:
    """EgoVLP's window per narration, ``[t - beta_v/(2 alpha), t + beta_v/(2 alpha)]``, and the alpha used.

    ``alpha`` defaults to the mean beta over all streams given. A stream with a single narration (no gap to
    measure) takes beta = alpha, i.e. a one-second window.
    """
    gaps = stream_gaps(narrations)
    if alpha is None:
        positive = [g for g in gaps.values() if g > 0]
        alpha = float(np.mean(positive)) if positive else 1.0
    if not alpha > 0:
        raise NaQError(f"EgoVLP's alpha must be a positive number of seconds, got {alpha}.")
    windows = []
    for n in narrations:
        half = gaps.get((n.video_uid, n.source), alpha) / (2.0 * alpha)
        windows.append((n.time - half, n.time + half))
    return windows, float(alpha)


# --------------------------------------------------------------------------------------------- report


@dataclass
class NaQReport:
    """What NaQ did with the narrations (counts are narrations unless named otherwise)."""

    narrations_read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    unreadable: Counter = field(default_factory=Counter)
    """Entries of the narrations file that were not narrations at all (no time, redacted videos, ...)."""
    windows: Counter = field(default_factory=Counter)
    """Kept narrations by window source: ``"given"`` (EgoClip) or ``"egovlp"``."""
    alpha: float | None = None
    queries_written: int = 0
    """Narration queries in the file (a narration inside two overlapping clips is written twice)."""
    clips_with_narrations: int = 0
    training_clips: int = 0
    nlq_clips: int = 0
    nlq_clips_kept: int = 0
    nlq_queries_kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "narrations_read": self.narrations_read,
            "kept": self.kept,
            "dropped": {r: int(self.dropped.get(r, 0)) for r in DROP_REASONS},
            "unreadable": dict(self.unreadable),
            "windows": dict(self.windows),
            "alpha": self.alpha,
            "queries_written": self.queries_written,
            "clips_with_narrations": self.clips_with_narrations,
            "training_clips": self.training_clips,
            "nlq_clips": self.nlq_clips,
            "nlq_clips_kept": self.nlq_clips_kept,
            "nlq_queries_kept": self.nlq_queries_kept,
        }

    def to_text(self) -> str:
        lines = [
            f"narrations read: {self.narrations_read}",
            f"kept: {self.kept} -> {self.queries_written} narration queries in "
            f"{self.clips_with_narrations} of {self.training_clips} training clips",
        ]
        for reason in DROP_REASONS:
            lines.append(f"dropped, {reason}: {self.dropped.get(reason, 0)}")
        for reason, n in sorted(self.unreadable.items()):
            lines.append(f"not read, {reason}: {n}")
        if self.windows:
            lines.append(
                "windows: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.windows.items()))
                + (f" (alpha {self.alpha:.3f} s)" if self.alpha is not None else "")
            )
        lines.append(f"NLQ queries kept: {self.nlq_queries_kept} from {self.nlq_clips_kept} of {self.nlq_clips} clips")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- building


def _merge_nlq(sources: Sequence[tuple[str, Any]]) -> tuple[dict, dict[str, dict], dict[str, Clip]]:
    """Merge raw NLQ objects: (merged object, clip_uid -> raw clip dict, clip_uid -> Clip)."""
    merged: dict[str, Any] = {"version": None, "description": "", "videos": []}
    videos: dict[str, dict] = {}
    raw_clips: dict[str, dict] = {}
    clips: dict[str, Clip] = {}
    for source, data in sources:
        parse_nlq(data, source)  # validates structure with errors that name the file
        if merged["version"] is None and isinstance(data.get("version"), str):
            merged["version"] = data["version"]
        for video in data["videos"]:
            vid = videos.get(video["video_uid"])
            if vid is None:
                vid = {k: v for k, v in video.items() if k != "clips"}
                vid["clips"] = []
                videos[video["video_uid"]] = vid
                merged["videos"].append(vid)
            for clip in video["clips"]:
                uid = clip["clip_uid"]
                if uid in raw_clips:
                    raw_clips[uid]["annotations"] = raw_clips[uid]["annotations"] + list(clip["annotations"])
                    continue
                copy = dict(clip)
                copy["annotations"] = list(clip["annotations"])
                vid["clips"].append(copy)
                raw_clips[uid] = copy
        for uid, clip in clips_from_data(data, source).items():
            seen = clips.get(uid)
            if seen is not None and (
                abs(seen.video_start_sec - clip.video_start_sec) > 1e-3
                or abs(seen.video_end_sec - clip.video_end_sec) > 1e-3
            ):
                raise AnnotationFileError(
                    f"{source}: clip {uid} has a different time range than in an earlier annotation file."
                )
            clips.setdefault(uid, clip)
    if merged["version"] is None:
        merged["version"] = "v2"
    return merged, raw_clips, clips


def build_naq(
    nlq_sources: Sequence[tuple[str, Any]],
    narrations: NarrationFile | Sequence[Narration],
    extra_clips: Mapping[str, Clip] | None = None,
    config: NaQConfig = NaQConfig(),
) -> tuple[dict, NaQReport]:
    """NLQ (+ extra clip sources) + narrations -> (NLQ-format object with NaQ annotations, report).

    ``nlq_sources``: ``(name, parsed JSON)`` of NLQ train files; their queries are kept (a ``nlq_fraction``
    of their clips) and all their clips are training clips. ``extra_clips``: more training clips (e.g. from
    the VQ and Moments train files, as in the paper); they enter the output only if narrations land in them.
    """
    if not nlq_sources:
        raise NaQError("NaQ needs at least one NLQ annotation file.")
    merged, raw_clips, clips = _merge_nlq(nlq_sources)
    report = NaQReport()
    _keep_few_shot(merged, raw_clips, config, report)
    train_clips = _training_clips(clips, extra_clips or {}, report)
    items = list(narrations)
    if isinstance(narrations, NarrationFile):
        report.unreadable.update(narrations.skipped)
    report.narrations_read = len(items)
    per_clip = _narration_queries(items, train_clips, config, report)
    _attach(merged, raw_clips, train_clips, per_clip, report)
    # Clips left without any annotation (few-shot, no narrations) would only be noise for training.
    for video in merged["videos"]:
        video["clips"] = [c for c in video["clips"] if c["annotations"]]
    merged["videos"] = [v for v in merged["videos"] if v["clips"]]
    merged["description"] = (
        f"NLQ + Narrations-as-Queries built by EgoRecall ({report.kept} narrations, "
        f"NLQ fraction {config.nlq_fraction:g})"
    )
    parse_nlq(merged, "NaQ output")  # the output must read back as a valid NLQ file
    return merged, report


def _keep_few_shot(merged: dict, raw_clips: dict[str, dict], config: NaQConfig, report: NaQReport) -> None:
    """Few-shot: keep the NLQ annotations of a seeded fraction of clips only."""
    report.nlq_clips = sum(1 for c in raw_clips.values() if c["annotations"])
    if config.nlq_fraction < 1.0:
        keep = set(few_shot_clips(parse_nlq(merged, "merged annotations"), config.nlq_fraction, config.seed))
        for uid, raw in raw_clips.items():
            if uid not in keep:
                raw["annotations"] = []
    report.nlq_clips_kept = sum(1 for c in raw_clips.values() if c["annotations"])
    report.nlq_queries_kept = sum(
        len(a.get("language_queries", [])) for c in raw_clips.values() for a in c["annotations"]
    )


def _training_clips(clips: dict[str, Clip], extra_clips: Mapping[str, Clip], report: NaQReport) -> dict[str, Clip]:
    """The NLQ files' clips plus the extra sources'; a clip known to both must span the same video time."""
    train_clips: dict[str, Clip] = dict(clips)
    for uid, clip in extra_clips.items():
        seen = train_clips.get(uid)
        if seen is not None and (
            abs(seen.video_start_sec - clip.video_start_sec) > 1e-3
            or abs(seen.video_end_sec - clip.video_end_sec) > 1e-3
        ):
            raise AnnotationFileError(f"Clip {uid} has different time ranges in the NLQ and extra clip files.")
        train_clips.setdefault(uid, clip)
    report.training_clips = len(train_clips)
    return train_clips


def _narration_queries(
    items: list[Narration], train_clips: dict[str, Clip], config: NaQConfig, report: NaQReport
) -> dict[str, list[dict]]:
    """Each narration whose window lies inside a training clip, as a query of that clip (clip uid -> queries);
    the others are counted by why they were dropped."""
    by_video: dict[str, list[Clip]] = defaultdict(list)
    for clip in train_clips.values():
        by_video[clip.video_uid].append(clip)
    # Windows: given (EgoClip) or EgoVLP's rule, whose gaps and alpha come from all narrations read.
    rule_windows: list[tuple[float, float]] = []
    if any(n.window is None or not config.use_given_windows for n in items):
        rule_windows, report.alpha = egovlp_windows(items, config.alpha)
    per_clip: dict[str, list[dict]] = defaultdict(list)
    for i, n in enumerate(items):
        video_clips = by_video.get(n.video_uid)
        if not video_clips:
            report.dropped[DROP_NO_CLIP] += 1
            continue
        text = normalize_text(n.text)
        if not text:
            report.dropped[DROP_EMPTY_TEXT] += 1
            continue
        given = n.window is not None and config.use_given_windows
        start, end = n.window if given and n.window is not None else rule_windows[i]
        if not end >= start:
            report.dropped[DROP_BAD_WINDOW] += 1
            continue
        inside = [c for c in video_clips if c.contains(start, end)]
        if not inside:
            overlaps = any(start < c.video_end_sec and end > c.video_start_sec for c in video_clips)
            report.dropped[DROP_CROSSES if overlaps else DROP_OUTSIDE] += 1
            continue
        report.kept += 1
        report.windows["given" if given else "egovlp"] += 1
        for clip in inside:
            per_clip[clip.clip_uid].append(
                {
                    "clip_start_sec": start - clip.video_start_sec,
                    "clip_end_sec": end - clip.video_start_sec,
                    "video_start_sec": start,
                    "video_end_sec": end,
                    "template": NARRATION_TEMPLATE,
                    "query": text,
                    "narration_text": n.text,
                    "narration_source": n.source,
                    "narration_time": n.time,
                }
            )
    return per_clip


def _attach(
    merged: dict,
    raw_clips: dict[str, dict],
    train_clips: dict[str, Clip],
    per_clip: dict[str, list[dict]],
    report: NaQReport,
) -> None:
    """Add one NaQ annotation per clip (in video and time order), creating the entries of clips known only
    from the extra sources."""
    videos = {v["video_uid"]: v for v in merged["videos"]}
    for uid in sorted(per_clip, key=lambda u: (train_clips[u].video_uid, train_clips[u].video_start_sec, u)):
        queries = sorted(per_clip[uid], key=lambda q: (q["clip_start_sec"], q["clip_end_sec"]))
        raw = raw_clips.get(uid)
        if raw is None:  # a clip known only from the extra sources
            clip = train_clips[uid]
            video = videos.get(clip.video_uid)
            if video is None:
                video = {"video_uid": clip.video_uid, "split": "train", "clips": []}
                videos[clip.video_uid] = video
                merged["videos"].append(video)
            raw = {
                "clip_uid": uid,
                "video_start_sec": clip.video_start_sec,
                "video_end_sec": clip.video_end_sec,
                "clip_start_sec": 0.0,
                "clip_end_sec": clip.duration,
                "annotations": [],
            }
            video["clips"].append(raw)
            raw_clips[uid] = raw
        ann_uid = f"{NAQ_ANNOTATION_PREFIX}{uid}"
        if any(a.get("annotation_uid") == ann_uid for a in raw["annotations"]):
            raise NaQError(
                f"Clip {uid} already has an annotation {ann_uid}: the input already contains NaQ "
                "queries; build NaQ from the plain NLQ file."
            )
        raw["annotations"].append({"annotation_uid": ann_uid, "language_queries": queries})
        report.queries_written += len(queries)
    report.clips_with_narrations = len(per_clip)


def build_naq_files(
    annotations: Sequence[str | os.PathLike],
    narrations: str | os.PathLike,
    out: str | os.PathLike,
    extra_clips: Sequence[str | os.PathLike] = (),
    config: NaQConfig = NaQConfig(),
) -> NaQReport:
    """File-level :func:`build_naq`: read NLQ train files, extra clip files and narrations, write ``out``."""
    sources = [(str(p), read_json(p, AnnotationFileError, "annotation file")) for p in annotations]
    extra: dict[str, Clip] = {}
    for path in extra_clips:
        for uid, clip in clips_from_data(read_json(path, AnnotationFileError, "annotation file"), str(path)).items():
            extra.setdefault(uid, clip)
    narration_file = load_narrations(narrations)
    data, report = build_naq(sources, narration_file, extra, config)
    write_json_atomic(Path(out), data)
    log.info("NaQ written to %s: %s", out, report.to_dict())
    return report


# --------------------------------------------------------------------------------------------- jittering


def jitter_window(
    start, end, limit, rng: np.random.Generator, factor: float = DEFAULT_JITTER_FACTOR, shift: bool = True
):
    """NaQ's temporal response jittering of answer windows (scalars or arrays, any time unit).

    Width w grows to w' = w * U(1, factor); the centre moves by t ~ U(-(w' - w)/2, (w' - w)/2) (when
    ``shift``); the result is clamped to ``[0, limit]``. Because |t| <= (w' - w)/2 the new window always
    contains the old one, so the true moment is never cut. ``factor=1`` returns the input unchanged.
    Apply to narration queries only (their windows are guesses around an instant); NLQ answers are exact.
    """
    if not factor >= 1.0:
        raise ValueError(f"the jitter factor F must be >= 1, got {factor}")
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    width = end - start
    centre = (start + end) / 2.0
    new_width = width * rng.uniform(1.0, factor, size=np.shape(width))
    slack = (new_width - width) / 2.0
    offset = rng.uniform(-1.0, 1.0, size=np.shape(width)) * slack if shift else 0.0
    new_start = np.clip(centre + offset - new_width / 2.0, 0.0, limit)
    new_end = np.clip(centre + offset + new_width / 2.0, 0.0, limit)
    # Exact identity when nothing grew (F = 1, or an empty window), despite float rounding of centre +- w/2.
    grew = new_width > width
    new_start = np.where(grew, np.minimum(new_start, np.clip(start, 0.0, limit)), np.clip(start, 0.0, limit))
    new_end = np.where(grew, np.maximum(new_end, np.clip(end, 0.0, limit)), np.clip(end, 0.0, limit))
    if new_start.ndim == 0:
        return float(new_start), float(new_end)
    return new_start, new_end


def jitter_bins(
    start_bin,
    end_bin,
    num_bins: int,
    rng: np.random.Generator,
    factor: float = DEFAULT_JITTER_FACTOR,
    shift: bool = True,
):
    """:func:`jitter_window` on inclusive bin ranges (``s..e`` covers ``[s, e + 1)``) of a sequence of
    ``num_bins``; rounds outward so the jittered range always covers the original one."""
    s, e = jitter_window(
        np.asarray(start_bin, dtype=np.float64),
        np.asarray(end_bin, dtype=np.float64) + 1.0,
        float(num_bins),
        rng,
        factor,
        shift,
    )
    s_bin = np.clip(np.floor(s + 1e-9), 0, num_bins - 1).astype(np.int64)
    e_bin = np.clip(np.ceil(e - 1e-9) - 1, 0, num_bins - 1).astype(np.int64)
    e_bin = np.maximum(e_bin, s_bin)
    if np.ndim(s_bin) == 0:
        return int(s_bin), int(e_bin)
    return s_bin, e_bin
