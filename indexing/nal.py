"""Which compressed H.264 / HEVC pictures no other picture refers to, read from their NAL unit headers.

Why: indexing keeps one frame in sixteen of a 30 fps recording, yet a decoder must decode every picture that a
kept one is predicted from. Pictures that nothing refers to (most B-frames of camera and x264 recordings) can be
skipped outright (FFmpeg's ``skip_frame = NONREF``); the pictures still decoded come out bit-identical, since
nothing they depend on was skipped. The decoder then emits fewer frames than the file has packets, so the
damage accounting (every packet should give a picture) must know which packets were skipped on purpose: that is
what this module reads, from a byte or two per packet, without decoding anything.

The rule is FFmpeg's own: an H.264 picture is skipped when its slices' ``nal_ref_idc`` is 0; an HEVC picture
when its slices are of a sub-layer non-reference type (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N10/12/14:
the even types below 16). Such an HEVC picture may still be referred to by pictures of a *higher* temporal
sub-layer, so HEVC is skipped only where its ``hvcC`` says the stream has one temporal layer (x265's default
and most cameras'); an HEVC stream without ``hvcC`` (MPEG-TS) is decoded whole. Packets come length-prefixed
(MP4/MOV/MKV: the prefix size is in the codec's ``avcC`` / ``hvcC`` extradata) or, for H.264, with Annex B start
codes (MPEG-TS, raw streams).
"""

from __future__ import annotations

from dataclasses import dataclass

SKIPPABLE_CODECS = ("h264", "hevc")
_H264_SLICE_TYPES = range(1, 6)  # coded slice (1-4: partitions included) and IDR slice (5)
_HEVC_VCL_TYPES = range(0, 32)
_HEVC_NON_REFERENCE = frozenset({0, 2, 4, 6, 8, 10, 12, 14})
_H264_IDR = (5,)
_HEVC_IDR = (19, 20)  # IDR_W_RADL, IDR_N_LP (not CRA: its leading pictures may refer to the GOP before)
_START_CODE = b"\x00\x00\x01"


@dataclass(frozen=True)
class NalReader:
    """Reads one codec's packets; ``length_size`` is None for Annex B streams."""

    codec: str
    length_size: int | None

    @classmethod
    def for_stream(cls, codec: str, extradata: bytes | None) -> NalReader | None:
        """The reader for a stream, or None when its non-reference pictures cannot be told apart here."""
        if codec not in SKIPPABLE_CODECS:
            return None
        if codec == "hevc" and not _one_temporal_layer(extradata):
            return None
        return cls(codec, _length_size(codec, extradata))

    def is_non_reference(self, data: bytes | memoryview) -> bool:
        """True when the packet's picture is one no other picture is predicted from. A packet that cannot be
        read (no slice found, a prefix running past the end) counts as a reference: it is then decoded, and
        whatever is wrong with it is seen by the decoder and counted as damage."""
        return self.slice_kinds(data) == {False}

    def slice_kinds(self, data: bytes | memoryview) -> set[bool]:
        """Whether each slice of the packet is a reference (True) or not (False): ``{True, False}`` is a packet
        whose pictures differ, such as an interlaced frame of a reference field and a non-reference one -- the
        decoder would skip half of it, so the caller stops skipping."""
        if self.codec == "h264":
            return {(header >> 5) & 0x3 != 0 for _, header in self._slices(data)}
        return {kind not in _HEVC_NON_REFERENCE for kind, _ in self._slices(data)}

    def is_idr(self, data: bytes | memoryview) -> bool:
        """True when the packet holds an IDR picture: nothing after it refers to anything before it."""
        idr = _H264_IDR if self.codec == "h264" else _HEVC_IDR
        return any(kind in idr for kind, _ in self._slices(data))

    def _slices(self, data: bytes | memoryview):
        """``(NAL unit type, first header byte)`` of each slice NAL unit of the packet."""
        view = memoryview(data)
        for start in self._nal_starts(view):
            if start >= len(view):
                return
            header = view[start]
            if self.codec == "h264":
                if (header & 0x1F) in _H264_SLICE_TYPES:
                    yield header & 0x1F, header
            elif ((header >> 1) & 0x3F) in _HEVC_VCL_TYPES:
                yield (header >> 1) & 0x3F, header

    def _nal_starts(self, data: memoryview):
        """Offsets of each NAL unit's first header byte."""
        n = len(data)
        if self.length_size is None:
            raw = data.tobytes()
            pos = raw.find(_START_CODE)
            while pos >= 0:
                yield pos + 3
                pos = raw.find(_START_CODE, pos + 3)
            return
        pos = 0
        size = self.length_size
        while pos + size < n:
            length = int.from_bytes(data[pos : pos + size], "big")
            if length <= 0 or pos + size + length > n:
                return
            yield pos + size
            pos += size + length


def _one_temporal_layer(extradata: bytes | None) -> bool:
    """Whether an HEVC stream's ``hvcC`` declares exactly one temporal layer (``numTemporalLayers``, 0 meaning
    unknown)."""
    if not extradata or extradata[0] != 1 or len(extradata) < 23:
        return False
    return (extradata[21] >> 3) & 0x7 == 1


def _length_size(codec: str, extradata: bytes | None) -> int | None:
    """The NAL length-prefix size (1, 2 or 4 bytes) stored in ``avcC`` / ``hvcC``; None for Annex B."""
    if not extradata or extradata[0] != 1:
        return None
    if codec == "h264" and len(extradata) >= 5:
        return (extradata[4] & 0x3) + 1
    if codec == "hevc" and len(extradata) >= 23:
        return (extradata[21] & 0x3) + 1
    return None
