"""Still frames reuse the feature of the last encoded frame (DecodeConfig.still_frame_diff)."""

from __future__ import annotations

import numpy as np
import pytest
from media import write_video
from tiny import TINY_ARGS

from indexing.config import DecodeConfig
from indexing.extract import StillFrames, extract_features
from indexing.probe import probe


class CountingEncoder:
    """Feature = the frame's mean colour (so a reused feature is recognisable); counts the frames encoded."""

    dim = 3

    def __init__(self) -> None:
        self.encoded = 0

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        self.encoded += len(frames)
        return np.asarray(frames, np.float32).mean(axis=(1, 2)).astype(np.float16)


def gray(level: int, n: int = 1) -> np.ndarray:
    return np.full((n, 32, 32, 3), level, np.uint8)


def test_only_changed_frames_are_encoded_and_the_reference_crosses_batches():
    still, enc = StillFrames(threshold=2.0), CountingEncoder()
    first = still.encode(enc, np.concatenate([gray(100, 3), gray(101), gray(180, 2)]))
    assert enc.encoded == 2 and still.reused == 4  # 100 (and 101, 1 level off), then 180
    assert first[:, 0].tolist() == [100, 100, 100, 100, 180, 180]
    second = still.encode(enc, np.concatenate([gray(181, 2), gray(40)]))  # still at first, then a change
    assert enc.encoded == 3 and still.reused == 6
    assert second[:, 0].tolist() == [180, 180, 40]
    nothing_new = still.encode(enc, gray(40, 2))
    assert enc.encoded == 3 and nothing_new[:, 0].tolist() == [40, 40]


def test_a_video_with_still_stretches_is_indexed_with_fewer_encodings_and_the_same_features(tmp_path, tiny_encoder):
    def frame(i: int, width: int, height: int) -> np.ndarray:
        t = i / 10.0
        img = np.full((height, width, 3), 60 if t < 4 else 200, np.uint8)  # two still shots
        if 2 <= t < 3:
            img[:, : width // 2] = (220, 40, 40)  # something happens for a second
        return img

    video = write_video(tmp_path / "still.mp4", seconds=8.0, fps=10.0, width=96, height=64, frame=frame)
    info = probe(video)
    grid = info.grid()
    every = extract_features(video, tiny_encoder, info, grid)
    fewer = extract_features(video, tiny_encoder, info, grid, config=DecodeConfig(still_frame_diff=3.0))
    assert every.reused_frames == 0 and fewer.reused_frames >= grid.num_bins // 2
    a = every.features.astype(np.float32)
    b = fewer.features.astype(np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99  # a reused feature is that of a frame that looks the same


def test_index_takes_reuse_still_and_refuses_a_bad_value(tmp_path, capsys):
    from app.cli import main
    from indexing.library import Library

    video = write_video(
        tmp_path / "v.mp4",
        seconds=3.0,
        fps=10.0,
        width=96,
        height=64,
        frame=lambda i, w, h: np.full((h, w, 3), 90, np.uint8),
    )
    tiny = TINY_ARGS
    assert main(["index", str(video), "--library", str(tmp_path / "lib"), "--reuse-still", "4", *tiny]) == 0
    (record,) = Library.open(tmp_path / "lib").videos()
    feats = Library.open(tmp_path / "lib").features(record.id).astype(np.float32)
    assert np.allclose(feats, feats[0], atol=1e-3)  # one still shot: one feature, reused
    with pytest.raises(SystemExit):
        main(["index", str(video), "--library", str(tmp_path / "lib"), "--reuse-still", "-1", *tiny])
    assert "grey levels lie in 0-255" in capsys.readouterr().err
