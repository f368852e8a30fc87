"""The tiny test encoder, spelled once: EgoRecall's randomly initialised ``egorecall-tiny`` open_clip model.

Tests use it wherever a real encoder must run but what it understands does not matter (it understands
nothing): as an ``EncoderSpec``, as CLI arguments, as the key its features carry, as a text encoder config.
The loaded encoder itself is the ``tiny_encoder`` fixture (``conftest.py``).
"""

from __future__ import annotations

from models.clip_encoder import EncoderSpec

TINY_SPEC = EncoderSpec(model="egorecall-tiny", pretrained="none")
TINY_ARGS = ["--model", TINY_SPEC.model, "--pretrained", TINY_SPEC.pretrained]
TINY_KEY = TINY_SPEC.key
"""``egorecall-tiny/random-seed0``: the encoder key of features it made."""
TINY_TEXT = {"kind": "open_clip", "model": TINY_SPEC.model, "pretrained": TINY_SPEC.pretrained}
"""A training config's ``text`` section that encodes queries with it."""
