"""One configuration system: the app's settings, training and pretraining are dataclass trees read the same way
(defaults, a YAML file, everyday flags, ``--set KEY=VALUE``, unknown keys refused), and every flag that sets one
names a real setting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from app.cli import build_parser, main
from app.service import EgoRecall
from app.settings import EVERYDAY_FLAGS, Settings, load_settings
from models.clip_encoder import EncoderSpec
from models.config_files import ConfigError, configure, field_paths
from training.pretrain.config import PRETRAIN_CONFIG_DIR, PretrainConfig


def test_every_everyday_flag_names_a_setting_and_a_flag_of_the_commands():
    settings_keys = field_paths(Settings)
    assert set(EVERYDAY_FLAGS.values()) <= set(settings_keys)
    _, commands = build_parser()
    index_dests = {a.dest for a in commands["index"]._actions}
    assert set(EVERYDAY_FLAGS) <= index_dests  # the index command has every everyday flag
    for name in ("index", "ask", "serve", "settings"):
        dests = {a.dest for a in commands[name]._actions}
        assert {"library", "settings", "settings_overrides"} <= dests, name


def test_file_then_flags_then_set_and_unknown_keys_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("EGORECALL_CONFIG", raising=False)
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "library": str(tmp_path / "from-file"),
                "indexing": {"decode": {"workers": 3, "backends": ["decord"]}, "index_factory": "Flat"},
                "excerpts": {"pad_s": 2.5},
            }
        )
    )
    s = load_settings(path, ["indexing.decode.workers=4"], {"device": "cpu", "workers": None})
    assert s.library == tmp_path / "from-file" and s.device == "cpu"
    assert s.indexing.decode.workers == 4 and s.indexing.decode.backends == ("decord",)  # frozen, rebuilt
    assert s.indexing.index_factory == "Flat" and s.excerpts.pad_s == 2.5
    assert s.checkpoints_dir == tmp_path / "from-file" / "checkpoints"
    with pytest.raises(ConfigError, match="unknown config key 'indexing.decode.wrkers'"):
        load_settings(None, ["indexing.decode.wrkers=2"])
    with pytest.raises(ConfigError, match="'excerpts.pad_s' must be a number"):
        load_settings(None, ["excerpts.pad_s=wide"])
    monkeypatch.setenv("EGORECALL_CONFIG", str(path))
    assert load_settings().excerpts.pad_s == 2.5  # the environment names a default settings file


def test_the_environment_is_read_once_when_settings_are_made(tmp_path, monkeypatch):
    monkeypatch.setenv("EGORECALL_CHECKPOINTS", str(tmp_path / "ckpts"))
    s = Settings(library=tmp_path / "lib")
    monkeypatch.setenv("EGORECALL_CHECKPOINTS", str(tmp_path / "elsewhere"))
    assert s.checkpoints_dir == tmp_path / "ckpts"


def test_the_settings_command_prints_what_a_settings_file_reads_back(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EGORECALL_CONFIG", raising=False)
    assert main(["settings", "--library", str(tmp_path / "lib"), "--set", "answers.frame_hits=64"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "s.yaml").write_text(printed)
    again = load_settings(tmp_path / "s.yaml")
    assert again.answers.frame_hits == 64 and again.library == tmp_path / "lib"
    assert again.to_dict() == yaml.safe_load(printed)
    assert main(["settings", "--set", "answers.nope=1"]) == 1
    assert "unknown config key 'answers.nope'" in capsys.readouterr().err


def test_pretraining_experiments_are_files_read_like_every_config(tmp_path):
    names = sorted(p.name for p in PRETRAIN_CONFIG_DIR.glob("*.yaml"))
    assert names, "one YAML per pretraining experiment"
    for name in names:
        config = configure(PretrainConfig(), name, search_dir=PRETRAIN_CONFIG_DIR)
        assert config.model and config.batch_size >= 2
    with pytest.raises(ConfigError, match="unknown config key 'bacth_size'"):
        configure(PretrainConfig(), None, ["bacth_size=8"])


def test_a_chosen_encoder_the_library_does_not_use_is_said_not_dropped(tmp_path, caplog):
    from answer_fixtures import ColorEncoder
    from media import write_video

    from indexing.library import Library

    Library.open(tmp_path / "lib").add(write_video(tmp_path / "a.mp4", seconds=4.0), ColorEncoder())
    chosen = EncoderSpec("ViT-B-32", "laion2b_s34b_b79k")
    service = EgoRecall(Settings(library=tmp_path / "lib", encoder=chosen))
    with caplog.at_level(logging.WARNING, logger="app.service"):
        assert service.encoder_spec == ColorEncoder.spec
        assert service.encoder_spec == ColorEncoder.spec
    said = [r.getMessage() for r in caplog.records if "was built with encoder" in r.getMessage()]
    assert len(said) == 1 and "ViT-B-32" in said[0] and "reindex" in said[0]


def test_field_paths_walks_nested_settings():
    keys = field_paths(Settings)
    assert {"library", "encoder.model", "indexing.decode.damage.max_missing_s", "excerpts.pad_s"} <= set(keys)
    assert keys["indexing.decode.workers"] == (int | None)
    assert Path is keys["library"]
