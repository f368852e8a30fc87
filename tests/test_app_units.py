"""The app's pure helpers and its job manager, without a server."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app.answering import Moment, ScoreSeries
from app.jobs import JobBusy, JobManager
from app.ui.format import (
    clock,
    moment_caption,
    moment_record,
    playback_offset,
    progress_html,
    series_points,
    span,
    video_rows,
)
from app.ui.train_form import config_defaults, config_names, curves, make_config
from models.errors import EgoRecallError


def test_clock_and_span():
    assert [clock(s) for s in (0, 5.9, 65, 3599.99, 3600, 7322)] == [
        "0:00",
        "0:05",
        "1:05",
        "59:59",
        "1:00:00",
        "2:02:02",
    ]
    assert span(12.4, 18.7) == "0:12–0:18"
    assert span(4.2, 4.8) == "0:04–0:05"  # never an empty-looking window
    assert span(59.5, 61.0) == "0:59–1:01"


def test_moment_record_and_caption(tmp_path):
    clip = tmp_path / "c.mp4"
    m = Moment(
        "abc123", "kitchen.mp4", 12.25, 18.5, 0.31234, 1, clip=clip, thumbnail=tmp_path / "t.jpg", clip_start=11.25
    )
    r = moment_record(m)
    assert r["video_id"] == "abc123" and r["video_name"] == "kitchen.mp4"
    assert (r["start"], r["end"], r["span"], r["rank"]) == (12.25, 18.5, "0:12–0:18", 1)
    assert r["clip"] == str(clip) and r["clip_url"] == f"gradio_api/file={clip.resolve()}"
    assert r["clip_start"] == 11.25 and r["clip_error"] is None and playback_offset(r) == 1.0
    assert moment_caption(r) == "#1 · kitchen.mp4 · 0:12–0:18 · score 0.312"
    sure = dict(r, when="Tue 3 Dec, 08:14", confidence=0.62, confidence_text="62 % · likely")
    assert moment_caption(sure) == "#1 · Tue 3 Dec, 08:14 · kitchen.mp4 · 0:12–0:18 · 62 % · likely"
    bare = moment_record(Moment("v", "a b.mp4", 0, 1, 0.5, 2, clip_error="media missing"))
    assert bare["clip"] is None and bare["clip_url"] is None and bare["clip_error"] == "media missing"


def test_video_rows_show_ready_and_pending_files():
    rec = SimpleNamespace(
        name="walk.mp4",
        duration=75.2,
        fps=30.0,
        frame_count=None,
        encoder_key="tiny/x",
        added_at=0,
        status="ready",
        id="v1",
        recorded_at=datetime(2026, 12, 3, 8, 14).timestamp(),
        recorded_tz=None,
        recorded_source="file name",
    )
    pending = [
        SimpleNamespace(name="next.mp4", state="indexing", frames_done=30, frames_total=120),
        SimpleNamespace(name="later.mp4", state="queued", frames_done=0, frames_total=0),
    ]
    later = SimpleNamespace(**{**vars(rec), "name": "evening.mp4", "recorded_at": rec.recorded_at + 10 * 3600})
    next_day = SimpleNamespace(**{**vars(rec), "name": "friday.mp4", "recorded_at": rec.recorded_at + 24 * 3600})
    undated = SimpleNamespace(**{**vars(rec), "name": "old.mp4", "recorded_at": None, "recorded_source": None})
    rows = video_rows([later, undated, next_day, rec], pending)
    # files in progress on top, then the latest day first, each day's recordings in time order, the day named
    # on its first row; videos with no recording time at the end
    assert rows[0][2] == "next.mp4" and rows[0][4] == "indexing 25%" and rows[1][4] == "queued"
    assert rows[2][:3] == ["Fri 4 Dec 2026", "08:14 (file name)", "friday.mp4"]
    assert rows[3] == ["Thu 3 Dec 2026", "08:14 (file name)", "walk.mp4", "1:15", "ready", 2256, "tiny/x", "v1"]
    assert rows[4][:3] == ["", "18:14 (file name)", "evening.mp4"]
    assert rows[5][:3] == ["date unknown", "", "old.mp4"]


def test_progress_html_escapes_names_and_shows_eta():
    status = {
        "current": {
            "name": "<b>x</b>.mp4",
            "file": 1,
            "files": 2,
            "frames_done": 30,
            "frames_total": 120,
            "eta_s": 65.0,
        },
        "queued_files": 1,
        "jobs": [{"files": [{"name": "bad.mp4", "state": "failed", "message": "bad.mp4: not a video."}]}],
    }
    text = progress_html(status)
    assert "&lt;b&gt;x&lt;/b&gt;.mp4" in text and "<b>x</b>" not in text
    assert 'value="25.0"' in text and "30 / 120 frames" in text and "1:05 left" in text
    assert "not added: bad.mp4: not a video." in text
    assert 'data-state="idle"' in progress_html({"current": None, "queued_files": 0, "jobs": []})


def test_series_points_mark_the_windows():
    s = ScoreSeries(
        "v",
        "v.mp4",
        5.0,
        np.arange(10) * 0.5 + 0.25,
        np.linspace(0, 1, 10, dtype=np.float32),
        ((1.0, 2.0, 1), (4.0, 4.1, 2)),
    )
    pts = series_points(s)
    assert len([p for p in pts if p["series"] == "score"]) == 10
    first = [p["time"] for p in pts if p["series"] == "#1"]
    assert first == [1.25, 1.75]
    assert [p["time"] for p in pts if p["series"] == "#2"] == [4.0, 4.1]  # shorter than a bin: its two ends
    gap = ScoreSeries("v", "v.mp4", 5.0, np.array([0.25, 0.5, 0.75]), np.array([0.1, np.nan, 0.2]), ())
    assert [p["time"] for p in series_points(gap)] == [0.25, 0.75]


# ---------------------------------------------------------------------------------------------- jobs
class FakeService:
    """Stands in for EgoRecall: training runs until stopped, reporting like the loop does."""

    def __init__(self):
        self.settings = SimpleNamespace(library=Path("lib"))
        self.started = threading.Event()

    def train(self, config, progress=None, stop=None):
        progress({"event": "start", "step": 0, "total_steps": 100, "config": {"huge": True}})
        step = 0
        self.started.set()
        while not stop.wait(0.01):
            step += 1
            progress({"event": "train", "step": step, "total_steps": 100, "loss": {"total": 1.0 / step}})
            if step == 3:
                progress(
                    {"event": "eval", "step": 3, "total_steps": 100, "metrics": {"R@1@0.3": 10.0, "R@5@0.3": 30.0}}
                )
        return SimpleNamespace(
            stopped=True,
            to_dict=lambda: {
                "steps": step,
                "total_steps": 100,
                "stopped": True,
                "best": None,
                "checkpoints": {"final": "lib/checkpoints/run-final"},
            },
        )

    def index(self, paths, progress=None, copy_media=True):
        raise RuntimeError("boom")


def test_one_training_run_at_a_time_and_stop():
    service = FakeService()
    jobs = JobManager(service)
    job = jobs.start_training(SimpleNamespace(name="run"))
    assert service.started.wait(10)
    with pytest.raises(JobBusy, match="'run' is still running"):
        jobs.start_training(SimpleNamespace(name="second"))
    while jobs.training_status()["num_records"] < 5:
        time.sleep(0.01)
    assert jobs.stop_training() is job
    status = jobs.wait_training(10)
    assert status["state"] == "stopped" and "run-final" in status["message"]
    assert "config" not in status["records"][0]  # the resolved config is not kept per page
    loss, recall = curves(status["records"])
    assert loss[0] == {"step": 1, "value": 1.0, "series": "loss"}
    assert {p["series"] for p in recall} == {"R@1@0.3", "R@5@0.3"}
    assert jobs.training_status(since=status["num_records"])["records"] == []
    second = jobs.start_training(SimpleNamespace(name="second"))  # the finished run no longer blocks
    assert second.name == "second"
    jobs.stop_training()
    jobs.wait_training(10)
    jobs.close()


def test_unexpected_index_failure_is_one_line_and_the_worker_survives(caplog):
    jobs = JobManager(FakeService())
    first = jobs.submit_index([("/tmp/a.mp4", "a.mp4"), ("/tmp/b.mp4", "b.mp4")])
    done = jobs.wait_index(first.id, 10)
    assert [f.state for f in done.files] == ["failed", "failed"]
    assert "unexpected error" in done.files[0].message and "boom" not in done.files[0].message
    assert "boom" in caplog.text  # the traceback goes to the log
    again = jobs.wait_index(jobs.submit_index([("/tmp/c.mp4", "c.mp4")]).id, 10)
    assert again.finished
    with pytest.raises(EgoRecallError):
        jobs.submit_index([])
    jobs.close()


def test_demo_runs_on_the_queue_and_reports_progress(monkeypatch):
    seen = []

    def run_demo(service, progress=None, stop=None):
        progress("making videos", 0.5)
        seen.append(stop)
        return SimpleNamespace(summary=lambda: "3 videos, 1 checkpoint")

    jobs = JobManager(FakeService(), demo_runner=run_demo)
    job = jobs.start_demo()
    deadline = time.monotonic() + 10
    while jobs.demo_status()["state"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.01)
    st = jobs.demo_status()
    assert st["state"] == "finished" and st["message"] == "3 videos, 1 checkpoint" and seen == [job.stop]
    jobs.close()


# ---------------------------------------------------------------------------------------------- train form
def test_train_form_defaults_come_from_the_configs(tmp_path):
    names = config_names()
    assert "vslnet_naq_joint" in names and "reler_nlq_finetune" in names
    c = config_defaults("vslnet_naq_joint")
    assert c.optim.lr == 1e-3 and c.stage == "joint"
    settings = SimpleNamespace(library=tmp_path / "lib")
    made = make_config("vslnet_nlq", {"data.train": ["a.json"], "optim.steps": 20, "optim.lr": 5e-4}, settings)
    assert made.data.library == str(tmp_path / "lib") and made.data.features_dir is None
    assert made.optim.steps == 20 and made.optim.lr == 5e-4 and made.optim.batch_size == 32  # from the file
    assert made.output.runs_dir == str(tmp_path / "lib" / "runs") and made.name.startswith("vslnet_nlq-")
    folder = make_config("vslnet_nlq", {"data.train": ["a.json"], "data.features_dir": "feats"}, settings)
    assert folder.data.features_dir == "feats" and folder.data.library is None
    with pytest.raises(EgoRecallError, match="unknown config key 'optim.lrr'"):
        make_config("vslnet_nlq", {"optim.lrr": 1}, settings)
    with pytest.raises(EgoRecallError, match="no training config"):
        make_config("nope", {}, settings)


def test_python_api_imports():
    from app import EgoRecall, Settings, load_settings
    from app.service import EgoRecall as E
    from app.settings import Settings as S
    from app.settings import load_settings as L

    assert EgoRecall is E and Settings is S and load_settings is L


def test_train_form_numbers():
    from app.ui.train_tab import _number

    assert _number("optim.steps", 0) is None and _number("optim.steps", 20.0) == 20
    assert isinstance(_number("optim.batch_size", 32.0), int) and _number("optim.lr", 0.001) == 0.001
    assert _number("optim.epochs", None) is None and _number("eval.every", 0) == 0


def test_the_library_panel_shows_a_weights_download():
    from app.ui.format import progress_html

    status = {"download": {"what": "ViT-B-16 ('openai')", "done": 150e6, "total": 600e6}, "jobs": []}
    html = progress_html(status)
    assert "Downloading the encoder weights" in html and "150 of 600 MB" in html and 'value="25.0"' in html


def test_the_train_tab_proposes_the_librarys_own_data(tmp_path):
    """After "Make demo data" the recipe's Ego4D paths do not exist here; the demo's files do."""
    from app.jobs import JobManager
    from app.service import EgoRecall
    from app.settings import Settings
    from app.ui.actions import Actions
    from app.ui.train_tab import missing_files_note

    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"))
    actions = Actions(service, JobManager(service))
    try:
        assert actions.library_training_data() == {"train": [], "val": None, "recipe": None}
        demo = tmp_path / "lib" / "demo"
        (demo / "world").mkdir(parents=True)
        (demo / "naq_train.json").write_text("{}")
        (demo / "world" / "nlq_val.json").write_text("{}")
        own = actions.library_training_data()
        assert own["recipe"] == "vslnet_naq_joint" and own["train"] == [str(demo / "naq_train.json")]
        assert missing_files_note("\n".join(own["train"]), own["val"]) == ""
        note = missing_files_note("data/ego4d/naq_train.json\n" + own["train"][0], "data/ego4d/nlq_val.json")
        assert "data/ego4d/naq_train.json" in note and "nlq_val.json" in note and "naq_train.json`," in note
    finally:
        actions.jobs.close()


def test_the_train_tab_weighs_the_librarys_corrections_beside_other_files(tmp_path):
    """20 corrections beside a NaQ file of thousands would be 1 % of what the model sees: the Train tab uses
    each of them CORRECTIONS_REPEAT times (unless the form says otherwise); alone, they are used once."""
    from app.jobs import JobManager
    from app.service import EgoRecall
    from app.settings import Settings
    from app.ui.actions import CORRECTIONS_REPEAT, FEEDBACK_FILE, Actions

    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"))
    actions = Actions(service, JobManager(service))
    started = []
    actions.jobs.start_training = started.append
    corrections = str(tmp_path / "lib" / FEEDBACK_FILE)
    try:
        actions.train("vslnet_naq_joint", {"data.train": ["naq_train.json", corrections]})
        actions.train("vslnet_naq_joint", {"data.train": [corrections], "init_from": "x", "stage": "finetune"})
        actions.train("vslnet_naq_joint", {"data.train": ["naq_train.json", corrections], "data.repeat": {}})
    finally:
        actions.jobs.close()
    assert [c.data.repeat for c in started] == [{corrections: CORRECTIONS_REPEAT}, {}, {}]


def test_a_slow_preparation_runs_in_the_training_slot_and_its_failure_is_the_runs():
    """Adapt to my library prepares its data (narrating every video) in the run's thread, not the page's; a
    preparation that fails ends the run with its message."""
    from app.adaptation import NothingToAdapt

    service = FakeService()
    jobs = JobManager(service)
    made: list[str] = []

    def prepare():
        made.append("prepared")
        return SimpleNamespace(name="adapted")

    jobs.start_training(prepare, name="adapt to this library")
    assert service.started.wait(10) and made == ["prepared"]
    jobs.stop_training()
    assert jobs.wait_training(10)["state"] == "stopped"

    def refuse():
        raise NothingToAdapt("no object stood out clearly enough in any video to narrate it")

    jobs.start_training(refuse, name="adapt to this library")
    status = jobs.wait_training(10)
    assert status["state"] == "failed" and "no object stood out" in status["message"]
    jobs.close()


def test_adapting_an_empty_library_says_why(tmp_path):
    from app.jobs import JobManager
    from app.service import EgoRecall
    from app.settings import Settings
    from app.ui.actions import Actions

    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"))
    actions = Actions(service, JobManager(service))
    try:
        with pytest.raises(gr.Error, match="no videos to adapt to"):
            actions.adapt()
    finally:
        actions.jobs.close()
