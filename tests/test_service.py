"""The service facade the CLI and the UI share."""

from __future__ import annotations

import pytest
from media import bad_inputs, h264_video, media_dir  # noqa: F401

from app.service import EgoRecall
from app.settings import Settings
from indexing.errors import DamagedVideo, EncoderMismatch


def test_index_list_remove(tmp_path, h264_video, bad_inputs, tiny_spec):
    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder_spec=tiny_spec)
    seen = []
    results = service.index(
        [h264_video, bad_inputs["truncated"], h264_video],
        progress=lambda path, done, total: seen.append((path.name, done, total)),
    )
    good, bad, again = results
    assert good.ok and not good.existed and good.record.num_rows == 12
    assert isinstance(bad.error, DamagedVideo) and bad.record is None
    assert again.ok and again.existed and again.record.id == good.record.id
    assert (h264_video.name, 12, 12) in seen and (h264_video.name, 0, 12) in seen
    assert service.encoder() is service.encoder()  # loaded once
    assert [v.id for v in service.videos()] == [good.record.id]
    assert service.remove(good.record.id).id == good.record.id and service.videos() == []


def test_library_encoder_is_the_default(tmp_path, h264_video, tiny_spec):
    settings = Settings(library=tmp_path / "lib", device="cpu")
    EgoRecall(settings, encoder_spec=tiny_spec).index([h264_video])
    later = EgoRecall(settings)  # no explicit choice: the library's own encoder, not ViT-B-16/openai
    assert later.encoder_spec == tiny_spec
    assert later.index([h264_video])[0].existed
    from models.clip_encoder import EncoderSpec

    with pytest.raises(EncoderMismatch):
        EgoRecall(settings, encoder_spec=EncoderSpec("ViT-B-32", "none")).encoder()
