"""Confidence: a mode's window score -> the probability that the moment is right, and "no good match".

Raw scores mean different things in different modes (a cosine, a highlight probability, a fused mix) and say
nothing a user can act on. A :class:`Calibration`, fitted on validation queries with known answers plus
*negative* queries (questions about things that never happen in that clip), maps the best moment's score to
the probability that it overlaps the answer (rank-1 IoU > 0.3) by logistic regression (Platt scaling), with a
second input where the mode measures it: the *presence* of the question's object in the clip
(:mod:`models.presence`, as a log-probability), for questions that name an object only, with their own
intercept (``object_bias``), so a question about no object is never taken for one whose object is surely
there; and for a mode whose score is a trained model's (``fused``), a third: CLIP's own reading of the clip, the
best zero-shot window score there (``clip_weight``; see :attr:`app.answering.base.ClipAnswer.clip_score`). It
keeps a threshold under which the app says "no good
match", chosen as the highest that loses at most ``max_r1_loss`` points of R@1@0.3 on the answerable queries it
was fitted on (the relevance-rejection protocol of the grounding literature; Ego4D itself has no
unanswerable queries).

It is stored with what it calibrates: a checkpoint's ``meta.json`` (``calibration.checkpoint`` or
``calibration.fused``) or an EgoRecall-pretrained encoder's sidecar (``calibration.zeroshot``). A mode without
one shows raw scores and never says "no good match".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from models.errors import EgoRecallError


class InvalidCalibration(EgoRecallError):
    """A stored calibration that is not a usable record."""


PRESENCE_FLOOR = 1e-4
"""Presence below this counts as this (its log stays finite; no frame of a clip names the object that rarely
when it is there)."""


def presence_term(presence) -> np.ndarray:
    """``log(presence)`` as the calibration reads it: 0 where there is none (NaN/None: a question about no
    object, or a mode that does not measure it), so such a question is judged on its score alone."""
    p = np.asarray(np.nan if presence is None else presence, dtype=np.float64)
    return np.where(np.isfinite(p), np.log(np.clip(p, PRESENCE_FLOOR, 1.0)), 0.0)


def names_object(presence) -> np.ndarray:
    """1 where the question names an object (its presence was measured), 0 where not: an explicit input."""
    p = np.asarray(np.nan if presence is None else presence, dtype=np.float64)
    return np.isfinite(p).astype(np.float64)


def clip_term(clip) -> np.ndarray:
    """The clip's best zero-shot window score as the calibration reads it: 0 where it was not measured (NaN or
    None), so such a moment is judged on its other inputs."""
    c = np.asarray(np.nan if clip is None else clip, dtype=np.float64)
    return np.where(np.isfinite(c), c, 0.0)


@dataclass(frozen=True)
class Calibration:
    """``P(right) = sigmoid(a * score + c * log(presence) + e * clip + b)``; below ``threshold`` the best moment
    is "no good match". ``c`` (``presence_weight``) and ``e`` (``clip_weight``) are 0 for a mode that does not
    measure them."""

    a: float
    b: float
    threshold: float
    fitted_on: str = ""
    positives: int = 0
    negatives: int = 0
    presence_weight: float = 0.0
    object_bias: float = 0.0
    """Added for questions that name an object (presence measured): presence is evidence only about those, so
    a question about no object is judged on its score alone, never as if its object were surely present."""
    clip_weight: float = 0.0
    """Weight of the clip's best zero-shot window score (:func:`clip_term`), for modes that measure it."""

    def probability(self, score: float | np.ndarray, presence=None, clip=None) -> float | np.ndarray:
        z = self.a * np.asarray(score, dtype=np.float64) + self.b
        if self.presence_weight or self.object_bias:
            z = z + self.presence_weight * presence_term(presence) + self.object_bias * names_object(presence)
        if self.clip_weight:
            z = z + self.clip_weight * clip_term(clip)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
        return float(p) if np.ndim(p) == 0 else p

    def is_good(self, score: float, presence: float | None = None, clip: float | None = None) -> bool:
        return bool(self.probability(score, presence, clip) >= self.threshold)

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
                presence_weight=float(values.get("presence_weight", 0.0)),
                object_bias=float(values.get("object_bias", 0.0)),
                clip_weight=float(values.get("clip_weight", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCalibration(f"malformed calibration ({exc})") from None
        if not (
            math.isfinite(cal.a)
            and math.isfinite(cal.b)
            and math.isfinite(cal.presence_weight)
            and math.isfinite(cal.object_bias)
            and math.isfinite(cal.clip_weight)
            and 0.0 <= cal.threshold <= 1.0
        ):
            raise InvalidCalibration(
                "calibration needs finite a, b, presence_weight, object_bias, clip_weight and a threshold in [0, 1]"
            )
        return cal


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression of ``y`` on the columns of ``x`` ([n] or [n, d]) by Newton's method (columns
    standardised inside; a tiny ridge keeps it finite when the classes separate); returns (weights [d],
    intercept) on the original scale of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y, dtype=np.float64)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    design = np.concatenate([(x - mu) / sd, np.ones((len(x), 1))], axis=1)
    d = x.shape[1]
    ridge = l2 * np.diag([1.0] * d + [0.0])
    w = np.zeros(d + 1)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -60, 60)))
        grad = design.T @ (p - y) + ridge @ w
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:d] / sd
    return weights, float(w[d] - weights @ mu)


def fit_calibration(
    answerable_scores,
    answerable_hits,
    negative_scores,
    *,
    answerable_presence=None,
    negative_presence=None,
    answerable_clip=None,
    negative_clip=None,
    max_r1_loss: float = 2.0,
    fitted_on: str = "",
) -> Calibration:
    """Fit ``P(right | best score[, presence][, clip])`` on answerable queries (their rank-1 score and whether
    it hit at IoU 0.3) and negative ones (their rank-1 score; never right), and pick the threshold. Presence (NaN
    where a query has none) enters only when some query has it; the clip's zero-shot score only when given.

    The threshold is the highest probability that flags at most ``max_r1_loss`` percent of the answerable
    queries' rank-1 *hits* as "no good match" (hits lost / all answerable queries).
    """
    pos = np.asarray(answerable_scores, dtype=np.float64)
    hits = np.asarray(answerable_hits, dtype=bool)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0 or len(hits) != len(pos):
        raise ValueError("calibration needs answerable queries (with hit flags) and negative queries")
    pos_p = _per_query(answerable_presence, len(pos))
    neg_p = _per_query(negative_presence, len(neg))
    pos_c = _per_query(answerable_clip, len(pos))
    neg_c = _per_query(negative_clip, len(neg))
    y = np.concatenate([hits.astype(np.float64), np.zeros(len(neg))])
    columns = {"a": np.concatenate([pos, neg])}
    presence = np.concatenate([pos_p, neg_p])
    if np.isfinite(presence).any():
        columns["presence_weight"] = presence_term(presence)
        if not names_object(presence).all():  # else every question names an object: the intercept is its own
            columns["object_bias"] = names_object(presence)
    clip = np.concatenate([pos_c, neg_c])
    if np.isfinite(clip).any():
        columns["clip_weight"] = clip_term(clip)
    weights, b = fit_logistic(np.stack(list(columns.values()), axis=1), y)
    fitted = {name: float(w) for name, w in zip(columns, weights)}
    probe = Calibration(
        a=fitted["a"],
        b=b,
        threshold=0.0,
        presence_weight=fitted.get("presence_weight", 0.0),
        object_bias=fitted.get("object_bias", 0.0),
        clip_weight=fitted.get("clip_weight", 0.0),
    )
    hit_probs = np.sort(probe.probability(pos[hits], pos_p[hits], pos_c[hits])) if hits.any() else np.array([])
    allowed = int(math.floor(max_r1_loss / 100.0 * len(pos) + 1e-9))  # hits that may be flagged
    if len(hit_probs) == 0:
        threshold = 0.5
    elif allowed >= len(hit_probs):
        threshold = float(hit_probs[-1])
    else:
        threshold = float(hit_probs[allowed])  # flags exactly the `allowed` lowest hits (strictly below)
    return replace(probe, threshold=threshold, fitted_on=fitted_on, positives=int(len(pos)), negatives=int(len(neg)))


def _per_query(values, n: int) -> np.ndarray:
    """One value per query (NaN where it has none) from a sequence that may hold None, or all NaN."""
    if values is None:
        return np.full(n, np.nan)
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if len(out) != n:
        raise ValueError("one presence (or clip score) value, or None, per query is needed")
    return out


def rejection_report(
    cal: Calibration,
    answerable_scores,
    answerable_hits,
    negative_scores,
    answerable_presence=None,
    negative_presence=None,
    answerable_clip=None,
    negative_clip=None,
) -> dict[str, float]:
    """How a calibration does on other queries: negatives flagged (%), R@1@0.3 kept and lost (points)."""
    pos = np.asarray(answerable_scores, dtype=np.float64)
    hits = np.asarray(answerable_hits, dtype=bool)
    neg = np.asarray(negative_scores, dtype=np.float64)
    pos_p = _per_query(answerable_presence, len(pos))
    neg_p = _per_query(negative_presence, len(neg))
    pos_c = _per_query(answerable_clip, len(pos))
    neg_c = _per_query(negative_clip, len(neg))
    good_pos = cal.probability(pos, pos_p, pos_c) >= cal.threshold
    bad_neg = cal.probability(neg, neg_p, neg_c) < cal.threshold
    return {
        "negatives_flagged": 100.0 * float(np.mean(bad_neg)) if len(neg) else 0.0,
        "answerable_flagged": 100.0 * float(np.mean(~good_pos)) if len(pos) else 0.0,
        "R@1@0.3": 100.0 * float(np.mean(hits)) if len(pos) else 0.0,
        "R@1@0.3_kept": 100.0 * float(np.mean(hits & good_pos)) if len(pos) else 0.0,
        "R@1@0.3_lost": 100.0 * float(np.mean(hits & ~good_pos)) if len(pos) else 0.0,
    }
