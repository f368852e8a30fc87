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
