"""Searching a flat index of float16 codes (a segment index's ``SQfp16`` vectors) where faiss alone is slow
(one CPU thread per question) or cannot (no GPU form of the index).

On the CPU, faiss scans a flat index on one thread per question; torch's matrix-vector products read the same
codes in place on every core. On a GPU, faiss has no form of a flat scalar quantizer (``index_cpu_to_gpu``
refuses it) but its GPU flat index stores float16 and scans it exactly. Both return what faiss's own search of
the CPU index returns: ``([1, k] float32 scores, [1, k] int64 ids)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from models.threads import torch_threads

SCAN_CHUNK_ROWS = 16384
"""Rows one thread scores at a time (16 MB of 512-d float16): small enough that a helper thread woken late
costs a chunk, not half the scan."""
_scan_pool: ThreadPoolExecutor | None = None


def _half_operands(vectors: np.ndarray, query: np.ndarray):
    """The float16 rows, read in place, and the question in float16: what torch's products below take."""
    import torch

    return torch.from_numpy(vectors), torch.from_numpy(query).to(torch.float16)


def scan_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 cosines of one question with every float16 row, on every core. The calling thread starts at once
    and helper threads take chunks as they wake: torch's own split gives each thread half, and on a busy
    machine the woken half started late and doubled the scan (48 ms instead of 25 inside a library search)."""
    import torch

    global _scan_pool
    helpers = max(0, min(len(vectors) // SCAN_CHUNK_ROWS, (os.cpu_count() or 1) - 1))
    if helpers and _scan_pool is None:
        _scan_pool = ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="egorecall-scan")
    out = np.empty(len(vectors), np.float32)
    table, q = _half_operands(vectors, query)
    chunks = iter(range(0, len(vectors), SCAN_CHUNK_ROWS))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                start = next(chunks, None)
            if start is None:
                return
            stop = min(start + SCAN_CHUNK_ROWS, len(vectors))
            out[start:stop] = torch.mv(table[start:stop], q).float().numpy()

    with torch.inference_mode(), torch_threads(1):
        pending = [_scan_pool.submit(work) for _ in range(helpers)] if _scan_pool is not None and helpers else []
        work()
        for f in pending:
            f.result()
    return out


HALF_SCAN_SLACK = 2e-3
"""torch's float16 product rounds each score to float16 (<= 2.5e-4 off below 1, plus the question's own
rounding): every vector within this of the k-th best is rescored in float32, so the top k are faiss's."""


def scan_half(
    half: tuple[np.ndarray, np.ndarray], query: np.ndarray, k: int, blocks: Sequence[tuple[int, int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of one question over float16 vectors (only rows ``start:stop`` of ``blocks``, when given),
    as faiss's search returns it ([1, <=k] float32 scores and ids). faiss scans a flat index on one thread per
    question; torch's matrix-vector products read the same float16 codes on every core (:func:`scan_scores`):
    422 k segment vectors (1,000 hours) in ~21 ms instead of 47 on two cores (bench/README.md, bench_query).
    Their float16 scores only choose the candidates; those near the k-th are scored again in float32 as faiss
    would."""
    vectors, ids = half
    if blocks is None:
        approx, rows = scan_scores(vectors, query), None
    else:
        approx, rows = scan_blocks(vectors, query, blocks)
    if len(approx) == 0:
        return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
    top = np.argpartition(-approx, k - 1)[:k] if k < len(approx) else np.arange(len(approx))
    kth = float(approx[top].min())
    near = np.flatnonzero(approx >= kth - HALF_SCAN_SLACK)
    if len(near) > 64 * k:  # scores too alike to tell apart in float16: the best few thousand will do
        near = np.argpartition(-approx, 64 * k - 1)[: 64 * k]
    if rows is not None:
        near = rows[near]
    exact = vectors[near].astype(np.float32) @ query
    best = np.argsort(-exact, kind="stable")[:k]
    return exact[best][None], ids[near[best]][None]


def scan_blocks(
    vectors: np.ndarray, query: np.ndarray, blocks: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """float32 cosines of one question with the rows of ``blocks`` (a few videos' contiguous rows, read in
    place, on one thread: a few tens of thousands of rows), and those rows' positions."""
    import torch

    if not blocks:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    table, q = _half_operands(vectors, query)
    with torch.inference_mode(), torch_threads(1):
        scores = [torch.mv(table[start:stop], q).float().numpy() for start, stop in blocks]
    return np.concatenate(scores), np.concatenate([np.arange(start, stop) for start, stop in blocks])


GPU_ADD_ROWS = 1 << 18
"""Rows converted to float32 and copied to the GPU at a time (512 MB of 512-d rows)."""


def half_flat_on_gpu(resources, dim: int, vectors: np.ndarray):
    """A GPU flat inner-product index holding float16 ``vectors``: what a segment index's ``SQfp16`` codes are.
    faiss has no GPU form of a flat scalar quantizer (``index_cpu_to_gpu`` refuses it), but its GPU flat index
    stores float16 and scans it exactly, so the same codes are searched there."""
    config = faiss.GpuIndexFlatConfig()
    config.device = 0
    config.useFloat16 = True
    flat = faiss.GpuIndexFlatIP(resources, int(dim), config)
    for start in range(0, len(vectors), GPU_ADD_ROWS):
        flat.add(np.ascontiguousarray(vectors[start : start + GPU_ADD_ROWS], dtype=np.float32))
    return flat


class IdsOf:
    """A faiss index searched by position, answering with the library's ids (``ids[position]``): a GPU flat
    index has no id map of its own."""

    def __init__(self, index, ids: np.ndarray) -> None:
        self.index = index
        self.ids = np.array(ids, dtype=np.int64, copy=True)  # the CPU index's id array may move when it grows
        self.ntotal = int(index.ntotal)

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, positions = self.index.search(x, k)
        return scores, np.where(positions >= 0, self.ids[np.maximum(positions, 0)], -1)
