import numpy as np
import pytest

from indexing.library import Library
from tests.media import write_video
from training.features import DirectoryClipFeatures, FeaturesUnavailable, LibraryClipFeatures
from training.nlq import Clip


def test_directory_features_take_their_rate_from_the_file(tmp_path):
    np.save(tmp_path / "c1.npy", np.random.default_rng(0).standard_normal((900, 256)).astype(np.float32))
    src = DirectoryClipFeatures(tmp_path)
    got = src.get(Clip("c1", "v1", 100.0, 580.0))
    assert got.features.shape == (900, 256) and got.grid.num_bins == 900
    assert got.grid.bins_to_seconds(899, 899)[1] == pytest.approx(480.0)
    with pytest.raises(FeaturesUnavailable, match="no feature file"):
        src.get(Clip("c2", "v1", 0, 10))


def test_torch_feature_files_load_without_pickles(tmp_path):
    import torch

    torch.save(torch.ones(10, 4), tmp_path / "c1.pt")
    assert DirectoryClipFeatures(tmp_path).get(Clip("c1", "v", 0, 5.33)).features.shape == (10, 4)


def test_library_clips_are_slices_of_their_video(tmp_path, tiny_encoder):
    video = tmp_path / "vid-1.mp4"
    write_video(video, seconds=8.0)
    lib = Library.open(tmp_path / "lib", encoder_spec=tiny_encoder.spec)
    rec = lib.add(video, tiny_encoder)
    src = LibraryClipFeatures(lib)
    clip = Clip("clip-a", "vid-1", 2.0, min(6.0, rec.duration))
    got = src.get(clip)
    first = int(round(2.0 * rec.rate_hz))
    np.testing.assert_array_equal(got.features, np.asarray(lib.features(rec.id))[first : first + got.grid.num_bins])
    assert got.grid.duration == pytest.approx(clip.duration)
    assert not src.has(Clip("x", "other-video", 0, 1))


def test_per_video_feature_files_give_the_same_clips_as_per_clip_files(tmp_path):
    """Ego4D publishes features per video (<video_uid>.pt at 1.875 Hz); the NLQ prepare step cuts clips out of
    them. Both folders must give identical clips: rows, grid, and the bins an answer falls into."""
    import torch

    rng = np.random.default_rng(1)
    videos = {
        "vid-a": rng.standard_normal((600, 8)).astype(np.float32),
        "vid-b": rng.standard_normal((301, 8)).astype(np.float32),
    }
    clips = [Clip("c1", "vid-a", 12.3, 92.0), Clip("c2", "vid-a", 200.0, 319.9), Clip("c3", "vid-b", 40.0, 160.5)]
    per_video, per_clip = tmp_path / "videos", tmp_path / "clips"
    per_video.mkdir()
    per_clip.mkdir()
    for uid, feats in videos.items():
        torch.save(torch.from_numpy(feats), per_video / f"{uid}.pt")
    for c in clips:  # the prepare step, with the library's rounding
        first = int(round(c.video_start_sec * 1.875))
        n = int(np.ceil((c.video_end_sec - c.video_start_sec) * 1.875 - 1e-6))
        rows = videos[c.video_uid][first : first + n]
        rows = np.concatenate([rows, np.repeat(rows[-1:], n - len(rows), axis=0)])
        np.save(per_clip / f"{c.clip_uid}.npy", rows)
    by_video = DirectoryClipFeatures(per_video, layout="video")
    by_clip = DirectoryClipFeatures(per_clip)
    auto = DirectoryClipFeatures(per_video)  # no clip files there: auto falls back to the videos
    for c in clips:
        a, b, d = by_video.get(c), by_clip.get(c), auto.get(c)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.features, d.features)
        assert a.grid.num_bins == b.grid.num_bins and a.grid.duration == pytest.approx(b.grid.duration)
        for s, e in ((3.0, 7.5), (0.0, 1.0), (30.0, 40.0)):
            assert a.grid.seconds_to_bins(s, e) == b.grid.seconds_to_bins(s, e)
    with pytest.raises(FeaturesUnavailable, match=r"c9\.npy/\.pt or vid-z\.npy/\.pt"):
        auto.get(Clip("c9", "vid-z", 0, 10))
    with pytest.raises(FeaturesUnavailable, match="lies outside"):
        by_video.get(Clip("c4", "vid-b", 500.0, 520.0))
    with pytest.raises(FeaturesUnavailable, match="layout"):
        DirectoryClipFeatures(per_video, layout="per-video")
