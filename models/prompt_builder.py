"""Weighted prompt ensembles, written as Ego4D narrations and photo captions read: what the question grammar
(:mod:`models.questions`) turns the phrases it found into."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.words import PERSON_WORDS, bare, indefinite, third_person, to_base_verb

_TRAILING_TIME = re.compile(
    r"\s+(?:today|yesterday|earlier|before|recently|last time|this (?:morning|afternoon|"
    r"evening)|in the video|in this video|first|last)$"
)

EVENT_OBJECT_WEIGHT = 0.25
"""Weight of the object's prompts beside an event's action (1.0) in "where did I <verb> X" questions:
measured on bench/bench_answers.py ("Place: Where did I put X?")."""


def clean_phrase(phrase: str | None, *, clause: bool = False) -> str | None:
    """A phrase without the time words that trail it; an object phrase also without a dangling "at"/"in"/"on",
    which in a ``clause`` ("after I came in", "before I turned it on") ends its verb and stays."""
    if phrase is None:
        return None
    phrase = _TRAILING_TIME.sub("", phrase.strip())
    if not clause:
        phrase = re.sub(r"\s+(?:at|in|on)$", "", phrase)  # "the cup i was drinking from" is fine; dangling "at" not
    return phrase.strip() or None


def possessive_to_article(phrase: str) -> str:
    return re.sub(r"\b(?:my|your|our)\b", "the", phrase)


@dataclass
class PromptBuilder:
    """Weighted prompts as narrations and captions read (a text met twice adds its weights)."""

    prompts: dict[str, float] = field(default_factory=dict)

    def add(self, text: str | None, weight: float) -> None:
        text = re.sub(r"\s+", " ", (text or "")).strip()
        if text and weight > 0:
            self.prompts[text] = self.prompts.get(text, 0.0) + weight

    def obj(self, phrase: str | None, weight: float = 1.0) -> None:
        """The thing itself, and photos of it: what CLIP matches best."""
        if not phrase:
            return
        b = bare(phrase)
        self.add(b, weight)
        self.add(f"a photo of {indefinite(b)}", weight)
        self.add(f"a close-up photo of {phrase}", 0.5 * weight)

    def action(self, verb: str, rest: str | None, weight: float = 1.0) -> None:
        """Narration style, as ``normalize_text`` leaves Ego4D narrations: "puts the keys", "put keys"."""
        verb = to_base_verb(verb)
        rest = rest.strip() if rest else ""
        self.add(f"{third_person(verb)} {rest}", weight)
        self.add(f"{verb} {bare(rest) if rest else ''}", 0.5 * weight)

    def event(self, clause: str | None, weight: float) -> None:
        """A clause about the camera wearer ("i opened the fridge") as a narration ("opens the fridge")."""
        if not clause:
            return
        words = clause.split()
        if words and words[0] in ("i", "we"):
            words = words[1:]
        if words and words[0] in ("was", "were", "am", "had", "have"):
            words = words[1:]
            if words and words[0].endswith("ing"):  # "i was cutting the onion" -> "cutting the onion"
                self.add(" ".join(words), weight)
                return
        if not words:
            return
        if words[0] in PERSON_WORDS or words[0] in ("the", "a", "my"):  # "the man opened ..." -> keep subject
            self.add(" ".join(words), weight)
            return
        self.action(words[0], possessive_to_article(" ".join(words[1:])), weight)

    def place(self, phrase: str | None, weight: float = 0.5) -> None:
        phrase = clean_phrase(phrase)
        if phrase:
            self.add(f"a photo of {indefinite(possessive_to_article(phrase))}", weight)

    def person(self, phrase: str | None, weight: float = 1.0) -> None:
        who = indefinite(phrase or "person")
        self.add(who, weight)
        self.add(f"a photo of {who}", weight)
