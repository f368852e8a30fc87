"""Ego4D NLQ challenge submissions.

The format: ``{"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": [...]}``.

Each result names a query by ``(clip_uid, annotation_uid, query_idx)`` and lists its ``predicted_times``,
``[[start, end], ...]`` in seconds from the clip's start, best first. The challenge takes five; a file may
carry more (only the first five count for R@5) or fewer (the missing ranks are misses).

Duplicates are an error: two results for the same query would be counted twice by the official script
(it loops over results), and picking one silently would hide a bug in whatever wrote the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.nlq import NLQFileError, Query, QueryKey, read_json
from training.nlq_writer import write_json_atomic

CHALLENGE = "ego4d_nlq_challenge"
VERSION = "1.0"
MAX_WINDOWS = 5
"""How many windows per query the challenge scores (R@5); the writer keeps this many."""


class SubmissionError(NLQFileError):
    """A predictions file that is not a valid NLQ submission."""


@dataclass(frozen=True)
class Prediction:
    """Ranked answer windows (clip seconds, best first) for one query."""

    clip_uid: str
    annotation_uid: str
    query_idx: int
    windows: tuple[tuple[float, float], ...]

    @property
    def key(self) -> QueryKey:
        return (self.clip_uid, self.annotation_uid, self.query_idx)

    @classmethod
    def for_query(cls, query: Query | QueryKey, windows: Iterable[Any]) -> Prediction:
        """Build from a query (or its key) and windows given as ``(start, end)`` pairs or objects with
        ``.start``/``.end`` (e.g. :class:`models.windows.Window`)."""
        key: QueryKey = query.key if isinstance(query, Query) else (str(query[0]), str(query[1]), int(query[2]))
        pairs = tuple(
            (float(w.start), float(w.end)) if hasattr(w, "start") else (float(w[0]), float(w[1])) for w in windows
        )
        return cls(key[0], key[1], key[2], pairs)


def _fail(source: str, message: str) -> SubmissionError:
    return SubmissionError(f"{source}: {message}")


def _time(value: Any, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{where} is {value!r}, not a finite number of seconds.")
    return float(value)


def parse_submission(data: Any, source: str = "<submission>") -> list[Prediction]:
    """Validate a submission object (parsed JSON) and return its predictions in file order."""
    if not isinstance(data, dict):
        raise _fail(source, f"the top level should be an object with a 'results' list, not a {type(data).__name__}.")
    challenge = data.get("challenge")
    if challenge is not None and challenge != CHALLENGE:
        raise _fail(source, f"'challenge' is {challenge!r}; an NLQ submission says {CHALLENGE!r}.")
    results = data.get("results")
    if not isinstance(results, list):
        raise _fail(source, "there is no 'results' list.")
    predictions: list[Prediction] = []
    first_index: dict[QueryKey, int] = {}
    for i, item in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(item, dict):
            raise _fail(source, f"{where} should be an object.")
        for name in ("clip_uid", "annotation_uid"):
            if not isinstance(item.get(name), str) or not item.get(name):
                raise _fail(source, f"{where} has no '{name}' string.")
        idx = item.get("query_idx")
        if isinstance(idx, float) and idx.is_integer():
            idx = int(idx)
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise _fail(source, f"{where} has query_idx = {item.get('query_idx')!r}; it should be a whole number >= 0.")
        times = item.get("predicted_times")
        if not isinstance(times, list):
            raise _fail(source, f"{where} should have 'predicted_times', a list of [start, end] pairs.")
        windows = []
        for j, pair in enumerate(times):
            pwhere = f"{where}.predicted_times[{j}]"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise _fail(source, f"{pwhere} is {pair!r}; it should be a [start, end] pair.")
            start, end = _time(pair[0], source, f"{pwhere}[0]"), _time(pair[1], source, f"{pwhere}[1]")
            if start > end:
                raise _fail(source, f"{pwhere} starts at {start} s, after it ends at {end} s.")
            windows.append((start, end))
        pred = Prediction(item["clip_uid"], item["annotation_uid"], idx, tuple(windows))
        if pred.key in first_index:
            raise _fail(
                source,
                f"{where} and results[{first_index[pred.key]}] are both for clip "
                f"{pred.clip_uid}, annotation {pred.annotation_uid}, query {idx}; "
                "each query may appear once.",
            )
        first_index[pred.key] = i
        predictions.append(pred)
    return predictions


def load_submission(path: str | os.PathLike) -> list[Prediction]:
    """Read and validate an NLQ challenge submission file."""
    return parse_submission(read_json(path, SubmissionError, "predictions file"), str(path))


def submission_dict(predictions: Sequence[Prediction], max_windows: int = MAX_WINDOWS) -> dict:
    """The submission object; each query keeps its first ``max_windows`` windows. Duplicates are refused."""
    seen: set[QueryKey] = set()
    results = []
    for p in predictions:
        if p.key in seen:
            raise SubmissionError(
                f"Two predictions for clip {p.clip_uid}, annotation {p.annotation_uid}, "
                f"query {p.query_idx}; each query may appear once."
            )
        seen.add(p.key)
        for s, e in p.windows:
            if not (math.isfinite(s) and math.isfinite(e)) or s > e:
                raise SubmissionError(f"The prediction for {p.key} has an invalid window [{s}, {e}].")
        results.append(
            {
                "clip_uid": p.clip_uid,
                "annotation_uid": p.annotation_uid,
                "query_idx": int(p.query_idx),
                "predicted_times": [[float(s), float(e)] for s, e in p.windows[:max_windows]],
            }
        )
    return {"version": VERSION, "challenge": CHALLENGE, "results": results}


def write_submission(
    path: str | os.PathLike, predictions: Sequence[Prediction], max_windows: int = MAX_WINDOWS
) -> Path:
    """Write a challenge submission (atomically); see :func:`submission_dict`."""
    return write_json_atomic(path, submission_dict(predictions, max_windows))
