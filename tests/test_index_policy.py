"""The library's index type: ``auto`` picks exact search for small libraries and IVF-PQ for large ones, and the
library rebuilds its index when growth (or shrinking) changes the choice; approximate indexes search with
per-video restrictions too."""

from __future__ import annotations

import numpy as np
import pytest
from answer_fixtures import ColorEncoder, colored_frames
from media import write_video

import indexing.library as library_module
from indexing.config import LibraryConfig, SearchTuning
from indexing.library import Library
from indexing.vectors import EXACT_MAX_VECTORS, FrameIndex, effective_factory


def test_auto_policy():
    assert effective_factory("Flat", 10**9, 512) == "Flat"
    assert effective_factory("IVF64,SQ8", 10, 512) == "IVF64,SQ8"
    assert effective_factory("auto", 0, 512) == "Flat"
    assert effective_factory("auto", EXACT_MAX_VECTORS, 512) == "Flat"
    assert effective_factory("auto", EXACT_MAX_VECTORS + 1, 512) == "IVF1024,PQ64np"
    assert effective_factory("auto", 6_750_000, 512) == "IVF2048,PQ64np"  # 1,000 hours at 1.875 Hz
    assert effective_factory("auto", 10**9, 256) == "IVF4096,PQ32np"
    assert effective_factory("auto", 10**6, 2303) == "IVF1024,SQ8"
    assert LibraryConfig().index_factory == "auto"


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
        return "Flat" if ntotal <= 50 else "IVF4,Flat"

    monkeypatch.setattr(library_module, "effective_factory", small_policy)
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
        for c in ("red", "green")
    ]
    first = lib.add(paths[0], enc)
    assert lib.settings.index_factory == "auto" and lib._current_index().factory == "Flat"
    second = lib.add(paths[1], enc)  # 76 vectors: rebuilt as IVF
    assert lib._current_index().factory == "IVF4,Flat" and lib._current_index().ntotal == 76
    assert lib.check().ok
    green = enc.encode_text(["cup"])
    hits = lib.search(green, k=3)[0]
    assert hits[0].video_id == second.id and 5.0 <= hits[0].time <= 8.0
    only_first = lib.search(green, k=3, video_ids=[first.id])[0]
    assert only_first and {h.video_id for h in only_first} == {first.id}
    # Another process sees the same index type and needs no rebuild.
    other = Library.open(tmp_path / "lib", repair=False)
    assert other.check().ok and other.search(green, k=1)[0][0].video_id == second.id
    lib.remove(second.id)  # 38 vectors: back to exact
    assert lib._current_index().factory == "Flat" and lib.check().ok
    assert Library.open(tmp_path / "lib", repair=False).search(green, k=1)[0][0].video_id == first.id


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat"])
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
    assert lib.settings.index_factory == factory and lib._current_index().factory == factory
    assert lib.search(enc.encode_text(["keys"]), k=1)[0][0].time < 4.0
