"""Skipping the pictures nothing refers to: FFmpeg's rule read from NAL headers, bit-identical pictures kept,
bins at most a few frames early, and damage accounting that still tells a whole file from a truncated one."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media import media_dir, truncated_copy, write_video  # noqa: F401

import indexing.decode as decode_module
from indexing.backends import PyAVBackend, SegmentRequest
from indexing.config import DecodeConfig
from indexing.decode import decode_frames
from indexing.errors import DamagedVideo
from indexing.nal import NalReader
from indexing.probe import probe

FPS = 30.0


def _camera_like(media_dir, name: str, seconds: float = 8.0):
    """30 fps with B-frames (x264 / x265 defaults), as head cameras and phones record."""
    return write_video(media_dir / name, seconds=seconds, fps=FPS, width=192, height=108, seed=7)


def _packets_and_skipped_decode(path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        reader = NalReader.for_stream(stream.codec_context.name, stream.codec_context.extradata)
        assert reader is not None
        packets = [p for p in container.demux(stream) if p.size]
        non_reference = sum(reader.is_non_reference(memoryview(p)) for p in packets)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        decoded = sum(1 for _ in container.decode(stream))
    return len(packets), non_reference, decoded


@pytest.mark.parametrize("name", ["b-frames.mp4", "b-frames.ts", "b-frames-hevc.mkv", "b-frames-hevc.mp4"])
def test_non_reference_pictures_are_the_ones_ffmpeg_skips(media_dir, name):
    """Length-prefixed (MP4, MKV) and start-code (MPEG-TS) packets, H.264 and HEVC: the packets read as
    non-reference are exactly the pictures FFmpeg's decoder leaves out."""
    codec = "libx265" if "hevc" in name else "libx264"
    path = write_video(media_dir / name, seconds=4.0, fps=FPS, codec=codec, seed=3)
    packets, non_reference, decoded = _packets_and_skipped_decode(path)
    assert non_reference > packets // 4  # B-frames are there to skip
    assert decoded == packets - non_reference


def test_a_stream_without_b_frames_skips_nothing(media_dir):
    path = media_dir / "no-b-frames.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"bf": "0"}
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * (i % 60), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    packets, non_reference, decoded = _packets_and_skipped_decode(path)
    assert (non_reference, decoded) == (0, packets)


def test_skipping_keeps_pictures_bit_identical_and_at_most_a_few_frames_early(media_dir):
    path = _camera_like(media_dir, "walk-30fps.mp4")
    info = probe(path)
    grid = info.grid(1.875)
    skipped, report = decode_frames(path, info, grid, 48)
    plain, plain_report = decode_frames(path, info, grid, 48, DecodeConfig(skip_non_reference=False))
    every = np.arange(round(info.duration * FPS)) / FPS  # one sample per frame: nothing may be skipped there
    frames, every_report = decode_frames(path, info, grid, 48, times=every + 1e-3)

    assert report.skipped > report.frames // 4 and plain_report.skipped == every_report.skipped == 0
    assert report.frames == plain_report.frames == len(every) and report.damaged == 0
    assert report.end_s == pytest.approx(plain_report.end_s)
    for b, t in enumerate(grid.sample_times()):
        on_screen = int(np.floor(t * FPS + 1e-6))
        np.testing.assert_array_equal(plain[b], frames[on_screen])
        earlier = [k for k in range(max(0, on_screen - 3), on_screen + 1) if np.array_equal(skipped[b], frames[k])]
        assert earlier, f"bin {b}: not a picture from the 3 frames before the one on screen"
    assert not np.array_equal(skipped, plain)  # some bins did take an earlier picture


def test_parallel_segments_skip_the_same_pictures(media_dir):
    path = write_video(media_dir / "walk-30fps-gop.mp4", seconds=8.0, fps=FPS, gop=30, seed=5)
    info = probe(path)
    grid = info.grid(1.875)
    one, r1 = decode_frames(path, info, grid, 48)
    many, r3 = decode_frames(path, info, grid, 48, DecodeConfig(workers=3, min_segment_s=1.0))
    np.testing.assert_array_equal(one, many)
    assert r3.skipped == r1.skipped > 0 and r3.frames == r1.frames == 240 and r3.damaged == 0


def test_a_truncated_recording_with_b_frames_is_still_refused(media_dir):
    whole = _camera_like(media_dir, "walk-30fps-whole.mp4")
    path = truncated_copy(whole, media_dir / "walk-30fps-truncated.mp4", 0.6)
    info = probe(path)
    with pytest.raises(DamagedVideo, match="truncated|damaged"):
        decode_frames(path, info, info.grid(1.875), 32)


def test_skipping_only_where_kept_frames_are_sparse():
    grid_times = np.arange(0, 60, 1 / 1.875)
    config = DecodeConfig()
    assert config.skips_non_reference(30.0, grid_times)
    assert config.skips_non_reference(24.0, grid_times)
    assert not config.skips_non_reference(15.0, grid_times)  # a 15 fps file: three skipped frames are 0.2 s
    assert not config.skips_non_reference(30.0, np.arange(0, 60, 1 / 8))  # every fourth frame kept
    assert not config.skips_non_reference(30.0, grid_times[:1])
    assert not DecodeConfig(skip_non_reference=False).skips_non_reference(30.0, grid_times)


def test_every_slice_of_a_packet_is_read():
    """A length-prefixed H.264 packet of two slices: both reference, both not, or one of each."""

    def packet(*headers: int) -> bytes:
        return b"".join(len(body).to_bytes(4, "big") + body for body in (bytes([h, 0x88, 0x84]) for h in headers))

    reader = NalReader("h264", 4)
    sei = 0x06  # not a slice: ignored
    assert reader.slice_kinds(packet(sei, 0x41, 0x41)) == {True}
    assert reader.slice_kinds(packet(0x01, 0x01)) == {False} and reader.is_non_reference(packet(sei, 0x01))
    assert reader.slice_kinds(packet(0x41, 0x01)) == {True, False}
    assert not reader.is_non_reference(packet(0x41, 0x01))
    assert not reader.is_non_reference(b"\x00\x00\x00\x09\x01\x88")  # a prefix past the end: read as a reference
    assert reader.slice_kinds(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x01\x88") == set()  # Annex B bytes, misread
    annex_b = NalReader("h264", None)
    assert annex_b.slice_kinds(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x01\x88\x00\x00\x01\x01\x88") == {False}
    one_layer, two_layers = bytearray(23), bytearray(23)
    one_layer[0] = two_layers[0] = 1
    one_layer[21], two_layers[21] = 0b00001_011, 0b00010_011  # numTemporalLayers 1 / 2, 4-byte prefixes
    assert NalReader.for_stream("hevc", bytes(one_layer)) == NalReader("hevc", 4)
    # a non-reference picture of a lower sub-layer may still be referred to from a higher one: decoded whole
    assert NalReader.for_stream("hevc", bytes(two_layers)) is None
    assert NalReader.for_stream("hevc", b"\x00\x00\x00\x01\x40\x01") is None  # no hvcC (MPEG-TS)
    hevc = NalReader("hevc", 4)
    assert hevc.slice_kinds(packet(0x40, 0x02)) == {True}  # a parameter set (ignored), then TRAIL_R
    assert hevc.slice_kinds(packet(0x00)) == {False}  # TRAIL_N
    assert reader.is_idr(packet(sei, 0x65)) and not reader.is_idr(packet(0x41, 0x01))
    assert hevc.is_idr(packet(0x40, 0x26)) and not hevc.is_idr(packet(0x2A))  # IDR_W_RADL yes, CRA no
    assert NalReader.for_stream("vp9", b"") is None


def test_a_packet_mixing_reference_and_other_slices_stops_skipping(media_dir, monkeypatch):
    """Such a packet (an interlaced frame of a reference and a non-reference field) would be half skipped:
    from it on, every picture is decoded, and the bins get exactly the pictures of a plain decode."""
    path = _camera_like(media_dir, "walk-30fps-mixed.mp4")
    info = probe(path)
    grid = info.grid(1.875)
    plain, _ = decode_frames(path, info, grid, 48, DecodeConfig(skip_non_reference=False))
    seen = []
    real = NalReader.slice_kinds

    def mixed_at_the_tenth(self, data):
        seen.append(1)
        return {True, False} if len(seen) == 10 else real(self, data)

    monkeypatch.setattr(NalReader, "slice_kinds", mixed_at_the_tenth)
    got = []
    times = grid.sample_times()
    request = SegmentRequest(
        path=str(path),
        times=times,
        first_bin=0,
        start_time=info.start_time,
        window=(-np.inf, np.inf),
        short_side=48,
        rotation=0,
        batch_frames=8,
        width=info.width,
        height=info.height,
        fps=info.fps,
        skip_non_reference=True,
    )
    stats = PyAVBackend().decode_segment(request, lambda b, f: got.append(f), lambda: None)
    assert len(seen) == 10  # no packet read after the mixed one
    assert 0 < stats.skipped < 10 and stats.frames == 240
    late = int(np.searchsorted(times, 10 / FPS)) + 1  # bins after the mixed packet's picture
    np.testing.assert_array_equal(np.concatenate(got)[late:], plain[late:])


# ------------------------------------------------------------------------------------------ hardware decoding
def test_hardware_decoding_that_cannot_open_its_device_decodes_in_software(media_dir, caplog, monkeypatch):
    """Asked for NVDEC on a machine without one, a video still decodes -- in software, the same pictures, said
    once: the next videos of the process do not try again. (Where a GPU opens, the pictures must match
    software's: H.264 decoding is exact, only the colour conversion of the downloaded frames may differ.)"""
    monkeypatch.setattr(decode_module, "_UNOPENED_HARDWARE", set())
    path = _camera_like(media_dir, "walk-30fps-hardware.mp4", seconds=4.0)
    info = probe(path)
    grid = info.grid(1.875)
    software, soft_report = decode_frames(path, info, grid, 48, DecodeConfig(hardware="none"))
    with caplog.at_level("WARNING", logger="indexing.decode"):
        frames, report = decode_frames(path, info, grid, 48, DecodeConfig(hardware="cuda"))
    assert report.frames == soft_report.frames and report.damaged == 0 and soft_report.hardware == ""
    if report.hardware == "cuda":
        assert np.abs(frames.astype(int) - software).max() <= 3
        return
    np.testing.assert_array_equal(frames, software)
    assert caplog.text.count("decoded in software, cuda could not be opened") == 1
    again, _ = decode_frames(path, info, grid, 48, DecodeConfig(hardware="cuda"))
    np.testing.assert_array_equal(again, software)
    assert caplog.text.count("could not be opened") == 1


def test_decoding_hardware_follows_the_encoder_unless_set():
    assert DecodeConfig().resolved_hardware(cuda=True) == "cuda"
    assert DecodeConfig().resolved_hardware(cuda=False) is None
    assert DecodeConfig(hardware="none").resolved_hardware(cuda=True) is None
    assert DecodeConfig(hardware="vaapi").resolved_hardware(cuda=False) == "vaapi"
    with pytest.raises(ValueError, match="not one of: auto, none, cuda"):
        DecodeConfig(hardware="nvidia")
