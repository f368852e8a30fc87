"""Every tunable of decoding, damage detection and the library, with its default, in one place.

Nothing here is stored in a library: these are how *this process* decodes and writes. What a library is made
of (grid rate, encoder, index type) is recorded in the library itself when it is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BACKENDS = ("pyav", "decord")
SKIP_MIN_FPS = 20.0
SKIP_MIN_SPACING_FRAMES = 8.0
HARDWARE_DEVICES = ("cuda", "vaapi", "qsv", "videotoolbox", "d3d11va", "d3d12va", "dxva2", "vulkan", "drm", "amf")
"""FFmpeg's hardware device types a decoder may be asked for (which ones work depends on its build)."""


@dataclass(frozen=True)
class DamagePolicy:
    """When a decodable file counts as damaged and is refused rather than silently indexed.

    A damaged frame is a packet that produced no picture (the decoder rejected it or dropped it) or a picture
    the decoder flagged as corrupt. A short glitch in a long recording is tolerated (and logged); anything
    larger means the features would describe garbage, so the file is refused.
    """

    max_damaged_fraction: float = 0.005
    """Refuse when more than this share of the frames is damaged (0.5 %: any damage in a video under
    200 frames, up to 9 s of glitches in an hour at 30 fps)."""
    max_missing_s: float = 1.0
    max_missing_fraction: float = 0.02
    """Refuse when decoding ends more than max(max_missing_s, max_missing_fraction x duration) before the
    duration the file declares (a truncated download or copy)."""
    max_missing_frames_fraction: float = 0.02
    """Refuse when fewer frames decode than the count the header declares, by more than this share (and two
    frames): catches truncation in containers whose declared duration is itself re-estimated (AVI)."""


def default_decode_threads() -> int:
    return 0  # FFmpeg picks (one thread per core, frame threading)


@dataclass(frozen=True)
class DecodeConfig:
    """How frames are decoded: in child processes, watched, in bounded batches."""

    backends: tuple[str, ...] = DEFAULT_BACKENDS
    """Tried in order; the next is used only when one *fails* (crash, hang, exception). A damaged or invalid
    file is refused at once. Names are registered backends or ``module:attribute`` import paths."""
    batch_frames: int | None = None
    """Frames per batch sent from a decoder child (None: 32 on CPU, 128 when the encoder is on CUDA).
    With the pipe's back-pressure this bounds memory: about two batches per child are ever alive."""
    workers: int | None = None
    """Decoder children that each decode one time segment of a video, in parallel. None picks from the
    machine: 1 with 4 cores or fewer (measured: on 2 cores a second decoder only competes with the encoder),
    else cores // 4, at most 8 (a GPU encoder needs several decoders to be fed; see bench/README.md)."""
    min_segment_s: float = 120.0
    """A video is split into at most duration / min_segment_s segments: each seek costs a GOP of decoding."""
    threads: int = field(default_factory=default_decode_threads)
    """FFmpeg threads per decoder child (0: FFmpeg's choice)."""
    stall_timeout_s: float = 60.0
    """A child that sends nothing (no batch, no heartbeat) for this long is considered hung and killed."""
    probe_timeout_s: float = 60.0
    """The probe child (open the container, decode two frames) must answer within this many seconds."""
    heartbeat_s: float = 1.0
    start_method: str = "forkserver"
    """multiprocessing start method for decoder children; never ``fork`` (torch may be loaded)."""
    damage: DamagePolicy = field(default_factory=DamagePolicy)
    skip_non_reference: bool = True
    """Let FFmpeg skip the H.264 / HEVC pictures no other picture refers to (most B-frames) when the frames kept
    are sparse: at least ``SKIP_MIN_FPS`` and no more than one frame kept in ``SKIP_MIN_SPACING_FRAMES``. The
    pictures still decoded are bit-identical, so features do not change; a bin may take the picture a few frames
    before the one on screen at its time (at most 3 at 30 fps with camera-style B-frames: 0.1 s of a 0.53 s bin).
    Decoding a 1080p30 file with B-frames takes ~40 % less time (bench/README.md, indexing)."""
    skip_gop_tails: bool = True
    """In recordings without B-frames (most phones), do not decode the pictures after a GOP's last sampled one
    (``indexing.gop_tails``): no sampled picture needs them, so every bin stays bit-identical."""
    hardware: str = "auto"
    """Where video is decoded: "auto" -- on the GPU's video decoder (NVDEC, "cuda") when the encoder runs on a
    CUDA GPU, else in software; "none" -- always in software; or an FFmpeg device type (``HARDWARE_DEVICES``).
    A device that cannot be opened, or does not decode the codec, leaves the decoding to software (logged)."""
    still_frame_diff: float = 0.0
    """A sampled frame whose 1/8-scale grey thumbnail differs from the last *encoded* frame's by less than this
    mean absolute difference (0-255 levels) reuses that frame's feature instead of being encoded: first-person
    video has long still stretches (``indexing.extract``). 0 = encode every frame."""

    def __post_init__(self) -> None:
        if self.hardware not in ("auto", "none", *HARDWARE_DEVICES):
            raise ValueError(
                f"decode hardware {self.hardware!r} is not one of: auto, none, {', '.join(HARDWARE_DEVICES)}"
            )

    def resolved_hardware(self, cuda: bool) -> str | None:
        """The device type to decode on (None: software) when the encoder is (``cuda``) or is not on a GPU."""
        if self.hardware == "auto":
            return "cuda" if cuda else None
        return None if self.hardware == "none" else self.hardware

    def skips_non_reference(self, fps: float, times: np.ndarray) -> bool:
        """Whether a video at ``fps`` sampled at ``times`` (seconds) may skip non-reference pictures."""
        if not self.skip_non_reference or fps < SKIP_MIN_FPS or len(times) < 2:
            return False
        spacing = float(np.median(np.diff(times)))
        return spacing * fps >= SKIP_MIN_SPACING_FRAMES

    def resolved_workers(self) -> int:
        if self.workers is not None:
            return max(1, int(self.workers))
        cores = os.cpu_count() or 1
        return 1 if cores <= 4 else min(8, cores // 4)

    def resolved_batch_frames(self, cuda: bool) -> int:
        if self.batch_frames is not None:
            return max(1, int(self.batch_frames))
        return 128 if cuda else 32


@dataclass(frozen=True)
class SearchTuning:
    """Search-time knobs of approximate faiss indexes; exact indexes ignore them."""

    nprobe: int = 32
    """Inverted lists visited per query of an IVF index (only when a library's factory names one by hand; the
    ``auto`` policy no longer picks IVF: on question vectors as far from frames as CLIP's it found the best video
    only half of the time, see ``bench/README.md``, query latency)."""
    ef_search: int = 128
    """Candidate list size of HNSW graph search."""
    single_query_threads: int | None = 1
    """faiss threads for a search of a single question (None: leave faiss's setting alone)."""


@dataclass(frozen=True)
class LibraryConfig:
    """How this process uses a library directory."""

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    index_factory: str = "auto"
    """faiss factory string (inner product) for the frame index of a *new* library, e.g. ``Flat`` (exact),
    ``SQfp16`` (exact-ish, half the memory), ``IVF4096,Flat`` (approximate, trained on rebuild) or
    ``Seg16,SQfp16`` (one vector per 16 bins, frames rescored exactly), or ``auto``: exact (``Flat``) over
    frames while the library is small, segment summaries once a scan of every frame gets slow (see
    :func:`indexing.vectors.effective_factory`; the index is rebuilt once, when the choice changes).
    Recorded in the library; changing it for an existing library is a rebuild (not offered yet). Libraries
    made before ``auto`` existed keep their ``Flat``."""
    lock_timeout_s: float = 30.0
    """How long a writer waits for another writer's lock before giving up with LibraryBusy. Writers hold
    the lock only while registering a job and committing it (seconds), never while decoding."""
    faiss_gpu: bool = True
    """Search on a GPU copy of the index when the installed faiss has GPU support and a GPU is present."""
    search: SearchTuning = field(default_factory=SearchTuning)
    """How approximate indexes search (not stored in the library: each process may trade speed for recall)."""
