"""Checkpoints: save → list → load round trips, atomic writes, and a clear error for every bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
from localizer_fixtures import AUX_DIM, QUERY_DIM, TINY_CONFIGS, VIDEO_DIM, one_thread, random_batch
from safetensors.torch import save_file

import checkpoints.store as store
from app.cli import main as cli_main
from checkpoints import (
    CheckpointExists,
    CheckpointMetadata,
    CheckpointShapeMismatch,
    FeatureEncoderInfo,
    IncompatibleCheckpoint,
    InvalidCheckpointMetadata,
    NotACheckpoint,
    PickleCheckpointRefused,
    TextEncoderInfo,
    UnknownCheckpointModel,
    UnsupportedCheckpointFormat,
    WrongCheckpointKind,
    check_compatible,
    compatible_checkpoints,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from models.errors import EgoRecallError
from models.registry import build_localizer


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def tiny(name: str):
    torch.manual_seed(0)
    return build_localizer(name, TINY_CONFIGS[name])


def metadata(name: str = "vslnet", **overrides) -> CheckpointMetadata:
    return CheckpointMetadata(
        feature_encoder=FeatureEncoderInfo("egorecall-tiny/random-seed0", VIDEO_DIM, 1.875),
        aux_feature_encoder=FeatureEncoderInfo("egorecall-tiny/random-seed0", AUX_DIM, 1.875)
        if name == "reler"
        else None,
        text_encoder=TextEncoderInfo("egorecall-tiny", "none", "egorecall-tiny/random-seed0", QUERY_DIM),
        stage="nlq-finetune",
        data={"train": "nlq_train.json", "queries": 8},
        metrics={"R@1@0.3": 0.25},
        notes="test",
        **overrides,
    )


@pytest.mark.parametrize("name", ["vslnet", "reler"])
def test_save_list_load_gives_identical_outputs(tmp_path, name):
    model = tiny(name).eval()
    path = save_checkpoint(tmp_path, model, metadata(name))
    assert path.parent == tmp_path and {p.name for p in path.iterdir()} == {"model.safetensors", "meta.json"}

    (info,) = list_checkpoints(tmp_path)
    assert (info.name, info.path, info.model, info.stage) == (path.name, path, name, "nlq-finetune")
    assert info.metrics == {"R@1@0.3": 0.25} and info.feature_encoder.dim == VIDEO_DIM

    loaded, meta = load_checkpoint(path.name, directory=tmp_path, device="cpu")
    assert type(loaded) is type(model) and not loaded.training
    assert meta.model == name and meta.model_config["dim"] == 32 and meta.data["queries"] == 8
    assert meta.created.endswith("+00:00") and meta.egorecall_version and len(meta.weights_sha256) == 64
    batch = random_batch(name)
    with torch.no_grad():
        a, b = model(*batch), loaded(*batch)
    assert torch.equal(a.start_logits, b.start_logits) and torch.equal(a.end_logits, b.end_logits)
    assert load_checkpoint(path, device="cpu")[1] == meta  # by path, too
    assert load_checkpoint(path / "meta.json", device="cpu")[1] == meta


def test_meta_json_follows_the_documented_schema(tmp_path):
    path = save_checkpoint(tmp_path, tiny("vslnet"), metadata())
    meta = json.loads((path / "meta.json").read_text())
    assert list(meta) == [
        "kind",
        "format_version",
        "model",
        "model_config",
        "feature_encoder",
        "aux_feature_encoder",
        "text_encoder",
        "stage",
        "data",
        "metrics",
        "fusion",
        "calibration",
        "created",
        "egorecall_version",
        "notes",
        "weights_sha256",
    ]
    assert meta["kind"] == "nlq-localizer" and meta["format_version"] == 1
    assert meta["feature_encoder"] == {"key": "egorecall-tiny/random-seed0", "dim": VIDEO_DIM, "rate_hz": 1.875}
    assert meta["text_encoder"]["token_features"] == "open_clip-text-tokens"


def test_a_checkpoint_names_how_its_questions_are_read(tmp_path):
    """Checkpoints made before text readings name none and were trained on plain text: they are asked in it;
    one that names a reading this EgoRecall does not know is refused with the reason."""
    from checkpoints import text_encoder_spec

    path = save_checkpoint(tmp_path, tiny("vslnet"), metadata())
    meta_file = path / "meta.json"
    doc = json.loads(meta_file.read_text())
    assert doc["text_encoder"]["reading"] == "plain"
    del doc["text_encoder"]["reading"]  # as written before readings existed
    meta_file.write_text(json.dumps(doc))
    _, meta = load_checkpoint(path)
    assert text_encoder_spec(meta.text_encoder).reading == "plain"
    question = TextEncoderInfo("egorecall-tiny", "none", "k+question", QUERY_DIM, reading="question")
    assert text_encoder_spec(question).reading == "question"
    with pytest.raises(IncompatibleCheckpoint, match="reads its questions the 'shouting' way"):
        text_encoder_spec(TextEncoderInfo("egorecall-tiny", "none", "k", QUERY_DIM, reading="shouting"))


def test_names_are_never_reused_and_nothing_is_overwritten(tmp_path):
    model = tiny("vslnet")
    first = save_checkpoint(tmp_path, model, metadata(), name="mine")
    before = (first / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointExists):
        save_checkpoint(tmp_path, model, metadata(), name="mine")
    assert (first / "model.safetensors").read_bytes() == before
    a = save_checkpoint(tmp_path, model, metadata())
    b = save_checkpoint(tmp_path, model, metadata())
    assert a != b and a.name.startswith("vslnet-nlq-finetune-")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_save_leaves_nothing_visible(tmp_path, monkeypatch):
    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, tiny("vslnet"), metadata())
    assert list(tmp_path.iterdir()) == []


def test_metadata_must_describe_the_model(tmp_path):
    with pytest.raises(ValueError, match="video_dim"):
        save_checkpoint(
            tmp_path,
            tiny("vslnet"),
            dataclasses.replace(metadata(), feature_encoder=FeatureEncoderInfo("x", 99, 1.875)),
        )
    with pytest.raises(ValueError, match="second stream"):
        save_checkpoint(tmp_path, tiny("reler"), metadata("vslnet"))


def test_list_skips_broken_entries_and_logs_them(tmp_path, caplog):
    good = save_checkpoint(tmp_path, tiny("vslnet"), metadata())
    (tmp_path / "no-meta").mkdir()
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "meta.json").write_text("{not json")
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "meta.json").write_text((good / "meta.json").read_text())
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "meta.json").write_text(json.dumps({"kind": "pretrained-encoder", "model": "ViT-S-32"}))
    (tmp_path / ".tmp-half-written").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="checkpoints.store"):
        found = list_checkpoints(tmp_path)
    assert [c.name for c in found] == [good.name]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("no-meta", "bad-json", "no-weights", "encoder"):
        assert name in skipped
    assert list_checkpoints(tmp_path / "absent") == []


def test_pickles_are_refused_without_being_opened(tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(PickleCheckpointRefused, match="never loads pickles"):
        load_checkpoint(pt)
    with pytest.raises(PickleCheckpointRefused):
        load_checkpoint(tmp_path / "missing.pth")
    folder = tmp_path / "old-style"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(PickleCheckpointRefused, match="pytorch_model.bin"):
        load_checkpoint(folder)


def test_other_kinds_of_files_are_named_for_what_they_are(tmp_path):
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "meta.json").write_text(json.dumps({"kind": "pretrained-encoder", "model": "ViT-S-32"}))
    with pytest.raises(WrongCheckpointKind, match="pretrained-encoder"):
        load_checkpoint(encoder)
    arbitrary = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(arbitrary))
    with pytest.raises(WrongCheckpointKind, match="not an NLQ localizer"):
        load_checkpoint(arbitrary)
    arbitrary.with_suffix(".json").write_text(json.dumps({"model": "ViT-S-32"}))
    with pytest.raises(WrongCheckpointKind, match="encoder weights"):
        load_checkpoint(arbitrary)
    with pytest.raises(NotACheckpoint, match="no checkpoint named 'nope'.*available: none"):
        load_checkpoint("nope", directory=tmp_path)
    with pytest.raises(NotACheckpoint, match="not found"):
        load_checkpoint(tmp_path / "nowhere")


def _edit_meta(path: Path, **changes) -> None:
    meta = json.loads((path / "meta.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(meta.get(key), dict):
            meta[key].update(value)
        else:
            meta[key] = value
    (path / "meta.json").write_text(json.dumps(meta))


def test_unknown_models_mismatched_shapes_and_corruption_are_explained(tmp_path):
    model = tiny("vslnet")
    unknown = save_checkpoint(tmp_path, model, metadata(), name="unknown")
    _edit_meta(unknown, model="transformer9000")
    with pytest.raises(UnknownCheckpointModel, match="transformer9000"):
        load_checkpoint(unknown)

    reshaped = save_checkpoint(tmp_path, model, metadata(), name="reshaped")
    _edit_meta(reshaped, model_config={"dim": 64})
    with pytest.raises(CheckpointShapeMismatch, match="wrong shape for .*instead of"):
        load_checkpoint(reshaped)

    bad_config = save_checkpoint(tmp_path, model, metadata(), name="bad-config")
    _edit_meta(bad_config, model_config={"layers": 3})
    with pytest.raises(InvalidCheckpointMetadata, match="layers"):
        load_checkpoint(bad_config)

    newer = save_checkpoint(tmp_path, model, metadata(), name="newer")
    _edit_meta(newer, format_version=2)
    with pytest.raises(UnsupportedCheckpointFormat, match="newer EgoRecall"):
        load_checkpoint(newer)

    missing_field = save_checkpoint(tmp_path, model, metadata(), name="missing-field")
    meta = json.loads((missing_field / "meta.json").read_text())
    del meta["text_encoder"]
    (missing_field / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidCheckpointMetadata, match="text_encoder"):
        load_checkpoint(missing_field)

    corrupt = save_checkpoint(tmp_path, model, metadata(), name="corrupt")
    data = bytearray((corrupt / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (corrupt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(NotACheckpoint, match="corrupt"):
        load_checkpoint(corrupt)

    no_weights = save_checkpoint(tmp_path, model, metadata(), name="no-weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(NotACheckpoint, match="model.safetensors is missing"):
        load_checkpoint(no_weights)


def test_weights_that_do_not_fit_are_caught_before_loading(tmp_path):
    path = save_checkpoint(tmp_path, tiny("vslnet"), metadata(), name="tampered")
    tensors = dict(tiny("vslnet").state_dict())
    tensors.pop("highlight.bias")
    tensors["extra.weight"] = torch.zeros(1)
    save_file(tensors, str(path / "model.safetensors"))
    _edit_meta(path, weights_sha256="")  # no digest to catch it first
    with pytest.raises(CheckpointShapeMismatch, match="missing highlight.bias; unexpected extra.weight"):
        load_checkpoint(path)


def test_check_compatible_says_what_was_expected_and_what_is_there():
    meta = metadata()
    check_compatible(meta, "egorecall-tiny/random-seed0", VIDEO_DIM, 1.875)
    with pytest.raises(IncompatibleCheckpoint) as err:
        check_compatible(meta, "ViT-B-16/openai", 512, 1.875)
    message = str(err.value)
    assert "16-d features from 'egorecall-tiny/random-seed0' at 1.875 Hz" in message
    assert "512-d features from 'ViT-B-16/openai' at 1.875 Hz" in message
    with pytest.raises(IncompatibleCheckpoint):
        check_compatible(meta, "egorecall-tiny/random-seed0", VIDEO_DIM, 2.0)
    assert issubclass(IncompatibleCheckpoint, EgoRecallError)


def test_a_checkpoint_reads_its_encoders_features_whatever_runtime_made_them(tmp_path):
    """Float-trained weights serve a library indexed with the image tower on OpenVINO or int8 (features within
    cosine 0.9998, answers held on the report worlds), and the other way round; other weights stay refused."""
    meta = metadata()
    for runtime in ("+openvino", "+int8"):
        check_compatible(meta, f"egorecall-tiny/random-seed0{runtime}", VIDEO_DIM, 1.875)
    quantized = dataclasses.replace(
        meta, feature_encoder=dataclasses.replace(meta.feature_encoder, key="egorecall-tiny/random-seed0+openvino")
    )
    check_compatible(quantized, "egorecall-tiny/random-seed0", VIDEO_DIM, 1.875)
    with pytest.raises(IncompatibleCheckpoint):
        check_compatible(meta, "egorecall-tiny/random-seed1+openvino", VIDEO_DIM, 1.875)
    with pytest.raises(IncompatibleCheckpoint):
        check_compatible(meta, "egorecall-tiny/random-seed0+fp8", VIDEO_DIM, 1.875)  # not a runtime we know
    save_checkpoint(tmp_path, tiny("vslnet"), meta, name="float")
    listed = compatible_checkpoints(tmp_path, "egorecall-tiny/random-seed0+openvino", VIDEO_DIM, 1.875)
    assert [c.name for c in listed] == ["float"]


def test_cli_lists_checkpoints_as_json_and_table(tmp_path, capsys, monkeypatch):
    save_checkpoint(tmp_path, tiny("vslnet"), metadata(), name="first")
    assert cli_main(["checkpoints", "list", "--json", "--dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["model"], c["metrics"]) for c in listed] == [("first", "vslnet", {"R@1@0.3": 0.25})]
    assert listed[0]["feature_encoder"]["dim"] == VIDEO_DIM

    monkeypatch.setenv("EGORECALL_CHECKPOINTS", str(tmp_path))  # the settings' default folder
    assert cli_main(["checkpoints", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NAME", "MODEL", "STAGE"] and table[1].startswith("first  vslnet")
    assert "R@1@0.3=0.25" in table[1]

    assert cli_main(["checkpoints", "show", "first"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "vslnet"
    assert cli_main(["checkpoints", "show", "missing"]) == 1
    assert capsys.readouterr().err.startswith("error: there is no checkpoint named 'missing'")
    assert cli_main(["checkpoints", "list", "--dir", str(tmp_path / "empty")]) == 0
    assert "no checkpoints in" in capsys.readouterr().out
