"""Shared test set-up: offline, small, deterministic.

Tests never reach a model hub (``HF_HUB_OFFLINE``), use EgoRecall's tiny randomly initialised open_clip
architecture, and keep torch to the two cores CI has.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

from models.clip_encoder import ClipEncoder, EncoderSpec  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

from tiny import TINY_SPEC  # noqa: E402


@pytest.fixture(scope="session")
def tiny_spec() -> EncoderSpec:
    return TINY_SPEC


@pytest.fixture(scope="session")
def tiny_encoder() -> ClipEncoder:
    return ClipEncoder.load(TINY_SPEC, device="cpu")


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
