"""Turning an event script into frames, with numpy only.

Everything static is drawn once per frame size (:class:`SceneAssets`, from the painters of
:mod:`training.synthworld.painters`): a wide panorama per room, a close-up per place (for closable places the
open interior plus the closed door/front as a separate layer), and object, hand and thumb sprites at quantised
sizes. A frame is then a crop of one of those, a few sprite pastes and, in transitions, one blend -- a fraction
of a millisecond, so video encoding dominates generation time.

The camera never holds perfectly still: a slow hand-held shake moves every view, room views pan slowly, and
walking adds a step bob, so neighbouring feature bins differ as they do in real head-camera video.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from training.synthworld.catalog import House, Place, Room
from training.synthworld.painters import (
    CLOSEUP_PAINTERS,
    HAND_PAINTERS,
    OBJECT_PAINTERS,
    PANORAMA_PAINTERS,
    ROOM_PAINTERS,
    _fallback,
    _room_shell,
    smoothstep,
)
from training.synthworld.script import Event
from training.synthworld.shapes import Canvas, paste

HOLD_POSITION = (0.5, 0.62)
HOLD_SIZE = 0.68  # side of a held object's box, frame widths
MARGIN_FRACTION = 0.06  # camera shake room around every view
PICK_PHASES = (0.25, 0.3, 0.6)  # fractions of a pick: reach ends, grasp ends, lift ends (then held up)
PUT_PHASES = (0.4, 0.7, 0.75)  # fractions of a put: held up until, lowered by, hand withdraws from


class SceneAssets:
    """Everything static about the house at one frame size, drawn once and shared by every video."""

    def __init__(self, house: House, size: int) -> None:
        if size < 32:
            raise ValueError(f"frames must be at least 32 px, got {size}")
        self.house = house
        self.size = size
        self.margin = max(2, int(round(MARGIN_FRACTION * size)))
        self.pano_px = int(round(house.panorama_width * size))
        self.panoramas = {r.name: self._panorama(r) for r in house.rooms}
        self.closeups: dict[str, np.ndarray] = {}
        self.doors: dict[str, np.ndarray] = {}
        for p in house.places:
            self._closeup(p)
        self._sprites: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def _panorama(self, room: Room) -> np.ndarray:
        m, s = self.margin, self.size
        c = Canvas(s + 2 * m, self.pano_px + 2 * m, s, m)
        _room_shell(c, room, self.house.panorama_width)
        ROOM_PAINTERS.get(room.name, lambda *a: None)(c, room, self.house.panorama_width)
        for p in self.house.places_in(room.name):
            PANORAMA_PAINTERS[p.name](c, p.pano_x)
        return c.rgb

    def _closeup(self, place: Place) -> None:
        m, s = self.margin, self.size
        room = self.house.room(place.room)
        c = Canvas(s + 2 * m, s + 2 * m, s, m)
        door_painter = CLOSEUP_PAINTERS[place.name](c, room)
        self.closeups[place.name] = c.rgb
        if place.closable:
            if door_painter is None:
                raise ValueError(f"closable place {place.name!r} has no door layer")
            d = Canvas(s + 2 * m, s + 2 * m, s, m)
            door_painter(d)
            self.doors[place.name] = d.rgb

    def sprite(self, name: str, size: float) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, alpha) of an object or hand part whose box is ``size`` frame widths (quantised to 2 px)."""
        px = max(4, 2 * int(round(size * self.size / 2)))
        key = (name, px)
        hit = self._sprites.get(key)
        if hit is None:
            c = Canvas(px, px, px, 0, with_alpha=True)
            if name in HAND_PAINTERS:
                HAND_PAINTERS[name](c, None)
            else:
                colour = self.house.thing(name).colour
                OBJECT_PAINTERS.get(name, _fallback)(c, colour)
            assert c.alpha is not None  # a canvas made with_alpha tracks it
            hit = self._sprites[key] = (c.rgb, c.alpha)
        return hit

    def draw(self, out: np.ndarray, name: str, cx: float, cy: float, size: float, dx: int = 0, dy: int = 0) -> None:
        """Paste a sprite centred at frame-unit (cx, cy), shifted by (-dx, -dy) pixels of camera shake."""
        rgb, alpha = self.sprite(name, size)
        px = rgb.shape[0]
        left = int(round(cx * self.size - px / 2)) - dx
        top = int(round(cy * self.size - px / 2)) - dy
        paste(out, rgb, alpha, left, top)


@dataclass(frozen=True)
class CameraMotion:
    """How the head camera moves (a world style's): shake amplitude (at most 1, the frame margin), the period of
    a slow pan across a room, and the walking bob's frequency."""

    shake: float = 1.0
    pan_period_s: float = 23.0
    step_hz: float = 1.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.shake <= 1.0 or self.pan_period_s <= 0 or self.step_hz <= 0:
            raise ValueError(f"camera motion out of range: {self}")


class VideoRenderer:
    """Frames of one video: the event script plus a seeded camera motion."""

    def __init__(
        self, assets: SceneAssets, events: list[Event], fps: float, motion_seed: int, motion: CameraMotion | None = None
    ) -> None:
        self.a = assets
        self.events = events
        self.fps = fps
        self.motion = motion or CameraMotion()
        rng = np.random.default_rng(motion_seed)
        self.phases = rng.uniform(0, 2 * math.pi, 6)
        self.kinds = {
            "walk": self._walk,
            "look_around": self._look_around,
            "approach": self._approach,
            "leave": self._leave,
            "look": self._look,
            "open": self._open,
            "close": self._close,
            "pick": self._pick,
            "put": self._put,
        }

    # ------------------------------------------------------------------ camera
    def shake(self, t: float, walking: bool = False) -> tuple[int, int]:
        m = self.a.margin
        p = self.phases
        dx = 0.55 * math.sin(2 * math.pi * 0.21 * t + p[0]) + 0.3 * math.sin(2 * math.pi * 0.67 * t + p[1])
        dy = 0.55 * math.sin(2 * math.pi * 0.17 * t + p[2]) + 0.3 * math.sin(2 * math.pi * 0.73 * t + p[3])
        dx, dy = self.motion.shake * dx, self.motion.shake * dy
        if walking:
            dy = 0.4 * dy + 0.55 * math.sin(2 * math.pi * self.motion.step_hz * t + p[4])
        return int(round(dx * m)), int(round(dy * m))

    def pan(self, t: float) -> int:
        span = self.a.pano_px - self.a.size
        phase = 2 * math.pi * t / self.motion.pan_period_s + self.phases[5]
        return int(round(span * (0.5 + 0.5 * math.sin(phase))))

    # ------------------------------------------------------------------ views
    def room_view(self, room: str, t: float, walking: bool = False, extra_pan: int = 0) -> np.ndarray:
        s, m = self.a.size, self.a.margin
        dx, dy = self.shake(t, walking)
        x0 = min(max(self.pan(t) + extra_pan, 0), self.a.pano_px - s) + m + dx
        return self.a.panoramas[room][m + dy : m + dy + s, x0 : x0 + s].copy()

    def closeup(self, place: str, contents, openness: float, t: float, skip: str | None = None) -> np.ndarray:
        a = self.a
        s, m = a.size, a.margin
        dx, dy = self.shake(t)
        out = a.closeups[place][m + dy : m + dy + s, m + dx : m + dx + s].copy()
        spec = a.house.place(place)
        for k, obj in contents:
            if obj != skip:
                sx, sy = spec.slots[k]
                a.draw(out, obj, sx, sy, spec.slot_size, dx, dy)
        if spec.closable and openness < 1.0:
            self._door(out, place, spec.door, openness, dx, dy)
        return out

    def _door(self, out: np.ndarray, place: str, kind: str, f: float, dx: int, dy: int) -> None:
        a = self.a
        s, m = a.size, a.margin
        door = a.doors[place]
        full = door.shape[0]
        rows = np.arange(s) + m + dy
        cols = np.arange(s) + m + dx
        if kind == "drawer":  # the front slides down and out of view
            shift = int(round(f * 1.15 * full))
            keep = rows >= shift
            if keep.any():
                out[keep] = door[rows[keep] - shift][:, cols]
            return
        if kind == "hinge":  # one door swinging open towards the left
            spans = [(0.0, 1.0, 0.0, (1.0 - f))]
        else:  # double doors opening from the middle
            half = (1.0 - f) * 0.5
            spans = [(0.0, 0.5, 0.0, half), (0.5, 1.0, 1.0 - half, 1.0)]
        for src0, src1, dst0, dst1 in spans:
            lo, hi = dst0 * full, dst1 * full
            if hi - lo < 1:
                continue
            sel = (cols >= lo) & (cols < hi)
            if not sel.any():
                continue
            src = (src0 * full + (cols[sel] - lo) * (src1 - src0) * full / (hi - lo)).astype(int)
            out[:, sel] = door[rows][:, np.minimum(src, full - 1)]

    def holding(self, out: np.ndarray, obj: str, cx: float, cy: float, size: float, bob: int = 0) -> None:
        """The wearer's hand holding ``obj`` centred at (cx, cy): palm below, object, thumb over it."""
        a = self.a
        a.draw(out, "holding_hand", cx, cy + 0.52 * size, 1.05 * size, 0, bob)
        a.draw(out, obj, cx, cy, size, 0, bob)
        a.draw(out, "thumb", cx - 0.3 * size, cy + 0.3 * size, 0.32 * size, 0, bob)

    def held_overlay(self, out: np.ndarray, obj: str | None, t: float, walking: bool = False) -> np.ndarray:
        if obj:
            bob = int(round(0.35 * self.a.margin * math.sin(2 * math.pi * (1.8 if walking else 0.3) * t)))
            self.holding(out, obj, HOLD_POSITION[0], HOLD_POSITION[1], HOLD_SIZE, bob)
        return out

    @staticmethod
    def blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        """(1 - w) a + w b in integer arithmetic."""
        k = int(round(min(max(w, 0.0), 1.0) * 256))
        return ((a.astype(np.uint16) * (256 - k) + b.astype(np.uint16) * k) >> 8).astype(np.uint8)

    def _state_openness(self, ev: Event) -> float:
        return 1.0 if ev.is_open or not self.a.house.place(ev.place_in_view).closable else 0.0

    # ------------------------------------------------------------------ one renderer per event kind
    def _walk(self, ev: Event, u: float, t: float) -> np.ndarray:
        s = self.a.size
        if u < 0.35 or ev.from_room is None:
            out = self.room_view(ev.from_room or ev.room, t, walking=True)
        elif u >= 0.65:
            out = self.room_view(ev.room, t, walking=True)
        else:  # turning through the doorway: the old room slides out, the new one in
            k = int(round(smoothstep((u - 0.35) / 0.3) * s))
            left = self.room_view(ev.from_room, t, walking=True)
            right = self.room_view(ev.room, t, walking=True)
            out = np.concatenate([left[:, k:], right[:, :k]], axis=1)
            edge = s - k
            out[:, max(0, edge - 2) : edge + 2] = (60, 46, 36)
        return self.held_overlay(out, ev.held, t, walking=True)

    def _look_around(self, ev: Event, u: float, t: float) -> np.ndarray:
        return self.held_overlay(self.room_view(ev.room, t), ev.held, t)

    def _approach(self, ev: Event, u: float, t: float) -> np.ndarray:
        room = self.held_overlay(self.room_view(ev.room, t, walking=True), ev.held, t)
        close = self.held_overlay(self.closeup(ev.place_in_view, ev.contents, self._state_openness(ev), t), ev.held, t)
        return self.blend(room, close, smoothstep(u / 0.85))

    def _leave(self, ev: Event, u: float, t: float) -> np.ndarray:
        room = self.held_overlay(self.room_view(ev.room, t), ev.held, t)
        close = self.held_overlay(self.closeup(ev.place_in_view, ev.contents, self._state_openness(ev), t), ev.held, t)
        return self.blend(close, room, smoothstep(u))

    def _look(self, ev: Event, u: float, t: float) -> np.ndarray:
        out = self.closeup(ev.place_in_view, ev.contents, self._state_openness(ev), t)
        return self.held_overlay(out, ev.held, t)

    def _open(self, ev: Event, u: float, t: float) -> np.ndarray:
        out = self.closeup(ev.place_in_view, ev.contents, smoothstep((u - 0.1) / 0.8), t)
        return self.held_overlay(out, ev.held, t)

    def _close(self, ev: Event, u: float, t: float) -> np.ndarray:
        out = self.closeup(ev.place_in_view, ev.contents, 1.0 - smoothstep((u - 0.1) / 0.8), t)
        return self.held_overlay(out, ev.held, t)

    def _reach(self, out: np.ndarray, sx: float, sy: float, w: float) -> None:
        """An open hand between the bottom of the frame (w=0) and a slot (w=1)."""
        cx = 0.5 + (sx - 0.5) * w
        cy = 1.25 + (sy + 0.12 - 1.25) * w
        self.a.draw(out, "open_hand", cx, cy, 0.5 - 0.12 * w)

    def _carry_between(self, out: np.ndarray, obj: str, sx: float, sy: float, slot_size: float, w: float) -> None:
        """The holding hand between a slot (w=0) and the hold position (w=1)."""
        hx, hy = HOLD_POSITION
        size = slot_size + (HOLD_SIZE - slot_size) * w
        self.holding(out, obj, sx + (hx - sx) * w, sy + (hy - sy) * w, size)

    def _pick(self, ev: Event, u: float, t: float) -> np.ndarray:
        """Reach, grasp, lift -- then hold the object up, big, over the place it came from."""
        spec = self.a.house.place(ev.place_in_view)
        sx, sy = spec.slots[ev.slot_used]
        reach, grasp, lift = PICK_PHASES
        if u < reach:
            out = self.closeup(ev.place_in_view, ev.contents, 1.0, t)
            self._reach(out, sx, sy, smoothstep(u / reach))
        else:
            out = self.closeup(ev.place_in_view, ev.contents, 1.0, t, skip=ev.moved_object)
            self._carry_between(out, ev.moved_object, sx, sy, spec.slot_size, smoothstep((u - grasp) / (lift - grasp)))
        return out

    def _put(self, ev: Event, u: float, t: float) -> np.ndarray:
        """Hold the object up, big, over the place -- then lower it into its slot, let go and withdraw."""
        spec = self.a.house.place(ev.place_in_view)
        sx, sy = spec.slots[ev.slot_used]
        hold, lower, release = PUT_PHASES
        if u < lower:
            out = self.closeup(ev.place_in_view, ev.contents, 1.0, t)
            w = 1.0 - smoothstep((u - hold) / (lower - hold))
            self._carry_between(out, ev.moved_object, sx, sy, spec.slot_size, w)
        else:
            out = self.closeup(ev.place_in_view, tuple(ev.contents) + ((ev.slot_used, ev.moved_object),), 1.0, t)
            self._reach(out, sx, sy, 1.0 - smoothstep((u - release) / (1.0 - release)))
        return out

    # ------------------------------------------------------------------ frames
    def frame_at(self, t: float, event: Event | None = None) -> np.ndarray:
        ev = event or self.event_at(t)
        u = (t - ev.start) / max(ev.end - ev.start, 1e-6)
        return self.kinds[ev.kind](ev, u, t)

    def event_at(self, t: float) -> Event:
        lo, hi = 0, len(self.events) - 1
        while lo < hi:  # last event starting at or before t
            mid = (lo + hi + 1) // 2
            if self.events[mid].start <= t + 1e-9:
                lo = mid
            else:
                hi = mid - 1
        return self.events[lo]

    def frames(self, n_frames: int) -> Iterator[np.ndarray]:
        k = 0
        for i in range(n_frames):
            t = i / self.fps
            while k + 1 < len(self.events) and self.events[k + 1].start <= t + 1e-9:
                k += 1
            yield self.frame_at(t, self.events[k])
