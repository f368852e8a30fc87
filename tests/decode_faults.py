"""Decoder backends that fail on purpose, for watchdog and fallback tests.

They are named in ``DecodeConfig.backends`` as ``decode_faults:ClassName`` and run inside real decoder child
processes (this directory is on ``sys.path`` there as it is in the test process).
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

from indexing.backends import SegmentStats, target_size


def _one_batch(request, emit) -> None:
    """Send one real-looking batch first, so failures happen mid-stream as they do in the wild."""
    w, h = target_size(request.width, request.height, request.short_side)
    emit(request.first_bin, np.zeros((1, h, w, 3), np.uint8))


class HangBackend:
    """Stops making progress (like decord stuck holding the GIL): only the watchdog's kill ends it."""

    name = "hang"

    def decode_segment(self, request, emit, beat) -> SegmentStats:
        _one_batch(request, emit)
        while True:
            time.sleep(3600)


class CrashBackend:
    """Dies by SIGABRT, as decord does on `terminate called ... dmlc::Error`."""

    name = "crash"

    def decode_segment(self, request, emit, beat) -> SegmentStats:
        _one_batch(request, emit)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.abort()


class ExitBackend:
    """Exits without a word."""

    name = "exit"

    def decode_segment(self, request, emit, beat) -> SegmentStats:
        os._exit(3)


class RaiseBackend:
    """Raises an ordinary exception (a decoder bug)."""

    name = "raise"

    def decode_segment(self, request, emit, beat) -> SegmentStats:
        raise RuntimeError("simulated decoder bug")
