"""How one question is answered over one video or the whole library.

Library-wide search. Scoring every frame of a large library with every question would not scale (1,000 hours
are 6.75 M frames; a trained localizer costs tens of milliseconds per 8-minute clip), so the question's CLIP
prompt-ensemble vector first goes through the library's faiss index (:meth:`Library.search`): the top
``frame_hits`` frames name the candidate videos, ranked by their best frame, and only the best few
(``max_videos``, by default the answerer's own budget) are answered, from their memory-mapped features.
Zero-shot windows depend only on the scores near them (:func:`models.windows.window_context_s`), so a long
candidate is answered in regions of ``local_region_s`` around its hits, padded by that context: the windows
there are the ones the whole video would give (when that is cheaper: ``region_cost_bins``). Trained models
read the whole clip: they answer whole candidates, and only a candidate longer than ``long_video_s`` in regions
of ``region_s`` around its hits. When the library is small enough (at most that many videos, none long) every
video is answered and no index is consulted, so small libraries get exact answers. Trained modes narrow with
the same CLIP search, then run their checkpoint on the candidates. Windows of all candidates are merged by
score (:func:`models.windows.rank_across`); scores compare across videos within one mode (see
:mod:`app.answering`).

Every window lies inside its video and is never empty.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

import numpy as np

from app.answering.anchoring import AnchorTimes, find_anchor_times, near_in_time
from app.answering.base import Answerer, PreparedQuestion
from app.answering.calibration import Calibration
from app.answering.corrections import apply_corrections, is_wrong_again, same_question
from app.answering.recency import RECENCY_CANDIDATES, RECENCY_VIDEOS, order_by_time, wanted_order
from app.answering.results import Answer, Moment, ScoreSeries
from app.answering.when import NothingAtThatTime, TimeRange, read_time
from indexing.library import Library, LibraryView, VideoRecord
from models.errors import EgoRecallError
from models.grid import TimeGrid
from models.windows import Window, rank_across, temporal_nms
from models.zeroshot import ZeroShotConfig

logger = logging.getLogger(__name__)


class InvalidRequest(EgoRecallError):
    """A question asked with impossible settings (k outside 1-50, ...)."""


MAX_K = 50
"""The most moments one question may ask for: more are no longer "the best moments" (and a huge k would
return every window of the library)."""


def check_k(k: object) -> int:
    """``k`` if it is a whole number of moments in 1..:data:`MAX_K`, else :class:`InvalidRequest`."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be a whole number of moments from 1 to {MAX_K} (got {k!r})")
    return k


class NothingToSearch(EgoRecallError):
    """The library holds no ready video."""


@dataclass(frozen=True)
class SearchConfig:
    frame_hits: int = 256
    """Frames fetched from the index to pick candidate videos (library-wide questions)."""
    max_videos: int | None = None
    """Candidate videos answered; None = the answerer's ``max_candidate_videos``."""
    local_region_s: float = 30.0
    """Half-width of the region answered around each hit when the answerer's windows depend only on nearby
    scores (zero-shot, :meth:`Answerer.local_context_s`): the region is padded by that context, so every window
    in it is the one the whole video would give, at a fraction of the cost."""
    long_video_s: float = 3 * 3600.0
    """Other answerers (trained models read the whole clip) answer candidates longer than this only around
    their hits."""
    region_s: float = 120.0
    """Half-width of a region around a hit in a long video, for those answerers."""
    region_cost_bins: int = 3000
    """What answering one region costs beyond its own bins, in bins of a whole video: regions are answered
    instead of the whole video only when they cost less (zero-shot on two cores: a 113-bin region 0.5 ms, a
    whole 30-minute video of 3,375 bins 1.0 ms -- so 30-minute videos are answered whole)."""

    def __post_init__(self) -> None:
        if (
            self.frame_hits < 1
            or (self.max_videos is not None and self.max_videos < 1)
            or self.region_s <= 0
            or self.local_region_s <= 0
        ):
            raise ValueError("frame_hits, max_videos, region_s and local_region_s must be positive")


@dataclass(frozen=True)
class Region:
    """Bins ``[start, stop)`` of a video answered as a clip of their own, of whose windows only those within
    bins ``[keep_start, keep_stop)`` are kept: the rest of the region is padding that gives them their context."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int

    @property
    def padded(self) -> bool:
        return (self.keep_start, self.keep_stop) != (self.start, self.stop)

    @classmethod
    def whole(cls, start: int, stop: int) -> Region:
        return cls(start, stop, start, stop)


@dataclass
class ScoredVideo:
    record: VideoRecord
    windows: list[Window]
    times: np.ndarray
    scores: np.ndarray
    presence: float | None = None
    """The question's object on screen in the scored bins (:attr:`ClipAnswer.presence`), when measured."""
    clip_score: float | None = None
    """CLIP's best window score in the scored bins (:attr:`ClipAnswer.clip_score`), when measured."""


@dataclass
class Ranking:
    """The answer before clips: ranked (video, window) pairs and every scored video's curve."""

    prepared: PreparedQuestion
    ranked: list[tuple[str, Window]]
    videos: dict[str, ScoredVideo] = field(default_factory=dict)
    anchors: AnchorTimes | None = None
    """A before/after question's anchor event across the videos searched (:mod:`app.answering.anchoring`)."""


def find_moments(
    library: Library,
    answerer: Answerer,
    question: str,
    *,
    video_id: str | None = None,
    k: int = 5,
    config: SearchConfig = SearchConfig(),
    only: Collection[str] | None = None,
    view: LibraryView | None = None,
) -> Ranking:
    """Answer one question over one video (``video_id``) or the whole library (``only`` these videos, when
    given): the ``k`` best windows. ``view``: the catalog as the caller read it (one read per question)."""
    check_k(k)
    started = time.monotonic()
    view = library.view() if view is None else view
    anchors: AnchorTimes | None = None  # inside one video, its own peaks order a before/after question
    if video_id is not None:
        record = view.by_id.get(video_id) or library.get(video_id)
        features = library.features_of([record], view=view)  # refuses a video that is not ready, with the reason
        prepared = answerer.prepare([question])[0]
        plan = {record.id: (record, [Region.whole(0, record.num_rows)])}
    else:
        records = list(view.ready)
        if only is not None:
            records = [r for r in records if r.id in only]
        if not records:
            raise NothingToSearch(
                f"the library at {library.root} has no videos yet; add some with `python -m app index VIDEO...`"
            )
        prepared = answerer.prepare([question], search=True)[0]
        budget = _budget(config, answerer, prepared)
        plan = _plan(library, records, prepared, answerer, config, view, budget)
        if prepared.anchor is not None and prepared.rewrite.relation is not None:  # the event near the candidates
            around = near_in_time(records, [record for record, _ in plan.values()])
            zs = _zero_shot_config(answerer)
            anchors = find_anchor_times(library, prepared, around, budget, config.frame_hits, zs, view)
        features = library.features_of([record for record, _ in plan.values()], view=view)
    ranking = Ranking(prepared, [], anchors=anchors)
    for vid, (record, segments) in plan.items():
        ask = prepared if anchors is None else replace(prepared, anchor_at=anchors.relative(record))
        ranking.videos[vid] = _score_video(features[vid], answerer, ask, record, segments, k)
    ranking.ranked = rank_across([(vid, sv.windows) for vid, sv in ranking.videos.items()], k)
    logger.info("answered %r over %d video(s) in %.3f s", question, len(plan), time.monotonic() - started)
    return ranking


def _budget(config: SearchConfig, answerer: Answerer, prepared: PreparedQuestion) -> int:
    """Candidate videos a library-wide question answers: ``config.max_videos``, else the answerer's own budget,
    at most :data:`~app.answering.recency.RECENCY_VIDEOS` for a question that wants the latest (earliest) moment."""
    if config.max_videos is not None:
        return config.max_videos
    if wanted_order(prepared.rewrite)[0] is not None:
        return min(answerer.max_candidate_videos, RECENCY_VIDEOS)
    return answerer.max_candidate_videos


def _zero_shot_config(answerer: Answerer) -> ZeroShotConfig:
    """The zero-shot settings a CLIP-reading answerer (zero-shot, or fused through its ``zeroshot`` half)
    orders anchors with; the defaults for others (their questions carry no anchor vector anyway)."""
    clip = getattr(answerer, "zeroshot", answerer)
    config = getattr(clip, "config", None)
    return config if isinstance(config, ZeroShotConfig) else ZeroShotConfig()


def _plan(
    library: Library,
    records: list[VideoRecord],
    prepared: PreparedQuestion,
    answerer: Answerer,
    config: SearchConfig,
    view: LibraryView,
    budget: int,
) -> dict[str, tuple[VideoRecord, list[Region]]]:
    """Which videos (and which regions of them) to answer: at most ``budget`` (:func:`_budget`)."""
    if len(records) <= budget and all(r.duration <= config.long_video_s for r in records):
        return {r.id: (r, [Region.whole(0, r.num_rows)]) for r in records}
    hits = library.search(prepared.clip_vector, k=config.frame_hits, view=view)[0]
    by_video: dict[str, list] = {}
    for h in hits:
        by_video.setdefault(h.video_id, []).append(h)
    by_id = {r.id: r for r in records}
    ranked = sorted((vid for vid in by_video if vid in by_id), key=lambda v: by_video[v][0].score, reverse=True)
    if not ranked:  # an index that returned nothing usable: fall back to the first videos
        logger.warning("the frame index returned no hits; answering the first %d videos", budget)
        ranked = [r.id for r in records[:budget]]
    context_s = answerer.local_context_s(prepared)
    plan = {}
    for vid in ranked[:budget]:
        rec = by_id[vid]
        bins = [h.bin for h in by_video.get(vid, ())]
        regions = [Region.whole(0, rec.num_rows)]
        if bins and context_s is not None:
            local = _regions(
                bins, rec.num_rows, _bins(config.local_region_s, rec.rate_hz), _bins(context_s, rec.rate_hz) + 1
            )
            if sum(r.stop - r.start + config.region_cost_bins for r in local) < rec.num_rows:
                regions = local
        elif bins and rec.duration > config.long_video_s:
            regions = _regions(bins, rec.num_rows, _bins(config.region_s, rec.rate_hz))
        plan[vid] = (rec, regions)
    return plan


def _bins(seconds: float, rate_hz: float) -> int:
    return int(math.ceil(seconds * rate_hz))


def _regions(bins: list[int], n: int, half: int, pad: int = 0) -> list[Region]:
    """Merged regions keeping ``half`` bins around each hit, padded by ``pad`` bins (not past the video's ends,
    where no padding is needed: the whole video has the same edge)."""
    cores = sorted((max(0, b - half), min(n, b + half + 1)) for b in bins)
    merged: list[list[int]] = []
    for s, e in cores:
        if merged and s - pad <= merged[-1][1] + pad:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    regions = []
    for s, e in merged:
        start, stop = max(0, s - pad), min(n, e + pad)
        regions.append(Region(start, stop, 0 if start == 0 else s, n if stop == n else e))
    return regions


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
    features: np.ndarray,
    answerer: Answerer,
    prepared: PreparedQuestion,
    record: VideoRecord,
    regions: list[Region],
    k: int,
) -> ScoredVideo:
    grid = record.grid
    centres = grid.sample_times()
    windows: list[Window] = []
    times, scores, presence, clip = [], [], [], []
    for i, region in enumerate(regions):
        b0, b1, padded = region.start, region.stop, region.padded
        sub = segment_grid(grid, b0, b1)
        offset = b0 / grid.rate_hz
        asked = prepared
        if prepared.anchor_at is not None and b0:  # the region's own clock
            asked = replace(prepared, anchor_at=tuple(t - offset for t in prepared.anchor_at))
        # Greedy NMS keeps its order, so asking for more and dropping the padding's windows loses none of the
        # core's best k; no filling with overlapping windows, which the whole video would not give.
        (result,) = answerer.answer(
            [asked], features[b0:b1], sub, 2 * k if padded else k, comparable=True, region=padded
        )
        lo, hi = region.keep_start / grid.rate_hz - 1e-6, min(region.keep_stop / grid.rate_hz, grid.duration) + 1e-6
        if result.presence is not None:
            presence.append(result.presence)
        if result.clip_score is not None:
            clip.append(result.clip_score)
        for w in result.windows:
            start = min(max(w.start + offset, 0.0), grid.duration)
            end = min(max(w.end + offset, 0.0), grid.duration)
            if end - start <= 0 or start < lo or end > hi:
                continue
            windows.append(Window(start, end, w.score))
        if i:
            times.append(np.array([(centres[regions[i - 1].stop - 1] + centres[b0]) / 2.0]))
            scores.append(np.array([np.nan], np.float32))
        times.append(centres[b0:b1])
        scores.append(np.asarray(result.curve, np.float32))
    if len(regions) > 1 or any(r.padded for r in regions):
        windows = temporal_nms(windows, k)
    return ScoredVideo(
        record,
        windows[:k],
        np.concatenate(times),
        np.concatenate(scores),
        max(presence) if presence else None,
        max(clip) if clip else None,
    )


def _scope(records: dict, when: TimeRange | None, video_id: str | None) -> set[str] | None:
    """The videos recorded in ``when`` (None: no time asked); an empty scope says so."""
    if when is None:
        return None
    only = {
        vid
        for vid, r in records.items()
        if r.recorded_at is not None and when.overlaps(r.recorded_at, r.recorded_at + r.duration)
    }
    if video_id is not None:
        only &= {video_id}
    if not only:
        raise NothingAtThatTime(f"no video {'of this scope ' if video_id else ''}was recorded {when.said}")
    return only


def _in_time(records: dict, when: TimeRange | None, vid: str, window: Window) -> bool:
    """A window of a video that runs past the asked time counts where it starts."""
    return when is None or when.contains(records[vid].moment_time(window.start))


def _series(ranking: Ranking, moments: list[Moment]) -> list[ScoreSeries]:
    """Every scored video's curve, the video of the best moment first, with this answer's windows marked."""
    first_rank: dict[str, int] = {}
    for m in moments:
        first_rank.setdefault(m.video_id, m.rank)
    series = []
    for vid in sorted(ranking.videos, key=lambda v: first_rank.get(v, len(moments) + 1)):
        sv = ranking.videos[vid]
        mine = tuple((m.start, m.end, m.rank) for m in moments if m.video_id == vid)
        series.append(ScoreSeries(vid, sv.record.name, sv.record.duration, sv.times, sv.scores, mine))
    return series


class _Confidence:
    """How sure a moment is: the calibration's probability of its score (with its video's presence and CLIP
    score), or certain when the user confirmed or adjusted it; None without a calibration."""

    def __init__(
        self,
        calibration: Calibration | None,
        videos: dict[str, ScoredVideo],
        verdicts: dict[tuple[str, float, float], str],
    ) -> None:
        self._calibration, self._videos, self._verdicts = calibration, videos, verdicts

    def __call__(self, vid: str, window: Window) -> float | None:
        if self._calibration is None:
            return None
        if (vid, window.start, window.end) in self._verdicts:
            return 1.0  # the user said so
        video = self._videos.get(vid)
        if video is None:
            return float(self._calibration.probability(window.score))
        return float(self._calibration.probability(window.score, video.presence, video.clip_score))


def _moment(
    record: VideoRecord,
    window: Window,
    rank: int,
    presence: float | None,
    verdicts: dict[tuple[str, float, float], str],
    confidence: _Confidence,
) -> Moment:
    return Moment(
        record.id,
        record.name,
        window.start,
        window.end,
        window.score,
        rank,
        presence=presence,
        corrected=verdicts.get((record.id, window.start, window.end)),
        confidence=confidence(record.id, window),
        recorded_at=record.moment_time(window.start),
        recorded_tz=record.recorded_tz,
    )


def answer_question(
    library: Library,
    answerer: Answerer,
    question: str,
    *,
    asked_mode: str,
    video_id: str | None = None,
    k: int = 5,
    config: SearchConfig = SearchConfig(),
    cut: Callable[[Moment], Moment] | None = None,
    when: TimeRange | None = None,
    now: float | None = None,
    view: LibraryView | None = None,
) -> Answer:
    """The :class:`Answer` to one question, built here and only here.

    In order: the time to search (``when``, else the question's own time words: :mod:`app.answering.when`),
    the ranked windows of :func:`find_moments` over the videos recorded then (a before/after question's event
    looked for in all of them: :mod:`app.answering.anchoring`), the user's corrections
    (:mod:`app.answering.corrections`), the latest (or earliest) confident moment first when the question asks
    for one (:mod:`app.answering.recency`), then each a :class:`Moment` with its wall-clock time (``cut``
    adds its playable clip) and its confidence, and which mode answered (``asked_mode`` is what the user chose,
    e.g. ``auto``). Everything comes from one read of the catalog (``view``, read here when not given)."""
    started = time.monotonic()
    check_k(k)
    text, spoken = read_time(question, now)
    when = when or spoken
    view = library.view() if view is None else view
    records = view.by_id
    only = _scope(records, when, video_id)
    corrections = [
        c
        for c in view.corrections
        if c.video_id in records
        and (video_id is None or c.video_id == video_id)
        and (only is None or c.video_id in only)
        and same_question(text, c.question)
    ]  # the user's corrections of this question (or a close paraphrase), in the videos searched
    wrong = [c for c in corrections if c.verdict == "wrong"]
    wanted = min(MAX_K, max(k + len(wrong) + (k if when is not None else 0), RECENCY_CANDIDATES))
    ranking = find_moments(library, answerer, text, video_id=video_id, k=wanted, config=config, only=only, view=view)
    ranked = [(v, w) for v, w in ranking.ranked if _in_time(records, when, v, w)]
    ranked, verdicts = apply_corrections(ranked, corrections, wanted)
    calibration = answerer.calibration
    presence = {vid: sv.presence for vid, sv in ranking.videos.items()}
    confidence = _Confidence(calibration, ranking.videos, verdicts)
    per_video = {
        v: [w for w in sv.windows if _in_time(records, when, v, w) and not is_wrong_again(v, w, wrong)]
        for v, sv in ranking.videos.items()
    }
    ranked, ordered = order_by_time(ranked, per_video, records, ranking.prepared.rewrite, confidence, calibration, k)
    if ordered is None and ranking.anchors is not None and ranking.anchors.at.size:
        ordered = ranking.anchors.relation  # the curves were ordered by the event across the videos searched
    moments = [
        _moment(records[vid], window, rank, presence.get(vid), verdicts, confidence)
        for rank, (vid, window) in enumerate(ranked, start=1)
    ]
    if cut is not None:
        moments = [cut(m) for m in moments]
    return Answer(
        question=question,
        mode=answerer.mode,
        moments=moments,
        series=_series(ranking, moments),
        video_id=video_id,
        prompts=tuple((p.text, p.weight) for p in ranking.prepared.rewrite.prompts),
        candidates=len(ranking.videos),
        seconds=time.monotonic() - started,
        no_good_match=calibration is not None
        and not any(m.confidence is not None and m.confidence >= calibration.threshold for m in moments),
        threshold=None if calibration is None else calibration.threshold,
        asked_mode=asked_mode,
        label=answerer.label,
        warnings=tuple(getattr(answerer, "warnings", ())),
        searching=None if when is None else when.said,
        ordered=ordered,
    )
