"""Pseudo-narrations: timestamped sentences a library writes about itself, to adapt a localizer without labels.

A person's library has no NLQ annotations and no narrations, yet NaQ showed that narrations are enough to train
a localizer, and PSVL (ICCV 2021) trained one on pseudo-queries made from the videos themselves. So the library
narrates itself. Every frame is compared with the encoder's vocabulary of everyday objects
(``models/grammar/nouns.json``, the common-noun list the presence scorer contrasts objects with -- never any
world's own object list). An object that clearly stands out in a stretch of frames becomes a moment: its score
there is ``min_z`` standard deviations above its own mean over the whole library (a relative test, so a weak
encoder whose cosines all sit close together narrates too) and it is the frame's most outstanding object. A
lexicon of actions (``actions``) says what is done with it there: the action whose sentence scores highest at
the moment *relative to that sentence's own level over the video*. Each kept moment is a narration
``#C C <action> the <object>`` at its time, in Ego4D's ``narration.json`` layout, so NaQ turns them into
training queries exactly as it does real narrations.

The sentences are noisy by nature; :func:`adaptation_files` writes them with a skeleton NLQ file (one clip per
library video, no queries) so that ``training`` fine-tunes a checkpoint on them (``app.service.EgoRecall.adapt``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexing.fsutil import write_json_atomic
from models.presence import vocabulary as presence_vocabulary
from training.naq import NaQConfig, NaQReport, build_naq
from training.narrations import Narration
from training.nlq_writer import NLQFileBuilder

logger = logging.getLogger(__name__)

NARRATION_SOURCE = "egorecall_pseudo"


class TextEncoder(Protocol):
    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class PseudoNarrationConfig:
    """How a library narrates itself. Defaults chosen on the tuning worlds only (``bench/bench_transfer.py``)."""

    actions: tuple[str, ...] = (
        "picks up",
        "puts down",
        "holds",
        "opens",
        "closes",
        "looks at",
        "takes",
        "places",
    )
    """What can be done with an object, as a narration says it (third person, present)."""
    object_prompt: str = "a photo of a {}"
    min_z: float = 2.5
    """An object's score must stand this many standard deviations above its mean over the library."""
    smooth_bins: int = 3
    """Curves are averaged over this many bins (about 1.6 s) before peaks are read."""
    min_gap_s: float = 6.0
    """Two moments of one object are at least this far apart."""
    per_minute: float = 6.0
    """At most this many moments per minute of video (the most confident first), about Ego4D's narration rate."""
    nouns: tuple[str, ...] = field(default=())
    """The vocabulary; empty: ``models/grammar/nouns.json``."""

    def vocabulary(self) -> list[str]:
        return list(self.nouns or presence_vocabulary())


@dataclass(frozen=True)
class VideoFeatures:
    """What narrating one video needs: its name in the files (``video_uid``), its features and grid rate."""

    video_uid: str
    features: np.ndarray
    """float [num_bins, dim], L2-normalised rows."""
    rate_hz: float
    duration: float


def narrate(
    videos: Sequence[VideoFeatures], encoder: TextEncoder, config: PseudoNarrationConfig = PseudoNarrationConfig()
) -> list[Narration]:
    """Pseudo-narrations of every video, in video then time order (see the module docstring)."""
    nouns = config.vocabulary()
    noun_vectors = np.asarray(encoder.encode_text([config.object_prompt.format(n) for n in nouns]), np.float32)
    stats = _library_statistics(videos, noun_vectors)
    moments: list[tuple[VideoFeatures, int, int, float]] = []  # (video, bin, noun, z)
    for video in videos:
        moments += [(video, b, k, z) for b, k, z in _object_moments(video, noun_vectors, stats, config)]
    sentences = sorted({(a, k) for _, _, k, _ in moments for a in range(len(config.actions))})
    if not sentences:
        return []
    texts = [f"#C C {config.actions[a]} the {nouns[k]}" for a, k in sentences]
    vectors = np.asarray(encoder.encode_text(texts), np.float32)
    row = {s: i for i, s in enumerate(sentences)}
    out = []
    by_video: dict[str, np.ndarray] = {}
    for video, b, k, _p in moments:
        level = by_video.get(video.video_uid)
        if level is None:  # each sentence's own level over the video: its mean score
            level = by_video[video.video_uid] = np.asarray(video.features, np.float32).mean(axis=0) @ vectors.T
        rows = [row[(a, k)] for a in range(len(config.actions))]
        here = np.asarray(video.features[b], np.float32) @ vectors[rows].T - level[rows]
        best = int(np.argmax(here))
        time = min((b + 0.5) / video.rate_hz, video.duration)
        out.append(Narration(video.video_uid, round(time, 3), texts[rows[best]], NARRATION_SOURCE))
    out.sort(key=lambda n: (n.video_uid, n.time))
    return out


def _object_moments(video: VideoFeatures, nouns: np.ndarray, stats: tuple[np.ndarray, np.ndarray], config):
    """(bin, noun, z) of the objects that stand out, strongest first, capped per minute."""
    feats = np.asarray(video.features, np.float32)
    if len(feats) == 0:
        return []
    mean, sd = stats
    z = (feats @ nouns.T - mean) / sd
    if config.smooth_bins > 1 and len(z) >= config.smooth_bins:
        kernel = np.ones(config.smooth_bins) / config.smooth_bins
        z = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, z)
    top = z.argmax(axis=1)
    gap = max(1, int(round(config.min_gap_s * video.rate_hz)))
    found = []
    for k in np.unique(top):
        curve = z[:, k]
        for b in np.flatnonzero((top == k) & (curve >= config.min_z)):
            lo, hi = max(0, b - gap), min(len(curve), b + gap + 1)
            if curve[b] >= curve[lo:hi].max():  # the peak of its neighbourhood
                found.append((int(b), int(k), float(curve[b])))
    found.sort(key=lambda m: -m[2])
    cap = max(1, int(math.ceil(config.per_minute * video.duration / 60.0)))
    return found[:cap]


def _library_statistics(videos: Sequence[VideoFeatures], nouns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each noun's mean score and standard deviation over every frame of the library."""
    total = np.zeros(len(nouns), np.float64)
    squares = np.zeros(len(nouns), np.float64)
    count = 0
    for video in videos:
        scores = np.asarray(video.features, np.float32) @ nouns.T
        total += scores.sum(axis=0)
        squares += np.square(scores, dtype=np.float64).sum(axis=0)
        count += len(scores)
    mean = total / max(count, 1)
    sd = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(sd, 1e-6).astype(np.float32)


def narration_file(narrations: Sequence[Narration]) -> dict[str, Any]:
    """Narrations in Ego4D's ``narration.json`` layout (one pass per video)."""
    out: dict[str, Any] = {}
    for n in narrations:
        video = out.setdefault(n.video_uid, {"narration_pass_1": {"narrations": []}})
        video["narration_pass_1"]["narrations"].append(
            {
                "timestamp_sec": n.time,
                "timestamp_frame": int(round(n.time * 30)),
                "narration_text": n.text,
                "annotation_uid": f"{NARRATION_SOURCE}-{n.video_uid}",
            }
        )
    return out


@dataclass(frozen=True)
class AdaptationData:
    """The files a fine-tune on pseudo-narrations reads, and what went into them."""

    naq_file: Path
    narration_file: Path
    videos: int
    narrations: int
    queries: int
    report: NaQReport


def adaptation_files(
    videos: Sequence[VideoFeatures],
    encoder: TextEncoder,
    out_dir: Path,
    config: PseudoNarrationConfig = PseudoNarrationConfig(),
    naq: NaQConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> AdaptationData:
    """Narrate ``videos`` and write ``out_dir/narration.json`` and ``out_dir/naq_train.json`` (NLQ format: one
    clip per video, the pseudo-narrations as NaQ queries). Raises ValueError when nothing could be narrated."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"narrating {len(videos)} videos")
    narrations = narrate(videos, encoder, config)
    if not narrations:
        raise ValueError("no object stood out clearly enough in any video to narrate it")
    skeleton = NLQFileBuilder(description="EgoRecall library clips for adaptation")
    for v in videos:
        skeleton.add_clip(v.video_uid, v.video_uid, 0.0, v.duration)
    naq_data, report = build_naq([("library clips", skeleton.to_dict())], narrations, None, naq or NaQConfig())
    narration_path = out_dir / "narration.json"
    naq_path = out_dir / "naq_train.json"
    write_json_atomic(narration_path, narration_file(narrations))
    write_json_atomic(naq_path, naq_data)
    logger.info("adaptation data in %s: %d narrations of %d videos, %s", out_dir, len(narrations), len(videos), report)
    return AdaptationData(naq_path, narration_path, len(videos), len(narrations), report.queries_written, report)
