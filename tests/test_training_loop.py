"""The training loop: checkpoints the app can use, logs, stopping, resuming after SIGKILL, stage 2, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from checkpoints import list_checkpoints, load_checkpoint
from models.inference import localize
from models.text_tokens import TextEncoderSpec, load_text_encoder
from tests.training_fixtures import TINY_TEXT, make_task, tiny_config_values
from training.checkpoint_info import inference_config_from_metadata, text_spec_from_metadata
from training.config import TrainConfig
from training.features import DirectoryClipFeatures
from training.loop import TrainingError, run
from training.nlq import load_nlq
from training.run_setup import lr_factor
from training.runlog import read_log
from training.snapshot import flatten_optimizer, latest_snapshot, unflatten_optimizer, write_snapshot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return make_task(tmp_path_factory.mktemp("task"))


def config(task, runs: Path, **changes) -> TrainConfig:
    return TrainConfig.from_dict(tiny_config_values(task, runs, **changes))


def final_weights(result) -> dict[str, torch.Tensor]:
    return load_file(str(result.checkpoints["final"] / "model.safetensors"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


# ---------------------------------------------------------------------------------------------- units
def test_lr_warms_up_then_decays_linearly():
    f = [lr_factor(s, 100, 10, "linear") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5) and f[99] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_a_run_folder_moved_with_its_data_is_the_same_run_and_other_paths_still_differ():
    from training.resume import changed_settings

    def cfg(root: str, train: str) -> TrainConfig:
        return TrainConfig.from_dict(
            {
                "name": "r",
                "data": {"library": root, "train": [train]},
                "optim": {"steps": 2},
                "output": {"runs_dir": f"{root}/demo/runs", "checkpoints_dir": f"{root}/checkpoints"},
            }
        )

    recorded = cfg("/old/lib", "/old/lib/demo/naq.json").to_dict()
    assert changed_settings(recorded, cfg("/new/place/lib", "/new/place/lib/demo/naq.json")) == []
    assert changed_settings(recorded, cfg("/new/place/lib", "/elsewhere/naq.json")) == ["data.train"]
    assert changed_settings(recorded, cfg("/old/lib", "/old/lib/demo/other.json")) == ["data.train"]


def test_optimizer_state_round_trips_without_pickles(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    tensors, rest = flatten_optimizer(opt.state_dict())
    json.dumps(rest)  # the non-tensor part is plain JSON
    restored = torch.optim.AdamW(model.parameters(), lr=5.0)
    restored.load_state_dict(unflatten_optimizer(tensors, json.loads(json.dumps(rest))))
    a, b = opt.state_dict(), restored.state_dict()
    assert b["param_groups"][0]["lr"] == 1e-3 and tuple(b["param_groups"][0]["betas"]) == (0.8, 0.9)
    for pid, values in a["state"].items():
        for name, value in values.items():
            assert torch.equal(value, b["state"][pid][name])

    for step in (4, 8):
        write_snapshot(
            tmp_path,
            step,
            model.state_dict(),
            opt.state_dict(),
            {"time": 1.0},
            None,
            {"cpu.rank0": torch.get_rng_state()},
        )
    assert latest_snapshot(tmp_path).name == "step-000000008"
    assert [p.name for p in (tmp_path / "snapshots").iterdir()] == ["step-000000008"]  # older ones go


# ---------------------------------------------------------------------------------------------- a whole run
def test_a_run_logs_evaluates_and_publishes_usable_checkpoints(task, tmp_path):
    cfg = config(task, tmp_path)
    records = []
    result = run(cfg, progress=records.append)
    assert not result.stopped and result.steps == result.total_steps == 12
    assert set(result.checkpoints) == {"best", "final"}
    listed = {c.name: c for c in list_checkpoints(tmp_path / "checkpoints")}
    assert set(listed) == {"tiny-best", "tiny-final"}
    assert listed["tiny-best"].stage == "joint" and "R@1@0.3" in listed["tiny-best"].metrics

    # The log: what the app's Train tab tails; the callback saw the same records.
    log = read_log(result.run_dir)
    assert [r["event"] for r in log] == [r["event"] for r in records]
    events = [r["event"] for r in log]
    assert events[0] == "start" and events[-1] == "done" and events.count("eval") == 2
    train = [r for r in log if r["event"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 12]
    assert all(
        {"total", "span", "highlight"} <= set(r["loss"]) and r["lr"] > 0 and r["queries_per_s"] > 0 for r in train
    )
    evals = [r for r in log if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [6, 12] and "R@5@0.5" in evals[0]["metrics"]
    assert log[0]["data"]["nlq_queries"] == 24 and log[0]["data"]["narration_queries"] == 24

    # The checkpoint answers raw features through models.inference, with what its metadata says.
    model, meta = load_checkpoint("tiny-best", tmp_path / "checkpoints", device="cpu")
    assert meta.feature_encoder.key == "features-dir:features" and meta.feature_encoder.dim == 16
    assert meta.data["inference"]["resample_to"] is None and meta.data["narration_queries"] == 24
    # The longest span validation allowed (and the app will): a high quantile of the training answers' lengths.
    from training.dataset import answer_span_limit, merge_nlq_files

    trained_on = merge_nlq_files(cfg.data.train).queries
    assert meta.data["inference"]["max_span_s"] == pytest.approx(answer_span_limit(trained_on))
    # ... and the lengths its NLQ answers had (the prior its spans are weighed by), read back for answering.
    from training.checkpoint_info import inference_config_from_metadata

    lengths = [q.end - q.start for q in trained_on if q.has_answer and not q.is_narration and not q.is_empty_window]
    recorded = inference_config_from_metadata(meta).length_prior
    assert recorded is not None and recorded.log_mean == pytest.approx(float(np.mean(np.log(lengths))))
    assert meta.data["config"]["optim"]["steps"] == 12 and meta.data["best_step"] == result.best["step"]
    assert model.video_norm is not None and float(model.video_norm.mean.abs().mean()) > 0.5  # fitted statistics
    spec = text_spec_from_metadata(meta)
    # read as the question grammar reads (new runs' default), recorded so that answers are read the same way
    assert spec == TextEncoderSpec(**TINY_TEXT, reading="question") and meta.text_encoder.reading == "question"
    val = load_nlq(task["val"])
    clip = val.clips["clip-06"]
    cf = DirectoryClipFeatures(task["features"]).get(clip)
    tokens, mask = load_text_encoder(spec, "cpu").encode(["Where is the red ball?", "Where is the blue cup?"])
    answers = localize(model, cf.features, cf.grid, tokens, mask, config=inference_config_from_metadata(meta))
    assert len(answers) == 2 and all(1 <= len(a.windows) <= 5 for a in answers)
    assert all(0 <= w.start < w.end <= clip.duration + 1e-6 for a in answers for w in a.windows)

    # Running the finished config again returns its result without training again.
    before = (result.run_dir / "log.jsonl").stat().st_size
    again = run(cfg)
    assert again.checkpoints == result.checkpoints and (result.run_dir / "log.jsonl").stat().st_size == before


def test_stop_ends_cleanly_and_resume_finishes_the_run(task, tmp_path):
    cfg = config(task, tmp_path, **{"optim.steps": 16})
    stop = threading.Event()
    result = run(cfg, progress=lambda r: stop.set() if r["event"] == "train" and r["step"] >= 4 else None, stop=stop)
    assert result.stopped and result.steps == 4
    assert result.checkpoints["final"].name == "tiny-final"  # stopping still gives a usable model
    assert latest_snapshot(result.run_dir).name == "step-000000004"
    assert run(cfg).stopped  # without --resume, a stopped run stays stopped
    with pytest.raises(TrainingError, match="optim.lr"):
        run(config(task, tmp_path, **{"optim.steps": 16, "optim.lr": 1e-2}), resume=True)
    resumed = run(cfg, resume=True)
    assert not resumed.stopped and resumed.steps == 16
    assert resumed.checkpoints["final"].name == "tiny-final-2"  # nothing published earlier is overwritten
    train_steps = [r["step"] for r in read_log(result.run_dir) if r["event"] == "train"]
    assert train_steps == sorted(set(train_steps))


def test_resume_requires_a_snapshot(task, tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        run(config(task, tmp_path, name="fresh"), resume=True)


def test_stage_two_starts_from_the_stage_one_checkpoint(task, tmp_path):
    # stage 1 reads its texts as the question grammar does; stage 2, which names no reading, keeps it
    first = run(config(task, tmp_path, name="stage1", **{"text.reading": "question"}))
    second = run(
        config(
            task,
            tmp_path,
            name="stage2",
            stage="finetune",
            init_from="stage1-best",
            **{"data.train": [task["nlq_train"]], "optim.lr": 1e-12, "optim.steps": 2, "model.config": {}},
        )
    )
    _, meta = load_checkpoint(second.checkpoints["final"])
    assert meta.stage == "finetune" and meta.data["narration_queries"] == 0 and meta.data["nlq_queries"] == 24
    assert meta.data["init_from"]["checkpoint"] == "stage1-best" and meta.data["init_from"]["stage"] == "joint"
    assert meta.text_encoder.reading == "question" and meta.text_encoder.key.endswith("+question")
    start = load_file(str(first.checkpoints["best"] / "model.safetensors"))
    end = final_weights(second)
    assert start.keys() == end.keys()
    for k in start:  # lr 1e-12: the weights are the stage-1 best ones (standardiser statistics not refitted)
        torch.testing.assert_close(end[k], start[k], rtol=0, atol=1e-6)


def test_a_killed_run_resumes_to_the_same_weights(task, tmp_path):
    """SIGKILL a CLI run mid-way, run it again: it continues from its snapshot and ends exactly where an
    uninterrupted run ends."""
    changes = {"optim.steps": 60, "eval.every": 30, "output.snapshot_every": 3, "output.log_every": 3}
    reference = run(config(task, tmp_path / "a", **changes))

    values = tiny_config_values(task, tmp_path / "b", **changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    cmd = [sys.executable, "-m", "app", "train", "--config", str(path)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = tmp_path / "b" / "tiny"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            snap = latest_snapshot(run_dir)
            if snap is not None and int(snap.name.split("-")[1]) >= 6:
                break
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = int(latest_snapshot(run_dir).name.split("-")[1])
    assert 6 <= killed_at < 60 and not (run_dir / "result.json").exists()

    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished after step 60 of 60" in done.stdout and "checkpoint (best)" in done.stdout
    log = read_log(run_dir)
    starts = [r for r in log if r["event"] == "start"]
    assert starts[0]["resumed_from"] is None and starts[-1]["resumed_from"] == killed_at
    train_steps = [r["step"] for r in log if r["event"] == "train"]
    assert train_steps == list(range(3, 61, 3))  # cut back to the snapshot: no step logged twice

    resumed = json.loads((run_dir / "result.json").read_text())
    a = final_weights(reference)
    b = load_file(str(Path(resumed["checkpoints"]["final"]) / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["best"]["value"] == reference.best["value"]


def test_cli_reports_config_errors_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "app", "train", "--config", "vslnet_naq_joint.yaml", "--set", "optim.learning_rate=1"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error:") and "optim.learning_rate" in out.stderr
    assert "Traceback" not in out.stderr


def test_two_processes_train_identical_replicas(task, tmp_path):
    """torchrun, 2 CPU processes over gloo: both end with the same weights; rank 0 alone logs and publishes."""
    values = tiny_config_values(task, tmp_path, **{"optim.steps": 6, "eval.every": 3})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(values))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "app",
        "train",
        "--config",
        str(path),
        "--json",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["replica_digests"]) == 2 and len(set(result["replica_digests"])) == 1
    assert result["steps"] == 6
    names = {c.name for c in list_checkpoints(tmp_path / "checkpoints")}
    assert names == {"tiny-best", "tiny-final"}
    log = read_log(tmp_path / "tiny")
    assert [r["event"] for r in log].count("start") == 1  # only rank 0 writes
    assert log[0]["world_size"] == 2
    _, meta = load_checkpoint(tmp_path / "checkpoints" / "tiny-final")
    assert meta.data["config"]["optim"]["batch_size"] == 8  # global batch, 4 per process


def test_two_processes_train_on_questions_without_an_answer(tmp_path):
    """Training negatives under torchrun: micro-batches of absent questions (absent loss only) beside answerable
    ones, each one forward and one backward; the absent loss is logged and both replicas end equal."""
    negatives = make_task(tmp_path / "task", n_train=6, unnamed=3)
    values = tiny_config_values(
        negatives, tmp_path, **{"optim.steps": 6, "eval.every": 3, "data.negative_probability": 0.7}
    )
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(values))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "app", "train", "--config", str(path), "--json"]
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(set(result["replica_digests"])) == 1 and result["steps"] == 6
    losses = [r["loss"] for r in read_log(tmp_path / "tiny") if r["event"] == "train"]
    assert any(loss.get("absent", 0.0) > 0 for loss in losses)
