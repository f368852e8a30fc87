"""The day of the camera wearer: a seeded sequence of timed events, and what was visible when.

The script is the single source of truth. Frames are rendered from it, narrations are written from it and NLQ
answer windows are computed from it, so the three cannot disagree. Events tile the video without gaps; each
carries a snapshot of the state it starts from (what is in the hand, what lies on the place in view, whether
the container is open), which is all the renderer needs to draw any of its frames.

Durations follow Ego4D's scale: manipulations (the answers of most NLQ queries) take 2-3.5 s, walking between
rooms 2.5-4 s, and looking around fills the gaps.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from training.synthworld.catalog import House, Place

DURATIONS: dict[str, tuple[float, float]] = {
    "walk": (2.6, 4.0),
    "approach": (0.8, 1.4),
    "leave": (0.6, 1.0),
    "look": (2.0, 3.4),
    "open": (1.4, 2.2),
    "close": (1.2, 2.0),
    "pick": (2.0, 3.2),
    "put": (2.2, 3.4),
    "look_around": (2.5, 5.0),
}
"""Seconds (low, high) per event kind; each event draws uniformly and rounds to 0.1 s."""

TASK_WEIGHTS: dict[str, float] = {"move": 0.6, "check": 0.18, "tidy": 0.12, "look_around": 0.1}
LEAVE_OPEN_PROBABILITY = 0.2  # how often a container is left open after use ("did I leave the fridge open?")


@dataclass
class Event:
    idx: int
    kind: str
    start: float
    end: float
    room: str  # where it happens (a walk's destination)
    from_room: str | None = None  # walks only
    place: str | None = None  # the place in view (close-up events)
    obj: str | None = None  # the object picked up or put down
    slot: int | None = None
    held: str | None = None  # object in the hand when the event starts
    contents: tuple[tuple[int, str], ...] = ()  # (slot, object) on ``place`` when the event starts
    is_open: bool | None = None  # whether ``place`` (if closable) is open when the event starts

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def place_in_view(self) -> str:
        """:attr:`place`, for the close-up events, which always have one."""
        if self.place is None:
            raise ValueError(f"a {self.kind} event has no place in view")
        return self.place

    @property
    def moved_object(self) -> str:
        """:attr:`obj`, for the events that pick up or put down one."""
        if self.obj is None:
            raise ValueError(f"a {self.kind} event moves no object")
        return self.obj

    @property
    def slot_used(self) -> int:
        """:attr:`slot`, for the events that pick from or put into one."""
        if self.slot is None:
            raise ValueError(f"a {self.kind} event uses no slot")
        return self.slot

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["contents"] = [list(c) for c in self.contents]
        return d


@dataclass
class Sighting:
    """A stretch of contiguous events during which ``obj`` is seen lying at (or going to/from) ``place``."""

    obj: str
    place: str
    start: float
    end: float
    events: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _State:
    room: str
    focus: str | None
    held: str | None
    where: dict[str, str]  # object -> place
    slot: dict[str, int]  # object -> slot index at its place
    is_open: dict[str, bool]  # closable place -> open?

    @property
    def at(self) -> str:
        """The place in focus, for the actions that happen at one."""
        if self.focus is None:
            raise ValueError("no place is in focus")
        return self.focus

    @property
    def holding(self) -> str:
        """The object in the hand, for the actions that need one."""
        if self.held is None:
            raise ValueError("nothing is held")
        return self.held


class _TaskOverflow(Exception):
    """A task would run past the end of the video; it is rolled back and the time filled otherwise."""


class _Simulator:
    def __init__(self, house: House, rng: np.random.Generator, duration: float, duration_scale: float = 1.0) -> None:
        self.house = house
        self.rng = rng
        self.duration = duration
        self.duration_scale = duration_scale
        self.t = 0.0
        self.events: list[Event] = []
        where, slot = self._initial_placement()
        rooms = [r.name for r in house.rooms]
        self.s = _State(
            room=rooms[int(rng.integers(len(rooms)))],
            focus=None,
            held=None,
            where=where,
            slot=slot,
            is_open={p.name: False for p in house.places if p.closable},
        )

    # ------------------------------------------------------------------ state helpers
    def _initial_placement(self) -> tuple[dict[str, str], dict[str, int]]:
        where: dict[str, str] = {}
        slot: dict[str, int] = {}
        free = {p.name: list(range(len(p.slots))) for p in self.house.places}
        for thing in self.house.things:
            candidates = [name for name, slots in free.items() if slots]
            place = candidates[int(self.rng.integers(len(candidates)))]
            k = free[place].pop(int(self.rng.integers(len(free[place]))))
            where[thing.name], slot[thing.name] = place, k
        return where, slot

    def contents(self, place: str) -> tuple[tuple[int, str], ...]:
        return tuple(sorted((self.s.slot[o], o) for o, p in self.s.where.items() if p == place))

    def free_slots(self, place: str) -> list[int]:
        used = {k for k, _ in self.contents(place)}
        return [k for k in range(len(self.house.place(place).slots)) if k not in used]

    def _emit(self, kind: str, **fields) -> Event:
        lo, hi = DURATIONS[kind]
        duration = round(float(self.rng.uniform(lo, hi)) * self.duration_scale, 1)
        end = round(self.t + duration, 1)
        if end > self.duration:
            raise _TaskOverflow
        place = fields.get("place", self.s.focus)
        ev = Event(
            idx=len(self.events),
            kind=kind,
            start=self.t,
            end=end,
            room=self.s.room,
            place=place,
            held=self.s.held,
            contents=self.contents(place) if place else (),
            is_open=self.s.is_open.get(place) if place else None,
        )
        for k, v in fields.items():
            setattr(ev, k, v)
        self.events.append(ev)
        self.t = end
        return ev

    # ------------------------------------------------------------------ primitive actions
    def walk_to(self, room: str) -> None:
        if room == self.s.room:
            return
        if self.s.focus:
            self.leave()
        path = [room] if self.house.hub in (room, self.s.room) else [self.house.hub, room]
        for step in path:
            origin = self.s.room
            self.s.room = step
            self._emit("walk", room=step, from_room=origin, place=None)

    def approach(self, place: str) -> None:
        self.walk_to(self.house.place(place).room)
        if self.s.focus == place:
            return
        if self.s.focus:
            self.leave()
        self._emit("approach", place=place)
        self.s.focus = place

    def leave(self) -> None:
        self._emit("leave")
        self.s.focus = None

    def open(self) -> None:
        self._emit("open")
        self.s.is_open[self.s.at] = True

    def close(self) -> None:
        self._emit("close")
        self.s.is_open[self.s.at] = False

    def ensure_open(self) -> None:
        if self.house.place(self.s.at).closable and not self.s.is_open[self.s.at]:
            self.open()

    def maybe_close(self) -> None:
        if self.house.place(self.s.at).closable and self.s.is_open[self.s.at]:
            if self.rng.random() >= LEAVE_OPEN_PROBABILITY:
                self.close()

    def pick(self, obj: str) -> None:
        self._emit("pick", obj=obj, slot=self.s.slot[obj])
        del self.s.where[obj], self.s.slot[obj]
        self.s.held = obj

    def put(self, slot: int) -> None:
        obj = self.s.holding
        self._emit("put", obj=obj, slot=slot)
        self.s.where[obj], self.s.slot[obj] = self.s.at, slot
        self.s.held = None

    def look(self) -> None:
        self._emit("look")

    def look_around(self, fill_to: float | None = None) -> None:
        if self.s.focus:
            self.leave()
        if fill_to is None:
            self._emit("look_around", place=None)
            return
        self.events.append(
            Event(
                idx=len(self.events), kind="look_around", start=self.t, end=fill_to, room=self.s.room, held=self.s.held
            )
        )
        self.t = fill_to

    # ------------------------------------------------------------------ tasks
    def _choice(self, items: list):
        return items[int(self.rng.integers(len(items)))]

    def _destinations(self, obj: str, same_room_as: str | None = None) -> list[Place]:
        here = self.s.where.get(obj)
        return [
            p
            for p in self.house.places
            if p.name != here and self.free_slots(p.name) and (same_room_as is None or p.room == same_room_as)
        ]

    def task_move(self) -> None:
        """Fetch one object and put it somewhere else, often in another room."""
        obj = self._choice(sorted(self.s.where))
        dests = self._destinations(obj)
        if not dests:
            return self.task_look_around()
        dest = self._choice(dests).name
        self.approach(self.s.where[obj])
        if self.rng.random() < 0.3 and not (self.house.place(self.s.at).closable and not self.s.is_open[self.s.at]):
            self.look()
        self.ensure_open()
        self.pick(obj)
        self.maybe_close()
        if self.rng.random() < 0.15:
            self.look_around()
        self.approach(dest)
        self.ensure_open()
        free = self.free_slots(dest)
        self.put(self._choice(free))
        self.maybe_close()
        self.leave()

    def task_tidy(self) -> None:
        """Move two objects from one place to a nearby one: the source of "how many" questions."""
        sources = [p.name for p in self.house.places if len(self.contents(p.name)) >= 2]
        if not sources:
            return self.task_move()
        source = self._choice(sources)
        room = self.house.place(source).room
        dests = [p for p in self.house.places_in(room) if p.name != source and len(self.free_slots(p.name)) >= 2]
        if not dests:
            return self.task_move()
        dest = self._choice(dests).name
        objs = [o for _, o in self.contents(source)]
        for obj in [objs[i] for i in self.rng.permutation(len(objs))[:2]]:
            self.approach(source)
            self.ensure_open()
            self.pick(obj)
            self.maybe_close()
            self.approach(dest)
            self.ensure_open()
            self.put(self._choice(self.free_slots(dest)))
            self.maybe_close()
        self.leave()

    def task_check(self) -> None:
        """Go and look at a place (opening it if needed) without taking anything."""
        place = self._choice([p.name for p in self.house.places])
        self.approach(place)
        self.ensure_open()
        self.look()
        self.maybe_close()
        self.leave()

    def task_look_around(self) -> None:
        self.look_around()

    def run(self) -> list[Event]:
        tasks = {
            "move": self.task_move,
            "check": self.task_check,
            "tidy": self.task_tidy,
            "look_around": self.task_look_around,
        }
        names = list(TASK_WEIGHTS)
        weights = np.array([TASK_WEIGHTS[n] for n in names])
        self.look_around()  # the video opens on the room the wearer is in
        while self.t < self.duration:
            name = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            saved = (copy.deepcopy(self.s), len(self.events), self.t)
            try:
                tasks[name]()
            except _TaskOverflow:
                self.s, n_events, self.t = saved
                del self.events[n_events:]
                if self.s.focus:  # only possible if the task was cut mid-way; tasks end facing the room
                    self.s.focus = None
                self.look_around(fill_to=self.duration)
        return self.events


def plan_video(
    house: House, seed_sequence: np.random.SeedSequence, duration: float, duration_scale: float = 1.0
) -> list[Event]:
    """Seeded event script that tiles ``[0, duration]`` exactly with complete tasks; every action lasts
    ``duration_scale`` times its canonical duration (a world style's pace)."""
    rng = np.random.default_rng(seed_sequence)
    return _Simulator(house, rng, round(duration, 1), duration_scale).run()


# ---------------------------------------------------------------------- what was visible
def visible_at_place(event: Event, house: House) -> list[str]:
    """Objects seen lying at (or being put on / taken from) the place in view during ``event``."""
    if not event.place or event.kind in ("walk", "look_around"):
        return []
    place = house.place(event.place)
    seen = place.door == "none" or bool(event.is_open) or event.kind in ("open", "close")
    objs = [o for _, o in event.contents] if seen else []
    if event.kind == "put" and event.obj:
        objs.append(event.obj)
    return objs


def sightings(events: list[Event], house: House) -> list[Sighting]:
    """Merge consecutive events that show an object at one place into sightings, in time order."""
    out: list[Sighting] = []
    open_: dict[tuple[str, str], Sighting] = {}
    for ev in events:
        current = {(o, ev.place_in_view) for o in visible_at_place(ev, house)}  # none without a place
        for key in list(open_):
            if key not in current:
                del open_[key]
        for key in sorted(current):
            if key in open_:
                open_[key].end = ev.end
                open_[key].events.append(ev.idx)
            else:
                s = Sighting(obj=key[0], place=key[1], start=ev.start, end=ev.end, events=[ev.idx])
                open_[key] = s
                out.append(s)
    out.sort(key=lambda s: (s.start, s.obj))
    return out


def objects_shown(video: dict, start: float, end: float) -> set[str]:
    """Every object on screen at some moment of ``[start, end)`` of a video of ``world.json`` (its ``events``
    and ``sightings``): lying at the place in view, being picked up or put down, or in the hand.

    What "never occurs in this clip" means for a negative query: a narration names only what is handled, so an
    object lying in view while something else is handled is seen but never said.
    """
    shown = {s["obj"] for s in video.get("sightings", []) if s["start"] < end and s["end"] > start}
    for ev in video.get("events", []):
        if ev["start"] < end and ev["end"] > start:
            shown.update(o for o in (ev.get("held"), ev.get("obj")) if o)
    return shown
