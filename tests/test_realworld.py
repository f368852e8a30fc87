"""Files that a video player shows are indexed, never refused: each entry of the real-world corpus
(``tests/realworld.py``) probes to its true length, decodes onto the grid of that length without damage, and
becomes a ready library video."""

from __future__ import annotations

import numpy as np
import pytest
from realworld import corpus  # noqa: F401

from indexing.decode import decode_frames
from indexing.library import Library
from indexing.probe import probe


def _cases(corpus):
    made = {n: c for n, c in corpus.items() if c.duration > 0}
    missing = sorted(set(corpus) - set(made))
    return made, missing


def test_every_file_probes_to_its_length_and_decodes_onto_its_grid(corpus):
    made, missing = _cases(corpus)
    assert len(made) >= 12, f"only {len(made)} corpus files could be made here ({missing})"
    problems = []
    for name, case in sorted(made.items()):
        info = probe(case.path)
        grid = info.grid(1.875)
        frames, report = decode_frames(case.path, info, grid, 32)
        if abs(info.duration - case.duration) > 0.15:
            problems.append(f"{name} ({case.note}): {info.duration:.2f} s, a player shows {case.duration:.2f} s")
        if len(frames) != grid.num_bins or report.damaged:
            problems.append(f"{name}: {len(frames)} frames for {grid.num_bins} bins, {report.damaged} damaged")
    assert not problems, "; ".join(problems)


def test_rotation_and_odd_sizes_keep_the_picture_upright_and_whole(corpus):
    turned = probe(corpus["rotated_270.mp4"].path)
    assert turned.rotation == 270 and (turned.display_width, turned.display_height) == (96, 160)
    odd = probe(corpus["odd size.mp4"].path)
    assert (odd.width, odd.height) == (97, 61)


def test_the_whole_corpus_becomes_ready_library_videos(corpus, tmp_path, tiny_encoder):
    made, _ = _cases(corpus)
    library = Library.open(tmp_path / "lib")
    try:
        for name, case in sorted(made.items()):
            record = library.add(case.path, tiny_encoder)
            assert record.ready and abs(record.duration - case.duration) <= 0.15, (name, record.duration)
            assert record.num_rows == record.grid.num_bins
        assert {r.name for r in library.videos()} >= {"Küche – Morgen.mp4", "two videos.mkv"}
    finally:
        library.close()


@pytest.mark.parametrize("name", ["two videos.mkv", "long audio.mkv"])
def test_a_longer_other_stream_does_not_make_the_video_look_truncated(corpus, name):
    info = probe(corpus[name].path)
    assert info.duration == pytest.approx(3.0, abs=0.15)


def test_an_hour_of_video_decodes_onto_its_grid_in_flat_memory(tmp_path):
    """A 1-hour recording (64x64, 2 fps: small to make) decodes in bounded batches: the decoder child's memory
    is that of a one-minute video."""
    from media import write_video

    sizes = {}
    for seconds in (60, 3600):
        path = write_video(tmp_path / f"{seconds}s.mp4", seconds=seconds, fps=2.0, width=64, height=64, gop=240)
        info = probe(path)
        frames, report = decode_frames(path, info, info.grid(1.875), 32)
        assert len(frames) == info.grid(1.875).num_bins == int(np.ceil(seconds * 1.875 - 1e-6))
        sizes[seconds] = report.child_peak_rss_kb
    assert sizes[3600] <= 1.25 * sizes[60] + 20_000, sizes


def test_the_app_indexes_the_corpus_with_one_result_per_file(corpus, tmp_path, tiny_spec):
    """Through the service the CLI and the UI share: every file of the corpus is indexed, none refused."""
    from app.service import EgoRecall
    from app.settings import Settings

    made = sorted(c.path for c in corpus.values() if c.duration > 0)
    service = EgoRecall(Settings(library=tmp_path / "app-lib", device="cpu"), encoder_spec=tiny_spec)
    results = service.index(made)
    assert [str(r.error) for r in results if not r.ok] == []
    assert len(service.videos()) == len(made)
