"""The synthetic house: its rooms, the places things can be put, and the portable objects.

Everything here is data. The visual design follows one rule, learnt the hard way (REFERENCE-NOTES, "Facts
about this stack"): a randomly initialised encoder at 64 px only tells apart what is LARGE and
colour-distinct. So every portable object has its own saturated colour and silhouette and fills about two
thirds of the frame width when held, rooms and places use muted colours that never compete with the
objects, and every place has a close-up that fills the frame with its own layout (an open fridge or drawer
shows a big, distinctive interior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.synthworld.shapes import RGB


@dataclass(frozen=True)
class Room:
    name: str
    wall: RGB
    floor: RGB
    floor_alt: RGB


@dataclass(frozen=True)
class Place:
    """Where objects lie. ``door`` says how a closable container opens (``none`` = always open/visible)."""

    name: str
    room: str
    preposition: str  # "on" a surface, "in" a container
    door: str = "none"  # none | hinge | double | drawer
    slots: tuple[tuple[float, float], ...] = ((0.27, 0.64), (0.73, 0.68))
    slot_size: float = 0.44
    pano_x: float = 0.5  # centre of its silhouette in the room panorama (frame widths)

    @property
    def closable(self) -> bool:
        return self.door != "none"


@dataclass(frozen=True)
class Thing:
    """A portable object: its name in narrations and queries, and its colour (the sprite is in render)."""

    name: str
    colour: RGB
    plural: bool = False

    @property
    def the(self) -> str:
        return f"the {self.name}"


@dataclass(frozen=True)
class House:
    rooms: tuple[Room, ...]
    places: tuple[Place, ...]
    things: tuple[Thing, ...]
    hub: str = "hallway"  # every room opens onto the hub; walking between two others passes through it
    panorama_width: float = 2.6  # frame widths
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def room(self, name: str) -> Room:
        return self._lookup("room", self.rooms)[name]

    def place(self, name: str) -> Place:
        return self._lookup("place", self.places)[name]

    def thing(self, name: str) -> Thing:
        return self._lookup("thing", self.things)[name]

    def places_in(self, room: str) -> list[Place]:
        return [p for p in self.places if p.room == room]

    def _lookup(self, kind: str, items) -> dict:
        if kind not in self._index:
            self._index[kind] = {item.name: item for item in items}
        return self._index[kind]

    def describe(self) -> dict:
        """The house as plain data, for world.json."""
        return {
            "rooms": [{"name": r.name, "places": [p.name for p in self.places_in(r.name)]} for r in self.rooms],
            "places": [
                {
                    "name": p.name,
                    "room": p.room,
                    "preposition": p.preposition,
                    "closable": p.closable,
                    "slots": len(p.slots),
                }
                for p in self.places
            ],
            "objects": [{"name": t.name, "colour": list(t.colour), "plural": t.plural} for t in self.things],
        }


SHELF_SLOTS = ((0.3, 0.28), (0.7, 0.7))  # resting on the two boards
FRIDGE_SLOTS = ((0.3, 0.28), (0.7, 0.68))
CABINET_SLOTS = ((0.3, 0.32), (0.7, 0.72))
BED_SLOTS = ((0.27, 0.62), (0.73, 0.66))
BASIN_SLOTS = ((0.3, 0.66), (0.7, 0.72))

DEFAULT_HOUSE = House(
    rooms=(
        Room("kitchen", wall=(240, 222, 130), floor=(232, 232, 228), floor_alt=(150, 150, 158)),
        Room("living room", wall=(140, 196, 140), floor=(196, 178, 148), floor_alt=(184, 166, 136)),
        Room("bedroom", wall=(184, 158, 222), floor=(150, 104, 64), floor_alt=(128, 86, 52)),
        Room("office", wall=(128, 170, 216), floor=(96, 96, 104), floor_alt=(84, 84, 92)),
        Room("hallway", wall=(222, 146, 108), floor=(92, 62, 42), floor_alt=(80, 54, 36)),
    ),
    places=(
        Place("fridge", "kitchen", "in", door="hinge", slots=FRIDGE_SLOTS, pano_x=0.35),
        Place("counter", "kitchen", "on", pano_x=1.0),
        Place("sink", "kitchen", "in", slots=BASIN_SLOTS, pano_x=1.55),
        Place("table", "kitchen", "on", pano_x=2.2),
        Place("sofa", "living room", "on", slots=BED_SLOTS, pano_x=0.6),
        Place("shelf", "living room", "on", slots=SHELF_SLOTS, pano_x=1.4),
        Place("cabinet", "living room", "in", door="double", slots=CABINET_SLOTS, pano_x=2.15),
        Place("bed", "bedroom", "on", slots=BED_SLOTS, pano_x=0.7),
        Place("drawer", "bedroom", "in", door="drawer", slots=BASIN_SLOTS, pano_x=1.6),
        Place("nightstand", "bedroom", "on", pano_x=2.25),
        Place("desk", "office", "on", pano_x=0.8),
        Place("box", "office", "in", slots=BASIN_SLOTS, pano_x=1.9),
        Place("basket", "hallway", "in", slots=BASIN_SLOTS, pano_x=0.7),
        Place("bench", "hallway", "on", pano_x=1.8),
    ),
    things=(
        Thing("keys", (250, 205, 0), plural=True),
        Thing("mug", (215, 25, 35)),
        Thing("phone", (20, 20, 26)),
        Thing("wallet", (240, 115, 10)),
        Thing("scissors", (225, 0, 185), plural=True),
        Thing("book", (25, 60, 215)),
        Thing("bottle", (0, 160, 60)),
        Thing("apple", (140, 220, 0)),
        Thing("remote", (115, 35, 185)),
        Thing("glasses", (0, 205, 215), plural=True),
        Thing("knife", (255, 105, 170)),
        Thing("bag", (135, 70, 25)),
    ),
)
