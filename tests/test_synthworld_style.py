"""World styles: the tuning style is the canonical world, report styles differ from it in every knob, and a
report world really speaks, looks and times its answers in its own style (so figures on it are held out)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from training.synthworld import generate_world
from training.synthworld.catalog import DEFAULT_HOUSE
from training.synthworld.plan import SynthWorldError
from training.synthworld.style import HOME, REPORT_STYLES, STYLES, TUNING_STYLES, world_style

KNOBS = ("duration_scale", "answer_pad_s", "shake", "pan_period_s", "step_hz", "palette_shift", "layout_seed")


def test_the_tuning_style_is_the_canonical_world():
    assert TUNING_STYLES[0] == "home" and HOME.house() is DEFAULT_HOUSE
    rng = np.random.default_rng(0)
    for text in ("#C C puts the mug in the fridge", "Where did I put the keys?"):
        assert HOME.narration(text, rng) == text and HOME.question(text, rng) == text


@pytest.mark.parametrize("name", REPORT_STYLES)
def test_report_styles_share_no_value_with_the_tuning_styles(name):
    style = STYLES[name]
    assert style.family == "report"
    for tuning in TUNING_STYLES:
        for knob in KNOBS:
            assert getattr(style, knob) != getattr(STYLES[tuning], knob), (name, knob)
    assert len(style.renames) >= 8 and len(style.narration_rules) >= 3 and len(style.question_rules) >= 5
    # renames keep every object (an encoder cannot name what it never saw) and only say it differently
    canonical = {t.name for t in DEFAULT_HOUSE.things} | {p.name for p in DEFAULT_HOUSE.places}
    canonical |= {r.name for r in DEFAULT_HOUSE.rooms}
    assert set(style.renames) <= canonical and not set(style.renames.values()) & canonical
    house = style.house()
    assert [t.name for t in house.things] == [t.name for t in DEFAULT_HOUSE.things]
    assert [r.wall for r in house.rooms] != [r.wall for r in DEFAULT_HOUSE.rooms]
    assert [p.pano_x for p in house.places] != [p.pano_x for p in DEFAULT_HOUSE.places]
    # nor a word: no tuning style (a corpus may learn from all of them) says what a report style says
    for tuning in TUNING_STYLES:
        other = STYLES[tuning]
        assert not set(style.renames.values()) & set(other.renames.values()), (name, tuning)
        for mine, theirs in (
            (style.narration_rules, other.narration_rules),
            (style.question_rules, other.question_rules),
        ):
            assert not {a for _, alts in mine for a in alts} & {a for _, alts in theirs for a in alts}, (name, tuning)


def test_the_other_tuning_houses_differ_from_home():
    for name in TUNING_STYLES[1:]:
        style = STYLES[name]
        assert style.family == "tuning" and style.renames and style.narration_rules and style.question_rules
        house = style.house()
        assert [p.pano_x for p in house.places] != [p.pano_x for p in DEFAULT_HOUSE.places]
        canonical = {t.name for t in DEFAULT_HOUSE.things} | {p.name for p in DEFAULT_HOUSE.places}
        canonical |= {r.name for r in DEFAULT_HOUSE.rooms}
        assert set(style.renames) <= canonical and not set(style.renames.values()) & canonical


def test_a_corpus_world_mixes_houses_of_one_family(tmp_path):
    mix = "+".join(TUNING_STYLES)
    summary = generate_world(
        tmp_path / "corpus", n_videos=len(TUNING_STYLES), seed=4, duration=40, size=48, fps=4, style=mix
    )
    world = json.loads((tmp_path / "corpus" / "world.json").read_text())
    assert [v["style"] for v in world["videos"]] == list(TUNING_STYLES)
    assert world["style"]["family"] == "tuning" and [m["name"] for m in world["style"]["mix"]] == list(TUNING_STYLES)
    # each video speaks its own house's words, and never the canonical word its house renames
    for video in world["videos"][1:]:
        style = STYLES[video["style"]]
        said = " ".join([e["narration"] or "" for e in video["events"]] + [q["query"] for q in video["queries"]])
        assert any(re.search(rf"\b{new}\b", said) for new in style.renames.values()), video["style"]
        for word in style.renames:
            assert not re.search(rf"\b{word}\b", said), (video["style"], word)
    assert summary.n_videos == len(TUNING_STYLES)
    # the first video is byte for byte the one a world of its style alone would hold
    generate_world(tmp_path / "home", n_videos=1, seed=4, duration=40, size=48, fps=4)
    alone = json.loads((tmp_path / "home" / "world.json").read_text())["videos"][0]
    assert {k: v for k, v in world["videos"][0].items() if k not in ("style", "split")} == {
        k: v for k, v in alone.items() if k != "split"
    }
    with pytest.raises(SynthWorldError, match="one family"):
        generate_world(tmp_path / "leak", n_videos=2, duration=20, style="home+flat")


def test_an_unknown_style_is_refused(tmp_path):
    with pytest.raises(SynthWorldError, match="style"):
        generate_world(tmp_path / "w", n_videos=1, duration=20, style="castle")
    with pytest.raises(KeyError, match="flat"):
        world_style("castle")


def test_a_report_world_speaks_and_times_its_answers_in_its_style(tmp_path):
    kw = dict(n_videos=2, seed=3, duration=40, size=48, fps=4)
    generate_world(tmp_path / "home", **kw)
    generate_world(tmp_path / "flat", style="flat", **kw)
    home, flat = (json.loads((tmp_path / w / "world.json").read_text()) for w in ("home", "flat"))
    assert flat["style"]["name"] == "flat" and home["style"]["name"] == "home"

    def texts(world, what):
        if what == "narration":
            return [e["narration"] for v in world["videos"] for e in v["events"] if e["narration"]]
        return [q["query"] for v in world["videos"] for q in v["queries"]]

    style = STYLES["flat"]
    for what in ("narration", "query"):
        said = " ".join(texts(flat, what))
        for word in style.renames:  # the canonical word never appears where the style renames it
            assert not re.search(rf"\b{word}\b", said), (what, word)
    # narrations use the style's verbs, questions its phrasings; the canonical ones are gone or rare
    assert not any(" puts the " in t for t in texts(flat, "narration"))
    assert not any(q.startswith("Where did I put the") for q in texts(flat, "query"))
    casual = [q for q in texts(flat, "query") if not q.endswith("?")]
    assert casual and all(q == q.lower() for q in casual)

    # answers last longer (slower pace + annotators' padding) and stay inside their clips
    def lengths(world):
        return [q["video_end_sec"] - q["video_start_sec"] for v in world["videos"] for q in v["queries"]]

    assert np.median(lengths(flat)) > np.median(lengths(home)) + 0.5
    nlq = json.loads((tmp_path / "flat" / "nlq_train.json").read_text())
    for v in nlq["videos"]:
        for c in v["clips"]:
            for a in c["annotations"]:
                for q in a["language_queries"]:
                    assert (
                        0.0
                        <= q["clip_start_sec"]
                        < q["clip_end_sec"]
                        <= c["video_end_sec"] - c["video_start_sec"] + 1e-6
                    )


def test_a_corpus_can_hold_one_house_apart_for_validation(tmp_path):
    mix = "+".join(TUNING_STYLES)
    n = 2 * len(TUNING_STYLES)
    generate_world(tmp_path / "w", n_videos=n, seed=5, duration=20, size=48, fps=4, style=mix, val_style="cabin")
    world = json.loads((tmp_path / "w" / "world.json").read_text())
    assert {v["style"] for v in world["videos"] if v["split"] == "val"} == {"cabin"}
    assert {v["style"] for v in world["videos"] if v["split"] == "train"} == set(TUNING_STYLES) - {"cabin"}
    for bad in (dict(style="home", val_style="home"), dict(style=mix, val_style="flat")):
        with pytest.raises(SynthWorldError, match="val_style"):
            generate_world(tmp_path / "bad", n_videos=n, duration=20, **bad)
