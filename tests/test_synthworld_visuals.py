"""The property the learning tests rest on: a RANDOMLY initialised tiny CLIP at 64 px can tell the synthetic
world's objects, rooms and places apart (REFERENCE-NOTES: small objects carry too little through such an
encoder, so the world draws them large and colour-distinct).

Scored on videos the classifiers never saw. The same numbers for any encoder: ``bench/bench_synthworld.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.synthworld.catalog import DEFAULT_HOUSE
from training.synthworld.diagnostics import distinguishability, labelled_frames
from training.synthworld.plan import SynthConfig, plan_world_video
from training.synthworld.render import HOLD_SIZE, SceneAssets

N_VIDEOS, N_TRAIN = 20, 14


@pytest.fixture(scope="module")
def scores(tiny_encoder):
    cfg = SynthConfig(seed=1, duration=90.0)
    plans = [plan_world_video(i, cfg) for i in range(N_VIDEOS)]
    lf = labelled_frames(plans, SceneAssets(DEFAULT_HOUSE, cfg.size), cfg.fps)
    emb = tiny_encoder.encode_frames(lf.frames)
    return distinguishability(emb, lf, N_TRAIN), lf


def test_every_class_is_seen_in_training_and_testing(scores):
    s, lf = scores
    assert set(lf.obj[lf.obj != ""]) == {t.name for t in DEFAULT_HOUSE.things}
    assert set(lf.room) == {r.name for r in DEFAULT_HOUSE.rooms}
    for task in s.values():
        assert task["n_train"] >= 100 and task["n_test"] >= 50


def test_held_objects_are_identified_far_above_chance(scores):
    s, _ = scores
    obj = s["object in hand"]
    assert obj["nearest_centroid"] >= 3 * obj["chance"], obj
    assert obj["nearest_centroid_standardised"] >= 4 * obj["chance"], obj
    assert obj["linear_probe"] >= 0.85, obj  # what a localizer's first (linear) layer can read


def test_rooms_and_places_are_identified_far_above_chance(scores):
    s, _ = scores
    room, place = s["room"], s["place"]
    assert room["nearest_centroid"] >= 0.7, room  # chance 0.2
    assert place["nearest_centroid"] >= 5 * place["chance"], place
    assert place["linear_probe"] >= 0.5, place


def test_held_objects_fill_a_large_part_of_the_frame():
    assets = SceneAssets(DEFAULT_HOUSE, 128)
    assert HOLD_SIZE >= 0.4
    for thing in DEFAULT_HOUSE.things:
        _, alpha = assets.sprite(thing.name, HOLD_SIZE)
        cols = np.flatnonzero(alpha.any(0))
        assert (cols[-1] - cols[0] + 1) / 128 >= 0.35, thing.name  # >= 35% of the frame width
        assert alpha.mean() >= 0.3, thing.name  # chunky, not a thin outline
