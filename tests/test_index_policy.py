"""The library's index type: ``auto`` picks exact search over frames for small libraries and an exact scan of
segment summaries for large ones (frames rescored from the feature files), and the library rebuilds its index
when growth (or shrinking) changes the choice; approximate indexes search with per-video restrictions too."""

from __future__ import annotations

import numpy as np
import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

import indexing.state as state_module
from indexing.config import LibraryConfig, SearchTuning
from indexing.half_codes import IdsOf
from indexing.library import Library
from indexing.state import FrameIndexCache
from indexing.vectors import (
    EXACT_MAX_VECTORS,
    FrameIndex,
    decode_ids,
    effective_factory,
    index_vectors,
    segment_means,
    split_factory,
)


def test_auto_policy():
    assert effective_factory("Flat", 10**9, 512) == "Flat"
    assert effective_factory("IVF64,SQ8", 10, 512) == "IVF64,SQ8"
    assert effective_factory("auto", 0, 512) == "Flat"
    assert effective_factory("auto", EXACT_MAX_VECTORS, 512) == "Flat"
    assert effective_factory("auto", EXACT_MAX_VECTORS + 1, 512) == "Seg16,SQfp16"
    assert effective_factory("auto", 6_750_000, 512) == "Seg16,SQfp16"  # 1,000 hours: never retrained
    assert LibraryConfig().index_factory == "auto"
    assert split_factory("Seg16,IVF64,SQ8") == (16, "IVF64,SQ8") and split_factory("Flat") == (1, "Flat")
    assert index_vectors("Seg16,SQfp16", [16, 17, 1]) == 1 + 2 + 1 and index_vectors("Flat", [16, 17]) == 33
    with pytest.raises(ValueError, match="1 to 4096"):
        split_factory("Seg0,Flat")


def test_segment_means_are_unit_means_of_consecutive_bins():
    x = np.random.default_rng(1).standard_normal((37, 8)).astype(np.float32)
    starts, means = segment_means(x, 16)
    assert starts.tolist() == [0, 16, 32] and means.shape == (3, 8)
    expected = x[32:].mean(0) / np.linalg.norm(x[32:].mean(0))
    np.testing.assert_allclose(means[2], expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-5)
    assert segment_means(x, 1)[1].shape == (37, 8)


def test_a_segment_index_finds_the_frames_exact_search_finds():
    """Scenes of a few concepts in noise: the best segments hold the best frames, and the rescored hits carry
    the frames' true cosines, in the order brute force gives."""
    rng = np.random.default_rng(2)
    concepts = rng.standard_normal((6, 64)).astype(np.float32)
    videos = []
    for v in range(4):
        scene = np.repeat(rng.integers(0, 6, size=10), 30)  # 300 bins, scenes of 30 bins
        x = 0.6 * concepts[scene] / 8.0 + 0.6 * rng.standard_normal((300, 64)).astype(np.float32) / 8.0
        videos.append((v + 1, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)))
    segments = FrameIndex.build(64, "Seg16,SQfp16", videos)
    assert segments.span == 16 and segments.ntotal == 4 * 19
    q = concepts[3] / np.linalg.norm(concepts[3])
    _, ids = segments.search(q[None], 8)
    rowids, bins = decode_ids(ids[0])
    assert set(bins.tolist()) <= set(range(0, 300, 16))
    best_v, best_b = max(
        ((rowid, b) for rowid, f in videos for b in range(300)),
        key=lambda rb: float(videos[rb[0] - 1][1][rb[1]].astype(np.float32) @ q),
    )
    assert any(r == best_v and b <= best_b < b + 16 for r, b in zip(rowids.tolist(), bins.tolist()))
    one = segments.search(q[None], 4, {2: 300})[1][0]
    assert set(decode_ids(one)[0].tolist()) == {2}


def test_tuning_reaches_the_faiss_index():
    x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ivf = FrameIndex.build(16, "IVF16,Flat", [(1, x[:1000]), (2, x[1000:])], tuning=SearchTuning(nprobe=16))
    flat = FrameIndex.build(16, "Flat", [(1, x[:1000]), (2, x[1000:])])
    q = x[1500:1503] + 0.01
    # nprobe = every list: exact results, also with a per-video restriction (IVF needs its own parameters).
    np.testing.assert_array_equal(ivf.search(q, 5)[1], flat.search(q, 5)[1])
    np.testing.assert_array_equal(ivf.search(q, 5, {2: 1000})[1], flat.search(q, 5, {2: 1000})[1])
    np.testing.assert_array_equal(ivf.search(q, 5, {1: 1000, 2: 1000})[1], flat.search(q, 5)[1])
    hnsw = FrameIndex.build(16, "HNSW16", [(1, x[:1000])], tuning=SearchTuning(ef_search=77))
    assert hnsw._hnsw.hnsw.efSearch == 77 and len(hnsw.search(q, 5, {1: 1000})[1][0]) == 5


def test_the_library_switches_index_type_as_it_grows_and_shrinks(tmp_path, monkeypatch):
    def small_policy(setting, ntotal, dim):
        return "Flat" if ntotal <= 50 else "Seg4,SQfp16"

    monkeypatch.setattr(state_module, "effective_factory", small_policy)
    enc = ColorEncoder()
    lib = Library.open(tmp_path / "lib")
    paths = [
        write_video(
            tmp_path / f"{c}.mp4",
            seconds=20.0,
            fps=10.0,
            width=64,
            height=48,
            frame=colored_frames({c: [(5.0, 8.0)]}, 10.0),
        )
        for c in ("red", "green", "blue")
    ]
    first = lib.add(paths[0], enc)
    assert lib.settings.index_factory == "auto" and lib.state.frames.current().factory == "Flat"
    second = lib.add(paths[1], enc)  # 76 frames: rebuilt as 2 x 10 segments
    assert lib.state.frames.current().factory == "Seg4,SQfp16" and lib.state.frames.current().ntotal == 20
    assert lib.check().ok
    green = enc.encode_text(["cup"])
    hits = lib.search(green, k=3)[0]
    assert hits[0].video_id == second.id and 5.0 <= hits[0].time <= 8.0
    exact = lib.features(second).astype(np.float32) @ green[0]
    assert hits[0].score == pytest.approx(float(exact.max()), abs=1e-5)  # a frame's own cosine, not a segment's
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only_first = lib.search(green, k=3, video_ids=[first.id])[0]
    assert only_first and {h.video_id for h in only_first} == {first.id}
    # Another process sees the same index type and needs no rebuild.
    other = Library.open(tmp_path / "lib", repair=False)
    assert other.check().ok and other.search(green, k=1)[0][0].video_id == second.id
    builds = []
    real_build = FrameIndexCache.build
    monkeypatch.setattr(FrameIndexCache, "build", lambda self, *a, **kw: builds.append(1) or real_build(self, *a, **kw))
    third = lib.add(paths[2], enc)  # a segment index grows by appending: no rebuild
    assert not builds and lib.state.frames.current().ntotal == 30 and lib.check().ok
    assert lib.search(enc.encode_text(["phone"]), k=1)[0][0].video_id == third.id
    lib.remove(third.id)
    assert not builds and lib.state.frames.current().ntotal == 20
    monkeypatch.setattr(FrameIndexCache, "build", real_build)
    lib.remove(second.id)  # 38 vectors: back to exact
    assert lib.state.frames.current().factory == "Flat" and lib.check().ok
    assert Library.open(tmp_path / "lib", repair=False).search(green, k=1)[0][0].video_id == first.id


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "Seg8,Flat"])
def test_explicit_factories_are_kept(tmp_path, factory):
    enc = ColorEncoder()
    lib = Library.open(tmp_path / "lib", config=LibraryConfig(index_factory=factory))
    path = write_video(
        tmp_path / "v.mp4",
        seconds=20.0,
        fps=10.0,
        width=64,
        height=48,
        frame=colored_frames({"red": [(2.0, 3.0)]}, 10.0),
    )
    lib.add(path, enc)
    assert lib.settings.index_factory == factory and lib.state.frames.current().factory == factory
    assert lib.search(enc.encode_text(["keys"]), k=1)[0][0].time < 4.0


@pytest.mark.parametrize("factory", ["SQfp16", "Seg16,SQfp16"])
def test_the_half_precision_scan_returns_what_faiss_returns(factory):
    """One question over a float16 index is scanned by torch on every core (``indexing.half_codes.scan_half``);
    its answer must be faiss's own: the same scores in float32 and the same ids (in any order among equal
    scores), even where float16 scores would tie."""
    rng = np.random.default_rng(3)
    index = FrameIndex.new(32, factory)
    base = rng.standard_normal(32).astype(np.float32)
    for rowid in range(1, 4):
        x = base + 0.05 * rng.standard_normal((700, 32)).astype(np.float32)  # near-duplicates: many close scores
        index.add(rowid, x / np.linalg.norm(x, axis=1, keepdims=True))
    assert index._half_codes() is not None
    for _ in range(20):
        q = base + 0.3 * rng.standard_normal(32).astype(np.float32)
        q = (q / np.linalg.norm(q))[None]
        scores, ids = index.search(q, 25)
        want_scores, want_ids = index.index.search(q, 25)
        assert scores.dtype == np.float32 and np.allclose(scores, want_scores, atol=1e-6)
        same = np.isclose(scores[0][:, None], scores[0][None, :], atol=1e-6)  # equal scores: any order
        assert all(set(ids[0][same[i]]) == set(want_ids[0][same[i]]) for i in range(24))
    flat = FrameIndex.new(32, "Flat")
    flat.add(1, np.eye(32, dtype=np.float32))
    assert flat._half_codes() is None  # other index types keep faiss's own search


def test_a_flat_index_over_the_segment_codes_answers_with_the_library_ids():
    """On a GPU the segment index's float16 codes are searched by a flat index that knows only positions
    (faiss has no GPU scalar quantizer); mapped through ``IdsOf`` it must answer as the segment index does. Here
    the flat index is a CPU one over the same codes: the mapping, not the device, is under test."""
    import faiss

    rng = np.random.default_rng(11)
    index = FrameIndex.new(32, "Seg4,SQfp16")
    for rowid in (3, 7, 9):
        x = rng.standard_normal((90, 32)).astype(np.float32)
        index.add(rowid, x / np.linalg.norm(x, axis=1, keepdims=True))
    vectors, ids = index._half_codes()
    flat = faiss.IndexFlatIP(32)
    flat.add(vectors.astype(np.float32))
    mapped = IdsOf(flat, ids)
    assert mapped.ntotal == index.ntotal
    q = rng.standard_normal((4, 32)).astype(np.float32)
    scores, got = mapped.search(q, 8)
    want_scores, want = index.index.search(q, 8)
    assert np.allclose(scores, want_scores, atol=1e-5) and (got == want).all()
    assert set(decode_ids(got)[0].ravel().tolist()) <= {3, 7, 9}
    _, too_many = mapped.search(q[:1], index.ntotal + 5)  # positions faiss leaves empty (-1) stay empty
    assert (too_many[0][index.ntotal :] == -1).all()
    assert not index.on_gpu  # no GPU here: the index searches itself


def test_a_restricted_half_precision_scan_reads_only_those_videos_and_returns_what_faiss_returns():
    """A search restricted to a few videos (a before/after question's event near its candidates) reads their
    rows in place; its answer must be faiss's selector search's, also after videos were removed and added."""
    rng = np.random.default_rng(5)
    index = FrameIndex.new(32, "Seg4,SQfp16")
    base = rng.standard_normal(32).astype(np.float32)

    def video(rows: int) -> np.ndarray:
        x = base + 0.2 * rng.standard_normal((rows, 32)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    rows = {rowid: 60 + 13 * rowid for rowid in range(1, 9)}
    for rowid, n in rows.items():
        index.add(rowid, video(n))
    for step in range(3):
        for _ in range(10):
            q = base + 0.5 * rng.standard_normal(32).astype(np.float32)
            q = (q / np.linalg.norm(q))[None]
            wanted = {r: rows[r] for r in rng.choice(sorted(rows), size=3, replace=False).tolist()}
            scores, ids = index.search(q, 10, wanted)
            want_scores, want_ids = index._search_restricted(q, 10, wanted)
            assert np.allclose(scores, want_scores, atol=1e-6)
            assert set(decode_ids(ids[0])[0].tolist()) <= set(wanted)
            assert set(ids[0].tolist()) == set(want_ids[0].tolist())
        assert index.search(q, 5, {99: 10})[1].size == 0  # a video the index does not hold: nothing
        index.remove(sorted(rows)[step])  # the rows after it move up
        del rows[sorted(rows)[step]]
        rows[20 + step] = 50
        index.add(20 + step, video(50))


def test_the_gpu_faiss_benchmark_runs_on_a_machine_without_a_gpu(tmp_path):
    """``bench/gpu_faiss.py`` is the GPU check's faiss step; here it must measure the CPU row and say the GPU
    rows were not measured, so a GPU session finds it working."""
    import json

    from bench import gpu_faiss

    out = tmp_path / "faiss.json"
    assert gpu_faiss.main(["--hours", "1", "--queries", "8", "--factory", "Seg16,SQfp16", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 6750 and result["factory"] == "Seg16,SQfp16"
    cpu = result["rows"]["library index, CPU"]
    assert cpu["best_found_pct"] == 100.0 and cpu["p50_ms"] > 0  # 256 hits of 422 segments hold every best frame
    assert set(result["rows"]) == {"library index, CPU"} or result["faiss_gpu"]
