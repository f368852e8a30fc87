"""Presence: a question's object classified among everyday names, frame by frame (models/presence.py)."""

from __future__ import annotations

import numpy as np

from models.presence import presence, presence_curves, vocabulary


def test_the_vocabulary_is_everyday_object_names():
    names = vocabulary()
    assert len(names) > 200 and len(set(names)) == len(names) and list(names) == sorted(names)
    assert {"keys", "cup", "phone", "book", "knife"} <= set(names)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_presence_is_high_where_the_object_wins_a_frame_and_low_where_it_never_does():
    rng = np.random.default_rng(0)
    names = _unit(rng.normal(size=(50, 32)).astype(np.float32))
    shown = _unit(names[[3] * 10 + [7] * 10] + 0.05 * rng.normal(size=(20, 32)))  # name 3, then name 7
    frames = np.concatenate([_unit(rng.normal(size=(30, 32))), shown]).astype(np.float16) * 3.0  # any norm
    curves = presence_curves(frames, names, [3, 7, 11], scale=30.0)
    assert curves.shape == (3, 50)
    assert np.all((curves >= 0) & (curves <= 1))
    assert curves[0, 30:40].min() > 0.5 and curves[1, 40:].min() > 0.5  # each object wins its own frames
    p = presence(frames, names, [3, 7, 11], scale=30.0)
    assert p[0] > 0.5 and p[1] > 0.5 and p[2] < 0.2  # name 11 is never on screen
    # The probabilities of all names in a frame sum to one.
    every = presence_curves(frames, names, list(range(50)), scale=30.0)
    assert np.allclose(every.sum(axis=0), 1.0, atol=1e-4)
    assert presence(frames[:0], names, [3], scale=30.0).tolist() == [0.0]
