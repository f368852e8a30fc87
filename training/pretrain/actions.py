"""Verb and noun of a narration, for EgoNCE's action-aware positives.

EgoNCE (EgoVLP) counts two narrations in a batch as a positive pair when they share a verb AND a noun
("puts the mug in the fridge" and "puts the mug on the table" both show putting a mug). EgoClip ships verb and
noun class ids per narration (``tag_verb``/``tag_noun``); Ego4D's ``narration.json`` does not, so here the two
are read off the *normalised* narration (:func:`models.text_normalize.normalize_text`) with a few rules that
fit how Ego4D narrations are written -- subject, verb, object:

* the camera wearer's narrations start with the verb ("picks up the wallet from the bed"); another person's
  start with the person ("man opens the door", "someone hands me a cup"), which is skipped;
* the verb is the first word after the subject, in its base form by suffix rules (picks -> pick,
  carries -> carry, washes -> wash, puts -> put); particles are not kept ("picks up" and "picks" are one
  action, as in EgoClip's verb classes);
* the noun is the head of the first noun phrase after the verb: prepositions, particles and determiners are
  skipped ("looks at the phone" -> phone), and the phrase ends at the next preposition, conjunction,
  determiner or -ing word ("the kitchen knife on the board" -> knife); measures are read through
  ("a piece of cloth" -> cloth).

Rules, not a parser: they are wrong now and then ("C dips the brush"), which costs an occasional false
positive among a batch's negatives -- the same noise EgoClip's own tags carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.text_normalize import PERSON_NOUNS

__all__ = ["Action", "action_of", "base_verb"]

SUBJECTS = PERSON_NOUNS | {"someone", "somebody", "people", "he", "she", "they", "c", "o"}
DETERMINERS = frozenset(
    "the a an some any his her their its my your our this that these those another other each every both "
    "all few several more most one two three four five me".split()
)
QUANTITIES = frozenset("piece pieces pair pairs bunch handful cup slice slices bit bits lot lots".split())
"""Heads that are really measures: "a piece of cloth" is about cloth."""
LINKS = frozenset(
    "on in into onto from to with at by for under over above below behind beside near inside outside off out "
    "up down and or while as then again away back around through across along towards toward of".split()
)
"""Prepositions, particles and conjunctions: skipped between the verb and its object, end the object."""
_WORD = re.compile(r"[a-z][a-z'-]*")
_NO_STRIP = frozenset("is was has does goes this bus gas glass grass dress process across".split())


def base_verb(word: str) -> str:
    """Third-person singular -> base form by suffix rules (narrations are written in the present tense)."""
    if word in _NO_STRIP or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Action:
    """What a narration shows someone doing, as keys for positive matching ("" when unknown)."""

    verb: str
    noun: str


def action_of(text: str) -> Action:
    """The (verb, noun) of one normalised narration; either may be "" when the rules find none."""
    words = _WORD.findall(text.lower())
    i = 0
    while i < len(words) and words[i] in SUBJECTS:
        i += 1
    if i >= len(words):
        return Action("", "")
    verb = base_verb(words[i])
    i += 1
    noun = ""
    while i < len(words):
        while i < len(words) and (words[i] in DETERMINERS or words[i] in LINKS):
            i += 1
        while (
            i < len(words)
            and words[i] not in LINKS
            and words[i] not in DETERMINERS
            and not (noun and words[i].endswith("ing"))
        ):
            noun = words[i]
            i += 1
        if noun not in QUANTITIES or i >= len(words) or words[i] != "of":
            break
        noun = ""  # "a piece of cloth": read on to the real noun
    return Action(verb, noun)
