"""Exact search for ``bench_query.py``'s quality columns: the top frames by brute force over the feature
files, a bound on any zero-shot window's score per video, and what ``ask`` would answer if it scored every
video in full."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.service import EgoRecall
from bench.query_data import RATE_HZ, ROWS, VIDEO_S
from models.grid import TimeGrid
from models.windows import ProposalConfig, Window, best_window_scores, rank_across


def exact_top(folder: Path, videos: int, queries: np.ndarray, k: int = 100, chunk_videos: int = 16):
    """Exact top-k (video index, bin) per query by brute force over the feature files in ``folder``, and per
    (query, video) an upper bound of any zero-shot window's score there (:func:`window_bound`)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    bounds = np.empty((len(queries), videos), np.float32)
    for first in range(0, videos, chunk_videos):
        ids = range(first, min(videos, first + chunk_videos))
        block = np.concatenate([np.load(folder / f"{i:012x}.npy").astype(np.float32) for i in ids])
        scores = queries @ block.T
        per_video = scores.reshape(len(queries), len(ids), ROWS)
        bounds[:, first : first + len(ids)] = window_bound(per_video)
        gids = np.concatenate([np.arange(ROWS) + i * ROWS for i in ids])
        take = min(k, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, gids[part]], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i // ROWS, best_i % ROWS, bounds


def window_bound(per_video: np.ndarray) -> np.ndarray:
    """No zero-shot window of a video scores above this: the best window of any scale over its cosine curve
    (:func:`models.windows.best_window_scores`, which ``curve_to_windows`` always ranks first), plus a margin
    for the float16 rounding of the cosines the library computes."""
    grid = TimeGrid(RATE_HZ, VIDEO_S)
    return (best_window_scores(per_video, grid, ProposalConfig()) + 2e-3).astype(np.float32)


def exact_moments(service: EgoRecall, question: str, bounds: np.ndarray, k: int = 5) -> list[tuple[str, Window]]:
    """What ``ask`` would answer if it scored every video in full: videos in order of their bound, each answered
    whole by the same answerer, until no unseen video can beat the k-th distinct moment."""
    answerer = service.answerer("zeroshot")
    prepared = answerer.prepare([question], search=True)[0]
    library = service.library
    answered: list[tuple[str, list[Window]]] = []
    ranked: list[tuple[str, Window]] = []
    for i in np.argsort(-bounds).tolist():
        if len(ranked) == k and bounds[i] < ranked[-1][1].score:
            break
        rec = library.get(f"{i:012x}")
        (result,) = answerer.answer([prepared], library.features(rec), rec.grid, k, comparable=True)
        answered.append((rec.id, result.windows))
        ranked = rank_across(answered, k)
    return ranked


CLOSE = 0.01
"""A moment whose score is within this of the exact answer's at the same rank is as good an answer: about the
spread of one moment's window score between tiled copies of it (frame noise and a piece's distortion,
bench/query_worlds.py), and a tenth of the spread of a question's top 100 frames there."""


def same_moments(got, exact) -> bool:
    return len(got) == len(exact) and all(
        m.video_id == v and abs(m.start - w.start) < 1e-4 and abs(m.end - w.end) < 1e-4 for m, (v, w) in zip(got, exact)
    )
