"""Run short, latency-bound work on fewer threads than the library's default.

Answering one question is a handful of millisecond-sized operations (a matrix-vector product per video, a faiss
search). torch and faiss would split each over every core, and waking a second thread for a few hundred
microseconds of work costs more than it saves -- on a busy CPU a woken thread may wait a whole scheduler tick
(measured on the 2-core development box: a 30-minute video's similarity curve in 0.3 ms on one thread, 12 ms
p50 on two while other jobs ran; bench/README.md). Thread counts are process-wide settings, so a
:class:`ThreadLimit` is reference-counted: the first of overlapping users lowers the count, the last restores
it; anything else running meanwhile (e.g. indexing in another thread) is at most slowed for that long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ThreadLimit:
    def __init__(self, get: Callable[[], int], set_: Callable[[int], None]) -> None:
        self._get, self._set = get, set_
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0

    @contextmanager
    def __call__(self, threads: int | None = 1) -> Iterator[None]:
        if not threads:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._saved = self._get()
                if self._saved > threads:
                    self._set(threads)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._get() != self._saved:
                    self._set(self._saved)


def _torch_get() -> int:
    import torch

    return torch.get_num_threads()


def _torch_set(n: int) -> None:
    import torch

    torch.set_num_threads(n)


torch_threads = ThreadLimit(_torch_get, _torch_set)
"""``with torch_threads(1): ...`` runs torch's intra-op work of the block on one thread."""
