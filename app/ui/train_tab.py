"""The Train tab: choose data, model and stage, adjust the key hyper-parameters, start/stop one run, and watch
its loss and recall curves live.

The run itself belongs to the job manager (one at a time); the page only polls its status, so reloading the
page shows the same run. When a run ends, its checkpoints appear in the Ask tab's mode list.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.answering import AUTO, FUSED, ZEROSHOT
from app.ui.actions import Actions, user_facing
from app.ui.ask_tab import typed_frame
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


def build(actions: Actions, *, poll_s: float = 2.0) -> dict[str, Any]:
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

    @user_facing("exporting the library's corrections")
    def ui_add_feedback(files: str):
        path, line = actions.feedback_file()
        listed = [f for f in (files or "").splitlines() if f.strip()]
        if str(path) not in listed:
            listed.append(str(path))
        return "\n".join(listed), line

    add_feedback.click(
        ui_add_feedback, inputs=train_files, outputs=[train_files, feedback_note], api_visibility="private"
    )

    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="er-train-start")
        stop = gr.Button("Stop", variant="stop", elem_id="er-train-stop")
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
    """The id of the last run that ended; the Ask tab re-reads its modes when it changes."""
    seen = gr.State(None)
    timer = gr.Timer(poll_s)

    def form_values(name: str) -> list[Any]:
        """The recipe's defaults, with its data files replaced by this library's own when they are missing."""
        values = _form_values(name)
        own = actions.library_training_data()
        if own["train"] and missing_files_note(values[2], values[3]):
            values[2], values[3] = "\n".join(own["train"]), own["val"] or ""
        return [*values, missing_files_note(values[2], values[3])]

    def library_defaults(name: str, files_text: str, val: str):
        """When the form's files do not exist (e.g. a recipe's Ego4D paths on a machine that has only the demo
        data), propose this library's own data and the recipe for it; a form whose files exist is left alone."""
        own = actions.library_training_data()
        if not own["train"] or not missing_files_note(files_text, val):
            return [gr.skip()] * (1 + len(form_outputs))
        recipe = own["recipe"] or name
        return [recipe, *form_values(recipe)]

    form_outputs = [model, init_from, train_files, val_file, narrations, *hyper, files_note]
    config.change(form_values, inputs=config, outputs=form_outputs, api_visibility="private", concurrency_limit=None)
    for box in (train_files, val_file):
        box.change(
            missing_files_note,
            inputs=[train_files, val_file],
            outputs=files_note,
            api_visibility="private",
            concurrency_limit=None,
        )
    source.change(
        lambda s: gr.update(visible=s == SOURCE_FOLDER),
        inputs=source,
        outputs=folder,
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

    init_from.focus(checkpoints_choices, outputs=init_from, api_visibility="private", concurrency_limit=None)

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

    start.click(
        start_run,
        inputs=[config, model, init_from, train_files, uploads, val_file, narrations, source, folder, run_name, *hyper],
        outputs=status,
        api_visibility="private",
        concurrency_id="gpu",
    )
    stop.click(
        lambda: _status_text(actions.train_stop()), outputs=status, api_visibility="private", concurrency_limit=None
    )

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
        outputs=[status, loss_plot, recall_plot, finished, seen],
        show_progress="hidden",
        api_visibility="private",
        concurrency_limit=None,
    )
    return {
        "finished": finished,
        "defaults": (library_defaults, [config, train_files, val_file], [config, *form_outputs]),
    }


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
