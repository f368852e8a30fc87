"""World styles: how a synthetic world looks, moves and talks, so answers can be measured where nothing was tuned.

Every answer setting of EgoRecall (prompts, the question grammar, proposal lengths, fusion) was tuned on worlds
of one style. A figure measured on that style says how well the settings fit it, not how well they travel. A
:class:`WorldStyle` changes what an independent world would change -- the house's colours and layout, the
words for objects, places and rooms, the narrators' verbs, the way questions are phrased and typed, how long
actions last, how wide annotators draw answer windows, and the camera's motion -- while the event simulator,
the objects' shapes and the rules that decide what is asked stay the same, so the questions remain answerable.

The generator speaks one canonical English (the ``home`` style, exactly the worlds generated before styles
existed); a style is a *dialect* over it: ordered regular-expression rules, each with alternatives drawn per
sentence from a seeded generator, then whole-word renames. Styles are data and registered by name.

Two families never share a value (``tests/test_synthworld_style.py`` checks it): **tuning** styles, the only
ones anything may be tuned on, and **report** styles, on which figures are reported and nothing is tuned
afterwards. Report styles keep every object (an encoder cannot name what it never saw) but may rename it.

A world may also mix styles of one family (``home+terrace+bungalow``: video ``i`` is recorded in the ``i``-th
style, cyclically): a *corpus* of several houses and dialects, as a model trained once for every user learns
from many homes (``bench/bench_transfer.py``). A mix across families is refused: it would leak held-out styles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from training.synthworld.catalog import DEFAULT_HOUSE, House

Rule = tuple[str, tuple[str, ...]]
"""(pattern, alternatives): a regular expression and the replacements one of which is drawn per match."""


@dataclass(frozen=True)
class WorldStyle:
    name: str
    family: str
    """``tuning`` or ``report``."""
    renames: dict[str, str] = field(default_factory=dict)
    """Whole-word renames of objects, places and rooms in every text (narrations and questions)."""
    narration_rules: tuple[Rule, ...] = ()
    """Rewrites of canonical narrations ("#C C puts the mug in the fridge"), applied before the renames."""
    question_rules: tuple[Rule, ...] = ()
    """Rewrites of canonical questions ("Where did I put the mug?"), applied before the renames."""
    casual: float = 0.0
    """Share of questions typed casually: lower case, no question mark."""
    duration_scale: float = 1.0
    """Every action lasts this much longer (or shorter) than the canonical durations."""
    answer_pad_s: float = 0.0
    """Annotators' convention: answer windows drawn this much wider on each side (within the clip)."""
    shake: float = 1.0
    """Hand-held shake amplitude (1 = the canonical camera; at most 1, the frame margin's limit)."""
    pan_period_s: float = 23.0
    """Seconds of one slow pan across a room."""
    step_hz: float = 1.8
    """Walking bob frequency."""
    palette_shift: int = 0
    """Rooms take the wall and floor colours of the room this many places further in the house's list."""
    layout_seed: int | None = None
    """When set, the places of each room are rearranged along its walls (a permutation drawn from this seed)."""

    def house(self, base: House = DEFAULT_HOUSE) -> House:
        """The house as this style paints and lays it out (same rooms, places and objects)."""
        if self.palette_shift == 0 and self.layout_seed is None:
            return base
        return _styled_house(base, self.palette_shift, self.layout_seed)

    def narration(self, text: str, rng: np.random.Generator) -> str:
        return self._say(text, self.narration_rules, rng)

    def question(self, text: str, rng: np.random.Generator) -> str:
        text = self._say(text, self.question_rules, rng)
        if self.casual and rng.random() < self.casual:
            text = text.rstrip("?").lower()
        return text

    def rename(self, text: str) -> str:
        """Objects, places and rooms in the style's words."""
        for word, new in self.renames.items():
            text = re.sub(rf"\b{re.escape(word)}\b", new, text)
        return text

    def _say(self, text: str, rules: tuple[Rule, ...], rng: np.random.Generator) -> str:
        for pattern, alternatives in rules:

            def pick(m: re.Match[str], alt: tuple[str, ...] = alternatives) -> str:
                return m.expand(alt[int(rng.integers(len(alt)))])

            text = re.sub(pattern, pick, text)
        return self.rename(text)

    def describe(self) -> dict:
        """The style's knobs as plain data, for world.json."""
        return {
            "name": self.name,
            "family": self.family,
            "renames": dict(self.renames),
            "narration_rules": [[p, list(a)] for p, a in self.narration_rules],
            "question_rules": [[p, list(a)] for p, a in self.question_rules],
            "casual": self.casual,
            "duration_scale": self.duration_scale,
            "answer_pad_s": self.answer_pad_s,
            "shake": self.shake,
            "pan_period_s": self.pan_period_s,
            "step_hz": self.step_hz,
            "palette_shift": self.palette_shift,
            "layout_seed": self.layout_seed,
        }


_HOUSES: dict[tuple, House] = {}


def _styled_house(base: House, palette_shift: int, layout_seed: int | None) -> House:
    """Cached, so every video of a world shares one house object (and its drawn assets)."""
    key = (id(base), palette_shift, layout_seed)
    if key in _HOUSES:
        return _HOUSES[key]
    n = len(base.rooms)
    rooms = tuple(
        replace(r, wall=o.wall, floor=o.floor, floor_alt=o.floor_alt)
        for r, o in zip(base.rooms, [base.rooms[(i + palette_shift) % n] for i in range(n)])
    )
    places = list(base.places)
    if layout_seed is not None:
        rng = np.random.default_rng(layout_seed)
        for room in base.rooms:
            idx = [i for i, p in enumerate(places) if p.room == room.name]
            xs = [places[i].pano_x for i in idx]
            for i, j in zip(idx, rng.permutation(len(xs))):
                places[i] = replace(places[i], pano_x=xs[j])
    house = replace(base, rooms=rooms, places=tuple(places), _index={})
    _HOUSES[key] = house
    return house


# ------------------------------------------------------------------------------------------ the styles
HOME = WorldStyle("home", "tuning")
"""The canonical world: every world generated before styles existed, and the tuning worlds' style."""

FLAT = WorldStyle(
    "flat",
    "report",
    renames={
        "mug": "cup",
        "phone": "cellphone",
        "remote": "remote control",
        "bag": "backpack",
        "glasses": "spectacles",
        "counter": "worktop",
        "sofa": "couch",
        "cabinet": "cupboard",
        "nightstand": "bedside table",
        "box": "crate",
        "living room": "lounge",
        "office": "study",
        "hallway": "entryway",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C places the \1 \2 the", r"C leaves the \1 \2 the")),
        (r"C picks up the", (r"C grabs the", r"C lifts the")),
        (r"C takes the (.+?) out of the", (r"C removes the \1 from the",)),
        (r"C walks into the", (r"C enters the", r"C goes into the")),
        (r"C closes the", (r"C shuts the",)),
        (r"C looks at", (r"C glances at",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did I leave the \1?", r"Where did I place the \1?")),
        (r"^Where is the (.+)\?$", (r"where's the \1?",)),
        (r"^Where are the (.+)\?$", (r"where're the \1?", r"where are my \1?")),
        (r"^In what location did I see the (.+)\?$", (r"Where did I see the \1?",)),
        (r"^What did I put (in|on) the (.+)\?$", (r"What did I place \1 the \2?",)),
        (r"^Did I leave the (.+) open\?$", (r"is the \1 still open?",)),
        (r"^How many times did I open the (.+)\?$", (r"how often did I open the \1?",)),
        (r"^What object did I take out of the (.+)\?$", (r"what did I remove from the \1?",)),
        (r"\bI walked into the", (r"I entered the",)),
        (r"\bI put the (.+?) (in|on) the", (r"I placed the \1 \2 the",)),
    ),
    casual=0.3,
    duration_scale=1.3,
    answer_pad_s=0.5,
    shake=0.6,
    pan_period_s=31.0,
    step_hz=2.2,
    palette_shift=2,
    layout_seed=11,
)

COTTAGE = WorldStyle(
    "cottage",
    "report",
    renames={
        "wallet": "purse",
        "phone": "mobile",
        "book": "notebook",
        "bag": "handbag",
        "scissors": "shears",
        "fridge": "refrigerator",
        "sink": "basin",
        "shelf": "bookcase",
        "basket": "hamper",
        "bench": "hall bench",
        "office": "workroom",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C sets the \1 down \2 the", r"C drops the \1 \2 the")),
        (r"C picks up the (.+?) from the", (r"C takes the \1 off the",)),
        (r"C takes the (.+?) out of the", (r"C pulls the \1 out of the", r"C gets the \1 out of the")),
        (r"C walks into the", (r"C heads into the",)),
        (r"C opens the", (r"C pulls open the",)),
        (r"C looks around the", (r"C scans the",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did i set the \1 down?", r"Where did I drop the \1?")),
        (r"^Where is the (.+)\?$", (r"Where is my \1?", r"where could the \1 be?")),
        (r"^Where (was|were) the (.+) (after|before) (.+)\?$", (r"where \1 my \2 \3 \4?",)),
        (r"^In what location did I see the (.+)\?$", (r"where have I seen the \1?",)),
        (r"^What object did I pick up from the (.+)\?$", (r"what did I take off the \1?",)),
        (r"^Did I close the (.+)\?$", (r"did i shut the \1?",)),
        (r"\bI opened the", (r"I pulled open the",)),
        (r"\bI walked into the", (r"I headed into the",)),
    ),
    casual=0.5,
    duration_scale=0.8,
    answer_pad_s=1.0,
    shake=0.8,
    pan_period_s=17.0,
    step_hz=1.5,
    palette_shift=4,
    layout_seed=23,
)

LOFT = WorldStyle(
    "loft",
    "report",
    renames={
        "keys": "keyring",
        "mug": "coffee cup",
        "knife": "kitchen knife",
        "bottle": "water bottle",
        "remote": "tv remote",
        "table": "dining table",
        "desk": "work desk",
        "drawer": "dresser",
        "bedroom": "sleeping area",
        "living room": "family room",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C stashes the \1 \2 the", r"C places the \1 \2 the")),
        (r"C picks up the", (r"C collects the",)),
        (r"C walks to the", (r"C steps over to the",)),
        (r"C closes the", (r"C pushes shut the",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did I stash the \1?", r"where did I last put the \1?")),
        (r"^Where is the (.+)\?$", (r"Where is the \1 now?",)),
        (r"^Where are the (.+)\?$", (r"where are the \1 now?",)),
        (r"^What did I put (in|on) the (.+)\?$", (r"what went \1 the \2?",)),
        (r"^How many things did I put (in|on) the (.+)\?$", (r"how many items did I put \1 the \2?",)),
        (r"\bI closed the", (r"I pushed shut the",)),
        (r"\bI picked up the", (r"I collected the",)),
    ),
    casual=0.2,
    duration_scale=1.15,
    answer_pad_s=0.3,
    shake=0.45,
    pan_period_s=41.0,
    step_hz=2.0,
    palette_shift=3,
    layout_seed=37,
)

# Two more tuning houses, so a corpus can learn from several homes. Their words, verbs, phrasings and camera
# values are their own: none is a report style's (tests/test_synthworld_style.py), so a corpus of tuning styles
# still never hears or sees how a report world speaks or moves.
TERRACE = WorldStyle(
    "terrace",
    "tuning",
    renames={
        "mug": "teacup",
        "phone": "smartphone",
        "bag": "tote",
        "glasses": "eyeglasses",
        "sofa": "settee",
        "counter": "countertop",
        "cabinet": "sideboard",
        "living room": "sitting room",
        "hallway": "corridor",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C lays the \1 \2 the", r"C tucks the \1 \2 the")),
        (r"C picks up the", (r"C fetches the", r"C snatches up the")),
        (r"C walks into the", (r"C moves into the",)),
        (r"C opens the", (r"C swings open the",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did I lay the \1?", r"Where did I tuck the \1?")),
        (r"^Where is the (.+)\?$", (r"where is the \1 lying?",)),
        (r"^In what location did I see the (.+)\?$", (r"where did I spot the \1?",)),
        (r"^What did I put (in|on) the (.+)\?$", (r"what did I lay \1 the \2?",)),
        (r"\bI opened the", (r"I swung open the",)),
    ),
    casual=0.1,
    duration_scale=1.1,
    answer_pad_s=0.2,
    shake=0.7,
    pan_period_s=27.0,
    step_hz=1.7,
    palette_shift=1,
    layout_seed=5,
)

BUNGALOW = WorldStyle(
    "bungalow",
    "tuning",
    renames={
        "keys": "keychain",
        "wallet": "billfold",
        "book": "paperback",
        "bottle": "flask",
        "fridge": "icebox",
        "shelf": "ledge",
        "drawer": "chest of drawers",
        "bedroom": "guest room",
        "office": "den",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C parks the \1 \2 the", r"C rests the \1 \2 the")),
        (r"C takes the (.+?) out of the", (r"C fishes the \1 out of the",)),
        (r"C closes the", (r"C swings shut the",)),
        (r"C walks to the", (r"C wanders to the",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did I park the \1?", r"where did I rest the \1?")),
        (r"^Where are the (.+)\?$", (r"where are the \1 lying?",)),
        (r"^What object did I take out of the (.+)\?$", (r"what did I fish out of the \1?",)),
        (r"^Did I leave the (.+) open\?$", (r"was the \1 left open?",)),
        (r"\bI closed the", (r"I swung shut the",)),
    ),
    casual=0.4,
    duration_scale=0.9,
    answer_pad_s=0.15,
    shake=0.9,
    pan_period_s=19.0,
    step_hz=2.4,
    palette_shift=0,
    layout_seed=7,
)

CABIN = WorldStyle(
    "cabin",
    "tuning",
    renames={
        "remote": "clicker",
        "scissors": "snips",
        "knife": "blade",
        "counter": "benchtop",
        "table": "breakfast nook",
        "box": "carton",
        "nightstand": "night chest",
        "basket": "trug",
        "kitchen": "galley",
    },
    narration_rules=(
        (r"C puts the (.+?) (in|on) the", (r"C stows the \1 \2 the", r"C plonks the \1 \2 the")),
        (r"C picks up the", (r"C scoops up the",)),
        (r"C looks around the", (r"C surveys the",)),
        (r"C walks into the", (r"C ducks into the",)),
    ),
    question_rules=(
        (r"^Where did I put the (.+)\?$", (r"where did I stow the \1?", r"where did I plonk the \1?")),
        (r"^Where is the (.+)\?$", (r"whereabouts is the \1?",)),
        (r"^Where are the (.+)\?$", (r"whereabouts are the \1?",)),
        (r"\bI picked up the", (r"I scooped up the",)),
        (r"\bI walked into the", (r"I ducked into the",)),
    ),
    casual=0.25,
    duration_scale=1.05,
    answer_pad_s=0.1,
    shake=0.55,
    pan_period_s=29.0,
    step_hz=1.6,
    palette_shift=1,
    layout_seed=9,
)

STYLES: dict[str, WorldStyle] = {s.name: s for s in (HOME, TERRACE, BUNGALOW, CABIN, FLAT, COTTAGE, LOFT)}
TUNING_STYLES = tuple(n for n, s in STYLES.items() if s.family == "tuning")
REPORT_STYLES = tuple(n for n, s in STYLES.items() if s.family == "report")
MIX_SEPARATOR = "+"


def world_style(name: str) -> WorldStyle:
    try:
        return STYLES[name]
    except KeyError:
        raise KeyError(f"unknown world style {name!r}; styles: {', '.join(STYLES)}") from None


def world_styles(name: str) -> tuple[WorldStyle, ...]:
    """The styles a world's ``style`` names: one (``flat``), or a mix of one family (``home+terrace``)."""
    styles = tuple(world_style(part.strip()) for part in name.split(MIX_SEPARATOR))
    families = {s.family for s in styles}
    if len(families) > 1:
        raise KeyError(
            f"a world may mix styles of one family only ({name!r} mixes tuning and report styles: figures on a "
            "report style would no longer be held out)"
        )
    return styles


def video_style(name: str, index: int) -> WorldStyle:
    """The style video ``index`` of a world of style ``name`` is recorded in (a mix takes turns)."""
    styles = world_styles(name)
    return styles[index % len(styles)]


def describe_styles(name: str) -> dict:
    """A world's style as plain data for world.json: the style itself, or a mix with each of its styles."""
    styles = world_styles(name)
    if len(styles) == 1:
        return styles[0].describe()
    return {"name": name, "family": styles[0].family, "mix": [s.describe() for s in styles]}
