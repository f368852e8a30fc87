"""How a tab's work is wired to events it does not own: a handler with the components it reads and writes,
declared once by the tab that owns them, and attached to any triggers by the page (``Handler.on``).

A tab builder lays out its components and wires its own events; what other tabs react to, it returns as a
typed value (its fields name the components and handlers), never as tuples looked up by string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass(frozen=True)
class Handler:
    """A function and the components it reads (``inputs``) and writes (``outputs``)."""

    fn: Callable[..., Any]
    inputs: Sequence[gr.components.Component]
    outputs: Sequence[gr.components.Component]

    def on(self, *triggers: Any) -> None:
        """Run on each of ``triggers`` (``blocks.load``, ``tab.select``, ``box.change``...): a page-internal
        refresh, so it stays out of the API and is never queued behind other work."""
        gr.on(
            triggers=list(triggers),
            fn=self.fn,
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            api_visibility="private",
            concurrency_limit=None,
        )
