"""The Train tab: choose data, model and stage, adjust the key hyper-parameters, start/stop one run, and watch
its loss and recall curves live.

The run itself belongs to the job manager (one at a time); the page only polls its status, so reloading the
page shows the same run. When a run ends, its checkpoints appear in the Ask tab's mode list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.answering import AUTO, FUSED, ZEROSHOT
from app.ui.actions import Actions, user_facing
from app.ui.ask_tab import typed_frame
from app.ui.events import Handler
from app.ui.train_form import HYPERPARAMETERS, config_defaults, config_label, config_names, curves, get_value
from models.registry import localizer_names

NARRATION_CHOICES = [("as the stage says", "default"), ("yes", "yes"), ("no", "no")]
SOURCE_LIBRARY = "This library"
SOURCE_FOLDER = "A folder of clip features"


def _frame(points: list[dict[str, Any]]):
    return typed_frame(points, "step", "value")


def _form_values(name: str) -> list[Any]:
    """Model, start checkpoint, training files, validation file, narrations, then the hyper-parameters."""
    c = config_defaults(name)
    narr = "default" if c.data.narrations is None else ("yes" if c.data.narrations else "no")
    return [
        c.model.name,
        c.init_from or "",
        "\n".join(c.data.train),
        c.data.val or "",
        narr,
        *[get_value(c, key) for key, _ in HYPERPARAMETERS],
    ]


def missing_files_note(files_text: str | None, val: str | None) -> str:
    """The line under the data fields: which of the typed paths do not exist on the server."""
    from pathlib import Path

    paths = [line.strip() for line in (files_text or "").splitlines() if line.strip()]
    missing = [p for p in paths if not Path(p).expanduser().is_file()]
    if val and val.strip() and not Path(val.strip()).expanduser().is_file():
        missing.append(val.strip())
    if not missing:
        return ""
    return "Not found on the server: " + ", ".join(f"`{m}`" for m in missing)


def _status_text(st: dict[str, Any]) -> str:
    state = st.get("state", "idle")
    if state == "idle":
        return "No training run yet."
    head = f"**{st['name']}**: {state}"
    if st.get("total_steps"):
        head += f", step {st['step']} of {st['total_steps']}"
    return head + (f" — {st['message']}" if st.get("message") else "")


@dataclass(frozen=True)
class TrainTab:
    """What the page wires to the Train tab."""

    finished: gr.Textbox
    """Holds the id of the last run that ended: the Ask tab re-reads its modes when it changes."""
    propose_library_data: Handler
    """Fills the form with this library's own data when the recipe's files are missing (run when shown)."""


@dataclass(frozen=True)
class _Parts:
    config: gr.Dropdown
    model: gr.Dropdown
    init_from: gr.Dropdown
    train_files: gr.Textbox
    uploads: gr.File
    add_feedback: gr.Button
    feedback_note: gr.Markdown
    val_file: gr.Textbox
    files_note: gr.Markdown
    source: gr.Radio
    folder: gr.Textbox
    narrations: gr.Dropdown
    run_name: gr.Textbox
    hyper: list[gr.Number]
    start: gr.Button
    adapt: gr.Button
    stop: gr.Button
    status: gr.Markdown
    loss_plot: gr.LinePlot
    recall_plot: gr.LinePlot
    finished: gr.Textbox

    @property
    def form(self) -> list[gr.components.Component]:
        """What a recipe fills in (``_form_values``' order), then the note on missing files."""
        return [
            self.model,
            self.init_from,
            self.train_files,
            self.val_file,
            self.narrations,
            *self.hyper,
            self.files_note,
        ]


def build(actions: Actions, *, poll_s: float = 2.0) -> TrainTab:
    """Lay out the tab inside the current Blocks and wire its own events."""
    parts = _lay_out(actions)
    _wire_form(actions, parts)
    _wire_run(actions, parts)
    _wire_progress(actions, parts, poll_s)
    return TrainTab(finished=parts.finished, propose_library_data=_propose_library_data(actions, parts))


def _lay_out(actions: Actions) -> _Parts:
    names = config_names()
    first = names[0] if names else None
    start_values = _form_values(first) if first else [None] * (5 + len(HYPERPARAMETERS))
    gr.Markdown(
        "Train a localizer on NLQ annotations and narrations (NaQ). Stage 1 trains on NLQ and "
        "narration queries together; stage 2 fine-tunes a stage-1 checkpoint on NLQ only. One run at a "
        "time; it keeps running if you close the page."
    )
    with gr.Row():
        config = gr.Dropdown(
            label="Stage / recipe", choices=[(config_label(n), n) for n in names], value=first, scale=3
        )
        model = gr.Dropdown(label="Model", choices=localizer_names(), value=start_values[0], scale=1)
        init_from = gr.Dropdown(
            label="Start from checkpoint (stage 2)", choices=[], value=start_values[1], allow_custom_value=True, scale=2
        )
    with gr.Row():
        with gr.Column():
            train_files = gr.Textbox(
                label="Training files on the server (NLQ / NaQ JSON, one per line)", value=start_values[2], lines=3
            )
            uploads = gr.File(label="... or upload annotation files", file_count="multiple", type="filepath")
            with gr.Row():
                add_feedback = gr.Button("Add this library's corrections", size="sm", elem_id="er-train-feedback")
                feedback_note = gr.Markdown(elem_id="er-train-feedback-note")
            val_file = gr.Textbox(label="Validation file (annotated NLQ JSON)", value=start_values[3])
            files_note = gr.Markdown(elem_id="er-train-files-note")
        with gr.Column():
            source = gr.Radio([SOURCE_LIBRARY, SOURCE_FOLDER], value=SOURCE_LIBRARY, label="Clip features from")
            folder = gr.Textbox(label="Features folder (<clip_uid>.npy or .pt)", visible=False)
            narrations = gr.Dropdown(label="Narration queries", choices=NARRATION_CHOICES, value=start_values[4])
            run_name = gr.Textbox(label="Run name", placeholder="default: recipe and date")
    with gr.Accordion("Hyper-parameters", open=True):
        with gr.Row():
            hyper = [
                gr.Number(label=label, value=start_values[5 + i], min_width=140)
                for i, (_, label) in enumerate(HYPERPARAMETERS)
            ]
    start, adapt, stop = _lay_out_run_buttons()
    status = gr.Markdown(_status_text(actions.jobs.training_status()), elem_id="er-train-status")
    with gr.Row():
        loss_plot = gr.LinePlot(
            None,
            x="step",
            y="value",
            color="series",
            label="Training loss",
            y_title="loss",
            height=260,
            elem_id="er-train-loss",
        )
        recall_plot = gr.LinePlot(
            None, x="step", y="value", color="series", label="Validation recall (%)", y_title="%", height=260
        )
    finished = gr.Textbox(visible=False)
    return _Parts(
        config,
        model,
        init_from,
        train_files,
        uploads,
        add_feedback,
        feedback_note,
        val_file,
        files_note,
        source,
        folder,
        narrations,
        run_name,
        hyper,
        start,
        adapt,
        stop,
        status,
        loss_plot,
        recall_plot,
        finished,
    )


def _lay_out_run_buttons() -> tuple[gr.Button, gr.Button, gr.Button]:
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="er-train-start")
        adapt = gr.Button("Adapt to my library", elem_id="er-train-adapt")
        stop = gr.Button("Stop", variant="stop", elem_id="er-train-stop")
    gr.Markdown(
        "*Adapt to my library* needs no annotations: the library narrates its own videos (which everyday object "
        "stands out where, and what is done with it) and the checkpoint the Ask tab uses is fine-tuned on those "
        "narrations, published beside it as a new checkpoint."
    )
    return start, adapt, stop


def _form_with_library_data(actions: Actions, name: str) -> list[Any]:
    """The recipe's defaults, with its data files replaced by this library's own when they are missing."""
    values = _form_values(name)
    own = actions.library_training_data()
    if own["train"] and missing_files_note(values[2], values[3]):
        values[2], values[3] = "\n".join(own["train"]), own["val"] or ""
    return [*values, missing_files_note(values[2], values[3])]


def _wire_form(actions: Actions, p: _Parts) -> None:
    """A recipe fills the form; file fields say which paths are missing; corrections join the training files."""
    p.config.change(
        lambda name: _form_with_library_data(actions, name),
        inputs=p.config,
        outputs=p.form,
        api_visibility="private",
        concurrency_limit=None,
    )
    gr.on(
        triggers=[p.train_files.change, p.val_file.change],
        fn=missing_files_note,
        inputs=[p.train_files, p.val_file],
        outputs=p.files_note,
        api_visibility="private",
        concurrency_limit=None,
    )
    p.source.change(
        lambda s: gr.update(visible=s == SOURCE_FOLDER),
        inputs=p.source,
        outputs=p.folder,
        api_visibility="private",
        concurrency_limit=None,
    )

    def checkpoints_choices():
        return gr.update(
            choices=[
                m["name"]
                for m in actions.modes()
                if m["name"] not in (AUTO, ZEROSHOT) and not m["name"].startswith(f"{FUSED}:")
            ]
        )

    p.init_from.focus(checkpoints_choices, outputs=p.init_from, api_visibility="private", concurrency_limit=None)

    @user_facing("exporting the library's corrections")
    def ui_add_feedback(files: str):
        path, line = actions.feedback_file()
        listed = [f for f in (files or "").splitlines() if f.strip()]
        if str(path) not in listed:
            listed.append(str(path))
        return "\n".join(listed), line

    p.add_feedback.click(
        ui_add_feedback, inputs=p.train_files, outputs=[p.train_files, p.feedback_note], api_visibility="private"
    )


def _wire_run(actions: Actions, p: _Parts) -> None:
    """Start (the form becomes a recipe name and dotted settings) and stop the one run."""

    def start_run(name, model_name, init, files_text, uploaded, val, narr, src, feat_dir, run, *numbers):
        settings: dict[str, Any] = {"model.name": model_name}
        files = [line.strip() for line in (files_text or "").splitlines() if line.strip()]
        settings["data.train"] = files + list(uploaded or [])
        settings["data.val"] = (val or "").strip() or None
        if init:
            settings["init_from"] = init
        if narr in ("yes", "no"):
            settings["data.narrations"] = narr == "yes"
        if src == SOURCE_FOLDER:
            settings["data.features_dir"] = (feat_dir or "").strip() or None
        if run:
            settings["name"] = run.strip()
        for (key, _), value in zip(HYPERPARAMETERS, numbers):
            settings[key] = _number(key, value)
        return _status_text(actions.train(name, settings))

    p.start.click(
        start_run,
        inputs=[
            p.config,
            p.model,
            p.init_from,
            p.train_files,
            p.uploads,
            p.val_file,
            p.narrations,
            p.source,
            p.folder,
            p.run_name,
            *p.hyper,
        ],
        outputs=p.status,
        api_visibility="private",
        concurrency_id="gpu",
    )
    p.adapt.click(lambda: _status_text(actions.adapt()), outputs=p.status, api_name="adapt", concurrency_id="gpu")
    p.stop.click(
        lambda: _status_text(actions.train_stop()), outputs=p.status, api_visibility="private", concurrency_limit=None
    )


def _wire_progress(actions: Actions, p: _Parts, poll_s: float) -> None:
    """A timer re-reads the run's status and curves; a page sends nothing while nothing changed."""
    seen = gr.State(None)
    timer = gr.Timer(poll_s)

    def poll(previous):
        st = actions.jobs.training_status()
        key = (st.get("id"), st.get("num_records"), st.get("state"))
        if key == previous:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), previous
        loss, recall = curves(st.get("records") or [])
        ended = st.get("id") if st.get("state") in ("finished", "stopped", "failed") else gr.skip()
        return _status_text(st), _frame(loss), _frame(recall), ended, key

    timer.tick(
        poll,
        inputs=seen,
        outputs=[p.status, p.loss_plot, p.recall_plot, p.finished, seen],
        show_progress="hidden",
        api_visibility="private",
        concurrency_limit=None,
    )


def _propose_library_data(actions: Actions, p: _Parts) -> Handler:
    def library_defaults(name: str, files_text: str, val: str):
        """When the form's files do not exist (e.g. a recipe's Ego4D paths on a machine that has only the demo
        data), propose this library's own data and the recipe for it; a form whose files exist is left alone."""
        own = actions.library_training_data()
        if not own["train"] or not missing_files_note(files_text, val):
            return [gr.skip()] * (1 + len(p.form))
        recipe = own["recipe"] or name
        return [recipe, *_form_with_library_data(actions, recipe)]

    return Handler(library_defaults, inputs=[p.config, p.train_files, p.val_file], outputs=[p.config, *p.form])


def _number(key: str, value):
    """Numbers from the form: whole numbers where the config wants them; empty (or 0 for an optional
    setting, which a number box shows for "not set") means "not set"."""
    if value is None or value == "":
        return None
    import typing

    from training.config import TrainConfig  # the dataclass hints say which are whole numbers

    section, field = key.split(".")
    hint = typing.get_type_hints(type(getattr(TrainConfig(), section)))[field]
    if "None" in str(hint) and float(value) == 0:  # an optional setting left at 0 means "not set"
        return None
    if "int" in str(hint) and float(value).is_integer():
        return int(value)
    return float(value)
