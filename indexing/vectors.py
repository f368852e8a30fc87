"""The faiss index over every frame embedding of the library, and its file on disk.

Each vector's 64-bit id encodes ``(video rowid << 24) | bin``, so a hit maps straight back to a video and a
time, and a video's vectors form one contiguous id range (removal and per-video filtering are range
selectors). 2**24 bins is 2,485 hours of one video at 1.875 Hz.

The index is a cache of the per-video feature files, which are the truth: it is saved atomically with a JSON
sidecar (count, dimension, generation, checksum of the set of videos it holds, file size) and whenever the
sidecar does not match the catalog -- missing, damaged, stale -- it is rebuilt from the feature files.
Vectors are L2-normalised, so inner product is cosine similarity.

Index type. A library records a faiss factory string, or ``auto`` (the default for new libraries), which
:func:`effective_factory` turns into a concrete one from the number of vectors: exact ``Flat`` search up to
:data:`EXACT_MAX_VECTORS` (about 37 hours at 1.875 Hz), then an inverted file of product-quantised codes,
``IVF<nlist>,PQ<dim/8>np`` (64 bytes a vector for 512-d features instead of 2,048). Exact search reads every
vector for every question -- at 1,000 hours that is 13.8 GB of float32 and hundreds of milliseconds on a
CPU -- while IVF-PQ reads ``nprobe/nlist`` of the compact codes; ``bench/bench_query.py`` measured the
trade-off. The choice depends only on the count (never on the process), so every process reading a library
expects the same index; when a change of count changes the choice, the index is rebuilt. Search-time
parameters (``nprobe``, ``efSearch``) are per process (:class:`indexing.config.SearchTuning`).

Segment summaries. Past :data:`EXACT_MAX_VECTORS` frames, ``auto`` no longer indexes frames: it indexes one
vector per :data:`SEGMENT_BINS` consecutive bins (8.5 s), the L2-normalised mean of their features
(``Seg16,SQfp16``: a ``SegN,`` prefix on any factory string means that). A segment mean is what a window score
averages anyway, and averaging 16 frames cuts their noise fourfold, so the segments a question matches are found
by an exact scan of 16x fewer half-size vectors -- no training, so adding a video is an append, never a
rebuild -- and :meth:`indexing.searching.SearchMixin.search` rescores the frames of the best segments exactly
from the float16 feature files. IVF-PQ over frames found the video holding the best frame for 42 % of the
questions at 1,000 hours (``bench/bench_query.py``); its quantised codes are too coarse for CLIP's text-to-frame
cosines, which differ by hundredths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from indexing.config import SearchTuning
from indexing.fsutil import atomic_path, write_json_atomic
from indexing.half_codes import IdsOf, half_flat_on_gpu, scan_half
from models.threads import ThreadLimit

logger = logging.getLogger(__name__)

BIN_BITS = 24
MAX_BINS = 1 << BIN_BITS
INDEX_FILE = "frames.faiss"
META_FILE = "frames.json"

AUTO_FACTORY = "auto"
EXACT_MAX_VECTORS = 250_000
"""``auto`` searches exactly up to this many vectors (133 hours of 1.875 Hz features would take ~50 ms per
exact search on a 2-core CPU; 250 k vectors stay near 20 ms, measured in ``bench/README.md``)."""
SEGMENT_BINS = 16
"""Bins summarised by one vector of a segment index (8.5 s at 1.875 Hz: about two answer lengths)."""
SEGMENT_CODES = "SQfp16"
"""Half the memory of float32 and faster to scan on a CPU, with no training; 422 k segment vectors (1,000
hours) take 432 MB and 64 ms a question on one core of the development box (``bench/README.md``, where IVF
over the same means was measured too: 5-20 ms, but it missed the best segment for a fifth to a half of the
questions)."""


def effective_factory(setting: str, ntotal: int, dim: int) -> str:
    """The concrete faiss factory string for a library's ``index_factory`` setting holding ``ntotal`` frames.

    ``auto``: ``Flat`` over frames up to :data:`EXACT_MAX_VECTORS`; beyond, an exact scan of segment summaries
    (``Seg16,SQfp16``), which never needs training, so it stays the choice however large the library grows
    (one rebuild, at the switch). Any other setting is used as it is.
    """
    if setting != AUTO_FACTORY:
        return setting
    if ntotal <= EXACT_MAX_VECTORS:
        return "Flat"
    return f"Seg{SEGMENT_BINS},{SEGMENT_CODES}"


_SEGMENT_PREFIX = re.compile(r"^Seg(\d+),(.+)$")


def split_factory(factory: str) -> tuple[int, str]:
    """``(bins per vector, faiss factory)`` of a factory string: ``Seg16,SQfp16`` -> ``(16, "SQfp16")``."""
    match = _SEGMENT_PREFIX.match(factory)
    if not match:
        return 1, factory
    bins = int(match.group(1))
    if not 1 <= bins <= 4096:
        raise ValueError(f"a segment index summarises 1 to 4096 bins per vector, not {bins} ({factory!r})")
    return bins, match.group(2)


def index_vectors(factory: str, rows: Iterable[int]) -> int:
    """How many vectors an index of ``factory`` holds for videos of ``rows`` feature rows each."""
    span, _ = split_factory(factory)
    return sum(-(-int(n) // span) for n in rows)


def segment_means(features: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """``(first bins, float32 L2-normalised means)`` of consecutive ``span``-bin segments (the last may be
    shorter); ``span`` 1 returns the rows themselves."""
    x = np.asarray(features, dtype=np.float32)
    if span == 1:
        return np.arange(len(x)), np.ascontiguousarray(x)
    starts = np.arange(0, len(x), span)
    sums = np.add.reduceat(x, starts, axis=0) if len(x) else np.zeros((0, x.shape[1]), np.float32)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return starts, np.ascontiguousarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)


def encode_ids(rowid: int, bins: np.ndarray | int) -> np.ndarray:
    return (np.int64(rowid) << np.int64(BIN_BITS)) | np.asarray(bins, dtype=np.int64)


def decode_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> BIN_BITS, ids & (MAX_BINS - 1)


def video_set_checksum(videos: Iterable[tuple[int, int]]) -> str:
    """Identity of the set of (rowid, rows) an index must hold; compared with the sidecar on load."""
    h = hashlib.sha1()
    for rowid, rows in sorted(videos):
        h.update(f"{rowid}:{rows}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class IndexMeta:
    ntotal: int
    dim: int
    factory: str
    generation: int
    videos: str
    """:func:`video_set_checksum` of the videos in the index."""
    file_size: int = 0


_faiss_threads = ThreadLimit(faiss.omp_get_max_threads, faiss.omp_set_num_threads)
"""One question gains nothing from a second faiss thread (faiss splits work by query) but pays for waking it:
measured 12 ms instead of 1 ms for 6,750 vectors on a busy 2-core CPU (see :mod:`models.threads`)."""


class NeedsRebuild(Exception):
    """The index cannot take this change incrementally (untrained, or no removal support)."""


class FrameIndex:
    """An ``IndexIDMap2`` over a faiss index built from a factory string, inner-product metric.

    With a ``SegN,`` factory each vector summarises ``span`` = N bins and its id names the first of them.
    """

    def __init__(self, index: faiss.Index, dim: int, factory: str, tuning: SearchTuning | None = None) -> None:
        self.index = index
        self.dim = dim
        self.factory = factory
        self.span = split_factory(factory)[0]
        self._gpu: faiss.Index | IdsOf | None = None
        self._blocks: dict[int, list[tuple[int, int]]] | None = None
        self.tune(tuning or SearchTuning())

    @classmethod
    def new(cls, dim: int, factory: str = "Flat", tuning: SearchTuning | None = None) -> FrameIndex:
        try:
            inner = split_factory(factory)[1]
            index = faiss.index_factory(int(dim), f"IDMap2,{inner}", faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"invalid faiss index factory string {factory!r}: {exc}") from exc
        return cls(index, int(dim), factory, tuning)

    def tune(self, tuning: SearchTuning) -> None:
        """Set the search-time parameters of an approximate index (IVF ``nprobe``, HNSW ``efSearch``)."""
        self.tuning = tuning
        self._ivf = self._hnsw = None
        try:
            self._ivf = faiss.extract_index_ivf(self.index)
        except RuntimeError:
            inner = faiss.downcast_index(self.index.index) if hasattr(self.index, "index") else self.index
            self._hnsw = inner if hasattr(inner, "hnsw") else None
        if self._ivf is not None:
            self._ivf.nprobe = max(1, min(int(tuning.nprobe), int(self._ivf.nlist)))
        if self._hnsw is not None:
            self._hnsw.hnsw.efSearch = max(1, int(tuning.ef_search))
        self._gpu = None

    def _params(self, sel) -> faiss.SearchParameters:
        """Search parameters carrying a selector, of the type the inner index accepts (IVF refuses others).

        (faiss's own stub lacks the keyword constructors and ``SearchParametersHNSW``; both exist.)"""
        if self._ivf is not None:
            return faiss.SearchParametersIVF(sel=sel, nprobe=self._ivf.nprobe)  # type: ignore[call-arg]
        if self._hnsw is not None:
            return faiss.SearchParametersHNSW(sel=sel, efSearch=self._hnsw.hnsw.efSearch)  # type: ignore[attr-defined]
        return faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # ------------------------------------------------------------------------------------------- changes
    def add(self, rowid: int, features: np.ndarray) -> None:
        if len(features) > MAX_BINS:
            raise ValueError(f"a video may have at most {MAX_BINS} feature rows")
        if not self.index.is_trained:
            raise NeedsRebuild("index not trained")
        starts, x = segment_means(features, self.span)
        self.index.add_with_ids(x, encode_ids(rowid, starts))
        self._gpu = self._blocks = None

    def remove(self, rowid: int) -> int:
        sel = faiss.IDSelectorRange(int(encode_ids(rowid, 0)), int(encode_ids(rowid + 1, 0)))
        try:
            removed = int(self.index.remove_ids(sel))
        except RuntimeError as exc:
            raise NeedsRebuild(str(exc)) from exc
        self._gpu = self._blocks = None
        return removed

    @classmethod
    def build(
        cls,
        dim: int,
        factory: str,
        videos: Iterable[tuple[int, np.ndarray]],
        train_sample: int = 200_000,
        tuning: SearchTuning | None = None,
    ) -> FrameIndex:
        """A fresh index over ``(rowid, features)`` pairs; trains first when the index type needs it."""
        index = cls.new(dim, factory, tuning)
        videos = list(videos)
        if not index.index.is_trained and videos:
            total = sum(len(f) for _, f in videos)
            rng = np.random.default_rng(0)
            take = min(1.0, train_sample * index.span / max(total, 1))
            means = (segment_means(f, index.span)[1] for _, f in videos)  # sampled per video: never all at once
            sample = np.concatenate([m[rng.random(len(m)) < take] if take < 1 else m for m in means])
            logger.info("training %s on %d vectors", factory, len(sample))
            index.index.train(sample)
        chunk = 65536 * index.span  # a multiple of the span: segments never straddle two chunks
        for rowid, feats in videos:
            for s in range(0, len(feats), chunk):
                starts, x = segment_means(feats[s : s + chunk], index.span)
                index.index.add_with_ids(x, encode_ids(rowid, starts + s))
        return index

    # ------------------------------------------------------------------------------------------- search
    def _searcher(self, use_gpu: bool):
        if not use_gpu or not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
            return self.index
        if self._gpu is None:
            try:
                resources = faiss.StandardGpuResources()
                half = self._half_codes()
                if half is not None:
                    self._gpu = IdsOf(half_flat_on_gpu(resources, self.dim, half[0]), half[1])
                else:
                    self._gpu = faiss.index_cpu_to_gpu(resources, 0, self.index)
            except (RuntimeError, AttributeError) as exc:
                logger.info("faiss GPU search unavailable for %s (%s); searching on CPU", self.factory, exc)
                self._gpu = self.index
        return self._gpu

    @property
    def on_gpu(self) -> bool:
        """Whether searches of the whole index run on a GPU copy (set by the first such search)."""
        return self._gpu is not None and self._gpu is not self.index

    def search(
        self, queries: np.ndarray, k: int, rowids: dict[int, int] | None = None, use_gpu: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query; ``rowids`` ({rowid: rows}) restricts the search to those videos."""
        x = np.ascontiguousarray(queries, dtype=np.float32)
        k = int(max(1, min(k, max(self.ntotal, 1))))
        if len(x) == 1 and (rowids is not None or self._searcher(use_gpu) is self.index):
            half = self._half_codes()
            if half is not None:
                if rowids is None:
                    return scan_half(half, x[0], k)
                blocks = self._row_blocks(half[1])
                return scan_half(half, x[0], k, [b for r in rowids for b in blocks.get(r, ())])
        with _faiss_threads(self.tuning.single_query_threads if len(x) == 1 else None):
            if rowids is None:
                return self._searcher(use_gpu).search(x, k)
            return self._search_restricted(x, k, rowids)

    def _half_codes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(vectors float16 [n, dim], ids int64 [n])``: views, without a copy, of the stored codes and ids of
        a flat half-precision index (``SQfp16``, the segment index's codes), or None for other index types.
        Valid until the index changes (searches hold the library's index lock)."""
        inner = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]  # IndexIDMap2 (faiss stubs: Index)
        n = int(self.index.ntotal)
        if not isinstance(inner, faiss.IndexScalarQuantizer) or n == 0:
            return None
        if inner.sq.qtype != faiss.ScalarQuantizer.QT_fp16 or inner.code_size != 2 * self.dim:
            return None
        codes = faiss.rev_swig_ptr(inner.codes.data(), n * inner.code_size)
        ids = faiss.rev_swig_ptr(self.index.id_map.data(), n)  # type: ignore[attr-defined]
        return codes.view(np.float16).reshape(n, self.dim), ids

    def _row_blocks(self, ids: np.ndarray) -> dict[int, list[tuple[int, int]]]:
        """Each video's rows in a flat index, as ``(start, stop)`` ranges (one, as videos are added whole and
        removal keeps the order), found once per change of the index: a search restricted to a few videos
        then reads just their rows, where faiss's selector tests every id of the library."""
        if self._blocks is None:
            rowids = decode_ids(ids)[0]
            cuts = np.flatnonzero(np.diff(rowids)) + 1
            starts, stops = np.r_[0, cuts], np.r_[cuts, len(rowids)]
            blocks: dict[int, list[tuple[int, int]]] = {}
            for start, stop in zip(starts.tolist(), stops.tolist()):
                blocks.setdefault(int(rowids[start]), []).append((start, stop))
            self._blocks = blocks
        return self._blocks

    def _search_restricted(self, x: np.ndarray, k: int, rowids: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if len(rowids) == 1:
            (rowid,) = rowids
            sel: faiss.IDSelector = faiss.IDSelectorRange(int(encode_ids(rowid, 0)), int(encode_ids(rowid + 1, 0)))
        else:
            ids = (
                np.concatenate([encode_ids(r, np.arange(0, n, self.span)) for r, n in rowids.items()])
                if rowids
                else np.zeros(0, np.int64)
            )
            sel = faiss.IDSelectorBatch(ids)
        return self.index.search(x, k, params=self._params(sel))  # selectors run on the CPU index

    # ------------------------------------------------------------------------------------------- files
    def save(self, directory: Path, generation: int, videos_checksum: str) -> IndexMeta:
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / INDEX_FILE
        with atomic_path(final) as tmp:
            faiss.write_index(self.index, str(tmp))
            size = tmp.stat().st_size
        meta = IndexMeta(
            ntotal=self.ntotal,
            dim=self.dim,
            factory=self.factory,
            generation=generation,
            videos=videos_checksum,
            file_size=size,
        )
        write_json_atomic(directory / META_FILE, asdict(meta))
        return meta

    @staticmethod
    def read_meta(directory: Path) -> IndexMeta | None:
        try:
            return IndexMeta(**json.loads((directory / META_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @classmethod
    def load(cls, directory: Path, expect: IndexMeta, tuning: SearchTuning | None = None) -> FrameIndex | None:
        """The saved index if it is exactly what ``expect`` describes (generation aside), else None."""
        why = cls.mismatch(directory, expect)
        if why:
            logger.info("frame index at %s not usable: %s", directory, why)
            return None
        try:
            index = faiss.read_index(str(directory / INDEX_FILE))
        except RuntimeError as exc:
            logger.info("frame index at %s unreadable: %s", directory, str(exc).splitlines()[0][:200])
            return None
        if index.ntotal != expect.ntotal or index.d != expect.dim:
            logger.info(
                "frame index at %s holds %d x %d, expected %d x %d",
                directory,
                index.ntotal,
                index.d,
                expect.ntotal,
                expect.dim,
            )
            return None
        return cls(index, expect.dim, expect.factory, tuning)

    @staticmethod
    def mismatch(directory: Path, expect: IndexMeta) -> str | None:
        """Why the saved index does not match ``expect`` (cheap: sidecar and file size only), or None."""
        meta = FrameIndex.read_meta(directory)
        if meta is None:
            return "no readable sidecar"
        path = directory / INDEX_FILE
        try:
            size = path.stat().st_size
        except OSError:
            return "index file missing"
        if size != meta.file_size:
            return f"file size {size} differs from the recorded {meta.file_size}"
        for name in ("ntotal", "dim", "factory", "videos"):
            if getattr(meta, name) != getattr(expect, name):
                return f"{name} {getattr(meta, name)!r} differs from the catalog's {getattr(expect, name)!r}"
        return None
