"""The offline demo, end to end, at its ``--quick`` size: every stage runs for real (world, pretraining,
indexing, NaQ, VSLNet, answers with clips), a second run reuses what the first one finished, the CLI prints
it, and a library holding someone else's videos is refused untouched."""

from __future__ import annotations

import json
import threading

import pytest
from media import h264_video, media_dir  # noqa: F401

from app.cli import main
from app.demo import DemoConfig, DemoError, run_demo
from app.service import EgoRecall
from app.settings import Settings
from checkpoints import read_metadata
from models.clip_encoder import EncoderSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

QUICK = DemoConfig.quick()
ALL_STAGES = ["world", "pretrain", "index", "naq", "train", "finetune", "ask"]


def _service(library) -> EgoRecall:
    return EgoRecall(Settings(library=library, device="cpu"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    library = tmp_path_factory.mktemp("demo") / "library"
    seen: list[tuple[str, float]] = []
    service = _service(library)
    report = run_demo(service, QUICK, lambda text, fraction: seen.append((text, fraction)))
    return library, service, report, seen


def _check_answer(answer, service, k):
    durations = {v.id: v.duration for v in service.videos()}
    assert len(answer.moments) == k
    for m in answer.moments:
        assert m.video_id in durations
        assert 0.0 <= m.start < m.end <= durations[m.video_id] + 1e-6
        assert m.clip is not None and m.clip.is_file() and m.clip.stat().st_size > 0, m.clip_error


def test_demo_runs_every_stage(first_run):
    library, service, report, seen = first_run
    assert not report.stopped
    assert [s.name for s in report.stages] == ALL_STAGES
    assert not any(s.reused for s in report.stages)
    assert report.total_seconds >= sum(s.seconds for s in report.stages) - 1e-6

    # the world and the encoder live under <library>/demo
    assert (library / "demo" / "world" / "world.json").is_file()
    assert report.encoder is not None and report.encoder.is_file()
    assert report.encoder.parent == (library / "demo" / "encoder").resolve()
    assert {"t2v_R@1", "t2v_R@5", "chance_t2v_R@5"} <= set(report.pretrain_metrics)

    # the library holds every video of the world, indexed with the pretrained encoder
    key = EncoderSpec(QUICK.model, str(report.encoder)).key
    videos = service.videos()
    assert len(videos) == report.videos == QUICK.videos
    assert {v.encoder_key for v in videos} == {key} == {service.library.settings.encoder_key}

    # recorded over the days before the run, the times written into the files as cameras write them
    from datetime import date, datetime, timedelta

    assert {v.recorded_source for v in videos} == {"container"}
    days = sorted({datetime.fromtimestamp(v.recorded_at).date() for v in videos})
    assert days[-1] == date.today() - timedelta(days=1) and len(days) == -(-QUICK.videos // 3)

    # the trained checkpoint is published where the app looks, and evaluated on the held-out queries
    assert report.checkpoint in service.modes() and report.checkpoint.startswith("demo-vslnet-finetune")
    assert (report.checkpoints_dir / report.checkpoint).is_dir()
    assert {"R@1@0.3", "R@5@0.3", "R@1@0.5", "R@5@0.5"} <= set(report.train_metrics)
    assert all(0.0 <= report.train_metrics[k] <= 100.0 for k in ("R@1@0.3", "R@5@0.5"))
    # ... and fitted for answering on the validation file: its fusion weight (the quick world's validation
    # file is about one video, so there are no other videos' questions to calibrate "no good match" with)
    meta = read_metadata(report.checkpoints_dir / report.checkpoint)
    assert meta.fusion["chosen_on"] == str(report.world / "nlq_val.json") and 0.0 <= meta.fusion["weight"] <= 1.0
    assert meta.fusion["queries"] > 0 and len(meta.fusion["metrics"]) == 11 and not meta.calibration
    # so the default mode answers fused with a checkpoint of the demo, and says so
    auto = service.ask(report.question, k=QUICK.k, clips=False)
    assert auto.asked_mode == "auto" and auto.mode.startswith("fused:demo-vslnet-") and "weight" in auto.label

    # the demo question has answers in both modes, with playable clips
    assert "keys" in report.question and report.truth  # the world really has keys put down
    # ... on two days: the question asks for the last time, so only the latest put-down is its answer
    assert sum(map(len, report.truth.values())) == 1 and report.earlier
    assert report.zero_shot.mode == "zeroshot" and report.trained.mode == report.checkpoint
    for answer in (report.zero_shot, report.trained):
        _check_answer(answer, service, QUICK.k)

    # the progress the app's button shows: monotone, from 0 to 1, naming the stages
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(t.startswith("pretraining") for t, _ in seen) and any(t.startswith("training") for t, _ in seen)


def test_second_run_reuses_finished_stages(first_run):
    library, _, report, _ = first_run
    encoder_mtime = report.encoder.stat().st_mtime_ns
    world_mtime = (library / "demo" / "world" / "world.json").stat().st_mtime_ns
    service = _service(library)  # a fresh process would see the same
    again = run_demo(service, QUICK)
    reused = {s.name: s.reused for s in again.stages}
    assert reused == {
        "world": True,
        "pretrain": True,
        "index": True,
        "naq": False,
        "train": True,
        "finetune": True,
        "ask": False,
    }
    assert again.encoder == report.encoder and report.encoder.stat().st_mtime_ns == encoder_mtime
    assert (library / "demo" / "world" / "world.json").stat().st_mtime_ns == world_mtime
    assert len(service.videos()) == QUICK.videos
    assert again.checkpoint == report.checkpoint and again.train_metrics == report.train_metrics
    assert [m.start for m in again.trained.moments] == [m.start for m in report.trained.moments]


def test_a_demo_library_moved_elsewhere_runs_again_from_its_finished_stages(tmp_path):
    """Moved whole to another place, the library still finds its encoder, its runs and its checkpoints -- whose
    run configs name the old place, and whose text encoder names the encoder file there (now gone). The second
    run is a new process, as a user's would be (this one keeps the encoders the first run loaded)."""
    import shutil
    import subprocess
    import sys

    library = tmp_path / "here" / "library"
    report = run_demo(_service(library), QUICK)
    moved = tmp_path / "elsewhere" / "library"
    shutil.move(library, moved)
    done = subprocess.run(
        [sys.executable, "-m", "app", "demo", "--quick", "--library", str(moved)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"browse it: python -m app --library {moved}" in out
    assert f"trained ({report.checkpoint}):" in out and f"encoder: {moved.resolve()}" in out
    clips = [line for line in out.splitlines() if "/clips/" in line]
    assert len(clips) == 10 and all(str(moved) in line for line in clips)  # five moments of each mode


def test_stop_ends_the_demo_between_stages(first_run):
    library = first_run[0]
    stop = threading.Event()

    def progress(text, fraction):
        if text.startswith("indexing"):
            stop.set()

    report = run_demo(_service(library), QUICK, progress, stop)
    assert report.stopped
    assert [s.name for s in report.stages] == ["world", "pretrain", "index"]
    assert report.zero_shot is None and report.trained is None


def test_cli_prints_stages_answers_and_total(first_run, capsys):
    library = first_run[0]
    assert main(["demo", "--library", str(library), "--quick"]) == 0
    out = capsys.readouterr().out
    for stage in ALL_STAGES:
        assert f"  {stage} " in out
    assert 'zero-shot (zeroshot): "where did I put the keys?"' in out
    assert f"trained ({first_run[2].checkpoint})" in out
    assert "total: " in out and f"python -m app --library {library}" in out


def test_demo_settings_are_fixed_per_library(first_run):
    other = DemoConfig.quick()
    other = type(other)(**{**other.to_dict(), "seed": other.seed + 1})
    with pytest.raises(DemoError, match="other settings.*--library"):
        run_demo(_service(first_run[0]), other)


def test_library_of_another_encoder_is_refused_and_left_unchanged(tmp_path, h264_video, tiny_spec):
    library = tmp_path / "mine"
    service = EgoRecall(Settings(library=library, device="cpu"), encoder_spec=tiny_spec)
    (result,) = service.index([h264_video])
    before = sorted(p.relative_to(library) for p in library.rglob("*"))
    with pytest.raises(DemoError, match=r"another encoder.*--library"):
        run_demo(_service(library), QUICK)
    assert sorted(p.relative_to(library) for p in library.rglob("*")) == before
    assert [v.id for v in _service(library).videos()] == [result.record.id]
    assert main(["demo", "--library", str(library), "--quick"]) == 1  # one line on stderr, no traceback


def test_a_demo_week_ends_yesterday_and_is_fixed_once_made():
    from datetime import datetime, timedelta

    from app.demo_config import RECENT_WEEK, VIDEOS_PER_DAY
    from training.synthworld import SynthConfig

    assert VIDEOS_PER_DAY == SynthConfig().videos_per_day  # the days are counted as the world lays them out

    now = datetime(2026, 12, 7, 14, 30).timestamp()  # local time
    config = DemoConfig()
    assert config.recorded_from == RECENT_WEEK
    made = config.resolved(now=now)
    first = datetime.fromisoformat(made.recorded_from.replace("Z", "+00:00")).astimezone()
    assert (first.year, first.month, first.day, first.hour) == (2026, 11, 30, 8)  # 20 videos, 3 a day: 7 days
    assert datetime.fromtimestamp(now).date() - first.date() == timedelta(days=7)
    # a demo folder keeps the time it was made with (or none, made before recording times) on any later day
    assert config.resolved({"recorded_from": made.recorded_from}, now=now + 86_400 * 30) == made
    assert config.resolved({}).recorded_from is None
    assert made.resolved(now=now + 86_400) == made  # a time already is one


def test_quick_config_is_a_real_but_small_demo():
    quick, full = DemoConfig.quick(), DemoConfig()
    assert quick.videos < full.videos and quick.train_steps < full.train_steps
    assert json.loads(json.dumps(quick.defining())) == quick.defining()


def test_demo_augmentations_reach_the_training_config_and_define_the_demo(tmp_path):
    from dataclasses import replace

    from app.demo import demo_train_config
    from models.config_files import ConfigError

    plain = DemoConfig.quick()
    faster = replace(plain, augment={"speed_probability": 0.5, "speed_range": [0.8, 1.25]})
    assert "augment" not in plain.defining() and faster.defining()["augment"]["speed_probability"] == 0.5
    config = demo_train_config(_service(tmp_path / "lib"), faster, name="x", stage="joint", train=[tmp_path / "a"])
    assert config.data.speed_probability == 0.5 and tuple(config.data.speed_range) == (0.8, 1.25)
    with pytest.raises(ConfigError, match="unknown config key .data.speed_nonsense"):
        demo_train_config(
            _service(tmp_path / "lib"),
            replace(plain, augment={"speed_nonsense": 1}),
            name="x",
            stage="joint",
            train=[tmp_path / "a"],
        )


def test_adapting_a_checkpoint_to_the_library_needs_no_labels(first_run, tmp_path, capsys):
    """Adapt to my library: pseudo-narrations of the library's own videos, a short fine-tune of the checkpoint
    auto uses, published beside it with the base's fusion weight; then it answers. On a copy of the demo
    library (the other tests keep theirs)."""
    import shutil

    from app.adaptation import AdaptSettings
    from app.answering.auto import resolve_auto
    from checkpoints import list_checkpoints
    from training.narrations import load_narrations
    from training.pseudo_narrations import PseudoNarrationConfig

    library = tmp_path / "library"
    shutil.copytree(first_run[0], library)
    service = _service(library)
    base = resolve_auto(service.answer_context()).partition(":")[2]  # the checkpoint auto fuses with
    # the quick demo's encoder pretrained 6 steps: its objects stand out by about one standard deviation
    weak = AdaptSettings(steps=3, batch_size=8, narration=PseudoNarrationConfig(min_z=1.0))
    result = service.adapt(settings=weak)
    assert not result.stopped and result.steps == 3
    adapted = {p.name for p in result.checkpoints.values()}
    assert adapted and all(name.startswith(f"{base}-adapted-") for name in adapted)
    listed = {c.name: c for c in list_checkpoints(service.settings.checkpoints_dir)}
    for name in adapted:
        meta = read_metadata(service.settings.checkpoints_dir / name)
        assert meta.fusion["inherited_from"] == base and meta.fusion["weight"] == listed[base].fusion["weight"]
        assert meta.stage == "finetune"
    narrations = load_narrations(next((library / "adapt").glob("*/narration.json")))
    videos = {v.name.rsplit(".", 1)[0] for v in service.videos()}
    assert len(narrations) > 0 and {n.video_uid for n in narrations} <= videos
    assert all(n.text.startswith("#C C ") for n in narrations)
    answer = service.ask("where did I put the keys?", mode=sorted(adapted)[0], k=3)
    assert len(answer.moments) == 3
    # an inherited fusion weight is no evidence about the adapted weights: auto stays with the validated base
    assert resolve_auto(service.answer_context()) == f"fused:{base}"

    assert main(["adapt", "--library", str(library), "--steps", "2", "--checkpoint", base]) == 1
    assert "no object stood out clearly enough" in capsys.readouterr().err  # at the default 2.5 sd
    assert main(["adapt", "--library", str(library), "--steps", "2", "--checkpoint", base, "--min-z", "1"]) == 0
    assert "adapted: finished after step 2 of 2" in capsys.readouterr().out
    # two adaptations within one second are two runs, never one run folder found "finished with another config"
    from app.adaptation import adaptation_config

    first, second = (adaptation_config(service, base, weak) for _ in range(2))
    assert first.name != second.name and first.data.train != second.data.train


def test_adapting_with_nothing_to_adapt_says_why(tmp_path, capsys):
    assert main(["adapt", "--library", str(tmp_path / "empty")]) == 1
    assert "has no videos yet" in capsys.readouterr().err
