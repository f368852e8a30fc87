"""Narration pretraining, piece by piece: verb/noun keys, EgoNCE, moments and windows, scene-aware batches,
the frame cache, resume state, and the encoder weights file it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from media import pattern_frame, write_video
from open_clip.loss import ClipLoss

from checkpoints import WrongCheckpointKind, load_checkpoint
from checkpoints.encoder import ENCODER_KIND, read_encoder_metadata, save_encoder_weights
from indexing.decode import decode_frames
from indexing.probe import probe
from models.clip_encoder import ClipEncoder, EncoderSpec, EncoderUnavailable
from training.narrations import Narration, load_narrations
from training.pretrain.actions import action_of
from training.pretrain.data import (
    FrameCache,
    KeyVocabulary,
    Moment,
    SceneBatchSampler,
    attach_frames,
    build_moments,
    cache_videos,
    split_videos,
    video_sample_times,
)
from training.pretrain.evaluate import chance_recall, retrieval_metrics
from training.pretrain.loss import NO_KEY, EgoNCELoss, positive_mask
from training.pretrain.step import lr_at
from training.snapshot import latest_snapshot, load_snapshot, write_snapshot


# ------------------------------------------------------------------------------------------------ actions
@pytest.mark.parametrize(
    "text, verb, noun",
    [
        ("picks up the wallet from the bed", "pick", "wallet"),
        ("takes the glasses out of the basket", "take", "glasses"),
        ("looks at the phone on the bed", "look", "phone"),
        ("walks into the hallway holding the apple", "walk", "hallway"),
        ("man opens the door", "open", "door"),
        ("someone hands me a cup", "hand", "cup"),
        ("washes the kitchen knife in the sink", "wash", "knife"),
        ("carries a piece of cloth", "carry", "cloth"),
        ("stands up", "stand", ""),
    ],
)
def test_verb_and_noun_of_normalised_narrations(text, verb, noun):
    action = action_of(text)
    assert (action.verb, action.noun) == (verb, noun)


# ------------------------------------------------------------------------------------------------ loss
def test_egonce_without_extra_positives_is_clip_loss():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    keys = torch.tensor([[i, NO_KEY, NO_KEY] for i in range(6)])
    ours = EgoNCELoss()(img, txt, scale, keys)
    theirs = ClipLoss()(img, txt, scale)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_action_aware_positives_share_verb_and_noun():
    # texts 0..3; verbs: put, put, take, put; nouns: mug, mug, mug, keys
    keys = torch.tensor([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 0, 1]])
    p = positive_mask(keys[:, 0], keys[:, 1], keys[:, 2])
    assert p.tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [False, False, True, False],
        [False, False, False, True],
    ]
    assert positive_mask(keys[:, 0], keys[:, 1], keys[:, 2], action_aware=False).equal(torch.eye(4, dtype=bool))
    same_text = torch.tensor([[5, NO_KEY, NO_KEY], [5, NO_KEY, NO_KEY]])
    assert positive_mask(same_text[:, 0], same_text[:, 1], same_text[:, 2]).all()  # "walks to the bed" twice
    # Merging two positives can only lower the loss of a batch where they are similar.
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    plain = torch.tensor([[0, NO_KEY, NO_KEY], [1, NO_KEY, NO_KEY], [2, NO_KEY, NO_KEY]])
    merged = torch.tensor([[0, 0, 0], [1, 0, 0], [2, NO_KEY, NO_KEY]])
    loss = EgoNCELoss()
    assert loss(img, img, torch.tensor(10.0), merged) < loss(img, img, torch.tensor(10.0), plain)


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01


# ------------------------------------------------------------------------------------------------ moments
def test_moments_use_given_windows_tags_or_egovlp_rule_and_clamp_to_the_video():
    ns = [
        Narration("a", 0.2, "#C C opens the fridge", "narration_pass_1"),
        Narration("a", 4.2, "#C C takes the mug out of the fridge", "narration_pass_1"),
        Narration("a", 8.2, "#unsure", "narration_pass_1"),
        Narration("b", 3.0, "#C C puts the mug on the table", "egoclip", (2.5, 3.5), (7,), (40, 41)),
        Narration("zz", 1.0, "#C C sits", "narration_pass_1"),
    ]
    moments, report = build_moments(ns, {"a": 9.0, "b": 3.2})
    assert [m.text for m in moments] == [
        "opens the fridge",
        "takes the mug out of the fridge",
        "puts the mug on the table",
    ]
    # EgoVLP: beta_a = 4.0 s, alpha = 4.0 (one stream with a gap) -> 1 s windows, clamped at 0 and at the end
    assert (moments[0].start, moments[0].end) == (0.0, pytest.approx(0.7))
    assert (moments[1].start, moments[1].end) == (pytest.approx(3.7), pytest.approx(4.7))
    assert (moments[2].start, moments[2].end) == (2.5, 3.2)
    assert (moments[1].verb, moments[1].noun) == ("take", "mug")
    assert (moments[2].verb, moments[2].noun) == ("7", "40,41")  # EgoClip's tag ids win over the rules
    assert report.dropped == {"empty text after normalisation": 1, "video not in the videos folder": 1}
    assert report.windows == {"egovlp": 2, "given": 1}
    keys = KeyVocabulary(moments).keys(moments)
    assert keys.shape == (3, 3) and len(set(keys[:, 0])) == 3


def test_egoclip_tags_are_read(tmp_path):
    path = tmp_path / "egoclip.tsv"
    path.write_text(
        "video_uid\tnarration_time\tclip_start\tclip_end\tclip_text\ttag_verb\ttag_noun\n"
        "v\t1.0\t0.5\t1.5\t#C C cuts the onion\t[93]\t[192, 115]\n"
        "v\t2.0\t1.5\t2.5\t#C C waits\t[]\tnone\n"
    )
    a, b = load_narrations(path).narrations
    assert (a.verb_tags, a.noun_tags) == ((93,), (115, 192)) and (b.verb_tags, b.noun_tags) == ((), ())


def test_video_split_is_by_whole_videos_and_seeded():
    uids = [f"v{i}" for i in range(10)]
    train, val = split_videos(uids, 0.2, seed=3)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == uids
    assert split_videos(uids, 0.2, seed=3) == (train, val)
    assert split_videos(uids, 0.2, seed=3, val_videos=["v4"]) == ([u for u in uids if u != "v4"], ["v4"])
    assert split_videos(["only"], 0.5, seed=0) == (["only"], [])


def test_scene_aware_batches_hold_groups_of_one_video_and_split_across_ranks():
    by_video = {f"v{v}": list(range(v * 10, v * 10 + 10)) for v in range(6)}  # 60 moments
    sampler = SceneBatchSampler(by_video, batch_size=8, group=4, seed=1)
    batches = sampler.epoch(0)
    assert sampler.steps_per_epoch == 7 and len(batches) == 7 and all(len(b) == 8 for b in batches)
    flat = np.concatenate(batches)
    assert len(set(flat.tolist())) == len(flat)  # no moment twice in an epoch
    videos = flat // 10
    runs = np.split(videos, np.flatnonzero(np.diff(videos)) + 1)
    assert np.mean([len(r) for r in runs]) >= 3  # mostly groups of 4 (some of 2 at a video's end)
    assert [b.tolist() for b in sampler.epoch(0)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in sampler.epoch(1)] != [b.tolist() for b in batches]
    ranks = [SceneBatchSampler(by_video, 4, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    both = [b.tolist() for r in ranks for b in r.epoch(0)]
    assert ranks[0].steps_per_epoch == 7 and len({tuple(b) for b in both}) == 14
    with pytest.raises(Exception, match="too few"):
        SceneBatchSampler({"v": [0, 1, 2]}, batch_size=8, group=4, seed=0)


def test_chance_recall_is_exact():
    assert chance_recall(np.array([1]), 10, 1) == pytest.approx(0.1)
    assert chance_recall(np.array([2]), 4, 2) == pytest.approx(1 - 1 / 6)
    assert chance_recall(np.array([1, 3]), 5, 10) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ frames
def test_grid_decoder_samples_frames_at_given_times(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=4.0, fps=10.0, width=64, height=48, crf=0, seed=4)
    info = probe(path)
    times = np.array([0.05, 1.23, 1.23, 3.91])
    frames, report = decode_frames(path, info, info.grid(1.0), 48, times=times)
    assert frames.shape == (4, 48, 64, 3) and report.frames == 40
    for got, t in zip(frames, times):  # the frame on screen at t is frame floor(t * fps)
        want = pattern_frame(int(t * 10), 64, 48, 10.0, seed=4)
        assert np.abs(got.astype(int) - want).mean() < 12


def test_frame_cache_decodes_once_and_follows_the_moments(tmp_path):
    path = write_video(tmp_path / "vid.mp4", seconds=4.0, fps=10.0, width=80, height=48, seed=5)
    moments = [
        Moment("vid", 0.5, 1.5, "opens the door", "open", "door"),
        Moment("vid", 2.0, 3.0, "closes the door", "close", "door"),
    ]
    cache = FrameCache(tmp_path / "cache", 32)
    assert cache.probe_duration("vid", path) == pytest.approx(4.0, abs=0.11)
    frames, failed = cache_videos(cache, {"vid": path}, moments, k=2)
    assert not failed and frames["vid"].frames.shape == (4, 32, 32, 3)  # centre-cropped squares
    npy = tmp_path / "cache" / "vid-32px.npy"
    stamp = npy.stat().st_mtime_ns
    again, _ = cache_videos(cache, {"vid": path}, moments, k=2)
    assert npy.stat().st_mtime_ns == stamp and np.array_equal(again["vid"].frames, frames["vid"].frames)
    assert (
        FrameCache(tmp_path / "cache", 32).probe_duration("vid", path)
        == json.loads((tmp_path / "cache" / "vid-32px.json").read_text())["duration"]
    )  # answered from the cache
    ms = attach_frames(moments, again, 2)
    assert ms.frame_index.tolist() == [[0, 1], [2, 3]] and ms.frames(1).shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(video_sample_times(moments, 2), [0.75, 1.25, 2.25, 2.75])
    cache_videos(cache, {"vid": path}, moments[:1], k=2)  # other instants: decoded afresh
    assert npy.stat().st_mtime_ns != stamp
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    _, failed = cache_videos(cache, {"broken": broken}, [Moment("broken", 0, 1, "x", "", "")], k=1)
    assert set(failed) == {"broken"}


def test_retrieval_metrics_reward_the_right_moments():
    frames = {"v": None}
    moments = [Moment("v", i, i + 1, t, "", "") for i, t in enumerate(["red", "green", "blue", "red"])]
    pixels = np.zeros((4, 2, 2, 3), np.uint8)
    for i, c in enumerate([0, 1, 2, 0]):
        pixels[i, ..., c] = 255
    from training.pretrain.data import MomentSet, VideoFrames

    frames = {"v": VideoFrames("v", pixels, np.arange(4.0))}
    ms = MomentSet(moments, frames, np.arange(4).reshape(4, 1))
    colour = {"red": [1, 0, 0], "green": [0, 1, 0], "blue": [0, 0, 1]}
    perfect = retrieval_metrics(
        lambda f: f.reshape(len(f), -1, 3).mean(1).astype(np.float32),
        lambda ts: np.array([colour[t] for t in ts], np.float32),
        ms,
    )
    assert perfect["t2v_R@1"] == 100.0 and perfect["v2t_R@1"] == 100.0 and perfect["texts"] == 3
    assert perfect["chance_t2v_R@1"] == pytest.approx(100 * (2 / 4 + 1 / 4 + 1 / 4) / 3)


# ------------------------------------------------------------------------------------------------ state
def test_resume_state_round_trips_weights_and_optimiser(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(2):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
    write_snapshot(tmp_path, 2, model.state_dict(), opt.state_dict(), {"run": {"seed": 1}})
    (tmp_path / "snapshots" / ".tmp-dead").mkdir()  # a save killed half-way
    write_snapshot(tmp_path, 4, model.state_dict(), opt.state_dict(), {"run": {"seed": 1}})
    assert latest_snapshot(tmp_path).name == "step-000000004"
    clone = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    clone_opt = torch.optim.AdamW(clone.parameters(), lr=0.5)
    resumed = load_snapshot(latest_snapshot(tmp_path), clone, clone_opt)
    assert resumed.step == 4 and resumed.meta["run"] == {"seed": 1}
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (clone, clone_opt)):
        m(x).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)  # same moments, same step count, same lr
    assert not list(tmp_path.glob("**/*.pt")) and not list(tmp_path.glob("**/*.pkl"))


# ------------------------------------------------------------------------------------------------ weights file
def test_encoder_weights_load_as_an_encoder_and_are_refused_as_a_localizer(tmp_path, tiny_encoder):
    model = ClipEncoder.load(EncoderSpec("egorecall-tiny", "none"), device="cpu").model
    with torch.no_grad():
        model.visual.proj.mul_(-1.0)  # different from the random init
    out = tmp_path / "enc.safetensors"
    sidecar = save_encoder_weights(out, model, "egorecall-tiny", {"base": {"pretrained": "none"}, "metrics": {}})
    assert sidecar["kind"] == ENCODER_KIND and read_encoder_metadata(out)["model"] == "egorecall-tiny"
    loaded = ClipEncoder.load(EncoderSpec("egorecall-tiny", str(out)), device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    x = loaded._to_input(frames)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.eval().encode_image(x), dim=-1).numpy()
    np.testing.assert_allclose(loaded.encode_frames(frames).astype(np.float32), want, atol=2e-3)
    assert not np.allclose(tiny_encoder.encode_frames(frames), loaded.encode_frames(frames), atol=1e-2)
    assert loaded.key.startswith("egorecall-tiny/file-")
    with pytest.raises(EncoderUnavailable, match="trained for model 'egorecall-tiny'"):
        ClipEncoder.load(EncoderSpec("egorecall-small", str(out)), device="cpu")
    with pytest.raises(WrongCheckpointKind, match="encoder weights"):
        load_checkpoint(out)


def test_the_demo_encoder_reads_the_longest_synthetic_narration_and_question_whole():
    import open_clip

    from models.clip_encoder import register_model_configs
    from models.text_normalize import normalize_text
    from training.synthworld.catalog import DEFAULT_HOUSE as house

    register_model_configs()
    ctx = open_clip.get_model_config("egorecall-small")["text_cfg"]["context_length"]
    tokenizer = open_clip.get_tokenizer("egorecall-small")
    longest = lambda names: max(names, key=lambda n: len(tokenizer.encode(n)))  # noqa: E731
    obj = longest([t.name for t in house.things])
    objs = sorted((t.name for t in house.things), key=lambda n: -len(tokenizer.encode(n)))
    place = longest([p.name for p in house.places])
    inside = longest([p.name for p in house.places if p.preposition == "in"])
    room = longest([r.name for r in house.rooms])
    slots = max(len(p.slots) for p in house.places)
    texts = [
        f"#C C looks at {', '.join('the ' + o for o in objs[: slots - 1])} and the {objs[slots - 1]} on the {place}",
        f"#C C walks into the {room} holding the {obj}",
        f"Where were the {obj} before I took the {objs[1]} out of the {inside}?",
        f"How many things did I put in the {inside}?",
        "#C C picks up a small plastic container of cooking oil from the lower shelf of the kitchen cabinet",
    ]
    for text in texts:
        n = len(tokenizer.encode(normalize_text(text))) + 2  # start and end tokens
        assert n <= ctx, (text, n, ctx)
