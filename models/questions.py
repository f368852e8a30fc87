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
normalised question, tried in order, sharing word lists as fragments), loaded by :mod:`models.question_text`;
each rule's name has a prompt builder in :data:`_BUILDERS` (a test keeps the two in step). A question no rule
reads is read by :mod:`models.question_fallback`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from models.errors import EgoRecallError
from models.prompt_builder import EVENT_OBJECT_WEIGHT
from models.prompt_builder import PromptBuilder as _Builder
from models.prompt_builder import clean_phrase as _clean_phrase
from models.prompt_builder import possessive_to_article as _possessive_to_article
from models.question_fallback import read_anyway
from models.question_text import (
    OPENING_WORDS,
    PARTICLES,
    PLACE_PREPOSITION_WORDS,
    PLACE_PREPOSITIONS,
    PREPOSITION_WORDS,
    PREPOSITIONS,
    QUESTION_WORDS,
    RULES,
    order_of,
    prepare_question,
)
from models.text_normalize import normalize_text
from models.words import (
    SEEING_VERBS,
    bare,
    definite,
    singular,
    third_person,
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
_KIND_WORDS = re.compile(
    r"^(?:(?:object|objects|thing|things|item|items|color|colour|kind of|type of|sort of|"
    r"brand of|kinds of|types of)\s+)+"
)


_NOT_A_THING = frozenset(
    "it them they these those this that he she him her us something anything stuff everything".split()
)
"""What an object phrase may say that names no object: pronouns and placeholders."""


def _object_phrase(phrase: str | None) -> str | None:
    """An object as asked about -> its definite form without words such as "object", "color"."""
    phrase = _clean_phrase(phrase)
    if not phrase:
        return None
    core = _KIND_WORDS.sub("", bare(phrase) + " ").strip()
    if not core or core in _NOT_A_THING:
        return None
    return definite(core)


def _split_object_and_clause(text: str) -> tuple[str, str | None, str | None]:
    """ "the mug before i opened the fridge" -> (the mug, before, i opened the fridge); the phrase may be empty
    ("[hold] when i opened the door")."""
    m = re.match(r"^(?:(?P<obj>.+?) )?(?P<rel>before|after|when|while|once) (?P<event>.+)$", text)
    if m:
        return m["obj"] or "", m["rel"], m["event"]
    return text, None, None


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
        if " " not in clause and not clause.endswith("ing"):  # "after lunch": a thing that happens, not a verb
            anchor.add(clause, 1.0)
        else:
            anchor.event(clause, 1.0)
        found.update(relation=relation, anchor=tuple(Prompt(t, round(w, 4)) for t, w in anchor.prompts.items()))
    else:
        b.event(clause, 0.4)


# One builder per rule of :data:`RULES`: each turns the rule's named groups into weighted prompts (``b``)
# and the phrases it found (``found``).


def _where_is_relative(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    _ordered_event(b, found, g["rel"], _clean_phrase(g["event"], clause=True))
    found.update(object=obj, action=_clean_phrase(g["event"], clause=True))


def _seen_location(b: _Builder, g: dict, found: dict) -> None:
    obj = _object_phrase(g["obj"])
    b.obj(obj, 1.0)
    if g["verb"] not in SEEING_VERBS:
        b.action(g["verb"], obj, 0.5)
    found.update(object=obj)


def _where_verb(b: _Builder, g: dict, found: dict) -> None:
    text, _rel, event = _split_object_and_clause(g["obj"])
    trailing = g.get("p2")
    if event and trailing:  # "... before i went out": the last word ends the event, not "put X out"
        event, trailing = f"{event} {trailing}", None
    words = text.split()
    if event and len(words) > 1 and words[-1] in PARTICLES:  # "put the keys down before ..."
        text, trailing = " ".join(words[:-1]), words[-1]
    obj = _object_phrase(text)
    verb = to_base_verb(g["verb"])
    if verb not in SEEING_VERBS and obj:
        # An event ("where did I put X"): its moment is the action, not every frame where X is visible,
        # so the narration of the action leads and the object only steadies it.
        particle = g.get("p1") or trailing
        b.action(verb, f"{particle} {obj}" if particle else obj, 1.0)
        b.obj(obj, EVENT_OBJECT_WEIGHT)
        found["action"] = f"{verb} {obj}"
    else:
        b.obj(obj, 1.0)
    _ordered_event(b, found, _rel, _clean_phrase(event, clause=True))
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
    ending = re.match(rf"^(?P<what>.+) (?P<prep>{PREPOSITIONS})$", g["rest"] or "")
    if thing and ending:  # "which drawer did I put the spoon in": the thing asked for ends the action
        _thing_at_the_end(b, found, thing, verb, _object_phrase(ending["what"]), ending["prep"])
        return
    rest = _possessive_to_article(_clean_phrase(g["rest"]) or "")
    target = thing or "something"
    b.action(verb, f"{target} {rest}", 1.0)
    b.obj(thing, 0.75)
    place = re.match(rf"^(?:{PLACE_PREPOSITIONS}) (?P<place>.+)$", rest)
    if place:
        b.obj(_object_phrase(place["place"]), 0.5)
    found.update(
        object=thing,
        action=f"{verb} {target} {rest}".strip(),
        place=_object_phrase(place["place"]) if place else None,
    )


def _thing_at_the_end(b: _Builder, found: dict, thing: str, verb: str, obj: str | None, prep: str) -> None:
    """ "Which drawer did I put the spoon in" -> "puts the spoon in the drawer": the drawer is the place asked
    for, the spoon the object; "which knife did I cut the bread with" -> the knife is the object."""
    target = obj or "something"
    b.action(verb, f"{target} {prep} {thing}", 1.0)
    b.obj(thing, 0.75)
    if prep in PLACE_PREPOSITION_WORDS:
        b.obj(obj, 0.5)
        found.update(object=obj, place=thing, action=f"{verb} {target} {prep} {thing}")
    else:
        found.update(object=thing, action=f"{verb} {target} {prep} {thing}")


def _what_did_i(b: _Builder, g: dict, found: dict) -> None:
    verb = to_base_verb(g["verb"])
    rest, relation, event = _split_object_and_clause(g["rest"] or "")
    rest = _possessive_to_article(_clean_phrase(rest) or "")
    b.action(verb, rest or "something", 1.0)
    _ordered_event(b, found, relation, _clean_phrase(event, clause=True))  # "... when I opened the door"
    found.update(action=f"{verb} {rest}".strip())


def _what_did_other(b: _Builder, g: dict, found: dict) -> None:
    """ "What did the man give me": the other person's action, as Ego4D narrates others ("the man gives ...");
    "me" is the camera wearer, whom the frames never show."""
    person = _possessive_to_article(g["person"])
    verb = to_base_verb(g["verb"])
    rest = re.sub(r"^(?:to )?(?:me|us)\b ?", "", _possessive_to_article(_clean_phrase(g["rest"]) or "")).strip()
    if not rest or rest.split()[0] in PREPOSITION_WORDS:  # "put on the table": put something there
        rest = f"something {rest}".strip()
    b.add(f"{person} {third_person(verb)} {rest}", 1.0)
    b.person(bare(person), 0.5)
    found.update(person=person, action=f"{verb} {rest}")


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
    if not obj:  # "how many things did I put on the bed": putting something there, the place named
        where = re.match(rf"^(?:{PLACE_PREPOSITIONS}) (?P<place>.+)$", rest)
        place = _object_phrase(where["place"]) if where else None
        b.action(verb, f"something {rest}".strip(), 1.0)
        b.obj(place, 0.5)
        found.update(action=f"{verb} something {rest}".strip(), place=place)
        return
    one = definite(singular(bare(obj)))
    b.obj(obj, 1.0)
    if rest in PREPOSITION_WORDS:  # "how many people did i talk to": talks to a person
        b.action(verb, f"{rest} {one}", 0.75)
        found.update(object=obj, action=f"{verb} {rest} {obj}")
        return
    b.action(verb, f"{one} {rest}", 0.75)
    b.action(verb, f"{obj} {rest}", 0.5)
    found.update(object=obj, action=f"{verb} {obj} {rest}".strip())


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
    clause, relation, event = _split_object_and_clause(g["action"])
    clause = _clean_phrase(clause) or ""
    b.event(clause, 1.0)
    _ordered_event(b, found, relation, _clean_phrase(event, clause=True))  # "... before i left"
    words = clause.split()[1:]  # after the verb
    if len(words) > 1 and words[0] in PARTICLES:  # "put down the keys", "turn off the stove"
        words = words[1:]
    if len(words) > 1 and words[-1] in PARTICLES and words[-1] not in ("on", "off"):  # "pick the mug up"
        words = words[:-1]
    words = " ".join(words).removesuffix(" with me").removesuffix(" with us").split()  # "take my keys with me"
    where = re.match(rf"^(?P<obj>.+?) (?:{PLACE_PREPOSITIONS}) (?P<place>(?:the|my|a|an|our) .+)$", " ".join(words))
    place = _object_phrase(where["place"]) if where else None  # "did i see my phone in the bedroom"
    obj = _object_phrase(where["obj"] if where else " ".join(words)) if words else None
    if obj and obj.split()[-1] in ("open", "closed", "on", "off"):  # "leave the door open"
        obj = definite(" ".join(bare(obj).split()[:-1])) if len(bare(obj).split()) > 1 else None
    b.obj(obj, 0.4)  # the place is in the event's own prompt already
    found.update(action=clause, object=obj, place=place)


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
    "what_did_other": _what_did_other,
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
"""Rule name -> its prompt builder (every rule the grammar file lists has one; a test keeps them in step)."""


def _build(rule: str, m: re.Match) -> tuple[_Builder, dict]:
    b = _Builder()
    found: dict[str, str | None] = {}
    _BUILDERS[rule](b, m.groupdict(), found)
    return b, found


_SENTENCE_BREAK = re.compile(r"(?<=[?!.])\s+")
_BACK_REFERENCE = re.compile(r"\b(?:it|them|they|one)\b", re.IGNORECASE)
UNREAD_TEMPLATES = frozenset({"found", "content", "fallback"})
"""Templates of a text no grammar rule read (the object-finding fallback, content words, the text itself)."""


def rewrite_question(question: str) -> Rewrite:
    """Read a question as Ego4D NLQ asks them and make its weighted prompts (see the module docstring).

    Typed text often holds more than one sentence ("where is my passport?? i need it now", "Help! where are my
    keys?"): the first sentence a rule reads is the question, unless it points back at an earlier one ("... my
    wallet. Where did I put it?", read whole). Raises :class:`EmptyQuestion` when nothing is left once cleaned.
    """
    if question is None or not str(question).strip():
        raise EmptyQuestion('the question is empty; ask something like "where did I put my keys?"')
    sentences = [s for s in _SENTENCE_BREAK.split(str(question).strip()) if s.strip()]
    for sentence in sentences if len(sentences) > 1 else ():
        if _BACK_REFERENCE.search(sentence):
            continue
        try:
            read = _rewrite_sentence(sentence)
        except EmptyQuestion:  # "ok." before the question
            continue
        if read.template not in UNREAD_TEMPLATES:
            whole = normalize_text(question)
            order = read.order or order_of(whole)
            return replace(read, question=str(question), normalized=whole, order=order)
    return _rewrite_sentence(question)


def _rewrite_sentence(question: str) -> Rewrite:
    normalized = normalize_text(question)
    text = prepare_question(question)
    if not normalized or not text:
        raise EmptyQuestion(
            f"the question {str(question).strip()!r} has no words left once cleaned; ask something "
            'like "where did I put my keys?"'
        )
    for rule, pattern in RULES:
        m = pattern.match(text)
        if not m:
            continue
        builder, found = _build(rule, m)
        if builder.prompts:
            return _finish(question, normalized, rule, builder, found)
    anyway = read_anyway(text)
    if anyway is not None:
        return _finish(question, normalized, "found", *anyway)
    words = text.split()
    content = [w for w in words if w not in QUESTION_WORDS]
    builder = _Builder()
    if words[0] in OPENING_WORDS and content and len(content) < len(words):
        phrase = _possessive_to_article(" ".join(content))
        builder.add(phrase, 1.0)
        builder.add(f"a photo of {phrase}", 1.0)
        builder.add(text, 0.5)
        return _finish(question, normalized, "content", builder, {"object": phrase})
    builder.add(text, 1.0)
    return _finish(question, normalized, "fallback", builder, {})


def _finish(question: str, normalized: str, rule: str, builder: _Builder, found: dict) -> Rewrite:
    prompts = tuple(Prompt(t, round(w, 4)) for t, w in builder.prompts.items())
    return Rewrite(
        question=str(question),
        normalized=normalized,
        template=rule,
        prompts=prompts,
        **{k: found.get(k) for k in ("object", "action", "place", "person", "relation")},
        anchor=found.get("anchor", ()),
        order=order_of(normalized),
    )
