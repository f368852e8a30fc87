"""The library: adding, de-duplicating, searching, removing, crash safety and consistency checks."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from media import codec_videos, h264_video, media_dir, pattern_frame, write_video  # noqa: F401

from indexing.config import DecodeConfig, LibraryConfig
from indexing.errors import DecoderHung, EncoderMismatch, GridMismatch, InvalidVideo, LibraryBusy, UnknownVideo
from indexing.fsutil import FileLock
from indexing.library import Library
from models.clip_encoder import ClipEncoder, EncoderSpec


@pytest.fixture(scope="module")
def videos(media_dir):
    """Two videos of different content (3 s and 5 s)."""
    return (
        write_video(media_dir / "kitchen.mp4", seconds=3.0, seed=11),
        write_video(media_dir / "garden.webm", seconds=5.0, seed=12),
    )


@pytest.fixture()
def library(tmp_path, videos, tiny_encoder):
    lib = Library.open(tmp_path / "lib")
    for v in videos:
        lib.add(v, tiny_encoder)
    return lib


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_add_stores_features_media_and_metadata(tmp_path, videos, tiny_encoder):
    lib = Library.open(tmp_path / "lib")
    calls = []
    rec = lib.add(videos[0], tiny_encoder, progress=lambda done, total: calls.append((done, total)))
    assert rec.status == "ready" and rec.name == "kitchen.mp4" and len(rec.id) == 12
    assert rec.id == rec.sha256[:12]
    assert (rec.duration, rec.num_rows, rec.dim, rec.rate_hz) == (pytest.approx(3.0, abs=0.07), 6, 64, 1.875)
    assert (rec.codec, rec.backend, rec.encoder_key) == ("h264", "pyav", tiny_encoder.key)
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    feats = lib.features(rec.id)
    assert feats.shape == (6, 64) and feats.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(feats.astype(np.float32), axis=1), 1.0, atol=3e-3)
    assert lib.grid(rec.id).num_bins == 6
    media = lib.media_path(rec.id)
    assert media.read_bytes() == videos[0].read_bytes() and media.parent == lib.root / "media"
    assert lib.settings.encoder_key == tiny_encoder.key and lib.settings.dim == 64
    assert lib.encoder_spec == tiny_encoder.spec
    # Nothing of the job is left behind.
    assert not list((lib.root / "jobs").iterdir())
    assert lib.check().ok


def test_same_bytes_twice_return_the_same_record(library, videos, tiny_encoder, tmp_path):
    first = library.videos()[0]
    mtime = (library.root / "features" / f"{first.id}.npy").stat().st_mtime_ns
    copy = tmp_path / "renamed copy.mp4"
    shutil.copyfile(videos[0], copy)
    again = library.add(copy, tiny_encoder)
    assert again.id == first.id and again.name == "kitchen.mp4"
    assert len(library.videos()) == 2 and library.num_frames() == 6 + 10
    assert (library.root / "features" / f"{first.id}.npy").stat().st_mtime_ns == mtime
    assert library.find_file(copy).id == first.id


def test_search_finds_the_video_and_time_of_a_known_frame(library, tiny_encoder):
    kitchen, garden = library.videos()
    for rec in (kitchen, garden):
        feats = library.features(rec.id).astype(np.float32)
        hits = library.search(feats[[1, 4]], k=3)
        for b, top in zip((1, 4), hits):
            assert (top[0].video_id, top[0].bin) == (rec.id, b)
            assert top[0].score == pytest.approx(1.0, abs=2e-3)
            assert top[0].start == pytest.approx(b / 1.875) and top[0].time == pytest.approx((b + 0.5) / 1.875)
            assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
    # A picture rendered again (not the stored one) finds the second of the video it was shown in.
    t = 4.1
    query = tiny_encoder.encode_frames(pattern_frame(int(t * 15), 160, 96, 15.0, seed=12)[None]).astype(np.float32)
    top = library.search(query, k=1)[0][0]
    assert top.video_id == garden.id and top.start <= t + 0.55 and top.end >= t - 0.55
    only = library.search(query, k=5, video_ids=[kitchen.id])[0]
    assert len(only) == 5 and {h.video_id for h in only} == {kitchen.id}
    with pytest.raises(UnknownVideo):
        library.search(query, k=1, video_ids=["nope"])


def test_remove_deletes_features_media_and_index_entries(library):
    kitchen, garden = library.videos()
    removed = library.remove(kitchen.id)
    assert removed.id == kitchen.id
    assert [v.id for v in library.videos()] == [garden.id]
    assert not (library.root / "features" / f"{kitchen.id}.npy").exists()
    assert not list((library.root / "media").glob(f"{kitchen.id}.*"))
    hits = library.search(np.eye(64, dtype=np.float32)[:3], k=50)
    assert all(h.video_id == garden.id for q in hits for h in q)
    # Another process sees the same state.
    assert Library.open(library.root).num_frames() == 10
    with pytest.raises(UnknownVideo):
        library.remove(kitchen.id)
    assert library.check().ok


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "stale-sidecar"])
def test_damaged_index_is_rebuilt_on_open(library, damage):
    index = library.root / "index" / "frames.faiss"
    q = library.features(library.videos()[1].id)[[2]].astype(np.float32)
    expected = library.search(q, k=4)
    if damage == "delete":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(os.urandom(index.stat().st_size))
    elif damage == "truncate":
        index.write_bytes(index.read_bytes()[:1000])
    else:
        meta = json.loads((library.root / "index" / "frames.json").read_text())
        meta["ntotal"] -= 1
        (library.root / "index" / "frames.json").write_text(json.dumps(meta))
    reopened = Library.open(library.root)
    assert reopened.search(q, k=4) == expected
    assert reopened.check().ok


def test_garbage_index_is_rebuilt_even_by_a_reader_that_cannot_repair(library):
    index = library.root / "index" / "frames.faiss"
    index.write_bytes(os.urandom(index.stat().st_size))  # same size: only reading it shows the damage
    reader = Library.open(library.root, repair=False)
    q = library.features(library.videos()[0].id)[[0]].astype(np.float32)
    assert reader.search(q, k=1)[0][0].video_id == library.videos()[0].id


def test_missing_feature_file_marks_video_damaged_and_re_adding_heals(library, videos, tiny_encoder):
    kitchen, garden = library.videos()
    (library.root / "features" / f"{kitchen.id}.npy").unlink()
    report = Library.open(library.root, repair=False).check()
    assert not report.ok and any("missing" in p for p in report.problems)
    reopened = Library.open(library.root)
    assert [v.id for v in reopened.videos()] == [garden.id]
    assert reopened.get(kitchen.id).status == "damaged"
    again = reopened.add(videos[0], tiny_encoder)
    assert again.id == kitchen.id and again.status == "ready" and len(reopened.videos()) == 2
    assert reopened.check().ok


def test_orphans_and_leftovers_are_cleaned(library):
    (library.root / "features" / "deadbeef0000.npy").write_bytes(b"x")
    (library.root / "index" / "frames.faiss.tmp-1234").write_bytes(b"x")
    (library.root / "jobs" / "deadbeef0000-1234").mkdir()
    report = library.repair()
    assert len(report.problems) == 3 and len(report.fixed) == 3
    assert library.check().ok
    assert not (library.root / "features" / "deadbeef0000.npy").exists()


def test_failed_or_interrupted_add_leaves_the_library_as_it_was(library, tmp_path, tiny_encoder):
    before = _tree(library.root)
    feats_before = {v.id: library.features(v.id).copy() for v in library.videos()}
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(7).bytes(50_000))  # (random bytes may even probe as a stream-less file)
    with pytest.raises(InvalidVideo, match="not a video file|no video stream"):
        library.add(bad, tiny_encoder)

    new = write_video(tmp_path / "long.mp4", seconds=8.0, seed=21)

    def interrupt(done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        library.add(new, tiny_encoder, progress=interrupt)
    assert _tree(library.root) == before
    assert {v.id for v in library.videos(include_pending=True)} == set(feats_before)
    for vid, feats in feats_before.items():
        np.testing.assert_array_equal(library.features(vid), feats)
    assert library.add(new, tiny_encoder).status == "ready"


def test_hung_decoder_fails_one_add_and_the_library_lives_on(library, tmp_path, tiny_encoder):
    config = LibraryConfig(decode=DecodeConfig(backends=("decode_faults:HangBackend",), stall_timeout_s=1.0))
    lib = Library.open(library.root, config=config)
    new = write_video(tmp_path / "stuck.mp4", seconds=2.0, seed=31)
    with pytest.raises(DecoderHung):
        lib.add(new, tiny_encoder)
    assert len(lib.videos(include_pending=True)) == 2 and lib.check().ok


def test_encoder_and_rate_mismatch_are_refused(library, videos, tiny_encoder, tmp_path):
    with pytest.raises(EncoderMismatch, match="egorecall-tiny/random-seed0"):
        Library.open(library.root, encoder_spec=EncoderSpec("ViT-B-32", "none"))
    with pytest.raises(GridMismatch, match="1.875 Hz"):
        Library.open(library.root, rate_hz=2.0)
    # A real second encoder: the same architecture with weights from a file has another key.
    from safetensors.torch import save_file

    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_encoder.model.state_dict().items()}, str(weights))
    other = ClipEncoder.load(EncoderSpec("egorecall-tiny", str(weights)), device="cpu")
    new = write_video(tmp_path / "new.mp4", seconds=2.0, seed=41)
    with pytest.raises(EncoderMismatch, match="cannot mix in features of egorecall-tiny/file-"):
        library.add(new, other)
    assert len(library.videos()) == 2


def test_a_library_holding_its_encoder_weights_can_be_moved(tmp_path, videos, tiny_encoder):
    """The demo's (and a pretraining run's) encoder weights live inside the library: the catalog keeps them
    relative to its root, so the folder moved to another place or disk still finds them -- as it does its media."""
    from safetensors.torch import save_file

    root = tmp_path / "lib"
    weights = root / "demo" / "encoder" / "tiny.safetensors"
    weights.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tiny_encoder.model.state_dict().items()}, str(weights))
    encoder = ClipEncoder.load(EncoderSpec("egorecall-tiny", str(weights)), device="cpu")
    Library.open(root).add(videos[0], encoder)
    assert Library.open(root).settings.encoder_pretrained == "./demo/encoder/tiny.safetensors"

    moved = tmp_path / "elsewhere" / "lib"
    shutil.move(str(root), str(moved))
    lib = Library.open(moved, encoder_spec=EncoderSpec("egorecall-tiny", str(moved / "demo/encoder/tiny.safetensors")))
    assert lib.encoder_spec == EncoderSpec("egorecall-tiny", str(moved / "demo" / "encoder" / "tiny.safetensors"))
    assert lib.encoder_spec.key == encoder.key  # the same weights, found where the library now is
    lib.add(videos[1], ClipEncoder.load(lib.encoder_spec, device="cpu"))
    assert len(lib.videos()) == 2 and lib.check().ok
    # weights outside the library stay where they are, by their full path
    outside = tmp_path / "tiny-outside.safetensors"
    shutil.copy(moved / "demo" / "encoder" / "tiny.safetensors", outside)
    other = Library.open(tmp_path / "other")
    other.add(videos[0], ClipEncoder.load(EncoderSpec("egorecall-tiny", str(outside)), device="cpu"))
    assert other.settings.encoder_pretrained == str(outside.resolve())


def test_writers_wait_then_give_up_while_readers_go_on(library):
    holder = FileLock(library.root / "lock")
    assert holder.try_acquire()
    try:
        lib = Library.open(library.root, config=LibraryConfig(lock_timeout_s=0.3))  # opening never waits
        rec = lib.videos()[0]
        q = lib.features(rec.id)[[0]].astype(np.float32)
        assert lib.search(q, k=1)[0][0].video_id == rec.id
        with pytest.raises(LibraryBusy, match="busy"):
            lib.remove(rec.id)
        with pytest.raises(LibraryBusy, match="busy"):  # check reads under the lock too: no half-written video
            lib.check()
    finally:
        holder.release()
    assert lib.check().ok
    assert lib.remove(rec.id).id == rec.id


def test_reference_mode_keeps_the_original_in_place(tmp_path, videos, tiny_encoder):
    lib = Library.open(tmp_path / "lib")
    rec = lib.add(videos[1], tiny_encoder, copy_media=False)
    assert rec.media_mode == "reference" and lib.media_path(rec.id) == videos[1].absolute()
    assert not list((lib.root / "media").iterdir())
    lib.remove(rec.id)
    assert videos[1].exists()


def test_empty_library_searches_to_nothing(tmp_path):
    lib = Library.open(tmp_path / "lib", rate_hz=3.0)
    assert lib.videos() == [] and lib.settings.rate_hz == 3.0
    assert lib.search(np.ones((2, 64), np.float32), k=3) == [[], []]
    with pytest.raises(Exception, match="no EgoRecall library"):
        Library.open(tmp_path / "other", create=False)


def test_threads_and_instances_can_index_and_search_at_once(tmp_path, media_dir, tiny_encoder):
    import threading

    root = tmp_path / "lib"
    first = Library.open(root)
    seed = first.add(write_video(media_dir / "seed.mp4", seconds=2.0, seed=51), tiny_encoder)
    query = first.features(seed.id)[[1]].astype(np.float32)
    new = [write_video(media_dir / f"parallel{i}.mp4", seconds=3.0, seed=60 + i) for i in range(3)]
    libs = [first, first, Library.open(root)]  # two threads share one instance, one has its own
    errors, stop, found = [], threading.Event(), []

    def add(lib, path):
        try:
            lib.add(path, tiny_encoder)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def search():
        while not stop.is_set():
            found.append(first.search(query, k=1)[0][0].video_id)

    searcher = threading.Thread(target=search)
    searcher.start()
    workers = [threading.Thread(target=add, args=(lib, p)) for lib, p in zip(libs, new)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    searcher.join()
    assert not errors, errors
    assert found and set(found) == {seed.id}
    reopened = Library.open(root)
    assert len(reopened.videos()) == 4 and reopened.num_frames() == 4 + 3 * 6
    assert reopened.check().ok
    for rec in reopened.videos():
        top = reopened.search(reopened.features(rec.id)[[2]].astype(np.float32), k=1)[0][0]
        assert (top.video_id, top.bin) == (rec.id, 2)
