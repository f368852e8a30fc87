"""One text normalisation for every sentence a text encoder sees: narrations, NLQ queries, user questions.

Why one function: a localizer trained on Ego4D narrations ("#C C puts the keys on the table") is later asked
plain questions ("Where did I put my keys?"). If training text and query text were cleaned differently, the
model would see two dialects; so training (NaQ) and querying (zero-shot and trained) both call
:func:`normalize_text`.

What it does, and why:

* Every text: Unicode NFKC, lower case, single spaces, no trailing ``.?!,;:``. Text encoders here are
  uncased (CLIP's BPE, uncased BERT), and Ego4D narrations end in a full stop about half the time -- noise
  that would otherwise leak into training.
* Ego4D's annotator tags ``#unsure`` and ``#summary`` are removed: they say how the annotator felt, not what
  is on screen.
* Only text that carries Ego4D's narration markers (``#C``, ``#O``) gets the rules below; a user's question
  never does, so "did I use plan B?" keeps its "b".

  - ``#C C`` (sometimes ``#C`` or ``#c c``) is the camera wearer. As the subject that opens the sentence it is
    dropped: "#C C puts the keys on the table" -> "puts the keys on the table". The camera wearer is the
    implicit "I" of every question ("where did I put the keys?"), and the verb phrase is what both share.
    Anywhere else it becomes "me": "#O man X hands #C C a cup" -> "man hands me a cup".
  - ``#O`` marks another person. The marker goes but the person stays as the subject, so other-person
    narrations remain distinguishable from the camera wearer's (which have no subject): "#O man X opens the
    door" -> "man opens the door"; a bare letter label becomes "someone": "#O X opens the door" -> "someone
    opens the door".
  - Person labels (single capital letters such as X, Y, B) carry no meaning for an encoder: after a person
    noun they are dropped ("woman Y" -> "woman"), anywhere else they become "someone".
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "is_narration_style"]

_TAGS = re.compile(r"#\s*(unsure|summary)\b", re.IGNORECASE)
_CAMERA_WEARER = re.compile(r"#\s*c(\s+c)?\b", re.IGNORECASE)
_OTHER_PERSON = re.compile(r"#\s*o\b", re.IGNORECASE)
_NARRATION_MARK = re.compile(r"#\s*[co]\b", re.IGNORECASE)
_TRAILING = re.compile(r"[\s.?!,;:]+$")
_SPACES = re.compile(r"\s+")

# Placeholders that cannot occur in real text (private-use code points), replaced after tokenising.
_CW = "\ue000"
_OP = "\ue001"

PERSON_NOUNS = frozenset(
    "man woman person lady boy girl child kid guy gentleman baby player worker friend customer cook chef "
    "driver teacher student shopkeeper cashier seller vendor buyer mechanic painter carpenter".split()
)
"""Nouns after which a capital letter is a person label ("man X"), not a word."""


def is_narration_style(text: str) -> bool:
    """True when ``text`` carries Ego4D's narration markers (``#C``/``#O``): the narration rules apply."""
    return bool(_NARRATION_MARK.search(text or ""))


def _is_label(token: str, previous: str | None) -> bool:
    if len(token) != 1 or not token.isupper() or not token.isalpha():
        return False
    if token == "I":
        return False
    if token == "A":  # usually the article; a label only right after a person noun ("person A")
        return previous is not None and previous.lower() in PERSON_NOUNS
    return True


def _narration_tokens(text: str) -> list[str]:
    text = _CAMERA_WEARER.sub(f" {_CW} ", text)
    text = _OTHER_PERSON.sub(f" {_OP} ", text)
    tokens = text.split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        previous = out[-1] if out else None
        if tok == _CW:
            if out:  # anywhere but the opening subject
                out.append("me")
        elif tok == _OP:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            # "#O X opens" -> "someone opens"; "#O A man X" keeps its article.
            if nxt is not None and nxt not in ("A", "I") and _is_label(nxt, None):
                out.append("someone")
                i += 1  # the label is the person
        elif _is_label(tok, previous):
            if previous is None or previous.lower() not in PERSON_NOUNS:
                out.append("someone")
        else:
            out.append(tok)
        i += 1
    return out


def normalize_text(text: str | None) -> str:
    """Clean one sentence for a text encoder; "" when nothing is left (e.g. a bare "#unsure")."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text))
    text = _TAGS.sub(" ", text)
    if is_narration_style(text):
        text = " ".join(_narration_tokens(text))
    text = text.replace("#", " ").lower()
    text = _SPACES.sub(" ", text).strip()
    text = _TRAILING.sub("", text)
    return text.strip()
