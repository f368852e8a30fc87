"""Ego4D NLQ annotation files (v1 and v2): read them into typed records (writing them: :mod:`training.nlq_writer`).

An NLQ file nests ``videos -> clips -> annotations -> language_queries``. A query is identified, in every
submission and by the official evaluator, by ``(clip_uid, annotation_uid, query_idx)`` where ``query_idx``
is the query's position in its annotation's ``language_queries`` list. That position is therefore kept as
it is in the file even when a query is skipped (no text), so our indices and the official ones never drift.

Real files are untidy, and this reader keeps what evaluation needs while telling training what to drop:

* a query without text is skipped and counted (``NLQDataset.skipped``): nobody can ask it;
* ``template`` may be null (``Query.template is None``);
* about a tenth of v1 answers are (almost) empty, ``|end - start| <= 1/30 s``: they stay (the official
  metric counts them) and :meth:`NLQDataset.training_queries` drops them;
* some answers run past the clip's end: evaluation sees the raw window, training a clamped one
  (:meth:`Query.training_window`);
* the unannotated test file has queries without answers (``Query.start is None``).

Narration queries (NaQ, :mod:`training.naq`) live in the same format; they are told apart by their template,
:data:`NARRATION_TEMPLATE` (``Query.is_narration``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import EgoRecallError

log = logging.getLogger(__name__)

NARRATION_TEMPLATE = "narration"
"""Template of every narration query (NaQ): the one marker training code needs to tell them from NLQ's."""

NAQ_ANNOTATION_PREFIX = "naq-"
"""NaQ adds one annotation per clip, ``naq-<clip_uid>``, holding that clip's narration queries."""

EMPTY_WINDOW_S = 1.0 / 30.0
"""An answer no longer than one frame at 30 fps is (almost) empty: evaluated, but not trained on."""

QueryKey = tuple[str, str, int]
"""``(clip_uid, annotation_uid, query_idx)``: how submissions and the evaluator name a query."""


class NLQFileError(EgoRecallError):
    """A file that cannot be read as Ego4D NLQ data (missing, bad JSON, wrong structure)."""


class AnnotationFileError(NLQFileError):
    """An annotation file (NLQ, or VQ/Moments when only its clips are read) is unreadable or malformed."""


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Clip:
    """One Ego4D clip: the stretch ``[video_start_sec, video_end_sec]`` of a video that queries ask about."""

    clip_uid: str
    video_uid: str
    video_start_sec: float
    video_end_sec: float
    split: str | None = None

    @property
    def duration(self) -> float:
        return self.video_end_sec - self.video_start_sec

    def contains(self, start: float, end: float) -> bool:
        """Whether the video-time window lies fully inside the clip (ends inclusive)."""
        return self.video_start_sec <= start and end <= self.video_end_sec


@dataclass(frozen=True)
class Query:
    """One language query about one clip; ``start``/``end`` are the raw ground truth in clip seconds."""

    clip_uid: str
    annotation_uid: str
    query_idx: int
    text: str
    template: str | None
    start: float | None
    end: float | None
    video_uid: str = ""

    @property
    def key(self) -> QueryKey:
        return (self.clip_uid, self.annotation_uid, self.query_idx)

    @property
    def is_narration(self) -> bool:
        """A NaQ narration query (temporal jittering applies to these only)."""
        return self.template == NARRATION_TEMPLATE

    @property
    def has_answer(self) -> bool:
        return self.start is not None and self.end is not None

    @property
    def answer(self) -> tuple[float, float]:
        """(start, end) of the ground truth as annotated; a query without one raises."""
        if self.start is None or self.end is None:
            raise ValueError(f"query {self.key} has no ground-truth window")
        return self.start, self.end

    @property
    def answer_length(self) -> float:
        """``end - start`` of the ground truth (as annotated: may be negative); a query without one raises."""
        start, end = self.answer
        return end - start

    @property
    def is_empty_window(self) -> bool:
        """(Almost) empty answer: ``|end - start| <= 1/30 s``. False when there is no answer."""
        return self.has_answer and abs(self.answer_length) <= EMPTY_WINDOW_S + 1e-9

    def training_window(self, clip_duration: float) -> tuple[float, float]:
        """The answer ordered and clamped into ``[0, clip_duration]``, for training targets only."""
        lo, hi = sorted(float(t) for t in self.answer)
        lo = min(max(lo, 0.0), clip_duration)
        hi = min(max(hi, 0.0), clip_duration)
        return lo, hi


@dataclass
class NLQDataset:
    """The clips and queries of one NLQ file (or a subset of one), in file order."""

    source: str
    version: str | None
    clips: dict[str, Clip]
    queries: list[Query]
    skipped: Counter = field(default_factory=Counter)
    """Queries not loaded, by reason ("no query text", "null entry")."""
    notes: Counter = field(default_factory=Counter)
    """Queries loaded but unusual, by kind ("empty window", "answer past clip end", "start after end")."""
    annotation_sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    """``(clip_uid, annotation_uid) -> len(language_queries)``, skipped entries included: which query
    indices exist in the file at all (a submission naming any other is for another file)."""

    def __post_init__(self) -> None:
        self._by_key = {q.key: q for q in self.queries}

    def __len__(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[Query]:
        return iter(self.queries)

    def query(self, key: QueryKey) -> Query | None:
        return self._by_key.get(key)

    @property
    def is_annotated(self) -> bool:
        """True when at least one query has a ground-truth window (false for the unannotated test file)."""
        return any(q.has_answer for q in self.queries)

    def clip_of(self, query: Query) -> Clip:
        return self.clips[query.clip_uid]

    def queries_by_clip(self) -> dict[str, list[Query]]:
        out: dict[str, list[Query]] = {uid: [] for uid in self.clips}
        for q in self.queries:
            out.setdefault(q.clip_uid, []).append(q)
        return out

    def evaluation_queries(self) -> list[Query]:
        """Every query with a ground-truth window, empty ones included (the official metric counts them)."""
        return [q for q in self.queries if q.has_answer]

    def training_queries(self, drop_empty: bool = True, include_narrations: bool = True) -> list[Query]:
        """Queries fit to train on: answered and, by default, not (almost) empty -- neither as given (the
        references drop those) nor once clamped to the clip (an answer lying wholly past the clip's end)."""
        out = []
        for q in self.queries:
            if not q.has_answer or (q.is_narration and not include_narrations):
                continue
            if drop_empty:
                start, end = q.training_window(self.clips[q.clip_uid].duration)
                if q.is_empty_window or end - start <= EMPTY_WINDOW_S + 1e-9:
                    continue
            out.append(q)
        return out

    def subset(self, clip_uids: Iterable[str]) -> NLQDataset:
        """The same data restricted to some clips (order kept)."""
        keep = set(clip_uids)
        return NLQDataset(
            source=self.source,
            version=self.version,
            clips={u: c for u, c in self.clips.items() if u in keep},
            queries=[q for q in self.queries if q.clip_uid in keep],
            annotation_sizes={k: n for k, n in self.annotation_sizes.items() if k[0] in keep},
        )

    def without_narrations(self) -> NLQDataset:
        return self._filtered(lambda q: not q.is_narration)

    def narrations_only(self) -> NLQDataset:
        return self._filtered(lambda q: q.is_narration)

    def _filtered(self, keep) -> NLQDataset:
        return NLQDataset(
            source=self.source,
            version=self.version,
            clips=dict(self.clips),
            queries=[q for q in self.queries if keep(q)],
            annotation_sizes=dict(self.annotation_sizes),
        )


# --------------------------------------------------------------------------------------------- reading


def read_json(path: str | os.PathLike, error: type[NLQFileError] = NLQFileError, what: str = "file") -> Any:
    """Parse a JSON file, turning every failure into one readable ``error`` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise error(f"The {what} {path} does not exist.") from None
    except IsADirectoryError:
        raise error(f"The {what} {path} is a folder, not a JSON file.") from None
    except OSError as exc:
        raise error(f"The {what} {path} cannot be read ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise error(f"The {what} {path} is not UTF-8 text, so it is not JSON.") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"The {what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None


def _number(value: Any, where: str, source: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationFileError(f"{source}: {where} has {name} = {value!r}, which is not a finite number.")
    return float(value)


def _list(obj: Mapping, key: str, where: str, source: str) -> list:
    value = obj.get(key)
    if not isinstance(value, list):
        got = "nothing" if value is None else type(value).__name__
        raise AnnotationFileError(f"{source}: {where} should have a list named '{key}' but has {got}.")
    return value


def _uid(obj: Mapping, key: str, where: str, source: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise AnnotationFileError(f"{source}: {where} has no '{key}' (a non-empty string).")
    return value


def _iter_clips(data: Any, source: str) -> Iterator[tuple[str, Clip, dict]]:
    """(where, Clip, raw clip dict) for every clip of any Ego4D episodic-memory annotation file."""
    if not isinstance(data, dict):
        raise AnnotationFileError(
            f"{source}: the top level should be an object with a 'videos' list, not a {type(data).__name__}."
        )
    for vi, video in enumerate(_list(data, "videos", "the top level", source)):
        vwhere = f"videos[{vi}]"
        if not isinstance(video, dict):
            raise AnnotationFileError(f"{source}: {vwhere} should be an object.")
        video_uid = _uid(video, "video_uid", vwhere, source)
        split = video.get("split") if isinstance(video.get("split"), str) else None
        for ci, clip in enumerate(_list(video, "clips", vwhere, source)):
            where = f"{vwhere}.clips[{ci}]"
            if not isinstance(clip, dict):
                raise AnnotationFileError(f"{source}: {where} should be an object.")
            clip_uid = _uid(clip, "clip_uid", where, source)
            if "video_start_sec" in clip or "video_end_sec" in clip:
                vs = _number(clip.get("video_start_sec"), where, source, "video_start_sec")
                ve = _number(clip.get("video_end_sec"), where, source, "video_end_sec")
            elif "clip_start_sec" in clip or "clip_end_sec" in clip:
                # Without the video range the clip's own range is all we know (NaQ then cannot place it).
                vs = _number(clip.get("clip_start_sec"), where, source, "clip_start_sec")
                ve = _number(clip.get("clip_end_sec"), where, source, "clip_end_sec")
            else:
                raise AnnotationFileError(
                    f"{source}: {where} (clip {clip_uid}) has neither "
                    "video_start_sec/video_end_sec nor clip_start_sec/clip_end_sec."
                )
            if ve < vs:
                raise AnnotationFileError(
                    f"{source}: {where} (clip {clip_uid}) ends at {ve} s, before it starts at {vs} s."
                )
            yield where, Clip(clip_uid, video_uid, vs, ve, split), clip


def _add_clip(clips: dict[str, Clip], clip: Clip, where: str, source: str) -> None:
    seen = clips.get(clip.clip_uid)
    if seen is None:
        clips[clip.clip_uid] = clip
    elif (
        seen.video_uid != clip.video_uid
        or abs(seen.video_start_sec - clip.video_start_sec) > 1e-3
        or abs(seen.video_end_sec - clip.video_end_sec) > 1e-3
    ):
        raise AnnotationFileError(
            f"{source}: {where} repeats clip {clip.clip_uid} with a different video or time range "
            f"({clip.video_uid} {clip.video_start_sec}-{clip.video_end_sec} s vs {seen.video_uid} "
            f"{seen.video_start_sec}-{seen.video_end_sec} s)."
        )


def clips_from_data(data: Any, source: str = "<data>") -> dict[str, Clip]:
    """Clips (uid -> Clip) of any Ego4D episodic-memory annotation object (NLQ, VQ, Moments)."""
    clips: dict[str, Clip] = {}
    for where, clip, _ in _iter_clips(data, source):
        _add_clip(clips, clip, where, source)
    return clips


def read_clips(path: str | os.PathLike) -> dict[str, Clip]:
    """Only the clips of an Ego4D NLQ, VQ or Moments annotation file; its annotations are not read."""
    return clips_from_data(read_json(path, AnnotationFileError, "annotation file"), str(path))


def parse_nlq(data: Any, source: str = "<data>") -> NLQDataset:
    """An NLQ annotation object (parsed JSON) -> :class:`NLQDataset`; ``source`` names it in errors."""
    clips: dict[str, Clip] = {}
    queries: list[Query] = []
    skipped: Counter = Counter()
    notes: Counter = Counter()
    sizes: dict[tuple[str, str], int] = {}
    for where, clip, raw in _iter_clips(data, source):
        _add_clip(clips, clip, where, source)
        clip = clips[clip.clip_uid]
        for ai, ann in enumerate(_list(raw, "annotations", where, source)):
            awhere = f"{where}.annotations[{ai}]"
            if not isinstance(ann, dict):
                raise AnnotationFileError(f"{source}: {awhere} should be an object.")
            lqs = ann.get("language_queries")
            if not isinstance(lqs, list):
                raise AnnotationFileError(
                    f"{source}: {awhere} has no 'language_queries' list -- is this an NLQ file? "
                    "(VQ and Moments files can only give clips, e.g. to NaQ's --extra-clips.)"
                )
            ann_uid = _uid(ann, "annotation_uid", awhere, source)
            if (clip.clip_uid, ann_uid) in sizes:
                raise AnnotationFileError(
                    f"{source}: {awhere} repeats annotation {ann_uid} of clip "
                    f"{clip.clip_uid}; its queries could not be told apart."
                )
            sizes[(clip.clip_uid, ann_uid)] = len(lqs)
            for qi, lq in enumerate(lqs):
                query = _parse_query(lq, qi, f"{awhere}.language_queries[{qi}]", clip, ann_uid, source, skipped, notes)
                if query is not None:
                    queries.append(query)
    version = data.get("version") if isinstance(data.get("version"), str) else None
    if skipped:
        log.info("%s: skipped %s", source, dict(skipped))
    return NLQDataset(
        source=source,
        version=version,
        clips=clips,
        queries=queries,
        skipped=skipped,
        notes=notes,
        annotation_sizes=sizes,
    )


def _parse_query(
    lq: Any, qi: int, where: str, clip: Clip, ann_uid: str, source: str, skipped: Counter, notes: Counter
) -> Query | None:
    if lq is None:
        skipped["null entry"] += 1
        return None
    if not isinstance(lq, dict):
        raise AnnotationFileError(f"{source}: {where} should be an object.")
    text = lq.get("query")
    if not isinstance(text, str) or not text.strip():
        skipped["no query text"] += 1
        return None
    template = lq.get("template")
    template = template if isinstance(template, str) and template.strip() else None
    start = end = None
    if lq.get("clip_start_sec") is not None or lq.get("clip_end_sec") is not None:
        start = _number(lq.get("clip_start_sec"), where, source, "clip_start_sec")
        end = _number(lq.get("clip_end_sec"), where, source, "clip_end_sec")
        if abs(end - start) <= EMPTY_WINDOW_S + 1e-9:
            notes["empty window"] += 1
        if start > end:
            notes["start after end"] += 1
        if max(start, end) > clip.duration + 1e-6:
            notes["answer past clip end"] += 1
        if min(start, end) < 0:
            notes["answer before clip start"] += 1
    return Query(clip.clip_uid, ann_uid, qi, text.strip(), template, start, end, clip.video_uid)


def load_nlq(path: str | os.PathLike) -> NLQDataset:
    """Read an Ego4D NLQ annotation file (v1 or v2, annotated or the unannotated test file)."""
    return parse_nlq(read_json(path, AnnotationFileError, "annotation file"), str(path))


# --------------------------------------------------------------------------------------------- few-shot


def few_shot_clips(dataset: NLQDataset, fraction: float, seed: int = 0) -> list[str]:
    """A seeded random ``fraction`` of the dataset's clips that have NLQ queries (NaQ's few-shot runs).

    ``round(fraction * n)`` clips are drawn from the sorted clip uids, so the choice depends only on the
    clips and the seed, never on file order; a larger fraction with the same seed is a superset of a smaller
    one (one permutation, cut at different lengths), which keeps few-shot curves comparable. ``0.0`` gives no
    clip: NaQ's "zero-shot NLQ" (narrations only).
    """
    if not (0.0 <= fraction <= 1.0) or math.isnan(fraction):
        raise ValueError(f"the few-shot fraction must lie in [0, 1], got {fraction}")
    with_queries = sorted({q.clip_uid for q in dataset.queries if not q.is_narration})
    count = int(round(fraction * len(with_queries)))
    order = np.random.default_rng(seed).permutation(len(with_queries))
    return [with_queries[i] for i in order[:count]]


def few_shot_subset(dataset: NLQDataset, fraction: float, seed: int = 0) -> NLQDataset:
    """The NLQ queries of a seeded ``fraction`` of clips (see :func:`few_shot_clips`)."""
    return dataset.without_narrations().subset(few_shot_clips(dataset, fraction, seed))
