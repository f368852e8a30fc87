"""Ego4D-format JSON for the synthetic world: NLQ annotation files and narration.json, as plain dicts.

Kept small and separate on purpose: when the shared NLQ reader/writer (``training/nlq.py``) lands, these
builders are the only code to switch over. Frame numbers are at the video's own frame rate (Ego4D's are at its
canonical 30 fps); every consumer in EgoRecall reads the seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

NLQ_VERSION = "v2"
FILE_DATE = "synthetic"  # a fixed string, not today's date: same seed, same bytes


def _t(x: float) -> float:
    return round(float(x), 3)


def nlq_query(q, clip_start: float, fps: float) -> dict:
    """One language query; ``q`` has video-second ``start``/``end`` and the Ego4D text fields."""
    return {
        "clip_start_sec": _t(q.start - clip_start),
        "clip_end_sec": _t(q.end - clip_start),
        "video_start_sec": _t(q.start),
        "video_end_sec": _t(q.end),
        "video_start_frame": int(round(q.start * fps)),
        "video_end_frame": int(round(q.end * fps)),
        "template": q.template,
        "query": q.query,
        "slot_x": q.slot_x,
        "verb_x": q.verb_x,
        "raw_tags": [q.template, q.query, q.slot_x, q.verb_x],
    }


def nlq_clip(clip_uid: str, start: float, end: float, fps: float, annotation_uid: str, queries: list) -> dict:
    return {
        "clip_uid": clip_uid,
        "video_start_sec": _t(start),
        "video_end_sec": _t(end),
        "video_start_frame": int(round(start * fps)),
        "video_end_frame": int(round(end * fps)),
        "clip_start_sec": 0.0,
        "clip_end_sec": _t(end - start),
        "clip_start_frame": 0,
        "clip_end_frame": int(round((end - start) * fps)),
        "source_clip_uid": clip_uid,
        "annotations": [
            {"annotation_uid": annotation_uid, "language_queries": [nlq_query(q, start, fps) for q in queries]}
        ],
    }


def nlq_file(videos: list[dict], split: str, description: str) -> dict:
    """``videos``: ``{"video_uid", "clips": [nlq_clip(...)]}``; videos without clips are left out."""
    return {
        "version": NLQ_VERSION,
        "date": FILE_DATE,
        "description": description,
        "manifest": f"synthetic NLQ {split}",
        "videos": [{"video_uid": v["video_uid"], "split": split, "clips": v["clips"]} for v in videos if v["clips"]],
    }


def narration_entry(t: float, fps: float, text: str, annotation_uid: str) -> dict:
    return {
        "timestamp_sec": _t(t),
        "timestamp_frame": int(round(t * fps)),
        "narration_text": text,
        "annotation_uid": annotation_uid,
    }


def narration_video(narrations: list[dict], summary: str, duration: float, annotation_uid: str) -> dict:
    return {
        "narration_pass_1": {
            "narrations": narrations,
            "summaries": [
                {"start_sec": 0.0, "end_sec": _t(duration), "summary_text": summary, "annotation_uid": annotation_uid}
            ],
        },
        "status": "complete",
    }


def write_json(path: Path, data: dict) -> int:
    """Write deterministically (fixed key order, fixed float rounding upstream); returns bytes written."""
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
