"""NLQ questions with exact, unambiguous answer windows, written from the event log of one clip.

Each rule below turns the clip's events (or sightings) into candidate questions in one Ego4D template. A rule
asks only when the answer is unique inside the clip: "Where did I put the keys?" needs exactly one put-down of
the keys overlapping the clip, "Where were the keys after I opened the fridge?" needs "I opened the fridge" to
happen once, and so on. Events that straddle the clip's edges count against uniqueness but are never answers.
Answer windows are the events (or merged sightings) themselves, so they are as long as the visible action:
2-3.5 s for manipulations, up to :data:`MAX_SIGHTING_SECONDS` for "where did I see" questions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.synthworld.catalog import House
from training.synthworld.language import ANCHOR_VERBS, past_phrase, was
from training.synthworld.script import Event, Sighting

TEMPLATE_PUT = "Place: Where did I put X?"
TEMPLATE_PUT_IN = "Objects: What did I put in X?"
TEMPLATE_WHAT_DID = "Objects: What X did I Y?"
TEMPLATE_BEFORE_AFTER = "Objects: Where is object X before / after event Y?"
TEMPLATE_SEEN = "Objects: In what location did I see object X ?"
TEMPLATE_WHERE_IS = "Objects: Where is object X?"
TEMPLATE_STATE = "Objects: State of an object"
TEMPLATE_HOW_MANY = "Objects: How many X\u2019s? (quantity question)"  # Ego4D's string has a curly apostrophe

MAX_SIGHTING_SECONDS = 8.0
MAX_COUNT_SPAN_SECONDS = 25.0
MAX_ANCHOR_GAP_SECONDS = 30.0
MIN_WINDOW_SECONDS = 1.0


@dataclass
class Query:
    template: str
    query: str
    slot_x: str
    verb_x: str
    start: float  # video seconds
    end: float
    evidence: list[int] = field(default_factory=list)  # event indices that make the answer
    rule: str = ""


@dataclass
class ClipView:
    """The events and sightings that touch one clip, with the clip's bounds in video seconds."""

    start: float
    end: float
    events: list[Event]
    sightings: list[Sighting]
    house: House

    def moved_between(self, obj: str, a: float, b: float) -> bool:
        """Whether ``obj`` was in the hand, picked up or put down at any moment of ``(a, b)``."""
        return any(
            e.start < b and e.end > a and (e.held == obj or (e.kind in ("pick", "put") and e.obj == obj))
            for e in self.events
        )

    def inside(self, start: float, end: float) -> bool:
        return self.start - 1e-6 <= start and end <= self.end + 1e-6 and end - start >= MIN_WINDOW_SECONDS

    @classmethod
    def of(cls, start: float, end: float, events: list[Event], sightings: list[Sighting], house: House) -> ClipView:
        touches = lambda a, b: a < end and b > start  # noqa: E731
        return cls(
            start,
            end,
            [e for e in events if touches(e.start, e.end)],
            [s for s in sightings if touches(s.start, s.end)],
            house,
        )


def _from_event(template: str, text: str, slot: str, verb: str, ev: Event, rule: str) -> Query:
    return Query(template, text, slot, verb, ev.start, ev.end, [ev.idx], rule)


def _from_sighting(template: str, text: str, slot: str, verb: str, s: Sighting, rule: str) -> Query:
    return Query(template, text, slot, verb, s.start, s.end, list(s.events), rule)


def _by(events: list[Event], kind: str, key: Callable[[Event], str]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.kind == kind:
            out[key(e)].append(e)
    return out


# ---------------------------------------------------------------------- rules
def where_did_i_put(c: ClipView) -> list[Query]:
    out = []
    for obj, puts in sorted(_by(c.events, "put", lambda e: e.moved_object).items()):
        if len(puts) == 1 and c.inside(puts[0].start, puts[0].end):
            out.append(_from_event(TEMPLATE_PUT, f"Where did I put the {obj}?", obj, "put", puts[0], "put_once"))
    return out


def what_did_i_put_in(c: ClipView) -> list[Query]:
    out = []
    for place, puts in sorted(_by(c.events, "put", lambda e: e.place_in_view).items()):
        if len(puts) == 1 and c.inside(puts[0].start, puts[0].end):
            prep = c.house.place(place).preposition
            out.append(
                _from_event(
                    TEMPLATE_PUT_IN, f"What did I put {prep} the {place}?", place, "put", puts[0], "put_into_place"
                )
            )
    return out


def what_did_i_take(c: ClipView) -> list[Query]:
    out = []
    for place, picks in sorted(_by(c.events, "pick", lambda e: e.place_in_view).items()):
        if len(picks) == 1 and c.inside(picks[0].start, picks[0].end):
            if c.house.place(place).preposition == "in":
                text, verb = f"What object did I take out of the {place}?", "take out"
            else:
                text, verb = f"What object did I pick up from the {place}?", "pick up"
            out.append(_from_event(TEMPLATE_WHAT_DID, text, "object", verb, picks[0], "pick_from_place"))
    return out


def where_before_after(c: ClipView) -> list[Query]:
    """Where an object was seen last before, or first after, a once-only event.

    Asked only if the object lay still from that sighting to the event: had it been in the hand in between,
    "where was it" would have two answers (the place, and the hand).
    """
    phrases: dict[str, list[Event]] = defaultdict(list)
    for e in c.events:
        p = past_phrase(e, c.house)
        if p:
            phrases[p].append(e)
    by_obj: dict[str, list[Sighting]] = defaultdict(list)
    for s in c.sightings:
        by_obj[s.obj].append(s)
    out = []
    for phrase, anchors in sorted(phrases.items()):
        if len(anchors) != 1 or not c.inside(anchors[0].start, anchors[0].end):
            continue
        y = anchors[0]
        for obj, seen in sorted(by_obj.items()):
            if obj == y.obj:
                continue
            verb = ANCHOR_VERBS[y.kind]
            plural = c.house.thing(obj).plural
            later = [s for s in seen if s.end > y.end]
            if later and later[0].start >= y.end:  # a sighting already under way at the anchor is ambiguous
                s = later[0]
                if (
                    s.start - y.end <= MAX_ANCHOR_GAP_SECONDS
                    and s.end - s.start <= MAX_SIGHTING_SECONDS
                    and c.inside(s.start, s.end)
                    and not c.moved_between(obj, y.start, s.start)
                ):
                    out.append(
                        _from_sighting(
                            TEMPLATE_BEFORE_AFTER,
                            f"Where {was(plural)} the {obj} after {phrase}?",
                            obj,
                            verb,
                            s,
                            "after_event",
                        )
                    )
            earlier = [s for s in seen if s.start < y.start]
            if earlier and earlier[-1].end <= y.start:
                s = earlier[-1]
                if (
                    y.start - s.end <= MAX_ANCHOR_GAP_SECONDS
                    and s.end - s.start <= MAX_SIGHTING_SECONDS
                    and c.inside(s.start, s.end)
                    and not c.moved_between(obj, s.end, y.end)
                ):
                    out.append(
                        _from_sighting(
                            TEMPLATE_BEFORE_AFTER,
                            f"Where {was(plural)} the {obj} before {phrase}?",
                            obj,
                            verb,
                            s,
                            "before_event",
                        )
                    )
    return out


def where_did_i_see(c: ClipView) -> list[Query]:
    out = []
    by_obj: dict[str, list[Sighting]] = defaultdict(list)
    for s in c.sightings:
        by_obj[s.obj].append(s)
    for obj, seen in sorted(by_obj.items()):
        s = seen[0]
        if len(seen) == 1 and s.end - s.start <= MAX_SIGHTING_SECONDS and c.inside(s.start, s.end):
            out.append(
                _from_sighting(
                    TEMPLATE_SEEN,
                    f"In what location did I see the {obj}?",
                    obj,
                    "[verb_not_applicable]",
                    s,
                    "seen_once",
                )
            )
    return out


def where_is(c: ClipView) -> list[Query]:
    """The last place an object was seen lying, if it still lies there when the clip ends."""
    out = []
    by_obj: dict[str, list[Sighting]] = defaultdict(list)
    for s in c.sightings:
        by_obj[s.obj].append(s)
    for obj, seen in sorted(by_obj.items()):
        if len(seen) < 2:
            continue  # one sighting is asked as "In what location did I see ..."
        s = seen[-1]
        picked_later = any(e.kind == "pick" and e.obj == obj and e.end > s.start for e in c.events)
        if not picked_later and s.end - s.start <= MAX_SIGHTING_SECONDS and c.inside(s.start, s.end):
            plural = c.house.thing(obj).plural
            out.append(
                _from_sighting(
                    TEMPLATE_WHERE_IS,
                    f"Where {'are' if plural else 'is'} the {obj}?",
                    obj,
                    "[verb_not_applicable]",
                    s,
                    "last_seen",
                )
            )
    return out


def state_of_container(c: ClipView) -> list[Query]:
    """Whether a closable place was left open: answered by its last open/close in the clip."""
    out = []
    changes: dict[str, list[Event]] = defaultdict(list)
    for e in c.events:
        if e.kind in ("open", "close"):
            changes[e.place_in_view].append(e)
    for place, evs in sorted(changes.items()):
        last = evs[-1]
        if not c.inside(last.start, last.end):
            continue
        if last.kind == "close":
            text, verb = f"Did I close the {place}?", "close"
        else:
            text, verb = f"Did I leave the {place} open?", "leave open"
        out.append(_from_event(TEMPLATE_STATE, text, place, verb, last, "container_state"))
    return out


def how_many(c: ClipView) -> list[Query]:
    """Counts whose instances all happen close together, so one window covers them."""
    out = []
    groups = [
        ("put", lambda e: e.place, "How many things did I put {prep} the {key}?", "things", "put"),
        ("open", lambda e: e.place, "How many times did I open the {key}?", "times", "open"),
    ]
    for kind, key_fn, pattern, slot, verb in groups:
        for key, evs in sorted(_by(c.events, kind, key_fn).items()):
            start, end = evs[0].start, evs[-1].end
            if len(evs) >= 2 and end - start <= MAX_COUNT_SPAN_SECONDS and c.inside(start, end):
                text = pattern.format(prep=c.house.place(key).preposition, key=key)
                out.append(
                    Query(TEMPLATE_HOW_MANY, text, slot, verb, start, end, [e.idx for e in evs], f"count_{kind}")
                )
    return out


RULES: dict[str, Callable[[ClipView], list[Query]]] = {
    "put_once": where_did_i_put,
    "put_into_place": what_did_i_put_in,
    "pick_from_place": what_did_i_take,
    "before_after": where_before_after,
    "seen_once": where_did_i_see,
    "last_seen": where_is,
    "container_state": state_of_container,
    "count": how_many,
}


def clip_queries(clip: ClipView, rng: np.random.Generator, max_queries: int) -> list[Query]:
    """Up to ``max_queries`` questions, spread over templates, in time order; no two share a text."""
    candidates = [q for rule in RULES.values() for q in rule(clip)]
    texts: defaultdict[str, int] = defaultdict(int)
    for q in candidates:
        texts[q.query] += 1
    candidates = [q for q in candidates if texts[q.query] == 1]
    by_template: dict[str, list[Query]] = defaultdict(list)
    for q in candidates:
        by_template[q.template].append(q)
    pools = []
    for template in sorted(by_template):
        pool = by_template[template]
        pools.append([pool[i] for i in rng.permutation(len(pool))])
    pools = [pools[i] for i in rng.permutation(len(pools))]
    chosen: list[Query] = []
    while len(chosen) < max_queries and any(pools):
        for pool in pools:
            if pool and len(chosen) < max_queries:
                chosen.append(pool.pop())
    chosen.sort(key=lambda q: (q.start, q.end, q.query))
    return chosen
