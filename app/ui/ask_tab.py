"""The Ask tab: a question, its scope (one video or the whole library), the answering mode and k; the answer as
thumbnails, a player, the score over time with the answer windows marked, and one playable clip per moment.

The answer of a page lives in that page's ``gr.State`` (never in a module global), so two people asking at
once each see their own moments. Asking is fast and runs in its own concurrency group, so it is never queued
behind indexing or training (those run in the job manager's threads).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from app.answering import AUTO
from app.answering.results import percent
from app.service import EgoRecall
from app.text import counted
from app.ui.actions import ALL_VIDEOS, Actions, answer_record, user_facing
from app.ui.events import Handler
from app.ui.format import moment_caption, moment_record, playback_offset, series_points

DEFAULT_K: int = inspect.signature(EgoRecall.ask).parameters["k"].default
"""The service's default (one place); the slider starts there."""
MAX_K = 10
"""Result slots laid out on the page (the slider's top)."""
ASK_CONCURRENCY = 4
"""Questions answered at once (each is a few tens of milliseconds of CPU plus clip cutting)."""


def scope_choices(records) -> list[tuple[str, str]]:
    return [("Whole library", ALL_VIDEOS)] + [(r.name, r.id) for r in records]


def mode_choices(modes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["label"], m["name"]) for m in modes]


def typed_frame(points: list[dict[str, Any]], x: str, y: str) -> pd.DataFrame | None:
    """Points as a frame with numeric axes, or None when there are none: Gradio's line plot keeps the axes and
    colours of the first frame it draws, so an empty first frame would leave later curves invisible."""
    if not points:
        return None
    frame = pd.DataFrame(points, columns=[x, y, "series"])
    return frame.astype({x: "float64", y: "float64", "series": "str"})


def _plot_frame(series) -> pd.DataFrame | None:
    return typed_frame(series_points(series) if series is not None else [], "time", "score")


@dataclass(frozen=True)
class AskTab:
    """What the page wires to the Ask tab: re-reading its video and mode lists (they change in the background)."""

    refresh_choices: Handler


@dataclass(frozen=True)
class _Parts:
    question: gr.Textbox
    ask: gr.Button
    scope: gr.Dropdown
    mode: gr.Dropdown
    k: gr.Slider
    since: gr.Textbox
    until: gr.Textbox
    summary: gr.Markdown
    answer_json: gr.JSON
    answer_state: gr.State
    """Per page: {"series": [ScoreSeries]}; the moments themselves are in ``answer_json``."""
    gallery: gr.Gallery
    player: gr.Video
    plot_video: gr.Dropdown
    plot: gr.LinePlot
    fix: _FixParts
    slots: list[gr.Video]


@dataclass(frozen=True)
class _FixParts:
    rank: gr.Number
    start: gr.Number
    end: gr.Number
    right: gr.Button
    wrong: gr.Button
    save: gr.Button
    status: gr.Markdown


def build(actions: Actions) -> AskTab:
    """Lay out the tab inside the current Blocks and wire its own events."""
    parts = _lay_out(actions)
    _wire_asking(actions, parts)
    _wire_moments(parts)
    _wire_corrections(actions, parts)
    return AskTab(refresh_choices=_refresh_choices(actions, parts))


def _lay_out(actions: Actions) -> _Parts:
    with gr.Row():
        question = gr.Textbox(
            label="Question", placeholder="Where did I put my keys?", scale=4, elem_id="er-question", max_lines=2
        )
        ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="er-ask")
    with gr.Row():
        scope = gr.Dropdown(
            label="Search in",
            choices=scope_choices(actions.video_records()),
            value=ALL_VIDEOS,
            allow_custom_value=True,
            scale=2,
            elem_id="er-scope",
        )
        mode = gr.Dropdown(
            label="Mode",
            choices=mode_choices(actions.modes()),
            value=AUTO,
            allow_custom_value=True,
            scale=2,
            elem_id="er-mode",
        )
        k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Moments (k)", scale=1)
    with gr.Row():
        since = gr.Textbox(
            label="Recorded from (optional)", placeholder="2026-12-06T08:00 or yesterday", scale=1, elem_id="er-since"
        )
        until = gr.Textbox(
            label="Recorded until (optional)", placeholder="2026-12-06T12:00 or yesterday", scale=1, elem_id="er-until"
        )
    summary = gr.Markdown(elem_id="er-summary")
    answer_json = gr.JSON(visible=False, label="answer")
    answer_state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=2):
            gallery = gr.Gallery(
                label="Moments (click one to play it)", columns=5, height=190, allow_preview=False, elem_id="er-gallery"
            )
            player = gr.Video(label="Selected moment", interactive=False, autoplay=True, elem_id="er-player")
        with gr.Column(scale=3):
            plot_video = gr.Dropdown(label="Score over time of", choices=[], allow_custom_value=True)
            plot = gr.LinePlot(
                None,
                x="time",
                y="score",
                color="series",
                x_title="time (s)",
                y_title="score",
                label="Score over time",
                elem_id="er-plot",
                height=300,
            )
    fix = _lay_out_fix()
    gr.Markdown("### Clips")
    with gr.Row(elem_id="er-clips"):
        slots = [
            gr.Video(visible=False, interactive=False, label=f"#{i + 1}", min_width=200, elem_classes=["er-clip"])
            for i in range(MAX_K)
        ]
    return _Parts(
        question,
        ask_btn,
        scope,
        mode,
        k,
        since,
        until,
        summary,
        answer_json,
        answer_state,
        gallery,
        player,
        plot_video,
        plot,
        fix,
        slots,
    )


def _lay_out_fix() -> _FixParts:
    with gr.Accordion("Correct a moment (your corrections become training data)", open=False, elem_id="er-fix"):
        with gr.Row():
            rank = gr.Number(
                label="Moment #", value=1, precision=0, minimum=1, maximum=MAX_K, scale=1, elem_id="er-fix-rank"
            )
            start = gr.Number(label="Start (s)", value=None, scale=1, elem_id="er-fix-start")
            end = gr.Number(label="End (s)", value=None, scale=1, elem_id="er-fix-end")
            right = gr.Button("Right", scale=1, elem_id="er-fix-right")
            wrong = gr.Button("Wrong", scale=1, elem_id="er-fix-wrong")
            save = gr.Button("Save start/end", scale=1, elem_id="er-fix-save")
        status = gr.Markdown(elem_id="er-fix-status")
    return _FixParts(rank, start, end, right, wrong, save, status)


def _wire_asking(actions: Actions, p: _Parts) -> None:
    """Asking (button or Enter) answers in the ask group, then renders the answer on the page."""

    @user_facing("answering the question")
    def ui_ask(q: str, video_id: str, mode_name: str, k_value: float, since_text: str, until_text: str):
        answer = actions.ask_answer(q, video_id, mode_name, int(k_value), since_text, until_text)
        return answer_record(answer), {"series": answer.series}

    gr.on(
        triggers=[p.ask.click, p.question.submit],
        fn=ui_ask,
        inputs=[p.question, p.scope, p.mode, p.k, p.since, p.until],
        outputs=[p.answer_json, p.answer_state],
        concurrency_id="ask",
        concurrency_limit=ASK_CONCURRENCY,
        api_visibility="private",
    ).success(
        _render,
        inputs=[p.answer_json, p.answer_state],
        outputs=[p.summary, p.gallery, p.player, p.plot_video, p.plot, *p.slots],
        api_visibility="private",
        concurrency_limit=None,
    )


def _wire_moments(p: _Parts) -> None:
    """Clicking a thumbnail plays its moment; choosing a video shows its score over time."""

    def select(answer: dict | None, evt: gr.SelectData):
        moments = (answer or {}).get("moments") or []
        if evt.index is None or not (0 <= evt.index < len(moments)):
            return gr.skip()
        m = moments[evt.index]
        return gr.update(value=m["clip"], label=moment_caption(m), playback_position=playback_offset(m))

    p.gallery.select(select, inputs=p.answer_json, outputs=p.player, api_visibility="private", concurrency_limit=None)

    def choose_plot(video_id: str, state: dict | None):
        return _plot_for(state, video_id)

    p.plot_video.change(
        choose_plot,
        inputs=[p.plot_video, p.answer_state],
        outputs=p.plot,
        api_visibility="private",
        concurrency_limit=None,
    )


def _wire_corrections(actions: Actions, p: _Parts) -> None:
    """The correction form follows the answer (first moment, or the one clicked) and stores verdicts."""
    fix = p.fix

    def pick_for_fix(answer: dict | None, evt: gr.SelectData):
        moments = (answer or {}).get("moments") or []
        if evt.index is None or not (0 <= evt.index < len(moments)):
            return gr.skip(), gr.skip(), gr.skip()
        m = moments[evt.index]
        return m["rank"], m["start"], m["end"]

    p.gallery.select(
        pick_for_fix,
        inputs=p.answer_json,
        outputs=[fix.rank, fix.start, fix.end],
        api_visibility="private",
        concurrency_limit=None,
    )

    def fill_fix(answer: dict | None):
        moments = (answer or {}).get("moments") or []
        return (1, moments[0]["start"], moments[0]["end"], "") if moments else (1, None, None, "")

    p.answer_json.change(
        fill_fix,
        inputs=p.answer_json,
        outputs=[fix.rank, fix.start, fix.end, fix.status],
        api_visibility="private",
        concurrency_limit=None,
    )
    for button, verdict in ((fix.right, "right"), (fix.wrong, "wrong"), (fix.save, "adjusted")):
        button.click(
            lambda answer, rank, start, end, _v=verdict: actions.correct_moment(answer, rank, start, end, _v),
            inputs=[p.answer_json, fix.rank, fix.start, fix.end],
            outputs=fix.status,
            api_visibility="private",
            concurrency_limit=1,
            concurrency_id="library",
        )


def _refresh_choices(actions: Actions, p: _Parts) -> Handler:
    def refresh(current_scope: str, current_mode: str):
        records = actions.video_records()
        modes = actions.modes()
        ids = {r.id for r in records}
        names = {m["name"] for m in modes}
        return (
            gr.update(choices=scope_choices(records), value=current_scope if current_scope in ids else ALL_VIDEOS),
            gr.update(choices=mode_choices(modes), value=current_mode if current_mode in names else AUTO),
        )

    return Handler(refresh, inputs=[p.scope, p.mode], outputs=[p.scope, p.mode])


def _plot_for(state: dict | None, video_id: str | None):
    series = (state or {}).get("series") or []
    chosen = next((s for s in series if s.video_id == video_id), series[0] if series else None)
    title = f"Score over time: {chosen.video_name}" if chosen is not None else "Score over time"
    return gr.update(value=_plot_frame(chosen), label=title)


def _render(answer: dict, state: dict):
    moments = answer["moments"]
    how = answer.get("label") or answer["mode"]
    if answer.get("asked_mode") and answer["asked_mode"] != answer["mode"]:
        how = f"{answer['asked_mode']}: {how}"
    if moments:
        lines = (
            f"**{counted(len(moments), 'moment')}** for “{answer['question']}” ({how}, "
            f"{counted(answer['candidates'], 'video')} searched, {answer['seconds']:.2f} s)"
        )
    else:
        lines = f"No moments found for “{answer['question']}”."
    if moments and answer.get("no_good_match"):
        best = answer.get("best_confidence") or 0.0
        lines = (
            f"**No good match** for “{answer['question']}” — {answer.get('verdict') or 'unsure'}: the best "
            f"moment has a {percent(best, answer['threshold'])} chance of being right (a good match needs "
            f"{percent(answer['threshold'], best)}). The closest candidates are below. ({how})"
        )
    if answer.get("searching"):
        lines += f"\n\nSearching: {answer['searching']}."
    if answer.get("order_note") and moments:
        lines += f"\n\n{answer['order_note'].capitalize()}."
    for warning in answer.get("warnings") or ():
        lines += f"\n\n⚠ {warning}"
    problems = [f"#{m['rank']}: no clip ({m['clip_error']})" for m in moments if m.get("clip_error")]
    if problems:
        lines += "\n\n" + "; ".join(problems)
    gallery = [(m["thumbnail"], moment_caption(m)) for m in moments if m.get("thumbnail")]
    first = next((m for m in moments if m.get("clip")), None)
    player = (
        gr.update(value=first["clip"], label=moment_caption(first), playback_position=playback_offset(first))
        if first
        else gr.update(value=None, label="Selected moment")
    )
    series = state.get("series") or []
    plot_choice = gr.update(
        choices=[(s.video_name, s.video_id) for s in series], value=series[0].video_id if series else None
    )
    slots = []
    for i in range(MAX_K):
        m = moments[i] if i < len(moments) else None
        if m is not None and m.get("clip"):
            slots.append(
                gr.update(value=m["clip"], label=moment_caption(m), visible=True, playback_position=playback_offset(m))
            )
        else:
            slots.append(gr.update(value=None, visible=False))
    return (lines, gallery, player, plot_choice, _plot_for(state, series[0].video_id if series else None), *slots)


__all__ = ["build", "scope_choices", "mode_choices", "moment_caption", "moment_record", "playback_offset"]
