"""`python -m app index / library ...` as users run it: bad files, a killed indexer, listing and removing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from killing import run_and_kill_midway
from media import bad_inputs, h264_video, media_dir, write_video  # noqa: F401
from tiny import TINY_ARGS

from app.cli import main
from indexing.library import Library

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_ARGS


def _env(**extra) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", **extra}
    env.pop("EGORECALL_MODEL", None)
    env.pop("EGORECALL_PRETRAINED", None)
    return env


def _cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=ROOT,
        env=_env(),
        text=True,
        capture_output=True,
        timeout=300,
        **kw,
    )


@pytest.fixture()
def indexed(tmp_path, h264_video, tiny_encoder):
    """A library holding one video, and a query that finds it."""
    lib = Library.open(tmp_path / "lib")
    rec = lib.add(h264_video, tiny_encoder)
    query = lib.features(rec.id)[[3]].astype(np.float32)
    return lib, rec, query


def test_bad_files_get_one_line_each_and_the_rest_is_indexed(indexed, bad_inputs, media_dir):
    lib, rec, query = indexed
    features_before = lib.features(rec.id).copy()
    good = write_video(media_dir / "after.mkv", seconds=2.0, seed=5)
    bad = list(bad_inputs.values())
    result = _cli("index", *bad, good, "--library", lib.root, *TINY)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(bad), result.stderr
    for path in bad:
        mine = [ln for ln in lines if ln.startswith(f"error: {path.name}: ")]
        assert len(mine) == 1, (path.name, result.stderr)
        assert mine[0].endswith(".")
    out = result.stdout.strip().splitlines()
    assert len(out) == 1 and out[0].endswith("after.mkv") and "frames" in out[0]

    # What was there before is untouched and still found; only the good file was added.
    after = Library.open(lib.root)
    assert [v.name for v in after.videos(include_pending=True)] == [rec.name, "after.mkv"]
    np.testing.assert_array_equal(after.features(rec.id), features_before)
    top = after.search(query, k=1)[0][0]
    assert (top.video_id, top.bin) == (rec.id, 3)
    assert after.check().ok


@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "flipped", "audio", "png", "one_frame"])
def test_each_bad_file_alone_fails_with_one_line(indexed, bad_inputs, kind, capsys):
    lib, rec, _ = indexed
    path = bad_inputs[kind]
    code = main(["index", str(path), "--library", str(lib.root), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"error: {path.name}: "), err
    assert [v.id for v in Library.open(lib.root).videos(include_pending=True)] == [rec.id]


def test_killed_indexer_leaves_a_consistent_library(tmp_path, tiny_encoder):
    long_video = write_video(tmp_path / "long.mp4", seconds=60.0, fps=30.0, seed=9)
    root = tmp_path / "lib"
    run_and_kill_midway(
        [sys.executable, "-m", "app", "-v", "index", str(long_video), "--library", str(root), "--rate", "30", *TINY],
        cwd=ROOT,
        env=_env(),
        progress=r"long\.mp4: (\d+)/(\d+) frames",
    )

    report = Library.open(root, repair=False).check()
    assert any("interrupted" in p for p in report.problems)  # the half-done job is visible to check ...
    lib = Library.open(root)  # ... and cleaned up on open
    assert lib.videos(include_pending=True) == []
    assert lib.check().ok and not list((root / "jobs").iterdir())
    assert not list((root / "features").iterdir()) and not list((root / "media").iterdir())
    rec = lib.add(long_video, tiny_encoder)
    assert rec.status == "ready" and rec.num_rows == 1800


def test_list_and_remove(indexed, capsys):
    lib, rec, _ = indexed
    assert main(["library", "list", "--library", str(lib.root)]) == 0
    table = capsys.readouterr().out
    assert rec.id in table and rec.name in table and "ready" in table
    assert main(["library", "list", "--json", "--library", str(lib.root)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == rec.id and row["num_rows"] == 12 and row["encoder_key"] == "egorecall-tiny/random-seed0"
    assert main(["library", "remove", rec.id, "--library", str(lib.root)]) == 0
    assert rec.id in capsys.readouterr().out
    assert main(["library", "remove", rec.id, "--library", str(lib.root)]) == 1
    assert capsys.readouterr().err.startswith(f"error: there is no video '{rec.id}'")
    assert Library.open(lib.root).videos() == []


def test_same_file_again_is_reported_not_reindexed(indexed, h264_video, capsys):
    lib, rec, _ = indexed
    assert main(["index", str(h264_video), "--library", str(lib.root)]) == 0  # the library's own encoder
    out = capsys.readouterr().out
    assert rec.id in out and "already in the library" in out


def test_default_encoder_missing_offline_is_one_clear_line(tmp_path, h264_video, capsys, monkeypatch):
    monkeypatch.setenv("EGORECALL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv("EGORECALL_MODEL", raising=False)
    monkeypatch.delenv("EGORECALL_PRETRAINED", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["index", str(h264_video), "--library", str(tmp_path / "lib")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: pretrained weights for ViT-B-16 ('openai') are not on")


def test_encoder_mismatch_is_refused(indexed, h264_video, capsys):
    lib, _, _ = indexed
    assert (
        main(["index", str(h264_video), "--library", str(lib.root), "--model", "ViT-B-32", "--pretrained", "none"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot mix in features of ViT-B-32/random-seed0" in err[0]


def test_check_and_repair(indexed, capsys):
    lib, rec, _ = indexed
    assert main(["library", "check", "--library", str(lib.root)]) == 0
    assert "consistent" in capsys.readouterr().out
    (lib.root / "index" / "frames.faiss").unlink()
    (lib.root / "features" / "0123456789ab.npy").write_bytes(b"stray")
    assert main(["library", "check", "--library", str(lib.root)]) == 1
    out = capsys.readouterr().out
    assert "orphan file features/0123456789ab.npy" in out and "frame index does not match" in out
    assert main(["library", "repair", "--library", str(lib.root)]) == 0
    assert "fixed: rebuilt the frame index" in capsys.readouterr().out
    assert main(["library", "check", "--library", str(lib.root)]) == 0
