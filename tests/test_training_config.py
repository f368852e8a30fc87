"""Training configs: one tree of defaults, files and --set overrides on top, clear errors for bad keys."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.config_files import parse_override
from models.windows import LengthPrior
from training.config import CONFIG_DIR, ConfigError, TrainConfig, load_config
from training.dataset import answer_length_prior
from training.nlq import NARRATION_TEMPLATE, Query

BASE = ["data.train=[train.json]", "data.library=lib", "optim.steps=10"]


def test_file_then_overrides_win_over_defaults(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "stage: joint\noptim:\n  lr: 1e-3\n  batch_size: 64\ndata:\n  train: [a.json]\n"
        "  library: lib\n  nlq_fraction: 0.25\n"
    )
    config = load_config(
        path,
        [
            "optim.lr=2.5e-4",
            "data.train=[a.json, b.json]",
            "optim.steps=100",
            "data.crop_fraction=[0.3, 0.9]",
            "optim.grad_clip=null",
        ],
    )
    assert config.name == "exp"  # from the file name
    assert config.optim.lr == pytest.approx(2.5e-4) and isinstance(config.optim.lr, float)
    assert config.optim.batch_size == 64 and config.data.nlq_fraction == 0.25
    assert config.data.train == ["a.json", "b.json"] and config.data.crop_fraction == (0.3, 0.9)
    assert config.optim.grad_clip is None
    assert config.optim.weight_decay == TrainConfig().optim.weight_decay  # untouched default
    assert config.checkpoints_dir() == Path("lib") / "checkpoints"
    assert TrainConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("optim.lrr=1", "optim.lrr"),
        ("modle.name=vslnet", "modle"),
        ("data.library.path=x", "data.library"),
    ],
)
def test_unknown_or_misplaced_keys_are_named(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(None, ["name=x", *BASE, override])


def test_unknown_key_in_a_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'optim\.learning_rate'"):
        load_config(path)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("optim.lr=fast", "optim.lr"),
        ("optim.batch_size=2.5", "optim.batch_size"),
        ("data.narrations=maybe", "data.narrations"),
        ("stage=pretrain", "stage"),
        ("data.nlq_fraction=1.5", "nlq_fraction"),
        ("data.jitter_factor=0.5", "jitter_factor"),
        ("data.speed_range=[1.4, 0.7]", "speed_range"),
        ("data.speed_probability=2", "speed_probability"),
        ("text.reading=shouting", "text.reading must be one of plain, question"),
    ],
)
def test_bad_values_are_refused(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, ["name=x", *BASE, override])


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="init_from"):
        load_config(None, ["name=x", *BASE, "stage=finetune"])
    with pytest.raises(ConfigError, match="exactly one of data.library and data.features_dir"):
        load_config(None, ["name=x", *BASE, "data.features_dir=feats"])
    with pytest.raises(ConfigError, match="optim.steps or optim.epochs"):
        load_config(None, ["name=x", "data.train=[t.json]", "data.library=lib"])
    with pytest.raises(ConfigError, match="resample_to"):
        load_config(None, ["name=x", *BASE, "data.long_clips=resample"])


def test_stage_decides_whether_narrations_are_used():
    joint = load_config(None, ["name=x", *BASE])
    nlq = load_config(None, ["name=x", *BASE, "stage=nlq"])
    forced = load_config(None, ["name=x", *BASE, "stage=nlq", "data.narrations=true"])
    assert joint.uses_narrations and not nlq.uses_narrations and forced.uses_narrations


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("optim.lr")


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config.name == path.stem
    if config.stage == "finetune":
        assert config.init_from


def test_shipped_configs_follow_naq_schedules():
    joint = load_config(CONFIG_DIR / "vslnet_naq_joint.yaml")
    assert (
        joint.optim.batch_size,
        joint.optim.lr,
        joint.optim.weight_decay,
        joint.optim.warmup_fraction,
        joint.optim.grad_clip,
        joint.optim.epochs,
    ) == (2048, 1e-3, 0.01, 0.025, 1.0, 200)
    ft = load_config(CONFIG_DIR / "vslnet_nlq_finetune.yaml")
    assert (ft.optim.batch_size, ft.optim.lr) == (32, 1e-4) and not ft.uses_narrations
    reler = load_config(CONFIG_DIR / "reler_naq_joint.yaml")
    assert (reler.optim.batch_size, reler.optim.lr, reler.optim.grad_clip) == (768, 1.5e-4, 0.1)
    assert load_config(CONFIG_DIR / "vslnet_naq_only.yaml").data.nlq_fraction == 0.0
    # a bare name finds the shipped file
    assert load_config("vslnet_naq_joint.yaml").name == "vslnet_naq_joint"


def test_a_run_recorded_before_a_config_field_existed_is_still_the_same_run():
    """Fields added later (with defaults that keep the old behaviour) must not make a finished or half-done
    run look like another one (seen: data.features_layout made every earlier run folder 'different')."""
    from training.config import TrainConfig
    from training.resume import config_differences, with_defaults

    today = TrainConfig().to_dict()
    recorded = {k: dict(v) if isinstance(v, dict) else v for k, v in today.items()}
    del recorded["data"]["features_layout"]
    assert config_differences(with_defaults(recorded), today) == []
    recorded["data"]["features_layout"] = "video"  # an explicit, different value is a different run
    assert config_differences(with_defaults(recorded), today) == ["data.features_layout"]


def test_a_run_folder_holding_another_runs_result_or_snapshot_is_refused(tmp_path):
    """A finished run is found again with its own config (a changed lr is another run; a changed log cadence
    is not), a stopped one continues with --resume, and a snapshot of other settings is not resumed."""
    from training.resume import CONFIG_FILE, check_resumable, finished_result, resolved_model_config
    from training.run_result import RESULT_FILE, TrainResult
    from training.run_setup import TrainingError

    config = load_config(None, ["name=x", f"output.runs_dir={tmp_path}", *BASE])
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True)
    assert finished_result(run_dir, config, resume=False) is None  # nothing there yet
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict()))
    done = TrainResult(run_dir, 10, 10, False, None, {}, {})
    (run_dir / RESULT_FILE).write_text(json.dumps(done.to_dict()))
    assert finished_result(run_dir, replace(config, output=replace(config.output, log_every=3)), False).steps == 10
    other = replace(config, optim=replace(config.optim, lr=0.5))
    with pytest.raises(TrainingError, match=r"finished run with a different config \(optim\.lr\)"):
        finished_result(run_dir, other, resume=False)
    with pytest.raises(TrainingError, match=r"unfinished run with a different config \(optim\.lr\)"):
        check_resumable({"config": config.to_dict()}, other)
    check_resumable({"config": config.to_dict()}, config)  # its own settings: resumable
    # A snapshot records its model's resolved config: a default changed by an upgrade is named, and the run
    # resumes once the old value is set explicitly.
    before_upgrade = {"config": config.to_dict(), "model_config": {**resolved_model_config(config), "dim": 96}}
    with pytest.raises(TrainingError, match=r"different config \(model\.config\.dim\)"):
        check_resumable(before_upgrade, config)
    explicit = replace(config, model=replace(config.model, config={**config.model.config, "dim": 96}))
    check_resumable(before_upgrade, explicit)
    stopped = TrainResult(run_dir, 4, 10, True, None, {}, {})
    (run_dir / RESULT_FILE).write_text(json.dumps(stopped.to_dict()))
    assert finished_result(run_dir, config, resume=True) is None and not (run_dir / RESULT_FILE).exists()


def test_random_streams_are_restored_for_the_same_processes_and_reseeded_otherwise(caplog):
    import torch

    from training.distributed import DistInfo
    from training.resume import restore_rng

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with torch.random.fork_rng():  # leaves the other tests' random stream alone
        torch.manual_seed(1)
        saved = {"cpu.rank0": torch.get_rng_state()}
        expected = torch.rand(3)
        torch.manual_seed(2)
        restore_rng(saved, 1, info, seed=0, step=5)
        assert torch.equal(torch.rand(3), expected)
        restore_rng(saved, 2, info, seed=0, step=5)  # written by two processes: reseeded, with a warning
        assert not torch.equal(torch.rand(3), expected) and "reseeded" in caplog.text


def test_the_span_limit_is_a_high_quantile_of_the_training_answers():
    from training.dataset import answer_span_limit
    from training.nlq import Query

    def q(i, length):
        return Query("c", "a", i, f"q{i}", None, 10.0, 10.0 + length, "v")

    queries = [q(i, 3.0) for i in range(99)] + [q(99, 60.0)]  # one answer far longer than the rest
    assert answer_span_limit(queries) < 10.0 and answer_span_limit(queries, quantile=1.0) == pytest.approx(60.0)
    assert answer_span_limit([q(0, 0.5)]) == 2.0  # never under the floor
    assert answer_span_limit([Query("c", "a", 0, "unanswered", None, None, None)]) == 2.0


def test_a_checkpoint_is_answered_with_the_inference_its_validation_used():
    from types import SimpleNamespace

    from models.inference import InferenceConfig
    from training.checkpoint_info import inference_config_from_metadata as recorded_inference

    def meta(data):
        return SimpleNamespace(data=data)

    assert recorded_inference(meta({"inference": {"max_span_s": 6.5, "resample_to": 128}})) == InferenceConfig(
        max_span_s=6.5, resample_to=128
    )
    assert recorded_inference(meta({"inference": {"max_span_s": None}})).max_span_s is None  # any length
    assert recorded_inference(meta({})) == InferenceConfig()  # checkpoints from before it was recorded
    assert recorded_inference(meta({"inference": {"max_span_s": "x", "resample_to": -1}})) == InferenceConfig()
    prior = {"log_mean": 1.3, "log_std": 0.4, "weight": 1.0}
    assert recorded_inference(meta({"inference": {"length_prior": prior}})).length_prior == LengthPrior(1.3, 0.4)
    assert recorded_inference(meta({"inference": {"length_prior": {"log_std": -1}}})).length_prior is None


def test_the_length_prior_is_fitted_on_what_people_asked():
    """NLQ answers, not NaQ's narration windows (those only when there is nothing else); weight 0 is off."""
    asked = [Query("c", "a", i, "where is x", None, 0.0, 4.0) for i in range(3)]
    narrated = [Query("c", "n", i, "C opens the door", NARRATION_TEMPLATE, 0.0, 20.0) for i in range(9)]
    prior = answer_length_prior(asked + narrated, 1.0)
    assert prior is not None and prior.log_mean == pytest.approx(np.log(4.0))
    assert answer_length_prior(narrated, 1.0).log_mean == pytest.approx(np.log(20.0))
    assert answer_length_prior(asked, 0.0) is None
    with pytest.raises(ConfigError, match="length_prior_weight"):
        TrainConfig.from_dict({"data": {"train": ["x.json"]}, "eval": {"length_prior_weight": -1}}).validate()


def test_repeat_uses_a_files_queries_several_times_and_is_checked(tmp_path):
    from training.dataset import TrainingData, repeat_queries
    from training.nlq import load_nlq

    path = tmp_path / "corrections.json"
    path.write_text(
        json.dumps(
            {
                "version": "1",
                "videos": [
                    {
                        "video_uid": "v",
                        "clips": [
                            {
                                "clip_uid": "c",
                                "video_start_sec": 0.0,
                                "video_end_sec": 30.0,
                                "annotations": [
                                    {
                                        "annotation_uid": "a",
                                        "language_queries": [
                                            {"query": "where is my cup", "clip_start_sec": 1.0, "clip_end_sec": 3.0}
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    corrected = load_nlq(path).queries
    other = [replace(corrected[0], annotation_uid="other", query_idx=i) for i in range(3)]  # a big file's queries
    data = TrainingData(other + corrected, {}, {"nlq_queries": 4})
    grown = repeat_queries(data, {str(path): 5})
    assert len(grown.queries) == len(data.queries) + 4 and grown.summary["repeated_queries"] == 4
    assert sum(q.key == corrected[0].key for q in grown.queries) == 5
    assert repeat_queries(data, {}) is data and repeat_queries(data, {str(path): 1}) is data
    base = {"name": "r", "data": {"train": [str(path)], "library": "lib"}, "optim": {"steps": 1}}
    TrainConfig.from_dict({**base, "data": {**base["data"], "repeat": {str(path): 3}}}).validate()
    for bad in ({"elsewhere.json": 3}, {str(path): 0}, {str(path): 2.5}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict({**base, "data": {**base["data"], "repeat": bad}}).validate()
