"""How a text is read before a frozen text encoder turns it into query tokens for a trained localizer.

Why. People type "where's my keys??", "can you tell me where I left my phone" or "when did I last see my
wallet"; annotators wrote "where did I put the keys". Reading every text the way the question grammar reads it
(:func:`models.question_text.prepare_question`: typos mended, contractions spelled out, polite openers and order
words dropped; the order itself is read apart) brings the first forms to where the second were trained -- but
only if training read its texts the same way, so a reading is part of a text encoder's identity
(:class:`models.text_tokens.TextEncoderSpec`, a checkpoint's ``text_encoder.reading``, the token features'
cache key).

Which is the default was measured (bench/README.md, "A checkpoint trained and asked in the grammar's reading"
and "... on six tuning worlds"). On two tuning worlds ``question`` cost ``auto`` 1.3 points of R@5@0.3 (3
queries), past the rule written before the run; retested on six (714 queries, 2026-12-08), it cost nothing
(trained 23.0 / 57.1 -> 25.1 / 57.6 R@1@0.3 / R@5@0.3, ``auto`` 33.6 / 65.4 either way) and kept 92 % of the
trained mode's R@1@0.3 on typed paraphrases, so new runs read ``question``. On the report worlds, measured once
after, it did not keep paraphrases better (85 -> 72 % of R@1@0.3, 34 -> 29 of 40 hits): bench/README.md says so.
``--set text.reading=plain`` trains a checkpoint the old way; checkpoints keep the reading they were trained in.

Apart from :mod:`models.text_tokens` so configs can name readings without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable

from models.errors import EgoRecallError
from models.question_text import prepare_question
from models.text_normalize import normalize_text


def _as_question(text: str) -> str:
    """The grammar's reading; a text it reads to nothing ("can you tell me?") keeps its plain reading."""
    return prepare_question(text) or normalize_text(text)


TEXT_READINGS: dict[str, Callable[[str], str]] = {"plain": normalize_text, "question": _as_question}
"""``plain`` cleans a text (narration labels, case, spacing); ``question`` also reads it as the grammar does."""
PLAIN_READING = "plain"
"""The reading of a spec or checkpoint that names none: everything made before readings existed."""
DEFAULT_READING = "question"
"""What a new run reads in unless ``text.reading`` (or the stage-1 checkpoint) says otherwise (see the module
docstring)."""


class UnknownReading(EgoRecallError):
    """A text reading this EgoRecall does not know (a config's ``text.reading``, a newer checkpoint's)."""


def text_reading(name: str) -> Callable[[str], str]:
    try:
        return TEXT_READINGS[name]
    except KeyError:
        known = ", ".join(sorted(TEXT_READINGS))
        raise UnknownReading(f"unknown text reading '{name}' (known: {known})") from None


def reading_key(key: str, reading: str) -> str:
    """An encoder's key with its reading: one text's tokens differ between readings, so feature caches and
    checkpoints must tell them apart (the plain reading keeps the key it always had)."""
    return key if reading == PLAIN_READING else f"{key}+{reading}"
