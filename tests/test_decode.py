"""Probing and grid decoding of real files: codecs, variable frame rate, rotation, damage, watchdog."""

from __future__ import annotations

import multiprocessing
import re

import numpy as np
import pytest
from media import (  # noqa: F401
    bad_inputs,
    codec_videos,
    gray_for,
    h264_video,
    media_dir,
    truncated_copy,
    write_avi_with_dropped_frames,
    write_vfr_video,
    write_video,
)

from indexing.backends import PyAVBackend, SegmentRequest
from indexing.config import DecodeConfig
from indexing.decode import GridDecoder, decode_frames, probe_isolated
from indexing.errors import DamagedVideo, DecoderCrashed, DecoderFailed, DecoderHung, InvalidVideo
from indexing.probe import probe
from models.grid import TimeGrid


def _no_decoder_children_left() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name.startswith("egorecall")]


# ------------------------------------------------------------------------------------------ probe
@pytest.mark.parametrize("name", ["h264", "hevc", "vp9", "mpeg4", "av1"])
def test_probe_and_grid_decode_every_codec(codec_videos, name):
    path = codec_videos[name]
    info = probe(path)
    assert info.duration == pytest.approx(3.0, abs=0.07)
    assert info.fps == pytest.approx(15.0, rel=0.02)
    assert (info.width, info.height, info.rotation) == (160, 96, 0)
    assert info.has_audio is False
    grid = info.grid(1.875)
    frames, report = decode_frames(path, info, grid, short_side=48)
    assert grid.num_bins == 6
    assert frames.shape == (6, 48, 80, 3) and frames.dtype == np.uint8
    assert report.backend == "pyav" and report.damaged == 0
    assert report.frames == 45
    # Every bin shows a different layout (the pattern changes every half second, the grid every 0.53 s).
    means = frames.reshape(6, -1).mean(1)
    assert len(np.unique(np.round(means))) >= 5


def test_codecs_decode_to_the_same_pictures(codec_videos):
    ref = None
    for name, path in codec_videos.items():
        info = probe(path)
        frames, _ = decode_frames(path, info, info.grid(1.875), short_side=48)
        if ref is None:
            ref = frames.astype(np.float32)
        else:  # lossy codecs differ a little, never by a different frame
            assert np.abs(frames - ref).mean() < 12, name


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "the file is empty"),
        ("random", "not a video file"),
        ("audio", "no video stream (it holds only audio)"),
        ("png", "still image (PNG)"),
        ("one_frame", "too short to index"),
    ],
)
def test_probe_refuses_what_cannot_be_indexed(bad_inputs, kind, message):
    path = bad_inputs[kind]
    with pytest.raises(InvalidVideo, match=re.escape(message)) as err:
        probe_isolated(path)
    assert str(err.value).startswith(f"{path.name}: ")
    assert "\n" not in str(err.value)


def test_probe_refuses_video_shorter_than_one_bin(media_dir):
    path = write_video(media_dir / "blink.mp4", seconds=0.4, fps=15)
    with pytest.raises(InvalidVideo, match=r"too short to index: 0\.40 s, shorter than one 1\.875 Hz grid bin"):
        probe(path)
    assert probe(path, rate_hz=4.0).duration == pytest.approx(0.4, abs=0.01)


def test_probe_refuses_missing_file(tmp_path):
    with pytest.raises(InvalidVideo, match="does not exist"):
        probe(tmp_path / "nope.mp4")


# ------------------------------------------------------------------------------------------ timing
def test_variable_frame_rate_maps_each_bin_to_the_frame_on_screen(media_dir):
    path = media_dir / "vfr.mp4"
    times = np.array(write_vfr_video(path))
    info = probe(path)
    grid = TimeGrid(4.0, info.duration)
    for backend in ("pyav", "decord"):
        frames, report = decode_frames(path, info, grid, short_side=32, config=DecodeConfig(backends=(backend,)))
        got = frames.reshape(len(frames), -1).mean(1)
        for b, t in enumerate(grid.sample_times()):
            on_screen = int(np.searchsorted(times, t + 1e-6, side="right") - 1)  # last frame with pts <= t
            assert abs(got[b] - gray_for(on_screen)) < 1.6, (backend, b, t, on_screen, got[b])
        assert report.backend == backend
    # A decoder that assumed a constant rate (index = t * average fps) would be off by whole frames here.
    mid = grid.sample_times()[8]
    assert int(mid * info.fps) != int(np.searchsorted(times, mid, side="right") - 1)


def test_rotation_is_applied_for_display(media_dir):
    def marked(i, w, h):
        img = np.zeros((h, w, 3), np.uint8)
        img[: h // 3, : w // 4] = (255, 0, 0)  # red block at the stored top-left
        return img

    path = write_video(media_dir / "portrait.mp4", seconds=1.2, width=160, height=96, rotation=90, frame=marked)
    info = probe(path)
    assert info.rotation == 90 and (info.display_width, info.display_height) == (96, 160)
    frames, _ = decode_frames(path, info, info.grid(1.875), short_side=48)
    assert frames.shape[1:] == (80, 48, 3)  # portrait
    red = frames[0, :, :, 0] > 128
    # Turned 90 degrees counter-clockwise (the display matrix's convention): top-left goes to bottom-left.
    assert red[-10:, :10].all() and not red[:10, :].any() and not red[:, -10:].any()


def test_parallel_segments_decode_exactly_what_one_decoder_does(media_dir):
    path = write_video(media_dir / "keyframes.mp4", seconds=8.0, gop=10, seed=3)
    info = probe(path)
    grid = info.grid(1.875)
    one, r1 = decode_frames(path, info, grid, 48)
    many, r3 = decode_frames(path, info, grid, 48, DecodeConfig(workers=3, min_segment_s=1.0))
    assert r3.workers == 3 and r1.workers == 1
    np.testing.assert_array_equal(one, many)
    assert r3.frames == r1.frames == 120 and r3.damaged == 0 and r3.late_start == 0


def test_batches_are_bounded(h264_video):
    info = probe(h264_video)
    decoder = GridDecoder(h264_video, info, info.grid(7.5), 32, DecodeConfig(), batch_frames=4)
    sizes = [len(b.frames) for b in decoder]
    assert max(sizes) == 4 and sum(sizes) == info.grid(7.5).num_bins


def test_late_seek_retries_further_back(h264_video):
    """A segment starting mid-video must see the frame shown at its first sample time."""
    info = probe(h264_video)
    grid = info.grid(1.875)
    times = grid.sample_times()
    got = []
    request = SegmentRequest(
        path=str(h264_video),
        times=times[5:],
        first_bin=5,
        start_time=info.start_time,
        window=(times[5], np.inf),
        short_side=32,
        rotation=0,
        batch_frames=8,
        width=info.width,
        height=info.height,
        fps=info.fps,
    )
    stats = PyAVBackend().decode_segment(request, lambda b, f: got.append((b, f)), lambda: None)
    full, _ = decode_frames(h264_video, info, grid, 32)
    np.testing.assert_array_equal(np.concatenate([f for _, f in got]), full[5:])
    assert stats.late_start == 0


# ------------------------------------------------------------------------------------------ damage
@pytest.mark.parametrize("kind, message", [("truncated", "truncated"), ("flipped", "damaged|truncated")])
def test_damaged_files_are_refused(bad_inputs, kind, message):
    path = bad_inputs[kind]
    info = probe(path)  # the header is intact: only decoding shows the damage
    with pytest.raises(DamagedVideo, match=message):
        decode_frames(path, info, info.grid(1.875), 32)


def test_avi_without_stored_repeated_frames_is_indexed_not_refused(media_dir):
    """The header counts every frame slot, but repeated frames were never stored: a whole file, not damage."""
    path = write_avi_with_dropped_frames(media_dir / "dropped frames.avi", seconds=10.0, fps=15, every=5)
    info = probe(path)
    assert info.frame_count > 100 and info.duration == pytest.approx(10.0, abs=0.4)
    grid = info.grid(1.875)
    frames, report = decode_frames(path, info, grid, 32)
    assert report.frames == 30 and report.damaged == 0
    assert len(frames) == grid.num_bins == int(np.ceil(info.duration * 1.875 - 1e-6))
    # each bin holds the picture on screen at its centre: the last stored picture at or before it
    shown = (np.floor(grid.sample_times() * 15 / 5)).astype(int)
    top = frames[:, : frames.shape[1] // 3]
    np.testing.assert_allclose(top.reshape(len(top), -1).mean(1), [gray_for(k) for k in shown], atol=4)


def test_truncated_avi_with_dropped_frames_is_still_refused(media_dir):
    whole = write_avi_with_dropped_frames(media_dir / "dropped-whole.avi", seconds=10.0)
    path = truncated_copy(whole, media_dir / "dropped-truncated.avi", 0.5)
    info = probe(path)
    with pytest.raises(DamagedVideo, match=r"truncated: decoding stop"):
        decode_frames(path, info, info.grid(1.875), 32)


def test_healthy_file_within_policy(h264_video):
    info = probe(h264_video)
    _, report = decode_frames(h264_video, info, info.grid(1.875), 32)
    assert report.damaged == 0 and report.end_s == pytest.approx(6.0, abs=0.1)


# ------------------------------------------------------------------------------------------ watchdog
def _decode_with(path, *backends, stall=30.0):
    info = probe(path)
    config = DecodeConfig(backends=backends, stall_timeout_s=stall)
    return decode_frames(path, info, info.grid(1.875), 32, config)


def test_hung_decoder_is_killed_with_a_clear_error(h264_video):
    with pytest.raises(DecoderHung, match="made no progress for 1 s and was stopped"):
        _decode_with(h264_video, "decode_faults:HangBackend", stall=1.0)
    assert _no_decoder_children_left()


def test_crashed_decoder_is_reported(h264_video):
    with pytest.raises(DecoderCrashed, match=r"crashed \(SIGABRT\)"):
        _decode_with(h264_video, "decode_faults:CrashBackend")
    with pytest.raises(DecoderCrashed, match=r"exited unexpectedly \(status 3\)"):
        _decode_with(h264_video, "decode_faults:ExitBackend")
    assert _no_decoder_children_left()


def test_failed_decoder_falls_back_to_the_next_backend(h264_video):
    frames, report = _decode_with(h264_video, "decode_faults:RaiseBackend", "decord")
    assert report.backend == "decord" and frames.shape[0] == 12
    assert "simulated decoder bug" in report.failed_backends[0]
    frames2, report2 = _decode_with(h264_video, "decode_faults:CrashBackend", "pyav")
    assert report2.backend == "pyav" and frames2.shape[0] == 12


def test_all_backends_failing_names_each(h264_video):
    with pytest.raises(DecoderFailed, match="no decoder could read it: .*simulated decoder bug.*SIGABRT"):
        _decode_with(h264_video, "decode_faults:RaiseBackend", "decode_faults:CrashBackend")
