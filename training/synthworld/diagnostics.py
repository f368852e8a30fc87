"""Can an encoder tell the world's objects, rooms and places apart? Labelled frames and simple classifiers.

The learning tests downstream only work if frame features carry *which* object is in the hand and *where*
the wearer is. These helpers render labelled frames straight from event scripts (the same renderer the videos
use) and score nearest-centroid and linear-probe classifiers on held-out videos, so the property can be
tested and benchmarked for any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synthworld.render import PICK_PHASES, PUT_PHASES, SceneAssets, VideoRenderer


@dataclass
class LabelledFrames:
    frames: np.ndarray  # uint8 (N, H, W, 3)
    video: np.ndarray  # (N,) video index of each frame
    view: np.ndarray  # (N,) "held" (object in hand, room view), "held_up" (object in hand over a place),
    #                      "room" (hands empty, room view), "lying" (a place close-up, nothing in hand)
    obj: np.ndarray  # (N,) object in hand ("" if none)
    room: np.ndarray  # (N,) room on screen
    place: np.ndarray  # (N,) place on screen ("" in room views)
    time: np.ndarray  # (N,) seconds into its video


def labelled_frames(plans, assets: SceneAssets, fps: float = 15.0) -> LabelledFrames:
    """Frames whose content is known exactly, sampled away from transitions."""
    rows: list[tuple] = []
    for p in plans:
        r = VideoRenderer(assets, p.events, fps, p.motion_seed)
        for e in p.events:

            def add(u: float, view: str, obj: str = "", room: str = e.room, place: str = "") -> None:
                t = e.start + u * e.duration  # noqa: B023 (add is called within this iteration)
                rows.append((r.frame_at(t, e), p.index, view, obj, room, place, t))  # noqa: B023

            if e.kind == "look_around" and e.duration >= 1.0:
                for u in (0.25, 0.75):
                    add(u, "held" if e.held else "room", e.held or "")
            elif e.kind == "walk":
                add(0.15, "held" if e.held else "room", e.held or "", room=e.from_room or e.room)
                add(0.85, "held" if e.held else "room", e.held or "")
            elif e.kind == "put":
                add(PUT_PHASES[0] / 2, "held_up", e.obj, place=e.place)
            elif e.kind == "pick":
                add((1.0 + PICK_PHASES[2]) / 2, "held_up", e.obj, place=e.place)
            elif e.kind == "look" and not e.held:
                add(0.5, "lying", place=e.place)
    frames, video, view, obj, room, place, time = zip(*rows)
    return LabelledFrames(
        np.stack(frames),
        np.array(video),
        np.array(view),
        np.array(obj),
        np.array(room),
        np.array(place),
        np.array(time),
    )


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    return (x - mu) / sd


def nearest_centroid_accuracy(
    emb: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, standardise: bool = False
) -> float:
    """Cosine nearest class mean, fitted on ``train`` rows, scored on ``test`` rows."""
    x = emb.astype(np.float64)
    if standardise:
        x = _standardise(x, train)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    classes = np.unique(labels[train])
    centroids = np.stack([x[train & (labels == c)].mean(0) for c in classes])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    pred = classes[np.argmax(x[test] @ centroids.T, axis=1)]
    return float((pred == labels[test]).mean())


def linear_probe_accuracy(
    emb: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, ridge: float = 1.0
) -> float:
    """One-vs-rest ridge regression on standardised features: what a localizer's first linear layer reads."""
    x = _standardise(emb.astype(np.float64), train)
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    classes = np.unique(labels[train])
    y = (labels[train][:, None] == classes[None, :]).astype(np.float64)
    xt = x[train]
    w = np.linalg.solve(xt.T @ xt + ridge * np.eye(xt.shape[1]), xt.T @ y)
    pred = classes[np.argmax(x[test] @ w, axis=1)]
    return float((pred == labels[test]).mean())


def distinguishability(emb: np.ndarray, lf: LabelledFrames, n_train_videos: int) -> dict[str, dict[str, float]]:
    """Accuracy of identifying the held object, the room and the place, on videos not used for fitting."""
    train_v, test_v = lf.video < n_train_videos, lf.video >= n_train_videos
    tasks = {
        "object in hand": (np.isin(lf.view, ["held", "held_up"]), lf.obj),
        "room": (np.isin(lf.view, ["held", "room"]), lf.room),
        "place": (np.isin(lf.view, ["held_up", "lying"]), lf.place),
    }
    out = {}
    for name, (mask, labels) in tasks.items():
        train, test = mask & train_v, mask & test_v
        n_classes = len(np.unique(labels[train]))
        out[name] = {
            "chance": 1.0 / n_classes,
            "nearest_centroid": nearest_centroid_accuracy(emb, labels, train, test),
            "nearest_centroid_standardised": nearest_centroid_accuracy(emb, labels, train, test, standardise=True),
            "linear_probe": linear_probe_accuracy(emb, labels, train, test),
            "n_train": int(train.sum()),
            "n_test": int(test.sum()),
        }
    return out
