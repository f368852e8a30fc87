"""GOP tails: in recordings without B-frames, the pictures after a GOP's last sampled one are not decoded, and
every bin stays bit-identical; the damage accounting still tells a whole file from a truncated one."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import media_dir, pattern_frame, truncated_copy  # noqa: F401

from indexing.backends import PyAVBackend, SegmentRequest
from indexing.config import DecodeConfig
from indexing.decode import decode_frames
from indexing.errors import DamagedVideo
from indexing.gop_tails import LOOKAHEAD_PACKETS, GopTails
from indexing.nal import NalReader
from indexing.probe import probe

X264_PHONE = {"bf": "0", "x264-params": "scenecut=0"}


def _phone_like(path, seconds: float = 8.0, fps: int = 30, gop: int = 15, codec: str = "libx264", options=None):
    """I- and P-pictures only, an IDR picture every ``gop`` frames, as phones record."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"g": str(gop), "preset": "veryfast", **(X264_PHONE if options is None else options)}
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 160, 96, fps, seed=4), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_bins_are_bit_identical_with_gop_tails_left_undecoded(media_dir):
    path = _phone_like(media_dir / "phone.mp4")
    info = probe(path)
    grid = info.grid(1.875)
    whole, whole_report = decode_frames(path, info, grid, 48, DecodeConfig(skip_gop_tails=False))
    tails, report = decode_frames(path, info, grid, 48)
    np.testing.assert_array_equal(tails, whole)
    assert whole_report.skipped == 0 and report.skipped > report.frames // 5
    assert report.frames == whole_report.frames == 240 and report.damaged == 0
    assert report.end_s == pytest.approx(whole_report.end_s)
    many, many_report = decode_frames(path, info, grid, 48, DecodeConfig(workers=3, min_segment_s=1.0))
    np.testing.assert_array_equal(many, whole)
    assert many_report.frames == 240 and many_report.damaged == 0


@pytest.mark.parametrize("gop_kind, skips", [("open-gop=0", True), ("open-gop=1", False)])
def test_hevc_without_b_frames(media_dir, gop_kind, skips):
    """x265 without B-frames: closed GOPs start at IDR pictures and their tails are left out; open GOPs start at
    CRA pictures, whose leading pictures may refer to the GOP before, so nothing is left out. Bins identical."""
    options = {"x265-params": f"log-level=error:bframes=0:keyint=15:{gop_kind}"}
    path = _phone_like(media_dir / f"phone-hevc-{gop_kind}.mp4", codec="libx265", options=options)
    info = probe(path)
    grid = info.grid(1.875)
    whole, _ = decode_frames(path, info, grid, 48, DecodeConfig(skip_gop_tails=False))
    for workers in (1, 3):
        tails, report = decode_frames(path, info, grid, 48, DecodeConfig(workers=workers, min_segment_s=1.0))
        np.testing.assert_array_equal(tails, whole)
        assert (report.skipped > 0) == skips and report.frames == 240 and report.damaged == 0


def test_a_segment_stops_reading_at_its_end(media_dir):
    """A segment's last GOPs are tails nothing of it needs: it stops there instead of reading to the file's end."""
    path = _phone_like(media_dir / "phone-segment.mp4")
    info = probe(path)
    times = info.grid(1.875).sample_times()
    half = len(times) // 2
    request = SegmentRequest(
        path=str(path),
        times=times[:half],
        first_bin=0,
        start_time=info.start_time,
        window=(-np.inf, float(times[half])),
        short_side=32,
        rotation=0,
        batch_frames=8,
        width=info.width,
        height=info.height,
        fps=info.fps,
        skip_non_reference=True,
        skip_gop_tails=True,
    )
    got = []
    stats = PyAVBackend().decode_segment(request, lambda b, f: got.append(f), lambda: None)
    whole, _ = decode_frames(path, info, info.grid(1.875), 32)
    np.testing.assert_array_equal(np.concatenate(got), whole[:half])
    assert stats.end_s is not None and stats.end_s < float(times[half]) + 1.0 < info.duration - 2.0


def test_a_truncated_phone_recording_is_still_refused(media_dir):
    whole = _phone_like(media_dir / "phone-whole.mp4")
    path = truncated_copy(whole, media_dir / "phone-truncated.mp4", 0.6)
    info = probe(path)
    with pytest.raises(DamagedVideo, match="truncated|damaged"):
        decode_frames(path, info, info.grid(1.875), 32)


class _Packet(bytes):
    """Bytes of one length-prefixed H.264 NAL unit, with a presentation time."""

    pts: float | None
    size: int

    @classmethod
    def of(cls, pts: float | None, idr: bool) -> _Packet:
        header = 0x65 if idr else 0x41  # IDR slice / non-IDR reference slice
        packet = cls(b"\x00\x00\x00\x02" + bytes([header, 0x88]))
        packet.pts, packet.size = pts, len(packet)
        return packet


def _decided(pts_and_idr, sample_times) -> list[bool]:
    tails = GopTails(NalReader("h264", 4), np.asarray(sample_times), lambda p: p.pts)
    return [decode for _, decode in tails.packets([_Packet.of(t, idr) for t, idr in pts_and_idr])]


def test_what_a_gop_keeps_up_to_its_last_sampled_picture():
    # GOPs start at 0, 1 and 2 s; pictures every 0.25 s; samples at 0.3 s (first GOP) and 2.1 s (last)
    stream = [(t / 4, t % 4 == 0) for t in range(12)]
    decide = _decided(stream, [0.3, 2.1])
    assert decide[:4] == [True, True, False, False]  # up to the picture on screen at 0.3 s
    assert decide[4:8] == [False] * 4  # no sample in [1, 2): the whole GOP
    assert decide[8:] == [True] * 4  # the last GOP is decoded whole
    # packets before the first IDR picture, and untimed ones, are always decoded
    lead_in = [(0.0, False), (0.25, False)]
    assert _decided(lead_in + stream[4:], [1.1]) == [True, True] + [True] + [False] * 3 + [True] * 4
    # a picture out of presentation order means B-frames after all: everything from there on is decoded
    reordered = stream[:2] + [(0.1, False)] + stream[3:]
    assert all(_decided(reordered, [0.3, 2.1]))


def test_a_gop_longer_than_the_look_ahead_is_decoded():
    stream = [(t / 30, t == 0) for t in range(LOOKAHEAD_PACKETS + 10)] + [(100.0, True), (100.1, False)]
    assert all(_decided(stream, [0.1]))


def test_a_gop_of_more_bytes_than_the_look_ahead_holds_is_decoded(monkeypatch):
    import indexing.gop_tails as gop_tails

    monkeypatch.setattr(gop_tails, "LOOKAHEAD_BYTES", 4 * len(_Packet.of(0.0, True)))
    stream = [(t / 4, t % 8 == 0) for t in range(16)]
    assert all(_decided(stream, [0.3]))
    monkeypatch.undo()
    assert not all(_decided(stream, [0.3]))  # the same GOPs, read ahead, leave their tails out
