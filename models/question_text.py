"""A question's text made ready for the grammar: typos, contractions and polite openers undone, and the
grammar itself loaded as data (``models/grammar/questions.json``).

Why apart from :mod:`models.questions`: the cleaning and the word lists are shared by the rules and by the
fallback reader (:mod:`models.question_fallback`), which must not import each other."""

from __future__ import annotations

import json
import re
from pathlib import Path

from models.text_normalize import normalize_text

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


FRAGMENTS, RULES = load_rules()
_TYPOS: dict[str, str] = json.loads(GRAMMAR_FILE.read_text(encoding="utf-8"))["typos"]["words"]
PLACE_PREPOSITIONS = FRAGMENTS["PLACE_PREPOSITIONS"]
PREPOSITIONS = FRAGMENTS["PREPOSITIONS"]
PLACE_PREPOSITION_WORDS = frozenset(PLACE_PREPOSITIONS.split("|"))
PREPOSITION_WORDS = frozenset(PREPOSITIONS.split("|"))
PARTICLES = frozenset(FRAGMENTS["PARTICLES"].split("|"))
"""Words that go with a verb ("put *down*", "pick *up*"), not with the object after or before them."""

OPENING_WORDS = frozenset(
    "where what when who whom whose which why how did do does is are was were can could "
    "would will should have has had".split()
)
"""A text opening with one of these is a question; its content words are kept without the question words."""
QUESTION_WORDS = frozenset(
    "where what when who whom whose which why how many much did do does i is are was were have has had the my "
    "a an in on at of to me you can could would will should please there it".split()
)

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
ORDER_WORDS = (("last", re.compile(r"\b(?:last|latest|most recent(?:ly)?)\b")), ("first", re.compile(r"\bfirst\b")))
"""Words that ask for one occurrence among several: the latest or the earliest (``Rewrite.order``)."""


def order_of(normalized: str) -> str | None:
    """``last`` / ``first`` when a normalised question asks for the latest or the earliest occurrence."""
    return next((name for name, pattern in ORDER_WORDS if pattern.search(normalized)), None)


_ORDER_ADVERB = re.compile(r"\b(i|we) (?:last|first|most recently|just) ")
_ORDER_PHRASE = re.compile(r" (?:for )?the (?:very )?(?:first|last) time(?: (?:that )?(?:i|we) [a-z ]+)?$")
"""A trailing "(for) the first / last time (I saw it)": an order (read apart, :data:`ORDER_WORDS`), not part of
the object."""
_PRONOUN_QUESTION = re.compile(
    r"^(?!(?:where|when|what|who|how|which|did|do|is|are|was|were)\b)"
    r"(?P<lead>.*?\b(?:the|my|a|an|our|your) (?P<np>[a-z]+(?: (?!(?:where|when|what|did|how)\b)[a-z]+)?)) "
    r"(?P<q>(?:where|when|what|did|how) .*\b(?:it|them)\b.*)$"
)


_SPOKEN = (
    (re.compile(r"^were (?=(?:did|do|does|is|are|was|have|had) )"), "where "),  # "were did i put"
    # "what was i holding", "what were we eating": what did i hold / eat
    (re.compile(r"^what (?:was|were) (?:i|we) ([a-z]+ing)\b"), r"what did i \1"),
    # "where was i sitting", "where did i park": the moment of the activity, which shows where
    (re.compile(r"^where (?:was|were) (?:i|we) ([a-z]+ing)\b"), r"when did i \1"),
    (re.compile(r"^where (?:did|do|have|had) (?:i|we) ([a-z]+)[\s?!.]*$"), r"when did i \1"),
    # an embedded question ("tell me where I put my glasses") has no auxiliary: the one templates expect
    (
        re.compile(
            r"^(where|what|when|who|(?:what|which|how many) "
            r"(?!(?:did|do|does|have|had|was|were|am|is|are|will|would|can|could|should) )[a-z]+) i "
            r"(?!(?:did|do|have|had|was|were|am) )"
        ),
        r"\1 did i ",
    ),
)
"""Spoken forms -> the forms the grammar's rules read, in order (before punctuation goes)."""
_REORDERED = (
    (_ORDER_PHRASE, ""),  # "where did i put the keys the first time": the keys
    (re.compile(r"^what time (?=(?:did|do|was|were|have|had) )"), "when "),  # "what time did i leave"
    # "what was the last thing i ate": what did i eat (the order is read apart)
    (re.compile(r"^what (?:was|is) the (?:very )?(?:last|first) (?:thing|object) (?:that )?(?:i|we) "), "what did i "),
    # "in which drawer did i put the batteries": which drawer did i put the batteries in
    (
        re.compile(
            r"^(in|on|into|onto|inside|under|at|from|behind|near) (?:which|what) ([a-z]+(?: [a-z]+)?) "
            r"(?:did|do|have|had) (?:i|we) (.+)$"
        ),
        r"which \2 did i \3 \1",
    ),
)
"""Word orders -> the orders the rules read (after punctuation went)."""
_LEADING_CLAUSE = re.compile(r"^(?P<rel>before|after) (?P<event>(?:i|we) .+?) (?P<rest>where .+)$")
"""A leading time clause ("before I opened the fridge, where was the mug"): it goes where the templates have it."""


def prepare_question(question: str) -> str:
    text = question.replace("\u2019", "'").replace("\u2018", "'")
    text = normalize_text(text)
    text = " ".join(_TYPOS.get(w, w) for w in text.split())
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = _OPENERS.sub("", text, count=1)
    text = _ORDER_ADVERB.sub(r"\1 ", text)  # "when did i last put" -> "when did i put" (the order is kept apart)
    for pattern, repl in _SPOKEN:
        text = pattern.sub(repl, text)
    text = re.sub(r"[\"“”?!.,;:]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    for pattern, repl in _REORDERED:
        text = pattern.sub(repl, text)
    # "i can not find my keys where did i put them": the pronoun stands for the phrase the lead named.
    m = _PRONOUN_QUESTION.match(text)
    if m:
        text = re.sub(r"\b(?:it|them)\b", f"the {m['np']}", m["q"], count=1)
    return _LEADING_CLAUSE.sub(r"\g<rest> \g<rel> \g<event>", text)
