"""Writing NLQ files: the atomic JSON writer every file of annotations or predictions goes through, and a
builder of valid v2-style annotation files for generated data (the synthetic world, pseudo-narrations, the
user's corrections, tests). Reading them is :mod:`training.nlq`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from indexing.fsutil import write_bytes_atomic
from training.nlq import Clip, NLQFileError, QueryKey


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = None) -> Path:
    """Write JSON through a temporary file and a rename (:func:`indexing.fsutil.write_bytes_atomic`), so a crash
    never leaves half a file behind; a file that cannot be written is an :class:`NLQFileError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(data, indent=indent) + "\n").encode("utf-8"))
    except OSError as exc:
        raise NLQFileError(f"Cannot write {path} ({exc.strerror or exc}).") from None
    return path


class NLQFileBuilder:
    """Builds a valid v2-style NLQ annotation file: add clips, then queries, then :meth:`write`.

    For generated data (the synthetic world, tests). Queries go to annotation ``annotation_uid`` of their
    clip (created on first use; default ``"<clip_uid>-nlq"``) and :meth:`add_query` returns the query's key,
    the same key a submission must use.
    """

    def __init__(self, version: str = "v2", description: str = "EgoRecall NLQ annotations", date: str | None = None):
        self.version = version
        self.description = description
        self.date = date
        self._videos: dict[str, dict] = {}
        self._clips: dict[str, tuple[dict, Clip]] = {}

    def add_clip(
        self,
        clip_uid: str,
        video_uid: str,
        video_start_sec: float,
        video_end_sec: float,
        split: str = "train",
        **extra: Any,
    ) -> Clip:
        """Add a clip covering ``[video_start_sec, video_end_sec]`` of ``video_uid``; extras are copied in."""
        if clip_uid in self._clips:
            raise ValueError(f"clip {clip_uid} was already added")
        if not (video_end_sec >= video_start_sec):
            raise ValueError(f"clip {clip_uid} ends ({video_end_sec}) before it starts ({video_start_sec})")
        video = self._videos.setdefault(video_uid, {"video_uid": video_uid, "split": split, "clips": []})
        raw = {
            "clip_uid": clip_uid,
            "video_start_sec": float(video_start_sec),
            "video_end_sec": float(video_end_sec),
            "clip_start_sec": 0.0,
            "clip_end_sec": float(video_end_sec) - float(video_start_sec),
            **extra,
            "annotations": [],
        }
        video["clips"].append(raw)
        clip = Clip(clip_uid, video_uid, float(video_start_sec), float(video_end_sec), split)
        self._clips[clip_uid] = (raw, clip)
        return clip

    def add_query(
        self,
        clip_uid: str,
        query: str,
        start: float | None,
        end: float | None,
        template: str | None = None,
        annotation_uid: str | None = None,
        **extra: Any,
    ) -> QueryKey:
        """Add a query with its answer in clip seconds (``None`` for an unannotated file)."""
        if clip_uid not in self._clips:
            raise ValueError(f"add clip {clip_uid} before its queries")
        raw_clip, clip = self._clips[clip_uid]
        ann_uid = annotation_uid or f"{clip_uid}-nlq"
        ann = next((a for a in raw_clip["annotations"] if a["annotation_uid"] == ann_uid), None)
        if ann is None:
            ann = {"annotation_uid": ann_uid, "language_queries": []}
            raw_clip["annotations"].append(ann)
        lq: dict[str, Any] = {}
        if start is not None or end is not None:
            if start is None or end is None:
                raise ValueError("give both start and end, or neither")
            lq.update(
                clip_start_sec=float(start),
                clip_end_sec=float(end),
                video_start_sec=clip.video_start_sec + float(start),
                video_end_sec=clip.video_start_sec + float(end),
            )
        lq.update(template=template, query=query)
        lq.update(extra)
        ann["language_queries"].append(lq)
        return (clip_uid, ann_uid, len(ann["language_queries"]) - 1)

    def to_dict(self, with_answers: bool = True) -> dict:
        """The file's content; ``with_answers=False`` gives the unannotated (test-file) form."""
        data = {
            "version": self.version,
            "description": self.description,
            "videos": json.loads(json.dumps(list(self._videos.values()))),
        }
        if self.date is not None:
            data["date"] = self.date
        if not with_answers:
            for video in data["videos"]:
                for clip in video["clips"]:
                    for ann in clip["annotations"]:
                        ann["language_queries"] = [
                            {k: v for k, v in lq.items() if k not in ANSWER_KEYS} for lq in ann["language_queries"]
                        ]
        return data

    def write(self, path: str | os.PathLike, with_answers: bool = True, indent: int | None = None) -> Path:
        return write_json_atomic(path, self.to_dict(with_answers), indent=indent)


ANSWER_KEYS = frozenset(
    {
        "clip_start_sec",
        "clip_end_sec",
        "video_start_sec",
        "video_end_sec",
        "video_start_frame",
        "video_end_frame",
        "clip_start_frame",
        "clip_end_frame",
    }
)
"""The fields of a language query that give its answer away (absent from the unannotated test file)."""
