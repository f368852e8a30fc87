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

from app.jobs import JobManager
from app.ui import ask_tab, library_tab, train_tab
from app.ui.actions import Actions
from app.ui.api import add_api

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
                ask_page = ask_tab.build(actions)
            with gr.Tab("Train", id="train") as train:
                train_page = train_tab.build(actions, poll_s=max(poll_s, 2.0))
        # The video and mode lists change in the background (indexing, training): re-read them when the
        # page opens, when the Ask tab is shown, and when a training run ends.
        ask_page.refresh_choices.on(blocks.load, ask.select, train_page.finished.change)
        # The Train tab proposes what this library can train on (demo data, corrections) when it is shown.
        train_page.propose_library_data.on(train.select)
        add_api(actions)
    blocks.egorecall_jobs = jobs
    blocks.egorecall_service = service
    return blocks


def app_jobs(blocks: gr.Blocks) -> JobManager:
    """The job manager an app's Blocks owns (:func:`build_app`): the server closes it when it stops."""
    return blocks.egorecall_jobs  # type: ignore[attr-defined]


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
    clips = Path(service.settings.excerpts_dir).resolve()
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
