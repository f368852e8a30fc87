"""Vectorised numpy drawing in normalised coordinates: the synthetic world's only graphics library.

Shapes are described in units of the frame side (``0..1`` across a square frame) and rasterised at whatever
pixel size is asked for, so one description serves 64 px test frames and 256 px demo videos alike. Each shape
is evaluated only inside its bounding box, which keeps a full scene to well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

RGB = tuple[int, int, int]
Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(X, Y) coordinate grids (broadcastable, in frame units) -> colours shaped (..., 3)."""
Paint = RGB | Texture


class Canvas:
    """An RGB image whose pixel centres carry frame-unit coordinates; optionally tracks coverage (alpha)."""

    def __init__(
        self,
        height_px: int,
        width_px: int,
        scale: float,
        margin_px: int = 0,
        background: RGB = (0, 0, 0),
        with_alpha: bool = False,
    ) -> None:
        self.rgb = np.empty((height_px, width_px, 3), np.uint8)
        self.rgb[:] = background
        self.alpha = np.zeros((height_px, width_px), bool) if with_alpha else None
        self.scale = float(scale)
        self.margin = margin_px
        self.x = (np.arange(width_px) + 0.5 - margin_px) / self.scale
        self.y = (np.arange(height_px) + 0.5 - margin_px) / self.scale

    def _range(self, lo: float, hi: float, n: int) -> tuple[int, int]:
        i0 = max(0, int(math.floor(lo * self.scale + self.margin)))
        i1 = min(n, int(math.ceil(hi * self.scale + self.margin)))
        return i0, max(i0, i1)

    def paint(
        self, bbox: Sequence[float], inside: Callable[[np.ndarray, np.ndarray], np.ndarray], colour: Paint
    ) -> None:
        """Fill the pixels of ``bbox`` (x0, y0, x1, y1) for which ``inside(X, Y)`` holds."""
        h, w = self.rgb.shape[:2]
        j0, j1 = self._range(bbox[0], bbox[2], w)
        i0, i1 = self._range(bbox[1], bbox[3], h)
        if i0 >= i1 or j0 >= j1:
            return
        X = self.x[None, j0:j1]
        Y = self.y[i0:i1, None]
        mask = np.broadcast_to(inside(X, Y), (i1 - i0, j1 - j0))
        region = self.rgb[i0:i1, j0:j1]
        if callable(colour):
            values = np.broadcast_to(colour(X, Y), (i1 - i0, j1 - j0, 3))
            region[mask] = values[mask]
        else:
            region[mask] = colour
        if self.alpha is not None:
            self.alpha[i0:i1, j0:j1] |= mask

    # ------------------------------------------------------------------ primitives
    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: Paint) -> None:
        self.paint((x0, y0, x1, y1), lambda X, Y: (X >= x0) & (X < x1) & (Y >= y0) & (Y < y1), colour)

    def rounded_rect(self, x0: float, y0: float, x1: float, y1: float, r: float, colour: Paint) -> None:
        def inside(X, Y):
            dx = np.maximum(np.maximum(x0 + r - X, X - (x1 - r)), 0.0)
            dy = np.maximum(np.maximum(y0 + r - Y, Y - (y1 - r)), 0.0)
            return (X >= x0) & (X < x1) & (Y >= y0) & (Y < y1) & (dx * dx + dy * dy <= r * r)

        self.paint((x0, y0, x1, y1), inside, colour)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour: Paint) -> None:
        self.paint(
            (cx - rx, cy - ry, cx + rx, cy + ry),
            lambda X, Y: ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0,
            colour,
        )

    def ring(
        self, cx: float, cy: float, r_out: float, r_in: float, colour: Paint, y_from: float = -1e9, y_to: float = 1e9
    ) -> None:
        """An annulus, optionally cut to the rows ``y_from..y_to`` (handles, arcs)."""

        def inside(X, Y):
            d2 = (X - cx) ** 2 + (Y - cy) ** 2
            return (d2 <= r_out * r_out) & (d2 >= r_in * r_in) & (Y >= y_from) & (Y <= y_to)

        self.paint((cx - r_out, cy - r_out, cx + r_out, cy + r_out), inside, colour)

    def polygon(self, points: Sequence[tuple[float, float]], colour: Paint) -> None:
        """A convex polygon (any winding)."""
        pts = np.asarray(points, dtype=np.float64)
        area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
        sign = 1.0 if area >= 0 else -1.0
        edges = [(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]

        def inside(X, Y):
            ok = np.ones(np.broadcast_shapes(X.shape, Y.shape), bool)
            for (ax, ay), (bx, by) in edges:
                ok &= sign * ((bx - ax) * (Y - ay) - (by - ay) * (X - ax)) >= 0
            return ok

        self.paint((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), inside, colour)

    def capsule(self, p0: tuple[float, float], p1: tuple[float, float], r: float, colour: Paint) -> None:
        """A thick line with round ends: handles, blades, remote controls."""
        (ax, ay), (bx, by) = p0, p1
        vx, vy = bx - ax, by - ay
        length2 = max(vx * vx + vy * vy, 1e-12)

        def inside(X, Y):
            t = np.clip(((X - ax) * vx + (Y - ay) * vy) / length2, 0.0, 1.0)
            return (X - ax - t * vx) ** 2 + (Y - ay - t * vy) ** 2 <= r * r

        self.paint((min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r), inside, colour)


# ---------------------------------------------------------------------- textures
def checker(c1: RGB, c2: RGB, cell: float, x_off: float = 0.0) -> Texture:
    a, b = np.array(c1, np.uint8), np.array(c2, np.uint8)

    def tex(X, Y):
        even = ((np.floor((X + x_off) / cell) + np.floor(Y / cell)) % 2 == 0)[..., None]
        return np.where(even, a, b)

    return tex


def stripes(c1: RGB, c2: RGB, period: float, vertical: bool = False, duty: float = 0.85) -> Texture:
    a, b = np.array(c1, np.uint8), np.array(c2, np.uint8)

    def tex(X, Y):
        coord = X if vertical else Y
        return np.where(((coord / period) % 1.0 < duty)[..., None], a, b)

    return tex


def speckle(base: RGB, spread: int, cell: float = 0.02, seed: float = 0.0) -> Texture:
    """Granite, carpet and the like: a per-cell pseudo-random brightness offset, the same at every size."""
    b = np.array(base, np.float64)

    def tex(X, Y):
        gx, gy = np.floor(X / cell), np.floor(Y / cell)
        h = np.sin(gx * 12.9898 + gy * 78.233 + seed * 37.719) * 43758.5453
        offset = ((h - np.floor(h)) * 2.0 - 1.0) * spread
        return np.clip(b + offset[..., None], 0, 255).astype(np.uint8)

    return tex


def vertical_gradient(top: RGB, bottom: RGB, y0: float, y1: float) -> Texture:
    t_col, b_col = np.array(top, np.float64), np.array(bottom, np.float64)

    def tex(X, Y):
        t = np.clip((Y - y0) / max(y1 - y0, 1e-6), 0.0, 1.0)[..., None]
        return (t_col * (1 - t) + b_col * t).astype(np.uint8)

    return tex


def paste(out: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Copy a sprite's covered pixels into ``out`` at (left, top), clipped to ``out``."""
    h, w = rgb.shape[:2]
    H, W = out.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, W), min(top + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    sx0, sy0 = x0 - left, y0 - top
    a = alpha[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0), None]
    np.copyto(out[y0:y1, x0:x1], rgb[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)], where=a)
