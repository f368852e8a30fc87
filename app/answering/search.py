"""How one question is answered over one video or the whole library.

Library-wide search. Scoring every frame of a large library with every question would not scale (1,000 hours
are 6.75 M frames; a trained localizer costs tens of milliseconds per 8-minute clip), so the question's CLIP
prompt-ensemble vector first goes through the library's faiss index (:meth:`Library.search`): the top
``frame_hits`` frames name the candidate videos, ranked by their best frame, and only the best few
(``max_videos``, by default the answerer's own budget) are answered in full from their memory-mapped
features. A candidate longer than ``long_video_s`` is answered only in regions of ``region_s`` around its hits.
When the library is small enough (at most that many videos, none long) every video is answered and no index
is consulted, so small libraries get exact answers. Trained modes narrow with the same CLIP search, then run
their checkpoint on the candidates. Windows of all candidates are merged by score
(:func:`models.windows.rank_across`); scores compare across videos within one mode (see
:mod:`app.answering`).

Every window lies inside its video and is never empty.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from app.answering.base import Answerer, PreparedQuestion
from app.answering.calibration import Calibration
from app.answering.results import Answer, Moment, ScoreSeries
from indexing.library import Library, VideoRecord
from models.errors import EgoRecallError
from models.grid import TimeGrid
from models.windows import Window, rank_across, temporal_nms

logger = logging.getLogger(__name__)


class InvalidRequest(EgoRecallError):
    """A question asked with impossible settings (k < 1, ...)."""


class NothingToSearch(EgoRecallError):
    """The library holds no ready video."""


@dataclass(frozen=True)
class SearchConfig:
    frame_hits: int = 256
    """Frames fetched from the index to pick candidate videos (library-wide questions)."""
    max_videos: int | None = None
    """Candidate videos answered in full; None = the answerer's ``max_candidate_videos``."""
    long_video_s: float = 3 * 3600.0
    """Candidates longer than this are answered only around their hits."""
    region_s: float = 120.0
    """Half-width of a region around a hit in a long video."""

    def __post_init__(self) -> None:
        if self.frame_hits < 1 or (self.max_videos is not None and self.max_videos < 1) or self.region_s <= 0:
            raise ValueError("frame_hits, max_videos and region_s must be positive")


@dataclass
class ScoredVideo:
    record: VideoRecord
    windows: list[Window]
    times: np.ndarray
    scores: np.ndarray
    presence: float | None = None
    """The question's object on screen in the scored bins (:attr:`ClipAnswer.presence`), when measured."""


@dataclass
class Ranking:
    """The answer before clips: ranked (video, window) pairs and every scored video's curve."""

    prepared: PreparedQuestion
    ranked: list[tuple[str, Window]]
    videos: dict[str, ScoredVideo] = field(default_factory=dict)


def find_moments(
    library: Library,
    answerer: Answerer,
    question: str,
    *,
    video_id: str | None = None,
    k: int = 5,
    config: SearchConfig = SearchConfig(),
) -> Ranking:
    """Answer one question over one video (``video_id``) or the whole library: the ``k`` best windows."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidRequest(f"k must be a whole number of moments, at least 1 (got {k!r})")
    started = time.monotonic()
    if video_id is not None:
        record = library.get(video_id)
        library.features(record)  # refuses a video that is not ready, with the library's message
        prepared = answerer.prepare([question])[0]
        plan = {record.id: (record, [(0, record.num_rows)])}
    else:
        records = library.videos()
        if not records:
            raise NothingToSearch(
                f"the library at {library.root} has no videos yet; add some with `python -m app index VIDEO...`"
            )
        prepared = answerer.prepare([question], search=True)[0]
        plan = _plan(library, records, prepared, answerer, config)
    ranking = Ranking(prepared, [])
    for vid, (record, segments) in plan.items():
        ranking.videos[vid] = _score_video(library, answerer, prepared, record, segments, k)
    ranking.ranked = rank_across([(vid, sv.windows) for vid, sv in ranking.videos.items()], k)
    logger.info("answered %r over %d video(s) in %.3f s", question, len(plan), time.monotonic() - started)
    return ranking


def _plan(
    library: Library, records: list[VideoRecord], prepared: PreparedQuestion, answerer: Answerer, config: SearchConfig
) -> dict[str, tuple[VideoRecord, list[tuple[int, int]]]]:
    """Which videos (and which bin ranges of them) to answer in full."""
    budget = config.max_videos or answerer.max_candidate_videos
    if len(records) <= budget and all(r.duration <= config.long_video_s for r in records):
        return {r.id: (r, [(0, r.num_rows)]) for r in records}
    hits = library.search(prepared.vector, k=config.frame_hits)[0]
    by_video: dict[str, list] = {}
    for h in hits:
        by_video.setdefault(h.video_id, []).append(h)
    by_id = {r.id: r for r in records}
    ranked = sorted((vid for vid in by_video if vid in by_id), key=lambda v: by_video[v][0].score, reverse=True)
    if not ranked:  # an index that returned nothing usable: fall back to the first videos
        logger.warning("the frame index returned no hits; answering the first %d videos", budget)
        ranked = [r.id for r in records[:budget]]
    plan = {}
    for vid in ranked[:budget]:
        rec = by_id[vid]
        if rec.duration <= config.long_video_s or vid not in by_video:
            plan[vid] = (rec, [(0, rec.num_rows)])
        else:
            plan[vid] = (
                rec,
                _regions([h.bin for h in by_video[vid]], rec.num_rows, int(math.ceil(config.region_s * rec.rate_hz))),
            )
    return plan


def _regions(bins: list[int], n: int, half: int) -> list[tuple[int, int]]:
    """Merged [start, stop) bin ranges of ``half`` bins around each hit."""
    spans = sorted((max(0, b - half), min(n, b + half + 1)) for b in bins)
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def segment_grid(grid: TimeGrid, start: int, stop: int) -> TimeGrid:
    """The grid of bins ``start .. stop-1`` as a clip of its own (keeping a partial last bin)."""
    if start == 0 and stop == grid.num_bins:
        return grid
    length = stop - start
    sub = TimeGrid(grid.rate_hz, min(grid.duration, stop / grid.rate_hz) - start / grid.rate_hz)
    if sub.num_bins != length:  # float noise at a bin edge
        sub = TimeGrid(grid.rate_hz, length / grid.rate_hz)
    return sub


def _score_video(
    library: Library,
    answerer: Answerer,
    prepared: PreparedQuestion,
    record: VideoRecord,
    segments: list[tuple[int, int]],
    k: int,
) -> ScoredVideo:
    features = library.features(record)
    grid = record.grid
    centres = grid.sample_times()
    windows: list[Window] = []
    times, scores, presence = [], [], []
    for i, (b0, b1) in enumerate(segments):
        sub = segment_grid(grid, b0, b1)
        (result,) = answerer.answer([prepared], features[b0:b1], sub, k, comparable=True)
        offset = b0 / grid.rate_hz
        if result.presence is not None:
            presence.append(result.presence)
        for w in result.windows:
            start = min(max(w.start + offset, 0.0), grid.duration)
            end = min(max(w.end + offset, 0.0), grid.duration)
            if end - start <= 0:
                continue
            windows.append(Window(start, end, w.score))
        if i:
            times.append(np.array([(centres[segments[i - 1][1] - 1] + centres[b0]) / 2.0]))
            scores.append(np.array([np.nan], np.float32))
        times.append(centres[b0:b1])
        scores.append(np.asarray(result.curve, np.float32))
    if len(segments) > 1:
        windows = temporal_nms(windows, k)
    return ScoredVideo(
        record, windows[:k], np.concatenate(times), np.concatenate(scores), max(presence) if presence else None
    )


def to_answer(
    ranking: Ranking,
    mode: str,
    question: str,
    video_id: str | None,
    moments: list[Moment],
    seconds: float,
    calibration: Calibration | None = None,
) -> Answer:
    """Assemble an :class:`Answer` (series ordered by each video's best moment, then by video order); with a
    ``calibration``, each moment carries its confidence and the answer says whether any is a good match."""
    if calibration is not None:
        moments = [replace(m, confidence=calibration.probability(m.score, m.presence)) for m in moments]
    first_rank: dict[str, int] = {}
    for m in moments:
        first_rank.setdefault(m.video_id, m.rank)
    order = sorted(ranking.videos, key=lambda v: first_rank.get(v, len(moments) + 1))
    series = []
    for vid in order:
        sv = ranking.videos[vid]
        mine = tuple((m.start, m.end, m.rank) for m in moments if m.video_id == vid)
        series.append(ScoreSeries(vid, sv.record.name, sv.record.duration, sv.times, sv.scores, mine))
    prompts = tuple((p.text, p.weight) for p in ranking.prepared.rewrite.prompts)
    return Answer(
        question=question,
        mode=mode,
        moments=moments,
        series=series,
        video_id=video_id,
        prompts=prompts,
        candidates=len(ranking.videos),
        seconds=seconds,
        no_good_match=calibration is not None and not any(m.confidence >= calibration.threshold for m in moments),
        threshold=None if calibration is None else calibration.threshold,
    )
