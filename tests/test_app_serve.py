"""``python -m app`` (the default ``serve`` command) serves the app on 127.0.0.1, with optional auth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_fixtures import free_port

from app.commands.serve import ServeError, parse_auth

REPO = Path(__file__).resolve().parents[1]


def test_parse_auth():
    assert parse_auth(None) is None and parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(ServeError):
            parse_auth(bad)


def test_python_m_app_serves_the_library_with_auth(tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        EGORECALL_MODEL="egorecall-tiny",
        EGORECALL_PRETRAINED="none",
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONPATH=str(REPO),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--library", str(tmp_path / "lib"), "--port", str(port), "--auth", "ann:secret"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(url + "config", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else ""
                time.sleep(0.5)
        assert r.status_code == 401  # nothing without logging in
        with httpx.Client(timeout=10) as http:
            assert http.post(url + "login", data={"username": "ann", "password": "wrong"}).status_code == 400
            assert http.post(url + "login", data={"username": "ann", "password": "secret"}).status_code == 200
            config = http.get(url + "config").json()
            assert config["title"] == "EgoRecall"
            names = {d.get("api_name") for d in config["dependencies"]}
            assert {
                "index",
                "videos",
                "remove",
                "ask",
                "train",
                "train_status",
                "train_stop",
                "index_status",
                "demo",
            } <= names
        assert (tmp_path / "lib" / "clips").is_dir()
    finally:
        proc.terminate()
        proc.wait(20)
