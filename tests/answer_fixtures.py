"""Controlled embeddings and time-coded videos for the answering and clip tests.

A tiny random CLIP cannot understand words, so answering is tested with :class:`ColorEncoder`: a real
``FrameEncoder`` (the library indexes real video files with it) whose frame embedding is the frame's colour
cast, and whose text embedding maps a few object words to those colours ("keys" -> red, "cup" -> green,
"phone" -> blue). A red moment in a video is then, by construction, where the keys are.

:func:`timecode_frame` writes the frame index in binary as black/white columns, so any decoded frame says
exactly which source frame it is, whatever the compression.
"""

from __future__ import annotations

import numpy as np
import torch

from models.clip_encoder import EncoderSpec

COLOR_RGB = {"red": (230, 40, 40), "green": (40, 210, 40), "blue": (40, 40, 230), "pink": (175, 105, 105)}
WORD_AXIS = {"keys": 0, "key": 0, "cup": 1, "cups": 1, "phone": 2, "phones": 2}
DIM = 8
NEUTRAL_AXIS = 5
"""Text without a known word points here, orthogonal to every frame embedding."""


class ColorEncoder:
    """Frames -> their colour cast (red, green, blue axes) plus a constant 'gray' axis; words -> colours."""

    key = "test-color/v1"
    dim = DIM
    spec = EncoderSpec("test-color", "none")
    device = torch.device("cpu")

    def short_side(self) -> int:
        return 32

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        m = np.asarray(frames, np.float32).mean(axis=(1, 2)) / 255.0  # [N, 3]
        cast = np.clip(m - m.mean(axis=1, keepdims=True), 0.0, None) * 4.0
        out = np.zeros((len(m), DIM), np.float32)
        out[:, :3] = cast
        out[:, 3] = 0.5
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.astype(np.float16)

    def encode_text(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                if word in WORD_AXIS:
                    out[i, WORD_AXIS[word]] += 1.0
            if not out[i].any():
                out[i, NEUTRAL_AXIS] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def colored_frames(spans: dict[str, list[tuple[float, float]]], fps: float):
    """A ``frame(i, w, h)`` for ``tests.media.write_video``: gray, except a colour during its spans."""

    def frame(i: int, width: int, height: int) -> np.ndarray:
        t = i / fps
        img = np.full((height, width, 3), 128, np.uint8)
        for color, ranges in spans.items():
            if any(a <= t < b for a, b in ranges):
                img[:] = COLOR_RGB[color]
        img[:4, :4] = (i * 37) % 256  # no two frames alike
        return img

    return frame


TIMECODE_BITS = 10


def timecode_frame(i: int, width: int, height: int) -> np.ndarray:
    """Frame ``i`` as TIMECODE_BITS vertical stripes, white for a 1 bit (most significant bit on the left)."""
    img = np.zeros((height, width, 3), np.uint8)
    step = width // TIMECODE_BITS
    for b in range(TIMECODE_BITS):
        if (i >> (TIMECODE_BITS - 1 - b)) & 1:
            img[:, b * step : (b + 1) * step] = 255
    return img


def read_timecode(rgb: np.ndarray) -> int:
    """The frame index a (decoded, possibly resized) :func:`timecode_frame` shows."""
    h, w = rgb.shape[:2]
    row = rgb[h // 2, :, :].astype(np.float32).mean(axis=1)
    step = w / TIMECODE_BITS
    value = 0
    for b in range(TIMECODE_BITS):
        centre = int((b + 0.5) * step)
        value = (value << 1) | int(row[centre] > 127)
    return value
