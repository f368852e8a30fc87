"""Model outputs → windows in seconds: sliding windows, exact time mapping, batching, resampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from localizer_fixtures import QUERY_DIM, TINY_CONFIGS, VIDEO_DIM, one_thread

from models.grid import EGO4D_RATE_HZ, TimeGrid
from models.inference import InferenceConfig, chunk_starts, localize
from models.localizer import Localizer, LocalizerOutput, masked_logits
from models.registry import build_localizer
from models.resample import resample_clip, resample_features
from models.windows import temporal_iou


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@dataclass(frozen=True)
class OracleConfig:
    video_dim: int = 2
    query_dim: int = 1
    aux_video_dim: int = 0
    max_positions: int = 1024


class Oracle(Localizer):
    """Reads its answer off the features: channel 0 marks starts, channel 1 ends (not registered)."""

    name = "oracle"
    config_class = OracleConfig

    def __init__(self, config=OracleConfig()):
        super().__init__(config)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seen_lengths: list[int] = []

    def encode_video(self, video, video_mask, video_aux=None):
        self.seen_lengths.append(video.shape[1])
        return {"video": video, "video_mask": video_mask}

    def fuse(self, encoded, query, query_mask):
        v = encoded["video"].expand(query.shape[0], -1, -1)
        mask = encoded["video_mask"].expand(query.shape[0], -1)
        return LocalizerOutput(masked_logits(10 * v[..., 0], mask), masked_logits(10 * v[..., 1], mask), mask)


def marked_clip(num_bins: int, spans: list[tuple[int, int, float]]) -> np.ndarray:
    x = np.zeros((num_bins, 2), np.float32)
    for s, e, strength in spans:
        x[s, 0] = strength
        x[e, 1] = strength
    return x


def one_query():
    return np.zeros((1, 3, 1), np.float32), np.ones((1, 3), bool)


def test_chunks_cover_the_clip_with_overlap_and_no_padding():
    assert chunk_starts(900, 1024, 0.25) == [0]
    assert chunk_starts(2500, 1024, 0.25) == [0, 768, 1476]
    starts = chunk_starts(5000, 1000, 0.5)
    assert starts[-1] + 1000 == 5000 and all(b - a <= 500 for a, b in zip(starts, starts[1:]))


def test_a_span_found_in_the_third_chunk_maps_to_the_right_seconds():
    grid = TimeGrid(EGO4D_RATE_HZ, duration=2499.6 / EGO4D_RATE_HZ)  # 2,500 bins, the last one partial
    assert grid.num_bins == 2500
    spans = [(2200, 2205, 1.0), (100, 103, 0.8), (1500, 1502, 0.6)]  # chunk 3 only; chunk 1; chunks 2 and 3
    model = Oracle()
    answers = localize(model, marked_clip(2500, spans), grid, *one_query(), config=InferenceConfig(k=5))
    assert model.seen_lengths == [1024, 1024, 1024]
    windows = answers[0].windows
    assert 3 <= len(windows) <= 5
    for (s, e, _), w in zip(spans, windows):
        assert (w.start, w.end) == grid.bins_to_seconds(s, e)  # exactly, not approximately
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)
    assert all(0.0 <= w.start < w.end <= grid.duration for w in windows)
    for i, a in enumerate(windows):
        for b in windows[i + 1 :]:
            assert temporal_iou(a, b) <= 0.3
    assert answers[0].curve.shape == (2500,)


def test_the_partial_last_bin_ends_at_the_video_end():
    grid = TimeGrid(EGO4D_RATE_HZ, duration=1500.5 / EGO4D_RATE_HZ)
    answers = localize(
        Oracle(), marked_clip(grid.num_bins, [(grid.num_bins - 3, grid.num_bins - 1, 1.0)]), grid, *one_query()
    )
    assert answers[0].windows[0].end == grid.duration
    assert answers[0].windows[0].start == pytest.approx((grid.num_bins - 3) / EGO4D_RATE_HZ)


def test_long_answers_are_bounded_by_max_span():
    grid = TimeGrid(1.0, 300.0)
    clip = marked_clip(300, [(10, 250, 1.0), (100, 104, 0.8)])
    long_ok = localize(Oracle(), clip, grid, *one_query(), config=InferenceConfig(max_span_s=None))
    assert (long_ok[0].windows[0].start, long_ok[0].windows[0].end) == (10.0, 251.0)
    bounded = localize(Oracle(), clip, grid, *one_query(), config=InferenceConfig(max_span_s=60))
    assert all(w.length <= 60.0 for w in bounded[0].windows)
    assert (bounded[0].windows[0].start, bounded[0].windows[0].end) == (100.0, 105.0)


def tiny_vslnet():
    torch.manual_seed(0)
    return build_localizer("vslnet", {**TINY_CONFIGS["vslnet"], "max_positions": 40})


def test_short_clips_and_batched_queries_agree_with_one_at_a_time():
    model = tiny_vslnet()
    rng = np.random.default_rng(0)
    grid = TimeGrid(EGO4D_RATE_HZ, duration=2.5)  # 5 bins
    feats = rng.standard_normal((grid.num_bins, VIDEO_DIM)).astype(np.float32)
    tokens = rng.standard_normal((5, 6, QUERY_DIM)).astype(np.float32)
    mask = np.ones((5, 6), bool)
    mask[2, 4:] = False
    batched = localize(model, feats, grid, tokens, mask, config=InferenceConfig(k=3, query_batch=2))
    assert len(batched) == 5
    for i, answer in enumerate(batched):
        single = localize(model, feats, grid, tokens[i : i + 1], mask[i : i + 1], config=InferenceConfig(k=3))[0]
        assert [(w.start, w.end) for w in answer.windows] == [(w.start, w.end) for w in single.windows]
        assert np.allclose(answer.curve, single.curve, atol=1e-6)
        assert 1 <= len(answer.windows) <= 3
        assert all(0.0 <= w.start < w.end <= 2.5 for w in answer.windows)
        assert answer.curve.shape == (5,)


def test_real_models_slide_over_clips_longer_than_their_positions():
    for name in ("vslnet", "reler"):
        torch.manual_seed(0)
        model = build_localizer(name, {**TINY_CONFIGS[name], "max_positions": 40})
        rng = np.random.default_rng(1)
        grid = TimeGrid(EGO4D_RATE_HZ, duration=70.0)  # 132 bins: 4 chunks of 40
        feats = rng.standard_normal((grid.num_bins, VIDEO_DIM)).astype(np.float32)
        aux = rng.standard_normal((grid.num_bins, 6)).astype(np.float32) if name == "reler" else None
        tokens = rng.standard_normal((2, 4, QUERY_DIM)).astype(np.float32)
        answers = localize(model, feats, grid, tokens, np.ones((2, 4), bool), video_aux=aux)
        for answer in answers:
            assert 1 <= len(answer.windows) <= 5
            assert all(0.0 <= w.start < w.end <= 70.0 for w in answer.windows)
            assert answer.curve.shape == (grid.num_bins,) and np.isfinite(answer.curve).all()
        assert model.training  # localize restores the mode it found


def test_resampled_inference_maps_back_to_seconds():
    grid = TimeGrid(1.0, 2000.0)
    clip = marked_clip(2000, [(1200, 1207, 1.0)])
    answers = localize(Oracle(), clip, grid, *one_query(), config=InferenceConfig(resample_to=500))
    best = answers[0].windows[0]
    assert temporal_iou(best, (1200.0, 1208.0)) > 0.7
    assert answers[0].curve.shape == (2000,)


def test_resampling_averages_bins_and_keeps_answer_times():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    shrunk = resample_features(x, 3)
    assert np.allclose(shrunk, [[1, 2], [5, 6], [9, 10]])
    stretched = resample_features(x[:2], 4)
    assert np.allclose(stretched, [[0, 1], [0, 1], [2, 3], [2, 3]])
    odd = resample_features(np.array([[0.0], [3.0], [6.0]]), 2)  # bins 0..1.5 and 1.5..3
    assert np.allclose(odd, [[1.0], [5.0]])
    as_torch = resample_features(torch.from_numpy(x), 3)
    assert isinstance(as_torch, torch.Tensor) and torch.allclose(as_torch, torch.from_numpy(shrunk))

    grid = TimeGrid(EGO4D_RATE_HZ, 479.9)  # 900 bins
    clip = resample_clip(np.zeros((900, 4), np.float32), grid, 128)
    assert clip.features.shape == (128, 4) and clip.grid.num_bins == 128
    s, e = clip.grid.seconds_to_bins(240.0, 244.0)
    start, end = clip.bins_to_seconds(s, e)
    assert start <= 240.0 and end >= 244.0 and end - start < 4.0 + 2 * 480 / 128
    assert clip.bins_to_seconds(127, 127)[1] == pytest.approx(479.9)


def test_questions_encoded_by_the_clip_text_tower_go_straight_in(tiny_encoder):
    tokens, mask = tiny_encoder.encode_text_tokens(["where did i put the keys?", "who did i talk to?"])
    torch.manual_seed(0)
    model = build_localizer("vslnet", {**TINY_CONFIGS["vslnet"], "query_dim": tiny_encoder.dim})
    grid = TimeGrid(EGO4D_RATE_HZ, 30.0)
    feats = np.random.default_rng(0).standard_normal((grid.num_bins, VIDEO_DIM)).astype(np.float16)
    answers = localize(model, feats, grid, tokens, mask)
    assert len(answers) == 2 and all(1 <= len(a.windows) <= 5 for a in answers)
