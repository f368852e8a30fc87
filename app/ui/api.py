"""The app's HTTP API: one JSON endpoint per action, for scripts (``gradio_client``).

Each endpoint is a method of :class:`Api` with the signature and docstring a client sees; :data:`ENDPOINTS`
says how many may run at once and which queue they share with the page's own events. Uploading is the
Library tab's ``/index`` event, which takes files through Gradio's upload route (only uploaded files are
accepted there).
"""

from __future__ import annotations

import gradio as gr

from app.answering import AUTO
from app.ui.actions import ALL_VIDEOS, Actions
from app.ui.ask_tab import ASK_CONCURRENCY, DEFAULT_K

ENDPOINTS: tuple[tuple[str, int | None, str | None], ...] = (
    ("videos", None, None),
    ("remove", 1, "library"),
    ("ask", ASK_CONCURRENCY, "ask"),
    ("correct", 1, "library"),
    ("corrections", None, None),
    ("modes", None, None),
    ("index_status", None, None),
    ("train", 1, "gpu"),
    ("train_status", None, None),
    ("train_stop", None, None),
    ("demo", 1, "gpu"),
    ("demo_status", None, None),
)
"""(endpoint, concurrency limit, concurrency group): writes to the library take turns with the page's
("library"), training and demo data with indexing ("gpu"); reads run at once."""


class Api:
    """The endpoints, over the page's :class:`~app.ui.actions.Actions` (so errors read the same)."""

    def __init__(self, actions: Actions) -> None:
        self._actions = actions

    def videos(self) -> list[dict]:
        """The library's ready videos."""
        return self._actions.videos()

    def remove(self, video_id: str) -> dict:
        """Remove one video (by id) and everything stored for it."""
        return self._actions.remove(video_id)

    def ask(
        self,
        question: str,
        video_id: str = ALL_VIDEOS,
        mode: str = AUTO,
        k: int = DEFAULT_K,
        since: str = "",
        until: str = "",
    ) -> dict:
        """The k best moments: video id and name, start/end seconds, wall-clock time, score, and the clip and
        thumbnail (a server path, and ``clip_url`` relative to the app). ``since``/``until`` (e.g.
        2026-12-06T08:00) limit it to what was recorded then; time words of the question do too."""
        return self._actions.ask(question, video_id, mode, k, since, until)

    def correct(
        self,
        video_id: str,
        question: str,
        start: float,
        end: float,
        verdict: str,
        mode: str = "",
        shown_start: float | None = None,
        shown_end: float | None = None,
    ) -> dict:
        """Store a correction of one answer: verdict right, wrong, or adjusted (start/end are the true answer,
        seconds from the video's start). Kept in the library until the video is removed."""
        return self._actions.correct(video_id, question, start, end, verdict, mode, shown_start, shown_end)

    def corrections(self) -> list[dict]:
        """The corrections stored in the library, oldest first."""
        return self._actions.corrections()

    def modes(self) -> list[dict]:
        """Answering modes: zeroshot and the checkpoints compatible with this library, with their metrics."""
        return self._actions.modes()

    def index_status(self) -> dict:
        """The indexing queue: the file being indexed (frames done/total, ETA) and recent jobs."""
        return self._actions.index_status()

    def train(self, config: str, settings: dict) -> dict:
        """Start training: a config name from training/configs and dotted overrides, e.g.
        {"data.train": ["nlq_train.json"], "data.val": "nlq_val.json", "optim.steps": 100}."""
        return self._actions.train(config, settings)

    def train_status(self, since: int = 0) -> dict:
        """The training run: state, step, and its log records from index ``since`` on."""
        return self._actions.train_status(since)

    def train_stop(self) -> dict:
        """Stop the training run after its current step."""
        return self._actions.train_stop()

    def demo(self) -> dict:
        """Make demo data in the background (see demo_status)."""
        return self._actions.demo()

    def demo_status(self) -> dict:
        """The demo data job: state, stage and fraction done."""
        return self._actions.jobs.demo_status()


def add_api(actions: Actions) -> None:
    """Declare every endpoint inside the current Blocks."""
    api = Api(actions)
    for name, limit, group in ENDPOINTS:
        gr.api(getattr(api, name), api_name=name, concurrency_limit=limit, concurrency_id=group)
