"""EgoRecall's Gradio app: a thin layer over :class:`app.service.EgoRecall`, the service the CLI uses.

``build_app(service)`` lays out three tabs (Library, Ask, Train) and the HTTP API (one ``api_name`` per
action, for ``gradio_client``); ``launch_app(blocks, ...)`` serves it with the safe defaults: 127.0.0.1, an
upload size limit, and only the library's clips folder (answer clips and thumbnails) readable through
``/gradio_api/file=``.

State. The library is the user's and shared by every page; each page's answer lives in its own ``gr.State``;
background work (indexing queue, the one training run, demo data) lives in the app's :class:`JobManager`
(``blocks.egorecall_jobs``), so it outlives a page reload and never sits in a module global.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from app.answering import AUTO
from app.jobs import JobManager
from app.ui import ask_tab, library_tab, train_tab
from app.ui.actions import ALL_VIDEOS, Actions

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILE_SIZE = "2gb"
POLL_S = 1.0
"""How often an open page re-reads the job status (a dictionary read; nothing is sent when nothing changed)."""

CSS = """
.er-clip video { max-height: 220px; }
.er-failed { color: #b91c1c; }
"""


def build_app(
    service, jobs: JobManager | None = None, *, poll_s: float = POLL_S, watch_folder: str | Path | None = None
) -> gr.Blocks:
    """The app over ``service``; ``jobs`` defaults to a new job manager owned by the returned Blocks (watching
    ``watch_folder`` when the Library tab's switch is on)."""
    jobs = jobs or JobManager(service, watch_folder=watch_folder)
    actions = Actions(service, jobs)
    with gr.Blocks(title="EgoRecall", delete_cache=(3600, 24 * 3600)) as blocks:
        gr.Markdown("# EgoRecall\nAsk your first-person videos where things happened.")
        timer = gr.Timer(poll_s)
        with gr.Tabs():
            with gr.Tab("Library", id="library"):
                library_tab.build(actions, timer)
            with gr.Tab("Ask", id="ask") as ask:
                asked = ask_tab.build(actions)
            with gr.Tab("Train", id="train") as train:
                trained = train_tab.build(actions, poll_s=max(poll_s, 2.0))
        refresh, ins, outs = asked["refresh"]
        # The video and mode lists change in the background (indexing, training): re-read them when the
        # page opens, when the Ask tab is shown, and when a training run ends.
        blocks.load(refresh, inputs=ins, outputs=outs, api_visibility="private", concurrency_limit=None)
        ask.select(refresh, inputs=ins, outputs=outs, api_visibility="private", concurrency_limit=None)
        trained["finished"].change(refresh, inputs=ins, outputs=outs, api_visibility="private", concurrency_limit=None)
        # The Train tab proposes what this library can train on (demo data, corrections) when it is shown.
        defaults, d_ins, d_outs = trained["defaults"]
        train.select(defaults, inputs=d_ins, outputs=d_outs, api_visibility="private", concurrency_limit=None)
        _add_api(actions)
    blocks.egorecall_jobs = jobs  # type: ignore[attr-defined]
    blocks.egorecall_service = service  # type: ignore[attr-defined]
    return blocks


def _add_api(actions: Actions) -> None:
    """JSON endpoints for scripts (``gradio_client``). Uploading is the Library tab's ``/index`` event, which
    takes files through Gradio's upload route (only uploaded files are accepted there)."""

    def videos() -> list[dict]:
        """The library's ready videos."""
        return actions.videos()

    def remove(video_id: str) -> dict:
        """Remove one video (by id) and everything stored for it."""
        return actions.remove(video_id)

    def ask(
        question: str,
        video_id: str = ALL_VIDEOS,
        mode: str = AUTO,
        k: int = ask_tab.DEFAULT_K,
        since: str = "",
        until: str = "",
    ) -> dict:
        """The k best moments: video id and name, start/end seconds, wall-clock time, score, and the clip and
        thumbnail (a server path, and ``clip_url`` relative to the app). ``since``/``until`` (e.g.
        2026-12-06T08:00) limit it to what was recorded then; time words of the question do too."""
        return actions.ask(question, video_id, mode, k, since, until)

    def correct(
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
        return actions.correct(video_id, question, start, end, verdict, mode, shown_start, shown_end)

    def corrections() -> list[dict]:
        """The corrections stored in the library, oldest first."""
        return actions.corrections()

    def modes() -> list[dict]:
        """Answering modes: zeroshot and the checkpoints compatible with this library, with their metrics."""
        return actions.modes()

    def index_status() -> dict:
        """The indexing queue: the file being indexed (frames done/total, ETA) and recent jobs."""
        return actions.index_status()

    def train(config: str, settings: dict) -> dict:
        """Start training: a config name from training/configs and dotted overrides, e.g.
        {"data.train": ["nlq_train.json"], "data.val": "nlq_val.json", "optim.steps": 100}."""
        return actions.train(config, settings)

    def train_status(since: int = 0) -> dict:
        """The training run: state, step, and its log records from index ``since`` on."""
        return actions.train_status(since)

    def train_stop() -> dict:
        """Stop the training run after its current step."""
        return actions.train_stop()

    def demo() -> dict:
        """Make demo data in the background (see demo_status)."""
        return actions.demo()

    def demo_status() -> dict:
        return actions.jobs.demo_status()

    for fn, limit, group in (
        (videos, None, None),
        (remove, 1, "library"),
        (ask, ask_tab.ASK_CONCURRENCY, "ask"),
        (correct, 1, "library"),
        (corrections, None, None),
        (modes, None, None),
        (index_status, None, None),
        (train, 1, "gpu"),
        (train_status, None, None),
        (train_stop, None, None),
        (demo, 1, "gpu"),
        (demo_status, None, None),
    ):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=limit, concurrency_id=group)


def launch_app(
    blocks: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> tuple[Any, str]:
    """Serve ``blocks``; returns (FastAPI app, local URL). Only the clips folder is readable by URL."""
    service = blocks.egorecall_service  # type: ignore[attr-defined]
    clips = Path(service.settings.clips_dir).resolve()
    clips.mkdir(parents=True, exist_ok=True)
    blocks.queue(default_concurrency_limit=1)
    app, url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=max_file_size,
        allowed_paths=[str(clips)],
        prevent_thread_lock=prevent_thread_lock,
        show_error=True,
        quiet=quiet,
        inbrowser=False,
        share=False,
        css=CSS,
        footer_links=["api"],
        ssr_mode=False,
    )
    return app, url
