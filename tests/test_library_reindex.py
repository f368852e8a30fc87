"""Switching a library to another encoder: `library reindex` re-encodes every video and swaps atomically."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from killing import run_and_kill_midway
from media import write_video

import indexing.staging as staging_module
from app.cli import main
from checkpoints.encoder import save_encoder_weights
from indexing.errors import EncoderMismatch, LibraryError
from indexing.library import Library
from indexing.reindexing import Reindexer
from models.clip_encoder import ClipEncoder, EncoderSpec

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    env.pop("EGORECALL_MODEL", None)
    env.pop("EGORECALL_PRETRAINED", None)
    return env


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("reindex-media")
    return [
        write_video(d / "kitchen.mp4", seconds=3.0, seed=21),
        write_video(d / "garden.mp4", seconds=4.0, seed=22),
        write_video(d / "late.mp4", seconds=2.0, seed=23),
    ]


@pytest.fixture(scope="module")
def other_encoder(tmp_path_factory) -> ClipEncoder:
    """Same architecture and size as the tiny test encoder, other weights (as a pretrained file would be)."""
    model = ClipEncoder.load(EncoderSpec("egorecall-tiny", "none"), device="cpu").model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("weights") / "tiny-pretrained.safetensors"
    save_encoder_weights(path, model, "egorecall-tiny", {"base": {"pretrained": "none"}})
    return ClipEncoder.load(EncoderSpec("egorecall-tiny", str(path)), device="cpu")


@pytest.fixture()
def library(tmp_path, videos, tiny_encoder):
    lib = Library.open(tmp_path / "lib")
    for v in videos[:2]:
        lib.add(v, tiny_encoder)
    return lib


def test_reindex_switches_every_video_and_the_settings_at_once(library, videos, tiny_encoder, other_encoder, tmp_path):
    before = {r.id: r for r in library.videos()}
    calls = []
    report = library.reindex(other_encoder, progress=lambda d, t: calls.append((d, t)))
    assert (report.videos, report.damaged, report.old_key, report.new_key) == (
        2,
        [],
        tiny_encoder.key,
        other_encoder.key,
    )
    total = sum(r.num_rows for r in before.values())
    assert calls[-1] == (total, total) and report.frames == total
    s = library.settings
    assert (s.encoder_key, s.encoder_model, s.encoder_pretrained, s.dim) == (
        other_encoder.key,
        "egorecall-tiny",
        other_encoder.spec.pretrained,
        64,
    )
    assert s.feature_store and (library.root / "encoders" / s.feature_store / "features").is_dir()
    assert library.encoder_spec == other_encoder.spec
    # The features are exactly what indexing afresh with the new encoder gives.
    fresh = Library.open(tmp_path / "fresh")
    for rec in library.videos():
        assert rec.encoder_key == other_encoder.key and rec.num_rows == before[rec.id].num_rows
        new = fresh.add(videos[0] if rec.name == "kitchen.mp4" else videos[1], other_encoder)
        np.testing.assert_array_equal(library.features(rec.id), fresh.features(new.id))
    # The old store is gone, the library is consistent, and search uses the new index.
    assert not list((library.root / "features").iterdir()) and not list((library.root / "index").iterdir())
    assert library.check().ok
    rec = library.videos()[1]
    query = library.features(rec.id)[[2]].astype(np.float32)
    (hit,) = library.search(query, k=1, encoder_key=other_encoder.key)[0]
    assert (hit.video_id, hit.bin) == (rec.id, 2)
    with pytest.raises(EncoderMismatch, match="now holds features of encoder"):
        library.search(query, k=1, encoder_key=tiny_encoder.key)
    # A new video must come with the new encoder; the old one is refused with a pointer to reindex.
    with pytest.raises(EncoderMismatch, match="library reindex"):
        library.add(videos[2], tiny_encoder)
    assert library.add(videos[2], other_encoder).encoder_key == other_encoder.key
    # Reopened from disk (another process) everything holds; the same encoder again is a no-op.
    again = Library.open(library.root)
    assert again.check().ok and len(again.search(query, k=3)[0]) == 3
    assert again.reindex(other_encoder).unchanged
    # And back again: from one store to the next, the previous store folder is deleted.
    old_store = s.feature_store
    assert again.reindex(tiny_encoder).videos == 3
    assert not (again.root / "encoders" / old_store).exists() and again.check().ok


def test_reindex_to_another_dimension(library, videos):
    small = ClipEncoder.load(EncoderSpec("egorecall-small", "none"), device="cpu")
    library.reindex(small)
    assert library.settings.dim == small.dim == 128
    for rec in library.videos():
        assert library.features(rec.id).shape == (rec.num_rows, 128)
    hits = library.search(small.encode_text(["a kitchen"]), k=2)[0]
    assert len(hits) == 2 and library.check().ok


def test_a_crash_after_the_switch_leaves_only_stale_files_that_repair_deletes(library, other_encoder, monkeypatch):
    monkeypatch.setattr(Reindexer, "_delete_store", lambda self, settings: None)  # killed right after the commit
    library.reindex(other_encoder)
    report = Library.open(library.root, repair=False).check()
    assert sum("orphan file features/" in p for p in report.problems) == 2
    assert any("orphan file index/frames.faiss" in p for p in report.problems)
    lib = Library.open(library.root)  # repairs
    assert lib.check().ok and lib.settings.encoder_key == other_encoder.key
    assert not list((lib.root / "features").iterdir())


def test_an_add_that_started_before_the_switch_is_refused_at_commit(library, videos, tiny_encoder, other_encoder):
    release = threading.Event()
    original = staging_module.extract_features

    def slow_for_the_old_encoder(path, encoder, *args, **kwargs):
        if encoder is tiny_encoder:
            assert release.wait(60)
        return original(path, encoder, *args, **kwargs)

    errors = []
    staging_module.extract_features = slow_for_the_old_encoder
    try:
        worker = threading.Thread(target=lambda: _catch(errors, library.add, videos[2], tiny_encoder))
        worker.start()
        deadline = time.monotonic() + 30
        while not library.videos(include_pending=True)[2:] and time.monotonic() < deadline:
            time.sleep(0.05)  # the add has registered its job
        report = library.reindex(other_encoder)
        release.set()
        worker.join(60)
    finally:
        staging_module.extract_features = original
        release.set()
    assert report.videos == 2
    assert len(errors) == 1 and isinstance(errors[0], EncoderMismatch) and "re-indexed" in str(errors[0])
    assert [r.name for r in library.videos(include_pending=True)] == ["kitchen.mp4", "garden.mp4"]
    assert library.check().ok


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def test_missing_media_is_refused_before_any_work(tmp_path, videos, tiny_encoder, other_encoder):
    lib = Library.open(tmp_path / "lib")
    ref = write_video(tmp_path / "moved.mp4", seconds=2.0, seed=31)
    lib.add(videos[0], tiny_encoder)
    lib.add(ref, tiny_encoder, copy_media=False)
    ref.unlink()
    with pytest.raises(LibraryError, match="missing: .*moved.mp4"):
        lib.reindex(other_encoder)
    assert lib.settings.encoder_key == tiny_encoder.key and not list((lib.root / "encoders").glob("*"))


def test_cli_reindex_and_a_killed_reindex_leaves_the_old_library_usable(tmp_path, tiny_encoder, capsys):
    long_video = write_video(tmp_path / "long.mp4", seconds=60.0, fps=30.0, seed=9)
    root = tmp_path / "lib"
    lib = Library.open(root, rate_hz=30.0)
    rec = lib.add(long_video, tiny_encoder)
    query = lib.features(rec.id)[[100]].astype(np.float32)
    before = lib.search(query, k=3)
    run_and_kill_midway(
        [
            sys.executable,
            "-m",
            "app",
            "-v",
            "library",
            "reindex",
            "--library",
            str(root),
            "--model",
            "egorecall-small",
            "--pretrained",
            "none",
        ],
        cwd=ROOT,
        env=_env(),
        progress=rf"{rec.id}\.mp4: (\d+)/(\d+) frames",
    )

    report = Library.open(root, repair=False).check()
    assert any("leftover encoder store" in p for p in report.problems), report.problems
    old = Library.open(root, repair=False)  # untouched: old encoder, old features, old index all usable
    assert old.settings.encoder_key == tiny_encoder.key and old.settings.feature_store is None
    assert old.search(query, k=3) == before and before[0][0].score > 0.99
    lib = Library.open(root)  # the dead store is cleaned up on open
    assert lib.check().ok and not list((root / "encoders").iterdir())

    assert (
        main(["library", "reindex", "--library", str(root), "--model", "egorecall-tiny", "--pretrained", "none"]) == 0
    )
    assert "already uses" in capsys.readouterr().out
    assert (
        main(
            [
                "library",
                "reindex",
                "--library",
                str(tmp_path / "nothing"),
                "--model",
                "egorecall-tiny",
                "--pretrained",
                "none",
            ]
        )
        == 1
    )
    assert "there is no EgoRecall library" in capsys.readouterr().err


def test_service_reindex_switches_the_encoder_it_answers_with(tmp_path, videos, tiny_spec, other_encoder):
    from app.service import EgoRecall
    from app.settings import Settings

    settings = Settings(library=tmp_path / "lib", device="cpu")
    service = EgoRecall(settings, encoder_spec=tiny_spec)
    service.index(videos[:1])
    seen = []
    report = service.reindex(other_encoder.spec, progress=lambda d, t: seen.append((d, t)))
    assert report.videos == 1 and seen[-1][0] == seen[-1][1] > 0
    assert service.encoder().key == other_encoder.key == service.library.settings.encoder_key
    assert service.index(videos[1:2])[0].ok
    assert EgoRecall(settings).encoder_spec == other_encoder.spec  # a later process picks it up
