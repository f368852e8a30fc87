"""Scoring an answering mode on a world's held-out queries, as the answer benchmarks all do: R@k at IoU by the
Ego4D rules (strictly greater than θ, divided by the ground-truth queries), what the answers hold, and chance.
"""

from __future__ import annotations

import time

import numpy as np

METRICS = ("R1@0.3", "R5@0.3", "R1@0.5", "R5@0.5")


def window_stats(windows: list[list], truth: np.ndarray, k: int) -> dict[str, float]:
    """How many distinct windows answers hold, and their lengths against the ground truth's."""
    from models.windows import temporal_iou

    counts = [len(ws) for ws in windows]
    overlapping = sum(any(temporal_iou(a, b) > 0 for i, a in enumerate(ws) for b in ws[i + 1 :]) for ws in windows)
    first = [ws[0].length for ws in windows if ws]
    every = [w.length for ws in windows for w in ws]
    gt = truth[:, 1] - truth[:, 0]

    def q(values, p):
        return float(np.percentile(values, p)) if len(values) else float("nan")

    return {
        "mean_windows": float(np.mean(counts)) if counts else 0.0,
        "full_answers": 100.0 * sum(c >= k for c in counts) / max(1, len(counts)),
        "answers_with_overlap": 100.0 * overlapping / max(1, len(counts)),
        "rank1_len_p10": q(first, 10),
        "rank1_len_p50": q(first, 50),
        "rank1_len_p90": q(first, 90),
        "all_len_p50": q(every, 50),
        "gt_len_p10": q(gt, 10),
        "gt_len_p50": q(gt, 50),
        "gt_len_p90": q(gt, 90),
    }


def score_mode(service, mode: str, dataset, source, k: int) -> dict:
    from app.answering import answer_dataset
    from training.metrics import score_windows, windows_array

    queries = dataset.evaluation_queries()
    started = time.monotonic()
    answers = answer_dataset(service.answerer(mode), dataset, source, k, queries=queries)
    seconds = time.monotonic() - started
    windows = [answers.for_query(q) for q in queries]
    truth = np.array([(q.start, q.end) for q in queries], dtype=np.float64)
    scores = score_windows(windows_array(windows, k), truth, [q.template for q in queries])
    return {
        "scores": scores.to_dict(),
        "windows": window_stats(windows, truth, k),
        "ms_per_query": 1000.0 * seconds / max(1, len(queries)),
    }


def chance_levels(dataset, source, seeds: int = 5) -> dict[str, float]:
    from training.curve_eval import answer_length_proposals, evaluate_curves, random_curve

    runs = [
        evaluate_curves(dataset, source, random_curve(s), proposals=answer_length_proposals(dataset))
        for s in range(seeds)
    ]
    out = {m: float(np.mean([r.recall[m] for r in runs])) for m in runs[0].recall}
    out["mIoU"] = float(np.mean([r.miou for r in runs]))
    return out
