"""Pseudo-narrations: an object that stands out in a stretch of frames becomes a narration at its peak, with the
action whose sentence stands out most there; nothing stands out, nothing is said."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.naq import NAQ_ANNOTATION_PREFIX
from training.narrations import load_narrations
from training.pseudo_narrations import PseudoNarrationConfig, VideoFeatures, adaptation_files, narrate

NOUNS = ("mug", "keys", "door")
ACTIONS = ("picks up", "opens")
DIM = 8


class AxisEncoder:
    """Each noun an axis; a sentence '#C C <action> the <noun>' is its noun's axis plus a little of the action's."""

    def encode_text(self, texts):
        out = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            for k, noun in enumerate(NOUNS):
                if text.endswith(noun):
                    out[i, k] = 1.0
            for a, action in enumerate(ACTIONS):
                if f" {action} " in text:
                    out[i, 4 + a] = 0.3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _video(uid: str, seconds: float, events: list[tuple[float, str, str]], rate: float = 1.875) -> VideoFeatures:
    n = int(seconds * rate)
    feats = np.zeros((n, DIM), np.float32)
    feats[:, 7] = 1.0  # a dull background no noun names
    for t, noun, action in events:
        b = int(t * rate)
        for d in range(-2, 3):
            if 0 <= b + d < n:
                strength = 1.0 - 0.3 * abs(d)
                feats[b + d, NOUNS.index(noun)] += strength
                feats[b + d, 4 + ACTIONS.index(action)] += 0.5 * strength
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return VideoFeatures(uid, feats, rate, seconds)


CONFIG = PseudoNarrationConfig(actions=ACTIONS, nouns=NOUNS)


def test_objects_that_stand_out_are_narrated_at_their_peak_with_their_action():
    video = _video("v1", 60.0, [(10.0, "mug", "picks up"), (40.0, "door", "opens")])
    said = narrate([video], AxisEncoder(), CONFIG)
    assert [(n.video_uid, n.text) for n in said] == [("v1", "#C C picks up the mug"), ("v1", "#C C opens the door")]
    assert [n.time for n in said] == pytest.approx([10.0, 40.0], abs=1.0)


def test_a_video_where_nothing_stands_out_says_nothing():
    assert narrate([_video("quiet", 30.0, [])], AxisEncoder(), CONFIG) == []
    # an object on screen all the time stands out nowhere
    always = _video("always", 30.0, [(t, "mug", "picks up") for t in np.arange(0.5, 30.0, 1.0)])
    assert narrate([always], AxisEncoder(), CONFIG) == []


def test_the_rate_cap_keeps_the_clearest_moments():
    busy = _video("busy", 60.0, [(t, "keys", "picks up") for t in range(5, 60, 8)])
    capped = PseudoNarrationConfig(actions=ACTIONS, nouns=NOUNS, per_minute=2)
    quiet = [_video(f"quiet{i}", 120.0, []) for i in range(3)]  # the library's other hours: keys are rare there
    said = narrate([busy, *quiet], AxisEncoder(), capped)
    assert len(said) == 2 and {n.video_uid for n in said} == {"busy"}
    assert len(narrate([busy, *quiet], AxisEncoder(), CONFIG)) > 2


def test_adaptation_files_are_a_narration_file_and_naq_queries(tmp_path):
    videos = [_video("v1", 60.0, [(10.0, "mug", "picks up"), (40.0, "door", "opens")]), _video("v2", 30.0, [])]
    data = adaptation_files(videos, AxisEncoder(), tmp_path, CONFIG)
    assert data.narrations == 2 and data.queries == 2
    assert [n.text for n in load_narrations(data.narration_file)] == ["#C C picks up the mug", "#C C opens the door"]
    naq = json.loads(data.naq_file.read_text())
    (video,) = naq["videos"]  # the video with nothing to say has no clip to train on
    (clip,) = video["clips"]
    (annotation,) = clip["annotations"]
    assert annotation["annotation_uid"].startswith(NAQ_ANNOTATION_PREFIX)
    assert {q["query"] for q in annotation["language_queries"]} == {"picks up the mug", "opens the door"}
    with pytest.raises(ValueError, match="no object stood out"):
        adaptation_files([_video("v3", 30.0, [])], AxisEncoder(), tmp_path / "none", CONFIG)
