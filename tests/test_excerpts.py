"""Answer clips and thumbnails: right frames, right length, browser-playable, cached, safe to make at once.

Tolerance: a clip starts with the frame *on screen* at its start (which may have begun up to one frame
earlier) and ends with the last frame shown before its end, so its length is the requested one within one
source frame (1/15 s here); every other frame keeps its exact source time, so the content check is exact.
"""

from __future__ import annotations

import math
import os
import threading

import av
import numpy as np
import pytest
from answer_fixtures import ColorEncoder, read_timecode, timecode_frame
from media import write_video
from PIL import Image

from indexing.errors import UnknownVideo
from indexing.excerpts import ExcerptConfig, ExcerptError, ExcerptMaker
from indexing.fsutil import TMP_MARK
from indexing.library import Library

FPS = 15.0
FRAME = 1.0 / FPS


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    library = Library.open(root / "lib")
    enc = ColorEncoder()
    coded = write_video(root / "coded.mp4", seconds=30.0, fps=FPS, width=160, height=96, frame=timecode_frame)
    turned = write_video(
        root / "turned.mp4", seconds=3.0, fps=FPS, width=640, height=400, rotation=90, frame=timecode_frame
    )
    ids = {p.name: library.add(p, enc).id for p in (coded, turned)}
    return library, ids


def decode(path):
    """[(time s, rgb)] of every frame, and the stream's codec and pixel format."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return frames, s.codec_context.name, s.codec_context.pix_fmt


def check_clip(files, expect_start: float, expect_end: float):
    frames, codec, pix_fmt = decode(files.clip)
    assert codec == "h264" and pix_fmt == "yuv420p"
    assert files.start == pytest.approx(expect_start) and files.end == pytest.approx(expect_end)
    times = [t for t, _ in frames]
    codes = [read_timecode(rgb) for _, rgb in frames]
    assert times[0] == 0.0 and codes[0] == math.floor(expect_start * FPS + 1e-6)
    for t, code in zip(times[1:], codes[1:]):
        assert code == round((expect_start + t) * FPS), (t, code)  # each frame at its own source time
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    duration = times[-1] + FRAME
    assert abs(duration - (expect_end - expect_start)) <= FRAME + 1e-6
    return frames


def test_clip_shows_the_window_padded_and_the_thumbnail_its_middle(lib):
    library, ids = lib
    files = ExcerptMaker(library).make(ids["coded.mp4"], 10.0, 14.0)
    assert files.clip.parent == library.root / "clips" / ids["coded.mp4"]
    frames = check_clip(files, 9.0, 15.0)
    assert frames[0][1].shape == (96, 160, 3)
    with open(files.clip, "rb") as f:  # +faststart: the index (moov) precedes the media data (mdat)
        head = f.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    thumb = np.asarray(Image.open(files.thumbnail).convert("RGB"))
    assert abs(read_timecode(thumb) - 12.0 * FPS) <= 1 and files.thumbnail_time == pytest.approx(12.0)


def test_off_grid_and_clamped_ranges(lib):
    library, ids = lib
    vid = ids["coded.mp4"]
    exact = ExcerptMaker(library, config=ExcerptConfig(pad_s=0.0))
    check_clip(exact.make(vid, 3.33, 5.01), 3.33, 5.01)
    padded = ExcerptMaker(library)
    check_clip(padded.make(vid, 0.2, 1.0), 0.0, 2.0)
    last = check_clip(padded.make(vid, 29.0, 30.0), 28.0, 30.0)
    assert read_timecode(last[-1][1]) == 449
    # A window of zero length at the very end still gets a clip.
    check_clip(exact.make(vid, 30.0, 30.0), 29.0, 30.0)


def test_rotation_is_applied_and_big_videos_are_made_small(lib):
    library, ids = lib
    files = ExcerptMaker(library).make(ids["turned.mp4"], 1.0, 2.0)
    frames, _, _ = decode(files.clip)
    h, w = frames[0][1].shape[:2]
    assert (w, h) == (360, 576)  # displayed portrait; short side 400 -> 360
    codes = [read_timecode(np.rot90(rgb, -1)) for _, rgb in frames]
    assert codes[0] == 0 and codes == sorted(codes) and abs(frames[-1][0] + FRAME - 3.0) <= FRAME + 1e-6
    thumb = Image.open(files.thumbnail)
    assert thumb.size == (360, 576)


def test_the_cache_is_reused(lib):
    library, ids = lib
    maker = ExcerptMaker(library)
    first = maker.make(ids["coded.mp4"], 20.0, 22.0)
    stat = first.clip.stat()
    again = ExcerptMaker(library).make(ids["coded.mp4"], 20.0, 22.0)
    assert again == first and again.clip.stat().st_mtime_ns == stat.st_mtime_ns
    assert again.clip.stat().st_ino == stat.st_ino


def test_concurrent_requests_make_one_clip(lib, monkeypatch):
    library, ids = lib
    vid = ids["coded.mp4"]
    barrier = threading.Barrier(3)
    results, errors, cuts = [], [], []
    real_cut = ExcerptMaker._cut

    def counting_cut(self, *args):
        cuts.append(1)
        return real_cut(self, *args)

    monkeypatch.setattr(ExcerptMaker, "_cut", counting_cut)

    def ask():
        try:
            maker = ExcerptMaker(library)
            barrier.wait()
            results.append(maker.make(vid, 5.0, 7.5))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({r.clip for r in results}) == 1 and len(results) == 3
    assert len(cuts) == 1  # the others waited for the lock and found the clip made
    check_clip(results[0], 4.0, 8.5)
    folder = results[0].clip.parent
    assert not [p for p in os.listdir(folder) if TMP_MARK in p]


def test_bad_requests(lib):
    library, ids = lib
    maker = ExcerptMaker(library)
    with pytest.raises(ExcerptError):
        maker.make(ids["coded.mp4"], 5.0, 4.0)
    with pytest.raises(ExcerptError):
        maker.make(ids["coded.mp4"], float("nan"), 4.0)
    with pytest.raises(UnknownVideo):
        maker.make("nope", 0.0, 1.0)


def test_repair_drops_clips_of_videos_that_are_gone(lib):
    library, _ = lib
    orphan = library.root / "clips" / "0123456789ab"
    orphan.mkdir(parents=True)
    (orphan / "000000000-000001000-360p.mp4").write_bytes(b"x")
    report = library.check()
    assert any("orphan clips folder" in p for p in report.problems)
    library.repair()
    assert not orphan.exists()
