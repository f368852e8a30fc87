"""Generated Ego4D-like NLQ, submission and narration data for the NLQ tests (no real Ego4D files needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.nlq_writer import NLQFileBuilder

TEMPLATES = [
    "Objects: Where is object X before / after event Y?",
    "Objects: Where did I put X?",
    "Objects: How many X's? (quantity question)",
    "Place: Where did I put X?",
    "People: Who did I talk to in location X?",
    None,
]


def make_nlq(
    seed: int = 0,
    version: str = "v2",
    videos: int = 3,
    clips_per_video: int = 2,
    annotations_per_clip: int = 2,
    queries_per_annotation: int = 4,
    clip_len: float = 480.0,
    empty_rate: float = 0.1,
    past_end_rate: float = 0.05,
    missing_text_rate: float = 0.0,
    split: str = "val",
) -> dict:
    """An NLQ annotation object shaped like Ego4D's (v1: frame fields, missing texts; v2: cleaner)."""
    rng = np.random.default_rng(seed)
    b = NLQFileBuilder(version=version, description=f"generated {version}", date="2026-11-22")
    for v in range(videos):
        video_uid = f"vid{seed}-{v:02d}"
        for c in range(clips_per_video):
            clip_uid = f"clip{seed}-{v:02d}-{c}"
            vs = 30.0 + c * (clip_len + 60.0)
            extra = (
                {"video_start_frame": int(vs * 30), "video_end_frame": int((vs + clip_len) * 30)}
                if version == "v1"
                else {}
            )
            b.add_clip(clip_uid, video_uid, vs, vs + clip_len, split=split, **extra)
            for a in range(annotations_per_clip):
                ann_uid = f"ann-{clip_uid}-{a}"
                for q in range(queries_per_annotation):
                    r = rng.random()
                    start = float(np.round(rng.uniform(0, clip_len - 20), 3))
                    if r < empty_rate:
                        end = start + float(rng.choice([0.0, 1 / 30]))
                    elif r < empty_rate + past_end_rate:
                        start, end = clip_len - 2.0, clip_len + 3.5
                    else:
                        end = start + float(np.round(rng.uniform(0.5, 15.0), 3))
                    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
                    b.add_query(
                        clip_uid,
                        f"where is thing {v}-{c}-{a}-{q}?",
                        start,
                        end,
                        template=template,
                        annotation_uid=ann_uid,
                        slot_x="thing",
                        verb_x="[verb_not_applicable]",
                        raw_tags=[template, "thing"],
                    )
    data = b.to_dict()
    if missing_text_rate:
        for video in data["videos"]:
            for clip in video["clips"]:
                for ann in clip["annotations"]:
                    for lq in ann["language_queries"]:
                        if rng.random() < missing_text_rate:
                            del lq["query"]
    return data


def gt_windows(data: dict) -> dict[tuple[str, str, int], tuple[float, float]]:
    """Every answered query with text: key -> (start, end)."""
    out = {}
    for video in data["videos"]:
        for clip in video["clips"]:
            for ann in clip["annotations"]:
                for qi, lq in enumerate(ann["language_queries"]):
                    if lq.get("query") and lq.get("clip_start_sec") is not None:
                        out[(clip["clip_uid"], ann["annotation_uid"], qi)] = (lq["clip_start_sec"], lq["clip_end_sec"])
    return out


def make_predictions(
    data: dict, seed: int = 0, fraction: float = 1.0, max_windows: int = 5, min_windows: int = 1
) -> dict:
    """A submission for (a fraction of) the queries: a mix of near-misses, hits, ties, touching windows and
    junk, ``min_windows`` to ``max_windows`` windows each (never of zero length)."""
    rng = np.random.default_rng(seed)
    results = []
    for (clip_uid, ann_uid, qi), (s, e) in gt_windows(data).items():
        if rng.random() >= fraction:
            continue
        n = int(rng.integers(min_windows, max_windows + 1))
        windows = []
        for _ in range(n):
            kind = rng.integers(4)
            if kind == 0:  # jitter around the truth
                w = max(e - s, 0.5)
                a = s + rng.normal(0, w / 2)
                windows.append([float(a), float(a + w * rng.uniform(0.5, 2.0))])
            elif kind == 1 and e - s > 0:  # ties: IoU 0.5 or 0.3 up to rounding (pred contains gt)
                w = e - s
                windows.append([float(s), float(s + w / 0.5)] if rng.random() < 0.5 else [float(s), float(s + w / 0.3)])
            elif kind == 2:  # touching
                windows.append([float(e), float(e + 3.0)])
            else:
                a = rng.uniform(0, 480)
                windows.append([float(a), float(a + rng.uniform(0, 30))])
        results.append({"clip_uid": clip_uid, "annotation_uid": ann_uid, "query_idx": qi, "predicted_times": windows})
    return {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": results}


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
