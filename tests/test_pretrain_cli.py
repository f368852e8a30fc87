"""`python -m app pretrain` as users run it: outputs, a run killed and resumed, torchrun with two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import TINY_ARGS

from app.cli import main
from training.synthworld import generate_world

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_ARGS


def _env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("EGORECALL_MODEL", "EGORECALL_PRETRAINED", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-world")
    generate_world(out, n_videos=4, seed=2, duration=30.0, size=64, fps=5.0, val_fraction=0.25)
    return out


def _args(world: Path, out: Path, cache: Path, *extra) -> list[str]:
    return [
        "--videos-dir",
        str(world / "videos"),
        "--narrations",
        str(world / "narration.json"),
        "--out",
        str(out),
        "--set",
        f"cache_dir={cache}",
        *TINY,
        *map(str, extra),
    ]


def _app(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=_env(), text=True, capture_output=True, timeout=300, **kw
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(world, tmp_path, capsys):
    cache = tmp_path / "frames"
    common = ["--steps", 60, "--batch-size", 8, "--set", "save_every=5", "--set", "eval_every=20"]
    common += ["--set", "log_every=5", "--threads", 1]
    full = tmp_path / "full.safetensors"
    done = _app("pretrain", *_args(world, full, cache, *common))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "held-out retrieval" in done.stdout
    sidecar = json.loads(full.with_suffix(".json").read_text())
    assert sidecar["kind"] == "open_clip-encoder" and sidecar["model"] == "egorecall-tiny"
    assert sidecar["training"]["steps"] == 60 and sidecar["base"]["pretrained"] == "none"
    assert sidecar["data"]["train_videos"] == 3 and sidecar["data"]["val_videos"] == 1
    assert {"t2v_R@5", "chance_t2v_R@5", "v2t_R@1"} <= set(sidecar["metrics"])
    log = [json.loads(line) for line in (tmp_path / "full.train" / "log.jsonl").read_text().splitlines()]
    train = [r for r in log if r["event"] == "train"]
    assert [r["step"] for r in train] == list(range(5, 61, 5))  # the run log of every training task
    assert {"loss", "lr", "time", "pairs_per_s", "total_steps"} <= set(train[0])
    assert log[0]["event"] == "start" and log[-1]["event"] == "done"
    assert sum(r["event"] == "eval" for r in log) == 3
    assert not (tmp_path / "full.train" / "snapshots").exists()  # dropped once the weights are written

    killed = tmp_path / "killed.safetensors"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "pretrain", *_args(world, killed, cache, *common)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = tmp_path / "killed.train" / "snapshots"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(state.glob("step-*")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not killed.exists()

    assert main(["pretrain", *_args(world, killed, cache, *common[:-2])]) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert main(["pretrain", *_args(world, killed, cache, *common[:-2], "--lr", "1e-3", "--resume")]) == 1
    err = capsys.readouterr().err
    assert "other settings" in err and "lr" in err
    resumed = _app("pretrain", *_args(world, killed, cache, *common, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    log = [json.loads(line) for line in (tmp_path / "killed.train" / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["event"] == "train"]
    assert steps == list(range(5, 61, 5))  # cut back to the snapshot on resume: no step twice
    assert [r["resumed_from"] is not None for r in log if r["event"] == "start"][-1]
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert main(["pretrain", *_args(world, killed, cache, *common[:-2])]) == 1
    assert "already exists" in capsys.readouterr().err


def test_two_processes_with_torchrun_match_one_process_with_their_joint_batch(world, tmp_path):
    cache = tmp_path / "frames"
    common = ["--steps", 4, "--set", "frames_per_window=1", "--set", "augment=false", "--set", "val_fraction=0"]
    common += ["--lr", "1e-3"]
    one = tmp_path / "one.safetensors"
    assert main(["pretrain", *_args(world, one, cache, *common, "--batch-size", 16)]) == 0
    two = tmp_path / "two.safetensors"
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "app",
            "pretrain",
            *_args(world, two, cache, *common, "--batch-size", 8),
        ],
        cwd=ROOT,
        env=_env(),
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    sidecar = json.loads(two.with_suffix(".json").read_text())
    assert sidecar["training"]["world_size"] == 2 and sidecar["training"]["global_batch"] == 16
    a, b = _weights(one), _weights(two)
    start = load_file(str(_random_tiny(tmp_path)))
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert moved > 1e-3
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=2e-5)


def _random_tiny(tmp_path: Path) -> Path:
    from checkpoints.encoder import save_encoder_weights
    from models.clip_encoder import ClipEncoder, EncoderSpec

    path = tmp_path / "start.safetensors"
    save_encoder_weights(
        path, ClipEncoder.load(EncoderSpec("egorecall-tiny", "none"), "cpu").model, "egorecall-tiny", {}
    )
    return path


def test_sigterm_stops_pretraining_after_a_step_and_resume_finishes_it(world, tmp_path):
    """The localizer loop's stop behaviour: SIGTERM ends the run cleanly with a snapshot, no weights."""
    cache, out = tmp_path / "frames", tmp_path / "stopped.safetensors"
    common = ["--steps", 40, "--batch-size", 8, "--set", "save_every=5", "--set", "eval_every=40"]
    common += ["--set", "log_every=5", "--threads", 1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "pretrain", *_args(world, out, cache, *common)],
        cwd=ROOT,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    snapshots = tmp_path / "stopped.train" / "snapshots"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(snapshots.glob("step-*")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "stopped at step" in stdout and "--resume" in stdout, stdout
    assert not out.exists() and list(snapshots.glob("step-*"))
    log = [json.loads(line) for line in (tmp_path / "stopped.train" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "done" and log[-1]["stopped"] is True and log[-1]["step"] < 40

    resumed = _app("pretrain", *_args(world, out, cache, *common, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert out.is_file() and not snapshots.exists()


def test_pretraining_is_configured_like_training(tmp_path, capsys):
    """One configuration system: a YAML file and --set as for `train` (unknown keys refused by name), and every
    everyday flag is the PretrainConfig field of the same name."""
    import argparse
    import dataclasses

    from app.commands import pretrain as command
    from training.pretrain import PretrainConfig, load_pretrain_config

    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    actions = parser._subparsers._group_actions[0].choices["pretrain"]._actions
    dests = {a.dest for a in actions} - {"help", "handler", "config", "overrides", "threads"}
    assert dests == set(command.EVERYDAY) and dests <= fields
    videos = tmp_path / "videos"
    videos.mkdir()
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"videos_dir: {videos}\nnarrations: {tmp_path / 'n.json'}\nlr: 1.0e-4\naugment: false\n")
    config = load_pretrain_config(yaml_file, ["eval_every=7"], {"out": str(tmp_path / "e.safetensors"), "lr": 2e-4})
    assert (config.lr, config.augment, config.eval_every, config.videos_dir) == (2e-4, False, 7, videos)
    rc = main(
        ["pretrain", "--config", str(yaml_file), "--out", str(tmp_path / "e.safetensors"), "--set", "augmnt=false"]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "unknown config key 'augmnt'" in err and err.count("\n") == 1
    rc = main(["pretrain", "--out", str(tmp_path / "e.safetensors")])
    err = capsys.readouterr().err
    assert rc == 1 and "--videos-dir" in err and "--narrations" in err
