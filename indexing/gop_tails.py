"""In recordings without B-frames, the pictures after a GOP's last sampled one are not decoded.

Why: phones and many head cameras write H.264 / HEVC of I- and P-pictures only, where every picture is a
reference and nothing can be skipped by type (:mod:`indexing.nal`). Yet a picture is needed only to decode a
later *sampled* one of its GOP: after the last picture a bin takes in a GOP, the pictures up to the next IDR
picture (which refers to nothing before it) serve nobody. With a keyframe a second at 30 fps and a frame kept
every 16, about a quarter of the pictures are such tails, and a GOP no bin falls in is not decoded at all.

How: the packets of one GOP are read ahead (demuxing costs nothing beside decoding) until the next IDR packet
shows where the GOP ends; then the GOP's packets up to its last sampled picture go to the decoder and the rest
are reported as skipped (whole, for the damage accounting). Only where decode order is presentation order (no
B-frames), every GOP starts at an IDR picture, and a GOP's packets fit in ``LOOKAHEAD_PACKETS``; a packet out of
order ends the look-ahead for the file. The pictures decoded are bit-identical to a full decode's, and so is every
bin: a dropped picture is never the one on screen at a sampled time. The last GOP of a segment is decoded whole
(bins after the last picture take it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from indexing.nal import NalReader

LOOKAHEAD_PACKETS = 600
"""A GOP longer than this (20 s at 30 fps: screen recordings, some action cameras' long GOPs) is decoded whole
from there on, so read-ahead memory stays bounded (600 packets of 1080p: ~30 MB) ..."""
LOOKAHEAD_BYTES = 64 * 2**20
"""... and so is a GOP of more bytes than this (4K at a high bit rate)."""
EPS = 1e-6


class GopTails:
    """Decides, packet by packet, what a segment's decoder must see (see the module docstring)."""

    def __init__(self, nal: NalReader, sample_times: np.ndarray, time_of: Callable[[Any], float | None]) -> None:
        self.nal = nal
        self.times = np.asarray(sample_times, dtype=np.float64)
        self.time_of = time_of
        self.active = True
        self._last_pts: float | None = None

    def packets(self, demuxed: Iterable) -> Iterator[tuple[Any, bool]]:
        """``(packet, decode)`` in demux order; ``decode`` False for a GOP tail nothing sampled needs."""
        gop: list = []
        held = 0
        for packet in demuxed:
            t = self.time_of(packet) if packet.size else None
            if self.active and t is not None:
                if self._last_pts is not None and t < self._last_pts - EPS:  # reordering after all: stop here
                    self.active = False
                self._last_pts = t
            if not self.active or t is None:
                yield from ((p, True) for p in gop)
                gop, held = [], 0
                yield packet, True
                continue
            if gop and self.nal.is_idr(memoryview(packet)):
                yield from self._decide(gop, t)
                gop, held = [], 0
            elif not gop and not self.nal.is_idr(memoryview(packet)):
                yield packet, True  # before the first IDR picture: no GOP to read ahead in
                continue
            gop.append(packet)
            held += packet.size
            if len(gop) > LOOKAHEAD_PACKETS or held > LOOKAHEAD_BYTES:
                yield from ((p, True) for p in gop)
                gop, held = [], 0
        yield from ((p, True) for p in gop)  # the last GOP: decoded whole

    def _decide(self, gop: list, next_start: float) -> Iterator[tuple[Any, bool]]:
        start = self.time_of(gop[0])
        assert start is not None  # only timed packets are read ahead
        before_next = int(np.searchsorted(self.times, next_start - EPS, side="left"))  # sample times are sorted
        last = float(self.times[before_next - 1]) if before_next else -np.inf
        if last < start - EPS:  # no sample inside this GOP
            last = -np.inf
        for packet in gop:
            t = self.time_of(packet)
            yield packet, t is not None and t <= last + EPS
