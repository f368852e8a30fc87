"""Questions without an answer for training: which clip a question can be asked of where its answer is not.

"No good match" needs a model whose best score is low when the answer is not in the clip, and NLQ data has no
unanswerable questions. A question asked of a clip of *another video* usually has none there -- unless that
clip shows the same kind of thing (every kitchen has a fridge). Without labels of absence, the clip's own words
are the evidence: a host clip qualifies when none of its own queries and narrations (Ego4D narrates every few
seconds) names the object or place the question asks about, as :mod:`models.questions` reads it. An object
merely in view and never handled can slip through; for "where did I put X" the event is still absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from models.questions import EmptyQuestion, rewrite_question
from training.nlq import Clip, Query

HOST_TRIES = 8
"""Random clips tried to find one of another video that does not name the question's object or place."""
_NOT_CONTENT = frozenset("a an the my your his her their our some any of this that these those".split())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def content_words(text: str) -> set[str]:
    """Lower-case words without articles and possessives, a plural ``s`` dropped ("the keys" -> {"key"})."""
    return {_stem(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in _NOT_CONTENT}


def asked_words(text: str) -> set[str]:
    """The content words of the object and place a question names; empty when it names neither."""
    try:
        r = rewrite_question(text)
    except EmptyQuestion:
        return set()
    return set().union(*(content_words(p) for p in (r.object, r.place) if p))


class AbsentHosts:
    """Draws, for a training question, a clip of another video that never names what it asks about."""

    def __init__(self, queries: Sequence[Query], clips: Mapping[str, Clip]) -> None:
        self.clips = clips
        self.clip_uids = sorted({q.clip_uid for q in queries})
        self.said: dict[str, set[str]] = {uid: set() for uid in self.clip_uids}
        for q in queries:
            self.said[q.clip_uid] |= content_words(q.text)
        self._asked: dict[str, set[str]] = {}

    def draw(self, q: Query, rng: np.random.Generator) -> str | None:
        """A host clip uid, or None when the question names nothing or no host turned up in a few draws."""
        asked = self._asked.get(q.text)
        if asked is None:
            asked = self._asked[q.text] = asked_words(q.text)
        if not asked:
            return None
        video = self.clips[q.clip_uid].video_uid
        for _ in range(HOST_TRIES):
            uid = self.clip_uids[int(rng.integers(len(self.clip_uids)))]
            if self.clips[uid].video_uid != video and not asked & self.said[uid]:
                return uid
        return None
