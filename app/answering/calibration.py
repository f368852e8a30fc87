"""Confidence: a mode's window score -> the probability that the moment is right, and "no good match".

Raw scores mean different things in different modes (a cosine, a highlight probability, a fused mix) and say
nothing a user can act on. A :class:`Calibration`, fitted on validation queries with known answers plus
*negative* queries (questions about things that never happen in that clip), maps the best moment's score to
the probability that it overlaps the answer (rank-1 IoU > 0.3) by logistic regression (Platt scaling), and
keeps a threshold under which the app says "no good match" -- chosen as the highest that loses at most
``max_r1_loss`` points of R@1@0.3 on the answerable queries it was fitted on (the relevance-rejection
protocol of the grounding literature; Ego4D itself has no unanswerable queries).

It is stored with what it calibrates: a checkpoint's ``meta.json`` (``calibration.checkpoint`` or
``calibration.fused``) or an EgoRecall-pretrained encoder's sidecar (``calibration.zeroshot``). A mode without
one shows raw scores and never says "no good match".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.errors import EgoRecallError


class InvalidCalibration(EgoRecallError):
    """A stored calibration that is not a usable record."""


@dataclass(frozen=True)
class Calibration:
    """``P(right) = sigmoid(a * score + b)``; below ``threshold`` the best moment is "no good match"."""

    a: float
    b: float
    threshold: float
    fitted_on: str = ""
    positives: int = 0
    negatives: int = 0

    def probability(self, score: float | np.ndarray) -> float | np.ndarray:
        z = self.a * np.asarray(score, dtype=np.float64) + self.b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
        return float(p) if np.ndim(p) == 0 else p

    def is_good(self, score: float) -> bool:
        return self.probability(score) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> Calibration:
        if not isinstance(values, dict):
            raise InvalidCalibration("a calibration must be a JSON object")
        try:
            cal = cls(
                a=float(values["a"]),
                b=float(values["b"]),
                threshold=float(values["threshold"]),
                fitted_on=str(values.get("fitted_on", "")),
                positives=int(values.get("positives", 0)),
                negatives=int(values.get("negatives", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCalibration(f"malformed calibration ({exc})") from None
        if not (math.isfinite(cal.a) and math.isfinite(cal.b) and 0.0 <= cal.threshold <= 1.0):
            raise InvalidCalibration("calibration needs finite a, b and a threshold in [0, 1]")
        return cal


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[float, float]:
    """1-D logistic regression by Newton's method (x standardised inside, a tiny ridge keeps it finite when
    the classes separate); returns (a, b) on the original scale of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    xs = (x - mu) / sd
    w = np.zeros(2)
    design = np.stack([xs, np.ones_like(xs)], axis=1)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -60, 60)))
        grad = design.T @ (p - y) + l2 * np.array([w[0], 0.0])
        hess = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)


def fit_calibration(
    answerable_scores,
    answerable_hits,
    negative_scores,
    *,
    max_r1_loss: float = 2.0,
    fitted_on: str = "",
) -> Calibration:
    """Fit ``P(right | best score)`` on answerable queries (their rank-1 score and whether it hit at IoU 0.3)
    and negative ones (their rank-1 score; never right), and pick the threshold.

    The threshold is the highest probability that flags at most ``max_r1_loss`` percent of the answerable
    queries' rank-1 *hits* as "no good match" (hits lost / all answerable queries).
    """
    pos = np.asarray(answerable_scores, dtype=np.float64)
    hits = np.asarray(answerable_hits, dtype=bool)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0 or len(hits) != len(pos):
        raise ValueError("calibration needs answerable queries (with hit flags) and negative queries")
    x = np.concatenate([pos, neg])
    y = np.concatenate([hits.astype(np.float64), np.zeros(len(neg))])
    a, b = fit_logistic(x, y)
    probe = Calibration(a, b, 0.0)
    hit_probs = np.sort(probe.probability(pos[hits])) if hits.any() else np.array([])
    allowed = int(math.floor(max_r1_loss / 100.0 * len(pos) + 1e-9))  # hits that may be flagged
    if len(hit_probs) == 0:
        threshold = 0.5
    elif allowed >= len(hit_probs):
        threshold = float(hit_probs[-1])
    else:
        threshold = float(hit_probs[allowed])  # flags exactly the `allowed` lowest hits (strictly below)
    return Calibration(a, b, threshold, fitted_on, int(len(pos)), int(len(neg)))


def rejection_report(cal: Calibration, answerable_scores, answerable_hits, negative_scores) -> dict[str, float]:
    """How a calibration does on other queries: negatives flagged (%), R@1@0.3 kept and lost (points)."""
    pos = np.asarray(answerable_scores, dtype=np.float64)
    hits = np.asarray(answerable_hits, dtype=bool)
    neg = np.asarray(negative_scores, dtype=np.float64)
    good_pos = cal.probability(pos) >= cal.threshold
    return {
        "negatives_flagged": 100.0 * float(np.mean(cal.probability(neg) < cal.threshold)) if len(neg) else 0.0,
        "answerable_flagged": 100.0 * float(np.mean(~good_pos)) if len(pos) else 0.0,
        "R@1@0.3": 100.0 * float(np.mean(hits)) if len(pos) else 0.0,
        "R@1@0.3_kept": 100.0 * float(np.mean(hits & good_pos)) if len(pos) else 0.0,
        "R@1@0.3_lost": 100.0 * float(np.mean(hits & ~good_pos)) if len(pos) else 0.0,
    }
