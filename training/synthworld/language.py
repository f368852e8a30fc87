"""Words for events: Ego4D-style narrations ("#C C puts the mug in the fridge") and past-tense phrases for
queries ("after I opened the fridge").

Narrations say only what the frames of their event show -- a later step pretrains a CLIP model on them -- and
every narrated event gets exactly one, at its midpoint, like Ego4D's dense narration pass.
"""

from __future__ import annotations

from collections.abc import Callable

from training.synthworld.catalog import House
from training.synthworld.script import Event, visible_at_place


def list_phrase(names: list[str]) -> str:
    items = [f"the {n}" for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _walk(ev: Event, house: House) -> str:
    text = f"#C C walks into the {ev.room}"
    return text + (f" holding the {ev.held}" if ev.held else "")


def _look_around(ev: Event, house: House) -> str | None:
    if ev.duration < 1.0:  # a sliver left at the end of a video is not an action
        return None
    text = f"#C C looks around the {ev.room}"
    return text + (f" holding the {ev.held}" if ev.held else "")


def _approach(ev: Event, house: House) -> str:
    return f"#C C walks to the {ev.place}"


def _look(ev: Event, house: House) -> str:
    seen = visible_at_place(ev, house)
    place = house.place(ev.place_in_view)
    if seen:
        return f"#C C looks at {list_phrase(seen)} {place.preposition} the {ev.place}"
    if place.preposition == "in":
        return f"#C C looks inside the {ev.place}"
    return f"#C C looks at the {ev.place}"


def _pick(ev: Event, house: House) -> str:
    if house.place(ev.place_in_view).preposition == "in":
        return f"#C C takes the {ev.obj} out of the {ev.place}"
    return f"#C C picks up the {ev.obj} from the {ev.place}"


def _put(ev: Event, house: House) -> str:
    return f"#C C puts the {ev.obj} {house.place(ev.place_in_view).preposition} the {ev.place}"


NARRATORS: dict[str, Callable[[Event, House], str | None]] = {
    "walk": _walk,
    "look_around": _look_around,
    "approach": _approach,
    "leave": lambda ev, house: None,  # stepping back from a place is part of the next walk or approach
    "look": _look,
    "open": lambda ev, house: f"#C C opens the {ev.place}",
    "close": lambda ev, house: f"#C C closes the {ev.place}",
    "pick": _pick,
    "put": _put,
}


def narration(ev: Event, house: House) -> str | None:
    return NARRATORS[ev.kind](ev, house)


PAST: dict[str, Callable[[Event, House], str | None]] = {
    "walk": lambda ev, house: f"I walked into the {ev.room}",
    "open": lambda ev, house: f"I opened the {ev.place}",
    "close": lambda ev, house: f"I closed the {ev.place}",
    "pick": lambda ev, house: (
        f"I took the {ev.obj} out of the {ev.place}"
        if house.place(ev.place_in_view).preposition == "in"
        else f"I picked up the {ev.obj}"
    ),
    "put": lambda ev, house: f"I put the {ev.obj} {house.place(ev.place_in_view).preposition} the {ev.place}",
}
"""Events that can anchor "before/after" questions: distinct, visible actions with a clear moment."""

ANCHOR_VERBS = {"walk": "walk", "open": "open", "close": "close", "pick": "pick up", "put": "put"}


def past_phrase(ev: Event, house: House) -> str | None:
    fn = PAST.get(ev.kind)
    return fn(ev, house) if fn else None


def was(obj_plural: bool) -> str:
    return "were" if obj_plural else "was"
