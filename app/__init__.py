"""EgoRecall's user-facing layer: the Gradio app, the CLI, and the service both of them call.

A small Python API::

    from app import EgoRecall, Settings
    service = EgoRecall(Settings(library=Path("my-library")))
    service.index(["walk.mp4"])
    answer = service.ask("where did I put my keys?")

Imports are lazy, so ``python -m app --help`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service import EgoRecall
    from app.settings import Settings

__all__ = ["EgoRecall", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "EgoRecall":
        from app.service import EgoRecall

        return EgoRecall
    if name == "Settings":
        from app.settings import Settings

        return Settings
    raise AttributeError(f"module 'app' has no attribute {name!r}")
