"""Narrated moments and their frames: what pretraining learns from.

A *moment* is one narration with its temporal window (EgoClip's given window, else EgoVLP's rule from
:func:`training.naq.egovlp_windows`), clamped to its video, with the text normalised exactly as questions
are at query time (:func:`models.text_normalize.normalize_text`) and the verb/noun keys of EgoNCE's
action-aware positives (:mod:`training.pretrain.actions`, or EgoClip's tags when the file has them).

Frames are decoded once by the project's watched decoder (:class:`indexing.decode.GridDecoder`, PyAV in a
child process) at ``frames_per_window`` evenly spaced instants inside every window, resized to the model's
short side and centre-cropped to its square input -- the same pixels the indexer would feed the encoder --
and cached per video as one ``uint8 [M, S, S, 3]`` ``.npy`` (memory-mapped while training) plus a JSON that
names the instants and the source file. Training then runs epochs from the cache without decoding again.

Batches are *scene-aware* (:class:`SceneBatchSampler`): each is filled with groups of
``moments_per_video`` moments of one video, so the InfoNCE denominators hold other moments of the same
scene as hard negatives, as EgoVLP's EgoNCE does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexing.config import DecodeConfig
from indexing.decode import decode_frames, probe_isolated
from indexing.errors import VideoError
from indexing.fsutil import save_npy_atomic, write_json_atomic
from models.grid import TimeGrid
from models.text_normalize import normalize_text
from training.naq import egovlp_windows
from training.narrations import Narration
from training.pretrain.actions import action_of
from training.pretrain.config import VIDEO_SUFFIXES, PretrainError
from training.pretrain.loss import NO_KEY

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
MIN_WINDOW_S = 1e-3


@dataclass(frozen=True)
class Moment:
    """One narrated moment of a video (seconds on the video's timeline) and its text keys."""

    video_uid: str
    start: float
    end: float
    text: str
    """Normalised narration."""
    verb: str
    noun: str

    def sample_times(self, k: int) -> np.ndarray:
        """``k`` instants evenly spread inside the window (centres of k equal parts), rounded to 1 ms."""
        return np.round(self.start + (np.arange(k) + 0.5) / k * (self.end - self.start), 3)


@dataclass
class MomentReport:
    """What became of the narrations."""

    narrations: int = 0
    moments: int = 0
    dropped: Counter = field(default_factory=Counter)
    windows: Counter = field(default_factory=Counter)
    alpha: float | None = None

    def to_dict(self) -> dict:
        return {
            "narrations": self.narrations,
            "moments": self.moments,
            "dropped": dict(self.dropped),
            "windows": dict(self.windows),
            "alpha": self.alpha,
        }


def find_videos(videos_dir: Path) -> dict[str, Path]:
    """``{video_uid: file}`` for every ``<video_uid>.<video suffix>`` in the folder."""
    out: dict[str, Path] = {}
    for p in sorted(videos_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def _tag_key(tags) -> str:
    return ",".join(str(t) for t in tags) if tags else ""


def narration_windows(
    narrations: Sequence[Narration], *, use_given: bool = True, alpha: float | None = None
) -> tuple[list[tuple[float, float]], list[str], float | None]:
    """Per narration: its window, where it came from (``given``/``egovlp``), and EgoVLP's alpha if used."""
    need_rule = [i for i, n in enumerate(narrations) if not (use_given and n.window is not None)]
    rule_windows: dict[int, tuple[float, float]] = {}
    used_alpha = None
    if need_rule:
        # alpha and beta come from every narration of the file, as in EgoVLP, not only those lacking a window.
        windows, used_alpha = egovlp_windows(list(narrations), alpha)
        rule_windows = {i: windows[i] for i in need_rule}
    out, sources = [], []
    for i, n in enumerate(narrations):
        if i in rule_windows:
            out.append(rule_windows[i])
            sources.append("egovlp")
        else:  # a given window (need_rule holds every narration without one)
            start, end = n.window or (n.time, n.time)
            out.append((float(start), float(end)))
            sources.append("given")
    return out, sources, used_alpha


def build_moments(
    narrations: Sequence[Narration], durations: dict[str, float], *, use_given: bool = True, alpha: float | None = None
) -> tuple[list[Moment], MomentReport]:
    """Moments of the narrations whose video is in ``durations`` ({video_uid: seconds}), in file order."""
    report = MomentReport(narrations=len(narrations))
    windows, sources, report.alpha = narration_windows(narrations, use_given=use_given, alpha=alpha)
    moments = []
    for n, (start, end), source in zip(narrations, windows, sources):
        duration = durations.get(n.video_uid)
        if duration is None:
            report.dropped["video not in the videos folder"] += 1
            continue
        text = normalize_text(n.text)
        if not text:
            report.dropped["empty text after normalisation"] += 1
            continue
        start, end = max(0.0, start), min(duration, end)
        if end - start < MIN_WINDOW_S:
            report.dropped["window outside its video"] += 1
            continue
        action = action_of(text)
        verb = _tag_key(getattr(n, "verb_tags", None)) or action.verb
        noun = _tag_key(getattr(n, "noun_tags", None)) or action.noun
        moments.append(Moment(n.video_uid, start, end, text, verb, noun))
        report.windows[source] += 1
    report.moments = len(moments)
    return moments, report


def split_videos(
    video_uids: Iterable[str], val_fraction: float, seed: int, val_videos: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Whole videos to train and to hold out: the given uids, else a seeded ``val_fraction`` of them."""
    uids = sorted(set(video_uids))
    if val_videos:
        val = [u for u in uids if u in set(val_videos)]
    else:
        n_val = int(round(len(uids) * val_fraction))
        if val_fraction > 0 and len(uids) >= 2:
            n_val = min(max(n_val, 1), len(uids) - 1)
        else:
            n_val = 0
        order = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(len(uids))
        val = sorted(uids[i] for i in order[:n_val])
    held = set(val)
    return [u for u in uids if u not in held], val


class KeyVocabulary:
    """Integer ids for texts, verbs and nouns, so keys can travel as tensors (and across processes)."""

    def __init__(self, moments: Sequence[Moment]) -> None:
        self.texts = {t: i for i, t in enumerate(sorted({m.text for m in moments}))}
        self.verbs = {v: i for i, v in enumerate(sorted({m.verb for m in moments if m.verb}))}
        self.nouns = {v: i for i, v in enumerate(sorted({m.noun for m in moments if m.noun}))}

    def keys(self, moments: Sequence[Moment]) -> np.ndarray:
        """int64 [N, 3]: text id, verb id, noun id (:data:`NO_KEY` when unknown)."""
        return np.array(
            [[self.texts[m.text], self.verbs.get(m.verb, NO_KEY), self.nouns.get(m.noun, NO_KEY)] for m in moments],
            dtype=np.int64,
        ).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------- frame cache
def _source_identity(path: Path) -> dict:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _times_digest(times: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(times, dtype=np.float64).tobytes()).hexdigest()[:16]


def centre_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop decoded frames (short side already ``size``) to ``size`` x ``size``, as the encoder does."""
    h, w = frames.shape[1:3]
    if min(h, w) != size:
        raise ValueError(f"frames are {h}x{w}; expected a short side of {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frames[:, top : top + size, left : left + size])


@dataclass
class VideoFrames:
    """The cached frames of one video: ``frames[i]`` is on screen at ``times[i]``."""

    video_uid: str
    frames: np.ndarray
    """uint8 [M, S, S, 3] (memory-mapped)."""
    times: np.ndarray

    def indices(self, times: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.times, np.round(times, 3) - 5e-4)
        idx = np.clip(idx, 0, len(self.times) - 1)
        if not np.allclose(self.times[idx], np.round(times, 3), atol=1e-3):
            raise PretrainError(f"the frame cache of video {self.video_uid} lacks some sample times; delete it")
        return idx


class FrameCache:
    """``<dir>/<video_uid>-<S>px.npy`` + ``.json``: decoded, cropped frames at chosen instants of each video."""

    def __init__(self, directory: Path, size: int, decode: DecodeConfig | None = None) -> None:
        self.directory = Path(directory)
        self.size = int(size)
        self.decode = decode or DecodeConfig()
        self._probed: dict[Path, object] = {}

    def _probe(self, path: Path):
        info = self._probed.get(path)
        if info is None:
            info = self._probed[path] = probe_isolated(path, rate_hz=None, config=self.decode)
        return info

    def _paths(self, video_uid: str) -> tuple[Path, Path]:
        stem = f"{video_uid}-{self.size}px"
        return self.directory / f"{stem}.npy", self.directory / f"{stem}.json"

    def _valid(self, video_uid: str, path: Path, times: np.ndarray) -> dict | None:
        npy, meta_path = self._paths(video_uid)
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        expect = {
            "format": CACHE_FORMAT,
            "size": self.size,
            "source": _source_identity(path),
            "times_sha1": _times_digest(times),
        }
        if any(meta.get(k) != v for k, v in expect.items()) or not npy.is_file():
            return None
        return meta

    def probe_duration(self, video_uid: str, path: Path) -> float:
        """The video's duration: from a valid cache entry when there is one (no child process), else probed."""
        _npy, meta_path = self._paths(video_uid)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("source") == _source_identity(path) and meta.get("size") == self.size:
                return float(meta["duration"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return float(self._probe(path).duration)

    def load_or_build(self, video_uid: str, path: Path, times: np.ndarray) -> VideoFrames:
        """The frames at ``times`` (sorted, unique, rounded to 1 ms), decoded now unless cached."""
        times = np.asarray(times, dtype=np.float64)
        npy, meta_path = self._paths(video_uid)
        meta = self._valid(video_uid, path, times)
        if meta is None:
            info = self._probe(path)
            grid = TimeGrid(1.0, info.duration)  # unused by sampling at explicit times, required by the decoder
            frames, _report = decode_frames(
                path, info, grid, self.size, self.decode, times=np.clip(times, 0.0, info.duration)
            )
            frames = centre_square(frames, self.size)
            self.directory.mkdir(parents=True, exist_ok=True)
            save_npy_atomic(npy, frames)
            write_json_atomic(
                meta_path,
                {
                    "format": CACHE_FORMAT,
                    "size": self.size,
                    "source": _source_identity(path),
                    "times_sha1": _times_digest(times),
                    "duration": info.duration,
                    "times": times.tolist(),
                },
            )
            logger.info("cached %d frames of %s", len(frames), path.name)
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        if arr.dtype != np.uint8 or arr.shape != (len(times), self.size, self.size, 3):
            npy.unlink(missing_ok=True)
            raise PretrainError(
                f"the frame cache {npy} is damaged (it holds {arr.dtype} {arr.shape}); it was deleted, run again"
            )
        return VideoFrames(video_uid, arr, times)


def video_sample_times(moments: Sequence[Moment], k: int) -> np.ndarray:
    """Every instant the moments of one video need, sorted and unique."""
    if not moments:
        return np.zeros(0)
    return np.unique(np.concatenate([m.sample_times(k) for m in moments]))


@dataclass
class MomentSet:
    """Moments with their frames: ``frame_index[i]`` are the rows of ``videos[moments[i].video_uid]``."""

    moments: list[Moment]
    videos: dict[str, VideoFrames]
    frame_index: np.ndarray
    """int64 [N, frames_per_window]."""

    def __len__(self) -> int:
        return len(self.moments)

    def frames(self, i: int, which: np.ndarray | None = None) -> np.ndarray:
        """uint8 [k, S, S, 3]: the frames of moment i (all, or those at positions ``which``)."""
        rows = self.frame_index[i] if which is None else self.frame_index[i][which]
        return np.asarray(self.videos[self.moments[i].video_uid].frames[np.sort(rows)])

    def by_video(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(self.moments):
            out[m.video_uid].append(i)
        return dict(out)

    def subset(self, keep: Sequence[int]) -> MomentSet:
        keep = list(keep)
        moments = [self.moments[i] for i in keep]
        uids = {m.video_uid for m in moments}
        return MomentSet(
            moments,
            {u: v for u, v in self.videos.items() if u in uids},
            self.frame_index[keep] if keep else self.frame_index[:0],
        )


def attach_frames(moments: Sequence[Moment], videos: dict[str, VideoFrames], k: int) -> MomentSet:
    kept, rows = [], []
    for m in moments:
        vf = videos.get(m.video_uid)
        if vf is None:
            continue
        kept.append(m)
        rows.append(vf.indices(m.sample_times(k)))
    return MomentSet(kept, {u: v for u, v in videos.items()}, np.array(rows, dtype=np.int64).reshape(len(kept), k))


def cache_videos(
    cache: FrameCache,
    files: dict[str, Path],
    moments: Sequence[Moment],
    k: int,
    *,
    uids: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, VideoFrames], dict[str, str]]:
    """Decode (or load) the frames of each video's moments; returns the frames and ``{uid: why}`` failures.

    ``uids`` limits the work to some videos (each process of a distributed run decodes its own share).
    """
    by_video: dict[str, list[Moment]] = defaultdict(list)
    for m in moments:
        by_video[m.video_uid].append(m)
    todo = sorted(by_video) if uids is None else [u for u in uids if u in by_video]
    out, failed = {}, {}
    for n, uid in enumerate(todo):
        try:
            out[uid] = cache.load_or_build(uid, files[uid], video_sample_times(by_video[uid], k))
        except VideoError as exc:
            logger.warning("skipping video %s: %s", uid, exc)
            failed[uid] = str(exc)
        if progress:
            progress(n + 1, len(todo))
    return out, failed


# ---------------------------------------------------------------------------------------------- batches
class SceneBatchSampler:
    """Fixed-size batches of moment indices, each made of same-video groups (scene-aware negatives).

    Epoch ``e`` is a pure function of ``(seed, e)``: every video's moments are shuffled and cut into groups of
    ``group`` (the last may be shorter), the groups are shuffled, and their concatenation is cut into batches
    of ``batch_size`` (the incomplete tail is dropped). With ``world_size`` processes, process ``rank`` takes
    every ``world_size``-th batch, so one optimiser step sees ``world_size`` batches. A resumed run recomputes
    the same epoch and skips the batches already taken.
    """

    def __init__(
        self, by_video: dict[str, list[int]], batch_size: int, group: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.by_video = {u: list(v) for u, v in sorted(by_video.items())}
        self.batch_size = batch_size
        self.group = group
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        total = sum(len(v) for v in self.by_video.values())
        self.steps_per_epoch = (total // batch_size) // world_size
        if self.steps_per_epoch < 1:
            raise PretrainError(
                f"{total} training pairs are too few for {world_size} process(es) with batches of "
                f"{batch_size}; lower --batch-size or add narrated videos"
            )

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of epoch ``epoch``, in order."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1, epoch]))
        groups: list[np.ndarray] = []
        for uid in self.by_video:
            idx = np.array(self.by_video[uid], dtype=np.int64)[rng.permutation(len(self.by_video[uid]))]
            groups.extend(idx[s : s + self.group] for s in range(0, len(idx), self.group))
        order = rng.permutation(len(groups))
        flat = np.concatenate([groups[i] for i in order]) if groups else np.zeros(0, np.int64)
        n = self.steps_per_epoch * self.world_size
        batches = flat[: n * self.batch_size].reshape(n, self.batch_size)
        return list(batches[self.rank :: self.world_size])
