"""The app's one-click demo drives the real demo pipeline (quick sizes) and leaves a library the Ask tab uses."""

from __future__ import annotations

import functools
import time

import pytest
from app_fixtures import TINY, free_port
from gradio_client import Client

from app.demo import DemoConfig, run_demo
from app.jobs import JobManager
from app.service import EgoRecall
from app.settings import Settings
from app.ui import build_app, launch_app

pytestmark = pytest.mark.slow


def test_one_click_demo_then_ask_in_both_modes(tmp_path):
    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder_spec=TINY)
    jobs = JobManager(service, demo_runner=functools.partial(run_demo, config=DemoConfig.quick()))
    blocks = build_app(service, jobs, poll_s=0.5)
    _, url = launch_app(blocks, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        started = client.predict(api_name="/demo")
        assert started["state"] in ("queued", "running")
        deadline, fractions = time.monotonic() + 300, []
        while time.monotonic() < deadline:
            status = client.predict(api_name="/demo_status")
            fractions.append(status["fraction"])
            if status["state"] not in ("queued", "running"):
                break
            time.sleep(0.5)
        assert status["state"] == "finished", status
        assert fractions == sorted(fractions) and status["fraction"] == 1.0
        assert "demo ready" in status["message"]

        modes = [m["name"] if isinstance(m, dict) else m for m in client.predict(api_name="/modes")]
        assert modes[:2] == ["auto", "zeroshot"] and len(modes) >= 3
        videos = client.predict(api_name="/videos")
        assert videos and all(v["status"] == "ready" for v in videos)
        for mode in ("zeroshot", modes[2], "auto"):
            answer = client.predict("where did I put the keys?", None, mode, 5, api_name="/ask")
            assert len(answer["moments"]) == 5, mode
            assert all(m["clip_url"] for m in answer["moments"])
        # the default mode fuses with a checkpoint the demo trained (fitted on its validation file) and says so
        assert answer["asked_mode"] == "auto" and answer["mode"].startswith("fused:demo-vslnet-")
    finally:
        jobs.close()
        blocks.close()
