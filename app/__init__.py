"""EgoRecall's user-facing layer: the Gradio app, the CLI, and the service both of them call.

A small Python API::

    from app import EgoRecall, Settings
    service = EgoRecall(Settings(library=Path("my-library")))   # or EgoRecall(load_settings("mine.yaml"))
    service.index(["walk.mp4"])
    answer = service.ask("where did I put my keys?")

Imports are lazy, so ``python -m app --help`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service import EgoRecall
    from app.settings import Settings, load_settings

__all__ = ["EgoRecall", "Settings", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "EgoRecall":
        from app.service import EgoRecall

        return EgoRecall
    if name in ("Settings", "load_settings"):
        import app.settings

        return getattr(app.settings, name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")
