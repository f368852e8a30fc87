"""Every user action of the app, once: the page's handlers and the HTTP API (``gradio_client``) both call these.

Each action returns plain JSON-able data and turns failures into one readable line: an ``EgoRecallError``
becomes a ``gr.Error`` with its own message; anything else is logged with its traceback and shown as one
line saying so (never a stack trace in the page).
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from app.adaptation import NothingToAdapt
from app.answering import AUTO, FUSED, ZEROSHOT
from app.jobs import JobManager, error_message
from app.text import counted
from app.ui.format import moment_record
from indexing.catalog import VideoRecord
from models.errors import EgoRecallError

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ALL_VIDEOS = "*"
"""The scope value meaning "the whole library" (video ids are hexadecimal, never ``*``)."""


FEEDBACK_FILE = "feedback/feedback_nlq.json"
CORRECTIONS_REPEAT = 15
"""Times the library's corrections are used per epoch when trained beside other files (``data.repeat``; the
answer benchmark's recipe, bench/README.md)."""
DEMO_FOLDER = "demo"
"""Where "Make demo data" leaves its world and NaQ file inside the library (``app.demo.DEMO_DIR``)."""
"""Where the Train tab exports the library's corrections (inside the library)."""


def user_facing(what: str) -> Callable[[F], F]:
    """Turn any failure of ``fn`` into a ``gr.Error`` with one line for the user."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:  # noqa: BLE001 - the page must get a sentence, not a traceback
                # The message may hold file names; the page renders it as HTML, so it is escaped.
                raise gr.Error(html.escape(_sentence(error_message(exc, what))), print_exception=False) from None

        return inner  # type: ignore[return-value]

    return wrap


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def video_record(record) -> dict[str, Any]:
    keep = (
        "id",
        "name",
        "status",
        "duration",
        "fps",
        "width",
        "height",
        "codec",
        "frame_count",
        "encoder_key",
        "dim",
        "rate_hz",
        "num_rows",
        "added_at",
        "size_bytes",
        "recorded_at",
        "recorded_tz",
        "recorded_source",
    )
    d = record.to_dict()
    out = {k: d.get(k) for k in keep}
    if record.recorded_at is not None:
        from indexing.recording_time import short_time

        out["recorded"] = f"{short_time(record.recorded_at, record.recorded_tz)} ({record.recorded_source})"
    else:
        out["recorded"] = "unknown"
    return out


class Actions:
    """The app's actions over one service and its job manager."""

    def __init__(self, service, jobs: JobManager) -> None:
        self.service = service
        self.jobs = jobs

    # ------------------------------------------------------------------ library
    @user_facing("adding videos")
    def index(self, files: list[tuple[str | Path, str]]) -> dict[str, Any]:
        """Queue uploaded files for indexing; returns the job (poll ``index_status``)."""
        return self.jobs.submit_index(files).to_dict()

    @user_facing("reading the indexing status")
    def index_status(self) -> dict[str, Any]:
        return self.jobs.index_status()

    @user_facing("listing the library")
    def videos(self) -> list[dict[str, Any]]:
        return [video_record(r) for r in self.service.videos()]

    @user_facing("listing the library")
    def video_records(self) -> list[VideoRecord]:
        """The ready videos' records, for the tabs' lists (the API gets :meth:`videos`)."""
        return self.service.videos()

    @user_facing("removing a video")
    def remove(self, video_id: str) -> dict[str, Any]:
        if not video_id:
            raise EgoRecallError("choose a video to remove")
        record = self.service.remove(video_id)
        self.jobs.library_changed()
        return video_record(record)

    @user_facing("setting the recording time")
    def set_recording_time(self, video_id: str, when: str) -> dict[str, Any]:
        if not video_id:
            raise EgoRecallError("choose a video to date")
        record = self.service.set_recording_time(video_id, when or "")
        self.jobs.library_changed()
        return video_record(record)

    # ------------------------------------------------------------------ asking
    @user_facing("listing the answering modes")
    def modes(self) -> list[dict[str, Any]]:
        """``zeroshot`` and the checkpoints trained on this library's features, with their metrics."""
        from checkpoints import list_checkpoints

        try:
            names = self.service.modes()
        except EgoRecallError:  # e.g. an empty library: only zero-shot can answer
            names = [AUTO, ZEROSHOT]
        infos = {c.name: c for c in list_checkpoints(self.service.settings.checkpoints_dir)}
        out = []
        for name in names:
            fused = name.startswith(f"{FUSED}:")
            info = infos.get(name.split(":", 1)[1] if fused else name)
            metrics = dict(info.metrics) if info and not fused else {}
            label = "zero-shot (CLIP)" if name == ZEROSHOT else _checkpoint_label(name, info)
            if name == AUTO:
                label = f"auto (best available: {self._auto_now()})"
            if fused:
                label = f"fused: {_checkpoint_label(info.name, info) if info else name} + zero-shot"
            out.append(
                {
                    "name": name,
                    "label": label,
                    "metrics": metrics,
                    "model": info.model if info else "clip",
                    "stage": info.stage if info else "",
                }
            )
        return out

    def ask_answer(
        self, question: str, video_id: str | None, mode: str, k: int, since: str | None = None, until: str | None = None
    ):
        """The service's :class:`~app.answering.Answer` (errors as ``EgoRecallError``)."""
        scope = None if not video_id or video_id == ALL_VIDEOS else video_id
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise EgoRecallError(f"k must be a whole number of moments, not {k!r}") from None
        since, until = (since or "").strip() or None, (until or "").strip() or None
        return self.service.ask(question or "", video_id=scope, mode=mode or AUTO, k=k, since=since, until=until)

    def _auto_now(self) -> str:
        """What ``auto`` stands for in this library now (best effort: the list of modes must not fail)."""
        from app.answering import resolve_auto

        try:
            return resolve_auto(self.service.answer_context())
        except EgoRecallError:
            return ZEROSHOT

    @user_facing("answering the question")
    def ask(
        self,
        question: str,
        video_id: str | None = None,
        mode: str = AUTO,
        k: int = 5,
        since: str | None = None,
        until: str | None = None,
    ) -> dict:
        answer = self.ask_answer(question, video_id, mode, k, since, until)
        return answer_record(answer)

    # ------------------------------------------------------------------ corrections
    @user_facing("storing the correction")
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
    ) -> dict[str, Any]:
        shown = None if shown_start is None or shown_end is None else (float(shown_start), float(shown_end))
        return self.service.correct(video_id, question, start, end, verdict, mode=mode, shown=shown).to_dict()

    def correct_moment(self, answer: dict | None, rank: float, start: float, end: float, verdict: str) -> str:
        """The Ask tab's correction of moment ``rank`` of the shown answer; returns the line to show."""
        answer = answer or {}
        moments = answer.get("moments") or []
        match = [m for m in moments if m["rank"] == int(rank or 0)]
        if not match:
            raise gr.Error(f"Ask a question first, then pick one of its moments (1 to {max(1, len(moments))}).")
        m = match[0]
        if verdict != "adjusted":
            start, end = m["start"], m["end"]
        c = self.correct(
            m["video_id"], answer["question"], start, end, verdict, answer.get("mode", ""), m["start"], m["end"]
        )
        total = len(self.service.corrections())
        return (
            f"Saved: moment #{m['rank']} of {m['video_name']} marked **{c['verdict']}** "
            f"({c['start']:.1f}-{c['end']:.1f} s). {counted(total, 'correction')} in this library; "
            f"the Train tab can train on them."
        )

    @user_facing("exporting the corrections")
    def feedback_file(self) -> tuple[Path, str]:
        """The library's corrections written as an NLQ file inside the library, for the Train tab."""
        path = Path(self.service.settings.library) / FEEDBACK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        report = self.service.export_feedback(path)
        if report.queries == 0:
            raise EgoRecallError("there are no right or adjusted corrections yet; mark answers in the Ask tab first")
        return path, report.line()

    def library_training_data(self) -> dict[str, Any]:
        """What this library can train on, for the Train tab's defaults: after "Make demo data", the demo
        world's NaQ training file and NLQ validation file (recipe ``vslnet_naq_joint``); once corrections exist,
        their exported NLQ file too (refreshed here). Empty when the library has neither."""
        root = Path(self.service.settings.library)
        demo = root / DEMO_FOLDER
        out: dict[str, Any] = {"train": [], "val": None, "recipe": None}
        if (demo / "naq_train.json").is_file() and (demo / "world" / "nlq_val.json").is_file():
            out.update(
                train=[str(demo / "naq_train.json")],
                val=str(demo / "world" / "nlq_val.json"),
                recipe="vslnet_naq_joint",
            )
        try:
            if any(c.verdict != "wrong" for c in self.service.corrections()):
                path, _ = self.feedback_file()
                out["train"].append(str(path))
        except (EgoRecallError, gr.Error):  # no library yet, or nothing exportable: no default
            pass
        return out

    @user_facing("listing the corrections")
    def corrections(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.service.corrections()]

    # ------------------------------------------------------------------ training
    @user_facing("starting training")
    def train(self, config: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        from app.ui.train_form import make_config

        settings = dict(settings or {})
        corrections = str(Path(self.service.settings.library) / FEEDBACK_FILE)
        files = [str(f) for f in settings.get("data.train") or []]
        if corrections in files and len(files) > 1 and "data.repeat" not in settings:
            settings["data.repeat"] = {corrections: CORRECTIONS_REPEAT}  # 20 answers beside thousands of queries
        self.jobs.start_training(make_config(config, settings, self.service.settings))
        return self.jobs.training_status()

    @user_facing("adapting to this library")
    def adapt(self) -> dict[str, Any]:
        """Fine-tune the checkpoint ``auto`` uses on this library's pseudo-narrations, in the training slot."""
        from app.adaptation import adaptation_config

        if not self.service.videos():
            raise NothingToAdapt("the library holds no videos to adapt to; add some first")
        self.jobs.start_training(lambda: adaptation_config(self.service), name="adapt to this library")
        return self.jobs.training_status()

    @user_facing("reading the training status")
    def train_status(self, since: int = 0) -> dict[str, Any]:
        return self.jobs.training_status(int(since or 0))

    @user_facing("stopping training")
    def train_stop(self) -> dict[str, Any]:
        self.jobs.stop_training()
        return self.jobs.training_status()

    # ------------------------------------------------------------------ demo
    @user_facing("making demo data")
    def demo(self) -> dict[str, Any]:
        return self.jobs.start_demo().to_dict()

    @user_facing("stopping the demo")
    def demo_stop(self) -> dict[str, Any]:
        self.jobs.stop_demo()
        return self.jobs.demo_status()


def _checkpoint_label(name: str, info) -> str:
    if info is None:
        return name
    m = info.metrics or {}
    figures = ", ".join(f"{k} {m[k]:.1f}" for k in ("R@1@0.3", "R@5@0.3") if k in m)
    return f"{name} ({info.model}{', ' + figures if figures else ''})"


def answer_record(answer) -> dict[str, Any]:
    """The ``ask`` API's answer: moments as records (clip files by path and by URL), without the curves."""
    from app.answering.results import confidence_text, confidence_words

    return {
        "question": answer.question,
        "mode": answer.mode,
        "asked_mode": answer.asked_mode or answer.mode,
        "label": answer.label,
        "warnings": list(answer.warnings),
        "video_id": answer.video_id,
        "moments": [
            dict(
                moment_record(m),
                confidence_words=confidence_words(m.confidence, answer.threshold),
                confidence_text=confidence_text(m.confidence, answer.threshold),
            )
            for m in answer.moments
        ],
        "candidates": answer.candidates,
        "seconds": round(answer.seconds, 3),
        "no_good_match": answer.no_good_match,
        "verdict": answer.verdict,
        "best_confidence": answer.best_confidence,
        "threshold": answer.threshold,
        "searching": answer.searching,
        "ordered": answer.ordered,
        "order_note": answer.order_note,
    }
