"""``ask`` and ``predict`` end to end on a tiny synthetic world: index -> answer -> submission -> evaluate.

Random weights cannot understand words, so these tests check the mechanics (every query answered, windows
inside clips, numbers in range, errors as one line), not accuracy; accuracy of the ranking itself is tested
with controlled embeddings in ``test_answers.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import TINY_ARGS, TINY_KEY, TINY_SPEC

from app.cli import main
from app.service import EgoRecall
from app.settings import Settings
from checkpoints import CheckpointMetadata, FeatureEncoderInfo, TextEncoderInfo, save_checkpoint
from models.registry import build_localizer
from training.nlq import load_nlq
from training.submission import load_submission

TINY = TINY_ARGS
SMALL_VSLNET = {"video_dim": 64, "query_dim": 64, "dim": 32, "num_heads": 4, "max_positions": 64, "dropout": 0.0}


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from training.synthworld import generate_world

    root = tmp_path_factory.mktemp("askworld")
    summary = generate_world(root / "world", n_videos=2, seed=3, duration=30)
    assert summary.n_val_queries > 0
    lib = root / "lib"
    torch.manual_seed(0)
    good = build_localizer("vslnet", SMALL_VSLNET)
    meta = CheckpointMetadata(
        feature_encoder=FeatureEncoderInfo(TINY_KEY, 64, 1.875),
        text_encoder=TextEncoderInfo("egorecall-tiny", "none", TINY_KEY, 64),
        stage="test",
    )
    save_checkpoint(lib / "checkpoints", good, meta, name="tiny-vslnet")
    other = build_localizer("vslnet", {**SMALL_VSLNET, "video_dim": 512})
    save_checkpoint(
        lib / "checkpoints",
        other,
        CheckpointMetadata(
            feature_encoder=FeatureEncoderInfo("ViT-B-16/openai", 512, 1.875),
            text_encoder=TextEncoderInfo("egorecall-tiny", "none", TINY_KEY, 64),
        ),
        name="vitb-vslnet",
    )
    # Indexed here, so that every test can also run alone (``predict --videos-dir`` indexing what a library lacks
    # is checked by the calibration test, on a library of its own).
    service = EgoRecall(Settings(library=lib, device="cpu"), encoder_spec=TINY_SPEC)
    assert all(r.ok for r in service.index(sorted((root / "world" / "videos").glob("*.mp4"))))
    return {"root": root, "val": root / "world" / "nlq_val.json", "videos": root / "world" / "videos", "lib": lib}


def evaluate(capsys, annotations, predictions) -> dict:
    rc, out, _ = run(capsys, "evaluate", "--annotations", annotations, "--predictions", predictions, "--json")
    assert rc == 0
    scores = json.loads(out)
    for name in ("R1@0.3", "R5@0.3", "R1@0.5", "R5@0.5", "mIoU"):
        assert 0.0 <= scores[name] <= 100.0
    return scores


def check_submission(path: Path, annotations: Path, k: int = 5) -> None:
    dataset = load_nlq(annotations)
    preds = {p.key: p for p in load_submission(path)}
    assert set(preds) == {q.key for q in dataset.queries}
    for q in dataset.queries:
        duration = dataset.clips[q.clip_uid].duration
        windows = preds[q.key].windows
        assert 1 <= len(windows) <= k
        assert all(0.0 <= s < e <= duration + 1e-6 for s, e in windows)


def test_predict_zeroshot_from_videos_then_evaluate(world, capsys):
    out = world["root"] / "zs.json"
    rc, stdout, _ = run(
        capsys,
        "predict",
        "--annotations",
        world["val"],
        "--mode",
        "zeroshot",
        "--videos-dir",
        world["videos"],
        "--out",
        out,
        "--library",
        world["lib"],
        *TINY,
    )
    assert rc == 0 and "answered" in stdout and str(out) in stdout
    check_submission(out, world["val"])
    scores = evaluate(capsys, world["val"], out)
    assert scores["num_predicted"] == scores["num_queries"]
    # A second run says the same.
    rc, again, _ = run(
        capsys,
        "predict",
        "--annotations",
        world["val"],
        "--mode",
        "zeroshot",
        "--videos-dir",
        world["videos"],
        "--out",
        world["root"] / "zs2.json",
        "--library",
        world["lib"],
    )
    assert rc == 0 and json.loads(out.read_text()) == json.loads((world["root"] / "zs2.json").read_text())


def test_queries_without_features_are_reported_as_misses(world, capsys):
    data = json.loads(world["val"].read_text())
    clip = json.loads(json.dumps(data["videos"][0]["clips"][0]))
    clip["clip_uid"] = "clip-of-a-missing-video"
    data["videos"].append({"video_uid": "missing-video", "split": "val", "clips": [clip]})
    annotations = world["root"] / "with_missing.json"
    annotations.write_text(json.dumps(data))
    out = world["root"] / "missing.json"
    rc, stdout, stderr = run(
        capsys,
        "predict",
        "--annotations",
        annotations,
        "--videos-dir",
        world["videos"],
        "--out",
        out,
        "--library",
        world["lib"],
    )
    n_missing = sum(len(a["language_queries"]) for a in clip["annotations"])
    assert rc == 0 and f"{n_missing} queries in 1 clips without features" in stdout
    assert "missing-video" in stderr
    preds = {p.key: p for p in load_submission(out)}
    missed = [p for p in preds.values() if p.clip_uid == "clip-of-a-missing-video"]
    assert len(missed) == n_missing and all(not p.windows for p in missed)
    scores = evaluate(capsys, annotations, out)
    assert scores["num_queries"] == len(preds)


def test_predict_from_a_features_folder(world, capsys, tmp_path):
    dataset = load_nlq(world["val"])
    rng = np.random.default_rng(0)
    folder = tmp_path / "features"
    folder.mkdir()
    for uid, clip in dataset.clips.items():
        np.save(folder / f"{uid}.npy", rng.standard_normal((int(clip.duration * 1.875), 64)).astype(np.float32))
    out = tmp_path / "pred.json"
    rc, _, _ = run(
        capsys, "predict", "--annotations", world["val"], "--features-dir", folder, "--out", out, "--k", 3, *TINY
    )
    assert rc == 0
    check_submission(out, world["val"], k=3)
    evaluate(capsys, world["val"], out)
    # Features of another size cannot be compared with this CLIP's question embeddings.
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    for uid in dataset.clips:
        np.save(narrow / f"{uid}.npy", rng.standard_normal((40, 32)).astype(np.float32))
    rc, _, err = run(capsys, "predict", "--annotations", world["val"], "--features-dir", narrow, "--out", out, *TINY)
    assert rc == 1 and err.count("\n") == 1 and "32-d" in err and "64-d" in err


def test_trained_checkpoint_answers_through_the_same_interface(world, capsys):
    lib = world["lib"]
    rc, out, _ = run(
        capsys,
        "ask",
        "where did I put the cup?",
        "--mode",
        "tiny-vslnet",
        "--library",
        lib,
        "--json",
        "--no-clips",
        "--k",
        3,
    )
    assert rc == 0
    answer = json.loads(out)
    assert answer["mode"] == "tiny-vslnet" and 1 <= len(answer["moments"]) <= 3
    assert all(0 <= m["start"] < m["end"] for m in answer["moments"])
    pred = world["root"] / "trained.json"
    rc, stdout, _ = run(
        capsys,
        "predict",
        "--annotations",
        world["val"],
        "--mode",
        "tiny-vslnet",
        "--videos-dir",
        world["videos"],
        "--out",
        pred,
        "--library",
        lib,
    )
    assert rc == 0 and "vslnet checkpoint tiny-vslnet" in stdout
    check_submission(pred, world["val"])
    evaluate(capsys, world["val"], pred)
    service = EgoRecall(Settings(library=lib, device="cpu"))
    assert service.modes() == ["auto", "zeroshot", "tiny-vslnet", "fused:tiny-vslnet"]  # the other reads ViT-B-16
    modes = service.modes(compatible_only=False)
    assert modes[:2] == ["auto", "zeroshot"] and sorted(modes[2:4]) == ["tiny-vslnet", "vitb-vslnet"]
    assert service.answerer("tiny-vslnet") is service.answerer("tiny-vslnet")  # cached
    # auto: fused with the one checkpoint that reads this library's features, and the answer says so
    assert service.answerer("auto") is service.answerer("fused:tiny-vslnet")
    answer = service.ask("where is the cup", clips=False)
    assert (answer.asked_mode, answer.mode) == ("auto", "fused:tiny-vslnet") and "fused" in answer.label
    rc, out, _ = run(capsys, "ask", "where is the cup", "--library", lib, "--no-clips")
    assert rc == 0 and out.splitlines()[1].startswith("  auto: fused (")


def test_incompatible_checkpoint_is_refused_in_one_line(world, capsys):
    rc, out, err = run(capsys, "ask", "where is the cup", "--mode", "vitb-vslnet", "--library", world["lib"])
    assert rc == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert "ViT-B-16/openai" in err and TINY_KEY in err


def test_ask_cli(world, capsys, tmp_path):
    lib = world["lib"]
    rc, out, _ = run(capsys, "ask", "Where is the cup?", "--library", lib, "--k", 2, "--clips", tmp_path / "c")
    lines = out.splitlines()
    moments = [line for line in lines if line.lstrip()[:1].isdigit()]  # after the header and any notes
    assert rc == 0 and lines[0] == "Where is the cup?" and len(moments) == 2
    assert moments[0].split()[0] == "1" and "–" in moments[0] and moments[0].endswith(".mp4")
    copied = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(copied) == 4 and copied[0].startswith("01-") and copied[0].endswith(".jpg")
    rc, out, _ = run(capsys, "ask", "Where is the cup?", "--library", lib, "--json", "--k", 1)
    moment = json.loads(out)["moments"][0]
    assert Path(moment["clip"]).is_file() and Path(moment["thumbnail"]).is_file()
    assert moment["when"] and moment["recorded_at"] > 0  # every moment says when it happened
    rc, out, err = run(
        capsys,
        "ask",
        "Where is the cup?",
        "--library",
        lib,
        "--since",
        "2001-01-01T00:00",
        "--until",
        "2001-01-02T00:00",
    )
    assert rc == 1 and out == "" and "no video was recorded" in err and err.count("\n") == 1
    for argv, words in (
        (["   "], "empty"),
        (["cup", "--video", "nope"], "no video"),
        (["cup", "--k", "0"], "from 1 to 50"),
        (["cup", "--k", "1000000000"], "from 1 to 50"),
        (["cup", "--mode", "nothing"], "no checkpoint"),
    ):
        rc, out, err = run(capsys, "ask", *argv, "--library", lib)
        assert rc == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1 and words in err
    rc, _, err = run(capsys, "ask", "cup", "--library", tmp_path / "none")
    assert rc == 1 and "no EgoRecall library" in err


def test_fused_mode_answers_everywhere_modes_are(world, capsys):
    lib = world["lib"]
    rc, out, _ = run(
        capsys,
        "ask",
        "where did I put the cup?",
        "--mode",
        "fused:tiny-vslnet",
        "--library",
        lib,
        "--json",
        "--no-clips",
        "--k",
        5,
    )
    assert rc == 0
    answer = json.loads(out)
    assert answer["mode"] == "fused:tiny-vslnet" and len(answer["moments"]) == 5
    assert all(0 <= m["start"] < m["end"] and 0.0 <= m["score"] <= 1.0 for m in answer["moments"])
    pred = world["root"] / "fused.json"
    rc, stdout, _ = run(
        capsys,
        "predict",
        "--annotations",
        world["val"],
        "--mode",
        "fused:tiny-vslnet",
        "--videos-dir",
        world["videos"],
        "--out",
        pred,
        "--library",
        lib,
    )
    assert rc == 0 and "fused" in stdout and "weight 0.5" in stdout  # no weight chosen yet: the default
    check_submission(pred, world["val"])


def test_fused_mode_with_a_checkpoint_of_other_features_is_refused_in_one_line(world, capsys):
    rc, out, err = run(capsys, "ask", "where is the cup", "--mode", "fused:vitb-vslnet", "--library", world["lib"])
    assert rc == 1 and out == "" and err.count("\n") == 1 and "ViT-B-16/openai" in err and TINY_KEY in err
    rc, _, err = run(capsys, "ask", "where is the cup", "--mode", "fused:", "--library", world["lib"])
    assert rc == 1 and "names no checkpoint" in err


def test_a_chosen_fusion_weight_is_stored_and_used(world, tmp_path):
    import shutil

    from checkpoints import InvalidCheckpointMetadata, read_metadata, update_metadata

    ckpts = tmp_path / "checkpoints"
    shutil.copytree(world["lib"] / "checkpoints" / "tiny-vslnet", ckpts / "tiny-copy")
    update_metadata("tiny-copy", {"fusion": {"weight": 0.8, "chosen_on": "val.json"}}, ckpts)
    assert read_metadata(ckpts / "tiny-copy").fusion["weight"] == 0.8
    before = (ckpts / "tiny-copy" / "meta.json").read_bytes()
    with pytest.raises(InvalidCheckpointMetadata, match="weight"):
        update_metadata("tiny-copy", {"fusion": {"weight": 1.5}}, ckpts)
    assert (ckpts / "tiny-copy" / "meta.json").read_bytes() == before  # a refused update changes nothing
    service = EgoRecall(Settings(library=world["lib"], device="cpu"))
    fused = service.answerer(f"fused:{ckpts / 'tiny-copy'}")
    assert fused.weight == 0.8 and "weight 0.8" in fused.label
    assert fused.form == "linear"  # a weight recorded without its form was chosen for the form of that time
    update_metadata("tiny-copy", {"fusion": {"weight": 0.8, "form": "span"}}, ckpts)
    assert service.answerer(f"fused:{ckpts / 'tiny-copy'}").form == "span"


def test_a_fusion_form_this_version_does_not_know_is_refused_in_one_line(world, capsys):
    """A weight means something only in the form it was chosen for: a newer EgoRecall's form is refused with
    what to do, not answered with another form's meaning of the weight -- and ``auto`` passes that checkpoint
    over, however well it scored, instead of failing every question."""
    import shutil

    from checkpoints import update_metadata

    ckpts = world["lib"] / "checkpoints"
    shutil.copytree(ckpts / "tiny-vslnet", ckpts / "tiny-future")
    fusion = {"weight": 0.6, "form": "harmonic", "chosen_on": "val.json", "metrics": {"0.6": {"R@1@0.3": 99.0}}}
    try:
        update_metadata("tiny-future", {"fusion": fusion}, ckpts)
        rc, out, err = run(capsys, "ask", "where is the cup", "--mode", "fused:tiny-future", "--library", world["lib"])
        assert rc == 1 and out == "" and err.count("\n") == 1
        assert "'harmonic'" in err and "linear, span" in err and "calibrate" in err
        rc, out, err = run(capsys, "ask", "where is the cup", "--library", world["lib"], "--json")
    finally:
        shutil.rmtree(ckpts / "tiny-future")
    assert rc == 0, err
    assert "tiny-future" not in json.loads(out)["mode"]


def test_auto_passes_over_a_checkpoint_that_reads_questions_in_an_unknown_way(world, capsys):
    import shutil

    from checkpoints import update_metadata

    ckpts = world["lib"] / "checkpoints"
    shutil.copytree(ckpts / "tiny-vslnet", ckpts / "tiny-shouting")
    meta = ckpts / "tiny-shouting" / "meta.json"
    doc = json.loads(meta.read_text())
    doc["text_encoder"]["reading"] = "shouting"  # a reading only a newer EgoRecall knows
    meta.write_text(json.dumps(doc))
    fusion = {"weight": 0.6, "chosen_on": "val.json", "metrics": {"0.6": {"R@1@0.3": 99.0}}}
    try:
        update_metadata("tiny-shouting", {"fusion": fusion}, ckpts)
        rc, out, err = run(capsys, "ask", "where is the cup", "--mode", "tiny-shouting", "--library", world["lib"])
        assert rc == 1 and "'shouting'" in err and err.count("\n") == 1
        rc, out, err = run(capsys, "ask", "where is the cup", "--library", world["lib"], "--json")
    finally:
        shutil.rmtree(ckpts / "tiny-shouting")
    assert rc == 0, err
    assert "tiny-shouting" not in json.loads(out)["mode"]


def test_fusion_at_weight_zero_is_the_checkpoint_itself(world):
    """At weight 0 the fused mode answers with the checkpoint's own spans (not fixed-length windows cut from its
    highlight curve), so the weight search can fall back to the checkpoint whole; the weight chosen on a file
    scores the checkpoint's own windows there."""
    from app.answering.fusion import FusedAnswerer, choose_fusion_weight
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    service = EgoRecall(Settings(library=world["lib"], device="cpu"))
    trained = service.answerer("tiny-vslnet")
    fused = FusedAnswerer(service.answer_context(), "tiny-vslnet", weight=0.0)
    mixed = FusedAnswerer(service.answer_context(), "tiny-vslnet", weight=0.5)
    video = service.library.videos()[0]
    features, grid = service.library.features(video), video.grid
    for comparable in (False, True):
        (own,) = trained.answer(trained.prepare(["where is the cup"]), features, grid, 5, comparable=comparable)
        (same,) = fused.answer(fused.prepare(["where is the cup"]), features, grid, 5, comparable=comparable)
        assert same.windows == own.windows
    assert "alone" in fused.label and "weight 0.5" in mixed.label
    (other,) = mixed.answer(mixed.prepare(["where is the cup"]), features, grid, 5)
    assert other.windows != own.windows  # fixed-length windows of the mixed curve
    dataset = load_nlq(world["val"])
    choice = choose_fusion_weight(fused, dataset, LibraryClipFeatures(service.library), weights=(0.0,))
    alone = score_checkpoint(trained, dataset, LibraryClipFeatures(service.library))
    assert choice.scores[0.0] == alone


def test_fused_answers_read_the_clip_with_clip_for_their_confidence(world):
    """A trained model's span probabilities are relative to its clip (asked about something the clip never
    shows, it still places an answer); the fused mode also reads the clip with CLIP -- its best zero-shot window
    score -- when its calibration weighs that (or while one is fitted), the moments unchanged, and the
    confidence of every moment of a video rests on it."""
    from app.answering.calibration import Calibration

    service = EgoRecall(Settings(library=world["lib"], device="cpu"), encoder_spec=TINY_SPEC)
    fused = service.answerer("fused:tiny-vslnet")
    zeroshot = service.answerer("zeroshot")
    video = service.library.videos()[0]
    features, grid = service.library.features(video), video.grid
    question = "where is the cup"
    (own,) = zeroshot.answer(zeroshot.prepare([question]), features, grid, 5)
    for weight in (0.0, 0.5):
        fused.weight, fused.measure_clip = weight, False
        (plain,) = fused.answer(fused.prepare([question]), features, grid, 5)
        fused.measure_clip = True
        (read,) = fused.answer(fused.prepare([question]), features, grid, 5)
        assert plain.clip_score is None and read.windows == plain.windows
        assert read.clip_score == pytest.approx(own.windows[0].score, abs=1e-5)  # zero-shot's rank-1 score

    fused.weight = 0.0
    fused.calibration = Calibration(a=0.0, b=-40.0 * own.windows[0].score, threshold=0.5, clip_weight=40.0)
    try:
        answer = service.ask(question, mode="fused:tiny-vslnet", video_id=video.id, k=3, clips=False)
    finally:
        fused.calibration, fused.measure_clip = None, False
    assert answer.moments[0].confidence == pytest.approx(0.5, abs=1e-3)  # sigmoid(40 * (clip - clip))


def test_a_checkpoint_alone_reads_the_clip_with_clip_for_its_confidence(world):
    """The checkpoint mode itself (not only ``fused``) measures CLIP's best window score in the clip when its
    calibration weighs it, where the library's CLIP made the features: the moments are the checkpoint's own,
    the score is zero-shot's rank 1, and the confidence rests on it. Where CLIP cannot read the features, a
    calibration that needs it is dropped with a warning, never applied without its input."""
    from app.answering.calibration import Calibration
    from app.answering.trained import TrainedAnswerer

    service = EgoRecall(Settings(library=world["lib"], device="cpu"), encoder_spec=TINY_SPEC)
    trained = service.answerer("tiny-vslnet")
    zeroshot = service.answerer("zeroshot")
    video = service.library.videos()[0]
    features, grid = service.library.features(video), video.grid
    question = "where is the cup"
    (own,) = zeroshot.answer(zeroshot.prepare([question]), features, grid, 5)
    was = trained.calibration, trained.measure_clip
    try:
        trained.measure_clip = False
        (plain,) = trained.answer(trained.prepare([question]), features, grid, 5)
        trained.measure_clip = True
        (read,) = trained.answer(trained.prepare([question]), features, grid, 5)
        assert plain.clip_score is None and read.windows == plain.windows
        assert read.clip_score == pytest.approx(own.windows[0].score, abs=1e-5)
        trained.calibration = Calibration(a=0.0, b=-40.0 * own.windows[0].score, threshold=0.5, clip_weight=40.0)
        answer = service.ask(question, mode="tiny-vslnet", video_id=video.id, k=3, clips=False)
    finally:
        trained.calibration, trained.measure_clip = was
    assert answer.moments[0].confidence == pytest.approx(0.5, abs=1e-3)  # sigmoid(40 * (clip - clip))

    class Unreadable(TrainedAnswerer):
        def clip_reader(self):
            self._reader_error = "features of another CLIP"
            return None

    from checkpoints import update_metadata

    folder = service.settings.checkpoints_dir
    needs_clip = Calibration(a=1.0, b=0.0, threshold=0.5, clip_weight=1.0).to_dict()
    update_metadata("tiny-vslnet", {"calibration": {"checkpoint": needs_clip}}, folder)
    try:
        lone = Unreadable(service.answer_context(), "tiny-vslnet")
    finally:
        update_metadata("tiny-vslnet", {"calibration": trained.meta.calibration}, folder)
    assert lone.calibration is None and not lone.measure_clip
    assert any("cannot read these features" in w and "no confidence" in w for w in lone.warnings)


def score_checkpoint(answerer, dataset, source) -> dict:
    from training.metrics import score_windows, windows_array

    windows, truth = [], []
    for clip_uid, queries in dataset.queries_by_clip().items():
        queries = [q for q in queries if q.has_answer]
        feats = source.get(dataset.clips[clip_uid])
        for q, a in zip(
            queries, answerer.answer(answerer.prepare([q.text for q in queries]), feats.features, feats.grid, 5)
        ):
            windows.append(a.windows)
            truth.append((q.start, q.end))
    s = score_windows(windows_array(windows, 5), np.asarray(truth, np.float64))
    return {"R@1@0.3": s.recall["R1@0.3"], "R@5@0.3": s.recall["R5@0.3"]}


def test_predict_uses_the_library_when_no_folder_is_given(world, capsys, tmp_path):
    """After the first predict indexed the clips' videos, the library alone answers the same file."""
    first = world["root"] / "from-videos.json"
    rc, _, _ = run(
        capsys,
        "predict",
        "--annotations",
        world["val"],
        "--videos-dir",
        world["videos"],
        "--out",
        first,
        "--library",
        world["lib"],
        *TINY,
    )
    assert rc == 0
    again = tmp_path / "from-library.json"
    rc, out, err = run(capsys, "predict", "--annotations", world["val"], "--out", again, "--library", world["lib"])
    assert rc == 0 and "without features" in out and "warning" not in err
    assert json.loads(first.read_text()) == json.loads(again.read_text())
    data = json.loads(world["val"].read_text())
    clip = json.loads(json.dumps(data["videos"][0]["clips"][0]))
    clip["clip_uid"] = "clip-of-an-unindexed-video"
    data["videos"].append({"video_uid": "unindexed-video", "split": "val", "clips": [clip]})
    annotations = tmp_path / "with_unindexed.json"
    annotations.write_text(json.dumps(data))
    rc, out, err = run(
        capsys, "predict", "--annotations", annotations, "--out", tmp_path / "p.json", "--library", world["lib"]
    )
    assert rc == 0 and "unindexed-video" in err and "not in the library" in err


def test_calibrate_stores_a_checkpoints_confidence_and_answers_carry_it(world, capsys, tmp_path):
    import shutil

    from checkpoints import read_metadata
    from training.synthworld import generate_world

    generate_world(tmp_path / "world", n_videos=4, seed=5, duration=30, val_fraction=0.5)
    lib = tmp_path / "lib"
    shutil.copytree(world["lib"] / "checkpoints" / "tiny-vslnet", lib / "checkpoints" / "tiny-vslnet")
    val = tmp_path / "world" / "nlq_val.json"
    rc, _, err = run(
        capsys,
        "predict",
        "--annotations",
        val,
        "--videos-dir",
        tmp_path / "world" / "videos",
        "--out",
        tmp_path / "p.json",
        "--library",
        lib,
        *TINY,
    )  # indexes the clips' videos
    assert rc == 0, err
    rc, out, err = run(capsys, "calibrate", "--annotations", val, "--mode", "tiny-vslnet", "--library", lib)
    assert rc == 0, err
    assert "threshold" in out and "negatives flagged" in out and "fusion weight" in out
    meta = read_metadata(lib / "checkpoints" / "tiny-vslnet")
    cal = meta.calibration["checkpoint"]
    assert 0.0 <= cal["threshold"] <= 1.0 and cal["positives"] > 0 and cal["negatives"] > 0
    # the checkpoint's fusion weight was chosen on the file too, and the fused mode calibrated after it
    assert meta.fusion["chosen_on"] == str(val) and 0.0 <= meta.fusion["weight"] <= 1.0
    assert meta.fusion["form"] == "span"  # the form weights are chosen for now
    assert set(meta.calibration) == {"checkpoint", "fused"}
    for argv, words in (
        (["--max-loss", "101"], "0 to 100"),
        (["--max-loss", "-1"], "0 to 100"),
        (["--negatives", "0"], "at least 1"),
    ):
        rc, out, err = run(capsys, "calibrate", "--annotations", val, "--library", lib, *argv)
        assert rc == 1 and out == "" and words in err and err.count("\n") == 1
    rc, out, _ = run(
        capsys, "ask", "where is the cup", "--mode", "tiny-vslnet", "--library", lib, "--json", "--no-clips"
    )
    answer = json.loads(out)
    assert all(0.0 <= m["confidence"] <= 1.0 for m in answer["moments"]) and "no_good_match" in answer
    rc, out, _ = run(capsys, "ask", "where is the cup", "--mode", "tiny-vslnet", "--library", lib, "--no-clips")
    words = ("likely", "possible", "unsure", "probably not in these videos")
    shown = [line for line in out.splitlines() if line.lstrip()[:1].isdigit()]  # one line per moment, as the Ask tab
    assert rc == 0 and shown and all(" % " in line and any(w in line for w in words) for line in shown)
    # zero-shot with random weights has no EgoRecall sidecar to keep a calibration in: one clear line
    rc, _, err = run(capsys, "calibrate", "--annotations", val, "--mode", "zeroshot", "--library", lib)
    assert rc == 1 and err.count("\n") == 1 and "pretrained encoder" in err
    rc, _, err = run(capsys, "calibrate", "--annotations", world["val"], "--mode", "tiny-vslnet", "--library", lib)
    assert rc == 1 and err.count("\n") == 1 and "nothing could be fitted" in err and "one video" in err
