"""How a video decoded, and whether its damage is beyond the policy: the one place a decode's counts (packets,
pictures, skipped and corrupt frames, where decoding stopped) become "indexed" or a :class:`DamagedVideo`.

Why apart from the decoder: the counts come from several child processes (one per segment) and are judged once
all have finished, against what the container declares; the judging reads no video, and staging builds a report
of its own for a file its probe already found damaged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from indexing.backends import SegmentStats
from indexing.config import DamagePolicy
from indexing.errors import DamagedVideo
from indexing.probe import VideoInfo

logger = logging.getLogger(__name__)


@dataclass
class DecodeReport:
    """How a video decoded: which backend, how many frames, how much damage, how much memory children used."""

    backend: str
    workers: int
    frames: int = 0
    packets: int = 0
    corrupt: int = 0
    decode_errors: int = 0
    end_s: float | None = None
    first_damage_s: float | None = None
    damage_detectable: bool = True
    late_start: int = 0
    skipped: int = 0
    """Pictures no other refers to, skipped on purpose (whole; counted in ``frames``)."""
    hardware: str = ""
    """The hardware device type that decoded ("": software)."""
    child_peak_rss_kb: int = 0
    child_cpu_s: float = 0.0
    seconds: float = 0.0
    failed_backends: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> int:
        """Frames lost (packets without a picture) plus frames flagged corrupt."""
        return max(0, self.packets - self.frames) + self.corrupt

    @classmethod
    def combine(cls, backend: str, stats: list[SegmentStats]) -> DecodeReport:
        report = cls(backend=backend, workers=len(stats))
        for s in stats:
            report.frames += s.frames
            report.packets += s.packets
            report.corrupt += s.corrupt
            report.decode_errors += s.decode_errors
            report.late_start += s.late_start
            report.skipped += s.skipped
            report.hardware = report.hardware or s.hardware
            report.damage_detectable &= s.damage_detectable
            report.child_peak_rss_kb = max(report.child_peak_rss_kb, s.peak_rss_kb)
            report.child_cpu_s += s.cpu_s
            if s.first_damage_s is not None:
                report.first_damage_s = (
                    s.first_damage_s if report.first_damage_s is None else min(report.first_damage_s, s.first_damage_s)
                )
        if stats:
            report.end_s = stats[-1].end_s  # the last segment decodes to the end of the file
        return report


def assess_damage(path: str | Path, info: VideoInfo, report: DecodeReport, policy: DamagePolicy) -> None:
    """Raise :class:`DamagedVideo` when the decode shows truncation or corruption beyond the policy."""
    if info.duration_declared and report.end_s is not None:
        missing = info.duration - report.end_s
        if missing > max(policy.max_missing_s, policy.max_missing_fraction * info.duration):
            raise DamagedVideo(
                path,
                f"it looks truncated: decoding stops at {report.end_s:.1f} s of the {info.duration:.1f} s it declares",
            )
    if info.frame_count and report.frames:
        short = info.frame_count - report.frames
        if short > max(2, policy.max_missing_frames_fraction * info.frame_count):
            if _frames_never_stored(info, report, policy):
                # AVI (and some screen-capture / webcam exports) keep a slot for every frame period but store
                # no packet for a repeated picture: every packet decoded and the pictures reach the end, so
                # the file is whole; its grid follows the pictures' timestamps.
                logger.info(
                    "%s: %d of the %d frame slots the header declares hold a picture (repeated frames "
                    "are not stored); every packet decoded up to %.2f s",
                    Path(path).name,
                    report.frames,
                    info.frame_count,
                    report.end_s or 0.0,
                )
            else:
                failed = report.damaged + report.decode_errors
                seen = (
                    f"decoding stopped at {report.end_s or 0.0:.1f} s of {_declared_span(info):.1f} s, "
                    f"{report.frames} of the {info.frame_count} frames it declares"
                )
                if failed:
                    seen += f"; {failed} packets failed to decode"
                what = (
                    "it looks truncated"
                    if report.late_start or not _reaches_end(info, report, policy)
                    else "it is damaged"
                )
                raise DamagedVideo(path, f"{what}: {seen}")
    if report.damage_detectable and report.damaged:
        where = f" (first at {report.first_damage_s:.1f} s)" if report.first_damage_s is not None else ""
        total = max(report.frames, report.packets, 1)
        if report.damaged > policy.max_damaged_fraction * total:
            raise DamagedVideo(
                path, f"it is damaged: {report.damaged} of {total} frames are corrupt or could not be decoded{where}"
            )
        logger.warning(
            "%s: %d of %d frames damaged%s, within tolerance; indexed anyway",
            Path(path).name,
            report.damaged,
            total,
            where,
        )


def _declared_span(info: VideoInfo) -> float:
    """How long the declared frames last: the header's frame count at its rate (or the duration)."""
    if info.frame_count and info.fps and info.fps > 0:
        return max(info.duration, info.frame_count / info.fps)
    return info.duration


def _reaches_end(info: VideoInfo, report: DecodeReport, policy: DamagePolicy) -> bool:
    if report.end_s is None:
        return False
    span = _declared_span(info)
    slack = max(2.0 / max(info.fps or 1.0, 1.0), min(policy.max_missing_s, policy.max_missing_fraction * span))
    return span - report.end_s <= slack


def _frames_never_stored(info: VideoInfo, report: DecodeReport, policy: DamagePolicy) -> bool:
    """A frame count the pictures cannot reach because the container never stored those frames, told from a
    truncated or corrupt file: no packet failed, and the last picture ends where the declared frames end."""
    return (
        report.damaged == 0
        and report.decode_errors == 0
        and not report.late_start
        and _reaches_end(info, report, policy)
    )
