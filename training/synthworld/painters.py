"""What the synthetic house looks like: painters for objects, hands, rooms (panoramas) and places (close-ups).

Pure drawing data on :class:`~training.synthworld.shapes.Canvas`, keyed by the names in
:mod:`training.synthworld.catalog`; :mod:`training.synthworld.render` draws each once per frame size and
composes frames from them. A new object or place is a painter here and an entry in its table.
"""

from __future__ import annotations

from collections.abc import Callable

from training.synthworld.catalog import Room
from training.synthworld.shapes import RGB, Canvas, checker, speckle, stripes, vertical_gradient


def _scaled(colour: RGB, factor: float) -> RGB:
    """A colour made lighter (factor > 1, at most 255) or darker."""
    r, g, b = (min(255, int(v * factor)) for v in colour)
    return r, g, b


SKIN = (232, 182, 146)
SKIN_DARK = (204, 150, 114)


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


# ====================================================================== object sprites (unit box)
def _keys(c: Canvas, col) -> None:
    c.ring(0.3, 0.3, 0.27, 0.1, col)
    c.rounded_rect(0.42, 0.2, 0.98, 0.42, 0.05, col)
    c.rect(0.6, 0.42, 0.7, 0.56, col)
    c.rect(0.78, 0.42, 0.88, 0.52, col)
    c.rounded_rect(0.08, 0.52, 0.62, 0.98, 0.08, col)  # a big fob in the same colour
    c.ellipse(0.35, 0.75, 0.1, 0.1, (120, 95, 0))


def _mug(c: Canvas, col) -> None:
    c.ring(0.76, 0.55, 0.22, 0.1, col)
    c.rounded_rect(0.06, 0.12, 0.74, 0.98, 0.06, col)
    c.ellipse(0.4, 0.16, 0.32, 0.06, (120, 10, 15))
    c.rect(0.1, 0.5, 0.7, 0.58, (250, 250, 250))


def _phone(c: Canvas, col) -> None:
    c.rounded_rect(0.16, 0.0, 0.84, 1.0, 0.08, col)
    c.rect(0.23, 0.08, 0.77, 0.86, (225, 236, 246))
    c.rect(0.28, 0.14, 0.72, 0.3, (120, 150, 180))
    c.ellipse(0.5, 0.93, 0.04, 0.03, (90, 90, 96))


def _wallet(c: Canvas, col) -> None:
    c.rounded_rect(0.02, 0.12, 0.98, 0.9, 0.06, col)
    c.polygon([(0.02, 0.12), (0.98, 0.12), (0.98, 0.4), (0.5, 0.56), (0.02, 0.4)], (170, 70, 0))
    c.ellipse(0.5, 0.52, 0.06, 0.06, (250, 235, 200))


def _scissors(c: Canvas, col) -> None:
    blade = (196, 198, 206)
    c.polygon([(0.4, 0.56), (0.52, 0.56), (0.64, 0.0)], blade)
    c.polygon([(0.48, 0.56), (0.6, 0.56), (0.36, 0.0)], blade)
    c.ellipse(0.28, 0.74, 0.26, 0.24, col)
    c.ellipse(0.72, 0.74, 0.26, 0.24, col)
    c.ellipse(0.28, 0.76, 0.09, 0.08, (250, 220, 245))
    c.ellipse(0.72, 0.76, 0.09, 0.08, (250, 220, 245))
    c.ellipse(0.5, 0.55, 0.06, 0.06, (80, 80, 86))


def _book(c: Canvas, col) -> None:
    c.rect(0.06, 0.04, 0.94, 0.96, col)
    c.rect(0.84, 0.07, 0.92, 0.94, (242, 240, 228))
    c.rect(0.06, 0.04, 0.14, 0.96, (10, 30, 140))
    c.rect(0.26, 0.22, 0.72, 0.34, (245, 245, 245))


def _bottle(c: Canvas, col) -> None:
    c.rect(0.38, 0.06, 0.62, 0.3, col)
    c.rect(0.36, 0.0, 0.64, 0.1, (245, 245, 245))
    c.ellipse(0.5, 0.38, 0.32, 0.14, col)
    c.rounded_rect(0.18, 0.36, 0.82, 1.0, 0.06, col)
    c.rect(0.18, 0.58, 0.82, 0.72, (245, 245, 245))


def _apple(c: Canvas, col) -> None:
    c.ellipse(0.36, 0.58, 0.33, 0.38, col)
    c.ellipse(0.64, 0.58, 0.33, 0.38, col)
    c.rect(0.47, 0.04, 0.53, 0.24, (100, 60, 20))
    c.ellipse(0.64, 0.12, 0.13, 0.06, (20, 110, 20))


def _remote(c: Canvas, col) -> None:
    c.capsule((0.22, 0.8), (0.78, 0.2), 0.22, col)
    for k in range(4):
        t = 0.24 + 0.16 * k
        x, y = 0.22 + (0.78 - 0.22) * t, 0.8 + (0.2 - 0.8) * t
        c.ellipse(x, y, 0.05, 0.05, (245, 245, 245))
    c.ellipse(0.7, 0.3, 0.06, 0.06, (230, 30, 30))


def _glasses(c: Canvas, col) -> None:
    c.ellipse(0.26, 0.56, 0.25, 0.24, col)
    c.ellipse(0.74, 0.56, 0.25, 0.24, col)
    c.ellipse(0.26, 0.56, 0.15, 0.14, (150, 232, 238))
    c.ellipse(0.74, 0.56, 0.15, 0.14, (150, 232, 238))
    c.rect(0.44, 0.44, 0.56, 0.54, col)
    c.capsule((0.04, 0.46), (0.04, 0.14), 0.05, col)
    c.capsule((0.96, 0.46), (0.96, 0.14), 0.05, col)


def _knife(c: Canvas, col) -> None:
    c.polygon([(0.02, 0.12), (0.2, 0.0), (0.58, 0.46), (0.44, 0.58)], (206, 210, 220))
    c.capsule((0.58, 0.58), (0.86, 0.86), 0.17, col)
    c.ellipse(0.66, 0.66, 0.035, 0.035, (250, 250, 250))
    c.ellipse(0.8, 0.8, 0.035, 0.035, (250, 250, 250))


def _bag(c: Canvas, col) -> None:
    c.ring(0.5, 0.34, 0.3, 0.19, col, y_to=0.36)
    c.polygon([(0.12, 0.32), (0.88, 0.32), (0.99, 0.99), (0.01, 0.99)], col)
    c.rect(0.08, 0.5, 0.92, 0.56, (226, 196, 136))
    c.rect(0.42, 0.46, 0.58, 0.62, (226, 196, 136))


OBJECT_PAINTERS: dict[str, Callable[[Canvas, tuple], None]] = {
    "keys": _keys,
    "mug": _mug,
    "phone": _phone,
    "wallet": _wallet,
    "scissors": _scissors,
    "book": _book,
    "bottle": _bottle,
    "apple": _apple,
    "remote": _remote,
    "glasses": _glasses,
    "knife": _knife,
    "bag": _bag,
}
"""One sprite painter per object name (unit box, y down); unknown objects get a disc in their colour."""


def _fallback(c: Canvas, col) -> None:
    c.ellipse(0.5, 0.5, 0.45, 0.45, col)


def _open_hand(c: Canvas, _col) -> None:
    c.rect(0.36, 0.55, 0.66, 1.0, SKIN_DARK)
    c.ellipse(0.5, 0.52, 0.22, 0.2, SKIN)
    for (x0, y0), (x1, y1) in (
        ((0.36, 0.42), (0.3, 0.14)),
        ((0.45, 0.36), (0.43, 0.05)),
        ((0.55, 0.36), (0.57, 0.06)),
        ((0.64, 0.42), (0.7, 0.16)),
    ):
        c.capsule((x0, y0), (x1, y1), 0.055, SKIN)
    c.capsule((0.32, 0.58), (0.14, 0.42), 0.06, SKIN)


def _holding_hand(c: Canvas, _col) -> None:
    c.rect(0.34, 0.5, 0.66, 1.0, SKIN_DARK)
    c.ellipse(0.5, 0.42, 0.3, 0.22, SKIN)
    for k in range(4):
        c.ellipse(0.3 + 0.13 * k, 0.24, 0.065, 0.09, SKIN)


def _thumb(c: Canvas, _col) -> None:
    c.capsule((0.2, 0.8), (0.75, 0.3), 0.2, SKIN)
    c.capsule((0.2, 0.8), (0.75, 0.3), 0.08, SKIN_DARK)


HAND_PAINTERS = {"open_hand": _open_hand, "holding_hand": _holding_hand, "thumb": _thumb}


# ====================================================================== room panoramas
def _room_shell(c: Canvas, room: Room, width: float) -> None:
    wall_dark = _scaled(room.wall, 0.8)
    c.rect(
        -1,
        -1,
        width + 1,
        0.6,
        vertical_gradient(_scaled(room.wall, 1.05), room.wall, 0.0, 0.6),
    )
    c.rect(-1, 0.58, width + 1, 0.62, wall_dark)


def _kitchen_room(c: Canvas, room: Room, width: float) -> None:
    c.rect(-1, 0.62, width + 1, 2, checker(room.floor, room.floor_alt, 0.12))
    c.rect(-1, 0.3, width + 1, 0.44, checker((222, 228, 234), (198, 208, 216), 0.05))


def _living_room(c: Canvas, room: Room, width: float) -> None:
    c.rect(-1, 0.62, width + 1, 2, speckle(room.floor, 12, 0.03, 1.0))
    c.rect(0.92, 0.1, 1.12, 0.4, (240, 240, 236))
    c.rect(0.94, 0.12, 1.1, 0.38, (170, 206, 232))
    c.rect(1.65, 0.12, 1.82, 0.34, (120, 104, 84))
    c.rect(1.67, 0.14, 1.8, 0.32, (206, 190, 160))


def _bedroom(c: Canvas, room: Room, width: float) -> None:
    c.rect(-1, 0.62, width + 1, 2, stripes(room.floor, room.floor_alt, 0.14, vertical=True))
    c.rect(1.15, 0.12, 1.32, 0.3, (110, 90, 130))
    c.rect(1.17, 0.14, 1.3, 0.28, (226, 214, 196))


def _office(c: Canvas, room: Room, width: float) -> None:
    c.rect(-1, 0.62, width + 1, 2, speckle(room.floor, 10, 0.02, 2.0))
    c.rect(1.3, 0.1, 1.7, 0.36, (150, 150, 156))
    c.rect(1.32, 0.12, 1.68, 0.34, (246, 248, 250))
    c.rect(2.2, 0.05, 2.5, 0.55, (90, 96, 110))


def _hallway(c: Canvas, room: Room, width: float) -> None:
    c.rect(-1, 0.62, width + 1, 2, stripes(room.floor, room.floor_alt, 0.2, vertical=True))
    c.polygon([(-1, 0.95), (width + 1, 0.95), (width + 1, 0.7), (-1, 0.7)], (132, 60, 58))
    for x in (0.1, 1.25, 2.3):
        c.rect(x, 0.06, x + 0.28, 0.6, (118, 82, 60))
        c.ellipse(x + 0.23, 0.36, 0.02, 0.02, (220, 200, 120))


ROOM_PAINTERS = {
    "kitchen": _kitchen_room,
    "living room": _living_room,
    "bedroom": _bedroom,
    "office": _office,
    "hallway": _hallway,
}


def _pano_fridge(c, x):
    c.rect(x - 0.2, 0.08, x + 0.2, 0.8, (226, 230, 236))
    c.rect(x - 0.2, 0.3, x + 0.2, 0.32, (180, 186, 194))
    c.rect(x + 0.13, 0.36, x + 0.15, 0.6, (90, 95, 100))


def _pano_counter(c, x):
    c.rect(x - 0.3, 0.5, x + 0.3, 0.82, (204, 198, 186))
    c.rect(x - 0.32, 0.46, x + 0.32, 0.51, speckle((120, 120, 126), 20, 0.02, 3.0))
    c.rect(x - 0.005, 0.55, x + 0.005, 0.8, (160, 154, 144))


def _pano_sink(c, x):
    c.rect(x - 0.25, 0.5, x + 0.25, 0.82, (204, 198, 186))
    c.rect(x - 0.27, 0.46, x + 0.27, 0.51, (176, 180, 186))
    c.capsule((x, 0.46), (x, 0.36), 0.015, (170, 174, 180))
    c.capsule((x, 0.36), (x + 0.06, 0.38), 0.015, (170, 174, 180))


def _pano_table(c, x):
    c.rect(x - 0.3, 0.5, x + 0.3, 0.56, (170, 120, 70))
    c.rect(x - 0.26, 0.56, x - 0.23, 0.86, (130, 90, 50))
    c.rect(x + 0.23, 0.56, x + 0.26, 0.86, (130, 90, 50))


def _pano_sofa(c, x):
    c.rect(x - 0.4, 0.36, x + 0.4, 0.62, (80, 120, 130))
    c.rect(x - 0.44, 0.5, x + 0.44, 0.82, (95, 135, 145))
    c.rect(x - 0.44, 0.44, x - 0.36, 0.82, (70, 106, 116))
    c.rect(x + 0.36, 0.44, x + 0.44, 0.82, (70, 106, 116))


def _pano_shelf(c, x):
    c.rect(x - 0.22, 0.1, x + 0.22, 0.8, (100, 70, 50))
    for y in (0.3, 0.52, 0.74):
        c.rect(x - 0.2, y, x + 0.2, y + 0.03, (150, 115, 85))


def _pano_cabinet(c, x):
    c.rect(x - 0.24, 0.4, x + 0.24, 0.82, (190, 160, 110))
    c.rect(x - 0.005, 0.42, x + 0.005, 0.8, (150, 120, 80))
    c.ellipse(x - 0.03, 0.6, 0.012, 0.012, (90, 70, 50))
    c.ellipse(x + 0.03, 0.6, 0.012, 0.012, (90, 70, 50))


def _pano_bed(c, x):
    c.rect(x - 0.48, 0.3, x - 0.42, 0.8, (110, 80, 60))
    c.rect(x - 0.44, 0.52, x + 0.48, 0.8, (236, 236, 242))
    c.rect(x - 0.1, 0.52, x + 0.48, 0.8, (140, 120, 180))
    c.ellipse(x - 0.3, 0.5, 0.1, 0.05, (200, 190, 230))


def _pano_drawer(c, x):
    c.rect(x - 0.25, 0.4, x + 0.25, 0.82, (220, 208, 190))
    for y in (0.53, 0.67):
        c.rect(x - 0.25, y, x + 0.25, y + 0.01, (170, 150, 130))
    for y in (0.47, 0.6, 0.74):
        c.rect(x - 0.05, y, x + 0.05, y + 0.015, (120, 100, 80))


def _pano_nightstand(c, x):
    c.rect(x - 0.14, 0.52, x + 0.14, 0.8, (225, 215, 200))
    c.rect(x - 0.01, 0.4, x + 0.01, 0.52, (120, 110, 100))
    c.polygon([(x - 0.08, 0.4), (x + 0.08, 0.4), (x + 0.05, 0.3), (x - 0.05, 0.3)], (240, 236, 225))


def _pano_desk(c, x):
    c.rect(x - 0.4, 0.5, x + 0.4, 0.55, (185, 185, 180))
    c.rect(x - 0.36, 0.55, x - 0.33, 0.84, (120, 120, 118))
    c.rect(x + 0.33, 0.55, x + 0.36, 0.84, (120, 120, 118))
    c.rect(x - 0.15, 0.3, x + 0.15, 0.47, (45, 48, 55))
    c.rect(x - 0.02, 0.47, x + 0.02, 0.5, (45, 48, 55))


def _pano_box(c, x):
    c.rect(x - 0.18, 0.62, x + 0.18, 0.84, (190, 150, 100))
    c.rect(x - 0.18, 0.62, x + 0.18, 0.66, (160, 122, 80))


def _pano_basket(c, x):
    c.rect(x - 0.18, 0.64, x + 0.18, 0.86, checker((150, 110, 60), (120, 85, 45), 0.03))


def _pano_bench(c, x):
    c.rect(x - 0.35, 0.58, x + 0.35, 0.64, (60, 90, 70))
    c.rect(x - 0.32, 0.64, x - 0.29, 0.84, (45, 70, 55))
    c.rect(x + 0.29, 0.64, x + 0.32, 0.84, (45, 70, 55))


PANORAMA_PAINTERS = {
    "fridge": _pano_fridge,
    "counter": _pano_counter,
    "sink": _pano_sink,
    "table": _pano_table,
    "sofa": _pano_sofa,
    "shelf": _pano_shelf,
    "cabinet": _pano_cabinet,
    "bed": _pano_bed,
    "drawer": _pano_drawer,
    "nightstand": _pano_nightstand,
    "desk": _pano_desk,
    "box": _pano_box,
    "basket": _pano_basket,
    "bench": _pano_bench,
}


# ====================================================================== place close-ups
# Each painter draws the place filling the frame (coordinates run past 0..1 to cover the shake margin) and,
# for closable places, returns a painter for the closed door/front layer.
def _wall(c: Canvas, room: Room, y1: float) -> None:
    c.rect(-1, -1, 2, y1, room.wall)


def _surface(c: Canvas, room: Room, y0: float, paint) -> None:
    """A table-like top seen from standing height: a trapezoid over the room's floor."""
    c.rect(-1, y0, 2, 2, room.floor)
    c.polygon([(0.06, y0), (0.94, y0), (1.3, 1.3), (-0.3, 1.3)], paint)


def _cu_fridge(c, room):
    c.rect(-1, -1, 2, 2, (226, 230, 236))
    c.rect(0.06, 0.02, 0.94, 1.0, vertical_gradient((236, 246, 255), (190, 214, 236), 0.0, 1.0))
    c.rect(0.06, 0.5, 0.94, 0.53, (160, 186, 210))
    c.rect(0.06, 0.9, 0.94, 0.93, (160, 186, 210))
    c.ellipse(0.5, 0.06, 0.1, 0.03, (255, 255, 214))

    def door(d):
        d.rect(-1, -1, 2, 2, (230, 233, 238))
        d.rect(-1, 0.3, 2, 0.33, (186, 192, 200))
        d.rect(0.8, 0.4, 0.86, 0.78, (90, 95, 100))
        d.rect(0.8, 0.08, 0.86, 0.24, (90, 95, 100))

    return door


def _cu_counter(c, room):
    _wall(c, room, 0.4)
    c.rect(-1, 0.02, 2, 0.38, checker((222, 228, 234), (198, 208, 216), 0.09))
    _surface(c, room, 0.38, speckle((120, 120, 126), 22, 0.02, 3.0))


def _cu_sink(c, room):
    _wall(c, room, 0.3)
    c.rect(-1, 0.28, 2, 2, speckle((120, 120, 126), 22, 0.02, 3.0))
    c.rounded_rect(0.04, 0.36, 0.96, 1.04, 0.08, (178, 182, 188))
    basin = vertical_gradient((110, 116, 126), (140, 146, 156), 0.43, 0.98)
    c.rounded_rect(0.1, 0.43, 0.9, 0.98, 0.07, basin)
    c.ellipse(0.5, 0.9, 0.04, 0.025, (40, 40, 44))
    c.capsule((0.5, 0.12), (0.5, 0.36), 0.035, (196, 200, 206))
    c.capsule((0.5, 0.12), (0.5, 0.24), 0.05, (196, 200, 206))


def _cu_table(c, room):
    _wall(c, room, 0.36)
    _surface(c, room, 0.34, stripes((170, 120, 70), (140, 96, 54), 0.16, vertical=True))


def _cu_sofa(c, room):
    c.rect(-1, -1, 2, 2, (70, 106, 116))
    c.rounded_rect(0.02, -0.2, 0.49, 0.5, 0.05, (82, 122, 132))
    c.rounded_rect(0.51, -0.2, 0.98, 0.5, 0.05, (82, 122, 132))
    c.rounded_rect(-0.2, 0.48, 0.49, 1.3, 0.05, (98, 138, 148))
    c.rounded_rect(0.51, 0.48, 1.2, 1.3, 0.05, (98, 138, 148))


def _cu_shelf(c, room):
    c.rect(-1, -1, 2, 2, (100, 70, 50))
    c.rect(0.04, -0.2, 0.96, 1.2, (136, 100, 74))
    for y in (0.5, 0.92):
        c.rect(-1, y, 2, y + 0.06, (160, 124, 92))
    c.rect(0.06, 0.06, 0.1, 0.48, (100, 90, 80))


def _cu_cabinet(c, room):
    c.rect(-1, -1, 2, 2, (190, 160, 110))
    c.rect(0.05, 0.03, 0.95, 1.0, (72, 56, 46))
    for y in (0.54, 0.94):
        c.rect(0.05, y, 0.95, y + 0.05, (112, 88, 66))

    def door(d):
        d.rect(-1, -1, 2, 2, (190, 160, 110))
        d.rect(0.1, 0.08, 0.45, 0.95, (174, 144, 98))
        d.rect(0.55, 0.08, 0.9, 0.95, (174, 144, 98))
        d.rect(0.495, -1, 0.505, 2, (140, 112, 74))
        d.ellipse(0.44, 0.5, 0.025, 0.025, (90, 70, 50))
        d.ellipse(0.56, 0.5, 0.025, 0.025, (90, 70, 50))

    return door


def _cu_bed(c, room):
    c.rect(-1, -1, 2, 2, (236, 236, 242))
    c.rounded_rect(0.06, 0.02, 0.94, 0.34, 0.08, (200, 190, 230))
    c.rect(-1, 0.88, 2, 2, (140, 120, 180))
    c.rect(-1, 0.86, 2, 0.89, (120, 100, 160))


def _cu_drawer(c, room):
    c.rect(-1, -1, 2, 2, (150, 120, 90))
    c.rect(0.06, 0.1, 0.94, 1.0, (206, 176, 136))
    c.rect(0.06, 0.1, 0.94, 0.16, (176, 146, 108))

    def door(d):
        d.rect(-1, -1, 2, 0.14, room.wall)
        d.rect(-1, 0.14, 2, 0.22, (160, 130, 100))
        d.rect(-1, 0.22, 2, 2, (222, 210, 192))
        d.rect(0.3, 0.48, 0.7, 0.54, (120, 100, 80))
        d.rect(-1, 0.84, 2, 0.86, (180, 164, 144))

    return door


def _cu_nightstand(c, room):
    _wall(c, room, 0.42)
    c.rect(0.12, 0.28, 0.16, 0.42, (120, 110, 100))
    c.polygon([(0.02, 0.28), (0.26, 0.28), (0.21, 0.04), (0.07, 0.04)], (240, 236, 225))
    _surface(c, room, 0.4, (225, 215, 200))


def _cu_desk(c, room):
    _wall(c, room, 0.36)
    c.rect(0.28, 0.0, 0.72, 0.3, (45, 48, 55))
    c.rect(0.31, 0.03, 0.69, 0.27, (70, 95, 120))
    _surface(c, room, 0.34, (186, 186, 180))
    c.rect(0.32, 0.38, 0.68, 0.46, (150, 150, 152))


def _cu_box(c, room):
    c.rect(-1, -1, 2, 2, speckle(room.floor, 10, 0.02, 2.0))
    c.rect(0.02, 0.08, 0.98, 1.08, (190, 150, 100))
    c.rect(0.1, 0.18, 0.9, 1.0, (146, 112, 72))
    c.polygon([(0.02, 0.08), (0.98, 0.08), (0.86, -0.1), (0.14, -0.1)], (210, 172, 120))


def _cu_basket(c, room):
    c.rect(-1, -1, 2, 2, stripes(room.floor, room.floor_alt, 0.2, vertical=True))
    c.rounded_rect(0.0, 0.1, 1.0, 1.1, 0.1, checker((150, 110, 60), (120, 85, 45), 0.06))
    c.rounded_rect(0.08, 0.2, 0.92, 1.02, 0.08, checker((110, 78, 42), (92, 64, 34), 0.06))


def _cu_bench(c, room):
    _wall(c, room, 0.32)
    _surface(c, room, 0.3, stripes((64, 96, 74), (40, 62, 48), 0.12))


CLOSEUP_PAINTERS = {
    "fridge": _cu_fridge,
    "counter": _cu_counter,
    "sink": _cu_sink,
    "table": _cu_table,
    "sofa": _cu_sofa,
    "shelf": _cu_shelf,
    "cabinet": _cu_cabinet,
    "bed": _cu_bed,
    "drawer": _cu_drawer,
    "nightstand": _cu_nightstand,
    "desk": _cu_desk,
    "box": _cu_box,
    "basket": _cu_basket,
    "bench": _cu_bench,
}
