"""English word forms for prompts: verbs as narrations conjugate them, nouns as captions name them.

Questions ask "where did I *leave* my keys"; narrations say "C *leaves* the keys" and captions "a photo of
keys". Lemmas and inflections come from lemminflect (a dictionary of English with rules for unknown words;
1 MB, no model download), not from tables of our own: every irregular verb a person may type is covered, and
a rare miss only costs a slightly worse phrasing, never a wrong answer on its own.
"""

from __future__ import annotations

import re
from functools import lru_cache

import lemminflect

_DETERMINER = re.compile(r"^(?:the|a|an|some|any|my|your|our|his|her|their|its|this|that|these|those)\s+")
_POSSESSIVE = re.compile(r"^(?:my|your|our|his|her|their)\s+")

PERSON_WORDS = frozenset(
    "person people man men woman women lady boy girl child children kid kids guy friend someone somebody "
    "baby worker cashier shopkeeper seller customer".split()
)
SEEING_VERBS = frozenset("see saw find found notice noticed spot spotted look looked watch watched".split())


@lru_cache(maxsize=4096)
def to_base_verb(word: str) -> str:
    """A verb in any form -> its base form ("opened" -> "open", "left" -> "leave", "seen" -> "see")."""
    lemmas = lemminflect.getLemma(word, upos="VERB")
    return lemmas[0] if lemmas else word


@lru_cache(maxsize=4096)
def third_person(verb: str) -> str:
    """Base verb -> third person singular, as narrations read ("put" -> "puts", "wash" -> "washes")."""
    forms = lemminflect.getInflection(verb, tag="VBZ")
    return forms[0] if forms else verb + "s"


def singular(noun_phrase: str) -> str:
    """Last word made singular ("cups" -> "cup", "knives" -> "knife"); words that are only plural stay."""
    words = noun_phrase.split()
    if not words:
        return noun_phrase
    lemmas = lemminflect.getLemma(words[-1], upos="NOUN")
    return " ".join(words[:-1] + [lemmas[0] if lemmas else words[-1]])


def is_verb(word: str) -> bool:
    """Whether the dictionary knows ``word`` as a form of a verb (unknown words are not guessed)."""
    return "VERB" in lemminflect.getAllLemmas(word)


def is_noun(word: str) -> bool:
    return "NOUN" in lemminflect.getAllLemmas(word)


def bare(phrase: str) -> str:
    """Without its leading determiner(s): "the keys" -> "keys"."""
    out = phrase
    while True:
        nxt = _DETERMINER.sub("", out, count=1)
        if nxt == out:
            return out.strip()
        out = nxt


def looks_plural(phrase: str) -> bool:
    last = phrase.split()[-1] if phrase.split() else ""
    return len(last) > 2 and last.endswith("s") and not last.endswith(("ss", "us", "is"))


_NO_ARTICLE = frozenset("people men women children kids someone somebody".split())


def indefinite(phrase: str) -> str:
    """As a caption names one thing: "knife" -> "a knife", "onion" -> "an onion", "keys" -> "keys"."""
    b = bare(phrase)
    if not b or looks_plural(b) or b.split()[0] in _NO_ARTICLE:
        return b
    return f"{'an' if b[0] in 'aeiou' else 'a'} {b}"


def definite(phrase: str) -> str:
    """With a definite article, as narrations write objects: "my keys" -> "the keys", "keys" -> "the keys"."""
    phrase = _POSSESSIVE.sub("the ", phrase.strip())
    if _DETERMINER.match(phrase) or phrase.split()[0] in PERSON_WORDS | {"me", "someone", "something"}:
        return phrase
    return f"the {phrase}"
