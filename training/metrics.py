"""Ego4D NLQ metrics: R@k at IoU > θ (k in {1, 5}, θ in {0.3, 0.5}), their means, rank-1 mIoU, per template.

The rules are the official evaluator's (``evaluate_ego4d_nlq.py`` in EGO4D/episodic-memory) with one
deliberate difference: recall is divided by the number of **ground-truth queries**, not by the number of
predictions received. A query without a prediction is a miss, so a partial submission can no longer score as
if it were complete. On a complete submission the two agree exactly (``tests/test_nlq_metrics.py`` checks this
against an independent re-implementation of the official algorithm).

* IoU = ``max(0, min(e1, e2) - max(s1, s2)) / (max(e1, e2) - min(s1, s2))``, computed in float64 with the
  same operations as the official script, so ties land on the same side; a zero-length union gives 0 (the
  official script gets NaN there, which is never a hit either).
* A hit needs IoU **strictly** greater than θ: IoU == 0.5 exactly is not a hit at 0.5.
* R@k looks at the first k windows only; a query with fewer windows just has fewer chances.
* All figures are percentages.

:func:`score_windows` is the vectorised core (arrays in, scores out) for evaluation every N training steps;
:func:`evaluate` checks a submission against an annotation file and calls it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.nlq import NLQDataset, NLQFileError, Query
from training.submission import Prediction, SubmissionError

THRESHOLDS = (0.3, 0.5)
TOP_KS = (1, 5)
NO_TEMPLATE = "(no template)"
"""The per-template name of queries whose template is null."""

METRIC_NAMES = tuple(f"R{k}@{t}" for t in THRESHOLDS for k in TOP_KS)
"""``("R1@0.3", "R5@0.3", "R1@0.5", "R5@0.5")``"""


class EvaluationError(NLQFileError):
    """Annotations that cannot be evaluated against (e.g. the unannotated test file)."""


def temporal_iou_array(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of windows ``pred[..., 2]`` with ``gt[..., 2]`` (broadcast); NaN windows (no prediction) give 0."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    ps, pe, gs, ge = pred[..., 0], pred[..., 1], gt[..., 0], gt[..., 1]
    inter = np.maximum(0.0, np.minimum(pe, ge) - np.maximum(ps, gs))
    union = np.maximum(pe, ge) - np.minimum(ps, gs)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0.0)  # NaN compares False, so missing windows land here too


def windows_array(windows: Sequence[Sequence[Any] | None], k: int = max(TOP_KS)) -> np.ndarray:
    """Ragged per-query windows -> float array ``[N, k, 2]``, NaN where a query has fewer than k (or None).

    Windows may be ``(start, end)`` pairs or objects with ``.start``/``.end``; only the first k are kept.
    """
    out = np.full((len(windows), k, 2), np.nan, dtype=np.float64)
    for i, ws in enumerate(windows):
        for j, w in enumerate(list(ws or ())[:k]):
            out[i, j] = (w.start, w.end) if hasattr(w, "start") else (w[0], w[1])
    return out


@dataclass(frozen=True)
class NLQScores:
    """The NLQ figures, in percent; ``recall["R1@0.3"]`` etc., divided by ``num_queries``."""

    recall: dict[str, float]
    mean_r1: float
    mean_r5: float
    miou: float
    num_queries: int
    num_predicted: int
    per_template: dict[str, dict[str, float]] = field(default_factory=dict)
    """template (or :data:`NO_TEMPLATE`) -> ``{"num_queries": n, "R1@0.3": ..., "R5@0.3": ..., ...}``."""
    num_ignored: int = 0
    """Predictions for queries that exist in the file but cannot be scored (no text, or no answer)."""

    def __getitem__(self, name: str) -> float:
        return self.to_dict()[name]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``evaluate --json``)."""
        return {
            **{name: self.recall[name] for name in METRIC_NAMES},
            "mean_R1": self.mean_r1,
            "mean_R5": self.mean_r5,
            "mIoU": self.miou,
            "num_queries": self.num_queries,
            "num_predicted": self.num_predicted,
            "num_ignored": self.num_ignored,
            "per_template": self.per_template,
        }

    def table(self) -> str:
        """A readable summary for the terminal."""
        r = self.recall
        lines = [
            f"Queries: {self.num_queries} with ground truth, {self.num_predicted} predicted"
            + (
                f" (the other {self.num_queries - self.num_predicted} count as misses)"
                if self.num_predicted < self.num_queries
                else ""
            )
            + (f"; {self.num_ignored} predictions ignored (unscorable queries)" if self.num_ignored else ""),
            "",
            f"{'':14}{'R@1':>8}{'R@5':>8}",
            f"{'IoU > 0.3':14}{r['R1@0.3']:8.2f}{r['R5@0.3']:8.2f}",
            f"{'IoU > 0.5':14}{r['R1@0.5']:8.2f}{r['R5@0.5']:8.2f}",
            f"{'mean':14}{self.mean_r1:8.2f}{self.mean_r5:8.2f}",
            f"{'mIoU (rank 1)':14}{self.miou:8.2f}",
        ]
        if self.per_template:
            width = max(len("template"), *(len(t) for t in self.per_template))
            lines += ["", f"{'template':<{width}}  {'queries':>7}  {'R@1@0.3':>7}  {'R@5@0.3':>7}"]
            for name, row in sorted(self.per_template.items(), key=lambda kv: (-kv[1]["num_queries"], kv[0])):
                lines.append(f"{name:<{width}}  {row['num_queries']:>7d}  {row['R1@0.3']:>7.2f}  {row['R5@0.3']:>7.2f}")
        return "\n".join(lines)


def _recalls(iou: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query hit flags for each metric, from IoUs ``[N, K]`` (rank order)."""
    hits = {}
    for t in THRESHOLDS:
        above = iou > t
        for k in TOP_KS:
            hits[f"R{k}@{t}"] = np.asarray(above[:, :k].any(axis=1))
    return hits


def score_windows(
    pred: np.ndarray,
    gt: np.ndarray,
    templates: Sequence[str | None] | None = None,
    num_predicted: int | None = None,
    num_ignored: int = 0,
) -> NLQScores:
    """Score ranked windows against ground truth, one row per ground-truth query (the fast path).

    ``pred``: ``[N, K, 2]`` clip seconds, best first, NaN-padded (see :func:`windows_array`); a row of NaNs is
    a query nobody answered, a miss. ``gt``: ``[N, 2]``. ``templates``: per-query template (None allowed)
    for the per-template table. Everything is divided by N.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 2 or gt.shape != (pred.shape[0], 2):
        raise ValueError(f"expected pred [N, K, 2] and gt [N, 2], got {pred.shape} and {gt.shape}")
    n = pred.shape[0]
    if n == 0:
        raise EvaluationError("There are no ground-truth queries to evaluate.")
    if pred.shape[1] == 0:
        pred = np.full((n, 1, 2), np.nan)
    iou = temporal_iou_array(pred, gt[:, None, :])
    hits = _recalls(iou)
    recall = {name: 100.0 * float(h.sum()) / n for name, h in hits.items()}
    if num_predicted is None:
        num_predicted = int((~np.isnan(pred).any(axis=2)).any(axis=1).sum())
    per_template: dict[str, dict[str, float]] = {}
    if templates is not None:
        if len(templates) != n:
            raise ValueError(f"{len(templates)} templates for {n} queries")
        names = np.array([NO_TEMPLATE if t is None else t for t in templates], dtype=object)
        for name in sorted(set(names)):
            mask = names == name
            count = int(mask.sum())
            per_template[name] = {
                "num_queries": count,
                **{m: 100.0 * float(hits[m][mask].sum()) / count for m in METRIC_NAMES},
            }
    return NLQScores(
        recall=recall,
        mean_r1=(recall["R1@0.3"] + recall["R1@0.5"]) / 2.0,
        mean_r5=(recall["R5@0.3"] + recall["R5@0.5"]) / 2.0,
        miou=100.0 * float(iou[:, 0].sum()) / n,
        num_queries=n,
        num_predicted=num_predicted,
        per_template=per_template,
        num_ignored=num_ignored,
    )


def evaluate(dataset: NLQDataset, predictions: Sequence[Prediction], source: str = "predictions") -> NLQScores:
    """Score a submission against an annotated NLQ file, dividing by its ground-truth queries.

    A prediction for a query the file has but cannot score (no text, or no answer) is ignored and counted;
    one for a query the file does not have at all is an error, as are duplicates.
    """
    queries: list[Query] = dataset.evaluation_queries()
    if not queries:
        raise EvaluationError(
            f"{dataset.source} has no ground-truth windows to evaluate against (is it the unannotated test file?)."
        )
    row = {q.key: i for i, q in enumerate(queries)}
    per_query: list[Any] = [None] * len(queries)
    ignored = 0
    unknown: list[tuple] = []
    seen: Counter = Counter()
    for p in predictions:
        seen[p.key] += 1
        if seen[p.key] == 2:
            raise SubmissionError(
                f"{source} has more than one prediction for clip {p.clip_uid}, annotation "
                f"{p.annotation_uid}, query {p.query_idx}; each query may appear once."
            )
        i = row.get(p.key)
        if i is not None:
            per_query[i] = p.windows
        elif p.query_idx < dataset.annotation_sizes.get((p.clip_uid, p.annotation_uid), 0):
            ignored += 1
        else:
            unknown.append(p.key)
    if unknown:
        c, a, q = unknown[0]
        raise SubmissionError(
            f"{source} has predictions for {len(unknown)} queries that {dataset.source} "
            f"does not contain (e.g. clip {c}, annotation {a}, query {q}); "
            "are they for another split?"
        )
    gt = np.array([(q.start, q.end) for q in queries], dtype=np.float64)
    return score_windows(
        windows_array(per_query),
        gt,
        [q.template for q in queries],
        num_predicted=sum(w is not None for w in per_query),
        num_ignored=ignored,
    )
