"""Reading a question no grammar rule reads: the object it names (the presence vocabulary's everyday names,
else a determiner's noun phrase, else its last noun) and the action done to it, when it says one."""

from __future__ import annotations

import functools
import re

from models.prompt_builder import EVENT_OBJECT_WEIGHT
from models.prompt_builder import PromptBuilder as _Builder
from models.question_text import PLACE_PREPOSITION_WORDS, QUESTION_WORDS
from models.words import SEEING_VERBS, definite, is_noun, is_verb, singular, to_base_verb

_SEARCH_VERBS = SEEING_VERBS | frozenset(
    "locate search show help know get keep lose need want forget miss find".split()
)
"""Verbs of looking for, or of wanting, a thing ("i lost my keys", "i need my glasses"): they name no action a
video shows, so the object leads."""
_NOT_OBJECTS = QUESTION_WORDS | frozenset(
    "it them they these those he she this that something anything somewhere here there whatever everything nothing "
    "stuff thing things".split()
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


_NOT_A_HEAD = frozenset("today tonight yesterday now somewhere anywhere again too there here".split())


def _with_head_noun(name: str, after: list[str]) -> str:
    """A known name that only modifies the noun after it names that noun with it: "the phone charger", "the can
    opener" (a singular name before a noun; "my keys kitchen" stays the keys)."""
    if not after or singular(name) != name:
        return name
    word = after[0]
    if word in _NOT_OBJECTS or word in _NOT_A_HEAD or word in PLACE_PREPOSITION_WORDS or len(word) < 3:
        return name
    head = is_noun(word) and (not is_verb(word) or word in _vocabulary_names()[0])  # "cup" is a verb too
    return f"{name} {word}" if head else name


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
            if written in names and words[i + n : i + n + 1] != ["not"]:  # "can not find": no can
                return definite(_with_head_noun(written, words[i + n : i + n + 1]))
    named = [m["np"].split() for m in _NAMED.finditer(text)]
    for words in reversed(named):
        kept = []
        for w in words:
            if w in _NOT_OBJECTS or w in PLACE_PREPOSITION_WORDS:
                break
            kept.append(w)
        if kept:
            return definite(" ".join(kept))
    nouns = [w for w in text.split() if w not in _NOT_OBJECTS and len(w) > 2 and is_noun(w)]
    return definite(nouns[-1]) if nouns else None


def read_anyway(text: str) -> tuple[_Builder, dict] | None:
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
