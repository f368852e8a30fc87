"""Questions -> what their answer's frames would be captioned or narrated as: weighted CLIP prompts.

Why: see :mod:`models.zeroshot` (CLIP and EgoRecall's narration-tuned CLIP never saw a *question*).

How (:func:`rewrite_question`):

1. :func:`normalize_text` (the one cleaning every text goes through), then contractions ("where's") and
   polite openers ("can you tell me") are undone.
2. Ego4D NLQ's query templates are recognised by regular expressions over the normalised text, each pulling
   out the phrases that matter: the *object* ("where did I put my keys" -> "the keys"), the *action*
   ("what did I pour into the bowl" -> "pour into the bowl"), a *place* ("who did I talk to in the
   kitchen" -> "the kitchen"), a *person*. Possessives become articles ("my keys" -> "the keys"), because
   captions and narrations say "the keys", never "my keys".
3. Each phrase yields a few weighted prompts: the object itself ("keys") and photo-style captions ("a photo
   of keys"); narration-style action phrases in the third person, as cleaned narrations read ("puts the
   keys") and a bare form ("put keys"); places as photos ("a photo of a kitchen"). The weights say how much
   a phrase is the *answer*: for "where did I put X" the object dominates, for "what did I pour into Y" the
   action does (the object is unknown), a place only hints.
4. A question no template recognises keeps its content words without the question words ("where", "did
   i"), and, as the last resort, the whole normalised question is the prompt.

The grammar is data: ``models/grammar/questions.json`` lists the rules (regular expressions over the
normalised question, tried in order, sharing word lists as fragments), loaded into :data:`_RULES`; each rule's
name has a prompt builder in :data:`_BUILDERS` (a test keeps the two in step).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.errors import EgoRecallError
from models.prompt_builder import PromptBuilder as _Builder
from models.prompt_builder import clean_phrase as _clean_phrase
from models.prompt_builder import possessive_to_article as _possessive_to_article
from models.text_normalize import normalize_text
from models.words import (
    SEEING_VERBS,
    bare,
    definite,
    is_noun,
    is_verb,
    singular,
    to_base_verb,
)


class EmptyQuestion(EgoRecallError):
    """The question is empty (or nothing is left of it once cleaned)."""


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float


@dataclass(frozen=True)
class Rewrite:
    """How one question was read: the template that matched, the phrases it found and the prompts made."""

    question: str
    normalized: str
    template: str
    """Name of the rule that matched (e.g. ``where_put``), ``content`` or ``fallback``."""
    prompts: tuple[Prompt, ...]
    object: str | None = None
    action: str | None = None
    place: str | None = None
    person: str | None = None
    relation: str | None = None
    """``before`` or ``after``: the answer is the object's moment on that side of the ``anchor`` event."""
    order: str | None = None
    """``last`` or ``first`` when the question asks for the latest or the earliest occurrence ("when did I last
    see my keys")."""
    anchor: tuple[Prompt, ...] = ()
    """Prompts of the event the answer is ordered against ("... before I opened the fridge")."""

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]


# ------------------------------------------------------------------------------------------ word tools
_CONTRACTIONS = (
    (re.compile(r"\b(where|what|who|how|when|which|that|there|it)'s\b"), r"\1 is"),
    (re.compile(r"\b(where|what|who|how|when|which)'re\b"), r"\1 are"),
    (re.compile(r"\b(did|do|does|was|were|is|are|have|has)n't\b"), r"\1 not"),
    (re.compile(r"\bi've\b"), "i have"),
    (re.compile(r"\bi'm\b"), "i am"),
    (re.compile(r"\b(where|what|who|how|when)'d\b"), r"\1 did"),
    (re.compile(r"\bcan't\b"), "can not"),
)
_OPENERS = re.compile(
    r"^(?:(?:hey|hi|ok|okay|so|please|um|uh)\b,?\s*)*"
    r"(?:(?:can|could|would) you (?:please )?(?:tell|show) me |(?:please )?(?:tell|show) me |"
    r"(?:(?:can|could|would) you )?(?:please )?help me (?:to )?(?:find |see |know )?|"
    r"do you know |i (?:want|need) to know |i wonder )?"
)
_ORDER = (("last", re.compile(r"\b(?:last|latest|most recent(?:ly)?)\b")), ("first", re.compile(r"\bfirst\b")))
"""Words that ask for one occurrence among several: the latest or the earliest (``Rewrite.order``)."""
_ORDER_ADVERB = re.compile(r"\b(i|we) (?:last|first|most recently|just) ")
_PRONOUN_QUESTION = re.compile(
    r"^(?!(?:where|when|what|who|how|which|did|do|is|are|was|were)\b)"
    r"(?P<lead>.*?\b(?:the|my|a|an|our|your) (?P<np>[a-z]+(?: (?!(?:where|when|what|did|how)\b)[a-z]+)?)) "
    r"(?P<q>(?:where|when|what|did|how) .*\b(?:it|them)\b.*)$"
)
_KIND_WORDS = re.compile(
    r"^(?:(?:object|objects|thing|things|item|items|color|colour|kind of|type of|sort of|"
    r"brand of|kinds of|types of)\s+)+"
)


def _object_phrase(phrase: str | None) -> str | None:
    """An object as asked about -> its definite form without words such as "object", "color"."""
    phrase = _clean_phrase(phrase)
    if not phrase:
        return None
    core = _KIND_WORDS.sub("", bare(phrase) + " ").strip()
    if not core or core in ("it", "them", "this", "that", "something", "anything", "stuff"):
        return None
    return definite(core)


def _prepare(question: str) -> str:
    text = question.replace("\u2019", "'").replace("\u2018", "'")
    text = normalize_text(text)
    text = " ".join(_TYPOS.get(w, w) for w in text.split())
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = _OPENERS.sub("", text, count=1)
    text = _ORDER_ADVERB.sub(r"\1 ", text)  # "when did i last put" -> "when did i put" (the order is kept apart)
    # An embedded question ("tell me where I put my glasses") has no auxiliary; give it the one templates expect.
    text = re.sub(
        r"^(where|what|when|who|(?:what|which|how many) (?!(?:did|do|have|had) )[a-z]+) i "
        r"(?!(?:did|do|have|had) )",
        r"\1 did i ",
        text,
    )
    text = re.sub(r"[\"“”?!.,;:]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    # "i can not find my keys where did i put them": the pronoun stands for the phrase the lead named.
    m = _PRONOUN_QUESTION.match(text)
    if m:
        text = re.sub(r"\b(?:it|them)\b", f"the {m['np']}", m["q"], count=1)
    # A leading time clause ("before I opened the fridge, where was the mug") goes where the templates have it.
    text = re.sub(
        r"^(?P<rel>before|after) (?P<event>(?:i|we) .+?) (?P<rest>where .+)$", r"\g<rest> \g<rel> \g<event>", text
    )
    return text


def _split_object_and_clause(text: str) -> tuple[str, str | None, str | None]:
    m = re.match(r"^(?P<obj>.+?) (?P<rel>before|after|when|while|once) (?P<event>.+)$", text)
    if m:
        return m["obj"], m["rel"], m["event"]
    return text, None, None


GRAMMAR_FILE = Path(__file__).with_name("grammar") / "questions.json"


def load_rules(path: Path = GRAMMAR_FILE) -> tuple[dict[str, str], list[tuple[str, re.Pattern]]]:
    """The question grammar as data: (fragments, [(rule name, compiled pattern)]) in the order they are tried.

    ``{NAME}`` in a pattern stands for ``fragments[NAME]`` (shared word lists such as prepositions)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    fragments = dict(doc["fragments"])
    rules = []
    for rule in doc["rules"]:
        pattern = rule["pattern"]
        for name, value in fragments.items():
            pattern = pattern.replace("{" + name + "}", value)
        rules.append((rule["name"], re.compile(pattern)))
    return fragments, rules


_FRAGMENTS, _RULES = load_rules()
_TYPOS: dict[str, str] = json.loads(GRAMMAR_FILE.read_text(encoding="utf-8"))["typos"]["words"]
_PLACE_PREPOSITIONS = _FRAGMENTS["PLACE_PREPOSITIONS"]

_OPENING_WORDS = frozenset(
    "where what when who whom whose which why how did do does is are was were can could "
    "would will should have has had".split()
)
"""A text opening with one of these is a question; its content words are kept without the question words."""
_QUESTION_WORDS = frozenset(
    "where what when who whom whose which why how many much did do does i is are was were have has had the my "
    "a an in on at of to me you can could would will should please there it".split()
)


EVENT_OBJECT_WEIGHT = 0.25
"""Weight of the object's prompts beside an event's action (1.0) in "where did I <verb> X" questions:
measured on bench/bench_answers.py ("Place: Where did I put X?")."""


ORDERING_RELATIONS = ("before", "after")


def _ordered_event(b: _Builder, found: dict, relation: str | None, clause: str | None) -> None:
    """ "Where was X before/after Y": Y is when to look, not what to look for, so it becomes the anchor that
    orders the answer (:func:`order_by_anchor`) instead of a prompt mixed into X's (which pulled the answer
    towards Y's moment, where X is often not in view: bench/bench_answers.py, R@1@0.3 14 -> 29). Other
    relations ("while Y") keep Y as a weak prompt of their own."""
    if not clause:
        return
    if relation in ORDERING_RELATIONS:
        anchor = _Builder()
        anchor.event(clause, 1.0)
        found.update(relation=relation, anchor=tuple(Prompt(t, round(w, 4)) for t, w in anchor.prompts.items()))
    else:
        b.event(clause, 0.4)


# One builder per rule of :data:`_RULES`: each turns the rule's named groups into weighted prompts (``b``)
# and the phrases it found (``found``).


def _where_is_relative(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    _ordered_event(b, found, g["rel"], _clean_phrase(g["event"]))
    found.update(object=obj, action=_clean_phrase(g["event"]))


def _seen_location(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    if g["verb"] not in SEEING_VERBS:
        b.action(g["verb"], obj, 0.5)
    found.update(object=obj)


def _where_verb(b: _Builder, g: dict, found: dict) -> None:
    text, _rel, event = _split_object_and_clause(g["obj"])
    obj = _object_phrase(text)
    verb = to_base_verb(g["verb"])
    if verb not in SEEING_VERBS and obj:
        # An event ("where did I put X"): its moment is the action, not every frame where X is visible,
        # so the narration of the action leads and the object only steadies it.
        particle = g.get("p1") or g.get("p2")
        b.action(verb, f"{particle} {obj}" if particle else obj, 1.0)
        b.obj(obj, EVENT_OBJECT_WEIGHT)
        found["action"] = f"{verb} {obj}"
    else:
        b.obj(obj, 1.0)
    _ordered_event(b, found, _rel, _clean_phrase(event))
    found["object"] = obj


def _where_is(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    found["object"] = obj


def _what_verb_prep(b: _Builder, g: dict, found: dict) -> None:
    place = _object_phrase(g["place"])
    verb = to_base_verb(g["verb"])
    prep = g["prep"]
    particle = f"{g['particle']} " if g.get("particle") else ""
    b.action(verb, f"{particle}something {prep} {place}", 1.0)
    b.action(verb, f"{particle}{prep} {place}", 0.75)
    b.obj(place, 0.5)
    found.update(action=f"{verb} {particle}{prep} {place}", place=place)


def _what_thing_did_i(b: _Builder, g: dict, found: dict) -> None:
    thing = _object_phrase(g["thing"])
    verb = to_base_verb(g["verb"])
    rest = _possessive_to_article(_clean_phrase(g["rest"]) or "")
    target = thing or "something"
    b.action(verb, f"{target} {rest}", 1.0)
    b.obj(thing, 0.75)
    place = re.match(rf"^(?:{_PLACE_PREPOSITIONS}) (?P<place>.+)$", rest)
    if place:
        b.obj(_object_phrase(place["place"]), 0.5)
    found.update(
        object=thing,
        action=f"{verb} {target} {rest}".strip(),
        place=_object_phrase(place["place"]) if place else None,
    )


def _what_did_i(b: _Builder, g: dict, found: dict) -> None:
    verb = to_base_verb(g["verb"])
    rest = _possessive_to_article(_clean_phrase(g["rest"]) or "")
    b.action(verb, rest or "something", 1.0)
    found.update(action=f"{verb} {rest}".strip())


def _how_many_times(b: _Builder, g: dict, found: dict) -> None:
    verb = to_base_verb(g["verb"])
    rest = _possessive_to_article(_clean_phrase(g["rest"]) or "")
    b.action(verb, rest, 1.0)
    b.obj(_object_phrase(rest), 0.5)
    found.update(action=f"{verb} {rest}".strip(), object=_object_phrase(rest))


def _how_many_did_i(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    verb = to_base_verb(g["verb"])
    rest = _possessive_to_article(_clean_phrase(g["rest"]) or "")
    one = obj and definite(singular(bare(obj)))
    b.obj(obj, 1.0)
    if obj:
        b.action(verb, f"{one} {rest}", 0.75)
        b.action(verb, f"{obj} {rest}", 0.5)
    found.update(object=obj, action=f"{verb} {obj or ''} {rest}".strip())


def _how_many_are(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    b.place(g.get("place"), 0.5)
    found.update(object=obj, place=_clean_phrase(g.get("place")))


def _who_interact(b: _Builder, g: dict, found: dict) -> None:
    verb = to_base_verb(g["verb"])
    b.person(None, 1.0)
    b.action(verb, "to a person" if verb in ("talk", "speak", "chat") else "with a person", 0.75)
    b.place(g.get("place"), 0.5)
    b.event(_clean_phrase(g.get("event")), 0.5)
    found.update(person="a person", place=_clean_phrase(g.get("place")), action=_clean_phrase(g.get("event")))


def _when_person(b: _Builder, g: dict, found: dict) -> None:
    role = _clean_phrase(g.get("role")) or g["noun"]
    verb = to_base_verb(g["verb"])
    b.person(role, 1.0)
    b.action(verb, f"{'to' if verb in ('talk', 'speak', 'chat') else 'with'} the {bare(role)}", 0.5)
    found.update(person=role)


def _where_person(b: _Builder, g: dict, found: dict) -> None:
    person = _clean_phrase(g["person"])
    b.person(person, 1.0)
    found.update(person=person)


def _who_other(b: _Builder, g: dict, found: dict) -> None:
    b.person(None, 1.0)
    rest = _clean_phrase(g["rest"])
    if rest:
        b.add(re.sub(r"^(?:did|was|were|is) ", "", _possessive_to_article(rest)), 0.5)
    found.update(person="a person", action=rest)


def _when_did_i_or_did_i(b: _Builder, g: dict, found: dict) -> None:
    clause = _clean_phrase(g["action"]) or ""
    b.event(clause, 1.0)
    words = clause.split()
    obj = _object_phrase(" ".join(words[1:])) if len(words) > 1 else None
    if obj and obj.split()[-1] in ("open", "closed", "on", "off"):  # "leave the door open"
        obj = definite(" ".join(bare(obj).split()[:-1])) if len(bare(obj).split()) > 1 else None
    b.obj(obj, 0.4)
    found.update(action=clause, object=obj)


def _state(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    if obj:
        b.add(f"{bare(obj)} {g['state']}", 1.0)
        b.add(f"{obj} is {g['state']}", 1.0)
        b.obj(obj, 0.5)
    found.update(object=obj)


def _what_attribute(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    found.update(object=obj)


def _what_is_place(b: _Builder, g: dict, found: dict) -> None:
    place = _object_phrase(g["place"])
    b.obj(place, 0.75)
    b.add(f"something {g['prep']} {place}", 0.5)
    found.update(place=place)


def _what_is(b: _Builder, g: dict, found: dict) -> None:
    rest = _clean_phrase(g["rest"])
    obj = _object_phrase(re.sub(r"^(?:the )?(?:state|colou?r|size|shape|name|brand) of ", "", rest or ""))
    b.obj(obj, 1.0)
    found.update(object=obj)


_BUILDERS: dict[str, Callable[[_Builder, dict, dict], None]] = {
    "where_is_relative": _where_is_relative,
    "seen_location": _seen_location,
    "where_verb": _where_verb,
    "where_is": _where_is,
    "what_verb_prep": _what_verb_prep,
    "what_thing_did_i": _what_thing_did_i,
    "what_did_i": _what_did_i,
    "how_many_times": _how_many_times,
    "how_many_did_i": _how_many_did_i,
    "how_many_are": _how_many_are,
    "who_interact": _who_interact,
    "when_person": _when_person,
    "where_person": _where_person,
    "who_other": _who_other,
    "when_did_i": _when_did_i_or_did_i,
    "did_i": _when_did_i_or_did_i,
    "state": _state,
    "what_attribute": _what_attribute,
    "what_is_place": _what_is_place,
    "what_is": _what_is,
    "where_end_up": _where_is,
    "looking_for": _where_is,
    "location_of": _where_is,
}
"""Rule name -> its prompt builder (every rule of :data:`_RULES` has one; a test keeps them in step)."""


def _build(rule: str, m: re.Match) -> tuple[_Builder, dict]:
    b = _Builder()
    found: dict[str, str | None] = {}
    _BUILDERS[rule](b, m.groupdict(), found)
    return b, found


def rewrite_question(question: str) -> Rewrite:
    """Read a question as Ego4D NLQ asks them and make its weighted prompts (see the module docstring).

    Raises :class:`EmptyQuestion` when nothing is left once cleaned.
    """
    if question is None or not str(question).strip():
        raise EmptyQuestion('the question is empty; ask something like "where did I put my keys?"')
    normalized = normalize_text(question)
    text = _prepare(question)
    if not normalized or not text:
        raise EmptyQuestion(
            f"the question {str(question).strip()!r} has no words left once cleaned; ask something "
            'like "where did I put my keys?"'
        )
    for rule, pattern in _RULES:
        m = pattern.match(text)
        if not m:
            continue
        builder, found = _build(rule, m)
        if builder.prompts:
            return _finish(question, normalized, rule, builder, found)
    anyway = _read_anyway(text)
    if anyway is not None:
        return _finish(question, normalized, "found", *anyway)
    words = text.split()
    content = [w for w in words if w not in _QUESTION_WORDS]
    builder = _Builder()
    if words[0] in _OPENING_WORDS and content and len(content) < len(words):
        phrase = _possessive_to_article(" ".join(content))
        builder.add(phrase, 1.0)
        builder.add(f"a photo of {phrase}", 1.0)
        builder.add(text, 0.5)
        return _finish(question, normalized, "content", builder, {"object": phrase})
    builder.add(text, 1.0)
    return _finish(question, normalized, "fallback", builder, {})


_SEARCH_VERBS = SEEING_VERBS | frozenset("locate search show help know get keep".split())
_NOT_OBJECTS = _QUESTION_WORDS | frozenset(
    "it them this that something anything somewhere here there whatever everything nothing stuff thing things".split()
)
_NAMED = re.compile(r"\b(?:the|my|a|an|our|your|his|her|their) (?P<np>[a-z]+(?: [a-z]+)?)")


@functools.lru_cache(maxsize=1)
def _vocabulary_names() -> tuple[frozenset[str], int]:
    """The presence vocabulary's names and their plurals in "s", and the most words one has: a question is
    matched against them word by word (a regular expression per name recompiled ~650 patterns a question,
    80 ms, once Python's pattern cache overflowed: bench_query's profile)."""
    from models.presence import vocabulary

    names = frozenset(w for name in vocabulary() for w in (name, name + "s"))
    return names, max((len(n.split()) for n in names), default=1)


def _known_object(text: str) -> str | None:
    """The object a text names: an everyday name the presence vocabulary knows (longest first), else the words
    after its last determiner (up to a preposition or question word), else its last noun."""
    names, longest = _vocabulary_names()
    words = text.split()
    for i in range(len(words)):  # the first named object wins, the longest name there
        if i and words[i - 1] in ("i", "we", "you"):  # "i saw", "i drill": verbs
            continue
        for n in range(min(longest, len(words) - i), 0, -1):
            written = " ".join(words[i : i + n])
            if written in names:
                return definite(written)
    named = [m["np"].split() for m in _NAMED.finditer(text)]
    for words in reversed(named):
        kept = []
        for w in words:
            if w in _NOT_OBJECTS or w in _PLACE_PREPOSITIONS.split("|"):
                break
            kept.append(w)
        if kept:
            return definite(" ".join(kept))
    nouns = [w for w in text.split() if w not in _NOT_OBJECTS and len(w) > 2 and is_noun(w)]
    return definite(nouns[-1]) if nouns else None


def _read_anyway(text: str) -> tuple[_Builder, dict] | None:
    """A question no rule reads ("i saw the mug somewhere where", "mug"): its object, and the action done to
    it when the text says one after "i" ("... i stashed the keys ..."). Object-led like "where is X", or
    action-led like "where did I put X" when the action is a manipulation, not seeing or searching."""
    obj = _known_object(text)
    if obj is None:
        return None
    b = _Builder()
    found: dict = {"object": obj}
    m = re.search(r"\bi (?:did |have |had )?(?P<verb>[a-z]+)\b", text)
    verb = to_base_verb(m["verb"]) if m and is_verb(m["verb"]) else None
    if verb and verb not in _SEARCH_VERBS and verb not in ("be", "have", "do", "can", "will", "am"):
        b.action(verb, obj, 1.0)
        b.obj(obj, EVENT_OBJECT_WEIGHT)
        found["action"] = f"{verb} {obj}"
    else:
        b.obj(obj, 1.0)
    return b, found


def _finish(question: str, normalized: str, rule: str, builder: _Builder, found: dict) -> Rewrite:
    prompts = tuple(Prompt(t, round(w, 4)) for t, w in builder.prompts.items())
    order = next((name for name, pattern in _ORDER if pattern.search(normalized)), None)
    return Rewrite(
        question=str(question),
        normalized=normalized,
        template=rule,
        prompts=prompts,
        **{k: found.get(k) for k in ("object", "action", "place", "person", "relation")},
        anchor=found.get("anchor", ()),
        order=order,
    )
