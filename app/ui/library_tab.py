"""The Library tab: add videos (indexed in the background, with a progress bar), list them, remove them, and
make demo data.

Uploads land in Gradio's upload folder; the handler only queues them on the job manager and returns, so the
page (and everyone else's questions) never waits for indexing. A timer re-reads the job manager's status,
which is why progress survives a page reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from app.text import counted
from app.ui.actions import Actions, user_facing
from app.ui.format import VIDEO_COLUMN_WIDTHS, VIDEO_COLUMNS, progress_html, video_rows


def _video_choices(records) -> list[tuple[str, str]]:
    return [(f"{r.name} ({r.id})", r.id) for r in records]


@dataclass(frozen=True)
class _Parts:
    files: gr.File
    status: gr.HTML
    last_job: gr.JSON
    table: gr.Dataframe
    to_remove: gr.Dropdown
    remove: gr.Button
    removed: gr.Markdown
    watching: gr.Checkbox
    watch_state: gr.Markdown
    to_date: gr.Dropdown
    when: gr.Textbox
    set_date: gr.Button
    dated: gr.Markdown
    demo: gr.Button
    demo_stop: gr.Button
    demo_status: gr.Markdown


def build(actions: Actions, timer: gr.Timer) -> None:
    """Lay out the tab inside the current Blocks and wire its events (``timer`` re-reads the job status)."""
    parts = _lay_out(actions)
    _wire_upload(actions, parts)
    _wire_status(actions, parts, timer)
    _wire_edits(actions, parts)


def _lay_out(actions: Actions) -> _Parts:
    jobs = actions.jobs
    records = actions.video_records()
    gr.Markdown(
        "Add first-person videos to your library. Each one is decoded and embedded in the background; "
        "you can ask questions about the videos that are ready while others are indexed."
    )
    with gr.Row():
        with gr.Column(scale=2):
            files = gr.File(
                label="Add videos (drag and drop one or more files)",
                file_count="multiple",
                type="filepath",
                elem_id="er-upload",
            )
        with gr.Column(scale=3):
            status = gr.HTML(progress_html(jobs.index_status()), elem_id="er-index-status")
    last_job = gr.JSON(visible=False, label="indexing job")
    table = gr.Dataframe(
        headers=VIDEO_COLUMNS,
        column_widths=VIDEO_COLUMN_WIDTHS,
        value=video_rows(records),
        interactive=False,
        label="Videos",
        elem_id="er-videos",
        wrap=True,
    )
    with gr.Row():
        to_remove = gr.Dropdown(
            label="Video to remove", choices=_video_choices(records), value=None, scale=3, allow_custom_value=True
        )
        remove_btn = gr.Button("Remove", variant="stop", scale=1)
    removed = gr.Markdown()
    watch = jobs.watch_status()
    with gr.Row(visible=watch["folder"] is not None):
        watching = gr.Checkbox(
            label=f"Watch {watch['folder']} and add new recordings as they arrive",
            value=watch["on"],
            elem_id="er-watch",
            scale=3,
        )
        watch_state = gr.Markdown(_watch_text(watch), elem_id="er-watch-status")
    with gr.Accordion("When was a video recorded?", open=False, elem_id="er-dating"):
        gr.Markdown(
            "Times come from the file (camera metadata, else its name, else its file time). Set one by hand "
            "when it is missing or wrong: questions such as *yesterday* and *the last time* depend on it."
        )
        with gr.Row():
            to_date = gr.Dropdown(
                label="Video",
                choices=_video_choices(records),
                value=None,
                scale=3,
                allow_custom_value=True,
                elem_id="er-date-video",
            )
            when = gr.Textbox(label="Recorded at", placeholder="2026-12-06T08:15", scale=2, elem_id="er-date-time")
            date_btn = gr.Button("Set time", scale=1, elem_id="er-date-set")
        dated = gr.Markdown(elem_id="er-date-status")
    demo_btn, demo_stop, demo_status = _lay_out_demo()
    return _Parts(
        files,
        status,
        last_job,
        table,
        to_remove,
        remove_btn,
        removed,
        watching,
        watch_state,
        to_date,
        when,
        date_btn,
        dated,
        demo_btn,
        demo_stop,
        demo_status,
    )


def _lay_out_demo() -> tuple[gr.Button, gr.Button, gr.Markdown]:
    with gr.Accordion("Demo data", open=False):
        gr.Markdown(
            "Make a small synthetic first-person world, index it and train a demo model, so every part "
            "of the app can be tried without your own videos."
        )
        with gr.Row():
            start = gr.Button("Make demo data", elem_id="er-demo")
            stop = gr.Button("Stop", variant="stop")
        status = gr.Markdown(elem_id="er-demo-status")
    return start, stop, status


def _wire_upload(actions: Actions, p: _Parts) -> None:
    """Uploads are queued on the job manager (the ``/index`` API); the handler returns at once."""

    def enqueue(paths: list[str] | None) -> dict:
        # Gradio already accepts only files from its upload folder here; checked again, because indexing a
        # server path would make its frames servable as answer clips.
        uploads = Path(get_upload_folder()).resolve()
        files = [Path(f) for f in (paths or [])]
        if any(not f.resolve().is_relative_to(uploads) for f in files):
            raise gr.Error("Only uploaded files can be added.", print_exception=False)
        return actions.index([(f, f.name) for f in files])

    p.files.upload(
        enqueue,
        inputs=p.files,
        outputs=p.last_job,
        api_name="index",
        concurrency_id="gpu",
        concurrency_limit=1,
        show_progress="minimal",
    ).then(
        lambda: (None, progress_html(actions.jobs.index_status())),
        outputs=[p.files, p.status],
        api_visibility="private",
    )


def _wire_status(actions: Actions, p: _Parts, timer: gr.Timer) -> None:
    """Each tick re-reads the jobs' status; a page sends nothing while nothing changed (``seen``)."""
    jobs = actions.jobs
    seen = gr.State(None)

    def refresh(previous):
        st = jobs.index_status()
        demo = jobs.demo_status()
        w = jobs.watch_status()
        key = (st["version"], repr(st["current"]), demo["state"], demo["stage"], round(demo["fraction"], 2))
        key += (w["on"], w["added"])
        if key == previous:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), previous
        records = actions.video_records()
        return (
            progress_html(st),
            video_rows(records, jobs.pending_files()),
            gr.update(choices=_video_choices(records)),
            gr.update(choices=_video_choices(records)),
            _demo_text(demo),
            _watch_text(w),
            key,
        )

    timer.tick(
        refresh,
        inputs=seen,
        outputs=[p.status, p.table, p.to_remove, p.to_date, p.demo_status, p.watch_state, seen],
        show_progress="hidden",
        api_visibility="private",
        concurrency_limit=None,
    )


def _wire_edits(actions: Actions, p: _Parts) -> None:
    """Removing a video, dating one by hand, the folder watch and demo data."""

    def ui_remove(video_id: str | None):
        record = actions.remove(video_id or "")
        return f"Removed {record['name']}.", None

    p.remove.click(ui_remove, inputs=p.to_remove, outputs=[p.removed, p.to_remove], api_visibility="private")

    def ui_date(video_id: str | None, text: str):
        record = actions.set_recording_time(video_id or "", text or "")
        return f"{record['name']}: recorded {record['recorded']}.", video_rows(actions.video_records())

    p.set_date.click(ui_date, inputs=[p.to_date, p.when], outputs=[p.dated, p.table], api_name="set_recording_time")

    @user_facing("switching the folder watch")
    def ui_watch(on: bool):
        return _watch_text(actions.jobs.start_watch() if on else actions.jobs.stop_watch())

    p.watching.change(ui_watch, inputs=p.watching, outputs=p.watch_state, api_name="watch")
    p.demo.click(
        lambda: _demo_text(actions.demo()), outputs=p.demo_status, api_visibility="private", concurrency_id="gpu"
    )
    p.demo_stop.click(lambda: _demo_text(actions.demo_stop()), outputs=p.demo_status, api_visibility="private")


def _watch_text(w: dict) -> str:
    if not w.get("folder"):
        return ""
    state = "watching" if w["on"] else "not watching"
    return f"{state} {w['folder']}; {counted(w['added'], 'video')} added from it since the app started"


def _demo_text(d: dict) -> str:
    state = d.get("state", "idle")
    if state == "idle":
        return ""
    if state in ("queued", "running"):
        stage = d.get("stage") or "waiting for the indexing queue"
        return f"Making demo data: {stage} ({100 * d.get('fraction', 0.0):.0f}%)"
    return f"Demo data {state}: {d.get('message', '')}"
